"""``fedray tune`` and ``fedray report``: arguments parsed by ``fedray.cli`` in, sweep API called, locations out."""

from __future__ import annotations

import argparse
import sys

from fedray.config import ConfigError
from fedray.progress import Progress
from fedray.rundir import RunDir
from fedray.tune.report import write_report
from fedray.tune.spec import load_sweep


def main(args: argparse.Namespace, display: Progress | None = None) -> int:
    """Run the ``tune`` or ``report`` subcommand; 0 on success, 1 if trials failed or remain, 2 on bad input.

    ``display`` shows the sweep's progress (trials finished, each trial's rounds).
    """
    try:
        if args.command == "report":
            return _report(args)
        if args.resume and args.overrides:
            raise ConfigError("--resume continues a sweep exactly as it was started; drop --set")
        spec = load_sweep(args.sweep, args.overrides)
        from fedray.tune.runner import run_sweep  # imports Ray Tune

        out = run_sweep(spec, args.out, resume=args.resume, address=args.address, display=display)
        if display is not None:
            display.close()
    except (ConfigError, ValueError, OSError) as err:
        print(f"fedray: error: {err}", file=sys.stderr)
        return 2
    print(f"sweep directory: {out.sweep_dir}")
    print(f"{out.trials} trials, up to {out.concurrency} at a time, {out.wall_s:.1f}s; "
          f"table: {out.sweep_dir}/trials.md, plots: {out.sweep_dir}/plots/")
    for err in out.errors:
        print(f"trial failed: {err}", file=sys.stderr)
    if out.unfinished:
        print(f"{out.unfinished} trial(s) unfinished; continue with: fedray tune {args.sweep} --resume "
              f"--out {out.sweep_dir}", file=sys.stderr)
    return 1 if out.errors or out.unfinished else 0


def _report(args: argparse.Namespace) -> int:
    out = args.out
    if out is None:
        out = args.paths[0] if len(args.paths) == 1 else str(RunDir.create(None, "report", root="runs/reports").path)
    for f in write_report(args.paths, out, metric=args.metric):
        print(f)
    return 0
