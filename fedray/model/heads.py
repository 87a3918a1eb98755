"""Projection heads: one per tower, created once before stage 1 and kept across stages."""

from __future__ import annotations

from torch import nn

from fedray.config import HeadConfig


def projection_head(in_dim: int, cfg: HeadConfig) -> nn.Sequential:
    """The paper's head (bias-free Linear-BN-ReLU stack, last BN without affine) or a plain MLP.

    paper, 3 layers: Linear(in, h) -> Dropout -> BN(h) -> ReLU -> Linear(h, h) -> Dropout -> BN(h) -> ReLU
    -> Linear(h, out) -> BN(out, affine=False).
    """
    dims = [in_dim] + [cfg.hidden_size] * (cfg.num_layers - 1) + [cfg.out_dim]
    layers: list[nn.Module] = []
    for i, (d_in, d_out) in enumerate(zip(dims[:-1], dims[1:])):
        last = i == len(dims) - 2
        if cfg.kind == "paper":
            layers.append(nn.Linear(d_in, d_out, bias=False))
            if not last:
                layers += [nn.Dropout(cfg.dropout), nn.BatchNorm1d(d_out), nn.ReLU()]
            else:
                layers.append(nn.BatchNorm1d(d_out, affine=False))
        else:
            layers.append(nn.Linear(d_in, d_out))
            if not last:
                layers += [nn.Dropout(cfg.dropout), nn.ReLU()] if cfg.dropout else [nn.ReLU()]
    return nn.Sequential(*layers)
