"""vlmgrpo: Group Relative Policy Optimization for vision-language models, with TRL and LoRA.

One module per concept: `prompts`, `rewards`, `grpo` (the loss, from scratch), `data`
(loading, checks, image caps), `synthetic` (the generated task), `tiny` (the offline model),
`shapes` (models of the real sizes, a tiny Qwen3-VL), `presets` (the recipes, their checks),
`models` (loading a model: its family, precision, 4 bits), `train` (presets -> GRPOTrainer,
`run`), `runs` (the run folder: run.json, metrics.csv, checkpoints, adapters), `evaluate`,
`plots`, `kit` (the offline workshop kit), `reward_cases`, `utils`, `cli`.
"""

__version__ = "0.1.0"
