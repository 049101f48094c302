"""The system prompt and the conversational prompt that TRL's GRPOTrainer expects."""

from __future__ import annotations

# The article's system prompt (DeepSeek-R1's), asking for exactly the shape that
# `vlmgrpo.rewards.format_reward` checks: one think block, then one answer block.
SYSTEM_PROMPT = (
    "A conversation between User and Assistant. The user asks a question, and the "
    "Assistant solves it. The assistant first thinks about the reasoning process in "
    "the mind and then provides the user with the answer. The reasoning process and "
    "answer are enclosed within <think> </think> and <answer> </answer> tags, "
    "respectively, i.e., <think> reasoning process here </think><answer> answer here "
    "</answer>"
)


def build_conversation(problem: str, system_prompt: str = SYSTEM_PROMPT) -> list[dict]:
    """System + user[image, text] messages; every content is a list so Arrow can store it."""
    return [
        {"role": "system", "content": [{"type": "text", "text": system_prompt}]},
        {
            "role": "user",
            "content": [{"type": "image"}, {"type": "text", "text": problem}],
        },
    ]
