"""vlmgrpo.measured: the ranges the course quotes come from one results file, and agree with it."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from vlmgrpo import measured

ROOT = Path(__file__).resolve().parents[1]
GROUPS = ("default", "beta0", "reasoning", "lab")

# Every range over seeds that README.md, WORKSHOP.md and the notebooks' markdown quote:
# (file, group, figure, digits, scale). The test renders each with `measured.span` and
# looks for it in the file; a quoted range that the file no longer gives fails.
QUOTES = [
    ("README.md", "default+default-avx2", "accuracy_before", 3, 1),
    ("README.md", "default+default-avx2", "accuracy_after", 2, 1),
    ("README.md", "default+default-avx2", "agreement_before", 3, 1),
    ("README.md", "default+default-avx2", "agreement_after", 2, 1),
    ("README.md", "default+default-avx2", "format_after", 2, 1),
    ("README.md", "default+default-avx2", "reward first tenth", 2, 1),
    ("README.md", "default+default-avx2", "reward last tenth", 2, 1),
    ("README.md", "default", "train_seconds", 0, 1),
    ("README.md", "default+default-avx2", "sampled accuracy, before", 2, 1),
    ("README.md", "beta0+beta0-avx2", "beta0: agreement_after", 2, 1),
    ("README.md", "beta0+beta0-avx2", "beta0: accuracy_after", 2, 1),
    ("README.md", "reasoning", "reasoning: train_seconds", 0, 1),
    ("README.md", "reasoning+reasoning-avx2", "reasoning: accuracy_before", 2, 1),
    ("README.md", "reasoning+reasoning-avx2", "reasoning: accuracy_after", 2, 1),
    ("README.md", "reasoning+reasoning-avx2", "reasoning: think_right_before", 2, 1),
    ("README.md", "reasoning+reasoning-avx2", "reasoning: think_right_after", 2, 1),
    ("README.md", "reasoning+reasoning-avx2", "reasoning: accuracy_no_think_before", 2, 1),
    ("README.md", "reasoning+reasoning-avx2", "reasoning: accuracy_no_think_after", 2, 1),
    ("README.md", "reasoning+reasoning-avx2", "reasoning: follow_before", 2, 1),
    ("README.md", "reasoning+reasoning-avx2", "reasoning: follow_after", 2, 1),
    ("notebooks/04_grpo_training.ipynb", "beta0+beta0-avx2", "beta0: agreement_after", 2, 1),
    ("notebooks/04_grpo_training.ipynb", "default+default-avx2", "agreement_after", 2, 1),
    ("notebooks/04_grpo_training.ipynb", "default", "train_seconds", 0, 1),
    ("notebooks/04_grpo_training.ipynb", "lab+lab-avx2", "dapo: peak clip", 2, 1),
    ("notebooks/04_grpo_training.ipynb", "lab+lab-avx2", "gspo: peak clip", 2, 1),
    ("notebooks/04_grpo_training.ipynb", "lab+lab-avx2", "dapo: length growth", 1, 1),
    ("notebooks/04_grpo_training.ipynb", "lab+lab-avx2", "dapo: accuracy after", 2, 1),
    ("notebooks/04_grpo_training.ipynb", "lab+lab-avx2", "gspo: accuracy after", 2, 1),
    ("notebooks/04_grpo_training.ipynb", "lab+lab-avx2", "dapo eps10: peak clip", 3, 1),
    ("notebooks/04_grpo_training.ipynb", "lab+lab-avx2", "dapo eps10: accuracy after", 2, 1),
    ("notebooks/04_grpo_training.ipynb", "lab+lab-avx2", "dapo iter4: peak clip", 2, 1),
    ("notebooks/04_grpo_training.ipynb", "lab+lab-avx2", "gspo eps0.2: peak clip", 2, 1),
    ("notebooks/05_evaluation.ipynb", "default+default-avx2", "follow before", 2, 1),
    ("notebooks/05_evaluation.ipynb", "default+default-avx2", "follow after", 2, 1),
    (
        "notebooks/05_evaluation.ipynb",
        "default+default-avx2",
        "follows the swapped image, after",
        2,
        1,
    ),
    (
        "notebooks/05_evaluation.ipynb",
        "default+default-avx2",
        "gives the swapped image's slip, before",
        2,
        1,
    ),
    (
        "notebooks/05_evaluation.ipynb",
        "default+default-avx2",
        "planted, before: the true hue's slip",
        2,
        1,
    ),
    ("notebooks/05_evaluation.ipynb", "default+default-avx2", "sampled accuracy, before", 2, 1),
    ("notebooks/05_evaluation.ipynb", "default+default-avx2", "accuracy_before", 3, 1),
    ("notebooks/05_evaluation.ipynb", "beta0+beta0-avx2", "beta0: agreement_after", 2, 1),
    ("notebooks/05_evaluation.ipynb", "default+default-avx2", "agreement_after", 2, 1),
    ("notebooks/05_evaluation.ipynb", "beta0+beta0-avx2", "beta0: accuracy_after", 2, 1),
    ("notebooks/06_reasoning.ipynb", "reasoning", "reasoning: train_seconds", 0, 1),
    (
        "notebooks/06_reasoning.ipynb",
        "reasoning+reasoning-avx2",
        "reasoning: accuracy_before",
        2,
        1,
    ),
    (
        "notebooks/06_reasoning.ipynb",
        "reasoning+reasoning-avx2",
        "reasoning: accuracy_after",
        2,
        1,
    ),
    (
        "notebooks/06_reasoning.ipynb",
        "reasoning+reasoning-avx2",
        "reasoning: think_right_before",
        2,
        1,
    ),
    (
        "notebooks/06_reasoning.ipynb",
        "reasoning+reasoning-avx2",
        "reasoning: think_right_after",
        2,
        1,
    ),
    (
        "notebooks/06_reasoning.ipynb",
        "reasoning+reasoning-avx2",
        "reasoning: accuracy_no_think_before",
        2,
        1,
    ),
    (
        "notebooks/06_reasoning.ipynb",
        "reasoning+reasoning-avx2",
        "reasoning: accuracy_no_think_after",
        2,
        1,
    ),
    ("notebooks/06_reasoning.ipynb", "reasoning+reasoning-avx2", "reasoning: follow_before", 2, 1),
    ("notebooks/06_reasoning.ipynb", "reasoning+reasoning-avx2", "reasoning: follow_after", 2, 1),
    (
        "notebooks/06_reasoning.ipynb",
        "reasoning+reasoning-avx2",
        "reasoning: think right iff answer right, after",
        2,
        1,
    ),
    ("notebooks/06_reasoning.ipynb", "default+default-avx2", "follow before", 2, 1),
    ("notebooks/06_reasoning.ipynb", "default+default-avx2", "follow after", 2, 1),
    (
        "notebooks/06_reasoning.ipynb",
        "reasoning+reasoning-avx2",
        "reasoning: right think planted, before",
        2,
        1,
    ),
    (
        "notebooks/06_reasoning.ipynb",
        "reasoning",
        "reasoning: lying think, before: the think's hue, looked up",
        2,
        1,
    ),
    (
        "notebooks/06_reasoning.ipynb",
        "reasoning",
        "reasoning: lying think, after: the think's hue, looked up",
        2,
        1,
    ),
    (
        "notebooks/06_reasoning.ipynb",
        "reasoning-avx2",
        "reasoning: lying think, before: the think's number",
        2,
        1,
    ),
    (
        "notebooks/06_reasoning.ipynb",
        "reasoning-avx2",
        "reasoning: lying think, after: the think's number",
        2,
        1,
    ),
    (
        "notebooks/06_reasoning.ipynb",
        "reasoning+reasoning-avx2",
        "reasoning: lying think, after: the image's hue, looked up",
        2,
        1,
    ),
    (
        "notebooks/06_reasoning.ipynb",
        "reasoning+reasoning-avx2",
        "reasoning, format only: accuracy_after",
        2,
        1,
    ),
    (
        "notebooks/06_reasoning.ipynb",
        "reasoning+reasoning-avx2",
        "reasoning, format only: think_right_after",
        2,
        1,
    ),
    (
        "notebooks/06_reasoning.ipynb",
        "reasoning+reasoning-avx2",
        "reasoning, beta0: accuracy_after",
        2,
        1,
    ),
    (
        "notebooks/06_reasoning.ipynb",
        "reasoning+reasoning-avx2",
        "reasoning, beta0: follow_after",
        2,
        1,
    ),
    ("notebooks/solutions/05_evaluation.ipynb", "beta0+beta0-avx2", "beta0: think offset 0", 2, 1),
    ("notebooks/solutions/05_evaluation.ipynb", "beta0+beta0-avx2", "beta0: think offset 5", 2, 1),
    (
        "notebooks/solutions/05_evaluation.ipynb",
        "beta0+beta0-avx2",
        "beta0: think offset none",
        2,
        1,
    ),
    ("notebooks/solutions/05_evaluation.ipynb", "beta0+beta0-avx2", "beta0: accuracy_after", 2, 1),
    (
        "notebooks/solutions/06_reasoning.ipynb",
        "reasoning",
        "reasoning: lying think, after: the think's hue, looked up",
        2,
        1,
    ),
    (
        "notebooks/solutions/06_reasoning.ipynb",
        "reasoning-avx2",
        "reasoning: lying think, after: the think's number",
        2,
        1,
    ),
    (
        "notebooks/solutions/06_reasoning.ipynb",
        "reasoning+reasoning-avx2",
        "reasoning: lying think, after: the image's hue, looked up",
        2,
        1,
    ),
    (
        "notebooks/solutions/06_reasoning.ipynb",
        "reasoning+reasoning-avx2",
        "reasoning, beta0: accuracy_after",
        2,
        1,
    ),
    (
        "notebooks/solutions/06_reasoning.ipynb",
        "reasoning+reasoning-avx2",
        "reasoning: accuracy_after",
        2,
        1,
    ),
    (
        "notebooks/solutions/06_reasoning.ipynb",
        "reasoning+reasoning-avx2",
        "reasoning, beta0: follow_after",
        2,
        1,
    ),
]


def _text(path: str) -> str:
    """A markdown file, or a notebook's markdown cells joined."""
    file = ROOT / path
    if file.suffix != ".ipynb":
        return file.read_text()
    cells = json.loads(file.read_text())["cells"]
    return "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")


