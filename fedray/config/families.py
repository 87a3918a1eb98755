"""Encoder families a tower can be built from: what each can encode and how it pools. No torch.

This is the light half of the encoder registry, read by config validation, schedules and the
analytic counter; ``fedray.model.encoders`` holds the builders (one per family name here).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# Per-channel (mean, std) of pixels in [0, 1]; images reach the tower as such pixels mapped to [-1, 1].
IMAGE_NORMS: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "half": ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),  # [-1, 1]: the dataset's own scaling (ViT, SigLIP)
    "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),  # DeiT and most timm/torchvision weights
    "clip": ((0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)),  # OpenAI CLIP
    "tflite": ((127 / 255,) * 3, (128 / 255,) * 3),  # (x - 127) / 128 on 0..255 pixels: EfficientNet-Lite
}
POOLINGS = ("first", "last", "mean")  # first token (CLS) | last non-padding token (EOS) | mean over non-padding


@dataclass(frozen=True)
class Family:
    """One encoder family: the facts config checks, schedules and the analytic counter need."""

    name: str
    modalities: tuple[str, ...]  # tower names (modalities) it can encode
    model_types: tuple[str, ...]  # transformers ``model_type`` values of its checkpoints
    poolings: tuple[str, ...]  # allowed pooling; the first is the default
    final_norm: bool  # has a final LayerNorm group (trained in every LW stage)
    pre_ln: bool | None  # transformer blocks with LayerNorm before attention; None = not a transformer
    image_norm: str | None = None  # default input normalisation of images (a key of IMAGE_NORMS)
    image_size: int | None = None  # native input side; None = the checkpoint's, else the dataset's
    fixed: dict[str, Any] = field(default_factory=dict)  # architecture keys the family fixes (CNNs)


FAMILIES: dict[str, Family] = {f.name: f for f in (
    Family("vit", ("image", "audio"), ("vit",), ("first", "mean"), True, True, "half"),
    Family("deit", ("image",), ("deit",), ("first", "mean"), True, True, "imagenet"),
    Family("clip_vision", ("image",), ("clip_vision_model", "clip"), ("first", "mean"), True, True, "clip"),
    # SigLIP has no CLS token and pools with an attention head that fedray replaces by its projection head.
    Family("siglip_vision", ("image",), ("siglip_vision_model", "siglip"), ("mean", "first"), True, True, "half"),
    Family("ast", ("audio",), ("audio-spectrogram-transformer",), ("first", "mean"), True, True),
    Family("bert", ("text",), ("bert",), ("first", "mean", "last"), False, False),
    Family("roberta", ("text",), ("roberta",), ("first", "mean", "last"), False, False),
    Family("distilbert", ("text",), ("distilbert",), ("first", "mean", "last"), False, False),
    # CLIP's text encoder is causal: only the last token has seen the whole caption.
    Family("clip_text", ("text",), ("clip_text_model", "clip"), ("last", "mean", "first"), True, True),
    Family("siglip_text", ("text",), ("siglip_text_model", "siglip"), ("last", "mean", "first"), True, True),
    # A plain torch block sequence: stem, 7 MBConv stages and the 1x1 head conv as blocks, global average pool.
    Family("efficientnet_lite0", ("image",), (), ("mean",), False, None, "tflite", 224,
           fixed={"hidden_size": 1280, "num_layers": 8, "num_heads": 1}),
)}


def family(name: str) -> Family:
    """The family called ``name`` (config validation has checked it exists)."""
    return FAMILIES[name]


def family_of_model_type(model_type: str, modality: str) -> str | None:
    """The family of a checkpoint's ``model_type`` for a tower of ``modality`` (CLIP/SigLIP hold both towers)."""
    for f in FAMILIES.values():
        if model_type in f.model_types and modality in f.modalities:
            return f.name
    return None
