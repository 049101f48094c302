r"""The accuracy and format test cases of two peer projects, rewritten for this course's tags.

Where they come from (read from git snapshots, `git show HEAD:<path>`):

- huggingface/trl at commit f2cd57710ae345ea6428ae95363267fcf38a3dc8 (VERSION 1.10.0.dev0),
  `tests/test_rewards.py`: `TestThinkFormatReward` (`trl.rewards.think_format_reward`),
  `TestAccuracyReward` (`accuracy_reward`) and `TestReasoningAccuracyReward`
  (`reasoning_accuracy_reward`); the rewards themselves in `trl/rewards/format_rewards.py` and
  `trl/rewards/accuracy_rewards.py`.
- huggingface/open-r1 at commit 1416fa0cf21595d2083b399a2a0bbddd7f6e9563,
  `tests/test_rewards.py`: `TestRewards` (`accuracy_reward`, `format_reward`) and
  `TestRepetitionPenaltyReward.test_tag_count_rewards_*` (`tag_count_reward`, a graded format
  reward: 0.25 per well-placed tag); the rewards in `src/open_r1/rewards.py`.

Length, cosine, repetition, reasoning-steps, overlong and code rewards are left out.

How a peer case becomes a `PeerCase`:

- accuracy: the peer's completion content becomes the inside of our `<answer>…</answer>`, after
  a short `<think>The reasoning.</think>`; for `reasoning_accuracy_reward` the text before the
  peer's reasoning delimiter (`</think>`) is kept as our think and the text after it becomes the
  answer; a completion without the delimiter keeps no think. The peer's gold is our `solution`
  unchanged (a bare answer). `peer_expected` is what the peer test asserts; None where the peer
  skips an unparseable gold.
- format: the peer's completion is kept literally (`<think>`/`<answer>` are the same tags).
  TRL's `think_format_reward` asks only for a leading `<think>…</think>`, so its valid cases
  have no `<answer>` block at all.

`source` is "<project> <file>::<class>::<test>", with `[i]` for the i-th item of a test that
checks several.
"""

from __future__ import annotations

from typing import NamedTuple


class PeerCase(NamedTuple):
    """One peer test item: a completion, its gold, what the peer expects, and a note."""

    source: str
    kind: str  # "accuracy" or "format"
    completion: str
    solution: str
    peer_expected: float | None
    note: str


def _answer(content: str, think: str | None = "The reasoning.") -> str:
    """Our completion for a peer's answer content, after a think when one is given."""
    head = "" if think is None else f"<think>{think}</think>"
    return f"{head}<answer>{content}</answer>"


_TRL = "trl tests/test_rewards.py::"
_TRL_FMT = _TRL + "TestThinkFormatReward::"
_TRL_ACC = _TRL + "TestAccuracyReward::"
_TRL_RACC = _TRL + "TestReasoningAccuracyReward::"
_R1 = "open-r1 tests/test_rewards.py::TestRewards::"
_R1_TAGS = "open-r1 tests/test_rewards.py::TestRepetitionPenaltyReward::"

_F63 = r"\frac{63}{400}"
_BOXED_63 = r"\boxed{\frac{63}{400}}"
_BOXED_64 = r"\boxed{\frac{64}{400}}"
_R1_GOOD = "<think>\nSome reasoning\n</think>\n<answer>\nThe answer\n</answer>"
_R1_MULTILINE = (
    "<think>\nI will count each distinct object in the image:\n1. Purple scooter\n"
    "2. Red bicycle\n3. Green motorcycle\n4. Gray sedan\n5. Yellow school bus\n"
    "6. Small green double-decker bus\n7. Small red car\n8. Small purple car\n"
    "9. Small gray dirt bike\n\nThere are 9 distinct objects in total.\n</think>\n"
    "<answer>\n9\n</answer>"
)

_TRL_THINK_ONLY = "think_format_reward: a leading think block, any text after, no <answer>"

