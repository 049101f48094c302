"""Notebook 02's worked toy stays off the clip's edges, on every machine.

At r = 1 ± ε exactly the two terms of min(r·Â, clip(r)·Â) tie, and which gradient autograd
gives that token depends on how the float32 ratio rounds: one CPU stores 0.0252, another
computes 0.0504. These tests read the toy from the notebooks' own cells and fail when a
ratio comes within MARGIN of a bound, or an advantage within MARGIN of 0, in the notebook or
in any exercise that reuses the toy, and when the toy stops showing what it teaches.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from vlmgrpo import grpo

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
TOY_NOTEBOOKS = [
    NOTEBOOKS / "02_grpo_by_hand.ipynb",
    NOTEBOOKS / "solutions/02_grpo_by_hand.ipynb",
]
MARGIN = 1e-3
# (rewards, epsilon) of the notebook and of each exercise on the toy (solutions/02).
SETTINGS = {
    "notebook": ([1.0, 0.0, 0.2], 0.2),
    "exercise 1, widen the clip": ([1.0, 0.0, 0.2], 0.5),
    "exercise 2, flip output 2": ([1.0, 1.0, 0.2], 0.2),
}


def toy(path: Path) -> dict[str, torch.Tensor]:
    """Run the notebook's cell that defines the toy's probabilities; return its tensors."""
    cells = json.loads(path.read_text())["cells"]
    (source,) = [
        "".join(c["source"]) for c in cells if "p_old = torch.tensor(" in "".join(c["source"])
    ]
    # The cell's first statements, up to the first line that uses more than torch.
    lines = source.splitlines()
    end = next(i for i, line in enumerate(lines) if line.startswith("rewards"))
    namespace = {"torch": torch}
    exec("\n".join(lines[:end]), namespace)
    return {k: namespace[k] for k in ("p_old", "p_new", "p_ref")}


@pytest.fixture(scope="module")
def toys() -> list[dict[str, torch.Tensor]]:
    return [toy(path) for path in TOY_NOTEBOOKS]


def test_notebook_and_solutions_share_one_toy(toys):
    first, second = toys
    for name in first:
        assert torch.equal(first[name], second[name]), name


@pytest.mark.parametrize("setting", SETTINGS)
def test_no_ratio_on_a_clip_bound_and_no_zero_advantage(toys, setting):
    rewards, epsilon = SETTINGS[setting]
    p = toys[0]
    ratio = grpo.policy_ratio(p["p_new"].log(), p["p_old"].log())
    for bound in (1 - epsilon, 1 + epsilon):
        distance = (ratio - bound).abs().min().item()
        assert distance >= MARGIN, f"{setting}: a ratio is {distance:.1e} from {bound}"
    advantages = grpo.group_advantages(torch.tensor(rewards), group_size=3)
    assert advantages.abs().min() >= MARGIN, (setting, advantages)


def test_the_toy_clips_on_both_sides_and_leaves_most_tokens_free(toys):
    p = toys[0]
    ratio = grpo.policy_ratio(p["p_new"].log(), p["p_old"].log())
    rewards, epsilon = SETTINGS["notebook"]
    advantages = grpo.group_advantages(torch.tensor(rewards), group_size=3)
    binds = grpo.clip_binds(ratio, advantages, epsilon)
    positive, negative = advantages > 0, advantages < 0
    assert binds[positive].any(), "no clipped token with A > 0"
    assert binds[negative].any(), "no clipped token with A < 0"
    assert (~binds).sum() > binds.sum(), "most tokens should not be clipped"
    # A token of a bad output made likelier (r > 1 + ε, A < 0): the minimum keeps r·A.
    assert ((ratio > 1 + epsilon) & negative[:, None] & ~binds).any()
