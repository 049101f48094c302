"""Time to a held-out accuracy: the article's GRPO settings against the `tiny` preset (CPU).

    python benchmarks/compare_recipes.py                       # 5 minutes of training each
    python benchmarks/compare_recipes.py --budget-minutes 2 --target 0.85

Both recipes train a LoRA adapter on the same cold-started tiny model and synthetic task:

* ``article``: the article's GRPO and LoRA settings (2 generations per prompt, learning rate
  1e-5, batch 2, LoRA r=8, alpha=32, dropout 0.1 on q_proj/v_proj, one epoch), keeping from
  ``tiny`` only what belongs to the model and task (completion length, top-k, images);
* ``tiny``: the preset `vlmgrpo train` runs by default.

The clock counts training only. Every --eval-seconds of it, a callback scores greedy answers
on the 120 held-out images, and the recipe stops at the target accuracy, when its budget is
spent, or when its own schedule ends.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from transformers import TrainerCallback

from vlmgrpo import data, models, presets, train
from vlmgrpo.evaluate import evaluate
from vlmgrpo.utils import seed_everything

TINY = presets.PRESETS["tiny"]
ARTICLE = replace(
    TINY,
    name="article",
    num_generations=2,
    batch_size=2,
    learning_rate=1e-5,
    lora_r=8,
    lora_alpha=32,
    lora_dropout=0.1,
    target_modules=["q_proj", "v_proj"],
    max_steps=-1,  # one epoch of the 2000 training prompts
)


@dataclass
class Outcome:
    """What one recipe reached: (step, training seconds, accuracy) at every evaluation."""

    name: str
    curve: list[tuple[int, float, float]] = field(default_factory=list)
    reached: tuple[int, float] | None = None  # (step, training seconds) at the target
    steps: int = 0
    seconds: float = 0.0


class TimeToTarget(TrainerCallback):
    """Times training steps, evaluates every `every` seconds of them, stops at the target."""

    def __init__(self, outcome, processor, test_set, preset, target, budget, every):
        self.outcome, self.processor, self.test_set = outcome, processor, test_set
        self.preset, self.target, self.budget, self.every = preset, target, budget, every
        self._start = self._last_eval = 0.0

    def on_step_begin(self, args, state, control, **kwargs):
        self._start = time.perf_counter()

    def on_step_end(self, args, state, control, model=None, **kwargs):
        out = self.outcome
        out.seconds += time.perf_counter() - self._start
        out.steps = state.global_step
        over = out.seconds >= self.budget or state.global_step >= state.max_steps
        if out.seconds - self._last_eval < self.every and not over:
            return
        self._last_eval = out.seconds
        accuracy = evaluate(
            model,
            self.processor,
            self.test_set,
            self.preset.eval_max_new_tokens,
            self.preset.eval_batch_size,
            progress=False,
        )["accuracy"]
        out.curve.append((state.global_step, out.seconds, accuracy))
        print(
            f"{out.name}: step {state.global_step}, {out.seconds:.1f} s: accuracy {accuracy:.3f}",
            file=sys.stderr,
        )
        if accuracy >= self.target:
            out.reached = (state.global_step, out.seconds)
        control.should_training_stop = over or out.reached is not None


def run_recipe(preset, target: float, budget: float, every: float, seed: int) -> Outcome:
    """Train `preset` on the tiny model until the target, the budget or its last step."""
    seed_everything(seed)
    train_set, test_set = data.load_data(preset, None, seed)
    model, processor = models.load_model(None, preset)
    outcome = Outcome(preset.name)
    before = evaluate(
        model, processor, test_set, preset.eval_max_new_tokens, preset.eval_batch_size, False
    )
    outcome.curve.append((0, 0.0, before["accuracy"]))
    callback = TimeToTarget(outcome, processor, test_set, preset, target, budget, every)
    with tempfile.TemporaryDirectory() as tmp:
        trainer = train.build_trainer(
            preset, model, processor, train_set, Path(tmp), seed, False, [callback]
        )
        trainer.train()
    return outcome


def main() -> None:
    """Run both recipes and print them side by side."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", type=float, default=0.85, help="held-out accuracy")
    parser.add_argument("--budget-minutes", type=float, default=5.0, help="per recipe")
    parser.add_argument("--eval-seconds", type=float, default=15.0, help="of training")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    budget = args.budget_minutes * 60
    outcomes = [
        run_recipe(preset, args.target, budget, args.eval_seconds, args.seed)
        for preset in (ARTICLE, TINY)
    ]
    print(f"time to held-out accuracy {args.target} (training time only, tiny model, CPU)")
    print(f"{'recipe':<8} {'steps':>6} {'train s':>8} {'before':>7} {'best':>6}  time to target")
    for out in outcomes:
        best = max(accuracy for *_, accuracy in out.curve)
        if out.reached:
            step, seconds = out.reached
            verdict = f"{seconds:.1f} s (step {step})"
        else:
            verdict = f"not reached in {out.seconds / 60:.1f} min ({out.steps} steps)"
        before = out.curve[0][2]
        print(
            f"{out.name:<8} {out.steps:>6} {out.seconds:>8.1f} {before:>7.3f} {best:>6.3f}  "
            f"{verdict}"
        )


if __name__ == "__main__":
    main()
