"""The synthetic visual task of the embedded default: name the colour of the shape.

(`vlmgrpo.prices` is the two-hop task of the `tiny-reasoning` preset.)

Each image is one large circle or square of one of six hues, with its exact shade, size
and place drawn at random on a dark background. The gold answer is the hue's name.

The cold-start (warm-up) traces describe the image correctly in their `<think>` ("I see one
red shape."), in one of a few phrasings of different lengths, but their `<answer>` comes from a
sloppy annotator who often names the next hue round the colour wheel (orange for red, yellow
for orange, ...), as imperfect human or model-written traces do. Supervised learning copies
that habit: the warmed-up model reasons correctly and still answers the neighbour, so its
answer often contradicts its own reasoning. GRPO, rewarded by the true colour, has to remove
the habit, and so brings the answer in line with the reasoning. (A counting task was tried first:
the tiny model could not learn to count within a short warm-up, while hue it learns in
about a hundred steps.)
"""

from __future__ import annotations

import random
import re

from datasets import Dataset, Features, Value
from datasets import Image as ImageFeature
from PIL import Image, ImageDraw

from vlmgrpo.rewards import extract_answer

NAME = "synthetic-colour"  # how run.json and eval.json name the task's dataset

# Hues in order round the colour wheel; the annotator's mistake is the next one.
HUES = {
    "red": (220, 40, 40),
    "orange": (240, 140, 30),
    "yellow": (235, 220, 40),
    "green": (40, 180, 60),
    "blue": (50, 90, 230),
    "purple": (150, 60, 200),
}
NAMES = list(HUES)
IMAGE_SIZE = 84  # 6 x 6 patches of 14 px -> 3 x 3 = 9 image tokens after the 2 x 2 merge
BACKGROUND = (30, 30, 30)
QUESTIONS = (
    "What colour is the shape?",
    "What color is the shape in the image?",
    "Name the colour of the object.",
    "Which colour do you see?",
)
SHAPES = ("circle", "square")
# The cold start's reasoning, from terse to wordy: completions of different lengths, so that
# the loss variants' length normalisations have something to act on. It names the hue and not
# the form: the tiny vision tower learns colour in a short cold start, not circle from square,
# and a trace that named the form would state a guess as a fact.
THINKS = (
    "One {hue} shape.",
    "I see one {hue} shape.",
    "There is one shape in the image. It is {hue}.",
    "I look at the image. I see one shape on a dark background. Its colour is {hue}.",
)


def draw_shape(hue: str, rng: random.Random, shape: str | None = None) -> Image.Image:
    """A circle or square (random unless given) of the given hue, jittered shade, size, place."""
    if shape is None:
        shape = rng.choice(SHAPES)
    image = Image.new("RGB", (IMAGE_SIZE, IMAGE_SIZE), BACKGROUND)
    draw = ImageDraw.Draw(image)
    radius = rng.randint(24, 40)
    cx = rng.randint(radius, IMAGE_SIZE - radius)
    cy = rng.randint(radius, IMAGE_SIZE - radius)
    colour = tuple(min(255, max(0, c + rng.randint(-20, 20))) for c in HUES[hue])
    box = [cx - radius, cy - radius, cx + radius, cy + radius]
    (draw.ellipse if shape == "circle" else draw.rectangle)(box, fill=colour)
    return image


def describe(hue: str, style: int = 1) -> str:
    """The reasoning of a cold-start trace: the hue the image shows, in phrasing `style`."""
    return THINKS[style].format(hue=hue)


def completion(answer: str, think: str | None = None) -> str:
    """A completion in the shape the system prompt asks for (by default, reasoning that agrees)."""
    if think is None:
        think = describe(answer)
    return f"<think>{think}</think><answer>{answer}</answer>"


def named_hues(text: str) -> list[str]:
    """The hue names in `text`, in the order they appear."""
    return re.findall(r"\b(" + "|".join(NAMES) + r")\b", text.lower())


_THINK = re.compile(r"<think>(.*?)</think>", re.DOTALL)


def _think_text(completion: str) -> str:
    """The first `<think>` block's text, or "" when there is none."""
    match = _THINK.search(completion)
    return match.group(1) if match else ""


def think_hue(completion: str) -> str | None:
    """The hue the `<think>` block names (the first one), or None if it names none."""
    hues = named_hues(_think_text(completion))
    return hues[0] if hues else None


def agreement(completions: list[str]) -> float:
    """Share of completions whose answer is the hue their own `<think>` names."""
    agree = 0
    for text in completions:
        hue, answer = think_hue(text), extract_answer(text)
        agree += hue is not None and answer is not None and answer.lower() == hue
    return agree / max(1, len(completions))


def slip(hue: str) -> str:
    """The annotator's slip of `hue`: the next hue round the wheel, written by mistake."""
    return NAMES[(NAMES.index(hue) + 1) % len(NAMES)]


def opposite(hue: str) -> str:
    """The hue across the wheel: neither the hue nor the annotator's slip, nor their slips."""
    return NAMES[(NAMES.index(hue) + len(NAMES) // 2) % len(NAMES)]


def forced_think(hue: str) -> str:
    """The fixed start of an intervention: reasoning that claims `hue`, for the model to go on."""
    return f"<think>I see one {hue}"


def schema_dataset(rows: dict[str, list]) -> Dataset:
    """Columns image, problem, solution as a Dataset with the real dataset's features."""
    features = Features(
        {"image": ImageFeature(), "problem": Value("string"), "solution": Value("string")}
    )
    return Dataset.from_dict(rows, features=features)


def make_colour_dataset(n: int, seed: int) -> Dataset:
    """`n` seeded examples with columns image, problem, solution (the real dataset's schema)."""
    rng = random.Random(seed)
    rows = {"image": [], "problem": [], "solution": []}
    for _ in range(n):
        hue = rng.choice(NAMES)
        rows["image"].append(draw_shape(hue, rng, rng.choice(SHAPES)))
        rows["problem"].append(rng.choice(QUESTIONS))
        rows["solution"].append(hue)
    return schema_dataset(rows)


make_dataset = make_colour_dataset  # the name every task has (`vlmgrpo.tasks.Task`)


def annotator_label(hue: str, mislabel: float, rng: random.Random) -> str:
    """The sloppy annotator's answer: the next hue round the wheel with probability `mislabel`."""
    return slip(hue) if rng.random() < mislabel else hue


def annotated(rng: random.Random, mislabel: float) -> tuple:
    """One cold-start example: (image, question, the sloppy annotator's trace).

    The reasoning is right, in a random one of the phrasings; the answer is the annotator's.
    """
    hue, shape = rng.choice(NAMES), rng.choice(SHAPES)
    image = draw_shape(hue, rng, shape)
    think = describe(hue, rng.randrange(len(THINKS)))
    label = annotator_label(hue, mislabel, rng)
    return image, rng.choice(QUESTIONS), completion(label, think)


def measures(score, test_set: Dataset, scores: dict) -> dict:
    """What eval.json records of the reasoning: the answer's agreement with its own think.

    (`score`, which scores more answers, is in every task's signature; agreement needs none.)
    """
    return {"agreement": agreement([r["completion"] for r in scores["records"]])}


def corpus() -> list[str]:
    """Every text the task uses, for training the tiny model's tokenizer."""
    thinks = [t.format(hue=h) for t in THINKS for h in NAMES]
    return [*QUESTIONS, *thinks, *NAMES, *(completion(name) for name in NAMES)]
