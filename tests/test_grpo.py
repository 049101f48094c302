"""The GRPO maths of `vlmgrpo.grpo`, checked against hand formulas and against TRL's trainer."""

from __future__ import annotations

import math

import pytest
import torch
from trl import GRPOConfig, GRPOTrainer

from vlmgrpo import colours, data, grpo, models, presets
from vlmgrpo.grpo import (
    clip_binds,
    clipped_surrogate,
    group_advantages,
    grpo_loss,
    kl_k3,
    policy_ratio,
    sequence_ratio,
    train_one_token_policy,
)
from vlmgrpo.rewards import accuracy_reward, format_reward

EPS = 0.2
G = 4  # completions per prompt
N_PROMPTS = 4
B = G * N_PROMPTS
T = 6  # padded completion width in the batch
MAX_LEN = 8  # GRPOConfig.max_completion_length: longer than T, so dr_grpo must use it, not T
LENGTHS = [6, 3, 5, 1, 6, 2, 4, 6, 5, 3, 6, 2, 1, 6, 4, 5]
NAN = math.nan
# Rewards of (format, accuracy) per completion: a NaN row is a completion no reward function
# could score; group 1 is all equal (advantage 0); group 3 has a single scorable completion.
REWARDS_PER_FUNC = torch.tensor(
    [[1, 0], [0, 0], [1, 1], [NAN, NAN]]
    + [[1, 1]] * 4
    + [[0, NAN], [1, 1], [0, 1], [1, 0]]
    + [[NAN, NAN], [1, 0], [NAN, NAN], [NAN, NAN]]
)


def summed_rewards(per_func: torch.Tensor) -> torch.Tensor:
    """TRL's sum over reward functions (weights 1): NaN counts as 0 unless the whole row is NaN."""
    rewards = per_func.nansum(dim=1)
    rewards[torch.isnan(per_func).all(dim=1)] = NAN
    return rewards


def make_batch(seed: int = 0) -> dict[str, torch.Tensor]:
    """Log-probs whose ratios spread beyond 1 +- EPS per token and per sequence, right-padded."""
    gen = torch.Generator().manual_seed(seed)
    mask = (torch.arange(T) < torch.tensor(LENGTHS)[:, None]).long()
    old = -3 * torch.rand(B, T, generator=gen) - 0.05
    # A per-sequence shift keeps GSPO's mean log-ratio spread too, not averaged towards 0.
    shift = torch.linspace(-0.5, 0.5, B)[torch.randperm(B, generator=gen)][:, None]
    logps = old + shift + 0.2 * torch.rand(B, T, generator=gen) - 0.1
    ref = old + 0.4 * torch.rand(B, T, generator=gen) - 0.2
    rewards = torch.tensor([1.0, 0, 2, 1] + [1] * 4 + [0, 2, 0.5, 1] + [3, 0, 1, 1])
    return {
        "logps": logps.requires_grad_(),
        "old_logps": old,
        "ref_logps": ref,
        "mask": mask,
        "advantages": group_advantages(rewards, G),
    }


# -- hand formulas ---------------------------------------------------------------------------


def test_policy_ratio_is_the_probability_ratio():
    p, p_old = torch.tensor([0.5, 0.2, 0.9]), torch.tensor([0.25, 0.2, 0.3])
    assert torch.allclose(policy_ratio(p.log(), p_old.log()), p / p_old)


def test_kl_k3_is_nonnegative_and_zero_only_where_policies_agree():
    gen = torch.Generator().manual_seed(0)
    logps, ref = -5 * torch.rand(1000, generator=gen), -5 * torch.rand(1000, generator=gen)
    kl = kl_k3(logps, ref)
    assert (kl >= 0).all() and (kl > 0).all()
    assert torch.equal(kl_k3(logps, logps), torch.zeros_like(logps))
    p, p_ref = torch.tensor(0.4), torch.tensor(0.1)
    expected = p_ref / p - torch.log(p_ref / p) - 1
    assert torch.allclose(kl_k3(p.log(), p_ref.log()), expected)


