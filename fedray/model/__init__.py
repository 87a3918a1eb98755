"""Model: towers from transformers configs or checkpoints, projection heads, losses, layer groups."""

from fedray.model.multimodal import CachedPrefix, MultimodalModel, build_model, lr_group
from fedray.model.encoders import build_tower
from fedray.model.towers import InputSpec, Tower

__all__ = ["CachedPrefix", "InputSpec", "MultimodalModel", "Tower", "build_model", "build_tower", "lr_group"]
