r"""The two GRPO rewards, usable as they are in TRL's `GRPOTrainer(reward_funcs=[...])`.

- `format_reward`: 1.0 when a completion is exactly one non-empty `<think>` block followed by
  one non-empty `<answer>` block (the shape `vlmgrpo.prompts.SYSTEM_PROMPT` asks for), else 0.0.
- `accuracy_reward`: 1.0 when the `<answer>` block is right, else 0.0; None when there is no
  gold to compare.

What counts as right (`vlmgrpo.reward_cases.REWARD_CASES` shows each rule on an example):

- An answer may start with "The answer is", "Answer:" or "Option", sit in `$…$`, `**…**` or
  `\boxed{}`, and end with a period; all of that is dropped. An answer that holds exactly
  one `\boxed{…}` is graded by what is boxed, whatever words surround it (`So the area is
  $\boxed{12}$ square units.` is 12), as instruction-tuned models write; two boxes are no
  answer (`\boxed{2}` or `\boxed{3}` is compared whole, and is wrong).
- A whole number written in words (`forty-two`, `one hundred and five`) is that number, on
  either side: a gold "forty two" accepts `42`. TRL's `accuracy_reward` gives None there
  (math-verify cannot parse such a gold), and TRL's trainer then scores the completion by its
  other rewards alone: a right answer would earn no more than a wrong one.
- Text compares case-insensitively with whitespace collapsed: `Paris` = `paris`, `(B)` = `B`.
- Maths compares through math-verify, always parsed as LaTeX (math-verify reads a bare
  `2\sqrt{3}` as text and keeps only its leading 2): `\sqrt{12}` = `2\sqrt{3}`, `1+x^2` =
  `x^2+1`, `0.5` = `\frac{1}{2}`, while `2` ≠ `2\sqrt{3}`, `6` ≠ `6\pi`, `-3` ≠ `3`. Degree
  signs (`°`, `^\circ`, "degrees") and a trailing length or area unit (`12 cm`, `5 m^2`,
  "square units") are dropped first, so `60` = `60°` and `12` = `12 cm`; `AB = 5` and
  `\angle ABC = 60°` compare their right-hand side. An answer with words left in it
  (`2 or 3`) is compared as text only.
- Multiple choice: when the `problem` lists options (see `parse_choices`) and the gold names
  one of them, the gold letter in any usual spelling (`B`, `(B)`, `B.`, `B)`, `Option B`,
  `B. 60°`, `60° (B)`) or the gold option's value itself (`60°`, or anything equal to it) is
  right. Two letters (`A, B`, `A and C`), another option's letter or value, and a letter with
  a value that is not its option's (`A. 12` when A is 30°) are wrong. A gold written as a
  value names the one option equal to it. Without a problem, or when it lists no options,
  letters are compared as text.

TRL passes every dataset column as a keyword argument, hence `problem=` and the `**kwargs`.
"""

from __future__ import annotations

import functools
import re
import threading

from math_verify import parse, verify
from math_verify.errors import TimeoutException

_TAGS = ("<think>", "</think>", "<answer>", "</answer>")
# The tag counts are checked first, so each lazy group has one place to stop: linear time.
_SHAPE = re.compile(r"<think>(.*?)</think>\s*<answer>(.*?)</answer>", re.DOTALL)
_ANSWER = re.compile(r"<answer>(.*)</answer>", re.DOTALL)
_LONE_OPTION = re.compile(r"\((\w)\)")

# Sympy's cost grows with the input; past these sizes an answer is compared as text only.
_MAX_MATH_CHARS = 1000
_MAX_MATH_BRACES = 200
_TIMEOUT_S = 1
# Off the main thread math-verify has no timeout (it relies on SIGALRM), and short answers such
# as `$99999999!$`, `$\binom{99999999}{9}$` or `$9^{9^{9}}$` keep sympy busy unboundedly; so there
# only plain arithmetic (numbers, + - * / =, fractions, roots, pi, one-letter variables) is
# parsed. A power may only be one digit on a digit or a letter (`x^2`, `5^{3}`), so neither a
# tower (`9^9^9`) nor a power of a group (`(9^9)^9`) can be written.
_PLAIN_MATH = re.compile(
    r"(?:\\(?:[dt]?frac|boxed|sqrt|pi|cdot|times|left|right)(?![A-Za-z])"
    r"|(?<=[\dA-Za-z])\^(?:\d|\{\d\})(?![\d^{])"
    r"|(?<![A-Za-z])[A-Za-z](?![A-Za-z])|\*(?!\*)|[\d\s.,+\-/=()\[\]{}$%])*"
)
# Parsing time grows exponentially with bracket depth (`{{{{{{{{{{{{{{{x}}}}}}}}}}}}}}}` takes
# seconds); `\left(\frac{\sqrt{3}}{2}\right)` is 3 deep.
_PLAIN_DEPTH = 4