def test_clipped_surrogate_stops_at_one_plus_minus_epsilon():
    ratio = torch.linspace(0.4, 1.6, 25, requires_grad=True)
    positive = clipped_surrogate(ratio, torch.tensor([2.0]))
    negative = clipped_surrogate(ratio, torch.tensor([-2.0]))
    # A > 0: gains capped once r > 1 + eps; A < 0: losses capped once r < 1 - eps.
    assert torch.allclose(positive, 2 * ratio.clamp(max=1 + EPS))
    assert torch.allclose(negative, -2 * ratio.clamp(min=1 - EPS))
    (grad,) = torch.autograd.grad(positive.sum(), ratio)
    assert torch.equal(grad == 0, ratio > 1 + EPS)  # clipped tokens give no gradient
    (grad,) = torch.autograd.grad(negative.sum(), ratio)
    assert torch.equal(grad == 0, ratio < 1 - EPS)
    higher = clipped_surrogate(ratio, torch.tensor([2.0]), epsilon_high=0.28)
    assert torch.allclose(higher, 2 * ratio.clamp(max=1.28))


def test_clipped_surrogate_broadcasts_one_advantage_per_sequence():
    ratio = torch.rand(3, 5) + 0.5
    advantages = torch.tensor([1.0, -0.5, 0.0])
    by_row = clipped_surrogate(ratio, advantages)
    assert torch.equal(by_row, clipped_surrogate(ratio, advantages[:, None]))
    assert torch.equal(by_row[1], clipped_surrogate(ratio[1], advantages[1]))
    assert torch.equal(by_row[2], torch.zeros(5))


def test_group_advantages_match_the_hand_formula():
    rewards = torch.tensor([1.0, 0, 2, 1, 0.5, 0.5, 0.5, 0.5, 3, 0, 1, 1])
    expected = []
    for group in rewards.view(-1, G):
        expected.append((group - group.mean()) / (torch.std(group) + 1e-4))  # unbiased std
    expected = torch.cat(expected)
    advantages = group_advantages(rewards, G)
    assert torch.allclose(advantages, expected)
    assert torch.equal(advantages[4:8], torch.zeros(4))  # equal rewards: 0, not NaN
    assert torch.allclose(advantages.view(-1, G).sum(dim=1), torch.zeros(3), atol=1e-6)
    means = rewards.view(-1, G).mean(dim=1).repeat_interleave(G)
    assert torch.allclose(group_advantages(rewards, G, "none"), rewards - means)
    batch = (rewards - means) / (torch.std(rewards) + 1e-4)
    assert torch.allclose(group_advantages(rewards, G, "batch"), batch)


def test_group_advantages_leave_unscored_completions_out():
    rewards = torch.tensor([1.0, NAN, 0, 2, NAN, NAN, NAN, 5])
    advantages = group_advantages(rewards, G)
    scored = torch.tensor([1.0, 0, 2])
    expected = (scored - scored.mean()) / (torch.std(scored) + 1e-4)
    assert torch.allclose(advantages[[0, 2, 3]], expected)
    # The unscored get 0; so does a group with one scored completion (its std is undefined).
    assert torch.equal(advantages[[1, 4, 5, 6, 7]], torch.zeros(5))


def reference_loss(batch: dict, loss_type: str, level: str, beta: float) -> torch.Tensor:
    """The loss of `vlmgrpo.grpo.grpo_loss` written as the papers' sums, token by token."""
    logps, old, ref, mask = batch["logps"], batch["old_logps"], batch["ref_logps"], batch["mask"]
    sequences = []
    for i, length in enumerate(LENGTHS):
        seq_log_ratio = sum(logps[i, t] - old[i, t] for t in range(length)) / length
        terms = []
        for t in range(length):
            log_r = logps[i, t] - old[i, t] if level == "token" else seq_log_ratio
            r, a = torch.exp(log_r), batch["advantages"][i]
            term = -torch.min(r * a, torch.clamp(r, 1 - EPS, 1 + EPS) * a)
            d = ref[i, t] - logps[i, t]
            terms.append(term + beta * (torch.exp(d) - d - 1))
        sequences.append(sum(terms))
    if loss_type == "grpo":
        return sum(s / n for s, n in zip(sequences, LENGTHS, strict=True)) / B
    if loss_type == "dr_grpo":
        return sum(sequences) / (B * MAX_LEN)
    return sum(sequences) / mask.sum()


