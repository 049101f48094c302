"""Tests for the GRPO format and accuracy rewards."""

from __future__ import annotations

import threading
import time

import pytest

from tests.reward_peers import DIFFERENCES, PEER_CASES
from vlmgrpo.rewards import (
    accuracy_reward,
    answers_match,
    completion_text,
    extract_answer,
    format_reward,
    gold_answer,
    number_from_words,
)

GOOD = "<think>2 + 1 = 3</think><answer>3</answer>"
NESTED_FRAC = "<think>ok</think><answer>" + r"\frac{" * 5000 + "1" + "}{2}" * 5000 + "</answer>"
LONG = "<think>" + "a" * 100_000 + "</think><answer>" + "1" * 100 + "</answer>"


def as_messages(text: str) -> list[dict]:
    return [{"role": "assistant", "content": text}]


def assert_rewards(rewards: list) -> None:
    assert all(r is None or (type(r) is float and 0.0 <= r <= 1.0) for r in rewards)


@pytest.mark.parametrize(
    "text",
    [
        GOOD,
        "<think>\n reasoning \n</think>\n\n<answer>\n 3 \n</answer>",
        "  \n<think>a</think> \t <answer>b</answer>\n",
        "<think>line 1\nline 2</think><answer>x = 3</answer>",
    ],
)
def test_format_accepts_exact_shape(text: str) -> None:
    assert format_reward([text]) == [1.0]


@pytest.mark.parametrize(
    "text",
    [
        "Sure! " + GOOD,
        GOOD + " done",
        "<answer>3</answer>",
        "<think>2 + 1 = 3</think>",
        "<answer>3</answer><think>2 + 1 = 3</think>",
        "<think>a</think><answer>3</answer><answer>4</answer>",
        "<think>a</think><think>b</think><answer>3</answer>",
        "<think>a <think>b</think></think><answer>3</answer>",
        "<think>a <answer>2</answer></think><answer>3</answer>",
        "<think>a</think><answer>3 <think>b</think></answer>",
        "<think></think><answer>3</answer>",
        "<think> \n </think><answer>3</answer>",
        "<think>a</think><answer> </answer>",
        "<think>a</think> b <answer>3</answer>",
        "<think>a<answer>3</answer>",
        "",
    ],
)
def test_format_rejects(text: str) -> None:
    assert format_reward([text]) == [0.0]


def test_format_linear_on_long_adversarial_input() -> None:
    texts = [LONG, "<think>" * 50_000, "<think>a</think>" + " " * 100_000 + "x", NESTED_FRAC]
    start = time.monotonic()
    rewards = format_reward(texts)
    assert time.monotonic() - start < 5
    assert rewards == [1.0, 0.0, 0.0, 1.0]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (GOOD, "3"),
        ("<answer>  \n 42 \n </answer>", "42"),
        ("<think>a</think><answer>3</answer><answer>4</answer>", None),
        ("<think>a</think><answer>3", None),
        ("<think>a</think></answer>3<answer>", None),
        ("<think>a <answer>3</answer></think>", None),
        ("<think>a <answer>3</answer>", None),
        ("<answer>3</answer><think>a</think>", None),
        ("the answer is 3", None),
    ],
)
def test_extract_answer(text: str, expected: str | None) -> None:
    assert extract_answer(text) == expected


@pytest.mark.parametrize(
    ("solution", "expected"),
    [
        ("<think>because</think><answer> 7 </answer>", "7"),
        ("<answer>B</answer>", "B"),
        ("  \\frac{1}{2}\n", "\\frac{1}{2}"),
        ("The capital is Paris", "The capital is Paris"),
    ],
)
def test_gold_answer(solution: str, expected: str) -> None:
    assert gold_answer(solution) == expected


