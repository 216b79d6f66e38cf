"""Parameter sweeps from the command line: grid, random or TPE search on Optuna, each point a normal run directory.

    python -m perceiver.scripts.sweep notebooks/train_clm.ipynb --param optimizer.lr=1e-3,3e-3 \\
        --param model.num_channels=64,128 --out runs/sweep-lr -p max_steps 200
    python -m perceiver.scripts.sweep clm --param optimizer.lr=1e-3,3e-3 --out runs/sweep-cli \\
        -- --data.source=sample --trainer.max_steps=200

See ``perceiver.sweep`` and docs/workbench.md (sweeps, resuming, several GPUs and several machines).
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path
from typing import Optional, Sequence

EPILOG = """\
target: a notebook with run_dir and overrides parameters (notebooks/train_*.ipynb), a task name (clm, mlm, ...:
its CLI's fit), or a CLI module (perceiver.scripts.text.clm). Arguments after -- go to every point's fit.

parameters are dotted configuration keys, as the CLI spells its options:
  --param optimizer.lr=1e-3,3e-3            listed values (grid, random, TPE)
  --param optimizer.lr=1e-4..1e-2:log       a log-uniform range (random, TPE); 32..256: integers

A sweep directory holds the points (<out>/<index>-<values>/, each a run directory), the Optuna study (sweep.db) and
the summary (sweep.ipynb, plots/). Running the same command again skips the points that completed and runs the
failed or interrupted ones again. Several machines: give each the same --storage URL (a database server), e.g.
--storage postgresql://user@host/sweeps, and the same command.
"""


def target_of(name: str, cli_args: Sequence[str], parameters: dict, overrides: dict):
    """The sweep target named on the command line (see EPILOG)."""
    from perceiver.runs import paths
    from perceiver.sweep.targets import CliTarget, NotebookTarget
    from perceiver.tasks import tasks

    if name.endswith(".ipynb"):
        if cli_args:
            raise SystemExit(f"arguments after -- are for a CLI target; a notebook takes -p NAME VALUE: {cli_args}")
        path = Path(name) if Path(name).is_file() else paths.resolve(name)
        return NotebookTarget(path, parameters, overrides)
    if parameters:
        raise SystemExit("-p NAME VALUE sets notebook parameters; for a CLI target put fit arguments after --")
    known = tasks()
    if name in known:
        return CliTarget(known[name].cli, cli_args, overrides)
    try:
        found = importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        found = False
    if found:
        return CliTarget(name, cli_args, overrides)
    raise SystemExit(f"unknown target {name!r}: a notebook (.ipynb), a task ({', '.join(known)}) or a CLI module")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m perceiver.scripts.sweep", description=__doc__.split("\n\n")[0],
                                epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("target", help="a training notebook, a task name or a CLI module")
    p.add_argument("--param", action="append", default=[], metavar="KEY=VALUES",
                   help="a swept parameter (repeat for more): KEY=V1,V2,... or KEY=LOW..HIGH[:log]")
    p.add_argument("--out", required=True, help="the sweep directory (relative: from the repository root)")
    p.add_argument("--sampler", choices=["grid", "random", "tpe"], default="grid")
    p.add_argument("--trials", type=int, help="number of points of a random or TPE search")
    p.add_argument("--devices", default="auto",
                   help="auto (every visible GPU, else the CPU), cpu, or GPU indices such as 0,1: one point per "
                        "device at a time (default: auto)")
    p.add_argument("--metric", default="best.val_loss",
                   help="the registry column to optimise and sort by (default: best.val_loss)")
    p.add_argument("--direction", choices=["minimize", "maximize"], help="default: by the metric's goal")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="fixed",
                   help="a fixed override of every point (repeat for more), e.g. trainer.max_steps=200")
    p.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                   help="a notebook parameter of every point, as papermill's -p (e.g. -p max_steps 200)")
    p.add_argument("--storage", help="Optuna storage URL (default: sqlite:///<out>/sweep.db); share one database "
                                     "between machines to sweep on all of them")
    p.add_argument("--study", help="the study's name in the storage (default: the name of --out)")
    p.add_argument("--seed", type=int, default=0, help="seed of the sampler")
    p.add_argument("--no-summary", action="store_true", help="skip executing notebooks/sweep.ipynb at the end")
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    cli_args = argv[argv.index("--") + 1:] if "--" in argv else []
    argv = argv[: argv.index("--")] if "--" in argv else argv
    args = parser().parse_args(argv)

    from perceiver.sweep.space import SpaceError, parse_overrides, parse_param, parse_value
    from perceiver.sweep.study import Sweep, SweepError

    try:
        params = [parse_param(text) for text in args.param]
        overrides = parse_overrides(args.fixed)
        parameters = {name: parse_value(value) for name, value in args.parameter}
        target = target_of(args.target, cli_args, parameters, overrides)
        sweep = Sweep(target, params, args.out, sampler=args.sampler, trials=args.trials, devices=args.devices,
                      metric=args.metric, direction=args.direction, storage=args.storage, study_name=args.study,
                      seed=args.seed, summary=not args.no_summary)
    except (SpaceError, SweepError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    try:
        sweep.run()
    except SweepError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
