"""Training runs as subprocesses of the Lightning CLI, so the notebook kernel stays responsive.

``TrainingRun`` writes ``<run_dir>/config.yaml``, starts ``python -m <task.cli> fit --config``
in a new process group, and collects its output lines (also in ``<run_dir>/train.log``). ``stop()`` creates
``<run_dir>/STOP``: the run's :class:`~perceiver.training.journal.RunJournal` ends training after the current step
and saves ``checkpoints/final.ckpt``. A run that does not react is sent SIGINT (the CLI's interrupt checkpoint),
then SIGTERM, then SIGKILL.
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

from perceiver.tasks import Task
from widgets.spec import resolve_task, to_yaml

#: output lines not worth showing in a notebook
NOISE = ("💡 Tip", "is deprecated", "warnings.warn(", "`weights_only` was not set", "TPU available", "HPU available")


class TrainingRun:
    """One CLI training run in ``run_dir`` (see the module docstring).

    Args:
        task: a task of the registry (``perceiver.tasks``) or its name.
        config: the CLI configuration (``widgets.spec.cli_config``).
        run_dir: the run directory.
        cpu_threads: torch threads of the training process (replaces the config's ``cpu_threads``; None keeps it:
            all usable cores unless the config fixes a number, which makes CPU results reproducible).
    """

    def __init__(self, task: str | Task, config: dict, run_dir: str | Path, cpu_threads: Optional[int] = None):
        self.task, self.config, self.run_dir = resolve_task(task), config, Path(run_dir).resolve()
        self.cpu_threads = cpu_threads
        self.process: Optional[subprocess.Popen] = None
        self.lines: list[str] = []
        self.queue: "queue.Queue[str]" = queue.Queue()
        self._reader: Optional[threading.Thread] = None
        self.started_at = self.ended_at = None

    @property
    def config_path(self) -> Path:
        return self.run_dir / "config.yaml"

    @property
    def command(self) -> list[str]:
        return [sys.executable, "-m", self.task.cli, "fit", "--config", str(self.config_path)]

    def start(self) -> "TrainingRun":
        if self.running:
            raise RuntimeError("this run is already running")
        self.run_dir.mkdir(parents=True, exist_ok=True)
        (self.run_dir / "STOP").unlink(missing_ok=True)
        if self.cpu_threads is not None:
            self.config = {**self.config, "cpu_threads": self.cpu_threads}
        self.config_path.write_text(to_yaml(self.config))
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONWARNINGS": "ignore"}
        self.lines = []
        self.started_at, self.ended_at = time.time(), None
        self.process = subprocess.Popen(
            self.command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True,
            bufsize=1, env=env, cwd=os.getcwd(), start_new_session=True,  # own process group: signals reach it all
        )
        self._reader = threading.Thread(target=self._read, name="perceiver-run-reader", daemon=True)
        self._reader.start()
        return self

    def _read(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        with open(self.run_dir / "train.log", "w") as log:
            for line in self.process.stdout:
                log.write(line)
                log.flush()
                line = line.rstrip()
                if line and not any(n in line for n in NOISE):
                    self.lines.append(line)
                    self.queue.put(line)
        self.process.wait()
        self.ended_at = time.time()

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
        if self.process is None:
            return None
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            return None
        if self._reader is not None:
            self._reader.join(timeout=10)
        return self.process.returncode

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
