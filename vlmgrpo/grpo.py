r"""GRPO from scratch: the objective TRL's GRPOTrainer optimises, written out in plain torch.

Group Relative Policy Optimization (DeepSeekMath, Shao et al. 2024, eq. 3) samples a group of
G completions o_1..o_G for each prompt q from the old policy, scores them, and maximises

    J(theta) = E[ 1/G sum_i 1/|o_i| sum_t { min( r_{i,t} A_{i,t},
                                               clip(r_{i,t}, 1 - eps, 1 + eps) A_{i,t} )
                                          - beta D_KL[pi_theta || pi_ref] } ]

with the per-token probability ratio r_{i,t} = pi_theta(o_{i,t} | q, o_{i,<t}) /
pi_old(o_{i,t} | q, o_{i,<t}), and the group-relative advantage A_{i,t} = (R_i - mean(R)) /
std(R) shared by every token of completion i: no value network, the group is the baseline.
The KL to a frozen reference is estimated per token with Schulman's k3 estimator (eq. 4),
unbiased for the KL's value under samples from pi_theta (not for its gradient), and is
optional (TRL's default is beta = 0; with a PEFT model TRL's reference is the same model
with the adapter disabled, so beta > 0 costs a forward pass, not a copy).

`grpo_loss` returns -J for one batch, and equals TRL 1.16's `GRPOTrainer._compute_loss` for
the same per-token log-probs in one process without gradient accumulation, for the loss
types "grpo" (per-sequence mean, as above), "bnpo", "dr_grpo" and "dapo" (which change only
how token terms are averaged), at token level or at GSPO's sequence level. TRL's switches
that are off by default (delta, off-policy masking, top-entropy masking, the entropy bonus,
vLLM importance-sampling correction, and the cispo, sapo, vespo and luspo losses) are not
covered.
"""

from __future__ import annotations

import torch

LOSS_TYPES = ("grpo", "bnpo", "dr_grpo", "dapo")
SCALES = ("group", "batch", "none")
IMPORTANCE_SAMPLING_LEVELS = ("token", "sequence")
STD_EPS = 1e-4  # TRL adds this to the std, so a group with equal rewards gets advantage 0


def policy_ratio(logps: torch.Tensor, old_logps: torch.Tensor) -> torch.Tensor:
    r"""Per-token ratio r_{i,t} = pi_theta / pi_old = exp(log pi_theta - log pi_old) (eq. 3)."""
    return torch.exp(logps - old_logps)


