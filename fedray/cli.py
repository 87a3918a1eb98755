"""The ``fedray`` command line: parse, load config, call the API. No logic of its own."""

from __future__ import annotations

import argparse
import logging
import sys

from fedray.config import ConfigError, load_config, preset_names
from fedray.schedules import METHODS
from fedray.server.fleet import ClientError
from fedray.training.finite import NonFiniteError


def _config_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", nargs="?", help="experiment YAML (may name a base with 'preset: NAME')")
    p.add_argument("--preset", help=f"packaged preset: {', '.join(preset_names())}")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a dotted config key, e.g. --set train.method=prog (repeatable)")
    p.add_argument("--address", help="Ray cluster to join (default: RAY_ADDRESS, else start a local Ray)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fedray", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run one method")
    _config_args(run)
    run.add_argument("--out", help="run directory to create (must not exist or be empty)")
    run.add_argument("--resume", metavar="RUN_DIR",
                     help="continue an interrupted run from RUN_DIR/checkpoint.pt, in RUN_DIR (config arguments, "
                          "if given, must match the checkpoint's except runtime.*)")

    cmp_ = sub.add_parser("compare", help=f"run {', '.join(METHODS)} on one config and print a table")
    _config_args(cmp_)
    cmp_.add_argument("--out", help="directory for the runs and comparison.csv/.md")

    res = sub.add_parser("resources", help=f"one client's memory, FLOPs and communication for {', '.join(METHODS)}")
    _config_args(res)
    for p in (cmp_, res):
        p.add_argument("--methods", type=_methods, default=tuple(METHODS), metavar="M[,M...]",
                       help=f"which methods (default: all of {', '.join(METHODS)})")
    res.add_argument("--json", action="store_true", help="print JSON instead of tables")
    res.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                     help="where the measured step runs (cuda also reports torch.cuda.max_memory_allocated)")
    res.add_argument("--probe-batch", type=int, metavar="N",
                     help="measure steps of N samples and scale to train.batch_size (CPU; for steps too big to run)")

    data = sub.add_parser("data", help="dataset tools").add_subparsers(dest="data_command", required=True)
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
    bench = sub.add_parser("bench", help="benchmarks: overhead, prefix-cache, scale, validate (figures + JSON)")
    bench.add_argument("name", choices=("overhead", "prefix-cache", "scale", "validate"))
    bench.add_argument("--json", dest="json_out", metavar="OUT", help="write the figures to this JSON file")
    bench.add_argument("--repeats", type=int, help="repeats (medians are reported); default 3 (scale: 1)")
    bench.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="overhead: client actors on GPUs")
    bench.add_argument("--loop-threads", type=int, action="append",
                       help="overhead: threads of the in-process reference loop (repeatable; default 1 and all CPUs)")

    tune_ = sub.add_parser("tune", help="run a Ray Tune sweep from tune_configs/*.yaml, then report it")
    tune_.add_argument("sweep", help="sweep YAML (base config, search space, metric, scheduler)")
    tune_.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                       help="override a sweep key (num_samples=4, base.preset=tiny, 'search_space.train.method="
                            "{grid: [lw]}') or a base config key (train.local_epochs=2); repeatable")
    tune_.add_argument("--resume", action="store_true", help="continue an interrupted sweep (--out or the latest)")
    tune_.add_argument("--out", help="sweep directory (default runs/sweeps/<name>-<timestamp>)")
    tune_.add_argument("--address", help="Ray cluster to join (default: RAY_ADDRESS, else start a local Ray)")

    report = sub.add_parser("report", help="tables and plots of sweep, compare or run directories")
    report.add_argument("paths", nargs="+", metavar="DIR", help="sweep, compare or run directories")
    report.add_argument("--metric", help="metric to plot (default: the sweep's, else eval/i2t_r1)")
    report.add_argument("--out", help="where to write (default: the directory itself when one is given)")
    return parser


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


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.command in ("tune", "report"):
        from fedray.tune.cli import main as tune_main  # Ray Tune only for these commands

        return tune_main(args)
    try:
        if args.command == "data":
            _convert(args)
            return 0
        if args.command == "bench":
            from fedray.bench import run_bench

            run_bench(args.name, args.repeats, args.json_out, args.device, args.loop_threads)
            return 0
        if args.command == "run" and args.resume:
            from fedray.api import resume_experiment

            if args.out:
                raise ConfigError("--resume continues in RUN_DIR itself; do not combine it with --out")
            given = args.config or args.preset or args.overrides
            cfg = load_config(args.config, args.preset, args.overrides) if given else None
            result = resume_experiment(args.resume, cfg, address=args.address)
            print(f"run directory: {result.run_dir}")
            print(", ".join(f"{k} {v:.3f}" for k, v in result.summary["metrics"].items() if v is not None))
            return 0
        cfg = load_config(args.config, args.preset, args.overrides)
        if args.command == "run":
            from fedray.api import run_experiment

            result = run_experiment(cfg, args.out, address=args.address)
            print(f"run directory: {result.run_dir}")
            print(", ".join(f"{k} {v:.3f}" for k, v in result.summary["metrics"].items() if v is not None))
        elif args.command == "compare":
            from fedray.compare import compare, to_markdown

            root, rows = compare(cfg, args.out, address=args.address, methods=args.methods)
            print(to_markdown(rows))
            print(f"comparison written to {root}/comparison.md")
        elif args.command == "resources":
            import json

            from fedray.plan import workload_of
            from fedray.resources.estimate import estimate, to_text

            report = estimate(cfg, workload_of(cfg, args.preset), args.device, args.preset, methods=args.methods,
                              probe_batch=args.probe_batch)
            print(json.dumps(report, indent=2) if args.json else to_text(report))
    except NonFiniteError as err:
        # A diverged run (NaN/inf loss, update, global model or embedding; names round, client, tensor): its
        # inputs must change (learning rates, data values), as for bad input: exit 2, and no summary.json.
        print(f"fedray: error: {err}", file=sys.stderr)
        return 2
    except (ConfigError, ValueError, OSError) as err:  # bad input (DataError names file, row, column, client)
        print(f"fedray: error: {err}", file=sys.stderr)
        return 2
    except ClientError as err:  # carries the failing client's id and traceback
        print(f"fedray: error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
