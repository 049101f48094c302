"""vlmgrpo: Group Relative Policy Optimization for vision-language models, with TRL and LoRA.

One module per concept:

* the maths and the rewards: `grpo` (the loss, from scratch, equal to TRL's), `rewards`,
  `reward_cases` (answers in the real dataset's styles), `prompts`;
* the tasks: `colours` (what colour is the shape?), `prices` (see the colour, look up its
  price), `tasks` (the two side by side, one protocol);
* the models: `tiny` (the offline tiny Qwen2.5-VL), `standins` (random models of the real
  sizes, a tiny Qwen3-VL), `models` (loading one: its family, precision, 4 bits);
* a run: `presets` (the recipes and their checks), `settings` (a run's final settings,
  decided once), `data` (loading, checks, image caps), `train` (GRPOTrainer, `run`), `runs`
  (the run folder), `evaluate` (greedy answers and the tasks' measures);
* the course: `course` (the notebooks' first cell, preset and reloaded run), `plots`,
  `measured` (the ranges measured over seeds), `kit` (the offline workshop kit), `cli`, `utils`.
"""

__version__ = "0.1.0"
