"""The `vlmgrpo` command: train, evaluate, generate, make-tiny.

Bad input ends with one line on stderr naming the problem and the fix, and exit code 2.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from vlmgrpo.utils import UsageError, quiet_known_warnings


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # argparse's own errors: same one-line shape, exit 2
        raise UsageError(f"{message}; see `vlmgrpo {self.prog.split()[-1]} --help`")


def _positive_int(text: str) -> int:
    value = int(text) if text.lstrip("-").isdigit() else None
    if value is None or value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive whole number, got {text!r}")
    return value


def _rows(text: str) -> int:
    value = int(text) if text.isdigit() else None
    if value is None:
        raise argparse.ArgumentTypeError(f"expected 0 or a positive whole number, got {text!r}")
    return value


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1], got {text!r}")
    return value


# `vlmgrpo train` flags that override a preset field: (flag, field, type, help).
TRAIN_SETTINGS = (
    ("--max-steps", "max_steps", _positive_int, "stop after N optimizer steps"),
    ("--learning-rate", "learning_rate", float, "LoRA learning rate"),
    ("--num-generations", "num_generations", int, "completions per prompt, >= 2"),
    ("--batch-size", "batch_size", _positive_int, "completions per device and step"),
    (
        "--gradient-accumulation-steps",
        "gradient_accumulation_steps",
        _positive_int,
        "batches per optimizer step",
    ),
    ("--max-completion-length", "max_completion_length", _positive_int, "tokens per answer"),
    ("--fraction", "fraction", _fraction, "share of a real dataset's rows used (first N %%)"),
    ("--num-train-epochs", "num_train_epochs", float, "passes over the data (with no max steps)"),
    ("--beta", "beta", float, "KL penalty; > 0 adds a forward pass with LoRA off (no model copy)"),
    ("--loss-type", "loss_type", str, "how token losses are averaged"),
    ("--save-steps", "save_steps", _positive_int, "checkpoint every N steps"),
    (
        "--eval-rows",
        "eval_rows",
        _rows,
        "score the first N held-out rows before and after training (0: no evaluation)",
    ),
    (
        "--vllm-gpu-memory-utilization",
        "vllm_gpu_memory_utilization",
        float,
        "colocated vLLM's share of each GPU",
    ),
)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    from vlmgrpo.presets import LOSS_TYPES, PRESETS, SERVE_FLAGS, defaults_help

    parser = _Parser(prog="vlmgrpo", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    def source_args(p, from_run: bool = False):
        def default(value: str) -> str:  # evaluate/generate read the run folder's run.json
            run = "the run's with --adapter RUN_DIR, else " if from_run else ""
            return f" (default: {run}{value})"

        p.add_argument(
            "--preset",
            default=None if from_run else "tiny",
            help=f"one of: {', '.join(PRESETS)}{default('tiny')}",
        )
        p.add_argument("--model", help="hub id or local folder" + default("the preset's"))
        p.add_argument(
            "--dataset", help="hub id or .parquet/.arrow/folder" + default("the preset's")
        )
        p.add_argument(
            "--seed", type=int, default=None if from_run else 42, help=default("42")[1:]
        )
        p.add_argument(
            "--trust-remote-code",
            action="store_true",
            help="run Python code shipped with a hub model (off: only trusted code runs)",
        )

    t = sub.add_parser("train", help="GRPO + LoRA training; writes a run folder")
    source_args(t)
    # Plain types here: `run` checks the values together (e.g. generations vs batch size).
    for flag, name, kind, text in TRAIN_SETTINGS:
        extra = {"choices": LOSS_TYPES} if name == "loss_type" else {}
        t.add_argument(
            flag, dest=name, type=kind, help=f"{text} (default {defaults_help(name)})", **extra
        )
    t.add_argument(
        "--use-vllm",
        action="store_true",
        help="generate with vLLM (GPU only; the vLLM install profile, see the README)",
    )
    t.add_argument(
        "--vllm-mode",
        choices=["colocate", "server"],
        help="colocate (default): vLLM shares the training GPUs; server: a vLLM server you "
        f"start first, `VLLM_SERVER_DEV_MODE=1 vllm serve MODEL {SERVE_FLAGS}`",
    )
    t.add_argument("--output-dir", help="run folder (default: runs/PRESET)")
    t.add_argument("--resume", action="store_true", help="continue from the latest checkpoint")
    t.add_argument("--overwrite", action="store_true", help="replace an existing run folder")
    t.add_argument("--quiet", action="store_true", help="no progress bars, no log lines")

    e = sub.add_parser("evaluate", help="greedy accuracy and format rate on the held-out split")
    e.add_argument("--adapter", help="a run folder (its settings are reused), or an adapter/")
    source_args(e, from_run=True)
    e.add_argument(
        "--eval-rows", type=_rows, help="score the first N held-out rows (default: all)"
    )

    g = sub.add_parser("generate", help="answer one image + question, with the reasoning")
    g.add_argument("--adapter", help="a run folder (its settings are reused), or an adapter/")
    source_args(g, from_run=True)
    g.add_argument("--image", required=True, help="path of an image file")
    g.add_argument("--problem", required=True, help="the question to ask")
    g.add_argument("--max-new-tokens", type=_positive_int)

    m = sub.add_parser("make-tiny", help="build (or find cached) the offline tiny model")
    m.add_argument(
        "--preset",
        default="tiny",
        help="the offline preset whose model to build: tiny (default) or tiny-reasoning",
    )
    m.add_argument("--output-dir", help="where to save it (default: the cache)")
    m.add_argument("--force", action="store_true", help="rebuild even if cached")
    return parser


def _setting(args):
    """(preset, model, dataset, seed, adapter folder) for evaluate/generate.

    With --adapter RUN_DIR they come from the run's run.json; flags override them. A bare
    adapter folder (no run.json) needs --preset or --model to know its base model.
    """
    from vlmgrpo.presets import get_preset
    from vlmgrpo.runs import adapter_folder, read_run_file
    from vlmgrpo.settings import resolve

    record = {}
    adapter = None
    if args.adapter:
        path = Path(args.adapter)
        if not path.is_dir():
            raise UsageError(f"--adapter {path} is not a folder; pass a run folder")
        try:
            record = read_run_file(path)
        except UsageError:
            if args.preset is None and args.model is None:
                raise  # nothing says which base model the adapter belongs to
        adapter = adapter_folder(path)
    preset = get_preset(args.preset) if args.preset else record.get("preset", get_preset("tiny"))
    model = args.model or (record["model"] if record else preset.model)
    dataset = args.dataset or (record["dataset"] if record else preset.dataset)
    seed = args.seed if args.seed is not None else record.get("seed", 42)
    # Images are sized for the family of the model that answers, as in training.
    preset = resolve(
        preset,
        model=model,
        dataset=dataset,
        training=False,
        trust_remote_code=args.trust_remote_code,
    )
    return preset, preset.model, preset.dataset, seed, adapter


def _load_for_inference(args, setting):
    """The model of `setting` with its adapter, on the best device, and its processor."""
    from vlmgrpo.models import load_trained

    preset, model_source, _, _, adapter = setting
    return load_trained(model_source, preset, adapter, args.trust_remote_code)


def _train(args) -> None:
    from vlmgrpo.train import run
    from vlmgrpo.utils import distributed_state

    result = run(
        args.preset,
        model=args.model,
        dataset=args.dataset,
        use_vllm=args.use_vllm or None,
        vllm_mode=args.vllm_mode,
        output_dir=args.output_dir,
        resume=args.resume,
        overwrite=args.overwrite,
        seed=args.seed,
        progress=not args.quiet,
        trust_remote_code=args.trust_remote_code,
        **{name: getattr(args, name) for _, name, _, _ in TRAIN_SETTINGS},
    )
    result.pop("config")
    if distributed_state().is_main_process:  # under `accelerate launch`: one report, not N
        print(json.dumps(result, indent=2))


def _evaluate(args) -> None:
    from vlmgrpo.data import first_rows, load_data
    from vlmgrpo.evaluate import evaluate

    setting = preset, _, dataset, seed, _ = _setting(args)
    _, test_set = load_data(preset, dataset, seed)  # data errors before the model loads
    test_set = first_rows(test_set, args.eval_rows)
    if len(test_set) == 0:  # --eval-rows 0: nothing to score, no model to load
        print(json.dumps({"accuracy": None, "format": None, "n": 0}, indent=2))
        return
    model, processor = _load_for_inference(args, setting)
    result = evaluate(
        model, processor, test_set, preset.eval_max_new_tokens, preset.eval_batch_size
    )
    if dataset is None:  # a synthetic task: what it measures of the reasoning
        from vlmgrpo.evaluate import task_measures

        result.update(task_measures(model, processor, test_set, preset, result))
    print(json.dumps({k: v for k, v in result.items() if k != "records"}, indent=2))


def _generate(args) -> None:
    from PIL import Image, UnidentifiedImageError

    from vlmgrpo.data import cap_image, check_aspect_ratio
    from vlmgrpo.evaluate import generate_with_reasoning
    from vlmgrpo.presets import FAMILIES

    try:
        image = Image.open(args.image)
        image.load()
    except (OSError, UnidentifiedImageError) as err:
        raise UsageError(
            f"cannot read image {args.image} ({err}); pass a PNG or JPEG file"
        ) from err
    setting = preset, *_ = _setting(args)
    image = cap_image(image, preset.max_pixels, FAMILIES[preset.family].token_side)
    check_aspect_ratio(image, args.image)
    model, processor = _load_for_inference(args, setting)
    result = generate_with_reasoning(
        model,
        processor,
        image,
        args.problem,
        args.max_new_tokens or preset.eval_max_new_tokens,
    )
    print(json.dumps(result, indent=2))


def _make_tiny(args) -> None:
    from vlmgrpo.presets import get_preset
    from vlmgrpo.tiny import SPECS, make_tiny

    spec = SPECS[get_preset(args.preset).task]
    print(make_tiny(spec, out_dir=args.output_dir, force=args.force))


COMMANDS = {"train": _train, "evaluate": _evaluate, "generate": _generate, "make-tiny": _make_tiny}


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    quiet_known_warnings()
    import matplotlib

    matplotlib.use("Agg")  # the CLI only saves figures; no window, also with no screen
    try:
        args = build_parser().parse_args(argv)
        COMMANDS[args.command](args)
    except UsageError as err:
        print(f"vlmgrpo: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            "vlmgrpo: interrupted; `vlmgrpo train --resume` continues from the last checkpoint",
            file=sys.stderr,
        )
        return 130
    return 0
