"""Training runs as subprocesses of the Lightning CLI, so the notebook kernel stays responsive.

``TrainingRun`` writes ``<run_dir>/config.yaml`` and starts ``python -m <task.cli> fit --config <it>`` in a new
process group, from the run root (``perceiver.runs.paths.root``: relative paths in the configuration mean the same
as for ``fit --config`` typed at the repository root). Its output goes to ``<run_dir>/train.log`` and to
``lines``. ``resume`` continues the run from its latest checkpoint with its own ``config.yaml``. ``stop()`` creates
``<run_dir>/STOP``: the run's :class:`~perceiver.training.journal.RunJournal` ends training after the current step
and saves ``checkpoints/final.ckpt``; a run that does not react is sent SIGINT (the CLI's interrupt checkpoint),
then SIGTERM, then SIGKILL. When the process ends without a final status (an error before training, a kill), the
runner writes "failed" and the output's last lines into ``status.json``.
"""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Optional

from perceiver.runs import paths
from perceiver.runs import status as run_status
from perceiver.tasks import Task
from widgets.spec import resolve_task, to_yaml

#: third-party warnings a training run does not show, each named: (message prefix, category); the user's own
#: warnings, and any other warning, reach the output
THIRD_PARTY_WARNINGS = (
    # torch deprecates LeafSpec; pytorch_lightning 2.6's _pytree still constructs it at every batch transfer
    ("`isinstance(treespec, LeafSpec)` is deprecated", "FutureWarning"),
)

#: Lightning's informational log lines (not warnings) not worth showing in a notebook; train.log keeps them
NOISE = ("💡 Tip", "`weights_only` was not set", "TPU available", "HPU available")
#: command line options of workbench runs (not part of the configuration: ``fit --config`` typed in a terminal shows
#: Lightning's progress bar and model summary)
RUNNER_ARGS = ["--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false"]


def warning_options() -> list[str]:
    """``python -W`` options that ignore exactly :data:`THIRD_PARTY_WARNINGS` (a message prefix matches literally)."""
    return [f"-Wignore:{message}:{category}" for message, category in THIRD_PARTY_WARNINGS]


def wait_for(process: Optional[subprocess.Popen], follower: Optional[threading.Thread],
             timeout: Optional[float] = None, follower_s: float = 30.0) -> Optional[int]:
    """Exit code of ``process`` once it ends within ``timeout`` seconds (None: no process, or still running), after
    the thread that follows its output has caught up (at most ``follower_s`` seconds)."""
    if process is None:
        return None
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        return None
    if follower is not None:
        follower.join(timeout=follower_s)
    return process.returncode


