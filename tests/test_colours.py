"""Tests for vlmgrpo.colours: the colour dataset, the sloppy annotator and the corpus."""

from __future__ import annotations

import random

import numpy as np
import pytest
from PIL import Image

from vlmgrpo import colours
from vlmgrpo.colours import (
    BACKGROUND,
    HUES,
    IMAGE_SIZE,
    NAMES,
    QUESTIONS,
    SHAPES,
    THINKS,
    annotator_label,
    corpus,
    make_colour_dataset,
)
from vlmgrpo.rewards import accuracy_reward, format_reward

DRAWS = 4000


def pixels(image):
    return np.asarray(image).reshape(-1, 3)


def nearest_hue(colour):
    return min(NAMES, key=lambda name: float(np.sum((colour - np.array(HUES[name])) ** 2)))


@pytest.fixture(scope="module")
def dataset():
    return make_colour_dataset(60, seed=0)


def test_dataset_is_deterministic_for_a_seed():
    first, second = make_colour_dataset(12, seed=3), make_colour_dataset(12, seed=3)
    assert first["problem"] == second["problem"]
    assert first["solution"] == second["solution"]
    for a, b in zip(first["image"], second["image"], strict=True):
        assert np.array_equal(np.asarray(a), np.asarray(b))


def test_dataset_differs_across_seeds():
    first, second = make_colour_dataset(12, seed=0), make_colour_dataset(12, seed=1)
    images = zip(first["image"], second["image"], strict=True)
    assert any(not np.array_equal(np.asarray(a), np.asarray(b)) for a, b in images)
    assert (first["problem"], first["solution"]) != (second["problem"], second["solution"])


@pytest.mark.parametrize("n", [0, 1, 7])
def test_dataset_length(n):
    dataset = make_colour_dataset(n, seed=0)
    assert len(dataset) == n
    assert dataset.column_names == ["image", "problem", "solution"]


def test_dataset_columns(dataset):
    assert dataset.column_names == ["image", "problem", "solution"]
    assert dataset.features["image"].decode
    assert set(dataset["problem"]) <= set(QUESTIONS)
    assert set(dataset["solution"]) <= set(NAMES)


def test_images_are_rgb_squares(dataset):
    for image in dataset["image"]:
        assert isinstance(image, Image.Image)
        assert image.mode == "RGB"
        assert image.size == (IMAGE_SIZE, IMAGE_SIZE)


def test_shape_colour_is_the_solution(dataset):
    for row in dataset:
        values = pixels(row["image"])
        shape = values[(values != np.array(BACKGROUND)).any(axis=1)]
        assert len(shape) > 0, "no shape drawn"
        assert len(shape) < len(values), "no background left"
        assert nearest_hue(shape.mean(axis=0)) == row["solution"]


@pytest.mark.parametrize("mislabel", [0.0, 0.3, 0.6, 1.0])
@pytest.mark.parametrize("hue", NAMES)
def test_annotator_mislabel_rate(hue, mislabel):
    rng = random.Random(0)
    labels = [annotator_label(hue, mislabel, rng) for _ in range(DRAWS)]
    neighbour = NAMES[(NAMES.index(hue) + 1) % len(NAMES)]
    assert set(labels) <= {hue, neighbour}
    rate = labels.count(neighbour) / DRAWS
    assert abs(rate - mislabel) <= 0.03
    if mislabel == 0.0:
        assert rate == 0.0
    if mislabel == 1.0:
        assert rate == 1.0


@pytest.mark.parametrize(
    "hue, neighbour",
    [
        ("red", "orange"),
        ("orange", "yellow"),
        ("yellow", "green"),
        ("green", "blue"),
        ("blue", "purple"),
        ("purple", "red"),
    ],
)
def test_annotator_names_the_next_hue_round_the_wheel(hue, neighbour):
    assert colours.slip(hue) == neighbour
    assert annotator_label(hue, 1.0, random.Random(0)) == neighbour
    assert annotator_label(hue, 0.0, random.Random(0)) == hue


def test_corpus_covers_the_task():
    texts = corpus()
    assert all(isinstance(text, str) for text in texts)
    for question in QUESTIONS:
        assert question in texts
    for name in NAMES:
        assert name in texts
        assert colours.completion(name) in texts
        for template in THINKS:
            assert template.format(hue=name) in texts


@pytest.mark.parametrize("name", NAMES)
def test_completion_earns_the_rewards(name):
    text = colours.completion(name)
    other = NAMES[(NAMES.index(name) + 1) % len(NAMES)]
    assert format_reward([text]) == [1.0]
    assert accuracy_reward([text, text], solution=[name, other]) == [1.0, 0.0]


def test_the_phrasings_differ_in_length():
    lengths = [len(colours.describe("red", style)) for style in range(len(THINKS))]
    assert lengths == sorted(lengths) and len(set(lengths)) == len(THINKS)


@pytest.mark.parametrize("shape", SHAPES)
def test_shape_is_drawn_as_asked(shape):
    image = np.asarray(colours.draw_shape("blue", random.Random(0), shape))
    drawn = (image != np.array(BACKGROUND)).any(axis=-1)
    rows, cols = np.nonzero(drawn)
    box = (rows.max() - rows.min() + 1) * (cols.max() - cols.min() + 1)
    # A square fills its bounding box; a circle about pi/4 of it.
    fill = drawn.sum() / box
    assert fill > 0.95 if shape == "square" else 0.7 < fill < 0.85


@pytest.mark.parametrize(
    "completion, hue",
    [
        ("<think>I see one red shape.</think><answer>orange</answer>", "red"),
        ("<think>There is one shape in the image. It is Blue.</think>", "blue"),
        ("<think>no colour here</think><answer>red</answer>", None),
        ("<answer>red</answer>", None),
        ("<think>red, or orange?</think><answer>orange</answer>", "red"),
    ],
)
def test_think_hue(completion, hue):
    assert colours.think_hue(completion) == hue


def test_the_reasoning_names_no_form():
    """The cold start names the hue only: the tiny model cannot tell a circle from a square."""
    for style in range(len(THINKS)):
        think = colours.describe("red", style)
        assert not set(SHAPES) & set(think.rstrip(".").split()), think


def test_agreement_compares_the_answer_with_the_think():
    completions = [
        colours.completion("red", colours.describe("red")),
        colours.completion("orange", colours.describe("red")),
        "<think>I see one red circle.</think>",  # no answer: disagrees
        "<think>a shape</think><answer>red</answer>",  # no hue named: disagrees
    ]
    assert colours.agreement(completions) == 0.25
    assert colours.agreement([]) == 0.0


@pytest.mark.parametrize("hue", NAMES)
def test_opposite_is_neither_the_hue_nor_a_slip(hue):
    other = colours.opposite(hue)
    assert other not in (hue, colours.slip(hue)) and colours.slip(other) != hue
    assert colours.think_hue(colours.forced_think(other) + " circle.</think>") == other