@pytest.mark.parametrize("level", ["token", "sequence"])
@pytest.mark.parametrize("loss_type", ["grpo", "bnpo", "dr_grpo", "dapo"])
def test_grpo_loss_matches_the_written_out_sums(loss_type, level):
    batch = make_batch()
    kwargs = {"loss_type": loss_type, "importance_sampling_level": level, "beta": 0.04}
    loss = grpo_loss(**batch, max_completion_length=MAX_LEN, **kwargs)
    assert torch.allclose(loss, reference_loss(batch, loss_type, level, 0.04), atol=1e-6)


def test_sequence_ratio_is_the_geometric_mean_of_token_ratios():
    batch = make_batch()
    ratio = sequence_ratio(batch["logps"], batch["old_logps"], batch["mask"])
    token = policy_ratio(batch["logps"], batch["old_logps"])
    for i, length in enumerate(LENGTHS):
        assert torch.allclose(ratio[i, 0], token[i, :length].prod() ** (1 / length))


def test_gradient_flows_to_the_log_probs():
    batch = make_batch()
    loss = grpo_loss(**batch, beta=0.04)
    loss.backward()
    grad = batch["logps"].grad
    assert torch.isfinite(grad).all() and grad.abs().sum() > 0
    assert torch.equal(grad[batch["mask"] == 0], torch.zeros(int((batch["mask"] == 0).sum())))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"loss_type": "ppo"}, "unknown loss_type 'ppo'"),
        ({"importance_sampling_level": "word"}, "unknown importance_sampling_level 'word'"),
        ({"beta": 0.1, "ref_logps": None}, "beta=0.1 needs ref_logps"),
        ({"loss_type": "dr_grpo"}, "needs max_completion_length"),
    ],
)
def test_grpo_loss_rejects_bad_settings(kwargs, message):
    batch = {**make_batch(), **kwargs}
    with pytest.raises(ValueError, match=message):
        grpo_loss(**batch)


def test_group_advantages_reject_bad_settings():
    with pytest.raises(ValueError, match="unknown scale 'std'"):
        group_advantages(torch.zeros(4), 2, "std")
    with pytest.raises(ValueError, match="whole number of groups of 3"):
        group_advantages(torch.zeros(4), 3)


# -- equality with TRL's GRPOTrainer ---------------------------------------------------------


@pytest.fixture(scope="module")
def trainer(tiny_model_dir, tmp_path_factory) -> GRPOTrainer:
    """One real GRPOTrainer on the tiny model; the cases change the attributes its loss reads."""
    model, processor = models.load_model(tiny_model_dir, presets.PRESETS["tiny"])
    dataset = colours.make_colour_dataset(N_PROMPTS, seed=0)
    args = GRPOConfig(
        output_dir=str(tmp_path_factory.mktemp("grpo")),
        report_to=[],
        use_cpu=True,
        num_generations=G,
        per_device_train_batch_size=B,
        max_completion_length=MAX_LEN,
        epsilon=EPS,
        use_bias_correction_kl=False,  # the paper's KL; TRL 1.16 defaults to True
        remove_unused_columns=False,
        dataloader_num_workers=0,
        disable_tqdm=True,
    )
    trainer = GRPOTrainer(
        model=model,
        reward_funcs=[format_reward, accuracy_reward],
        args=args,
        train_dataset=data.prepare_dataset(dataset, max_pixels=84 * 84),
        processing_class=processor,
    )
    trainer.model.train()
    # Trainer's loop sets this each step; one micro-batch per optimiser step here.
    trainer.current_gradient_accumulation_steps = 1
    return trainer