class TrainingRun:
    """One CLI training run in ``run_dir`` (see the module docstring).

    Args:
        task: a task of the registry (``perceiver.tasks``) or its name.
        config: the CLI configuration (``widgets.spec.cli_config``); None to resume from the run's ``config.yaml``.
        run_dir: the run directory (created by ``perceiver.runs.paths.prepare_run_dir``).
        cpu_threads: torch threads of the training process (``--cpu_threads``, over the config's ``cpu_threads``;
            None keeps that: all usable cores unless the config fixes a number, which makes CPU results reproducible).
        ckpt_path: resume from this checkpoint (of this run).
    """

    def __init__(self, task: str | Task, config: Optional[dict], run_dir: str | Path, cpu_threads: Optional[int] = None,
                 ckpt_path: Optional[str | Path] = None):
        self.task, self.config, self.run_dir = resolve_task(task), config, Path(run_dir).resolve()
        self.cpu_threads = cpu_threads
        self.ckpt_path = ckpt_path
        self.process: Optional[subprocess.Popen] = None
        self.lines: list[str] = []
        self.queue: "queue.Queue[str]" = queue.Queue()
        self._reader: Optional[threading.Thread] = None
        self.started_at = self.ended_at = None

    @classmethod
    def resume(cls, task: str | Task, run_dir: str | Path, **kwargs) -> "TrainingRun":
        """The run of ``run_dir`` continued from its checkpoint (``paths.resume_checkpoint``)."""
        ckpt = paths.resume_checkpoint(run_dir)
        if ckpt is None:
            raise FileNotFoundError(f"{run_dir} has no checkpoint to resume from")
        if not Path(run_dir, "config.yaml").is_file():
            raise FileNotFoundError(f"{run_dir} has no config.yaml to resume with")
        return cls(task, None, run_dir, ckpt_path=ckpt, **kwargs)

    @property
    def config_path(self) -> Path:
        return self.run_dir / "config.yaml"

    @property
    def command(self) -> list[str]:
        cmd = [sys.executable, *warning_options(), "-m", self.task.cli, "fit", "--config", str(self.config_path),
               *RUNNER_ARGS]
        if self.config is not None:
            cmd.append(f"--run_dir={self.run_dir}")  # the directory this run claimed, whatever the template was
        if self.cpu_threads is not None:
            cmd.append(f"--cpu_threads={self.cpu_threads}")
        return cmd + ([f"--ckpt_path={self.ckpt_path}"] if self.ckpt_path else [])

    def start(self) -> "TrainingRun":
        if self.running:
            raise RuntimeError("this run is already running")
        self.run_dir.mkdir(parents=True, exist_ok=True)
        (self.run_dir / "STOP").unlink(missing_ok=True)
        if self.config is not None:
            self.config_path.write_text(to_yaml(self.config))
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        env.pop(paths.RUN_DIR_VAR, None)
        self.lines = []
        self.started_at, self.ended_at = time.time(), None
        log = open(self.run_dir / "train.log", "a" if self.ckpt_path else "w")
        self.process = subprocess.Popen(
            self.command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True,
            bufsize=1, env=env, cwd=paths.root(), start_new_session=True,  # own process group: signals reach it all
        )
        self._reader = threading.Thread(target=self._read, args=(log,), name="perceiver-run-reader", daemon=True)
        self._reader.start()
        return self

    def _read(self, log) -> None:
        assert self.process is not None and self.process.stdout is not None
        with log:
            for line in self.process.stdout:
                log.write(line)
                log.flush()
                line = line.rstrip()
                if line and not any(n in line for n in NOISE):
                    self.lines.append(line)
                    self.queue.put(line)
        code = self.process.wait()
        self.ended_at = time.time()
        status = run_status.read(self.run_dir, check_process=False)
        if code != 0 and status.get("status") not in ("failed", "stopped"):
            text = (self.run_dir / "train.log").read_text(errors="replace")
            fields = run_status.error_fields(text)
            if code < 0:
                fields["error"] = f"the training process was killed by signal {-code} ({signal.Signals(-code).name})"
            run_status.write(self.run_dir, status="failed", exit_code=code, **fields)

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    @property
    def returncode(self) -> Optional[int]:
        return None if self.process is None else self.process.poll()

    def new_lines(self) -> list[str]:
        out = []
        while True:
            try:
                out.append(self.queue.get_nowait())
            except queue.Empty:
                return out

    def wait(self, timeout: Optional[float] = None) -> Optional[int]:
        return wait_for(self.process, self._reader, timeout)

    def stop(self, grace_s: float = 60.0) -> Optional[int]:
        """End the run cleanly after its current step (it saves ``checkpoints/final.ckpt``); escalate to SIGINT,
        SIGTERM and SIGKILL if it does not end within ``grace_s`` seconds each."""
        if not self.running:
            return self.returncode
        (self.run_dir / "STOP").touch()
        for sig in (None, signal.SIGINT, signal.SIGTERM, signal.SIGKILL):
            if sig is not None and self.running:
                os.killpg(self.process.pid, sig)
            if self.wait(grace_s) is not None:
                break
        return self.returncode
