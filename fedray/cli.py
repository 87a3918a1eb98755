"""The ``fedray`` command line: parse, load config, call the API. No logic of its own."""

from __future__ import annotations

import argparse
import logging
import sys

from fedray.config import ConfigError, load_config, preset_names


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

    cmp_ = sub.add_parser("compare", help="run fedmml, lw and prog on one config and print a table")
    _config_args(cmp_)
    cmp_.add_argument("--out", help="directory for the three runs and comparison.csv/.md")

    res = sub.add_parser("resources", help="one client's memory, FLOPs and communication for fedmml, lw and prog")
    _config_args(res)
    res.add_argument("--json", action="store_true", help="print JSON instead of tables")
    res.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                     help="where the measured step runs (cuda also reports torch.cuda.max_memory_allocated)")
    res.add_argument("--probe-batch", type=int, metavar="N",
                     help="measure steps of N samples and scale to train.batch_size (CPU; for steps too big to run)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        cfg = load_config(args.config, args.preset, args.overrides)
        if args.command == "run":
            from fedray.api import run_experiment

            result = run_experiment(cfg, args.out, address=args.address)
            print(f"run directory: {result.run_dir}")
            print(", ".join(f"{k} {v:.3f}" for k, v in result.summary["metrics"].items() if v is not None))
        elif args.command == "compare":
            from fedray.compare import compare, to_markdown

            root, rows = compare(cfg, args.out, address=args.address)
            print(to_markdown(rows))
            print(f"comparison written to {root}/comparison.md")
        elif args.command == "resources":
            import json

            from fedray.resources.estimate import estimate, to_text, workload_of

            report = estimate(cfg, workload_of(cfg, args.preset), args.device, args.preset,
                              probe_batch=args.probe_batch)
            print(json.dumps(report, indent=2) if args.json else to_text(report))
    except (ConfigError, ValueError, OSError) as err:
        print(f"fedray: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