def sequence_ratio(
    logps: torch.Tensor, old_logps: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor:
    r"""GSPO's ratio s_i = (pi_theta(o_i) / pi_old(o_i))^(1/|o_i|), shape (B, 1).

    Zheng et al. 2025, eq. 7: s_i = exp( 1/|o_i| sum_t log r_{i,t} ), the geometric mean of
    the token ratios over the completion's unmasked tokens, then used for every one of them.
    """
    mask = mask.to(logps.dtype)
    log_ratio = ((logps - old_logps) * mask).sum(-1) / mask.sum(-1).clamp(min=1.0)
    return torch.exp(log_ratio).unsqueeze(-1)


def kl_k3(logps: torch.Tensor, ref_logps: torch.Tensor) -> torch.Tensor:
    r"""Per-token KL estimate pi_ref/pi_theta - log(pi_ref/pi_theta) - 1 (eq. 4), always >= 0.

    With d = log pi_ref - log pi_theta this is exp(d) - d - 1: unbiased for
    D_KL[pi_theta || pi_ref] when the tokens are sampled from pi_theta, and 0 only where the
    two policies agree.
    """
    delta = ref_logps - logps
    return torch.exp(delta) - delta - 1


def clipped_surrogate(
    ratio: torch.Tensor,
    advantages: torch.Tensor,
    epsilon: float = 0.2,
    epsilon_high: float | None = None,
) -> torch.Tensor:
    r"""min( r A, clip(r, 1 - eps, 1 + eps_high) A ), the per-token term of eq. 3 (to maximise).

    `epsilon_high` is DAPO's "clip-higher" upper bound (Yu et al. 2025), `epsilon` when None.
    Advantages of shape (B,) or (B, 1) hold one value per sequence and broadcast over the
    tokens of `ratio` (B, T); for A > 0 the objective stops growing past r = 1 + eps_high, for
    A < 0 it stops growing below r = 1 - eps, so one update cannot move the policy far.
    """
    epsilon_high = epsilon if epsilon_high is None else epsilon_high
    advantages = _per_sequence(advantages)
    clipped = torch.clamp(ratio, 1 - epsilon, 1 + epsilon_high)
    return torch.min(ratio * advantages, clipped * advantages)


def group_advantages(rewards: torch.Tensor, group_size: int, scale: str = "group") -> torch.Tensor:
    r"""A_i = (R_i - mean(group)) / (std + 1e-4), the outcome advantage of DeepSeekMath 4.1.2.

    `rewards` (N,) holds consecutive groups of `group_size` completions of one prompt. `scale`
    picks the std: "group" (the paper's), "batch" (the std of all N rewards, keeping the
    group's mean), or "none" (Dr. GRPO: no division). Like TRL, the std is the sample one
    (Bessel-corrected), and a NaN reward (a completion no reward function could score) is
    left out of its group's mean and std and gets advantage 0; so does a group whose rewards
    are all equal. (TRL: `GRPOTrainer._generate_and_score_completions` and `trainer.utils.nanstd`.)
    """
    if scale not in SCALES:
        raise ValueError(f"unknown scale {scale!r}; choose one of: {', '.join(SCALES)}")
    if rewards.dim() != 1 or group_size < 1 or rewards.numel() % group_size:
        raise ValueError(
            f"rewards must be 1-D with a whole number of groups of {group_size}, "
            f"got shape {tuple(rewards.shape)}"
        )
    grouped = rewards.view(-1, group_size)
    mean = torch.nanmean(grouped, dim=1).repeat_interleave(group_size)
    advantages = rewards - mean
    if scale != "none":
        if scale == "group" and group_size > 1:
            std = _nanstd(grouped, dim=1).repeat_interleave(group_size)
        elif scale == "batch" and rewards.numel() > 1:
            std = _nanstd(rewards, dim=0).expand_as(rewards)
        else:  # a single sample has no spread; TRL divides by the 1e-4 alone then
            std = torch.zeros_like(rewards)
        advantages = advantages / (std + STD_EPS)
    # NaN here means an unscorable completion, or a group with a single scored one.
    return torch.nan_to_num(advantages, nan=0.0)


def grpo_loss(
    logps: torch.Tensor,
    old_logps: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    *,
    epsilon: float = 0.2,
    epsilon_high: float | None = None,
    beta: float = 0.0,
    ref_logps: torch.Tensor | None = None,
    loss_type: str = "grpo",
    max_completion_length: int | None = None,
    importance_sampling_level: str = "token",
    use_bias_correction_kl: bool = False,
) -> torch.Tensor:
    r"""The scalar loss -J(theta) of eq. 3 for one batch of completions, as TRL computes it.

    `logps`, `old_logps`, `ref_logps` and `mask` are (B, T): log-probs of each completion token
    under the policy being trained, the policy that sampled it, and the reference, and 1 on
    real tokens, 0 on padding. Per token, l_{i,t} = -min(r A, clip(r) A) + beta k3_{i,t}, with
    r the token ratio, or GSPO's sequence ratio s_i for importance_sampling_level="sequence".
    The token terms are then averaged as `loss_type` says:

    * "grpo" (DeepSeekMath): 1/B sum_i 1/|o_i| sum_t l_{i,t}, each sequence weighs the same.
    * "bnpo" and "dapo" (DAPO's token-level loss): sum_{i,t} l_{i,t} / sum_i |o_i|, each token
      weighs the same. They differ in TRL only across processes and accumulation steps.
    * "dr_grpo" (Dr. GRPO, Liu et al. 2025): sum_{i,t} l_{i,t} / (B * max_completion_length),
      a constant denominator, so no length bias; pass GRPOConfig's max_completion_length.

    `use_bias_correction_kl` multiplies the k3 term by the ratio (DeepSeek-V3.2); the paper's
    GRPO, and this default, leave it off, while TRL 1.16's GRPOConfig turns it on by default.
    """
    if loss_type not in LOSS_TYPES:
        raise ValueError(
            f"unknown loss_type {loss_type!r}; choose one of: {', '.join(LOSS_TYPES)}"
        )
    if importance_sampling_level not in IMPORTANCE_SAMPLING_LEVELS:
        raise ValueError(
            f"unknown importance_sampling_level {importance_sampling_level!r}; choose one of: "
            f"{', '.join(IMPORTANCE_SAMPLING_LEVELS)}"
        )
    if beta != 0.0 and ref_logps is None:
        raise ValueError(f"beta={beta} needs ref_logps, the reference model's log-probs")
    if loss_type == "dr_grpo" and max_completion_length is None:
        raise ValueError("loss_type='dr_grpo' needs max_completion_length, its denominator")
    if logps.shape != old_logps.shape or logps.shape != mask.shape:
        raise ValueError(
            f"logps {tuple(logps.shape)}, old_logps {tuple(old_logps.shape)} and mask "
            f"{tuple(mask.shape)} must all be (batch, completion tokens)"
        )
    mask = mask.to(logps.dtype)
    if importance_sampling_level == "token":
        ratio = policy_ratio(logps, old_logps)
    else:
        ratio = sequence_ratio(logps, old_logps, mask)
    per_token_loss = -clipped_surrogate(ratio, advantages, epsilon, epsilon_high)
    if beta != 0.0:
        kl = kl_k3(logps, ref_logps)
        if use_bias_correction_kl:
            kl = kl * ratio
        per_token_loss = per_token_loss + beta * kl
    # A (B, 1) sequence-level loss broadcasts here to every token of its completion.
    masked = per_token_loss * mask
    if loss_type == "grpo":
        return (masked.sum(-1) / mask.sum(-1).clamp(min=1.0)).mean()
    if loss_type == "dr_grpo":
        return masked.sum() / (per_token_loss.size(0) * max_completion_length)
    return masked.sum() / mask.sum().clamp(min=1.0)


def _per_sequence(advantages: torch.Tensor) -> torch.Tensor:
    """(B,) advantages as (B, 1), so they broadcast over tokens; other shapes pass through."""
    return advantages.unsqueeze(1) if advantages.dim() == 1 else advantages


def _nanstd(values: torch.Tensor, dim: int) -> torch.Tensor:
    """Sample std along `dim` ignoring NaNs; NaN where fewer than two values remain."""
    mean = torch.nanmean(values, dim=dim, keepdim=True)
    variance = torch.nanmean((values - mean) ** 2, dim=dim)
    count = (~torch.isnan(values)).sum(dim=dim)
    # Bessel's correction n / (n - 1), undefined for a single value.
    correction = torch.where(count > 1, count / (count - 1), torch.full_like(variance, torch.nan))
    return torch.sqrt(variance * correction)


def trl_loss(
    trainer,
    logps: torch.Tensor,
    old_logps: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    ref_logps: torch.Tensor | None = None,
) -> torch.Tensor:
    """TRL's own `GRPOTrainer._compute_loss` on these per-token log-probs, to check `grpo_loss`.

    The trainer's forward pass is swapped for one returning `logps`, so both sides see the same
    numbers; the trainer's settings (loss_type, beta, epsilon, importance_sampling_level) decide
    the loss. One process, no gradient accumulation.
    """
    batch, length = logps.shape

    def known_logps(model, input_ids, attention_mask, logits_to_keep, **kwargs):
        return logps, torch.zeros_like(logps), None

    trainer._get_per_token_logps_and_entropies = known_logps
    trainer.current_gradient_accumulation_steps = 1  # Trainer's loop sets this each step
    try:
        inputs = {
            "prompt_ids": torch.ones(batch, 1, dtype=torch.long),
            "prompt_mask": torch.ones(batch, 1, dtype=torch.long),
            "completion_ids": torch.ones(batch, length, dtype=torch.long),
            "completion_mask": mask,
            "advantages": advantages,
            "num_items_in_batch": mask.sum(),  # the generation batch's loss tokens
            "old_per_token_logps": old_logps,
            "ref_per_token_logps": ref_logps,
        }
        return trainer._compute_loss(trainer.model, inputs)
    finally:
        del trainer._get_per_token_logps_and_entropies


def clip_binds(
    ratio: torch.Tensor,
    advantages: torch.Tensor,
    epsilon: float = 0.2,
    epsilon_high: float | None = None,
) -> torch.Tensor:
    r"""True where min(r A, clip(r) A) takes the clipped term, so the token gets no gradient.

    That is A > 0 with r > 1 + eps_high, or A < 0 with r < 1 - eps; outside the band on the
    other side the minimum keeps r A and its full gradient. TRL logs the same tokens as
    `clip_ratio/high_mean` and `clip_ratio/low_mean` (`GRPOTrainer._compute_loss`).
    """
    epsilon_high = epsilon if epsilon_high is None else epsilon_high
    advantages = _per_sequence(advantages)
    return ((advantages > 0) & (ratio > 1 + epsilon_high)) | (
        (advantages < 0) & (ratio < 1 - epsilon)
    )


def train_one_token_policy(
    logits: torch.Tensor,
    answer_rewards: torch.Tensor,
    *,
    group_size: int = 8,
    groups: int = 20,
    num_iterations: int = 1,
    lr: float = 0.5,
    epsilon: float = 0.2,
    seed: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""GRPO on the smallest policy there is: softmax(logits) over K one-token answers.

    Each of `groups` rounds samples `group_size` answers from the current policy (a generator
    seeded with `seed`), scores them with `answer_rewards` (K,), and takes `num_iterations`
    SGD steps of `grpo_loss` on that group, whose sampled log-probs are the old policy (TRL's
    `num_iterations`, the paper's mu; beta = 0). Returns the answer probabilities before and
    after each round, (groups + 1, K), and the fraction of the group whose clip binds at each
    step, (groups * num_iterations,), measured at the ratios the step's gradient sees.
    """
    gen = torch.Generator().manual_seed(seed)
    logits = logits.detach().clone().requires_grad_()
    optimizer = torch.optim.SGD([logits], lr=lr)
    probs, clipped = [logits.softmax(-1).detach()], []
    ones = torch.ones(group_size, 1)
    for _ in range(groups):
        old = logits.log_softmax(-1).detach()
        answers = torch.multinomial(old.exp(), group_size, replacement=True, generator=gen)
        advantages = group_advantages(answer_rewards[answers], group_size)
        for _ in range(num_iterations):
            logps = logits.log_softmax(-1)[answers][:, None]
            ratio = policy_ratio(logps, old[answers][:, None]).detach()
            clipped.append(clip_binds(ratio, advantages, epsilon).float().mean())
            loss = grpo_loss(logps, old[answers][:, None], advantages, ones, epsilon=epsilon)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        probs.append(logits.softmax(-1).detach())
    return torch.stack(probs), torch.stack(clipped)
