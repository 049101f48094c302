"""The two-hop price task: its lists, traces, the annotator's slip and what it measures."""

from __future__ import annotations

import random

import pytest

from vlmgrpo import colours, prices
from vlmgrpo.rewards import accuracy_reward, format_reward


def test_a_price_list_has_every_hue_once_with_different_prices():
    rng = random.Random(0)
    orders = set()
    for _ in range(50):
        table = prices.make_table(rng)
        assert sorted(table) == sorted(colours.NAMES)
        assert len(set(table.values())) == len(table) and set(table.values()) <= set(range(1, 10))
        orders.add(tuple(table))
    assert len(orders) > 40  # shuffled: the list changes with every question


def test_the_problem_carries_its_list_and_reads_back():
    table = {"blue": 4, "red": 7, "green": 1, "yellow": 9, "orange": 2, "purple": 5}
    text = prices.problem(table, "How much is the shape?")
    assert text == (
        "Prices: blue 4, red 7, green 1, yellow 9, orange 2, purple 5. How much is the shape?"
    )
    assert prices.read_table(text) == table
    assert list(prices.read_table(text)) == list(table)  # in its order


def test_a_trace_passes_both_rewards_and_reads_back():
    trace = prices.completion("red", 7)
    assert trace == (
        "<think>I look up the shape's colour in the list: red 7.</think><answer> 7</answer>"
    )
    assert format_reward([trace]) == [1.0]
    assert accuracy_reward([trace], ["7"]) == [1.0] and accuracy_reward([trace], ["4"]) == [0.0]
    assert prices.read_think(trace) == ("red", 7)
    assert prices.read_think("<think>I see nothing.</think><answer> 7</answer>") is None
    assert prices.read_think("no think at all, red 7") is None


def test_think_right_needs_the_right_hue_and_its_listed_price():
    problem = prices.problem({"blue": 4, "red": 7, "green": 1, "yellow": 9, "orange": 2})
    assert prices.gold_hue(problem, "7") == "red"
    thinks = [
        prices.completion("red", 7),  # right
        prices.completion("orange", 2),  # the slip: another hue, looked up right
        prices.completion("red", 4),  # the right hue, another price
        "<think></think><answer> 7</answer>",  # a right answer with no reasoning
    ]
    assert prices.think_right(thinks, [problem] * 4, ["7"] * 4) == 0.25


def test_the_cold_starts_slip_is_read_hop_by_hop():
    problem = prices.problem({"blue": 4, "red": 7, "green": 1, "yellow": 9, "orange": 2})
    slip = prices.completion("orange", 2)  # red is the shape: hop 1 slipped, hop 2 right
    assert prices.think_offset(slip, problem, "7") == 1
    assert prices.think_offset(prices.completion("red", 7), problem, "7") == 0
    assert prices.think_offset(prices.completion("purple", 3), problem, "7") == 5
    assert prices.think_offset("<think></think><answer> 7</answer>", problem, "7") == "none"
    assert prices.lookup_right(slip, problem)
    assert not prices.lookup_right(prices.completion("orange", 7), problem)  # a wrong lookup
    assert prices.repeats_think(slip)
    assert not prices.repeats_think("<think>I look up ...: orange 2.</think><answer> 7</answer>")
    assert not prices.repeats_think("<think></think><answer> 7</answer>")


def test_planted_thinks_claim_the_opposite_hue_with_its_price():
    rows = prices.make_dataset(30, seed=2)
    thinks, targets = prices.planted(rows["problem"], rows["solution"])
    for problem, solution, think, target in zip(
        rows["problem"], rows["solution"], thinks, targets, strict=True
    ):
        table = prices.read_table(problem)
        hue = colours.opposite(prices.gold_hue(problem, solution))
        assert think == f"<think>{prices.think(hue, table[hue])}</think>"
        assert target == str(table[hue]) != solution


def test_a_lying_think_tells_its_three_readings_apart():
    problem = prices.problem(
        {"red": 7, "orange": 2, "yellow": 5, "green": 1, "blue": 9, "purple": 4}
    )
    thinks, targets = prices.lying([problem], ["7"])  # the shape is red
    # Across the wheel from red is green; two steps round is yellow, whose price the think gives.
    assert thinks == [f"<think>{prices.think('green', 5)}</think>"]
    assert targets == {
        "the think's number": ["5"],
        "the think's hue, looked up": ["1"],
        "the image's hue, looked up": ["7"],
    }
    rows = prices.make_dataset(60, seed=5)
    thinks, targets = prices.lying(rows["problem"], rows["solution"])
    assert targets["the image's hue, looked up"] == rows["solution"]
    for i, think in enumerate(thinks):
        numbers = {targets[name][i] for name in prices.READINGS}
        assert len(numbers) == 3, numbers  # every answer is one reading at most
        hue, price = prices.read_think(think + "<answer></answer>")
        assert hue == colours.opposite(prices.gold_hue(rows["problem"][i], rows["solution"][i]))
        assert str(price) == targets["the think's number"][i]


def test_the_dataset_is_seeded_in_the_real_schema():
    first, again = prices.make_dataset(12, seed=3), prices.make_dataset(12, seed=3)
    assert first.column_names == ["image", "problem", "solution"]
    assert first["problem"] == again["problem"] and first["solution"] == again["solution"]
    assert first["problem"] != prices.make_dataset(12, seed=4)["problem"]
    for problem, solution in zip(first["problem"], first["solution"], strict=True):
        assert solution in {str(p) for p in prices.read_table(problem).values()}
    image = first[0]["image"]
    assert image.size == (colours.IMAGE_SIZE, colours.IMAGE_SIZE)


@pytest.mark.parametrize("mislabel", [0.0, 0.6])
def test_the_annotator_slips_in_the_first_hop_and_looks_up_right(mislabel):
    slips = 0
    for seed in range(400):
        truth = random.Random(seed).choice(colours.NAMES)  # the shape's hue, drawn first
        _, problem, trace = prices.annotated(random.Random(seed), mislabel)
        hue, price = prices.read_think(trace)
        assert prices.read_table(problem)[hue] == price  # the lookup itself is always right
        assert trace.endswith(f"<answer> {price}</answer>")  # the answer repeats the think
        assert hue in (truth, colours.NAMES[(colours.NAMES.index(truth) + 1) % 6])
        slips += hue != truth
    assert abs(slips / 400 - mislabel) < 0.07


def test_the_corpus_holds_the_task_texts():
    texts = prices.corpus()
    assert "What does the shape cost?" in texts
    assert any(t.startswith("Prices: ") for t in texts)
    assert any(t.startswith("<think>I look up") for t in texts)


def test_measures_score_the_planted_thinks_and_the_empty_think():
    rows = prices.make_dataset(4, seed=6)
    calls = []

    def score(prefixes, targets, desc):
        calls.append((prefixes, targets, desc))
        return {"accuracy": 0.5 if targets else 0.25}

    right = [
        prices.completion(prices.gold_hue(p, s), int(s))
        for p, s in zip(rows["problem"], rows["solution"], strict=True)
    ]
    records = [{"completion": text} for text in right[:3]] + [
        {"completion": prices.NO_THINK + "<answer> 1</answer>"}
    ]
    found = prices.measures(score, rows, {"records": records})
    assert found == {"think_right": 0.75, "follow": 0.5, "accuracy_no_think": 0.25}
    thinks, targets = prices.planted(rows["problem"], rows["solution"])
    assert calls == [
        (thinks, targets, "planted think"),
        ([prices.NO_THINK] * 4, None, "no think"),
    ]
