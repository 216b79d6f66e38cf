"""What a sweep runs for each point: a task's CLI (``python -m perceiver.scripts.text.clm fit ...``) or a training
notebook (papermill), with the point's values as overrides and its run directory. Either way the point is a normal
run: the CLI's run directory, and for a notebook also the executed notebook in it.

A target only builds the command; the sweep (``perceiver.sweep.study``) starts it, pins it to a device and reads the
run directory it leaves.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

import yaml

from perceiver.runs import paths
from perceiver.sweep.space import SpaceError, format_value


def cli_value(value: Any) -> str:
    return format_value(value)


class CliTarget:
    """``python -m <module> fit <args> --run_dir=<point> --<key>=<value> ...`` (output: ``<point>/train.log``).

    Args:
        module: the task's CLI module, e.g. ``perceiver.scripts.text.clm``.
        args: further ``fit`` arguments of every point (``--config base.yaml``, ``--trainer.max_steps=50``).
        overrides: fixed ``{key: value}`` of every point (the swept values come after them).
    """

    kind = "cli"
    log_name = "train.log"

    def __init__(self, module: str, args: Sequence[str] = (), overrides: Optional[Mapping[str, Any]] = None):
        self.module, self.args, self.overrides = module, list(args), dict(overrides or {})

    def command(self, run_dir: Path, values: Mapping[str, Any]) -> list[str]:
        options = [f"--{k}={cli_value(v)}" for k, v in {**self.overrides, **values}.items()]
        return [sys.executable, "-m", self.module, "fit", *self.args, f"--run_dir={run_dir}", *options,
                "--trainer.enable_progress_bar=false"]

    def spec(self) -> dict:
        return {"module": self.module, "args": self.args, "overrides": self.overrides}


class NotebookTarget:
    """``papermill <notebook> <point>/<notebook name> -f <point>/parameters.yaml`` (output: ``<point>/papermill.log``),
    the point's values in the notebook's ``overrides`` parameter, ``run_dir`` the point's directory.

    Args:
        notebook: a training notebook with ``run_dir`` and ``overrides`` parameters (``notebooks/train_clm.ipynb``).
        parameters: further notebook parameters of every point (``{"max_steps": 50}``).
        overrides: fixed ``{key: value}`` overrides of every point (the swept values come after them).
    """

    kind = "notebook"
    log_name = "papermill.log"
    reserved = ("run_dir", "overrides", "overwrite")

    def __init__(self, notebook: str | Path, parameters: Optional[Mapping[str, Any]] = None,
                 overrides: Optional[Mapping[str, Any]] = None):
        self.notebook = Path(notebook).resolve()
        if not self.notebook.is_file():
            raise FileNotFoundError(f"no notebook {self.notebook}")
        self.parameters, self.overrides = dict(parameters or {}), dict(overrides or {})
        taken = [k for k in self.parameters if k in self.reserved]
        if taken:
            raise SpaceError(taken[0], "is set by the sweep for each point; sweep it with --param or fix it with "
                                       "--set KEY=VALUE instead")

    def command(self, run_dir: Path, values: Mapping[str, Any]) -> list[str]:
        overrides = {**self.overrides, **values}
        parameters = {**self.parameters, "run_dir": str(run_dir), "overrides": [f"{k}={format_value(v)}" for k, v in
                                                                                overrides.items()]}
        params_file = run_dir / "parameters.yaml"
        params_file.write_text(yaml.safe_dump(parameters, sort_keys=False))
        return [sys.executable, "-m", "papermill", str(self.notebook), str(run_dir / self.notebook.name),
                "-f", str(params_file), "--cwd", str(self.notebook.parent), "--log-output", "--no-progress-bar"]

    def spec(self) -> dict:
        # relative to the repository root: the same sweep on machines whose checkouts lie in different places
        return {"notebook": paths.relative(self.notebook), "parameters": self.parameters, "overrides": self.overrides}