@pytest.mark.parametrize(
    ("pred", "gold"),
    [
        (r"\frac{1}{2}", "0.5"),
        (r"$\boxed{3}$", "3"),
        ("x = 3", "3"),
        ("$3$", "3"),
        (r"\frac{3}{4}", "0.75"),
        ("b", "B"),
        ("Paris", "paris"),
        ("Paris.", " paris "),
        ("(B)", "B"),
        ("New  York", "new york"),
    ],
)
def test_answers_match(pred: str, gold: str) -> None:
    assert answers_match(pred, gold)


@pytest.mark.parametrize(
    ("pred", "gold"),
    [("Paris", "London"), ("2", "3"), ("stop", "pots"), ("A", "B"), ("", "3"), ("0.5", "5")],
)
def test_answers_differ(pred: str, gold: str) -> None:
    assert not answers_match(pred, gold)


@pytest.mark.parametrize(
    ("answer", "gold", "expected"),
    [
        (r"\frac{1}{2}", "0.5", 1.0),
        (r"$\boxed{3}$", "3", 1.0),
        ("x = 3", "3", 1.0),
        ("$3$", "3", 1.0),
        (r"\frac{3}{4}", "0.75", 1.0),
        ("b", "B", 1.0),
        ("Paris", "paris", 1.0),
        ("Paris", "London", 0.0),
        ("2", "3", 0.0),
        ("3", "<think>1 + 2</think><answer>3</answer>", 1.0),
        ("1 + 2", "<think>so 3</think><answer>3</answer>", 1.0),
        ("1 + 2", "<think>easy</think><answer>4</answer>", 0.0),
        # Golds math-verify cannot parse are compared as text, never an error.
        (r"\frac{", r"\frac{", 1.0),
        ("1/2", r"\frac{", 0.0),
        ("🙂", "🙂", 1.0),
        ("3", "🙂", 0.0),
        (r"\frac{1}{2}", r"<answer>\sqrt{</answer>", 0.0),
    ],
)
def test_accuracy_reward(answer: str, gold: str, expected: float) -> None:
    completion = f"<think>thinking</think><answer>{answer}</answer>"
    assert accuracy_reward([completion], solution=[gold]) == [expected]


@pytest.mark.parametrize(
    "text",
    [
        "<think>it is 3</think><answer>4</answer>",
        "<think>a</think>3",
        "<think>a</think><answer>3</answer><answer>3</answer>",
        "<think>a <answer>3</answer></think>",
        "<answer>3</answer><think>a</think>",
        "3",
    ],
)
def test_accuracy_reads_only_the_answer_block(text: str) -> None:
    assert accuracy_reward([text], solution=["3"]) == [0.0]


@pytest.mark.parametrize("gold", ["", "   \n", "<think>a</think><answer> </answer>"])
def test_accuracy_empty_gold_is_none(gold: str) -> None:
    assert accuracy_reward([GOOD], solution=[gold]) == [None]


def test_message_list_completions() -> None:
    assert completion_text(as_messages(GOOD)) == GOOD
    parts = [{"role": "assistant", "content": [{"type": "text", "text": GOOD}]}]
    assert completion_text(parts) == GOOD
    completions = [as_messages(GOOD), as_messages("<answer>4</answer>"), parts]
    assert format_reward(completions) == [1.0, 0.0, 1.0]
    assert accuracy_reward(completions, solution=["3", "3", "3"]) == [1.0, 0.0, 1.0]


@pytest.mark.parametrize(
    "hostile",
    [
        NESTED_FRAC,
        LONG,
        "<think>a</think><answer>$9^{9^{9^{9}}}$</answer>",
        "<think>a</think><answer>$99999999!$</answer>",  # sympy's verify times out
        r"<think>a</think><answer>$\Gamma(99999999)$</answer>",  # its parse times out
        "<think>a</think><answer>$" + "(" * 30 + "x" + ")" * 30 + "$</answer>",
        # Bare LaTeX is parsed as LaTeX too, so the same answers without `$` stay cheap.
        "<think>a</think><answer>9^9^9^9</answer>",
        "<think>a</think><answer>9^{9^{9^{9}}}</answer>",
        "<think>a</think><answer>99999999!</answer>",
        "<think>a</think><answer>" + "{" * 20 + "x" + "}" * 20 + "</answer>",
    ],
)
def test_hostile_answers_are_fast_and_zero(hostile: str) -> None:
    start = time.monotonic()
    rewards = accuracy_reward([hostile], solution=["3"])
    format_reward([hostile])
    assert time.monotonic() - start < 5
    assert rewards == [0.0]