def trl_loss(trainer: GRPOTrainer, batch: dict) -> torch.Tensor:
    """TRL's `_compute_loss` on a batch whose current-policy log-probs are `batch["logps"]`."""
    assert batch["logps"].shape == (B, T)
    return grpo.trl_loss(trainer, **batch)


def assert_same_loss_and_gradient(trl: torch.Tensor, ours: torch.Tensor, logps: torch.Tensor):
    assert torch.allclose(trl, ours, atol=1e-6), (trl.item(), ours.item())
    (trl_grad,) = torch.autograd.grad(trl, logps)
    (our_grad,) = torch.autograd.grad(ours, logps)
    assert torch.allclose(trl_grad, our_grad, atol=1e-7)


@pytest.mark.parametrize("level", ["token", "sequence"])
@pytest.mark.parametrize("beta", [0.0, 0.04])
@pytest.mark.parametrize("loss_type", ["grpo", "bnpo", "dr_grpo", "dapo"])
def test_grpo_loss_equals_trl(trainer, monkeypatch, loss_type, beta, level):
    monkeypatch.setattr(trainer, "loss_type", loss_type)
    monkeypatch.setattr(trainer, "beta", beta)
    monkeypatch.setattr(trainer, "importance_sampling_level", level)
    batch = make_batch()
    ratio = policy_ratio(batch["logps"], batch["old_logps"])[batch["mask"] == 1]
    seq_ratio = sequence_ratio(batch["logps"], batch["old_logps"], batch["mask"])
    for r in (ratio, seq_ratio):  # both sides of the clip range are exercised
        assert (r > 1 + EPS).any() and (r < 1 - EPS).any()
    assert (batch["advantages"] == 0).sum() >= G
    ours = grpo_loss(
        **batch,
        epsilon=EPS,
        beta=beta,
        loss_type=loss_type,
        max_completion_length=MAX_LEN,
        importance_sampling_level=level,
    )
    assert_same_loss_and_gradient(trl_loss(trainer, batch), ours, batch["logps"])


@pytest.mark.parametrize("level", ["token", "sequence"])
def test_clip_higher_and_bias_corrected_kl_equal_trl(trainer, monkeypatch, level):
    """TRL's defaults that differ from the paper: DAPO's clip-higher and the corrected KL."""
    monkeypatch.setattr(trainer, "loss_type", "dapo")
    monkeypatch.setattr(trainer, "beta", 0.04)
    monkeypatch.setattr(trainer, "importance_sampling_level", level)
    monkeypatch.setattr(trainer, "epsilon_high", 0.28)
    monkeypatch.setattr(trainer.args, "use_bias_correction_kl", True)
    batch = make_batch(seed=1)
    ours = grpo_loss(
        **batch,
        epsilon=EPS,
        epsilon_high=0.28,
        beta=0.04,
        loss_type="dapo",
        importance_sampling_level=level,
        use_bias_correction_kl=True,
    )
    assert_same_loss_and_gradient(trl_loss(trainer, batch), ours, batch["logps"])


@pytest.fixture(scope="module")
def replayed_generate(trainer):
    """The trainer's `_generate`, sampled for real once, then replayed: it is the slow part."""
    generate, first = trainer._generate, []

    def replay(prompts):
        if not first:
            torch.manual_seed(0)
            first.append(generate(prompts))
        return first[0]

    return replay


@pytest.mark.parametrize("scale", ["group", "batch", "none"])
def test_group_advantages_equal_trl(trainer, replayed_generate, monkeypatch, scale):
    """TRL's `_generate_and_score_completions` on a real generation, with rewards fixed here."""
    monkeypatch.setattr(trainer, "scale_rewards", scale)
    monkeypatch.setattr(trainer, "_generate", replayed_generate)
    monkeypatch.setattr(trainer, "_calculate_rewards", lambda *args: REWARDS_PER_FUNC.clone())
    # The sampler repeats each prompt G times in a row; that is what makes a group.
    rows = [row for row in trainer.train_dataset.select(range(N_PROMPTS)) for _ in range(G)]
    out = trainer._generate_and_score_completions(rows)
    expected = group_advantages(summed_rewards(REWARDS_PER_FUNC), G, scale)
    assert torch.allclose(out["advantages"], expected, atol=1e-6)
    assert torch.equal(out["advantages"][4:8], torch.zeros(G))
    assert out["num_items_in_batch"] == out["completion_mask"].sum()