PEER_CASES: tuple[PeerCase, ...] = (
    # --- trl: think_format_reward (format) -------------------------------------------------
    PeerCase(
        _TRL_FMT + "test_valid_format[0]",
        "format",
        "<think>This is my reasoning.</think>This is my answer.",
        "",
        1.0,
        "simple, one-line reasoning; " + _TRL_THINK_ONLY,
    ),
    PeerCase(
        _TRL_FMT + "test_valid_format[1]",
        "format",
        "<think>\nThis is my reasoning.\n</think>\nThis is my answer.",
        "",
        1.0,
        "multiline reasoning; " + _TRL_THINK_ONLY,
    ),
    PeerCase(
        _TRL_FMT + "test_valid_format[2]",
        "format",
        "<think>\nThis is\nmy reasoning.\n</think>\nThis is my answer.",
        "",
        1.0,
        "multiline reasoning; " + _TRL_THINK_ONLY,
    ),
    PeerCase(
        _TRL_FMT + "test_valid_format[3]",
        "format",
        "<think>\nThis is <some tag> my reasoning.</think>\nThis is my answer.",
        "",
        1.0,
        "reasoning including another tag; " + _TRL_THINK_ONLY,
    ),
    PeerCase(
        _TRL_FMT + "test_valid_format[4]",
        "format",
        "<think></think>\nThis is my answer.",
        "",
        1.0,
        "empty reasoning is valid for the peer; " + _TRL_THINK_ONLY,
    ),
    PeerCase(
        _TRL_FMT + "test_invalid_format[0]",
        "format",
        "<think>\nThis is my reasoning.\nThis is my answer.",
        "",
        0.0,
        "no closing </think>",
    ),
    PeerCase(
        _TRL_FMT + "test_invalid_format[1]",
        "format",
        "<think>This is my reasoning.\nThis is my answer.",
        "",
        0.0,
        "no closing </think>",
    ),
    PeerCase(
        _TRL_FMT + "test_invalid_format[2]",
        "format",
        "This is my reasoning. This is my answer.",
        "",
        0.0,
        "no <think> tags",
    ),
    PeerCase(
        _TRL_FMT + "test_invalid_format[3]",
        "format",
        "This is my reasoning.\nThis is my answer.",
        "",
        0.0,
        "no <think> tags",
    ),
    PeerCase(
        _TRL_FMT + "test_invalid_format[4]",
        "format",
        "This is my reasoning.</think>\nThis is my answer.",
        "",
        0.0,
        "no opening <think>",
    ),
    PeerCase(
        _TRL_FMT + "test_invalid_format[5]",
        "format",
        "This is my reasoning.</think>This is my answer.",
        "",
        0.0,
        "no opening <think>",
    ),
    PeerCase(
        _TRL_FMT + "test_invalid_format[6]",
        "format",
        "This<think>is my reasoning.</think>\nThis is my answer.",
        "",
        0.0,
        "<think> tag in the middle",
    ),
    PeerCase(
        _TRL_FMT + "test_invalid_format[7]",
        "format",
        "<think>This is<think>my reasoning.</think></think>This is my answer.",
        "",
        0.0,
        "nested <think> tags",
    ),
    PeerCase(
        _TRL_FMT + "test_invalid_format[8]",
        "format",
        "<think>This is</think>\nmy\n<think>reasoning.</think>\nThis is my answer.",
        "",
        0.0,
        "two <think> blocks",
    ),
    PeerCase(
        _TRL_FMT + "test_mixed_format[0]",
        "format",
        "<think>This is my reasoning.</think>This is my answer.",
        "",
        1.0,
        "valid for the peer; " + _TRL_THINK_ONLY,
    ),
    PeerCase(
        _TRL_FMT + "test_mixed_format[1]",
        "format",
        "<think>\nThis is my reasoning.\n</think>\nThis is my answer.",
        "",
        1.0,
        "valid for the peer; " + _TRL_THINK_ONLY,
    ),
    PeerCase(
        _TRL_FMT + "test_mixed_format[2]",
        "format",
        "<think>This is my reasoning.\nThis is my answer.",
        "",
        0.0,
        "no closing </think>",
    ),
    PeerCase(
        _TRL_FMT + "test_mixed_format[3]",
        "format",
        "This is my reasoning. This is my answer.",
        "",
        0.0,
        "no <think> tags",
    ),
    # --- trl: accuracy_reward (accuracy) ----------------------------------------------------
    PeerCase(
        _TRL_ACC + "test_accuracy_reward_correct_answer[0]",
        "accuracy",
        _answer(_BOXED_63),
        _F63,
        1.0,
        "boxed fraction against a LaTeX fraction",
    ),
    PeerCase(
        _TRL_ACC + "test_accuracy_reward_correct_answer[1]",
        "accuracy",
        _answer(_BOXED_63),
        "63/400",
        1.0,
        "boxed fraction against an inline fraction",
    ),
    PeerCase(
        _TRL_ACC + "test_accuracy_reward_wrong_answer",
        "accuracy",
        _answer(_BOXED_64),
        _F63,
        0.0,
        "64/400 is not 63/400",
    ),
    PeerCase(
        _TRL_ACC + "test_accuracy_reward_wrong_answer_no_latex",
        "accuracy",
        _answer(r"\boxed{3}"),
        "6",
        0.0,
        "wrong number, gold without LaTeX",
    ),
    PeerCase(
        _TRL_ACC + "test_accuracy_reward_unparsable_gold[0]",
        "accuracy",
        _answer("Answer is forty two."),
        "Answer is forty two.",
        None,
        "gold in words: the peer skips it (None); answer is the gold's own text",
    ),
    PeerCase(
        _TRL_ACC + "test_accuracy_reward_unparsable_gold[1]",
        "accuracy",
        _answer(r"Some other content. \boxed{43}."),
        "Answer is forty three.",
        None,
        "gold in words: the peer skips it (None); boxed 43 inside a sentence",
    ),
    PeerCase(
        _TRL_ACC + "test_accuracy_reward_in_worker_thread",
        "accuracy",
        _answer(r"\boxed{\frac{1}{3}}"),
        r"\frac{1}{3}",
        1.0,
        "the peer calls it from a non-main thread (no signal timeouts there)",
    ),
    # --- trl: reasoning_accuracy_reward (accuracy; the peer's </think> split kept) ----------
    PeerCase(
        _TRL_RACC + "test_correct_answer_yields_unit_reward[0]",
        "accuracy",
        _answer(_BOXED_63, think=" Reasoning content "),
        _F63,
        1.0,
        "right answer after the reasoning",
    ),
    PeerCase(
        _TRL_RACC + "test_correct_answer_yields_unit_reward[1]",
        "accuracy",
        "Reasoning content </think>" + _answer(_BOXED_63, think=None),
        _F63,
        1.0,
        "no opening <think> (the chat template may add it): the peer splits on </think> only",
    ),
    PeerCase(
        _TRL_RACC + "test_correct_answer_with_custom_tags_yields_unit_reward",
        "accuracy",
        _answer(_BOXED_63, think=" Reasoning content "),
        _F63,
        1.0,
        "peer tags <REASONING_START>…</REASONING_END> with reasoning_delimiters, mapped to think",
    ),
    PeerCase(
        _TRL_RACC + "test_incorrect_answer_yields_zero_reward",
        "accuracy",
        _answer(_BOXED_64, think=" Reasoning content "),
        _F63,
        0.0,
        "wrong answer after the reasoning",
    ),
    PeerCase(
        _TRL_RACC + "test_correct_answer_in_reasoning_yields_zero_reward[0]",
        "accuracy",
        _answer("Some other text.", think=r" My answer is \boxed{42} "),
        r"\boxed{42}",
        0.0,
        "the right answer only inside the think; gold written boxed",
    ),
    PeerCase(
        _TRL_RACC + "test_correct_answer_in_reasoning_yields_zero_reward[1]",
        "accuracy",
        _answer(r"Here's a wrong answer: \boxed{43}.", think=r" The answer is \boxed{42} "),
        r"\boxed{42}",
        0.0,
        "right answer in the think, a wrong boxed one in a sentence after it",
    ),
    PeerCase(
        _TRL_RACC + "test_incomplete_reasoning_yields_zero_reward[0]",
        "accuracy",
        "<think> Incomplete reasoning without closing tag",
        _F63,
        0.0,
        "unclosed think, nothing after it: no answer block",
    ),
    PeerCase(
        _TRL_RACC + "test_incomplete_reasoning_yields_zero_reward[1]",
        "accuracy",
        _answer(r"Correct answer \frac{63}{400} but completely missing reasoning content", None),
        _F63,
        0.0,
        "no reasoning: the peer gives 0 for the missing </think>; right value inside a sentence",
    ),
    PeerCase(
        _TRL_RACC + "test_unparsable_gold_solution_yields_none_reward",
        "accuracy",
        _answer(r"\boxed{42}", think=" Reasoning content "),
        "forty two",
        None,
        "gold in words: the peer skips it (None)",
    ),
    # --- open-r1: accuracy_reward (accuracy) ------------------------------------------------
    PeerCase(
        _R1 + "test_accuracy_reward_correct_answer",
        "accuracy",
        _answer(_BOXED_63),
        _F63,
        1.0,
        "boxed fraction against a LaTeX fraction",
    ),
    PeerCase(
        _R1 + "test_accuracy_reward_wrong_answer",
        "accuracy",
        _answer(_BOXED_64),
        _F63,
        0.0,
        "64/400 is not 63/400",
    ),
    PeerCase(
        _R1 + "test_accuracy_reward_wrong_answer_no_latex",
        "accuracy",
        _answer(r"\boxed{3}"),
        "6",
        0.0,
        "wrong number, gold without LaTeX",
    ),
    PeerCase(
        _R1 + "test_multiple_completions[0]",
        "accuracy",
        _answer(_BOXED_63),
        _F63,
        1.0,
        "right one of a batch of two",
    ),
    PeerCase(
        _R1 + "test_multiple_completions[1]",
        "accuracy",
        _answer(_BOXED_64),
        _F63,
        0.0,
        "wrong one of a batch of two",
    ),
    # --- open-r1: format_reward (format; `^<think>\n.*?\n</think>\n<answer>\n.*?\n</answer>$`)
    PeerCase(
        _R1 + "test_format_reward_correct",
        "format",
        _R1_GOOD,
        "",
        1.0,
        "think and answer, each on its own lines",
    ),
    PeerCase(
        _R1 + "test_format_reward_incorrect[0]",
        "format",
        "<think>Only thinking</think>",
        "",
        0.0,
        "think only",
    ),
    PeerCase(
        _R1 + "test_format_reward_incorrect[1]",
        "format",
        "<answer>Only answer</answer>",
        "",
        0.0,
        "answer only",
    ),
    PeerCase(
        _R1 + "test_format_reward_incorrect[2]",
        "format",
        "No tags at all",
        "",
        0.0,
        "no tags",
    ),
    PeerCase(
        _R1 + "test_format_reward_incorrect[3]",
        "format",
        "<think>Missing closing</think><answer>Missing closing",
        "",
        0.0,
        "no closing </answer>",
    ),
    PeerCase(
        _R1 + "test_format_reward_incorrect[4]",
        "format",
        "<think>Wrong order</answer><answer>Wrong order</think>",
        "",
        0.0,
        "closing tags swapped",
    ),
    PeerCase(
        _R1 + "test_format_reward_specific_multiline",
        "format",
        _R1_MULTILINE,
        "",
        1.0,
        "long multiline think with a numbered list, answer 9",
    ),
    # --- open-r1: tag_count_reward (format, graded: 0.25 per tag found once) ----------------
    PeerCase(
        _R1_TAGS + "test_tag_count_rewards_all_correct",
        "format",
        _R1_GOOD,
        "",
        1.0,
        "tag_count_reward: all four tags",
    ),
    PeerCase(
        _R1_TAGS + "test_tag_count_rewards_missing_think_begin",
        "format",
        "Some reasoning\n</think>\n<answer>\nThe answer\n</answer>",
        "",
        0.75,
        "tag_count_reward (graded): no <think>",
    ),
    PeerCase(
        _R1_TAGS + "test_tag_count_rewards_missing_think_end",
        "format",
        "<think>\nSome reasoning\n<answer>\nThe answer\n</answer>",
        "",
        0.75,
        "tag_count_reward (graded): no </think>",
    ),
    PeerCase(
        _R1_TAGS + "test_tag_count_rewards_missing_answer_begin",
        "format",
        "<think>\nSome reasoning\n</think>\nThe answer\n</answer>",
        "",
        0.75,
        "tag_count_reward (graded): no <answer>",
    ),
    PeerCase(
        _R1_TAGS + "test_tag_count_rewards_missing_answer_end",
        "format",
        "<think>\nSome reasoning\n</think>\n<answer>\nThe answer",
        "",
        0.75,
        "tag_count_reward (graded): no </answer>",
    ),
    PeerCase(
        _R1_TAGS + "test_tag_count_rewards_missing_all_tags",
        "format",
        "Some reasoning\nThe answer",
        "",
        0.0,
        "tag_count_reward: no tags",
    ),
)


