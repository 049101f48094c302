"""The accelerate configs in configs/: each parses with accelerate's loader, picks its engine."""

from __future__ import annotations

from pathlib import Path

import pytest
from accelerate.commands.config.config_args import ClusterConfig, load_config_from_file
from accelerate.utils import DistributedType

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


@pytest.mark.parametrize(
    ("name", "engine", "zero_stage"),
    [
        ("single_gpu", DistributedType.NO, None),
        ("multi_gpu", DistributedType.MULTI_GPU, None),
        ("deepspeed_zero2", DistributedType.DEEPSPEED, 2),
        ("deepspeed_zero3", DistributedType.DEEPSPEED, 3),
    ],
)
def test_config_selects_its_engine(name, engine, zero_stage):
    path = CONFIGS / f"{name}.yaml"
    config = load_config_from_file(str(path))  # what `accelerate launch --config_file` calls
    assert isinstance(config, ClusterConfig)
    assert config.distributed_type == engine
    assert config.deepspeed_config.get("zero_stage") == zero_stage
    assert config.use_cpu is False and config.num_machines == 1
    # The preset decides the precision (models.compute_dtype); a launcher default would override
    # the tiny one's.
    assert config.mixed_precision == "no"
    if engine == DistributedType.NO:
        assert config.num_processes == 1
    if zero_stage == 3:  # or the saved adapter would hold only this process's shard
        assert config.deepspeed_config["zero3_save_16bit_model"] is True
    header = path.read_text().splitlines()[0]
    assert header.startswith("# "), f"{name}.yaml should open with when to use it"


def test_there_is_a_test_for_every_config():
    assert sorted(p.stem for p in CONFIGS.glob("*.yaml")) == [
        "deepspeed_zero2",
        "deepspeed_zero3",
        "multi_gpu",
        "single_gpu",
    ]
