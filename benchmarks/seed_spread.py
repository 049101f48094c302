"""Every claim the course makes about a training run, measured on several seeds (CPU).

    python benchmarks/seed_spread.py                        # seeds 42 43 44, every group
    python benchmarks/seed_spread.py --groups lab --seeds 42 43 44 45 --json spread.json

A run is seeded, but another CPU (vector width, kernels, threads) rounds differently and the
run then takes another path; a claim that holds for one seed on one machine is an example.
So each run behind a sentence or an assert in notebooks 04, 05 and 06 and their solutions is
repeated here with other seeds (which also draw other training and held-out images), and
the script prints, for each measured quantity, its value on every seed and the range. The
notebooks quote these ranges and assert only what every seed clears with a margin.

Groups (minutes on 2 CPU cores, per seed):

* ``default``: notebook 04's run (the tiny preset, 80 steps), then notebook 05's
  measurements on it: agreement, the planted think, the swapped image (~3);
* ``lab``: notebook 04's lab (four loss variants, 30 steps, ``num_iterations=2``) and the
  runs of its exercises (epsilon 10, ``num_iterations=4``, GSPO's ratio with the token-level
  epsilon 0.2) (~4);
* ``beta0``: notebook 05's exercise 4, the tiny preset without the KL anchor, and where
  its reasoning's hue moved round the wheel (~3);
* ``reasoning``: notebook 06's run (the tiny-reasoning preset, 80 steps) with its measures of
  the reasoning, and its exercises: a right think planted before RL, where the cold start's
  thinks point, the format reward alone, no KL anchor (~8).
"""

from __future__ import annotations

import argparse
import json
import math
import random
import tempfile
from collections import Counter
from dataclasses import replace
from pathlib import Path
from statistics import fmean as mean

import peft
from datasets import Dataset, Features, Value
from datasets import Image as ImageFeature

from vlmgrpo import data, models, plots, presets, prices, synthetic, train
from vlmgrpo.evaluate import evaluate, intervene
from vlmgrpo.rewards import format_reward
from vlmgrpo.utils import quiet_notebook

TINY = presets.PRESETS["tiny"]
REASONING = presets.PRESETS["tiny-reasoning"]
REWARD = "rewards/accuracy_reward/mean"
# Notebook 04's lab setting, shared by its solutions.
SHORT = replace(TINY, max_steps=30, batch_size=24, save_steps=30, n_test=60, num_iterations=2)
LAB = {
    "grpo": {"loss_type": "grpo"},
    "dr_grpo": {"loss_type": "dr_grpo", "scale_rewards": "none"},
    "dapo": {"loss_type": "dapo"},
    "gspo": {
        "loss_type": "grpo",
        "importance_sampling_level": "sequence",
        "epsilon": 3e-4,
        "epsilon_high": 4e-4,
    },
    # Notebook 04's exercises (solutions/04).
    "dapo eps10": {"loss_type": "dapo", "epsilon": 10.0},
    "dapo iter4": {"loss_type": "dapo", "num_iterations": 4},
    "gspo eps0.2": {"loss_type": "grpo", "importance_sampling_level": "sequence"},
}


def logged(metrics: dict, column: str) -> list[float]:
    """The column's values at the steps where it was logged (NaN elsewhere)."""
    return [v for v in metrics[column] if not math.isnan(v)]


