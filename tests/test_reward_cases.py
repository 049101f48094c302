"""The accuracy reward on answers in the real dataset's styles: `vlmgrpo.reward_cases`."""

from __future__ import annotations

import pytest

from vlmgrpo.reward_cases import REWARD_CASES, RewardCase
from vlmgrpo.rewards import accuracy_reward, parse_choices


@pytest.mark.parametrize("case", REWARD_CASES, ids=lambda case: f"{case.answer}|{case.why}")
def test_reward_table(case: RewardCase) -> None:
    completion = f"<think>t</think><answer>{case.answer}</answer>"
    rewards = accuracy_reward([completion], [case.solution], problem=[case.problem])
    assert rewards == [case.expected], case.why


def test_table_covers_equivalences_and_traps() -> None:
    accepted = [case for case in REWARD_CASES if case.expected == 1.0]
    refused = [case for case in REWARD_CASES if case.expected == 0.0]
    assert len(REWARD_CASES) >= 40
    assert len(accepted) >= 15 and len(refused) >= 15
    assert len(accepted) + len(refused) == len(REWARD_CASES)
    multiple_choice = [case for case in REWARD_CASES if parse_choices(case.problem)]
    assert 15 <= len(multiple_choice) < len(REWARD_CASES)


def test_table_rows_scored_as_one_batch() -> None:
    # TRL scores a whole batch in one call; the per-problem option cache must not leak.
    completions = [f"<think>t</think><answer>{case.answer}</answer>" for case in REWARD_CASES]
    rewards = accuracy_reward(
        completions,
        [case.solution for case in REWARD_CASES],
        problem=[case.problem for case in REWARD_CASES],
    )
    assert rewards == [case.expected for case in REWARD_CASES]


@pytest.mark.parametrize(
    ("problem", "expected"),
    [
        ("Find x.\nChoices:\nA. 30°\nB. 60°", {"A": "30°", "B": "60°"}),
        ("Find x. Choices: A: 5 B: 10 C: 15", {"A": "5", "B": "10", "C": "15"}),
        ("Find x. (A) 6\\pi (B) 12", {"A": "6\\pi", "B": "12"}),
        ("Find x.\nOptions:\nA) 1/2\nB) 1/3", {"A": "1/2", "B": "1/3"}),
        ("Choices:A:25°\nB:30°\nC:45°", {"A": "25°", "B": "30°", "C": "45°"}),
        ("Which is longer? A. 0.5; B. 1.5.", {"A": "0.5", "B": "1.5"}),
        # The question's own "A." and "B." come before the listed options.
        ("Join point A. to point B. Choices: A. 4 B. 8", {"A": "4", "B": "8"}),
        ("In the figure AE:EC = 1:2. A. 2 B. 4", {"A": "2", "B": "4"}),
        ("Choices:\nA. 12 cm\nB. 6 cm\nAnswer with the letter.", {"A": "12 cm", "B": "6 cm"}),
        ("What colour is the shape?", {}),
        ("Is angle A. larger than 30°?", {}),
        ("A. 5 C. 6", {}),
        ("", {}),
        (None, {}),
    ],
)
def test_parse_choices(problem: str | None, expected: dict[str, str]) -> None:
    assert parse_choices(problem) == expected


def test_problem_is_optional() -> None:
    # `vlmgrpo.evaluate` calls the reward with the solutions only.
    completion = "<think>t</think><answer>B</answer>"
    assert accuracy_reward([completion, completion], ["B", "<answer>A</answer>"]) == [1.0, 0.0]
    assert accuracy_reward([completion], ["B"], problem=[None]) == [1.0]
