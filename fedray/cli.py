"""The ``fedray`` command line: parse, load config, call the API. No logic of its own.

Answers to simple questions (``--help``, ``--version``, a config or ``--out`` error, ``--dry-run``'s
config) come before torch, transformers, pyarrow or Ray are imported: each command imports what it
computes with only once its input has been checked.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from typing import TYPE_CHECKING, Any

from fedray import __version__
from fedray.bench import NAMES as BENCHES
from fedray.config import ConfigError, ExperimentConfig, load_config, preset_names
from fedray.interrupt import Interrupted, named, sigterm_raises
from fedray.schedules import METHODS

if TYPE_CHECKING:
    from fedray.progress import Progress

log = logging.getLogger("fedray")


def _config_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", nargs="?", help="experiment YAML (may name a base with 'preset: NAME')")
    p.add_argument("--preset", help=f"packaged preset: {', '.join(preset_names())}")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a dotted config key, e.g. --set train.method=prog (repeatable)")
    p.add_argument("--address", help="Ray cluster to join (default: RAY_ADDRESS, else start a local Ray)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fedray", description="Simulate resource-efficient federated multimodal learning (FedMML, LW-FedMML, "
        "Prog-FedMML) on Ray. Start with: fedray run --preset tiny --dry-run")
    parser.add_argument("--version", action="version", version=f"fedray {__version__}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-v", "--verbose", action="store_true",
                        help="also show Ray's own log lines and the actors' output (hidden by default)")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run one method", parents=[common])
    _config_args(run)
    run.add_argument("--out", help="run directory to create (must not exist or be empty)")
    run.add_argument("--resume", metavar="RUN_DIR",
                     help="continue an interrupted run from RUN_DIR/checkpoint.pt, in RUN_DIR (config arguments, "
                          "if given, must match the checkpoint's except runtime.*)")
    run.add_argument("--dry-run", action="store_true",
                     help="print the resolved config and the plan (clients, hosts, stages, rounds, bytes per round, "
                          "per-client training memory per stage), then exit: no Ray, no training")

    cmp_ = sub.add_parser("compare", help=f"run {', '.join(METHODS)} on one config and print a table",
                          parents=[common])
    _config_args(cmp_)
    cmp_.add_argument("--out", help="directory for the runs and comparison.csv/.md")
    cmp_.add_argument("--seeds", type=_positive, default=1, metavar="N",
                      help="run every method with N seeds (train.seed, +1, ...: partition, init and sampling differ) "
                           "and report mean ± 95%% interval (default 1: one run, ± its bootstrap interval)")

    res = sub.add_parser("resources", help=f"one client's memory, FLOPs and communication for {', '.join(METHODS)}",
                         parents=[common])
    _config_args(res)
    for p in (cmp_, res):
        p.add_argument("--methods", type=_methods, default=tuple(METHODS), metavar="M[,M...]",
                       help=f"which methods (default: all of {', '.join(METHODS)})")
    res.add_argument("--json", action="store_true", help="print JSON instead of tables")
    res.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                     help="where the measured step runs (cuda also reports torch.cuda.max_memory_allocated)")
    res.add_argument("--probe-batch", type=int, metavar="N",
                     help="measure steps of N samples and scale to train.batch_size (CPU; for steps too big to run)")

    data = sub.add_parser("data", help="dataset tools", parents=[common]).add_subparsers(dest="data_command",
                                                                                       required=True)
    conv = data.add_parser("convert", help="convert a public dataset layout to fedray Parquet").add_subparsers(
        dest="fmt", required=True)
    coco = conv.add_parser("coco", help="COCO captions: --images DIR --captions captions_*.json")
    coco.add_argument("--images", required=True, help="image folder (file_name is looked up here or in DIR/<split>/)")
    coco.add_argument("--captions", required=True, nargs="+", help="captions_*.json files (name with 'val' -> test)")
    coco.add_argument("--tokenizer", help="tokenizer.json to ship (default: a WordPiece vocab built from the captions)")
    coco.add_argument("--limit", type=int, help="at most N images per captions file")
    adv = conv.add_parser("advance", help="ADVANCE: class folders of image + .wav pairs")
    adv.add_argument("--root", required=True, help="ROOT/<class>/ or ROOT/vision/<class>/ + ROOT/sound/<class>/")
    adv.add_argument("--sample-rate", type=int, default=16000)
    adv.add_argument("--mels", type=int, default=128, help="mel bins (features per frame)")
    adv.add_argument("--frames", type=int, default=1024, help="frames (10 ms hop) per clip, cropped or padded")
    for p in (coco, adv):
        p.add_argument("--out", required=True, help="output .parquet path or s3://bucket/key.parquet")
        p.add_argument("--image-size", type=int, default=224, help="square side images are resized to")
        p.add_argument("--endpoint-url", help="S3 endpoint (default: AWS_ENDPOINT_URL); keys come from the AWS env vars")
        p.add_argument("--region", help="S3 region (default: AWS_REGION / AWS_DEFAULT_REGION)")
    bench = sub.add_parser("bench", help="benchmarks: " + ", ".join(BENCHES) + " (figures + JSON)", parents=[common])
    bench.add_argument("name", choices=BENCHES)
    bench.add_argument("--json", dest="json_out", metavar="OUT", help="write the figures to this JSON file")
    bench.add_argument("--repeats", type=int, help="repeats (medians are reported); default 3 (startup: 5, scale: 1)")
    bench.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="overhead: client actors on GPUs")
    bench.add_argument("--clients", type=int, action="append",
                       help="scale: population size (repeatable; default 1000 and 10000)")

    tune_ = sub.add_parser("tune", help="run a Ray Tune sweep from tune_configs/*.yaml, then report it",
                           parents=[common])
    tune_.add_argument("sweep", help="sweep YAML (base config, search space, metric, scheduler)")
    tune_.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                       help="override a sweep key (num_samples=4, base.preset=tiny, 'search_space.train.method="
                            "{grid: [lw]}') or a base config key (train.local_epochs=2); repeatable")
    tune_.add_argument("--resume", action="store_true", help="continue an interrupted sweep (--out or the latest)")
    tune_.add_argument("--out", help="sweep directory (default runs/sweeps/<name>-<timestamp>)")
    tune_.add_argument("--address", help="Ray cluster to join (default: RAY_ADDRESS, else start a local Ray)")

    report = sub.add_parser("report", help="tables and plots of sweep, compare or run directories", parents=[common])
    report.add_argument("paths", nargs="+", metavar="DIR", help="sweep, compare or run directories")
    report.add_argument("--metric", help="metric to plot (default: the sweep's, else eval/i2t_r1)")
    report.add_argument("--out", help="where to write (default: the directory itself when one is given)")
    return parser


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number ≥ 1, got {text!r}")
    return int(text)


def _methods(text: str) -> tuple[str, ...]:
    names = tuple(m.strip() for m in text.split(",") if m.strip())
    unknown = [m for m in names if m not in METHODS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"unknown method(s) {unknown or [text]}; choose from {', '.join(METHODS)}")
    return names


def _convert(args: argparse.Namespace) -> None:
    from fedray.config.schema import StorageConfig
    from fedray.data.convert import convert_advance, convert_coco

    storage = StorageConfig(endpoint_url=args.endpoint_url, region=args.region)
    if args.fmt == "coco":
        counts = convert_coco(args.images, args.captions, args.out, args.image_size, args.tokenizer, storage, args.limit)
    else:
        counts = convert_advance(args.root, args.out, args.image_size, args.sample_rate, args.mels, args.frames,
                                 storage=storage)
    print(f"wrote {args.out}: {counts['train']} train rows, {counts['test']} test rows")


def _config(args: argparse.Namespace) -> ExperimentConfig:
    """The config of the command line, with hints for the two most common slips."""
    for item in args.overrides:
        if "=" not in item and args.config is not None and not os.path.isfile(args.config):
            raise ConfigError(f"--set {item} {args.config}: expected KEY=VALUE; did you mean "
                              f"--set {item}={args.config}?")
    return load_config(args.config, args.preset, args.overrides)


def _total_rounds(cfg: ExperimentConfig) -> int:
    from fedray.schedules import build_schedule  # plain Python: no torch

    return sum(stage.rounds for stage in build_schedule(cfg))


def _saved_config(run_dir: str) -> ExperimentConfig | None:
    """The run's own config.yaml, for the progress display only (resume_experiment checks the real thing)."""
    try:
        return load_config(os.path.join(run_dir, "config.yaml"))
    except ConfigError:
        return None