@pytest.fixture
def results_file(tmp_path, monkeypatch):
    """A small results file in place of the committed one."""
    path = tmp_path / "seed_spread.json"
    machine = {"cpu": "Test CPU", "cores": 2}
    values = {"acc": {"1": 0.125, "2": 0.15, "3": 0.1417}, "same": {"1": 1.0, "2": 1.0}}
    path.write_text(
        json.dumps(
            {
                "groups": {
                    "g": {"seeds": [1, 2, 3], "date": "2026-01-01", "machine": machine}
                    | {"values": values},
                    "g-avx2": {"seeds": [1], "date": "2026-01-02", "values": {"acc": {"1": 0.3}}}
                    | {"machine": machine | {"isa": "avx2", "torch_threads": 1}},
                }
            }
        )
    )
    monkeypatch.setattr(measured, "RESULTS", path)
    return path


def test_span_renders_the_range_or_one_number(results_file):
    assert measured.span("g", "acc", 3) == "0.125–0.150"
    assert measured.span("g", "same") == "1.00"
    assert measured.span("g", "acc", 0, scale=100) == "12–15"
    assert measured.values("g", "same") == [1.0, 1.0]  # seed 3 did not measure it
    with pytest.raises(KeyError, match="no group 'x'"):
        measured.span("x", "acc")
    with pytest.raises(KeyError, match="measured no 'nope'"):
        measured.span("g", "nope")


