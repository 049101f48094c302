"""Every claim the course makes about a training run, measured on several seeds (CPU).

    make seed-spread          # every group, seeds 42 to 46, into vlmgrpo/seed_spread.json
    python benchmarks/seed_spread.py --groups default --seeds 42 43 --json spread.json
    ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 MKL_ENABLE_INSTRUCTIONS=AVX2 \
        OMP_NUM_THREADS=1 VLMGRPO_CACHE=/tmp/avx2 python benchmarks/seed_spread.py \
        --seeds 42 --label avx2 --json avx2.json   # another CPU's rounding: GROUP-avx2

A run is seeded, but another CPU (vector width, kernels, threads) rounds differently and the
run then takes another path; a claim that holds for one seed on one machine is an example.
So each run behind a sentence or an assert in notebooks 04, 05 and 06 and their solutions is
repeated here with other seeds (which also draw other training and held-out images), and
the script prints, for each measured quantity, its value on every seed and the range. With
``--json`` it merges every value, with the machine and the date, into a results file:
`vlmgrpo/seed_spread.json` is the one the course quotes (`vlmgrpo.measured`), and the
notebooks assert that their own run falls inside its ranges. A sweep labelled ``avx2``, run
under the AVX2 settings of `make test-portable`, files its groups as ``default-avx2`` and so
on: the course's ranges cover both (``default+default-avx2``).

Groups (minutes per seed on 2 CPU cores, AMD EPYC, measured in the sweep of 2026-12-06):

* ``default``: notebook 04's run (the tiny preset, 80 steps), then notebook 05's
  measurements on it and its exercises: agreement, the planted think, the swapped image,
  the cold start sampled (~4);
* ``reasoning``: notebook 06's run (the tiny-reasoning preset, 80 steps) with its measures of
  the reasoning, and its exercises: a right think planted before RL, a think that lies twice
  (`prices.lying`), where the cold start's thinks point, the format reward alone, no KL
  anchor (~5);
* ``beta0``: notebook 05's exercise 4, the tiny preset without the KL anchor, and where
  its reasoning's hue moved round the wheel (~5);
* ``lab``: notebook 04's lab (30 steps, ``num_iterations=2``; ``--variants`` picks among the
  four loss variants) and the runs of its exercises (epsilon 10, ``num_iterations=4``, GSPO's
  ratio with the token-level epsilon 0.2) (~3 for the five that `make seed-spread` runs).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import tempfile
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path
from statistics import fmean as mean

import peft
from datasets import Dataset, Features, Value
from datasets import Image as ImageFeature

from vlmgrpo import colours, data, models, plots, presets, prices, train
from vlmgrpo.course import setup
from vlmgrpo.evaluate import evaluate, intervene
from vlmgrpo.rewards import extract_answer, format_reward

TINY = presets.PRESETS["tiny"]
REASONING = presets.PRESETS["tiny-reasoning"]
REWARD = "rewards/accuracy_reward/mean"
SEEDS = (42, 43, 44, 45, 46)
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
    zero_first, zero_last = tenths(logged(m, "frac_reward_zero_std"))
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
        "kl peak": max(kl),
        "kl peak step": 1 + kl.index(max(kl)) if "kl" in m else float("nan"),
        "zero std first tenth": zero_first,
        "zero std last tenth": zero_last,
        "loss min": min(logged(m, "loss")),
        "loss max": max(logged(m, "loss")),
        "step seconds": mean(logged(m, "step_seconds")),
    }


def sampled_accuracy(model, processor, rows, k: int = 8) -> float:
    """Solutions/05, exercise 3: the cold start's accuracy when sampled as GRPO samples."""
    import torch

    from vlmgrpo.prompts import build_conversation

    torch.manual_seed(0)
    right = 0
    with model.disable_adapter():
        for row in rows:
            prompt = processor.apply_chat_template(
                build_conversation(row["problem"]), add_generation_prompt=True, tokenize=False
            )
            batch = processor(text=[prompt] * k, images=[row["image"]] * k, return_tensors="pt")
            with torch.no_grad():
                out = model.generate(
                    **batch,
                    do_sample=True,
                    top_k=TINY.top_k,
                    temperature=TINY.temperature,
                    max_new_tokens=TINY.eval_max_new_tokens,
                )
            texts = processor.batch_decode(
                out[:, batch["input_ids"].shape[1] :], skip_special_tokens=True
            )
            right += sum(extract_answer(t) == row["solution"] for t in texts)
    return right / (k * len(rows))


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
    forced = [colours.opposite(s) for s in test_set["solution"]]
    prefixes = [colours.forced_think(hue) for hue in forced]
    with tuned.disable_adapter():
        before = evaluate(tuned, processor, test_set, n, bs, progress=False)
        planted_before = intervene(tuned, processor, test_set, prefixes, forced, n, bs)
    planted_after = intervene(tuned, processor, test_set, prefixes, forced, n, bs)
    think_right = sum(
        colours.think_hue(r["completion"]) == r["solution"] for r in before["records"]
    )
    # Solutions/05, exercise 1: the true hue in the think, the opposite hue in the image.
    rng = random.Random(0)
    swapped_hues = [colours.opposite(s) for s in test_set["solution"]]
    swapped = Dataset.from_dict(
        {
            "image": [colours.draw_shape(h, rng) for h in swapped_hues],
            "problem": test_set["problem"],
            "solution": test_set["solution"],
        },
        features=Features(
            {"image": ImageFeature(), "problem": Value("string"), "solution": Value("string")}
        ),
    )
    true_think = [colours.forced_think(s) for s in test_set["solution"]]
    image_after = intervene(tuned, processor, swapped, true_think, swapped_hues, n, bs)
    with tuned.disable_adapter():
        image_before = intervene(tuned, processor, swapped, true_think, swapped_hues, n, bs)
    # Exercise 2: under the planted think, before RL, the answer is the true hue's slip.
    true_slip = mean(r["answer"] == colours.slip(r["solution"]) for r in planted_before["records"])
    row |= {
        "follows the swapped image, before": image_before["follow"],
        "gives the swapped image's slip, before": mean(
            r["answer"] == colours.slip(h)
            for r, h in zip(image_before["records"], swapped_hues, strict=True)
        ),
        "follows the swapped image, after": image_after["follow"],
        "planted, before: the true hue's slip": true_slip,
        # Exercise 3: sampled accuracy of the cold start, 8 samples for 40 images.
        "sampled accuracy, before": sampled_accuracy(tuned, processor, test_set.select(range(40))),
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
        hue = colours.think_hue(r["completion"])
        offsets[
            "none"
            if hue is None
            else (colours.NAMES.index(hue) - colours.NAMES.index(r["solution"])) % 6
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
        "accuracy_no_think_before",
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
    # Exercise 2: a think that names a wrong hue with a third hue's price, before and after RL;
    # the share of answers that copy its number, look its hue up, or look up the image's hue.
    lies, readings = prices.lying(test_set["problem"], test_set["solution"])
    for when in ("before", "after"):
        if when == "before":
            with model.disable_adapter():
                lied = evaluate(model, processor, test_set, n, bs, False, prefixes=lies)
        else:
            lied = evaluate(model, processor, test_set, n, bs, False, prefixes=lies)
        answers = [extract_answer(r["completion"]) for r in lied["records"]]
        for name, targets in readings.items():
            share = mean(a == t for a, t in zip(answers, targets, strict=True))
            row[f"reasoning: lying think, {when}: {name}"] = share
    # After RL: is the think right exactly where the answer is?
    after = evaluate(model, processor, test_set, n, bs, progress=False)
    row["reasoning: think right iff answer right, after"] = mean(
        (
            prices.read_think(r["completion"])
            == (prices.gold_hue(p, r["solution"]), int(r["solution"]))
        )
        == bool(r["accuracy"])
        for r, p in zip(after["records"], test_set["problem"], strict=True)
    )
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


def machine() -> dict:
    """Where the figures were measured: the CPU, its cores, the packages that set the path."""
    import platform

    import torch
    import transformers
    import trl

    cpu = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        names = [
            ln.split(":", 1)[1].strip()
            for ln in cpuinfo.read_text().splitlines()
            if ln.startswith("model name")
        ]
        cpu = names[0] if names else cpu
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "isa": os.environ.get("ATEN_CPU_CAPABILITY", "default"),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "trl": trl.__version__,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=list(SEEDS))
    parser.add_argument("--groups", nargs="+", choices=list(GROUPS), default=list(GROUPS))
    parser.add_argument(
        "--json",
        type=Path,
        help="merge every value into this results file (vlmgrpo/seed_spread.json is the one the "
        "course quotes); written after every seed, so an interrupted sweep keeps what it measured",
    )
    parser.add_argument("--variants", nargs="+", choices=list(LAB), help="only these lab runs")
    parser.add_argument(
        "--label",
        default="",
        help="file the figures under GROUP-LABEL, e.g. `avx2` for a sweep under "
        "ATEN_CPU_CAPABILITY=avx2 that must not widen the reference machine's ranges",
    )
    args = parser.parse_args(argv)
    setup(versions=False)
    results = json.loads(args.json.read_text()) if args.json and args.json.exists() else {}
    values: dict[str, dict[int, float]] = {}
    with tempfile.TemporaryDirectory(prefix="seed-spread-") as tmp:
        for group in args.groups:
            for seed in args.seeds:
                kwargs = {"variants": args.variants} if group == "lab" else {}
                for key, value in GROUPS[group](seed, Path(tmp), **kwargs).items():
                    values.setdefault(key, {})[seed] = value
                    if args.json:
                        name = f"{group}-{args.label}" if args.label else group
                        entry = results.setdefault("groups", {}).setdefault(name, {})
                        entry.setdefault("values", {}).setdefault(key, {})[str(seed)] = value
                        entry["seeds"] = sorted({*entry.get("seeds", []), seed})
                        entry["date"] = time.strftime("%Y-%m-%d")
                        entry["machine"] = machine()
                print(f"done: {group}, seed {seed}", flush=True)
                if args.json:
                    tmp_file = args.json.with_suffix(".partial")
                    tmp_file.write_text(json.dumps(results, indent=1, sort_keys=True) + "\n")
                    tmp_file.replace(args.json)
    width = max(len(k) for k in values)
    print(f"{'':{width}s}  " + "".join(f"{s:>8d}" for s in args.seeds) + "     min     max")
    for key, by_seed in values.items():
        cells = "".join(f"{by_seed.get(s, float('nan')):8.3f}" for s in args.seeds)
        print(f"{key:{width}s}  {cells}{min(by_seed.values()):8.3f}{max(by_seed.values()):8.3f}")


if __name__ == "__main__":
    main()
