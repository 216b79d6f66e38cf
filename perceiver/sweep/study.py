"""A sweep on Optuna: every point a normal run in ``<out>/<point>/``, the study in ``<out>/sweep.db``.

    sweep = Sweep(CliTarget("perceiver.scripts.text.clm", ["--data.source=sample"]),
                  [parse_param("optimizer.lr=1e-3,3e-3"), parse_param("model.num_channels=64,128")], "runs/sweep-lr")
    table = sweep.run()          # the registry's rows of the points, best first

Optuna holds the sweep's state: which points ran, their values, their metric, their errors. Its storage is a SQLite
file in the sweep directory, or any database URL (``storage``) that several machines share: the same command on each
of them works through the same study. Points are asked from Optuna's samplers (grid: ``GridSampler``; ``random``;
``tpe``) and run by ``Study.optimize`` with one worker thread per device, each point a subprocess pinned to its device
(``CUDA_VISIBLE_DEVICES``); on a CPU there is one device and the points run one after another.

Running the same sweep again skips the points that completed, runs again those that failed or were interrupted (a
killed sweep leaves its trials running: they count as failed once their process is gone or their heartbeat stopped)
and, for random and TPE, runs trials until ``trials`` have completed. A point that fails is recorded (its run
directory's ``status.json`` and the trial's ``error``), and the sweep goes on.
"""

from __future__ import annotations

import os
import queue
import shutil
import socket
import subprocess
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

from perceiver.runs import paths
from perceiver.runs import status as run_status
from perceiver.runs.records import read_json
from perceiver.sweep.devices import SweepError, device_env, visible_devices
from perceiver.sweep.space import Param, format_value, grid, point_name
from perceiver.tasks import metric_goal

SAMPLERS = ("grid", "random", "tpe")
HEARTBEAT_S = 20
"""Seconds between a running trial's heartbeats; a trial silent for three of them counts as failed."""
SUMMARY_NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "sweep.ipynb"


class PointFailed(Exception):
    """A point whose run failed (recorded as a failed trial; the sweep goes on)."""