# -- where the clip binds, and GRPO on a one-token policy ------------------------------------


@pytest.mark.parametrize("epsilon_high", [None, 0.28])
def test_clip_binds_exactly_where_the_gradient_is_zero(epsilon_high):
    batch = make_batch()
    loss = grpo_loss(**batch, epsilon=EPS, epsilon_high=epsilon_high)
    (grad,) = torch.autograd.grad(loss, batch["logps"])
    ratio = policy_ratio(batch["logps"], batch["old_logps"]).detach()
    binds = clip_binds(ratio, batch["advantages"], EPS, epsilon_high)
    real = (batch["mask"] == 1) & (batch["advantages"] != 0)[:, None]
    assert binds[real].any() and not binds[real].all()
    assert torch.equal(grad[binds], torch.zeros(int(binds.sum())))
    assert (grad[real & ~binds] != 0).all()


def test_clip_binds_by_hand():
    ratio = torch.tensor([[0.7, 1.0, 1.3], [0.7, 1.0, 1.3]])
    binds = clip_binds(ratio, torch.tensor([1.0, -1.0]))
    assert torch.equal(binds, torch.tensor([[False, False, True], [True, False, False]]))
    assert not clip_binds(ratio, torch.tensor([1.0, -1.0]), epsilon_high=0.4).any(dim=1)[0]
    assert not clip_binds(ratio, torch.zeros(2)).any()


def test_clip_binds_equals_trls_clip_ratio(trainer, monkeypatch):
    monkeypatch.setattr(trainer, "loss_type", "grpo")
    monkeypatch.setattr(trainer, "beta", 0.0)
    monkeypatch.setattr(trainer, "importance_sampling_level", "token")
    batch = make_batch(seed=2)
    trl_loss(trainer, batch)
    ratio = policy_ratio(batch["logps"], batch["old_logps"]).detach()
    binds = clip_binds(ratio, batch["advantages"], EPS)[batch["mask"] == 1]
    logged = trainer._metrics["train"]["clip_ratio/region_mean"][-1]
    assert binds.any()
    assert logged == pytest.approx(binds.float().mean().item())


LOGITS = torch.tensor([1.0, 0.5, -0.5, 0.5, 0.0])
RIGHT_ANSWER = torch.tensor([0.0, 0.0, 1.0, 0.0, 0.0])


def test_one_token_policy_moves_mass_to_the_rewarded_answer():
    probs, clipped = train_one_token_policy(LOGITS, RIGHT_ANSWER, groups=20)
    assert probs.shape == (21, 5) and clipped.shape == (20,)
    assert torch.allclose(probs[0], LOGITS.softmax(-1))
    assert probs[0, 2] < 0.1 and probs[-1, 2] > 0.7
    assert torch.equal(clipped, torch.zeros(20))  # one step per group: the ratio is 1
    again, _ = train_one_token_policy(LOGITS, RIGHT_ANSWER, groups=20)
    assert torch.equal(probs, again)


def test_one_token_policy_clips_on_later_iterations_of_a_group():
    probs, clipped = train_one_token_policy(LOGITS, RIGHT_ANSWER, groups=10, num_iterations=4)
    assert clipped.shape == (40,)
    assert torch.equal(clipped[::4], torch.zeros(10))  # each group's first step: ratio 1
    assert clipped.max() > 0
    assert probs[-1, 2] > 0.7


def test_one_token_policy_does_not_move_without_a_reward_signal():
    probs, _ = train_one_token_policy(LOGITS, torch.zeros(5), groups=5, num_iterations=2)
    assert torch.equal(probs, LOGITS.softmax(-1).expand(6, 5))
