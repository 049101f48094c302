"""The two-hop synthetic task of the `tiny-reasoning` preset: see the colour, look up its price.

Each question carries a price list that changes every time: the six hues in a shuffled order,
each with its own price from 1 to 9 ("Prices: blue 4, red 7, green 1, ..."). The image is one
shape of one hue, drawn as in the colour task (`vlmgrpo.colours`). The gold answer is the
price the list gives the shape's hue. Two hops, each easy for a small transformer: read the
hue from the image; find that hue in the list and copy the number after it.

The cold start's traces write both hops out and the answer repeats the number they end on::

    <think>I look up the shape's colour in the list: red 7.</think><answer> 7</answer>

Their sloppy annotator slips in the first hop: most of the time it takes the shape for the next
hue round the colour wheel (orange for red) and then looks *that* hue up, correctly. So the
warmed-up model's reasoning is often wrong, and its answer follows its reasoning: the right
price is only reachable through a right think. A reward on the answer alone has to repair the
reasoning. Notebook 06 measures that it does, and that the answer depends on the think: with
the think forced empty the answer is lost, and a think planted with another hue carries the
answer with it.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable

from datasets import Dataset

from vlmgrpo import colours
from vlmgrpo.rewards import extract_answer

NAME = "synthetic-prices"  # how run.json and eval.json name the task's dataset
PRICES = range(1, 10)
QUESTIONS = ("What does the shape cost?", "How much is the shape?")
# A think forced empty: the answer must then come without written reasoning.
NO_THINK = "<think></think>"
_ENTRY = re.compile(r"\b(" + "|".join(colours.NAMES) + r") (\d)\b")
_THINK = re.compile(r"<think>(.*?)</think>", re.DOTALL)


def make_table(rng: random.Random) -> dict[str, int]:
    """A price list: every hue once, in a shuffled order, each with a different price."""
    hues = rng.sample(colours.NAMES, len(colours.NAMES))
    return dict(zip(hues, rng.sample(PRICES, len(hues)), strict=True))


def problem(table: dict[str, int], question: str = QUESTIONS[0]) -> str:
    """The question with its price list first: "Prices: blue 4, red 7, ... What ...?"."""
    entries = ", ".join(f"{hue} {price}" for hue, price in table.items())
    return f"Prices: {entries}. {question}"


def read_table(text: str) -> dict[str, int]:
    """The price list a problem carries (hue -> price), in its order."""
    return {hue: int(price) for hue, price in _ENTRY.findall(text)}


def think(hue: str, price: int) -> str:
    """The reasoning of a cold-start trace: the hue it sees, and that hue's listed price."""
    return f"I look up the shape's colour in the list: {hue} {price}."


def completion(hue: str, price: int) -> str:
    """A trace in the system prompt's format; the answer repeats the think's number."""
    return f"<think>{think(hue, price)}</think><answer> {price}</answer>"


def read_think(text: str) -> tuple[str, int] | None:
    """The (hue, price) the first `<think>` block ends on, or None if it names no entry."""
    match = _THINK.search(text)
    entries = _ENTRY.findall(match.group(1)) if match else []
    return (entries[-1][0], int(entries[-1][1])) if entries else None


def gold_hue(problem_text: str, solution: str) -> str:
    """The hue whose listed price is the gold answer (prices in a list are all different)."""
    return next(hue for hue, price in read_table(problem_text).items() if str(price) == solution)


def think_right(completions: list[str], problems: list[str], solutions: list[str]) -> float:
    """Share of completions whose think ends on the shape's hue and the price listed for it."""
    right = sum(
        read_think(text) == (gold_hue(prob, sol), int(sol))
        for text, prob, sol in zip(completions, problems, solutions, strict=True)
    )
    return right / max(1, len(completions))


def think_offset(text: str, problem_text: str, solution: str) -> int | str:
    """Where the think's hue sits round the colour wheel from the shape's: 0 is right, 1 the
    annotator's slip (the next hue); "none" when the think names no entry of the list."""
    found = read_think(text)
    if found is None:
        return "none"
    gold = gold_hue(problem_text, solution)
    return (colours.NAMES.index(found[0]) - colours.NAMES.index(gold)) % len(colours.NAMES)


def lookup_right(text: str, problem_text: str) -> bool:
    """Whether the think's price is the one the list gives the think's own hue (hop 2)."""
    found = read_think(text)
    return found is not None and read_table(problem_text).get(found[0]) == found[1]


