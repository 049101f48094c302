"""The `vlmgrpo` command: train, evaluate, generate, make-tiny.

Bad input ends with one line on stderr naming the problem and the fix, and exit code 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from vlmgrpo.utils import UsageError


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # argparse's own errors: same one-line shape, exit 2
        raise UsageError(f"{message}; see `vlmgrpo {self.prog.split()[-1]} --help`")


def _positive_int(text: str) -> int:
    value = int(text) if text.lstrip("-").isdigit() else None
    if value is None or value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive whole number, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    from vlmgrpo.train import PRESETS

    parser = _Parser(prog="vlmgrpo", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    def source_args(p):
        p.add_argument("--preset", default="tiny", help=f"one of: {', '.join(PRESETS)}")
        p.add_argument("--model", help="hub id or local folder (default: the preset's)")
        p.add_argument("--dataset", help="hub id or local .parquet/.arrow/folder")
        p.add_argument("--seed", type=int, default=42)
        p.add_argument(
            "--trust-remote-code",
            action="store_true",
            help="run Python code shipped with a hub model (off: only trusted code runs)",
        )

    t = sub.add_parser("train", help="GRPO + LoRA training; writes a run folder")
    source_args(t)
    t.add_argument("--max-steps", type=_positive_int, help="stop after N optimizer steps")
    # Plain types here: `run` checks the values together (e.g. generations vs batch size).
    t.add_argument("--learning-rate", type=float, help="(default: the preset's)")
    t.add_argument("--num-generations", type=int, help="completions per prompt, >= 2")
    t.add_argument("--batch-size", type=_positive_int, help="completions per device and step")
    t.add_argument("--save-steps", type=_positive_int, help="checkpoint every N steps")
    t.add_argument(
        "--use-vllm",
        action="store_true",
        help="generate with vLLM (GPU only; pip install -e .[vllm])",
    )
    t.add_argument(
        "--vllm-mode",
        choices=["colocate", "server"],
        help="colocate (default): vLLM shares the training GPUs; server: `trl vllm-serve`",
    )
    t.add_argument("--output-dir", help="run folder (default: runs/PRESET)")
    t.add_argument("--resume", action="store_true", help="continue from the latest checkpoint")
    t.add_argument("--overwrite", action="store_true", help="replace an existing run folder")
    t.add_argument("--quiet", action="store_true", help="no progress bars")

    e = sub.add_parser("evaluate", help="greedy accuracy and format rate on the held-out split")
    source_args(e)
    e.add_argument("--adapter", help="a run folder or its adapter/ (default: the base model)")

    g = sub.add_parser("generate", help="answer one image + question, with the reasoning")
    source_args(g)
    g.add_argument("--adapter", help="a run folder or its adapter/")
    g.add_argument("--image", required=True, help="path of an image file")
    g.add_argument("--problem", required=True, help="the question to ask")
    g.add_argument("--max-new-tokens", type=_positive_int)

    m = sub.add_parser("make-tiny", help="build (or find cached) the offline tiny model")
    m.add_argument("--output-dir", help="where to save it (default: the cache)")
    m.add_argument("--force", action="store_true", help="rebuild even if cached")
    return parser


def _load_with_adapter(args):
    from vlmgrpo.train import get_preset, load_model

    preset = get_preset(args.preset)
    model, processor = load_model(args.model or preset.model, preset, args.trust_remote_code)
    if args.adapter:
        from peft import PeftModel

        path = Path(args.adapter)
        path = path / "adapter" if (path / "adapter").is_dir() else path
        if not (path / "adapter_config.json").exists():
            raise UsageError(
                f"{args.adapter} holds no LoRA adapter (adapter_config.json); pass a run "
                "folder written by `vlmgrpo train` or its adapter/ folder"
            )
        model = PeftModel.from_pretrained(model, path)
    return preset, model, processor


def _train(args) -> None:
    from vlmgrpo.train import distributed_state, run

    result = run(
        args.preset,
        model=args.model,
        dataset=args.dataset,
        max_steps=args.max_steps,
        learning_rate=args.learning_rate,
        num_generations=args.num_generations,
        batch_size=args.batch_size,
        save_steps=args.save_steps,
        use_vllm=args.use_vllm or None,
        vllm_mode=args.vllm_mode,
        output_dir=args.output_dir,
        resume=args.resume,
        overwrite=args.overwrite,
        seed=args.seed,
        progress=not args.quiet,
        trust_remote_code=args.trust_remote_code,
    )
    result.pop("config")
    if distributed_state().is_main_process:  # under `accelerate launch`: one report, not N
        print(json.dumps(result, indent=2))


def _evaluate(args) -> None:
    from vlmgrpo.evaluate import evaluate
    from vlmgrpo.train import load_data

    preset, model, processor = _load_with_adapter(args)
    _, test_set = load_data(preset, args.dataset or preset.dataset, args.seed)
    result = evaluate(
        model, processor, test_set, preset.eval_max_new_tokens, preset.eval_batch_size
    )
    print(json.dumps({k: v for k, v in result.items() if k != "records"}, indent=2))


def _generate(args) -> None:
    from PIL import Image, UnidentifiedImageError

    from vlmgrpo.data import cap_image
    from vlmgrpo.evaluate import generate_with_reasoning

    try:
        image = Image.open(args.image)
        image.load()
    except (OSError, UnidentifiedImageError) as err:
        raise UsageError(
            f"cannot read image {args.image} ({err}); pass a PNG or JPEG file"
        ) from err
    preset, model, processor = _load_with_adapter(args)
    result = generate_with_reasoning(
        model,
        processor,
        cap_image(image, preset.max_pixels),
        args.problem,
        args.max_new_tokens or preset.eval_max_new_tokens,
    )
    print(json.dumps(result, indent=2))


def _make_tiny(args) -> None:
    from vlmgrpo.tiny import make_tiny

    print(make_tiny(out_dir=args.output_dir, force=args.force))


COMMANDS = {"train": _train, "evaluate": _evaluate, "generate": _generate, "make-tiny": _make_tiny}


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
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
