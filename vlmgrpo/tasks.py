"""The synthetic tasks a preset without a dataset trains on, side by side behind one protocol.

Two tasks, each a module with the same five names (`Task`):

* ``colour`` (`vlmgrpo.colours`): name the colour of the shape; the `tiny` preset's.
* ``prices`` (`vlmgrpo.prices`): see the colour, look its price up in the question's list;
  the `tiny-reasoning` preset's.

Each has its tiny model (`vlmgrpo.tiny.SPECS`), cold-started on the task's `annotated` traces
and tokenizer-trained on its `corpus`. A preset names its task (`Preset.task`); data, the tiny
model's build and the evaluation find it here.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Protocol

from datasets import Dataset

from vlmgrpo import colours, prices
from vlmgrpo.utils import UsageError


class Task(Protocol):
    """What a task module provides (a module satisfies it by having these names)."""

    NAME: str  # how run.json and eval.json name the task's dataset

    def make_dataset(self, n: int, seed: int) -> Dataset:
        """`n` seeded rows with columns image, problem, solution (the real dataset's schema)."""

    def annotated(self, rng: random.Random, mislabel: float) -> tuple:
        """One cold-start example: (image, problem, the sloppy annotator's trace)."""

    def corpus(self) -> list[str]:
        """Text in the task's forms, for training the tiny model's tokenizer."""

    def measures(self, score: Callable, test_set: Dataset, scores: dict) -> dict:
        """What eval.json records of the reasoning, from greedy answers on `test_set`.

        `score(prefixes, targets, desc)` scores more greedy answers (see `vlmgrpo.evaluate`);
        `scores` are the plain ones.
        """


TASKS: dict[str, Task] = {"colour": colours, "prices": prices}


def get_task(name: str) -> Task:
    """The task called `name`, or a one-line error listing the known ones."""
    if name not in TASKS:
        raise UsageError(f"unknown task {name!r}; choose one of: {', '.join(TASKS)}")
    return TASKS[name]
