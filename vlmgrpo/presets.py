"""The recipes: every number a run needs, per preset, with TRL 1.16's defaults written out.

* ``tiny`` (default): the offline tiny Qwen2.5-VL (`vlmgrpo.tiny`) on the synthetic colour
  task (`vlmgrpo.colours`), on a CPU in minutes.
* ``tiny-reasoning``: a tiny Qwen2.5-VL of its own on the two-hop price task
  (`vlmgrpo.prices`), where the answer depends on the reasoning; on a CPU in minutes.
* ``qwen2.5-vl-3b``: the article's recipe, Qwen/Qwen2.5-VL-3B-Instruct on
  lmms-lab/multimodal-open-r1-8k-verified, for a 40-80 GB card (A100, H100)::

      vlmgrpo train --preset qwen2.5-vl-3b

* ``qwen2.5-vl-3b-24gb``: the same recipe fitted to one 24 GB card (RTX 3090/4090, A5000).
* ``qwen3-vl-2b``: the article's recipe on the current small model, Qwen/Qwen3-VL-2B-Instruct
  with bf16 LoRA, for one 16-24 GB card (T4, RTX 4060 Ti 16 GB, A4000, RTX 3090/4090).
* ``qwen3-vl-4b-qlora``: TRL's Qwen3-VL notebook (``examples/notebooks/grpo_qwen3_vl.ipynb``),
  Qwen/Qwen3-VL-4B-Instruct in 4-bit nf4 with LoRA beside it (QLoRA), for one 16 GB card::

      vlmgrpo train --preset qwen3-vl-4b-qlora

The article's numbers, and what TRL 1.16 adds where the article says nothing:

=============================  ===========================  ==================================
setting                        the article                  here (TRL 1.16 default unless *)
=============================  ===========================  ==================================
data                           ``train[:5%]``, 80/20 split  same, seed 42
LoRA                           r=8, alpha=32, dropout 0.1,  same
                               ``q_proj``/``v_proj``
learning rate                  1e-5                         same
completions per prompt         2                            same (4 on the 24 GB preset*)
prompts per device and step    batch 2 (1 prompt)           same
completion tokens              1024                         same (512 on the 24 GB preset*)
prompt length                  ``max_prompt_length``        gone in TRL 1.16; images capped
                                                            at 256 image tokens instead*
precision                      bf16                         bf16; fp16 on a GPU without
                                                            bf16 (a T4), fp32 on a CPU*
epochs                         1                            1
KL coefficient beta            not set: TRL's default (1)   0.0: no KL term
loss                           not set: TRL's default (1)   "dapo": token-level, no length bias
reward scaling                 by the group's std           ``scale_rewards="group"``
clip epsilon                   0.2                          0.2 (``epsilon_high`` = epsilon)
sampling temperature           1.0                          1.0, top-p 1.0, no top-k
=============================  ===========================  ==================================

(1) The article's code pins no TRL version (``trl>=0.7.0``) and sets neither, so it ran with
whatever TRL it installed; which one is not recorded. TRL's GRPO defaults changed under it:
beta 0.04 until 2025-05-30, then 0.0 (TRL PR 3516); the loss the paper's per-completion mean
until 2025-04-09, then "bnpo" (PR 3256), then "dapo" from 2025-08-22 (PR 3938).

The Qwen3-VL presets beside their two sources (same dataset, split, rewards and TRL defaults
as above; TRL's notebook rewards format and length, Kimi 1.5's length reward that also weighs
correctness, where these presets reward format and accuracy):

======================  =============  =======================  =============  =============
setting                 the article    TRL's Qwen3-VL notebook  qwen3-vl-2b    -4b-qlora
======================  =============  =======================  =============  =============
model                   Qwen2.5-VL-3B  Qwen3-VL-4B              Qwen3-VL-2B    Qwen3-VL-4B
weights                 bf16           nf4, double quant        bf16           nf4, double q.
compute precision       bf16           fp16 (a T4)              bf16 or fp16   bf16 or fp16
LoRA                    r8 a32 q,v     r8 a32 q,v               r8 a32 q,v     r8 a32 q,v
learning rate           1e-5           2e-5                     1e-5           2e-5
completions per prompt  2              2                        4              4
prompts per step        1 (batch 2)    1 (batch 2)              1 (batch 4)    1 (batch 4)
completion tokens       1024           1024                     1024           1024
image cap (tokens)      256 of 28 px   none                     256 of 32 px   256 of 32 px
activation checkpoint.  no             no                       yes            yes
length                  1 epoch        100 steps                1 epoch        1 epoch
======================  =============  =======================  =============  =============

Each of these is a `Preset` field, and the CLI flags of `vlmgrpo train` override the ones a
renter changes most (``--help`` shows every preset's default).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields, replace

from vlmgrpo import colours, tasks
from vlmgrpo.utils import UsageError, distributed_state

# LoRA on every linear layer of the language model, none in the vision tower.
LM_LINEAR = r".*language_model.*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)"
QWEN_3B = "Qwen/Qwen2.5-VL-3B-Instruct"
QWEN3_2B = "Qwen/Qwen3-VL-2B-Instruct"
QWEN3_4B = "Qwen/Qwen3-VL-4B-Instruct"
ARTICLE_DATASET = "lmms-lab/multimodal-open-r1-8k-verified"
# TRL 1.16's loss types that work at the token level ("luspo" needs sequence level, GSPO's).
LOSS_TYPES = ("dapo", "grpo", "bnpo", "dr_grpo", "cispo", "sapo", "vespo")
# Weight quantizations a preset may ask for: bitsandbytes' 4-bit NormalFloat (QLoRA's).
QUANTIZATIONS = ("nf4",)
# The pinned bitsandbytes (constraints/default.txt), for the error that asks to install it.
BITSANDBYTES = "bitsandbytes==0.50.2"
# What `vllm serve` needs besides VLLM_SERVER_DEV_MODE=1 and the model to serve TRL 1.16's
# GRPOTrainer (vllm_mode="server"): its weight updates and log-probs (trl/scripts/vllm_serve.py).
SERVE_FLAGS = (
    """--weight-transfer-config '{"backend": "nccl"}' --logprobs-mode processed_logprobs """
    "--max-logprobs -1"
)


@dataclass(frozen=True)
class Family:
    """A model family's image geometry: `patch`-px patches merged `merge` x `merge` per token."""

    name: str
    model_types: tuple[str, ...]  # config.json's model_type of its checkpoints
    patch: int
    merge: int = 2

    @property
    def token_side(self) -> int:
        """The side of the square of pixels one image token covers (an image's smallest side)."""
        return self.patch * self.merge

    @property
    def pixels_per_token(self) -> int:
        """Pixels per image token: 28 x 28 on Qwen2.5-VL, 32 x 32 on Qwen3-VL."""
        return self.token_side**2


