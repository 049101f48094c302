"""The synthetic visual task of the embedded default: name the colour of the shape.

Each image is one large circle or square of one of six hues, with its exact shade, size
and place drawn at random on a dark background. The gold answer is the hue's name.

The cold-start (warm-up) answers imitate a sloppy annotator who often names the next hue
round the colour wheel (orange for red, yellow for orange, ...), as imperfect human or
model-written traces do. Supervised learning copies that habit: the warmed-up model still
samples the right colour often, but its greedy answer is usually the neighbour. GRPO,
rewarded by the true colour, has to remove the habit. (A counting task was tried first:
the tiny model could not learn to count within a short warm-up, while hue it learns in
about a hundred steps.)
"""

from __future__ import annotations

import random

from datasets import Dataset, Features, Value
from datasets import Image as ImageFeature
from PIL import Image, ImageDraw

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
THINK = "I look at the shape and name its colour."


def draw_shape(hue: str, rng: random.Random) -> Image.Image:
    """A circle or square of the given hue, with jittered shade, size and position."""
    image = Image.new("RGB", (IMAGE_SIZE, IMAGE_SIZE), BACKGROUND)
    draw = ImageDraw.Draw(image)
    radius = rng.randint(24, 40)
    cx = rng.randint(radius, IMAGE_SIZE - radius)
    cy = rng.randint(radius, IMAGE_SIZE - radius)
    colour = tuple(min(255, max(0, c + rng.randint(-20, 20))) for c in HUES[hue])
    box = [cx - radius, cy - radius, cx + radius, cy + radius]
    (draw.ellipse if rng.random() < 0.5 else draw.rectangle)(box, fill=colour)
    return image


def completion(answer: str, think: str = THINK) -> str:
    """A completion in the shape the system prompt asks for."""
    return f"<think>{think}</think><answer>{answer}</answer>"


def make_colour_dataset(n: int, seed: int) -> Dataset:
    """`n` seeded examples with columns image, problem, solution (the real dataset's schema)."""
    rng = random.Random(seed)
    rows = {"image": [], "problem": [], "solution": []}
    for _ in range(n):
        hue = rng.choice(NAMES)
        rows["image"].append(draw_shape(hue, rng))
        rows["problem"].append(rng.choice(QUESTIONS))
        rows["solution"].append(hue)
    features = Features(
        {"image": ImageFeature(), "problem": Value("string"), "solution": Value("string")}
    )
    return Dataset.from_dict(rows, features=features)


def annotator_label(hue: str, mislabel: float, rng: random.Random) -> str:
    """The sloppy annotator's answer: the next hue round the wheel with probability `mislabel`."""
    if rng.random() < mislabel:
        return NAMES[(NAMES.index(hue) + 1) % len(NAMES)]
    return hue


def corpus() -> list[str]:
    """Every text the task uses, for training the tiny model's tokenizer."""
    return [*QUESTIONS, THINK, *NAMES, *(completion(name) for name in NAMES)]