# Wrappers and lead-ins around an answer that carry no meaning.
_WRAPPER = re.compile(r"\\(?:boxed|text|textbf|mathrm|mathbf)\s*\{(.*)\}", re.DOTALL)
_LEAD_IN = re.compile(
    r"(?:(?:the\s+)?(?:(?:final|correct)\s+)?(?:answer|option|choice)\b(?:\s+is\b)?\s*[:：]?\s*)?"
    r"(?:(?:option|choice)\b\s*)?",
    re.IGNORECASE,
)
_UNICODE_MATH = str.maketrans({"−": "-", "π": r"\pi ", "×": r"\times ", "·": r"\cdot "})
_UNICODE_ROOT = re.compile(r"√\s*(\d+(?:\.\d+)?|[A-Za-z])")
# `\sqrt(3)` is no LaTeX root: math-verify reads `2\sqrt(3)` as 2. Written out, `sqrt` and `pi`.
_ROOT_CALL = re.compile(r"(?:\\sqrt|√|(?<![\\A-Za-z])sqrt)\s*\(([^()]*)\)")
_PI_WORD = re.compile(r"(?<![\\A-Za-z])pi(?![A-Za-z])")
_ROOT_LEFT = re.compile(r"\\sqrt\s*\(")
_DEGREES = re.compile(
    r"\^\s*\{\s*\\circ\s*\}|\^\s*\\circ\b|\\circ\b|\\degree\b|°|\s*\bdeg(?:rees?)?\b\.?",
    re.IGNORECASE,
)
# A length, area or volume unit at the end, after a number, a brace or a parenthesis.
_UNIT = re.compile(
    r"(?<=[\d}).\s])\s*(?:\\[,;: !]|~)*\s*(?:\\(?:text|mathrm|mbox)\s*\{\s*)?"
    r"(?:(?:square|sq\.?|cubic)\s+)?"
    r"(?:[mck]?m|dm|in(?:ch(?:es)?)?|ft|feet|foot|yd|yards?|units?"
    r"|(?:centi|milli|kilo)?met(?:er|re)s?)"
    r"\s*\}?\s*(?:\^\s*\{?\s*[23]\s*\}?|[²³])?\s*\}?\s*$",
    re.IGNORECASE,
)
# A left-hand side naming what the value is (`AB =`, `\angle ABC =`, `∠1 =`); a one-letter
# variable stays, since `x = 3` is an equation math-verify reads.
_NAMED_LHS = re.compile(
    r"(?:(?:m\s*)?(?:\\angle|∠)\s*(?:[A-Za-z]{1,3}|\d)|[A-Za-z]{2,4})\s*=(?!.*=)"
)
_COMMAND = re.compile(r"\\[A-Za-z]+")
_BOXED = re.compile(r"\\boxed\s*\{")
_UNITS = "zero one two three four five six seven eight nine ten eleven twelve thirteen"
_UNITS += " fourteen fifteen sixteen seventeen eighteen nineteen"
_NUMBER_WORDS = {word: value for value, word in enumerate(_UNITS.split())}
_TENS = "twenty thirty forty fifty sixty seventy eighty ninety".split()
_NUMBER_WORDS |= {word: 10 * value for value, word in enumerate(_TENS, start=2)}
_SCALES = {"hundred": 100, "thousand": 1000, "million": 10**6}
_WORD = re.compile(r"[^\W\d_]{2,}")