def test_hostile_completion_does_not_poison_batch() -> None:
    batch = [GOOD, NESTED_FRAC, as_messages("<think>a</think><answer>0.5</answer>"), LONG]
    rewards = accuracy_reward(batch, solution=["3", "3", r"\frac{1}{2}", "3"])
    assert rewards == [1.0, 0.0, 1.0, 0.0]
    assert format_reward(batch) == [1.0, 1.0, 1.0, 1.0]
    assert_rewards(rewards)


def test_values_are_floats_in_unit_interval() -> None:
    batch = [GOOD, "nothing", "<think>a</think><answer>x</answer>", NESTED_FRAC]
    assert_rewards(format_reward(batch))
    assert_rewards(accuracy_reward(batch, solution=["3", "3", "x", ""]))
    assert accuracy_reward(batch, solution=["3", "3", "x", ""])[3] is None


def test_rewards_work_off_the_main_thread() -> None:
    batch = [GOOD, "<think>a</think><answer>0.5</answer>", "<think>a</think><answer>b</answer>"]
    hostile = ["<think>a</think><answer>$99999999!$</answer>", NESTED_FRAC]
    # No timeout there: towers and deep brackets (exponential to parse) must not reach sympy.
    hostile += [
        f"<think>a</think><answer>{answer}</answer>"
        for answer in ("9^9^9^9", "(9^9)^9", "{" * 20 + "x" + "}" * 20, "(" * 30 + "x" + ")" * 30)
    ]
    results: dict = {}

    def work() -> None:
        results["format"] = format_reward(batch + hostile)
        results["accuracy"] = accuracy_reward(
            batch + hostile, solution=["3", "1/2", "B"] + ["3"] * len(hostile)
        )

    start = time.monotonic()
    thread = threading.Thread(target=work, daemon=True)  # a hang must not block exit
    thread.start()
    thread.join(timeout=10)
    assert not thread.is_alive()
    assert time.monotonic() - start < 10
    assert results["format"] == [1.0] * 9
    assert results["accuracy"] == [1.0, 1.0, 1.0] + [0.0] * 6


def test_plain_maths_still_compared_off_the_main_thread() -> None:
    pairs = [(r"\sqrt{12}", r"2\sqrt{3}"), ("1+x^2", "x^2+1"), ("60", "60°"), ("2", r"2\sqrt{3}")]
    results: list = []

    def work() -> None:
        results.extend(answers_match(pred, gold) for pred, gold in pairs)

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    thread.join(timeout=10)
    assert results == [True, True, True, False]


def test_hostile_multiple_choice_answers_are_bounded() -> None:
    problem = "Find the angle.\nChoices:\nA. 30°\nB. 60°\nC. 90°\nD. 120°"
    hostile = ["9^{9^{9^{9}}}", "B. 99999999!", NESTED_FRAC, LONG, "A, B, C, D"]
    batch = [GOOD.replace(">3<", ">B<")] + [
        h if h.startswith("<think>") else f"<think>a</think><answer>{h}</answer>" for h in hostile
    ]
    start = time.monotonic()
    rewards = accuracy_reward(batch, ["B"] * len(batch), problem=[problem] * len(batch))
    assert time.monotonic() - start < 3 * len(hostile) + 5
    assert rewards == [1.0] + [0.0] * len(hostile)