def tenths(values: list[float]) -> tuple[float, float]:
    """Mean of the first and of the last tenth (notebook 04's rise of the accuracy reward)."""
    k = max(1, len(values) // 10)
    return mean(values[:k]), mean(values[-k:])


def run_metrics(out: Path) -> dict:
    """What the notebooks read from a run's metrics.csv."""
    m = plots.read_metrics(out / "metrics.csv")
    length = logged(m, "completions/mean_length")
    entropy = logged(m, "entropy")
    first, last = tenths(logged(m, "rewards/accuracy_reward/mean"))
    kl = logged(m, "kl") if "kl" in m else [float("nan")]  # logged only with beta > 0
    return {
        "reward first tenth": first,
        "reward last tenth": last,
        "length first 5": mean(length[:5]),
        "length last 5": mean(length[-5:]),
        "length growth": mean(length[-5:]) - mean(length[:5]),
        "peak clip": max(logged(m, "clip_ratio/region_mean")),
        "entropy first 5": mean(entropy[:5]),
        "entropy last": entropy[-1],
        "entropy peak": max(entropy),
        "kl first": kl[0],
        "kl last": kl[-1],
    }


def default_group(seed: int, root: Path) -> dict:
    out = root / f"default-{seed}"
    result = train.run(TINY, output_dir=out, seed=seed, overwrite=True, progress=False)
    row = {k: result[k] for k in ("accuracy_before", "accuracy_after", "format_after")}
    row |= {k: result[k] for k in ("agreement_before", "agreement_after", "train_seconds")}
    row |= run_metrics(out)
    # Notebook 05 on this run: the planted think, before RL and after.
    base, processor = models.load_model(None, TINY)
    tuned = peft.PeftModel.from_pretrained(base, out / "adapter").eval()
    _, test_set = data.load_data(TINY, None, seed=seed)
    n, bs = TINY.eval_max_new_tokens, TINY.eval_batch_size
    forced = [synthetic.opposite(s) for s in test_set["solution"]]
    prefixes = [synthetic.forced_think(hue) for hue in forced]
    with tuned.disable_adapter():
        before = evaluate(tuned, processor, test_set, n, bs, progress=False)
        planted_before = intervene(tuned, processor, test_set, prefixes, forced, n, bs)
    planted_after = intervene(tuned, processor, test_set, prefixes, forced, n, bs)
    think_right = sum(
        synthetic.think_hue(r["completion"]) == r["solution"] for r in before["records"]
    )
    # Solutions/05, exercise 1: the true hue in the think, the opposite hue in the image.
    rng = random.Random(0)
    swapped_hues = [synthetic.opposite(s) for s in test_set["solution"]]
    swapped = Dataset.from_dict(
        {
            "image": [synthetic.draw_shape(h, rng) for h in swapped_hues],
            "problem": test_set["problem"],
            "solution": test_set["solution"],
        },
        features=Features(
            {"image": ImageFeature(), "problem": Value("string"), "solution": Value("string")}
        ),
    )
    true_think = [synthetic.forced_think(s) for s in test_set["solution"]]
    image_after = intervene(tuned, processor, swapped, true_think, swapped_hues, n, bs)
    row |= {
        "follows the swapped image, after": image_after["follow"],
        "think hue right, before": think_right / before["n"],
        "follow before": planted_before["follow"],
        "follow after": planted_after["follow"],
        "right under planted, before": planted_before["accuracy"],
        "right under planted, after": planted_after["accuracy"],
    }
    return row


def lab_group(seed: int, root: Path, variants: list[str] | None = None) -> dict:
    row = {}
    for name, change in LAB.items():
        if variants and name not in variants:
            continue
        out = root / f"lab-{name.replace(' ', '-')}-{seed}"
        result = train.run(
            replace(SHORT, **change), output_dir=out, seed=seed, overwrite=True, progress=False
        )
        row[f"{name}: accuracy before"] = result["accuracy_before"]
        row[f"{name}: accuracy after"] = result["accuracy_after"]
        row |= {f"{name}: {k}": v for k, v in run_metrics(out).items()}
    return row


def beta0_group(seed: int, root: Path) -> dict:
    out = root / f"beta0-{seed}"
    result = train.run(
        replace(TINY, beta=0.0), output_dir=out, seed=seed, overwrite=True, progress=False
    )
    row = {f"beta0: {k}": result[k] for k in ("accuracy_after", "agreement_after")}
    base, processor = models.load_model(None, TINY)
    model = peft.PeftModel.from_pretrained(base, out / "adapter").eval()
    _, test_set = data.load_data(TINY, None, seed=seed)
    records = evaluate(
        model,
        processor,
        test_set,
        TINY.eval_max_new_tokens,
        TINY.eval_batch_size,
        progress=False,
    )["records"]
    offsets = Counter()
    for r in records:
        hue = synthetic.think_hue(r["completion"])
        offsets[
            "none"
            if hue is None
            else (synthetic.NAMES.index(hue) - synthetic.NAMES.index(r["solution"])) % 6
        ] += 1
    for key in (0, 5, 1, "none"):
        row[f"beta0: think offset {key}"] = offsets[key] / len(records)
    return row


def reasoning_group(seed: int, root: Path) -> dict:
    measured = (
        "accuracy_before",
        "accuracy_after",
        "think_right_before",
        "think_right_after",
        "accuracy_no_think_after",
        "follow_before",
        "follow_after",
    )
    out = root / f"reasoning-{seed}"
    result = train.run(REASONING, output_dir=out, seed=seed, overwrite=True, progress=False)
    row = {f"reasoning: {k}": result[k] for k in (*measured, "train_seconds")}
    first, last = tenths(logged(plots.read_metrics(out / "metrics.csv"), REWARD))
    row |= {"reasoning: reward first tenth": first, "reasoning: reward last tenth": last}
    # Solutions/06, exercises 1 and 2, on the base model (the cold start).
    base, processor = models.load_model(None, REASONING)
    model = peft.PeftModel.from_pretrained(base, out / "adapter").eval()
    _, test_set = data.load_data(REASONING, None, seed=seed)
    n, bs = REASONING.eval_max_new_tokens, REASONING.eval_batch_size
    right = [
        f"<think>{prices.think(prices.gold_hue(p, s), int(s))}</think>"
        for p, s in zip(test_set["problem"], test_set["solution"], strict=True)
    ]
    with model.disable_adapter():
        planted_right = evaluate(model, processor, test_set, n, bs, False, prefixes=right)
        plain = evaluate(model, processor, test_set, n, bs, progress=False)
    row["reasoning: right think planted, before"] = planted_right["accuracy"]
    # Exercise 2: the right hue with the price of the hue across the wheel, after RL.
    _, wrong = prices.planted(test_set["problem"], test_set["solution"])
    misread = [
        f"<think>{prices.think(prices.gold_hue(p, s), int(w))}</think>"
        for p, s, w in zip(test_set["problem"], test_set["solution"], wrong, strict=True)
    ]
    copied = evaluate(model, processor, test_set, n, bs, False, prefixes=misread, targets=wrong)
    row["reasoning: wrong price planted, after: follow"] = copied["accuracy"]
    texts = [r["completion"] for r in plain["records"]]
    problems, solutions = test_set["problem"], test_set["solution"]
    offsets = Counter(map(prices.think_offset, texts, problems, solutions))
    for key in (0, 1, 5, "none"):
        row[f"reasoning: think offset {key}, before"] = offsets[key] / plain["n"]
    row["reasoning: think's lookup right, before"] = mean(
        map(prices.lookup_right, texts, problems)
    )
    row["reasoning: answer repeats think, before"] = mean(map(prices.repeats_think, texts))
    # Exercise 3: the format reward alone; exercise 4: no KL anchor.
    for name, preset, rewards in (
        ("format only", REASONING, [format_reward]),
        ("beta0", replace(REASONING, beta=0.0), None),
    ):
        out = root / f"reasoning-{name.replace(' ', '-')}-{seed}"
        result = train.run(
            preset,
            output_dir=out,
            seed=seed,
            overwrite=True,
            progress=False,
            reward_funcs=rewards,
        )
        row |= {f"reasoning, {name}: {k}": result[k] for k in measured if k.endswith("after")}
    return row


GROUPS = {
    "default": default_group,
    "lab": lab_group,
    "beta0": beta0_group,
    "reasoning": reasoning_group,
}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[42, 43, 44])
    parser.add_argument("--groups", nargs="+", choices=list(GROUPS), default=list(GROUPS))
    parser.add_argument("--json", type=Path, help="also write every value to this file")
    parser.add_argument("--variants", nargs="+", choices=list(LAB), help="only these lab runs")
    args = parser.parse_args(argv)
    quiet_notebook()
    values: dict[str, dict[int, float]] = {}
    with tempfile.TemporaryDirectory(prefix="seed-spread-") as tmp:
        for group in args.groups:
            for seed in args.seeds:
                kwargs = {"variants": args.variants} if group == "lab" else {}
                for key, value in GROUPS[group](seed, Path(tmp), **kwargs).items():
                    values.setdefault(key, {})[seed] = value
                print(f"done: {group}, seed {seed}", flush=True)
                if args.json:  # after every run: an interrupted sweep keeps what it measured
                    args.json.write_text(json.dumps(values, indent=1))
    width = max(len(k) for k in values)
    print(f"{'':{width}s}  " + "".join(f"{s:>8d}" for s in args.seeds) + "     min     max")
    for key, by_seed in values.items():
        cells = "".join(f"{by_seed.get(s, float('nan')):8.3f}" for s in args.seeds)
        print(f"{key:{width}s}  {cells}{min(by_seed.values()):8.3f}{max(by_seed.values()):8.3f}")


if __name__ == "__main__":
    main()
