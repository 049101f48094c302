"""The two GRPO rewards, usable as they are in TRL's `GRPOTrainer(reward_funcs=[...])`.

- `format_reward`: 1.0 when a completion is exactly one non-empty `<think>` block followed by
  one non-empty `<answer>` block (the shape `vlmgrpo.prompts.SYSTEM_PROMPT` asks for), else 0.0.
- `accuracy_reward`: 1.0 when the `<answer>` block equals the gold answer, mathematically
  (through math-verify) or as normalised text, else 0.0; None when there is no gold to compare.

TRL passes every dataset column as a keyword argument, hence the `**kwargs` on both.
"""

from __future__ import annotations

import re
import threading

from math_verify import parse, verify
from math_verify.errors import TimeoutException

_TAGS = ("<think>", "</think>", "<answer>", "</answer>")
# The tag counts are checked first, so each lazy group has one place to stop: linear time.
_SHAPE = re.compile(r"<think>(.*?)</think>\s*<answer>(.*?)</answer>", re.DOTALL)
_ANSWER = re.compile(r"<answer>(.*)</answer>", re.DOTALL)
_LONE_OPTION = re.compile(r"\((\w)\)")

# Sympy's cost grows with the input; past these sizes an answer is compared as text only.
_MAX_MATH_CHARS = 1000
_MAX_MATH_BRACES = 200
_TIMEOUT_S = 1
# Off the main thread math-verify has no timeout (it relies on SIGALRM), and short answers such
# as `$99999999!$`, `$\binom{99999999}{9}$` or `$9^{9^{9}}$` keep sympy busy unboundedly; so there
# only plain arithmetic (numbers, + - * / =, fractions, roots, one-letter variables) is parsed.
_PLAIN_MATH = re.compile(
    r"(?:\\(?:[dt]?frac|boxed|sqrt|pi|cdot|times|left|right)(?![A-Za-z])"
    r"|(?<![A-Za-z])[A-Za-z](?![A-Za-z])|\*(?!\*)|[\d\s.,+\-/=()\[\]{}$%])*"
)


def completion_text(completion: str | list[dict]) -> str:
    """The text of a completion, given as a string or as TRL's `[{"role", "content"}]` list."""
    if isinstance(completion, str):
        return completion
    content = completion[-1]["content"] if completion else ""
    if isinstance(content, list):  # multimodal messages split content into typed parts
        return "".join(part.get("text", "") for part in content)
    return content


def format_reward(completions: list, **kwargs) -> list[float]:
    """1.0 per completion shaped exactly `<think>…</think><answer>…</answer>`, else 0.0.

    Whitespace is allowed inside and between the blocks, nothing before or after them, and no
    tag may repeat or nest. Both blocks must hold non-whitespace text (reward hacking: an empty
    think earns nothing).
    """
    rewards = []
    for completion in completions:
        text = completion_text(completion).strip()
        match = None
        if all(text.count(tag) == 1 for tag in _TAGS):
            match = _SHAPE.fullmatch(text)
        ok = match is not None and match[1].strip() != "" and match[2].strip() != ""
        rewards.append(1.0 if ok else 0.0)
    return rewards


def extract_answer(text: str) -> str | None:
    """The stripped content of the one `<answer>` block after any reasoning, else None.

    None when there are zero or several answer tags, or when the block could belong to a
    `<think>` (it must follow the last `</think>`, with no `<think>` opened after it).
    """
    if text.count("<answer>") != 1 or text.count("</answer>") != 1:
        return None
    tail = text.rpartition("</think>")[2]
    match = None if "<think>" in tail else _ANSWER.search(tail)
    return match[1].strip() if match else None


def gold_answer(solution: str) -> str:
    """The gold's own `<answer>` content when it has one, else the whole solution stripped."""
    answer = extract_answer(solution)
    return solution.strip() if answer is None else answer


def _normalise(text: str) -> str:
    text = " ".join(text.lower().split()).strip("$ ").removesuffix(".").strip("$ ")
    option = _LONE_OPTION.fullmatch(text)  # "(B)" is how multiple-choice options are written
    return option[1] if option else text


def _math_match(pred: str, gold: str) -> bool:
    on_main = threading.current_thread() is threading.main_thread()
    for text in (pred, gold):
        if len(text) > _MAX_MATH_CHARS or text.count("{") > _MAX_MATH_BRACES:
            return False
        if not on_main and _PLAIN_MATH.fullmatch(text) is None:
            return False
    timeout = _TIMEOUT_S if on_main else None  # signals only work in the main thread
    try:
        gold_parsed = parse(gold, parsing_timeout=timeout)
        pred_parsed = parse(pred, parsing_timeout=timeout)
        # Words parse to []; requiring both parses keeps two different words from matching.
        return bool(gold_parsed and pred_parsed) and verify(
            gold_parsed, pred_parsed, timeout_seconds=timeout
        )
    except (Exception, TimeoutException):  # noqa: BLE001
        # math-verify swallows most errors itself; what escapes means "not equal" for this item.
        return False


def answers_match(pred: str, gold: str) -> bool:
    """Whether a predicted answer equals the gold, as normalised text or mathematically.

    Text is compared case-insensitively with whitespace collapsed, surrounding `$` and a
    trailing period dropped, and a lone parenthesised option unwrapped: `(B)` matches `b`.
    """
    return _normalise(pred) == _normalise(gold) or _math_match(pred, gold)


def accuracy_reward(completions: list, solution: list[str], **kwargs) -> list[float | None]:
    """1.0 per completion whose `<answer>` matches its gold, else 0.0; None for an empty gold."""
    rewards: list[float | None] = []
    for completion, sol in zip(completions, solution, strict=True):
        gold = gold_answer(sol)
        if not gold:
            rewards.append(None)
            continue
        pred = extract_answer(completion_text(completion))
        rewards.append(1.0 if pred is not None and answers_match(pred, gold) else 0.0)
    return rewards
