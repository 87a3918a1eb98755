"""Analytic parameter and FLOP counts per layer group (PAPER.md §8.9), to check the measured ledger.

Per transformer block with N tokens, width d and MLP width f, the forward multiply-accumulates
(MACs) per sample are: Q/K/V 3Nd², scores N²d, attention x V N²d, output projection Nd², MLP 2Ndf
(f = 4d gives the paper's 4Nd² + 2N²d + 8Nd²). Heads are their Linear layers; the loss adds one
B x B x out product per modality pair per step.

Backward: a product costs its forward once more for every operand that requires a gradient
(the input, when anything upstream trains; the weight, when its group trains). So a trainable
block costs 3x its forward, a frozen prefix costs only its forward, and a layer whose input needs
no gradient (the patch convolution on pixels; BERT/RoBERTa/DistilBERT's Q/K/V after a frozen prefix,
as they are post-LayerNorm) costs 2x. FLOPs = 2 x MACs, as ``FlopCounterMode`` counts them.
Elementwise work (LayerNorm, softmax, GELU, AdamW, resizing inputs, pooling) is not counted, by either side.

Every transformer family has the same block; families differ in their tokens (ViT: patches + CLS,
DeiT: + distillation token, SigLIP: patches only, AST: + 2) and embedding parameters. CNN towers
(efficientnet_lite0) have no formula here: NotImplementedError (``fedray resources`` shows "-").
"""

from __future__ import annotations

from itertools import combinations

from fedray.config import ExperimentConfig, TowerConfig
from fedray.config.families import FAMILIES
from fedray.model import InputSpec
from fedray.schedules import StageSpec

TEXT = ("bert", "roberta", "distilbert", "clip_text", "siglip_text")
EXTRA_TOKENS = {"vit": 1, "deit": 2, "clip_vision": 1, "siglip_vision": 0, "ast": 2}  # CLS, distillation tokens


def pre_ln(tower: TowerConfig) -> bool:
    """LayerNorm before attention (Q/K/V read a trainable LayerNorm's output); only transformers are counted."""
    value = FAMILIES[tower.arch].pre_ln
    if value is None:
        raise NotImplementedError(f"no analytic count for {tower.arch} towers")
    return value


def tokens(tower: TowerConfig, modality: str, spec: InputSpec, text_length: int) -> tuple[int, int]:
    """(tokens N, MACs of the patch embedding) per sample."""
    pre_ln(tower)
    p = tower.patch_size
    if tower.arch in TEXT:
        return text_length, 0
    if tower.arch == "ast":
        stride = tower.patch_stride or p
        patches = ((spec.features - p) // stride + 1) * ((spec.frames - p) // stride + 1)
        return patches + 2, patches * p * p * tower.hidden_size
    if modality == "audio":  # vit over a spectrogram: a one-channel (frames x features) image
        patches, channels = (spec.frames // p) * (spec.features // p), 1
    else:  # the tower's resolution (inputs are resized to it), else the dataset's
        patches, channels = ((tower.image_size or spec.image_size) // p) ** 2, spec.channels
    return patches + EXTRA_TOKENS[tower.arch], patches * channels * p * p * tower.hidden_size


def block_params(tower: TowerConfig) -> int:
    """Q, K, V, output and two MLP linears with biases, plus two LayerNorms."""
    d, f = tower.hidden_size, tower.intermediate_size
    return 4 * (d * d + d) + 2 * d * f + f + d + 4 * d


def embed_params(tower: TowerConfig, modality: str, spec: InputSpec, text_length: int) -> int:
    """Embedding parameters of a random-init tower (as fedray.model.encoders builds them)."""
    d, arch = tower.hidden_size, tower.arch
    if arch in TEXT:
        positions = max(tower.max_length, 64) + (2 if arch == "roberta" else 0)
        types = 2 if arch in ("bert", "roberta") else 0  # token-type embeddings
        norm = 2 * d if arch in ("bert", "roberta", "distilbert") else 0
        return (spec.vocab_size + positions + types) * d + norm
    n, conv = tokens(tower, modality, spec, text_length)
    extra = EXTRA_TOKENS[arch]
    weight = conv // (n - extra)  # the patch convolution's weight: channels x p x p x d
    if arch == "clip_vision":  # no conv bias; a LayerNorm before the blocks (pre_layrnorm)
        return weight + extra * d + n * d + 2 * d
    return weight + d + extra * d + n * d


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
        if FAMILIES[tw.arch].final_norm:
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
            qkv_in = act if pre_ln(tw) else up
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
