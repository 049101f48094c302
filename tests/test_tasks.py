"""vlmgrpo.tasks: the two synthetic tasks side by side, each with the protocol's five names."""

from __future__ import annotations

import random
import typing

import pytest

from vlmgrpo import presets, tasks, tiny
from vlmgrpo.rewards import format_reward
from vlmgrpo.utils import UsageError

PROTOCOL = ("NAME", *(n for n in vars(tasks.Task) if not n.startswith("_")))


def test_the_protocol_names_five_things():
    assert set(PROTOCOL) == {"NAME", "make_dataset", "annotated", "corpus", "measures"}
    assert "NAME" in typing.get_type_hints(tasks.Task)


@pytest.mark.parametrize("name", list(tasks.TASKS))
def test_each_task_has_the_protocols_names_and_the_real_schema(name):
    task = tasks.get_task(name)
    for attribute in PROTOCOL:
        assert hasattr(task, attribute), (name, attribute)
    rows = task.make_dataset(6, seed=0)
    assert rows.column_names == ["image", "problem", "solution"]
    assert rows["solution"] == task.make_dataset(6, seed=0)["solution"]  # seeded
    image, problem, trace = task.annotated(random.Random(0), mislabel=0.0)
    assert image.size and problem and format_reward([[{"content": trace}]]) == [1.0]
    assert all(isinstance(text, str) and text for text in task.corpus())


def test_every_task_has_a_tiny_model_and_a_preset():
    assert set(tiny.SPECS) == set(tasks.TASKS)
    assert {p.task for p in presets.PRESETS.values()} <= set(tasks.TASKS)


def test_an_unknown_task_is_one_line():
    with pytest.raises(UsageError, match=r"unknown task 'maths'; choose one of: colour, prices"):
        tasks.get_task("maths")