# An option label in a problem: `A.`, `A:`, `A)` or `(A)`, at the start, after whitespace or
# after a `:`, `;` or `,` (so the `E:` of `AE:EC` is none).
_OPTION_MARK = re.compile(r"(?<![^\s:;,])(?:\(([A-Z])\)|([A-Z])([.:：)]))")
_OPTIONS_HEADER = re.compile(r"\b(?:answer\s+)?(?:choices|options)\s*[:：]", re.IGNORECASE)
# How an answer names an option: a label then maybe its value, or a value then `(B)`.
_LABEL_FIRST = re.compile(r"\(([A-Za-z])\)|([A-Za-z])(?:[.:：)]|(?=\s)|$)")
_LABEL_LAST = re.compile(r"(.*?\S)\s*\(([A-Z])\)", re.DOTALL)


def completion_text(completion: str | list[dict]) -> str:
    """The text of a completion, given as a string or as TRL's `[{"role", "content"}]` list."""
    if isinstance(completion, str):
        return completion
    content = completion[-1]["content"] if completion else ""
    if isinstance(content, list):  # multimodal messages split content into typed parts
        return "".join(part.get("text", "") for part in content)
    return content


def format_reward(completions: list, **kwargs) -> list[float]:
    """1.0 per completion shaped exactly `<think>…</think><answer>…</answer>`, else 0.0.

    Whitespace is allowed inside and between the blocks, nothing before or after them, and no
    tag may repeat or nest. Both blocks must hold non-whitespace text (reward hacking: an empty
    think earns nothing).
    """
    rewards = []
    for completion in completions:
        text = completion_text(completion).strip()
        match = None
        if all(text.count(tag) == 1 for tag in _TAGS):
            match = _SHAPE.fullmatch(text)
        ok = match is not None and match[1].strip() != "" and match[2].strip() != ""
        rewards.append(1.0 if ok else 0.0)
    return rewards


def extract_answer(text: str) -> str | None:
    """The stripped content of the one `<answer>` block after any reasoning, else None.

    None when there are zero or several answer tags, or when the block could belong to a
    `<think>` (it must follow the last `</think>`, with no `<think>` opened after it).
    """
    if text.count("<answer>") != 1 or text.count("</answer>") != 1:
        return None
    tail = text.rpartition("</think>")[2]
    match = None if "<think>" in tail else _ANSWER.search(tail)
    return match[1].strip() if match else None


def gold_answer(solution: str) -> str:
    """The gold's own `<answer>` content when it has one, else the whole solution stripped."""
    answer = extract_answer(solution)
    return solution.strip() if answer is None else answer


def _balanced(text: str) -> bool:
    depth = 0
    for char in text:
        depth += (char == "{") - (char == "}")
        if depth < 0:
            return False
    return depth == 0


def boxed_content(text: str) -> str | None:
    """What the one `\\boxed{…}` in `text` holds, stripped; None for no box, or several."""
    boxes = list(_BOXED.finditer(text))
    if len(boxes) != 1:
        return None
    depth, start = 1, boxes[0].end()
    for i in range(start, len(text)):
        depth += (text[i] == "{") - (text[i] == "}")
        if depth == 0:
            return text[start:i].strip()
    return None  # never closed


def number_from_words(text: str) -> int | None:
    """A whole number written in words (`forty-two`, `one hundred and five`), else None."""
    words = text.lower().replace("-", " ").split()
    if not words or not any(w in _NUMBER_WORDS or w in _SCALES for w in words):
        return None
    total = current = 0
    for i, word in enumerate(words):
        if word in _NUMBER_WORDS:
            current += _NUMBER_WORDS[word]
        elif word in _SCALES and i > 0:
            scale = _SCALES[word]
            if scale == 100:
                current *= 100
            else:
                total, current = total + current * scale, 0
        elif word != "and" or i == 0:
            return None
    return total + current


def _depth(text: str) -> int:
    depth = deepest = 0
    for char in text:
        depth += (char in "([{") - (char in ")]}")
        deepest = max(deepest, depth)
    return deepest