def repeats_think(text: str) -> bool:
    """Whether the answer is the price the think ends on."""
    found = read_think(text)
    return found is not None and extract_answer(text) == str(found[1])


def planted(problems: list[str], solutions: list[str]) -> tuple[list[str], list[str]]:
    """Per question, a whole think claiming the hue across the wheel, with its listed price.

    Returns the thinks (for the model to answer after) and the planted prices: an answer
    that gives its planted price followed the think rather than the image.
    """
    thinks, targets = [], []
    for prob, sol in zip(problems, solutions, strict=True):
        table = read_table(prob)
        hue = colours.opposite(gold_hue(prob, sol))
        thinks.append(f"<think>{think(hue, table[hue])}</think>")
        targets.append(str(table[hue]))
    return thinks, targets


# What a think that lies twice (`lying`) can make the answer give, in the order of the readings.
READINGS = ("the think's number", "the think's hue, looked up", "the image's hue, looked up")


def lying(problems: list[str], solutions: list[str]) -> tuple[list[str], dict[str, list[str]]]:
    """Per question, a think that names the hue across the wheel with a third hue's price.

    The think's hue is neither the shape's nor the annotator's slip; its number is the price
    of the hue two steps round from the shape's, so it matches neither the think's hue nor the
    shape's. Prices in a list all differ, so the three numbers an answer could give tell
    apart the three ways of answering (`READINGS`): copy the think's number, look the think's
    hue up in the list again, or look up the hue the image shows (the right answer).

    Returns the thinks and, per reading, the number it predicts for each question.
    """
    thinks, targets = [], {name: [] for name in READINGS}
    names = colours.NAMES
    for prob, sol in zip(problems, solutions, strict=True):
        table = read_table(prob)
        gold = gold_hue(prob, sol)
        hue = colours.opposite(gold)
        third = names[(names.index(gold) + 2) % len(names)]
        thinks.append(f"<think>{think(hue, table[third])}</think>")
        for name, number in zip(READINGS, (table[third], table[hue], table[gold]), strict=True):
            targets[name].append(str(number))
    return thinks, targets


def annotated(rng: random.Random, mislabel: float) -> tuple:
    """One cold-start example: (image, problem, the sloppy annotator's trace)."""
    hue = rng.choice(colours.NAMES)
    image = colours.draw_shape(hue, rng)
    table = make_table(rng)
    seen = colours.annotator_label(hue, mislabel, rng)  # the slip: the next hue, sometimes
    return image, problem(table, rng.choice(QUESTIONS)), completion(seen, table[seen])


def make_dataset(n: int, seed: int) -> Dataset:
    """`n` seeded questions with columns image, problem, solution (the real dataset's schema)."""
    rng = random.Random(seed)
    rows = {"image": [], "problem": [], "solution": []}
    for _ in range(n):
        hue = rng.choice(colours.NAMES)
        table = make_table(rng)
        rows["image"].append(colours.draw_shape(hue, rng))
        rows["problem"].append(problem(table, rng.choice(QUESTIONS)))
        rows["solution"].append(str(table[hue]))
    return colours.schema_dataset(rows)


def corpus() -> list[str]:
    """Text in the task's forms, for training the tiny model's tokenizer."""
    rng = random.Random(0)
    texts = list(QUESTIONS)
    for _ in range(100):
        table = make_table(rng)
        hue = rng.choice(colours.NAMES)
        texts += [problem(table, rng.choice(QUESTIONS)), completion(hue, table[hue])]
    return texts


def measures(score: Callable, test_set: Dataset, scores: dict) -> dict:
    """What eval.json records of the reasoning, from a model's greedy answers on `test_set`.

    `score(prefixes, targets, desc)` scores greedy answers on `test_set` that continue the
    given starts, against `targets` (None: the solutions); `scores` are the plain ones.
    * ``think_right``: the think ends on the right hue and its listed price;
    * ``follow``: with a think planted for another hue, the answer gives that hue's price;
    * ``accuracy_no_think``: the answer's accuracy with the think forced empty.
    """
    problems, solutions = test_set["problem"], test_set["solution"]
    texts = [r["completion"] for r in scores["records"]]
    thinks, prices = planted(problems, solutions)
    return {
        "think_right": think_right(texts, problems, solutions),
        "follow": score(thinks, prices, "planted think")["accuracy"],
        "accuracy_no_think": score([NO_THINK] * len(texts), None, "no think")["accuracy"],
    }