class Sweep:
    """Grid or random/TPE search over ``params`` of ``target`` (``perceiver.sweep.targets``), see the module docstring.

    Args:
        target: what runs a point (a ``CliTarget`` or ``NotebookTarget``).
        params: the swept parameters (``perceiver.sweep.space.parse_param``).
        out: the sweep directory (relative: from the repository root): points, ``sweep.db``, ``sweep.ipynb``.
        sampler: ``grid`` (every combination of listed values), ``random`` or ``tpe`` (``trials`` points).
        trials: how many points random and TPE complete.
        devices: see :func:`visible_devices`.
        metric: the registry column the sampler optimises and the table sorts by (``best.val_loss``).
        direction: ``minimize`` or ``maximize`` (default: by the metric's goal).
        storage: an Optuna storage URL (default ``sqlite:///<out>/sweep.db``).
        study_name: the study in that storage (default: the sweep directory's name).
        seed: the samplers' seed.
        summary: execute ``notebooks/sweep.ipynb`` into ``<out>/sweep.ipynb`` at the end.
        log: where progress lines go.
    """

    def __init__(self, target, params: Sequence[Param], out: str | Path, sampler: str = "grid",
                 trials: Optional[int] = None, devices: str | Sequence[str] = "auto", metric: str = "best.val_loss",
                 direction: Optional[str] = None, storage: Optional[str] = None, study_name: Optional[str] = None,
                 seed: int = 0, summary: bool = True, log: Callable[[str], None] = print):
        if sampler not in SAMPLERS:
            raise SweepError(f"sampler {sampler!r}: one of {', '.join(SAMPLERS)}")
        if not params:
            raise SweepError("nothing to sweep: give at least one --param KEY=V1,V2")
        names = [p.name for p in params]
        if len(set(names)) < len(names):
            raise SweepError(f"a parameter is given twice: {names}")
        self.target, self.params, self.sampler_name = target, list(params), sampler
        self.points = grid(self.params) if sampler == "grid" else None
        if sampler == "grid" and trials is not None:
            raise SweepError("a grid runs every combination: --trials is for --sampler random or tpe")
        if sampler != "grid" and (trials is None or trials < 1):
            raise SweepError(f"--sampler {sampler} needs --trials N (how many points to run)")
        self.trials = len(self.points) if self.points is not None else trials
        self.out = paths.resolve(out)
        self.devices = visible_devices(devices)
        self.metric = metric
        self.direction = direction or ("maximize" if metric_goal(metric.rsplit(".", 1)[-1]) == "max" else "minimize")
        self.storage_url = storage or f"sqlite:///{self.out / 'sweep.db'}"
        self.study_name = study_name or self.out.name
        self.seed, self.summary, self.log = seed, summary, log
        self._free: "queue.Queue[str]" = queue.Queue()
        self._done = 0

    # --- the study --------------------------------------------------------------------------------------------------

    def spec(self) -> dict:
        """What makes two commands the same sweep (checked when a sweep resumes)."""
        return {"target": self.target.spec(), "params": [p.describe() for p in self.params],
                "sampler": self.sampler_name}

    def study(self):
        """The Optuna study (created, or loaded to resume), with this sweep's sampler."""
        import optuna

        warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)  # heartbeats: since 2.9
        storage = optuna.storages.RDBStorage(self.storage_url, heartbeat_interval=HEARTBEAT_S,
                                             grace_period=3 * HEARTBEAT_S)
        study = optuna.create_study(storage=storage, study_name=self.study_name, direction=self.direction,
                                    load_if_exists=True)
        self._storage = storage
        spec, known = self.spec(), study.user_attrs.get("spec")
        if known is None:
            study.set_user_attr("spec", spec)
        elif known != spec:
            raise SweepError(f"study {self.study_name!r} in {self.storage_url} is another sweep ({known}); this one is "
                             f"{spec}. Give this sweep another --out (or --study).")
        # a resumed random search must not repeat its first points; a grid's seed fixes which point a grid id means
        seed = self.seed + (len(study.trials) if self.points is None else 0)
        study.sampler = {
            "grid": lambda: optuna.samplers.GridSampler({p.name: list(p.values) for p in self.params}, seed=seed),
            "random": lambda: optuna.samplers.RandomSampler(seed=seed),
            "tpe": lambda: optuna.samplers.TPESampler(seed=seed),
        }[self.sampler_name]()
        return study

    def key(self, values: dict) -> tuple:
        return tuple(format_value(values.get(p.name)) for p in self.params)

    def _fail_dead(self, study) -> None:
        """Running trials of this host whose sweep process is gone, and trials whose heartbeat stopped: failed."""
        import optuna
        from optuna.trial import TrialState

        optuna.storages.fail_stale_trials(study)
        for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            owner = {"pid": t.user_attrs.get("sweep_pid"), "host": t.user_attrs.get("host")}
            if owner["pid"] and not run_status.alive(owner):  # (what fail_stale_trials does, without the wait)
                self._storage.set_trial_state_values(t._trial_id, TrialState.FAIL)

    def _plan(self, study) -> int:
        """How many trials to run now; failed grid points are queued again (as Optuna's RetryFailedTrialCallback
        does: a waiting trial with the failed one's values)."""
        import optuna
        from optuna.trial import TrialState

        trials = study.get_trials(deepcopy=False)
        complete = {self.key(t.params) for t in trials if t.state == TrialState.COMPLETE}
        running = {self.key(t.params) for t in trials if t.state == TrialState.RUNNING}
        if self.points is None:  # random and TPE: until `trials` have completed (those running elsewhere count)
            busy = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.RUNNING)]
            return max(0, self.trials - len(busy))
        waiting = {self.key(t.params) for t in trials if t.state == TrialState.WAITING}
        for t in reversed(trials):  # the latest attempt of each failed point
            k = self.key(t.params)
            if t.state == TrialState.FAIL and t.params and k not in complete | running | waiting:
                study.add_trial(optuna.trial.create_trial(
                    state=TrialState.WAITING, params=t.params, distributions=t.distributions,
                    system_attrs={**t.system_attrs, "retry_of": t.number}))
                waiting.add(k)
        return len([p for p in self.points if self.key(p) not in complete | running])

    # --- running --------------------------------------------------------------------------------------------------

    def run(self):
        """Run the points that have not completed, then print the table (and execute the summary notebook);
        returns the registry's table of the sweep (``table``)."""
        import optuna

        self.out.mkdir(parents=True, exist_ok=True)
        verbosity = optuna.logging.get_verbosity()
        optuna.logging.set_verbosity(optuna.logging.ERROR)  # each point gets our own line instead
        try:
            self._optimize()
        finally:
            optuna.logging.set_verbosity(verbosity)
        table = self.table()
        if len(table):
            self.log(self.format_table(table))
        if self.summary:
            self.summarize()
        return table

    def _optimize(self) -> None:
        study = self.study()
        self._fail_dead(study)
        todo = self._plan(study)
        total = self.trials
        if todo == 0:
            self.log(f"[sweep] all {total} points of {self.out} have completed; nothing to run")
        else:
            self.log(f"[sweep] {todo} of {total} points to run in {self.out} on {', '.join(self.devices)} "
                     f"({self.sampler_name}; study {self.study_name!r} in {self.storage_url})")
            self._free = queue.Queue()
            for device in self.devices:
                self._free.put(device)
            self._done = total - todo
            study.optimize(self._objective, n_trials=todo, n_jobs=len(self.devices), catch=(PointFailed,),
                           gc_after_trial=False)

    def _objective(self, trial) -> float:
        import optuna
        from optuna.trial import TrialState

        values = {p.name: p.suggest(trial) for p in self.params}
        if self.points is not None:
            for t in trial.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.RUNNING)):
                if t.number != trial.number and self.key(t.params) == self.key(values) and (
                        t.state == TrialState.COMPLETE or t.number < trial.number):
                    # two workers asked for the same point at once (several machines): only the first one runs it
                    raise optuna.TrialPruned(f"point {values} is run by trial {t.number}")
        index = [self.key(p) for p in self.points].index(self.key(values)) if self.points is not None else \
            trial.number
        name = point_name(index, values)
        device = self._free.get()
        for key, value in {"point": name, "device": device, "host": socket.gethostname(),
                           "sweep_pid": os.getpid()}.items():
            trial.set_user_attr(key, value)
        t0 = time.time()
        try:
            self.launch(self.out / name, values, trial.number, device)
        finally:
            self._free.put(device)
        from perceiver.runs.registry import read_run

        row = read_run(self.out / name, self.out)
        value = row.get(self.metric)
        error = row["error"] if row["status"] != "completed" else (
            None if isinstance(value, (int, float)) and value == value else
            f"the run completed without {self.metric}: choose another --metric")
        trial.set_user_attr("status", row["status"])
        self._done += 1
        shown = ", ".join(f"{k.rsplit('.', 1)[-1]}={format_value(v)}" for k, v in values.items())
        outcome = f"{self.metric} {value:.4g}" if error is None else f"{row['status']}: {error}"
        self.log(f"[sweep] {self._done}/{self.trials} {shown} on {device}: {outcome} ({time.time() - t0:.0f}s, "
                 f"{paths.relative(self.out / name)})")
        if error is not None:
            trial.set_user_attr("error", str(error))
            raise PointFailed(error)
        return float(value)

    def launch(self, run_dir: Path, values: dict, trial: int, device: str) -> int:
        """Run one point in ``run_dir`` (emptied first: a point run again starts afresh) on ``device``; a process that
        ends without a final status gets "failed" and its output's last lines, as the workbench's runs do."""
        if run_dir.exists():
            shutil.rmtree(run_dir)
        run_dir.mkdir(parents=True)
        (run_dir / "sweep.json").write_text(json_dump({"sweep": str(self.out), "study": self.study_name,
                                                       "point": run_dir.name, "trial": trial, "device": device,
                                                       "params": values}))
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **device_env(device)}
        env.pop(paths.RUN_DIR_VAR, None)
        log_path = run_dir / self.target.log_name
        with open(log_path, "w") as log:
            process = subprocess.Popen(self.target.command(run_dir, values), stdout=log, stderr=subprocess.STDOUT,
                                       stdin=subprocess.DEVNULL, env=env, cwd=paths.root())
            try:
                code = process.wait()
            except KeyboardInterrupt:  # the point got the same Ctrl-C: let it save its interrupt checkpoint
                try:
                    code = process.wait(60)
                except subprocess.TimeoutExpired:
                    process.kill()
                    code = process.wait()
                raise
            finally:
                if process.poll() is None:
                    process.kill()
        status = read_json(run_dir / run_status.FILE)
        if code != 0 and status.get("status") not in ("failed", "stopped"):
            text = log_path.read_text(errors="replace")
            run_status.write(run_dir, status="failed", exit_code=code, **run_status.error_fields(text))
        return code

    # --- results --------------------------------------------------------------------------------------------------

    def table(self):
        """The registry's rows of this sweep's points: point, status, swept values, the metric, steps, time, error;
        best first."""
        from perceiver.runs.registry import load

        df = load(self.out)
        if not len(df):
            return df
        cols = ["run", "status", *[p.name for p in self.params if p.name in df], self.metric, "steps", "wall_s",
                "error"]
        df = df[[c for c in cols if c in df]].rename(columns={"run": "point"})
        if "error" in df:
            df["error"] = df["error"].fillna("")
        if self.metric in df:
            df = df.sort_values(self.metric, ascending=self.direction == "minimize", na_position="last")
        return df.reset_index(drop=True)

    def format_table(self, table) -> str:
        lines = [table.to_string(index=False, max_colwidth=60)]
        done = table[table["status"] == "completed"] if "status" in table else table
        if self.metric in table and len(done) and done[self.metric].notna().any():
            best = done.iloc[0]
            setting = ", ".join(f"{p.name}={format_value(best[p.name])}" for p in self.params if p.name in best)
            lines.append(f"best: {setting} ({self.metric} {best[self.metric]:.4g}, {best['point']})")
        return "\n".join(lines)

    def summarize(self) -> Optional[Path]:
        """Execute ``notebooks/sweep.ipynb`` for this sweep into ``<out>/sweep.ipynb`` (the registry's table and the
        comparison plots; its PNGs also in ``<out>/plots/``)."""
        if not SUMMARY_NOTEBOOK.is_file():
            self.log(f"[sweep] no summary: {SUMMARY_NOTEBOOK} is missing")
            return None
        import papermill

        out = self.out / "sweep.ipynb"
        papermill.execute_notebook(str(SUMMARY_NOTEBOOK), str(out), cwd=str(SUMMARY_NOTEBOOK.parent),
                                   parameters={"sweep_dir": str(self.out), "metric": self.metric},
                                   progress_bar=False)
        self.log(f"[sweep] summary: {paths.relative(out)} (plots in {paths.relative(self.out / 'plots')})")
        return out


def json_dump(obj: Any) -> str:
    import json

    return json.dumps(obj, indent=1)