def _clean(text: str) -> str:
    """The answer without wrappers, lead-ins and a final period: `**Answer: $\\boxed{B}$.**`→B.

    A whole number left in words comes out in digits: `The answer is forty-two.`→42.
    """
    for _ in range(4):  # wrappers nest a few levels at most: `**$\boxed{B}$**`
        before = text
        text = text.strip().removeprefix("**").removesuffix("**").strip().strip("$").strip()
        wrapped = _WRAPPER.fullmatch(text)
        if wrapped and _balanced(wrapped[1]):
            text = wrapped[1].strip()
        text = text[_LEAD_IN.match(text).end() :].removesuffix(".").strip()
        if text == before:
            break
    number = number_from_words(text) if len(text) < 100 else None
    return text if number is None else str(number)


def _normalise(text: str) -> str:
    text = " ".join(_clean(text).lower().split())
    option = _LONE_OPTION.fullmatch(text)  # "(B)" is how multiple-choice options are written
    return option[1] if option else text


def _latex_form(text: str) -> str | None:
    """The answer as a LaTeX expression for math-verify, or None when words are left in it."""
    text = _ROOT_CALL.sub(r"\\sqrt{\1}", _clean(text).translate(_UNICODE_MATH))
    text = _UNICODE_ROOT.sub(r"\\sqrt{\1}", _PI_WORD.sub(r"\\pi ", text)).replace("√", "\\sqrt")
    text = _UNIT.sub("", _DEGREES.sub("", text)).strip()
    if _ROOT_LEFT.search(text):  # a root of nested parentheses: not read reliably
        return None
    named = _NAMED_LHS.match(text)
    text = text[named.end() :].strip() if named else text
    if not text or _WORD.search(_COMMAND.sub(" ", text)):
        return None
    return text


@functools.lru_cache(maxsize=1024)
def _parse_latex(latex: str, timeout: int | None) -> tuple:
    # A GRPO group holds the same answers many times; the cache also pays a timeout only once.
    return tuple(parse(f"${latex}$", parsing_timeout=timeout, fallback_mode="no_fallback"))


def _parsed(text: str) -> tuple:
    """What math-verify makes of an answer, () when it is not (safely) maths."""
    if len(text) > _MAX_MATH_CHARS:  # before any regex: some take quadratic time on long text
        return ()
    latex = _latex_form(text)
    if latex is None or latex.count("{") > _MAX_MATH_BRACES:
        return ()
    on_main = threading.current_thread() is threading.main_thread()
    if not on_main and (_PLAIN_MATH.fullmatch(latex) is None or _depth(latex) > _PLAIN_DEPTH):
        return ()
    try:
        return _parse_latex(latex, _TIMEOUT_S if on_main else None)  # signals need the main
    except (Exception, TimeoutException):  # noqa: BLE001
        return ()  # math-verify swallows most errors itself; what escapes means "not maths"


def _math_match(pred: str, gold: str) -> bool:
    gold_parsed = _parsed(gold)
    pred_parsed = _parsed(pred) if gold_parsed else ()
    if not pred_parsed:  # two words never match as maths
        return False
    timeout = _TIMEOUT_S if threading.current_thread() is threading.main_thread() else None
    try:
        return verify(list(gold_parsed), list(pred_parsed), timeout_seconds=timeout)
    except (Exception, TimeoutException):  # noqa: BLE001
        return False  # what escapes math-verify means "not equal" for this item


def answers_match(pred: str, gold: str) -> bool:
    """Whether a predicted answer equals the gold, as normalised text or mathematically.

    Text is compared case-insensitively with whitespace collapsed, wrappers (`$`, `**`,
    `\\boxed{}`), a lead-in ("The answer is") and a final period dropped, and a lone
    parenthesised option unwrapped: `(B)` matches `b`. Maths is parsed as LaTeX, without
    degree signs or a trailing unit: `\\sqrt{12}` matches `2\\sqrt{3}`, `60` matches `60°`.
    A number in words is its digits: `forty-two` matches `42`.
    """
    normalised = _normalise(pred)
    return normalised != "" and (normalised == _normalise(gold) or _math_match(pred, gold))


def parse_choices(problem: str | None) -> dict[str, str]:
    """The options a problem lists, as {letter: value}; {} when it lists none.

    Options are labelled `A.`, `A:`, `A)` or `(A)`, one per line or inline (`Choices: A: 5
    B: 10`, `(A) 5 (B) 10`). They must run A, B, C… with one label style; after a "Choices:"
    or "Options:" header when the problem has one, else the last such run wins. A value ends
    at the next label or at the end of its line.
    """
    if not problem:
        return {}
    headers = list(_OPTIONS_HEADER.finditer(problem))
    if headers:
        choices = _options_in(problem[headers[-1].end() :])
        if choices:
            return choices
    return _options_in(problem)


