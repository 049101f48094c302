"""Tiny datasets in the lmms-lab/multimodal-open-r1-8k-verified schema, built on the fly."""

from __future__ import annotations

from pathlib import Path

import datasets
from PIL import Image

FIXTURE_FEATURES = datasets.Features(
    {
        "image": datasets.Image(),
        "problem": datasets.Value("string"),
        "solution": datasets.Value("string"),
        "original_question": datasets.Value("string"),
        "original_answer": datasets.Value("string"),
    }
)
# The modes real datasets mix: photos, grayscale scans, transparent PNGs, palette charts.
FIXTURE_MODES = ("RGB", "L", "RGBA", "P")


def make_fixture_image(
    index: int, mode: str = "RGB", size: tuple[int, int] = (64, 48)
) -> Image.Image:
    """A flat image whose colour depends on `index`, so rows can be told apart."""
    colour = ((37 * index + 20) % 256, (91 * index + 40) % 256, (151 * index + 60) % 256)
    image = Image.new("RGB", size, colour)
    if mode == "RGBA":
        image.putalpha(200)
        return image
    return (
        image.convert(mode, palette=Image.Palette.ADAPTIVE) if mode == "P" else image.convert(mode)
    )


def make_fixture_dataset(
    n: int = 10, *, size: tuple[int, int] = (64, 48), modes: tuple[str, ...] = FIXTURE_MODES
) -> datasets.Dataset:
    """`n` rows with the columns image, problem, solution, original_question, original_answer."""
    rows = []
    for i in range(n):
        answer = str(2 * i)
        # The real solutions come both ways: a think/answer pair, or the bare answer.
        think = f"<think>{i} plus {i} is {answer}.</think><answer>{answer}</answer>"
        rows.append(
            {
                "image": make_fixture_image(i, modes[i % len(modes)], size),
                "problem": f"Problem {i}: what is {i} + {i}?",
                "solution": think if i % 2 == 0 else answer,
                "original_question": f"What is {i} + {i}?",
                "original_answer": answer,
            }
        )
    return datasets.Dataset.from_list(rows, features=FIXTURE_FEATURES)


def make_article_dataset(n: int = 400, latex: bool = False) -> datasets.Dataset:
    """`n` rows shaped like lmms-lab/multimodal-open-r1-8k-verified: mostly multiple choice.

    Three rows in four list `Choices:` with a letter as the gold answer, the rest ask for a
    number; solutions are `<think>...</think>\\n\\n<answer>...</answer>`, as in the real data.
    With `latex`, each problem states its sizes in LaTeX, as many real ones do, and holds an
    unbalanced dollar.
    """
    rows = []
    for i in range(n):
        a, b = i % 7 + 2, i % 5 + 3
        sides = f"${a}$ by ${b}$ ($AB_{{1}} = \\frac{{{2 * a}}}{{2}}$, costs $5)" if latex else ""
        if i % 4:
            options = [a * b, a + b, a * b + 1, abs(a - b)]
            letter = "ABCD"[i % 4]
            options[i % 4], options[0] = options[0], options[i % 4]
            listed = "\n".join(f"{x}. {v}" for x, v in zip("ABCD", options, strict=True))
            problem = f"As shown in the figure, the rectangle is {sides or f'{a} by {b}'}. "
            problem += "Its area is ()\n"
            problem += f"Choices:\n{listed}"
            answer, value = letter, a * b
        else:
            problem = f"Based on the image, what is {a} times {b}?" + (
                f" {sides}" if latex else ""
            )
            answer = value = a * b
        rows.append(
            {
                "image": make_fixture_image(i, "RGB", (56 + 8 * (i % 5), 56)),
                "problem": problem,
                "solution": f"<think>{a} \\times {b} = {value}</think>\n\n"
                f"<answer>{answer}</answer>",
                "original_question": problem,
                "original_answer": str(value),
            }
        )
    return datasets.Dataset.from_list(rows, features=FIXTURE_FEATURES)


def write_checkpoint(folder: Path, state: str | None) -> None:
    """A checkpoint folder as the Trainer leaves it; `state` None: killed before its state."""
    folder.mkdir(parents=True)
    (folder / "adapter_config.json").write_text("{}")
    if state is not None:
        (folder / "trainer_state.json").write_text(state)
