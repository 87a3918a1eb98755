"""Configuration: frozen dataclasses, strict YAML loading, packaged presets."""

from fedray.config.loader import apply_overrides, build, dump_yaml, load_config, load_raw, preset_names
from fedray.config.schema import (
    ConfigError,
    DataConfig,
    ExperimentConfig,
    HeadConfig,
    ModelConfig,
    PartitionConfig,
    RuntimeConfig,
    StrategyConfig,
    TowerConfig,
    TrainConfig,
    blocks_per_stage,
)

__all__ = [
    "ConfigError", "DataConfig", "ExperimentConfig", "HeadConfig", "ModelConfig", "PartitionConfig",
    "RuntimeConfig", "StrategyConfig", "TowerConfig", "TrainConfig", "apply_overrides", "blocks_per_stage", "build",
    "dump_yaml", "load_config", "load_raw", "preset_names",
]
