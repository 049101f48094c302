r"""A cold-start task for stand-ins that write LaTeX, as real models do on the real dataset.

The tiny stand-ins copy the colour task's plain sentences, so nothing they sample holds a `$`.
A real model on lmms-lab/multimodal-open-r1-8k-verified writes `$\frac{1}{2}$`, `x^2`, `S_{1}`,
`\boxed{…}` and stray dollars, and any figure that draws its text must survive that. This
module has the two functions `vlmgrpo.tiny` reads of a task (`corpus`, `annotated`); the
fixtures register it as the task "latex" while they build such a stand-in.
"""

from __future__ import annotations

import random

from vlmgrpo import colours

QUESTION = "What is the area of the shape, in $cm^2$?"
TRACES = (
    r"The side is ${a}$, so $S_{{1}} = {a}^2 = {s}$ and \frac{{{s}}}{{1}} is it",
    r"$x^2$ with $x = {a}$: $\sqrt{{{s}}}$ = {a}, the area costs $5",
    r"Area $= {a} \times {a}$ = ${s}$ {{or}} $\boxed{{{s}}}$",
)


def _trace(rng: random.Random) -> str:
    a = rng.randint(2, 9)
    think = rng.choice(TRACES).format(a=a, s=a * a)
    return f"<think>{think}</think><answer>$\\boxed{{{a * a}}}$</answer>"


def annotated(rng: random.Random, mislabel: float) -> tuple:
    """One cold-start example: (image, question, a trace in LaTeX)."""
    image = colours.draw_shape(rng.choice(colours.NAMES), rng)
    return image, QUESTION, _trace(rng)


def corpus() -> list[str]:
    """The task's text, for the stand-in's tokenizer: dollars and backslashes get tokens."""
    rng = random.Random(0)
    return [QUESTION, *(_trace(rng) for _ in range(200))]
