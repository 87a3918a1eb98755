"""Analytic parameter and FLOP counts per layer group (PAPER.md §8.9), to check the measured ledger.

Per transformer block with N tokens, width d and MLP width f, the forward multiply-accumulates
(MACs) per sample are: Q/K/V 3Nd², scores N²d, attention x V N²d, output projection Nd², MLP 2Ndf
(f = 4d gives the paper's 4Nd² + 2N²d + 8Nd²). Heads are their Linear layers; the loss adds one
B x B x out product per modality pair per step.

Backward: a product costs its forward once more for every operand that requires a gradient
(the input, when anything upstream trains; the weight, when its group trains). So a trainable
block costs 3x its forward, a frozen prefix costs only its forward, and a layer whose input needs
no gradient (the patch convolution on pixels; DistilBERT/BERT's Q/K/V after a frozen prefix, as
they are post-LayerNorm) costs 2x. FLOPs = 2 x MACs, as ``FlopCounterMode`` counts them.
Elementwise work (LayerNorm, softmax, GELU, AdamW) is not counted, by either side.
"""

from __future__ import annotations

from itertools import combinations

from fedray.config import ExperimentConfig, TowerConfig
from fedray.model import InputSpec
from fedray.schedules import StageSpec

PRE_LN = ("vit", "ast")  # LayerNorm before attention: Q/K/V's input is a trainable LayerNorm's output


def tokens(tower: TowerConfig, modality: str, spec: InputSpec, text_length: int) -> tuple[int, int]:
    """(tokens N, MACs of the patch embedding) per sample."""
    p = tower.patch_size
    if tower.arch in ("bert", "distilbert"):
        return text_length, 0
    if tower.arch == "ast":
        stride = tower.patch_stride or p
        patches = ((spec.features - p) // stride + 1) * ((spec.frames - p) // stride + 1)
        return patches + 2, patches * p * p * tower.hidden_size
    if modality == "audio":  # vit over a spectrogram: a one-channel (frames x features) image
        patches, channels = (spec.frames // p) * (spec.features // p), 1
    else:
        patches, channels = (spec.image_size // p) ** 2, spec.channels
    return patches + 1, patches * channels * p * p * tower.hidden_size


def block_params(tower: TowerConfig) -> int:
    """Q, K, V, output and two MLP linears with biases, plus two LayerNorms."""
    d, f = tower.hidden_size, tower.intermediate_size
    return 4 * (d * d + d) + 2 * d * f + f + d + 4 * d


def embed_params(tower: TowerConfig, modality: str, spec: InputSpec, text_length: int) -> int:
    d = tower.hidden_size
    if tower.arch in ("bert", "distilbert"):
        positions = max(tower.max_length, 64)  # as fedray.model.towers builds random text towers
        return (spec.vocab_size + positions + (2 if tower.arch == "bert" else 0)) * d + 2 * d
    n, conv = tokens(tower, modality, spec, text_length)
    return conv // (n - (2 if tower.arch == "ast" else 1)) + d + (2 if tower.arch == "ast" else 1) * d + n * d


def head_dims(cfg: ExperimentConfig, tower: TowerConfig) -> list[tuple[int, int]]:
    h = cfg.model.head
    dims = [tower.hidden_size] + [h.hidden_size] * (h.num_layers - 1) + [h.out_dim]
    return list(zip(dims[:-1], dims[1:]))


def head_params(cfg: ExperimentConfig, tower: TowerConfig) -> int:
    """Paper head: bias-free Linears and affine BatchNorms (the last BN has none); mlp: Linears with biases."""
    pairs = head_dims(cfg, tower)
    if cfg.model.head.kind == "paper":
        return sum(i * o for i, o in pairs) + sum(2 * o for _, o in pairs[:-1])
    return sum(i * o + o for i, o in pairs)


def group_params(cfg: ExperimentConfig, spec: InputSpec, text_length: int) -> dict[str, int]:
    """Parameters per layer group of the full-depth model."""
    out: dict[str, int] = {}
    for m, tw in cfg.model.towers.items():
        out[f"{m}.embed"] = embed_params(tw, m, spec, text_length)
        out.update({f"{m}.block.{i}": block_params(tw) for i in range(tw.num_layers)})
        if tw.arch in PRE_LN:
            out[f"{m}.final_norm"] = 2 * tw.hidden_size
        out[f"{m}.head"] = head_params(cfg, tw)
    return out


def step_flops(cfg: ExperimentConfig, stage: StageSpec, spec: InputSpec, text_length: int, batch: int) -> int:
    """Training FLOPs (forward + backward) of one step of ``batch`` samples at ``stage``.

    Classification counts the prediction head after concat/add fusion (no products of their own);
    attention fusions are not modelled (NotImplementedError).
    """
    supervised = cfg.model.task == "classification"
    if supervised and cfg.model.fusion not in ("concat", "add"):
        raise NotImplementedError(f"no analytic count for {cfg.model.fusion} fusion")
    macs, out_grad = 0, {}
    for m, tw in cfg.model.towers.items():
        n, conv = tokens(tw, m, spec, text_length)
        d, f = tw.hidden_size, tw.intermediate_size
        up = f"{m}.embed" in stage.trainable  # does the running hidden state require a gradient?
        macs += conv * (1 + up)  # pixels need no gradient: only the weight's, when the embedding trains
        for i in range(stage.depths[m]):
            tr = f"{m}.block.{i}" in stage.trainable
            act = tr or up  # Q, K, V, attention probabilities, MLP hidden
            qkv_in = act if tw.arch in PRE_LN else up
            macs += 3 * n * d * d * (1 + qkv_in + tr)
            macs += 2 * n * n * d * (1 + 2 * act)  # scores and attention x V: two activation operands
            macs += (n * d * d + 2 * n * d * f) * (1 + act + tr)  # output projection, MLP
            up = act
        up = up or f"{m}.final_norm" in stage.trainable
        tr = f"{m}.head" in stage.trainable
        for d_in, d_out in head_dims(cfg, tw):
            macs += d_in * d_out * (1 + up + tr)
            up = up or tr
        out_grad[m] = up
    if supervised:  # Linear(F -> hidden) - ReLU - Linear(hidden -> classes), F = out_dim x (M, or M + 1 for add)
        width = cfg.model.head.out_dim * (len(out_grad) + (cfg.model.fusion == "add"))
        up, tr = any(out_grad.values()), "fusion" in stage.trainable
        for d_in, d_out in ((width, cfg.model.pred_hidden_size), (cfg.model.pred_hidden_size, spec.num_classes)):
            macs += d_in * d_out * (1 + up + tr)
            up = up or tr
        return 2 * batch * macs
    per_step = batch * macs
    for a, b in combinations(sorted(out_grad), 2):  # logits z_a @ z_b.T: [B, out] x [out, B]
        per_step += batch * batch * cfg.model.head.out_dim * (1 + out_grad[a] + out_grad[b])
    return 2 * per_step
