"""What the course says about its training runs, read from one file of measurements.

A run is seeded, but another CPU rounds differently and takes another path, so one run is an
example, not a result. `benchmarks/seed_spread.py` reruns every run the course describes on
several seeds and writes each figure, seed by seed, to `seed_spread.json` beside this module,
with the machine and the date. Everything the course states about a run comes from there:

* `span` renders a figure's range over the seeds ("0.12–0.15"); the README and the notebooks
  quote these, and `tests/test_measured.py` fails when a quoted range differs from the file.
  A name joined with "+" ("reasoning+reasoning-avx2") takes the union of groups: the reference
  machine's seeds and the same runs under another CPU's kernels (`seed_spread.py --label`);
* `compare` prints a notebook's own run beside the ranges and asserts that the run falls
  inside each one (at the printed precision), so a run the text does not describe fails
  the notebook instead of contradicting it.
"""

from __future__ import annotations

import json
import math
from functools import cache
from pathlib import Path

RESULTS = Path(__file__).with_name("seed_spread.json")
DASH = "–"  # an en dash between the ends of a range, as the course's prose writes it


def results() -> dict:
    """The measurements: {"groups": {group: {"seeds", "date", "machine", "values"}}}."""
    return _read(RESULTS)


@cache
def _read(path: Path) -> dict:
    return json.loads(Path(path).read_text())


def group(name: str) -> dict:
    """One group of runs (`default`, `beta0`, `lab`, `reasoning`) and where it was measured."""
    groups = results()["groups"]
    if name not in groups:
        raise KeyError(f"no group {name!r} in {RESULTS.name}; measured: {', '.join(groups)}")
    return groups[name]


def values(name: str, key: str) -> list[float]:
    """A figure's value on every seed of its group (or groups, joined with "+"), in order."""
    found = []
    for part in name.split("+"):
        measured = group(part)["values"]
        if key not in measured:
            raise KeyError(f"group {part!r} measured no {key!r}; see benchmarks/seed_spread.py")
        by_seed = measured[key]
        found += [by_seed[str(seed)] for seed in group(part)["seeds"] if str(seed) in by_seed]
    return found


def bounds(name: str, key: str, digits: int = 2) -> tuple[float, float]:
    """The smallest and the largest value over the seeds, rounded as the course prints them."""
    found = [v for v in values(name, key) if not math.isnan(v)]
    return round(min(found), digits), round(max(found), digits)


def span(name: str, key: str, digits: int = 2, scale: float = 1.0) -> str:
    """The range as the course quotes it: "0.12–0.15", or one number when every seed agrees.

    `scale` turns a share into a percentage (100) before rounding.
    """
    low, high = (round(scale * v, digits) for v in bounds(name, key, digits + 3))
    low_text, high_text = f"{low:.{digits}f}", f"{high:.{digits}f}"
    return low_text if low_text == high_text else f"{low_text}{DASH}{high_text}"


def seeds_text(name: str) -> str:
    """Which seeds, on what, when: the line under every table of ranges."""
    parts = []
    for part in name.split("+"):
        entry = group(part)
        machine, seeds = entry["machine"], entry["seeds"]
        kernels = (
            "" if machine.get("isa", "default") == "default" else f", {machine['isa']} kernels"
        )
        threads = machine.get("torch_threads")
        parts.append(
            f"{len(seeds)} seed{'s' * (len(seeds) > 1)} ({', '.join(map(str, seeds))}) on "
            f"{machine['cores']} cores of {machine['cpu']}{kernels}"
            + (f", {threads} thread{'s' * (threads > 1)}" if threads else "")
            + f", {entry['date']}"
        )
    return "; ".join(parts) + " (benchmarks/seed_spread.py)"


def compare(name: str, run: dict[str, float], digits: int = 2, labels: dict | None = None) -> str:
    """Print a run's figures beside their ranges over the seeds; fail if one falls outside.

    `run` maps figures of the results file to this run's values. A value counts as inside
    when, rounded to `digits`, it lies within the rounded range: what the table shows.
    """
    labels = labels or {}
    width = max(len(labels.get(k, k)) for k in run)
    print(f"{'':{width}s}  {'this run':>9s}  over the seeds")
    outside = []
    for key, value in run.items():
        low, high = bounds(name, key, digits)
        shown = round(value, digits)
        mark = "" if low <= shown <= high else "   <- outside"
        label = labels.get(key, key)
        print(f"{label:{width}s}  {value:9.{digits}f}  {span(name, key, digits)}{mark}")
        if mark:
            outside.append(key)
    print(seeds_text(name))
    assert not outside, (
        f"this run falls outside the measured range on {', '.join(outside)}: the text quotes "
        f"{RESULTS.name}; rerun benchmarks/seed_spread.py on this machine to see its spread"
    )
    return f"inside the range of every seed measured, on all {len(run)} figures"