def _summary_lines(result: Any) -> str:
    found = result.summary["metrics"]
    metrics = ", ".join(f"{k} {v:.3f}" + (f" ± {found[k + '_ci95']:.3f}" if found.get(k + "_ci95") is not None else "")
                        for k, v in found.items() if v is not None and not k.endswith("_ci95"))
    return f"run directory: {result.run_dir}\n{metrics}"


def _run(args: argparse.Namespace, display: Progress) -> None:
    from fedray.rundir import check_out

    watch = {"progress": lambda _: None, "on_record": display.record}
    if args.resume:
        if args.out:
            raise ConfigError("--resume continues in RUN_DIR itself; do not combine it with --out")
        if args.dry_run:
            raise ConfigError("--dry-run plans a new run; it does not combine with --resume")
        given = args.config or args.preset or args.overrides
        cfg = _config(args) if given else None
        shown = cfg or _saved_config(args.resume)
        if shown is not None:
            display.begin(shown.train.method, _total_rounds(shown))
        from fedray.api import resume_experiment

        result = resume_experiment(args.resume, cfg, address=args.address, **watch)
    else:
        cfg = _config(args)
        if args.dry_run:
            from fedray.dryrun import dry_run

            print(dry_run(cfg), end="")
            return
        if args.out:
            check_out(args.out)  # before the heavy imports: a used --out answers at once
        display.begin(cfg.train.method, _total_rounds(cfg))
        from fedray.api import run_experiment

        result = run_experiment(cfg, args.out, address=args.address, **watch)
    display.close()
    print(_summary_lines(result))