# Every image token count, pixel cap and minimum side comes from here.
FAMILIES = {
    "qwen2.5-vl": Family("qwen2.5-vl", ("qwen2_5_vl",), patch=14),
    "qwen3-vl": Family("qwen3-vl", ("qwen3_vl",), patch=16),
}
DEFAULT_FAMILY = "qwen2.5-vl"  # the tiny model's and the article's


@dataclass(frozen=True)
class Preset:
    """Everything a run needs besides its output folder and seed."""

    name: str
    model: str | None = None  # hub id or folder; None builds the tiny model
    dataset: str | None = None  # hub id or path; None generates the synthetic task
    # The synthetic task (a `vlmgrpo.tasks.TASKS` key) when `dataset` is None, and so the tiny
    # model when `model` is None.
    task: str = "colour"
    # The model's family (a FAMILIES key), which sizes its image tokens. A run whose --model
    # is of another known family takes that one (`vlmgrpo.models.model_family`).
    family: str = DEFAULT_FAMILY
    quantization: str | None = None  # "nf4": the base model in 4 bits (QLoRA); None: as is
    fraction: float = 0.05
    test_size: float = 0.2
    n_train: int = 2000  # synthetic task only
    n_test: int = 120  # synthetic task only
    # Images are shrunk to at most this many image tokens (pixels: `max_pixels`).
    max_image_tokens: int = 256
    # Text tokens a prompt may take (system prompt + question), for sizing vLLM's context.
    prompt_text_tokens: int = 512
    lora_r: int = 8
    lora_alpha: int = 32
    lora_dropout: float = 0.1
    target_modules: list[str] | str = field(default_factory=lambda: ["q_proj", "v_proj"])
    learning_rate: float = 1e-5
    num_generations: int = 2
    batch_size: int = 2
    gradient_accumulation_steps: int = 1
    max_completion_length: int = 1024
    max_steps: int = -1
    num_train_epochs: float = 1.0
    temperature: float = 1.0
    top_k: int = 0
    beta: float = 0.0
    loss_type: str = "dapo"
    importance_sampling_level: str = "token"  # "sequence" is GSPO
    scale_rewards: str = "group"
    epsilon: float = 0.2
    epsilon_high: float | None = None  # None: epsilon (a symmetric clip)
    # Optimisation steps per batch of generations: above 1 the ratio leaves 1 and clips.
    num_iterations: int = 1
    logging_steps: int = 10
    save_steps: int = 10
    # On a CUDA GPU, train and evaluate in bf16 (fp16 where the card has no bf16, a T4);
    # float32 elsewhere and without it. `vlmgrpo.models.compute_dtype` decides.
    half_precision: bool = False
    activation_checkpointing: bool = False
    use_vllm: bool = False
    # "colocate": vLLM shares the training GPUs; "server": a vLLM server started apart, with
    # `VLLM_SERVER_DEV_MODE=1 vllm serve MODEL` (and `SERVE_FLAGS`; TRL 1.16's advice, its
    # `trl vllm-serve` being deprecated).
    vllm_mode: str = "colocate"
    vllm_gpu_memory_utilization: float = 0.3  # colocate: vLLM's share of each GPU
    eval_batch_size: int = 8
    eval_max_new_tokens: int = 1024
    # Held-out rows scored before and after training: the first N (None: all; 0: none, so a
    # smoke run spends its time training, not generating 1,024-token answers).
    eval_rows: int | None = None

    @property
    def max_pixels(self) -> int:
        """The image cap in pixels: `max_image_tokens` tokens of the family's size."""
        return self.max_image_tokens * FAMILIES[self.family].pixels_per_token

    @property
    def vllm_max_model_length(self) -> int:
        """vLLM's context: image tokens + prompt text + completion, rounded up to 256.

        Left unset, vLLM sizes its KV cache for the model's full context (128k tokens for
        Qwen2.5-VL, 256k for Qwen3-VL), far more than one of these sequences needs.
        """
        image_tokens = self.max_image_tokens + 2  # + vision start/end
        total = image_tokens + self.prompt_text_tokens + self.max_completion_length
        return -(-total // 256) * 256


# The default: the tiny model on the colour task, on a CPU in minutes.
TINY = Preset(
    name="tiny",
    fraction=1.0,  # a dataset passed with the tiny preset is used whole
    n_train=2000,
    n_test=120,
    # A synthetic image, 84 x 84 px (colours.IMAGE_SIZE): 3 x 3 tokens of 28 px.
    max_image_tokens=(colours.IMAGE_SIZE // FAMILIES["qwen2.5-vl"].token_side) ** 2,
    lora_r=16,
    lora_alpha=32,
    lora_dropout=0.0,
    target_modules=LM_LINEAR,
    learning_rate=3e-3,
    num_generations=8,
    batch_size=48,
    # The cold start's completions are 10 to 26 tokens long (four phrasings of the
    # reasoning); leave room without paying for much more.
    max_completion_length=32,
    max_steps=80,
    # Sampling from the whole vocabulary lets a tiny model spell junk; top-k keeps the
    # group's answers among the plausible ones.
    top_k=5,
    # The reward reads only the answer, and the answer reads the image, not the reasoning.
    # Without a KL anchor (TRL's beta=0) RL moves the reasoning too: many traces come to
    # name the hue *before* the true one, the shift it taught the answer (measured: the
    # answer agrees with its own reasoning 0.55 of the time at beta=0, 0.81 at 0.04, 1.0
    # at 0.1, with held-out accuracy 1.0 each time).
    beta=0.1,
    logging_steps=1,
    save_steps=20,
    eval_batch_size=40,
    eval_max_new_tokens=32,
)
PRESETS = {
    "tiny": TINY,
    # The two-hop price task (`vlmgrpo.prices`) on its own tiny model: the tiny preset's
    # recipe, with completions of 19 tokens (one phrasing of the reasoning), and the same
    # KL anchor. What it reaches over five seeds: vlmgrpo/seed_spread.json ("reasoning").
    "tiny-reasoning": replace(
        TINY,
        name="tiny-reasoning",
        task="prices",
        max_completion_length=24,
        eval_max_new_tokens=24,
    ),
    # The article's recipe. On an 80 GB card vLLM's default share (0.3 = 24 GB) holds the
    # 7.5 GB of weights and a KV cache for hundreds of 2,048-token sequences.
    "qwen2.5-vl-3b": Preset(
        name="qwen2.5-vl-3b",
        model=QWEN_3B,
        dataset=ARTICLE_DATASET,
        half_precision=True,
    ),
    # The article's recipe fitted to one 24 GB card, from these figures:
    # - bf16 weights: 3.75 B parameters x 2 bytes = 7.5 GB, held once by training (LoRA's
    #   optimizer state is ~2 M parameters: nothing) and once more by a colocated vLLM.
    # - What grows is activations and logits, in proportion to the sequence length (image
    #   tokens + prompt + completion) times the completions per step: images capped at
    #   128 image tokens (128 x 28 x 28 pixels), 512 completion tokens, and activation
    #   checkpointing (TRL 1.16 then calls `enable_input_require_grads` on the PEFT model)
    #   leave room for 4 completions per prompt instead of 2, a clearer group advantage.
    # - vLLM (--use-vllm): its KV cache costs 2 (K, V) x 36 layers x 2 KV heads x 128 dims
    #   x 2 bytes = 36 KiB per token, so one 1,280-token sequence (`vllm_max_model_length`:
    #   130 image + 512 prompt + 512 completion tokens, rounded up) needs 46 MB, and the 4
    #   of a step 0.2 GB. TRL's default share, 0.3 x 24 GB = 7.2 GB, is less than the
    #   weights alone; 0.45 (10.8 GB) holds the weights, ~2 GB of vLLM's activations and CUDA
    #   graphs, and a KV cache for ~25 such sequences, leaving 13 GB for training.
    # No 4-bit: unmeasured.
    "qwen2.5-vl-3b-24gb": Preset(
        name="qwen2.5-vl-3b-24gb",
        model=QWEN_3B,
        dataset=ARTICLE_DATASET,
        max_image_tokens=128,
        num_generations=4,
        batch_size=4,
        max_completion_length=512,
        half_precision=True,
        activation_checkpointing=True,
        vllm_gpu_memory_utilization=0.45,
        eval_batch_size=4,
        eval_max_new_tokens=512,
    ),
    # The article's recipe on Qwen3-VL-2B, in bf16 (fp16 on a T4), for one 16-24 GB card:
    # - weights: 2.13 B parameters x 2 bytes = 4.3 GB; LoRA on q,v: 1.6 M parameters, with
    #   their gradients and AdamW's two moments in float32 (peft's default), 26 MB.
    # - activations, with checkpointing: each layer's input, 28 layers x 2048 x 2 bytes =
    #   112 KiB per token, for a step's 4 sequences of up to 1,794 tokens (258 image tokens,
    #   up to 512 of prompt text, 1,024 of completion), 7.2 k tokens: 0.8 GB; one layer
    #   recomputed at a time in the backward pass, ~0.5 GB; the completions' logits, 4 x
    #   1,024 x 151,936 x 2 bytes = 1.2 GB, and as much for their gradient: 2.5 GB.
    # - generation's KV cache, 2 (K, V) x 28 layers x 8 KV heads x 128 x 2 bytes = 112 KiB
    #   per token: 0.8 GB for the 4 sequences (freed before the backward pass).
    # About 9 GB in all (arithmetic, not measured): room on 16 GB for 4 completions per
    # prompt instead of the article's 2. Images at 256 tokens of 32 x 32 px (512 x 512).
    # - vLLM (--use-vllm, 24 GB): a share of 0.45 (10.8 GB) holds its copy of the weights
    #   (4.3 GB), ~2 GB of its activations and CUDA graphs and a KV cache for ~19 sequences
    #   of `vllm_max_model_length` (2,048 tokens, 224 MiB each), leaving 13 GB for training.
    #   On 16 GB that share leaves too little on both sides: train without --use-vllm.
    "qwen3-vl-2b": Preset(
        name="qwen3-vl-2b",
        model=QWEN3_2B,
        dataset=ARTICLE_DATASET,
        family="qwen3-vl",
        num_generations=4,
        batch_size=4,
        half_precision=True,
        activation_checkpointing=True,
        vllm_gpu_memory_utilization=0.45,
        eval_batch_size=4,
    ),
    # TRL's Qwen3-VL notebook, on the article's rewards: Qwen3-VL-4B with its linear layers
    # (language model and vision tower) in 4-bit nf4, double quantization, computing in bf16
    # (fp16 on a T4), and LoRA beside them (QLoRA), for one 16 GB card:
    # - weights: the 4.04 B parameters of linear layers at 4 bits, 2.0 GB, plus their
    #   quantization constants (double quantization: 0.127 bits per parameter), 64 MB; the
    #   393 M kept out of 4 bits (the embedding, shared with the output layer; the vision
    #   tower's patch and position embeddings; the norms) in float32, as QLoRA and TRL's
    #   notebook keep them, 1.6 GB: 3.7 GB. In bf16 the model alone would take 8.9 GB.
    # - LoRA on q,v: 2.9 M parameters, which TRL 1.16 casts to bf16 for a quantized model:
    #   weights, gradients and AdamW's two moments, 24 MB.
    # - activations, with checkpointing: each layer's input, in float32 like the weights
    #   kept out of 4 bits, 36 layers x 2560 x 4 bytes = 360 KiB per token, for a step's
    #   7.2 k tokens (4 sequences of up to 1,794): 2.6 GB; one layer recomputed, ~0.5 GB; the
    #   completions' logits and their gradient, 2.5 GB (as for the 2B: same vocabulary).
    # - generation's KV cache, 2 x 36 layers x 8 KV heads x 128 x 2 bytes = 144 KiB per
    #   token: 1.0 GB for the 4 sequences.
    # About 10 GB in all (arithmetic, not measured), within a T4's 15 GB. TRL's notebook
    # samples 2 completions per prompt; 4 give a clearer group advantage and still fit.
    # - vLLM (--use-vllm): TRL hands vLLM the 4-bit model ("bitsandbytes" quantization), ~3
    #   GB of weights and ~2 GB of activations; a share of 0.4 (6.4 GB on 16 GB) leaves a
    #   KV cache for ~5 sequences of 2,048 tokens (288 MiB each) and 9.6 GB for training:
    #   tight, and unmeasured. The preset generates with transformers unless asked.
    "qwen3-vl-4b-qlora": Preset(
        name="qwen3-vl-4b-qlora",
        model=QWEN3_4B,
        dataset=ARTICLE_DATASET,
        family="qwen3-vl",
        quantization="nf4",
        learning_rate=2e-5,
        num_generations=4,
        batch_size=4,
        half_precision=True,
        activation_checkpointing=True,
        vllm_gpu_memory_utilization=0.4,
        eval_batch_size=4,
    ),
}
GPU_PRESETS = tuple(name for name, preset in PRESETS.items() if preset.half_precision)


def get_preset(name: str) -> Preset:
    """The named preset, or a one-line error listing the known ones."""
    if name not in PRESETS:
        raise UsageError(f"unknown preset {name!r}; choose one of: {', '.join(PRESETS)}")
    return PRESETS[name]


def defaults_help(setting: str) -> str:
    """Each preset's value of `setting`, for a CLI flag's help: "tiny: 24, qwen2.5-vl-3b: …"."""
    return ", ".join(f"{name}: {getattr(p, setting)}" for name, p in PRESETS.items())


def apply_settings(preset: Preset, **settings) -> Preset:
    """`preset` with the given fields replaced; those left at None keep the preset's value."""
    names = {f.name for f in fields(Preset)} - {"name"}
    unknown = sorted(set(settings) - names)
    if unknown:
        raise TypeError(f"not a preset setting: {', '.join(unknown)}")
    preset = replace(preset, **{k: v for k, v in settings.items() if v is not None})
    if settings.get("max_steps") is not None:
        if settings["max_steps"] <= 0:
            raise UsageError(f"--max-steps must be positive, got {settings['max_steps']}")
        # A short run still checkpoints, and logs, its last step.
        preset = replace(preset, save_steps=min(preset.save_steps, settings["max_steps"]))
    return preset


def check_preset(preset: Preset, num_processes: int | None = None) -> None:
    """Raise a one-line UsageError for settings TRL would reject (or train badly on).

    `num_processes` defaults to the number `accelerate launch` started (1 without it).
    """
    if preset.num_generations < 2:
        raise UsageError(
            f"--num-generations must be at least 2 (GRPO compares completions within a group), "
            f"got {preset.num_generations}"
        )
    if preset.batch_size < 1 or preset.gradient_accumulation_steps < 1:
        raise UsageError(
            f"batch size and gradient accumulation must be positive, got {preset.batch_size} "
            f"and {preset.gradient_accumulation_steps}"
        )
    tasks.get_task(preset.task)
    if num_processes is None:
        num_processes = distributed_state().num_processes
    # TRL 1.16's generation batch: per-device batch x processes x gradient accumulation steps;
    # it must hold whole groups of num_generations completions.
    generation_batch = preset.batch_size * num_processes * preset.gradient_accumulation_steps
    if generation_batch % preset.num_generations:
        raise UsageError(
            f"--num-generations {preset.num_generations} does not divide the generation batch "
            f"of {generation_batch} completions (batch size {preset.batch_size} x "
            f"{num_processes} process(es) x gradient accumulation "
            f"{preset.gradient_accumulation_steps}); pick a divisor of {generation_batch} or "
            "change --batch-size"
        )
    if not (math.isfinite(preset.learning_rate) and preset.learning_rate > 0):
        raise UsageError(
            f"--learning-rate must be a positive number, got {preset.learning_rate}; "
            "LoRA runs use about 1e-5 to 1e-3"
        )
    if preset.max_steps == 0 or preset.max_steps < -1:
        raise UsageError(f"--max-steps must be positive, got {preset.max_steps}")
    if preset.save_steps < 1:
        raise UsageError(f"--save-steps must be positive, got {preset.save_steps}")
    if not 0 < preset.fraction <= 1:
        raise UsageError(f"--fraction must be in (0, 1], got {preset.fraction}; 0.05 is 5 %")
    if not (math.isfinite(preset.num_train_epochs) and preset.num_train_epochs > 0):
        raise UsageError(f"--num-train-epochs must be positive, got {preset.num_train_epochs}")
    if preset.max_completion_length < 1:
        raise UsageError(
            f"--max-completion-length must be positive, got {preset.max_completion_length}"
        )
    if not (math.isfinite(preset.beta) and preset.beta >= 0):
        raise UsageError(f"--beta must be 0 or a positive number, got {preset.beta}")
    if preset.loss_type not in LOSS_TYPES:
        raise UsageError(
            f"unknown --loss-type {preset.loss_type!r}; choose one of: {', '.join(LOSS_TYPES)}"
        )
    if not 0 < preset.vllm_gpu_memory_utilization <= 1:
        raise UsageError(
            "--vllm-gpu-memory-utilization is vLLM's share of each GPU, in (0, 1]; got "
            f"{preset.vllm_gpu_memory_utilization}"
        )
    if not (math.isfinite(preset.epsilon) and preset.epsilon > 0):
        raise UsageError(f"epsilon (the clip range) must be positive, got {preset.epsilon}")
    if preset.epsilon_high is not None and not preset.epsilon_high >= preset.epsilon:
        raise UsageError(
            f"epsilon_high must be at least epsilon ({preset.epsilon}), got {preset.epsilon_high}"
        )
    if preset.num_iterations < 1:
        raise UsageError(f"num_iterations must be 1 or more, got {preset.num_iterations}")
    if preset.family not in FAMILIES:
        raise UsageError(
            f"unknown model family {preset.family!r}; choose one of: {', '.join(FAMILIES)}"
        )
    if preset.max_image_tokens < 1:
        raise UsageError(f"max_image_tokens must be positive, got {preset.max_image_tokens}")
    if preset.quantization is not None and preset.quantization not in QUANTIZATIONS:
        raise UsageError(
            f"unknown quantization {preset.quantization!r}; use one of: "
            f"{', '.join(QUANTIZATIONS)} (4-bit), or None for the model as it is"
        )
    if preset.eval_rows is not None and preset.eval_rows < 0:
        raise UsageError(f"--eval-rows must be 0 (no evaluation) or more, got {preset.eval_rows}")
    if preset.vllm_mode not in ("colocate", "server"):
        raise UsageError(f"--vllm-mode must be colocate or server, got {preset.vllm_mode!r}")
    if preset.use_vllm:
        from trl.import_utils import is_vllm_available  # imports transformers: only when asked

        if not is_vllm_available():
            raise UsageError(
                "--use-vllm needs vLLM, which is not installed; on a GPU machine install the "
                "vLLM profile (`pip install -e .[vllm] -c constraints/vllm.txt`), or train "
                "without --use-vllm"
            )
