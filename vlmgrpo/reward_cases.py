r"""Answers in the styles of the real dataset, each with the verdict `accuracy_reward` must give.

lmms-lab/multimodal-open-r1-8k-verified holds GPT-4o rewrites of Math360K and Geo170K items:
most problems end with their options (`Choices:\nA. 30°\nB. 60°…`) and have a letter as gold,
the others have a value gold such as `2\sqrt{3}`, `\frac{1}{2}`, `60°` or `12 cm`.
`tests/test_reward_table.py` checks every row; notebook 03 prints them.
"""

from __future__ import annotations

from typing import NamedTuple


class RewardCase(NamedTuple):
    """One answer to one problem, the reward it must earn, and why."""

    problem: str
    solution: str
    answer: str
    expected: float
    why: str


def _gold(answer: str) -> str:
    return f"<think>The reasoning.</think>\n\n<answer>{answer}</answer>"


_ANGLES = (
    "As shown in the figure, AB is parallel to CD and angle 1 = 120°. What is the measure "
    "of angle 2?\nChoices:\nA. 30°\nB. 60°\nC. 90°\nD. 120°"
)
_ROOTS = (
    "In right triangle ABC, angle C = 90°, angle A = 30° and BC = 2. What is the length "
    "of AB?\nChoices:\nA. 4\nB. 2\\sqrt{3}\nC. 12\nD. \\sqrt{2}"
)
_INLINE = "What is the length of segment DE? Choices: A: 5 B: 10 C: 15 D: 20"
_PARENS = "Find the area of the shaded region. (A) 6\\pi (B) 12 (C) 3\\pi (D) 9"
_PLAIN = "What is the value of x in the figure?"