DEGENERATE = [
    "",
    " \n\t ",
    " " * 100_000,
    [],  # an empty message list
    as_messages(""),
    as_messages(" \n "),
    "<think></think><answer></answer>",
    "<answer><answer>3</answer></answer>",
    "<think>a</think><answer>3</answer>" * 3,
    "<answer>3 <think>a</think></answer>",
]


@pytest.mark.parametrize("completion", DEGENERATE)
def test_degenerate_completions_score_zero(completion) -> None:
    assert format_reward([completion]) == [0.0]
    assert accuracy_reward([completion], solution=["3"]) == [0.0]


def test_batch_of_everything_bad_is_bounded_and_spares_the_good() -> None:
    hostile = [
        "<think>a</think><answer>$99999999!$</answer>",
        r"<think>a</think><answer>$\Gamma(99999999)$</answer>",
        NESTED_FRAC,
        LONG,
    ]
    batch = [GOOD, *DEGENERATE, *hostile, as_messages("<think>a</think><answer>0.5</answer>")]
    solutions = ["3"] * (len(batch) - 1) + [r"\frac{1}{2}"]
    start = time.monotonic()
    accuracy = accuracy_reward(batch, solution=solutions)
    fmt = format_reward(batch)
    # math-verify's 1 s timeout bounds each of parse(pred), parse(gold) and verify.
    assert time.monotonic() - start < 3 * len(hostile) + 5
    assert_rewards(accuracy)
    assert_rewards(fmt)
    assert accuracy == [1.0] + [0.0] * (len(batch) - 2) + [1.0]
    assert fmt[0] == fmt[-1] == 1.0


def _peer_reward(case) -> float | None:
    if case.kind == "accuracy":
        return accuracy_reward([case.completion], [case.solution])[0]
    return format_reward([case.completion])[0]


@pytest.mark.parametrize("case", PEER_CASES, ids=lambda case: case.source.split("::", 1)[1])
def test_the_rewards_agree_with_trl_and_open_r1_tests_but_where_listed(case):
    expected = DIFFERENCES[case.source][0] if case.source in DIFFERENCES else case.peer_expected
    assert _peer_reward(case) == expected, (case, DIFFERENCES.get(case.source))


def test_every_listed_difference_is_a_peer_case_that_differs():
    sources = [case.source for case in PEER_CASES]
    assert len(sources) == len(set(sources))
    peer = {case.source: case.peer_expected for case in PEER_CASES}
    for source, (ours, why) in DIFFERENCES.items():
        assert source in peer, source
        assert ours != peer[source] and why, source
    agreeing = len(PEER_CASES) - len(DIFFERENCES)
    assert agreeing >= 38 and len({s.split()[0] for s in sources}) == 2  # trl and open-r1


@pytest.mark.parametrize(
    ("text", "number"),
    [("forty two", 42), ("Forty-two", 42), ("one hundred and five", 105), ("zero", 0),
     ("three thousand two hundred", 3200), ("twelve", 12), ("two or three", None),
     ("and one", None), ("hundred", None), ("the shape", None), ("", None)],
)  # fmt: skip
def test_number_from_words(text, number):
    assert number_from_words(text) == number


def test_an_answer_is_graded_by_its_one_box_whatever_surrounds_it():
    def reward(answer: str, gold: str = "12") -> float:
        return accuracy_reward([f"<think>t</think><answer>{answer}</answer>"], [gold])[0]

    assert reward(r"The area is $\boxed{12}$ square units.") == 1.0
    assert reward(r"So \boxed{\frac{24}{2}}, by the formula.") == 1.0  # nested braces
    assert reward(r"So \boxed{13}, not 12.") == 0.0  # what is boxed is graded
    assert reward(r"\boxed{12} or \boxed{13}") == 0.0  # two boxes: no one answer
    assert reward(r"\boxed{12") == 0.0  # never closed
    assert reward("The answer is twelve.") == 1.0
    assert reward("12", gold="<think>t</think><answer>twelve</answer>") == 1.0