def _options_in(text: str) -> dict[str, str]:
    marks = [(m, m[1] or m[2], m[3] or "()") for m in _OPTION_MARK.finditer(text)]
    run: list = []
    for i, (mark, letter, style) in enumerate(marks):
        if letter != "A":
            continue
        chain = [mark]
        for later, later_letter, later_style in marks[i + 1 :]:
            if later_style == style and ord(later_letter) == ord("A") + len(chain):
                chain.append(later)
        if len(chain) >= 2:
            run = chain  # the last run wins: an "A." in the question comes before the options
    if not run:
        return {}
    ends = [mark.start() for mark in run[1:]] + [len(text)]
    choices = {}
    for mark, end in zip(run, ends, strict=True):
        value = text[mark.end() : end].strip().split("\n", 1)[0].strip().rstrip(",;").strip()
        choices[mark[1] or mark[2]] = value.removesuffix(".").strip()
    return choices


def _named_option(answer: str, choices: dict[str, str]) -> tuple[str | None, str]:
    """(letter, value) when an answer starts or ends with an option label, else (None, text)."""
    text = _clean(answer)
    if len(text) > _MAX_MATH_CHARS:
        return None, text
    first = _LABEL_FIRST.match(text)
    if first:
        letter, rest = first[1] or first[2], text[first.end() :].lstrip(" .:：)").strip()
        if letter.upper() in choices and (letter.isupper() or not rest):
            return letter.upper(), rest
    last = _LABEL_LAST.fullmatch(text)
    if last and last[2] in choices:
        return last[2], last[1]
    return None, text


def _gold_option(gold: str, choices: dict[str, str]) -> str | None:
    """The option a gold names: its letter, or the one option whose value equals it."""
    if not choices:
        return None
    letter, value = _named_option(gold, choices)
    if letter is not None:
        return letter if not value or answers_match(value, choices[letter]) else None
    equal = [key for key, option in choices.items() if answers_match(value, option)]
    return equal[0] if len(equal) == 1 else None


def _choice_is_right(pred: str, letter: str, choices: dict[str, str]) -> bool:
    named, value = _named_option(pred, choices)
    if named is None:  # a value alone: it must be the gold option's
        return answers_match(value, choices[letter])
    return named == letter and (not value or answers_match(value, choices[letter]))


def _graded_part(answer: str) -> str:
    """What an answer is graded by: the content of its one `\\boxed{}`, else all of it."""
    boxed = boxed_content(answer) if len(answer) <= _MAX_MATH_CHARS * 10 else None
    return answer if boxed is None else boxed


def accuracy_reward(
    completions: list, solution: list[str], problem: list[str] | None = None, **kwargs
) -> list[float | None]:
    """1.0 per completion whose `<answer>` is right, else 0.0; None for an empty gold.

    `problem` (TRL passes the dataset column) lets a multiple-choice gold letter accept the
    option's value too; without it, answers are compared with the gold as they are.
    """
    problems = [None] * len(solution) if problem is None else problem
    options: dict[tuple[str, str | None], tuple[str | None, dict[str, str]]] = {}
    rewards: list[float | None] = []
    for completion, sol, prob in zip(completions, solution, problems, strict=True):
        gold = _graded_part(gold_answer(sol))
        if not gold:
            rewards.append(None)
            continue
        prob = prob if isinstance(prob, str) else None
        if (gold, prob) not in options:  # a GRPO group shares its problem and gold
            choices = parse_choices(prob)
            options[gold, prob] = (_gold_option(gold, choices), choices)
        letter, choices = options[gold, prob]
        pred = extract_answer(completion_text(completion))
        pred = None if pred is None else _graded_part(pred)
        if pred is None:
            right = False
        elif letter is None:
            right = answers_match(pred, gold)
        else:
            right = _choice_is_right(pred, letter, choices)
        rewards.append(1.0 if right else 0.0)
    return rewards
