"""Where runs live: one root for every way of starting a run, and the rules that keep runs apart.

Relative run paths (``runs/clm/{time}``, a notebook's ``run_dir``, ``--run_dir``, a data ``source`` typed into the
workbench) resolve against one **root**, whoever asks: the CLI in a terminal, a JupyterLab kernel (whose working
directory is ``notebooks/``), papermill, a plain script. The root is

1. ``$PERCEIVER_ROOT`` if set, else
2. the nearest directory at or above the working directory that holds ``pyproject.toml`` or ``.git`` (the
   repository root when working in a checkout), else
3. the working directory.

A run path may contain ``{task}`` (the task's name) and ``{time}`` (the start time, ``2026-12-01T10-00-00``): each
expansion of a ``{time}`` path is a new directory (``-2``, ``-3`` ... appended within the same second). A path
without ``{time}`` names one directory; a run never starts in a directory that holds an earlier run unless asked to
overwrite it or to resume it (:func:`prepare_run_dir`). The default is :data:`DEFAULT_RUN_DIR`.

No torch here: the CLI's ``--help``, the widgets and the run registry import this module cheaply.
"""

from __future__ import annotations

import os
import shutil
from datetime import datetime
from pathlib import Path
from typing import Optional

ROOT_VAR = "PERCEIVER_ROOT"
"""Environment variable that sets the root."""
RUN_DIR_VAR = "PERCEIVER_RUN_DIR"
"""Set by the CLI for the processes it starts (DDP ranks), so that they all write the run directory rank 0 chose."""
DEFAULT_RUN_DIR = "runs/{task}/{time}"
"""Where a run goes when nobody says otherwise: a new directory per run, grouped by task."""
TIME_FORMAT = "%Y-%m-%dT%H-%M-%S"
RUN_MARKERS = ("status.json", "env.json", "metrics.jsonl", "checkpoints")
"""Entries that show a directory holds a run (a ``config.yaml`` alone does not: it is written before the start)."""


class RunDirError(FileExistsError):
    """A run directory holds an earlier run and was neither to be overwritten nor resumed."""

    def __init__(self, path: Path, message: str):
        super().__init__(message)
        self.path = path


def root() -> Path:
    """The directory that relative run paths resolve against (see the module docstring)."""
    env = os.environ.get(ROOT_VAR)
    if env:
        return Path(env).expanduser().resolve()
    cwd = Path.cwd().resolve()
    for d in (cwd, *cwd.parents):
        if (d / "pyproject.toml").is_file() or (d / ".git").exists():
            return d
    return cwd


def resolve(path: str | os.PathLike) -> Path:
    """``path`` made absolute: ``~`` expanded, relative paths taken from :func:`root`."""
    p = Path(path).expanduser()
    return p if p.is_absolute() else root() / p


def relative(path: str | os.PathLike) -> str:
    """``path`` relative to the root when it lies inside it (portable in exported files), else absolute."""
    p = resolve(path)
    try:
        return str(p.relative_to(root()))
    except ValueError:
        return str(p)


def expand(template: str | os.PathLike, task: Optional[str] = None, time: Optional[datetime] = None) -> str:
    """``template`` with ``{task}`` and ``{time}`` filled in (other text is kept as it is)."""
    text = str(template)
    if "{task}" in text:
        if task is None:
            raise ValueError(f"run path {text!r} names {{task}} but no task was given")
        text = text.replace("{task}", task)
    return text.replace("{time}", (time or datetime.now()).strftime(TIME_FORMAT))


def is_template(path: str | os.PathLike) -> bool:
    """Whether ``path`` makes a new directory per run (it contains ``{time}``)."""
    return "{time}" in str(path)


def has_run(path: str | os.PathLike) -> bool:
    """Whether directory ``path`` holds a run (one of :data:`RUN_MARKERS`)."""
    p = Path(path)
    return p.is_dir() and any((p / m).exists() for m in RUN_MARKERS)


def new_run_dir(template: str | os.PathLike, task: Optional[str] = None) -> Path:
    """The resolved directory of ``template``. A ``{time}`` template gets a directory no one else has: it is
    created here, atomically, with a suffix if the name is taken."""
    path = resolve(expand(template, task))
    if not is_template(template):
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    for n in range(1, 1000):
        candidate = path if n == 1 else path.with_name(f"{path.name}-{n}")
        try:
            candidate.mkdir()
            return candidate
        except FileExistsError:
            continue
    raise RunDirError(path, f"could not create a new run directory beside {path}")