REWARD_CASES: tuple[RewardCase, ...] = (
    # Value golds: maths parsed as LaTeX.
    RewardCase(_PLAIN, _gold(r"2\sqrt{3}"), "2", 0.0, "leading number only"),
    RewardCase(_PLAIN, _gold("12"), r"12\sqrt{3}", 0.0, "a root term is not dropped"),
    RewardCase(_PLAIN, _gold("6"), r"6\pi", 0.0, "a pi term is not dropped"),
    RewardCase(_PLAIN, _gold(r"2\sqrt{3}"), r"\sqrt{12}", 1.0, "equal roots"),
    RewardCase(_PLAIN, _gold("x^2+1"), "1+x^2", 1.0, "terms reordered"),
    RewardCase(_PLAIN, _gold(r"2\sqrt{3}"), r"2\sqrt{3}", 1.0, "same LaTeX"),
    RewardCase(_PLAIN, _gold(r"2\sqrt{3}"), "2√3", 1.0, "unicode root"),
    RewardCase(_PLAIN, _gold(r"2\sqrt{3}"), r"3\sqrt{2}", 0.0, "different root"),
    RewardCase(_PLAIN, _gold(r"\frac{1}{2}"), "0.5", 1.0, "decimal of a fraction"),
    RewardCase(_PLAIN, _gold(r"\frac{1}{2}"), "2", 0.0, "denominator only"),
    RewardCase(_PLAIN, _gold("0.5"), "5", 0.0, "decimal point lost"),
    RewardCase(_PLAIN, _gold("-3"), "-3", 1.0, "same sign"),
    RewardCase(_PLAIN, _gold("-3"), "3", 0.0, "sign lost"),
    RewardCase(_PLAIN, _gold(r"\frac{\pi}{3}"), r"\pi/3", 1.0, "fraction written inline"),
    RewardCase(_PLAIN, _gold("x^2+1"), "x^2-1", 0.0, "sign of a term"),
    RewardCase(_PLAIN, _gold("60°"), "60", 1.0, "degree sign on the gold only"),
    RewardCase(_PLAIN, _gold("60"), r"60^\circ", 1.0, "degree sign on the answer only"),
    RewardCase(_PLAIN, _gold("60°"), "60 degrees", 1.0, "degrees in words"),
    RewardCase(_PLAIN, _gold("60°"), "30°", 0.0, "another angle"),
    RewardCase(_PLAIN, _gold("12 cm"), "12", 1.0, "unit on the gold only"),
    RewardCase(_PLAIN, _gold("5"), "5 m^2", 1.0, "area unit on the answer only"),
    RewardCase(_PLAIN, _gold("12 cm"), r"12\sqrt{3} cm", 0.0, "unit kept apart from a root"),
    RewardCase(_PLAIN, _gold("5"), r"\boxed{5}", 1.0, "boxed answer"),
    RewardCase(_PLAIN, _gold("5"), "AB = 5", 1.0, "named segment"),
    RewardCase(_PLAIN, _gold("5"), "The answer is 5.", 1.0, "lead-in and period"),
    RewardCase(_PLAIN, _gold("3"), "2 or 3", 0.0, "hedging between values"),
    RewardCase(_PLAIN, _gold("12"), r"so it is \boxed{12}.", 1.0, "one box in a sentence"),
    RewardCase(_PLAIN, _gold("3"), r"\boxed{2} or \boxed{3}", 0.0, "two boxes"),
    RewardCase(_PLAIN, _gold("forty-two"), "42", 1.0, "gold in words"),
    RewardCase(_PLAIN, _gold("12"), "twelve", 1.0, "answer in words"),
    RewardCase(_PLAIN, _gold("12"), "two or twelve", 0.0, "hedging in words"),
    # Multiple choice: options one per line, the gold a letter.
    RewardCase(_ANGLES, _gold("B"), "B", 1.0, "the gold letter"),
    RewardCase(_ANGLES, _gold("B"), "(B)", 1.0, "letter in parentheses"),
    RewardCase(_ANGLES, _gold("B"), "B.", 1.0, "letter with a period"),
    RewardCase(_ANGLES, _gold("B"), "B)", 1.0, "letter with a parenthesis"),
    RewardCase(_ANGLES, _gold("B"), "b", 1.0, "lower-case letter"),
    RewardCase(_ANGLES, _gold("B"), "B. 60°", 1.0, "letter and its value"),
    RewardCase(_ANGLES, _gold("B"), "B: 60", 1.0, "letter and its value, no degree sign"),
    RewardCase(_ANGLES, _gold("B"), "Option B", 1.0, "option named"),
    RewardCase(_ANGLES, _gold("B"), "The answer is B", 1.0, "lead-in"),
    RewardCase(_ANGLES, _gold("B"), r"$\boxed{B}$", 1.0, "boxed letter"),
    RewardCase(_ANGLES, _gold("B"), r"so \boxed{B}.", 1.0, "boxed letter in a sentence"),
    RewardCase(_ANGLES, _gold("B"), r"it is \boxed{A}", 0.0, "another letter, boxed"),
    RewardCase(_ANGLES, _gold("B"), "60° (B)", 1.0, "value then letter"),
    RewardCase(_ANGLES, _gold("B"), "60°", 1.0, "the gold option's value"),
    RewardCase(_ANGLES, _gold("B"), "60", 1.0, "the value without its degree sign"),
    RewardCase(_ANGLES, _gold("B"), "A", 0.0, "another letter"),
    RewardCase(_ANGLES, _gold("B"), "30°", 0.0, "another option's value"),
    RewardCase(_ANGLES, _gold("B"), "A, B", 0.0, "two letters"),
    RewardCase(_ANGLES, _gold("B"), "B and C", 0.0, "two letters, the gold first"),
    RewardCase(_ANGLES, _gold("B"), "B. 30°", 0.0, "gold letter, another option's value"),
    RewardCase(_ANGLES, _gold("A"), "A. 12", 0.0, "a value that is no option's"),
    RewardCase(_ANGLES, _gold("B"), "E", 0.0, "a letter that is no option"),
    RewardCase(_ANGLES, _gold("60°"), "B", 1.0, "value gold: its option's letter"),
    RewardCase(_ANGLES, _gold("60°"), "A", 0.0, "value gold: another letter"),
    RewardCase(_ROOTS, _gold("B"), r"2\sqrt{3}", 1.0, "the option's LaTeX value"),
    RewardCase(_ROOTS, _gold("B"), r"\sqrt{12}", 1.0, "equal to the option's value"),
    RewardCase(_ROOTS, _gold("B"), "2", 0.0, "leading number of the value"),
    RewardCase(_ROOTS, _gold("B"), "12", 0.0, "another option, inside the root"),
    RewardCase(_ROOTS, _gold("B"), r"B. \sqrt{12}", 1.0, "letter and an equal value"),
    # Options inline, with colons or in parentheses.
    RewardCase(_INLINE, _gold("B"), "B: 10", 1.0, "inline options: letter and value"),
    RewardCase(_INLINE, _gold("B"), "10", 1.0, "inline options: the value"),
    RewardCase(_INLINE, _gold("B"), "15", 0.0, "inline options: another value"),
    RewardCase(_PARENS, _gold("A"), r"6\pi", 1.0, "parenthesised options: the value"),
    RewardCase(_PARENS, _gold("A"), "6", 0.0, "parenthesised options: pi dropped"),
    RewardCase(_PARENS, _gold("A"), "(A) or (C)", 0.0, "parenthesised options: two letters"),
    # No options listed: letters compare as text.
    RewardCase(_PLAIN, _gold("B"), "(B)", 1.0, "no options: letter in parentheses"),
    RewardCase(_PLAIN, _gold("B"), "A", 0.0, "no options: another letter"),
)
