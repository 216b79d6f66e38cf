"""The entry point of every task's command line script, light enough that ``--help`` answers at once.

``python -m perceiver.scripts.text.clm --help`` is answered from the task registry alone (no torch, no Lightning);
everything else goes to the Lightning CLI of the task (:class:`perceiver.scripts.cli.TaskCLI`), which imports the
models, the data modules and Lightning. The texts here are shared by both, so the quick help and the full help say
the same. A task's script is two lines::

    from perceiver.scripts.entry import task_main
    main = task_main("clm")
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, Callable, Mapping, Optional, Sequence

from perceiver.runs.paths import DEFAULT_RUN_DIR, ROOT_VAR
from perceiver.tasks import Task, get

SUBCOMMANDS = {
    "fit": "Train: a new run directory (--run_dir, default runs/<task>/<time>), --ckpt_path resumes.",
    "validate": "One evaluation epoch over the validation set.",
    "test": "One evaluation epoch over the test set.",
    "predict": "Run inference on the data.",
}
HELP_FLAGS = (["-h"], ["--help"])


def description(task: Task) -> str:
    """What the tool is: the task, its model and data, where runs go."""
    model, data = task.config.rpartition(":")[2], task.data.rpartition(":")[2]
    return (f"Perceiver {task.title}: the Lightning CLI of the perceiver task {task.name!r}.\n\n"
            f"Model options (--model.*) are the fields of {model}; the defaults are the documented model (preset "
            f"{task.model_preset!r}).\nData options (--data.*) are those of {data} by default (listed at the end of "
            f"`fit --help`).\nRuns write everything to one run directory, {DEFAULT_RUN_DIR} below the repository root "
            f"(${ROOT_VAR} changes the root).")


def epilog(task: Task) -> str:
    lines = ["examples:"] + [f"  {example}" for example in task.examples]
    lines.append(f"\nMore: `python -m {task.cli} fit --help`, docs/training.md and docs/workbench.md.")
    return "\n".join(lines)


def quick_help(task: Task, commands: Optional[Mapping[str, Callable]] = None) -> str:
    """The top-level help, without importing the CLI (the same options as the full parser's top level); ``commands``
    are the script's own subcommands (their docstrings' first lines are their help)."""
    parser = argparse.ArgumentParser(prog=f"python -m {task.cli}", description=description(task),
                                     epilog=epilog(task), formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-c", "--config", help="Path to a configuration file in json or yaml format.")
    parser.add_argument("--print_config", metavar="[=flags]", nargs="?",
                        help="Print the configuration after applying all other arguments and exit.")
    sub = parser.add_subparsers(title="subcommands", metavar="{" + ",".join(SUBCOMMANDS) + "}",
                                description="For the options of a subcommand, add it followed by --help.")
    extra = {name: (fn.__doc__ or "").strip().splitlines()[0] for name, fn in (commands or {}).items()}
    sub.metavar = "{" + ",".join([*SUBCOMMANDS, *extra]) + "}"
    for name, text in {**SUBCOMMANDS, **extra}.items():
        sub.add_parser(name, help=text)
    return parser.format_help()


def task_main(task: str, commands: Optional[Mapping[str, Callable[[Sequence[str]], Any]]] = None):
    """The ``main(args=None, **kwargs)`` of a task's script: quick help, one of the script's own ``commands`` (name ->
    function of the remaining arguments, e.g. the CLM's ``evaluate``), or the task's Lightning CLI."""

    def main(args: Optional[Sequence[str]] = None, **kwargs):
        argv = sys.argv[1:] if args is None else args
        if isinstance(argv, (list, tuple)) and list(argv) in HELP_FLAGS:
            print(quick_help(get(task), commands))
            raise SystemExit(0)
        if isinstance(argv, (list, tuple)) and not argv and kwargs.get("run", True):
            print(quick_help(get(task), commands), file=sys.stderr)  # a subcommand is required, as for argparse
            raise SystemExit(2)
        if commands and isinstance(argv, (list, tuple)) and argv and argv[0] in commands:
            return commands[argv[0]](list(argv[1:]))
        from perceiver.scripts.cli import TaskCLI

        return TaskCLI(task, args=args, **kwargs)

    return main