def prepare_run_dir(template: str | os.PathLike, task: Optional[str] = None, overwrite: bool = False,
                    resume_from: Optional[str | os.PathLike] = None) -> Path:
    """The run directory for a new run (created, empty of earlier runs).

    A directory that holds a run is used only to ``resume_from`` a checkpoint inside it, or with ``overwrite``
    (its content is deleted first). Otherwise :class:`RunDirError` says what to do.
    """
    path = new_run_dir(template, task)
    if has_run(path):
        if resume_from is not None and _inside(resolve(resume_from), path):
            pass
        elif overwrite:
            for child in path.iterdir():
                shutil.rmtree(child) if child.is_dir() and not child.is_symlink() else child.unlink()
        else:
            raise RunDirError(path, f"run directory {path} holds an earlier run. Start a new one (a path with "
                                    f"{{time}}, e.g. --run_dir={DEFAULT_RUN_DIR}), resume this one (--ckpt_path="
                                    f"{path / 'checkpoints' / 'last.ckpt'}), or replace it (--overwrite=true).")
    path.mkdir(parents=True, exist_ok=True)
    return path


def _inside(path: Path, directory: Path) -> bool:
    try:
        path.resolve().relative_to(directory.resolve())
        return True
    except ValueError:
        return False


def runs_under(path: str | os.PathLike) -> list[Path]:
    """The run directories at or below ``path`` (resolved), oldest first (by the start time in ``status.json``, else
    by modification time)."""
    base = resolve(path)
    if not base.is_dir():
        return []
    found = [base] if has_run(base) else []
    for dirpath, dirnames, _ in os.walk(base):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and d not in RUN_CONTENT)
        found += [Path(dirpath) / d for d in dirnames if has_run(Path(dirpath) / d)]
    return sorted(set(found), key=lambda run: (_start_time(run), str(run)))


RUN_CONTENT = ("checkpoints", "attention", "plots", "logs")
"""Subdirectories of a run directory (never searched for further runs)."""


def _start_time(run: Path) -> float:
    import json

    try:
        return float(json.loads((run / "status.json").read_text())["started_at"])
    except (OSError, ValueError, KeyError, TypeError):
        return run.stat().st_mtime


def latest_run(path: str | os.PathLike, task: Optional[str] = None) -> Optional[Path]:
    """``path`` itself if it is a run directory, else the most recently started run below it (None if none).
    A template stands for the directory that holds its runs (``runs/{task}/{time}`` -> ``runs/<task>``)."""
    text = str(path)
    if "{task}" in text and task is not None:
        text = text.replace("{task}", task)
    if is_template(text):
        text = text[: text.index("{time}")]
    if "{" in text:
        return None
    base = resolve(text)
    if has_run(base):
        return base
    runs = runs_under(base)
    return runs[-1] if runs else None


def latest_checkpoint(run_dir: str | os.PathLike) -> Optional[Path]:
    """The most recently written checkpoint of a run (``final.ckpt`` after Stop, ``interrupted.ckpt`` after Ctrl-C
    or SIGTERM, ``last.ckpt`` otherwise), or None."""
    ckpts = [p for p in Path(run_dir, "checkpoints").glob("*.ckpt") if p.is_file()]
    return max(ckpts, key=lambda p: p.stat().st_mtime_ns) if ckpts else None


def resume_checkpoint(run_dir: str | os.PathLike) -> Optional[Path]:
    """The checkpoint to resume a run from: the one its ``status.json`` names (written at Stop, where the run
    continues exactly; the loop's own ``last.ckpt`` written after it would count the epoch as done), else the newest
    one (``interrupted.ckpt`` after Ctrl-C, SIGTERM or an error)."""
    import json

    run_dir = Path(run_dir)
    try:
        named = json.loads((run_dir / "status.json").read_text()).get("checkpoint")
    except (OSError, ValueError):
        named = None
    if named and (run_dir / named).is_file():
        return run_dir / named
    return latest_checkpoint(run_dir)


def process_rank() -> int:
    """The global rank of this process as launchers announce it (torchrun, SLURM, Lightning's DDP), 0 if none."""
    for var in ("RANK", "SLURM_PROCID", "LOCAL_RANK", "JSM_NAMESPACE_RANK"):
        if os.environ.get(var, "").isdigit():
            return int(os.environ[var])
    return 0