_ANSWER_BLOCK = (
    "the course's format asks for a <think> block and then an <answer> block (the article's "
    "system prompt), so reasoning without an <answer> block earns no format reward"
)
_GRADED = (
    "open-r1's tag_count_reward gives 0.25 a well-placed tag, a graded format reward; the "
    "course's format reward is all or nothing, as the article's"
)
_WORDS = (
    "a number written in words is read as its digits (forty two = 42), so the completion is "
    "graded; TRL returns None for a gold math-verify cannot parse, and its trainer then sums "
    "the other rewards alone for that completion"
)

# Where this course gives another reward than the peer test, on purpose: source -> (the
# course's reward, why). Every other case must get the peer's own value.
DIFFERENCES: dict[str, tuple[float | None, str]] = {
    **{
        _TRL_FMT + name: (0.0, _ANSWER_BLOCK)
        for name in (
            "test_valid_format[0]",
            "test_valid_format[1]",
            "test_valid_format[2]",
            "test_valid_format[3]",
            "test_mixed_format[0]",
            "test_mixed_format[1]",
        )
    },
    _TRL_FMT + "test_valid_format[4]": (
        0.0,
        "an empty think earns no format reward here (reward hacking: the format without the "
        "reasoning), and there is no <answer> block either",
    ),
    _TRL_ACC + "test_accuracy_reward_unparsable_gold[0]": (1.0, _WORDS),
    _TRL_ACC + "test_accuracy_reward_unparsable_gold[1]": (
        1.0,
        _WORDS + "; the one boxed value of the answer sentence, 43, is what is graded",
    ),
    _TRL_RACC + "test_unparsable_gold_solution_yields_none_reward": (1.0, _WORDS),
    **{
        _R1_TAGS + f"test_tag_count_rewards_missing_{part}": (0.0, _GRADED)
        for part in ("think_begin", "think_end", "answer_begin", "answer_end")
    },
}