def _compare(args: argparse.Namespace, display: Progress) -> None:
    cfg = _config(args)
    if args.out:
        from fedray.rundir import check_out

        check_out(args.out)
    from fedray.compare import compare, to_text

    root, rows = compare(cfg, args.out, address=args.address, display=display, methods=args.methods,
                         seeds=args.seeds)
    print(to_text(rows), end="")
    print(f"comparison written to {root}/comparison.md")


def _resources(args: argparse.Namespace, display: Progress) -> None:
    import json

    cfg = _config(args)
    from fedray.plan import workload_of
    from fedray.resources.estimate import estimate, stage_label, to_text

    total = sum(len(_stages(cfg, m)) for m in args.methods)
    display.begin("resources", total, unit="stage")
    done = iter(range(1, total + 1))
    report = estimate(cfg, workload_of(cfg, args.preset), args.device, args.preset, methods=args.methods,
                      probe_batch=args.probe_batch,
                      on_stage=lambda row: display.step(stage_label(row), next(done)))
    display.close()
    print(json.dumps(report, indent=2) if args.json else to_text(report))


def _stages(cfg: ExperimentConfig, method: str) -> list[Any]:
    from dataclasses import replace

    from fedray.schedules import build_schedule

    return build_schedule(replace(cfg, train=replace(cfg.train, method=method)))


def _run_errors() -> tuple[type[BaseException], ...]:
    """Errors that stop a run because of its clients (exit 1). Looked up, not imported: the module that
    defines them imports torch, and it is loaded exactly when a run could have raised one."""
    fleet = sys.modules.get("fedray.server.fleet")
    return (fleet.ClientError,) if fleet is not None else ()


def configure_output(verbose: bool) -> None:
    """fedray's own lines at INFO; Ray's INFO lines and the actors' output only with ``-v``.

    ``FEDRAY_VERBOSE`` carries the choice to where fedray starts Ray (``fedray.backend.session``).
    """
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(message)s")
    log.setLevel(logging.INFO)  # other libraries' INFO lines (matplotlib's font cache, ...) only with -v
    if verbose:
        os.environ["FEDRAY_VERBOSE"] = "1"


def main(argv: list[str] | None = None) -> int:
    started = time.monotonic()  # progress lines count seconds from here: the command's start
    args = build_parser().parse_args(argv)
    configure_output(args.verbose)
    from fedray.progress import Progress

    display = Progress(start=started)
    if args.command in ("tune", "report"):
        from fedray.tune.cli import main as tune_main  # Ray Tune only for these commands

        with sigterm_raises(), display:
            return tune_main(args, display)
    try:
        with sigterm_raises(), display:
            if args.command == "data":
                _convert(args)
            elif args.command == "bench":
                from fedray.bench import run_bench

                run_bench(args.name, args.repeats, args.json_out, args.device, args.clients)
            elif args.command == "run":
                _run(args, display)
            elif args.command == "compare":
                _compare(args, display)
            elif args.command == "resources":
                _resources(args, display)
    except (ConfigError, ValueError, OSError) as err:  # bad input; also NonFiniteError (a ValueError): a diverged run
        print(f"fedray: error: {err}", file=sys.stderr)
        return 2
    except _run_errors() as err:  # carries the failing client's id and traceback
        print(f"fedray: error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as err:  # Ctrl-C, or a SIGTERM (Interrupted), also one Ray re-raised as Ctrl-C
        cause = named(err)
        if isinstance(cause, Interrupted):
            print(f"fedray: {cause}; a run keeps its last checkpoint (fedray run --resume RUN_DIR)", file=sys.stderr)
            return cause.exit_code
        print("fedray: interrupted; a run keeps its last checkpoint (fedray run --resume RUN_DIR)", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
