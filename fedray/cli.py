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

    bench = sub.add_parser("bench", help="benchmarks: overhead, prefix-cache, scale (figures + JSON)")
    bench.add_argument("name", choices=("overhead", "prefix-cache", "scale"))
    bench.add_argument("--json", dest="json_out", metavar="OUT", help="write the figures to this JSON file")
    bench.add_argument("--repeats", type=int, help="repeats (medians are reported); default 3 (scale: 1)")
    bench.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="overhead: client actors on GPUs")
    bench.add_argument("--loop-threads", type=int, action="append",
                       help="overhead: threads of the in-process reference loop (repeatable; default 1 and all CPUs)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        if args.command == "bench":
            from fedray.bench import run_bench

            run_bench(args.name, args.repeats, args.json_out, args.device, args.loop_threads)
            return 0
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
    except (ConfigError, ValueError, OSError) as err:
        print(f"fedray: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
