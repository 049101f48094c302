"""vlmgrpo: Group Relative Policy Optimization for vision-language models, with TRL and LoRA.

One module per concept: `prompts`, `rewards`, `grpo` (the loss, from scratch), `data`,
`synthetic` (the generated task), `tiny` (the offline model), `train` (presets ->
GRPOTrainer), `evaluate`, `plots`, `cli`.
"""

__version__ = "0.1.0"