def test_a_union_of_groups_spans_every_build(results_file, capsys):
    assert measured.span("g+g-avx2", "acc") == "0.12–0.30"
    assert measured.values("g+g-avx2", "acc") == [0.125, 0.15, 0.1417, 0.3]
    measured.compare("g+g-avx2", {"acc": 0.25})
    assert "; 1 seed (1) on 2 cores of Test CPU, avx2 kernels, 1 thread" in capsys.readouterr().out
    with pytest.raises(KeyError, match="'g-avx2' measured no 'same'"):
        measured.span("g+g-avx2", "same")


def test_compare_passes_a_run_inside_and_fails_one_outside(results_file, capsys):
    verdict = measured.compare("g", {"acc": 0.1333, "same": 0.996})  # 1.00 at 2 digits
    assert verdict.startswith("inside the range")
    shown = capsys.readouterr().out
    assert "0.13  0.12–0.15" in shown and "3 seeds (1, 2, 3) on 2 cores of Test CPU" in shown
    with pytest.raises(AssertionError, match="outside the measured range on acc"):
        measured.compare("g", {"acc": 0.2})
    assert "<- outside" in capsys.readouterr().out
    with pytest.raises(AssertionError, match="on same"):
        measured.compare("g", {"same": 0.99})


def test_the_committed_file_holds_five_seeds_per_group_and_where_they_ran():
    data = json.loads(measured.RESULTS.read_text())
    for name in GROUPS:
        entry = data["groups"][name]
        assert len(entry["seeds"]) >= 5, (name, entry["seeds"])
        assert entry["machine"]["cores"] and entry["machine"]["cpu"], entry["machine"]
        assert re.fullmatch(r"\d{4}-\d\d-\d\d", entry["date"]), entry["date"]
        for key, by_seed in entry["values"].items():
            assert {str(s) for s in entry["seeds"]} <= set(by_seed), (name, key)
        portable = data["groups"][f"{name}-avx2"]  # the same runs under another CPU's rounding
        assert portable["machine"]["isa"] == "avx2" and portable["seeds"], portable["machine"]
        assert set(portable["values"]) == set(entry["values"]), name


@pytest.mark.parametrize(("path", "name", "key", "digits", "scale"), QUOTES)
def test_a_quoted_range_is_the_results_file(path, name, key, digits, scale):
    quoted = measured.span(name, key, digits, scale)
    assert quoted in _text(path), f"{path} should quote {key!r} of {name!r} as {quoted}"


@pytest.mark.parametrize("path", ["README.md", "WORKSHOP.md"])
def test_every_decimal_range_in_the_docs_is_a_measured_one(path):
    """A range like 0.12–0.15 in the README or WORKSHOP.md is one the results file gives."""
    known = {measured.span(n, k, d, s) for p, n, k, d, s in QUOTES if p == path}
    found = set(re.findall(r"(?<![$\d.])\d+\.\d+–\d+\.\d+", _text(path)))  # not prices
    assert found <= known, f"ranges not from vlmgrpo/seed_spread.json: {sorted(found - known)}"
