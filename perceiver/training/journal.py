"""RunJournal: a callback that writes everything a run leaves behind into one run directory, while it trains.

The workbench dashboard, the run registry and ``generate.ipynb`` read that directory, so training can run anywhere
(a subprocess, DDP ranks, another machine with a shared disk) and readers only need the files. Every run leaves the
same layout, whether started by the CLI (``python -m perceiver.scripts.text.clm fit``, which adds this callback),
the workbench or papermill. ``run_dir`` is chosen by ``perceiver.runs.paths`` (default ``runs/<task>/<time>`` under
the repository root)::

    config.yaml               the configuration the CLI resolved (``fit --config <run_dir>/config.yaml`` repeats the
                              run; add --overwrite=true to replace it, or --ckpt_path to resume it)
    status.json               running | completed | stopped | failed, step, max_steps, the error's last lines,
                              pid and host (``perceiver.runs.status``)
    env.json                  task, run_dir, package versions, device, torch threads, seed, git commit, command line,
                              parameter counts (num_params, num_trainable_params)
    metrics.jsonl             one JSON line per training step: step, train_loss, the task's train_* metrics, lr,
                              tokens_per_s, wall_s and what other callbacks log (ComputeMonitor: cumulative tokens
                              and flops, flops_per_s, mfu); and one per validation: step, val_loss, val_<metric>, ...
    metrics.json              summary (status, final and per-step values, the best value of each validation metric
                              and its step; total tokens, flops and mean mfu), rewritten at every validation and at
                              the end
    samples.jsonl             validation samples (generated text or filled masks): step, text
    sample.live.json          the sample being generated, rewritten as its text grows (if the task streams it)
    attention/step-<k>.npz    attention maps (H, I, J) of a fixed validation input, key labels and a title, if the
                              Lightning module provides them (``attention_maps``)
    records/<name>/step-<k>.npz  arrays of a validation for the task's figures (``validation_records``), e.g.
                              the misclassified images of the image classifier
    checkpoints/              last.ckpt and step=<k>.ckpt (ModelCheckpoint), final.ckpt (end of training, also after
                              Stop), interrupted.ckpt (Ctrl-C, SIGTERM); none with enable_checkpointing=False
    logs/                     the Lightning loggers' files (TensorBoard events, csv/metrics.csv, hparams.yaml)
    plots/<figure>.png        the final figures (loss curves and the task's figures), at the end
    train.log                 the process output (workbench and papermill runs)
    STOP                      created by the workbench's Stop button: training ends after the current step

A resumed run (``fit --ckpt_path`` with a checkpoint of this directory) continues the same files: records after the
checkpoint's step are dropped, then appended again. Losses depend only on the seed and the data, so two CPU runs
with the same configuration give identical values, and a resumed run the values of an uninterrupted one;
``tokens_per_s`` and ``wall_s`` are measurements.
"""

from __future__ import annotations

import json
import os
import platform
import socket
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import Any, Optional

import pytorch_lightning as pl
import numpy as np
import torch
from pytorch_lightning.callbacks import Callback
from pytorch_lightning.utilities.exceptions import SIGTERMException

from perceiver.runs import status as run_status
from perceiver.runs.records import read_jsonl
from perceiver.runs.paths import RunDirError
from perceiver import tasks
from perceiver.tasks import task_of
from perceiver.training.compute import mean_mfu
from perceiver.training.threads import usable_cpus

PACKAGES = ["perceiver", "torch", "pytorch-lightning", "transformers", "datasets", "numpy", "jsonargparse",
            "ipywidgets"]


class RunJournal(Callback):
    """Writes metrics, attention maps, samples, the environment and a final checkpoint to ``run_dir``.

    Args:
        run_dir: the run directory.
        attention_every: record attention maps every this many training steps (0: only at the end).
        progress_every: print a one-line progress report every this many steps and at the last step (0: never).
        attention_len: at most this many input tokens of the fixed validation example used for attention maps.
        stop_file_check: end training cleanly (with a checkpoint) when ``run_dir/STOP`` appears.
    """

    def __init__(
        self,
        run_dir: str,
        attention_every: int = 10,
        progress_every: int = 5,
        attention_len: Optional[int] = None,
        stop_file_check: bool = True,
    ):
        self.run_dir = Path(run_dir)
        self.attention_every = attention_every
        self.progress_every = progress_every
        self.attention_len = attention_len
        self.stop_file_check = stop_file_check
        self.steps: list[dict[str, Any]] = []
        self.validations: list[dict[str, Any]] = []
        self.status, self.reason = "running", None
        self._t0 = self._t_last = self._wall_offset = 0.0
        self._attention_input: Optional[dict] = None
        self._created = time.time()
        self._task: Optional[str] = None
        self._earlier_run = False
        self._saved_at: Optional[int] = None

    # --- files ------------------------------------------------------------------------------------------------------

    @property
    def stop_path(self) -> Path:
        return self.run_dir / "STOP"

    @property
    def final_checkpoint(self) -> Path:
        return self.run_dir / "checkpoints" / "final.ckpt"

    def _append(self, name: str, record: dict) -> None:
        with open(self.run_dir / name, "a") as f:
            f.write(json.dumps(record) + "\n")

    def _live_sample_writer(self, trainer: pl.Trainer, interval_s: float = 0.2):
        """A callback that rewrites ``sample.live.json`` with the sample's text so far, at most every interval_s."""
        last = [0.0]

        def write(text: str) -> None:
            now = time.perf_counter()
            if now - last[0] >= interval_s:
                self._write_json("sample.live.json", {"step": trainer.global_step, "text": text})
                last[0] = now

        return write

    def _write_json(self, name: str, obj: Any) -> None:
        tmp = self.run_dir / f".{name}.tmp"
        tmp.write_text(json.dumps(obj, indent=1))
        os.replace(tmp, self.run_dir / name)  # readers never see a half-written file

    def _status(self, trainer: pl.Trainer, **fields: Any) -> None:
        run_status.write(self.run_dir, step=trainer.global_step, max_steps=trainer.max_steps, **fields)

    # --- Lightning hooks --------------------------------------------------------------------------------------------

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if stage != "fit" or not trainer.is_global_zero:
            return
        self.run_dir.mkdir(parents=True, exist_ok=True)
        # whether this is a resumed run is known at train start; until then nothing is written
        self._earlier_run = (self.run_dir / "metrics.jsonl").exists()
        if self.stop_path.exists() and self.stop_path.stat().st_mtime < self._created:
            self.stop_path.unlink()  # left over from an earlier run; a Stop during startup is kept
        task = task_of(pl_module)
        self._task = task.name if task else None

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.global_step == 0 and self._earlier_run and trainer.is_global_zero:
            raise RunDirError(self.run_dir, f"run directory {self.run_dir} holds an earlier run; give this run a new "
                                            f"directory, or resume that run from one of its checkpoints (ckpt_path)")
        self._earlier_run = False
        self._t0 = self._t_last = time.perf_counter()
        self.steps, self.validations, self.status, self.reason = [], [], "running", None
        if trainer.global_step > 0:  # resumed: keep what came before the checkpoint, on every rank
            self._continue_from(trainer.global_step, write=trainer.is_global_zero)
        if not trainer.is_global_zero:
            return
        self._status(trainer, status="running", task=self._task, run_dir=str(self.run_dir), reason=None, error=None,
                     error_tail=None, checkpoint=None, pid=os.getpid(), host=socket.gethostname(),
                     **({} if trainer.global_step else {"started_at": time.time()}))
        self._write_json("env.json", {"task": self._task, "run_dir": str(self.run_dir), **environment(trainer),
                                      **parameter_counts(pl_module)})
        self._attention_input = self._fixed_input(trainer)
        (self.run_dir / "sample.live.json").unlink(missing_ok=True)  # of an earlier (resumed) process
        pl_module.sample_callback = self._live_sample_writer(trainer)
        n = parameter_counts(pl_module)["num_params"]
        print(f"[journal] {type(getattr(pl_module, 'model', pl_module)).__name__} with {n / 1e6:.2f}M parameters on "
              f"{env_device(trainer)}; run directory {self.run_dir}"
              + (f"; resumed at step {trainer.global_step}" if trainer.global_step else ""), flush=True)

    def _continue_from(self, step: int, write: bool) -> None:
        """Keep the records up to ``step`` (those after it are redone by the resumed run)."""
        records = read_jsonl(self.run_dir / "metrics.jsonl")
        kept = [r for r in records if r.get("step", 0) <= step]
        self.steps = [r for r in kept if "train_loss" in r]
        self.validations = [r for r in kept if "val_loss" in r]
        self._wall_offset = self.steps[-1]["wall_s"] if self.steps else 0.0
        if not write:
            return
        for name, records in (("metrics.jsonl", kept), ("samples.jsonl", read_jsonl(self.run_dir / "samples.jsonl"))):
            lines = "".join(json.dumps(r) + "\n" for r in records if r.get("step", 0) <= step)
            (self.run_dir / f".{name}.tmp").write_text(lines)
            os.replace(self.run_dir / f".{name}.tmp", self.run_dir / name)
        arrays = [*(self.run_dir / "attention").glob("step-*.npz"), *(self.run_dir / "records").glob("*/step-*.npz")]
        for path in arrays:
            if int(path.stem.split("-")[1]) > step:
                path.unlink()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        now = time.perf_counter()
        step = trainer.global_step
        count = getattr(pl_module, "batch_tokens", None)
        tokens = (count(batch) if count is not None else batch["input_ids"].numel()) * trainer.world_size
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        record = {"step": step, "train_loss": float(loss.detach())}
        # the task's own training metrics (train_bpb, train_masked_accuracy, ...), whatever the task logs
        record.update({k: float(v) for k, v in trainer.callback_metrics.items()
                       if k.startswith("train_") and k != "train_loss" and v.numel() == 1})
        record.update({
            "lr": trainer.optimizers[0].param_groups[0]["lr"] if trainer.optimizers else None,
            "tokens_per_s": tokens / max(now - self._t_last, 1e-9),
            "wall_s": self._wall_offset + now - self._t0,
        })
        for key, value in trainer.callback_metrics.items():  # what other callbacks log (ComputeMonitor's tokens, ...)
            if key not in record and not key.startswith(("val_", "test_")) and value.numel() == 1:
                record[key] = float(value)
        self._t_last = now
        self.steps.append(record)
        if trainer.is_global_zero:
            self._append("metrics.jsonl", record)
            if self.progress_every and (step % self.progress_every == 0 or step == trainer.max_steps):
                mfu = f"  MFU {100 * record['mfu']:.1f}%" if "mfu" in record else ""
                print(
                    f"[journal] step {step}/{trainer.max_steps}  loss {record['train_loss']:.4f}  "
                    f"{record['tokens_per_s']:.0f} tokens/s{mfu}  {record['wall_s']:.1f}s",
                    flush=True,
                )
                self._status(trainer, status="running")
            if self.attention_every and step % self.attention_every == 0:
                self.write_attention(trainer, pl_module)
        if self.stop_file_check:
            stop = trainer.strategy.reduce_boolean_decision(self.stop_path.exists(), all=False)
            if stop and not trainer.should_stop:
                # saved here, mid-epoch, where a resumed run continues exactly (a checkpoint saved after the loop
                # ends would count the epoch as finished); a collective under DDP: every rank calls it
                if trainer.checkpoint_callbacks:  # none if the user turned checkpointing off
                    trainer.save_checkpoint(str(self.final_checkpoint))
                    self._saved_at = step
                trainer.should_stop = True
                self.status, self.reason = "stopped", "STOP file"
                if trainer.is_global_zero:
                    print(f"[journal] stop requested; ending after step {step}", flush=True)

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val_")}
        record = {"step": trainer.global_step, **metrics}
        self.validations.append(record)
        if not trainer.is_global_zero:
            return
        self._append("metrics.jsonl", record)
        sample = getattr(pl_module, "last_sample", None)
        if sample is not None:
            self._append("samples.jsonl", {"step": trainer.global_step, "text": sample})
            if (self.run_dir / "sample.live.json").exists():  # the streamed sample, complete (the writer throttles)
                self._write_json("sample.live.json", {"step": trainer.global_step, "text": sample})
        records = getattr(pl_module, "validation_records", None)
        for name, arrays in (records() if records is not None else {}).items():
            self._write_npz(self.run_dir / "records" / name / f"step-{trainer.global_step:06d}.npz", arrays)
        summary = ", ".join(f"{k} {v:.4f}" for k, v in metrics.items())
        print(f"[journal] validation at step {trainer.global_step}: {summary}", flush=True)
        self._write_json("metrics.json", self.summary())
        self._status(trainer, status="running")

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._finish(trainer, pl_module, "stopped" if self.status == "stopped" else "completed")

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        if isinstance(exception, (KeyboardInterrupt, SIGTERMException)):
            # resumable from checkpoints/interrupted.ckpt (perceiver.training.callbacks.InterruptCheckpoint)
            self.reason = "SIGTERM" if isinstance(exception, SIGTERMException) else "KeyboardInterrupt"
            status, error = "stopped", {}
        else:
            text = "".join(traceback.format_exception(type(exception), exception, exception.__traceback__))
            status, error = "failed", run_status.error_fields(text)
        if self._earlier_run:  # failed before training, in a directory of another run: leave its files alone
            return
        if trainer.state.stage == "train" or self.steps:
            self._finish(trainer, pl_module, status, checkpoint=False, **error)
        elif trainer.is_global_zero and self.run_dir.is_dir():
            self.status = status
            self._status(trainer, status=status, reason=self.reason, **error)

    # --- pieces ---------------------------------------------------------------------------------------------------

    def _finish(self, trainer, pl_module, status: str, checkpoint: bool = True, **error: str) -> None:
        self.status = status
        pl_module.sample_callback = None  # later samples (outside this run) write nothing here
        checkpoint = checkpoint and bool(trainer.checkpoint_callbacks)  # none if the user turned checkpointing off
        if checkpoint and self._saved_at != trainer.global_step:  # a collective under DDP: every rank calls it
            trainer.save_checkpoint(str(self.final_checkpoint))
        if not trainer.is_global_zero:
            return
        if self._attention_input is not None:
            self.write_attention(trainer, pl_module)
        self._write_json("metrics.json", self.summary())
        self._save_figures()
        saved = self._saved_at is not None  # where a stopped run resumes (perceiver.runs.paths.resume_checkpoint)
        resume = {"checkpoint": str(self.final_checkpoint.relative_to(self.run_dir))} if saved else {}
        self._status(trainer, status=status, reason=self.reason if status == "stopped" else None, **resume, **error)
        print(f"[journal] {status} at step {trainer.global_step}; metrics: {self.run_dir / 'metrics.json'}", flush=True)

    def _save_figures(self) -> None:
        """``plots/*.png`` (``perceiver.runs.figures``; skipped without Matplotlib, an optional dependency)."""
        task = tasks.get(self._task) if self._task else None
        if task is None:
            return
        try:
            from perceiver.runs.figures import save
        except ImportError:
            return
        try:
            save(self.run_dir, task)
        except Exception as e:  # a figure must never hide how the run ended
            print(f"[journal] could not draw the figures: {type(e).__name__}: {e}", flush=True)

    def summary(self) -> dict[str, Any]:
        """Final and per-step values (the content of ``metrics.json``)."""
        steps, vals = self.steps, self.validations
        speeds = [s["tokens_per_s"] for s in steps[1:]] or [s["tokens_per_s"] for s in steps]
        out: dict[str, Any] = {
            "status": self.status,
            "steps": len(steps),
            "final": {
                "train_loss": steps[-1]["train_loss"] if steps else None,
                **({k: v for k, v in vals[-1].items() if k != "step"} if vals else {}),
            },
            "first_train_loss": steps[0]["train_loss"] if steps else None,
            "tokens_per_s": float(np.mean(speeds)) if speeds else None,
            "wall_s": steps[-1]["wall_s"] if steps else 0.0,
            "train": {k: [s.get(k) for s in steps] for k in train_keys(steps)},
            "validation": vals,
            **best_values(vals, tasks.get(self._task) if self._task else None),
        }
        if steps and "flops" in steps[-1]:  # compute accounting (perceiver.training.compute)
            out.update(tokens=steps[-1]["tokens"], flops=steps[-1]["flops"],
                       mfu=mean_mfu([s.get("mfu") for s in steps]))
        return out

    def _fixed_input(self, trainer: pl.Trainer) -> Optional[dict]:
        """The first validation example as a batch of one (sequences cut to ``attention_len``): the same input for
        every attention map of the run."""
        ds = getattr(trainer.datamodule, "ds_valid", None)
        if ds is None or len(ds) == 0:
            return None
        item = {k: torch.as_tensor(v) for k, v in ds[0].items()}
        n = len(item["input_ids"]) if "input_ids" in item and item["input_ids"].dim() else None
        # a window holds max_seq_len + 1 tokens (inputs and shifted labels): the model sees max_seq_len of them
        cut = min(getattr(trainer.datamodule, "max_seq_len", n) or n, self.attention_len or n) if n else None
        # sequences (aligned with input_ids) are cut to attention_len; everything gets a batch dimension
        return {k: (v[:cut] if n and v.dim() and v.shape[0] == n else v)[None] for k, v in item.items()}

    @torch.no_grad()
    def write_attention(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> Optional[Path]:
        """Save what ``pl_module.attention_maps`` gives for the fixed input (weights (H, I, J), key labels, title)
        as ``attention/step-<k>.npz``. Uses no random numbers, so training is unaffected."""
        probe = getattr(pl_module, "attention_maps", None)
        if probe is None or self._attention_input is None:
            return None
        maps = probe({k: v.to(pl_module.device) for k, v in self._attention_input.items()})
        if maps is None:
            return None
        path = self.run_dir / "attention" / f"step-{trainer.global_step:06d}.npz"
        extra = {k: v for k, v in maps.items() if k not in ("weights", "labels", "title")}  # e.g. the input image
        self._write_npz(path, {"weights": maps["weights"].float().cpu().numpy().astype(np.float16),
                               "labels": np.array(maps.get("labels", []), dtype=object),
                               "title": maps.get("title", ""), "step": trainer.global_step, **extra})
        return path

    def _write_npz(self, path: Path, arrays: dict) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(".tmp-" + path.name)
        arrays = {k: numpy(v) if isinstance(v, torch.Tensor) else v for k, v in arrays.items()}
        with open(tmp, "wb") as f:
            np.savez_compressed(f, **arrays)
        os.replace(tmp, path)  # readers never see a half-written file


def numpy(t: torch.Tensor) -> np.ndarray:
    t = t.detach().cpu()
    return (t.float() if t.dtype == torch.bfloat16 else t).numpy()  # numpy has no bfloat16


def best_values(validations: list[dict], task=None) -> dict[str, dict]:
    """``best`` (the best value of each validation metric, lower or higher by its goal, ``perceiver.tasks.metric_goal``)
    and ``best_step`` (the step where it was reached)."""
    best: dict[str, float] = {}
    step: dict[str, int] = {}
    for record in validations:
        for key, value in record.items():
            if key == "step" or value is None or not np.isfinite(value):
                continue
            higher = tasks.metric_goal(key, task) == "max"
            if key not in best or (value > best[key] if higher else value < best[key]):
                best[key], step[key] = value, record["step"]
    return {"best": best, "best_step": step}


def train_keys(steps: list[dict]) -> list[str]:
    """The keys of the training records, in the order they first appear (step, train_loss, train_<metric>...)."""
    keys: dict[str, None] = {}
    for record in steps:
        keys.update(dict.fromkeys(k for k in record if k != "wall_s"))
    return list(keys)


def parameter_counts(module: torch.nn.Module) -> dict[str, int]:
    """``num_params`` (all) and ``num_trainable_params`` of a module."""
    params = list(module.parameters())
    return {"num_params": sum(p.numel() for p in params),
            "num_trainable_params": sum(p.numel() for p in params if p.requires_grad)}


def env_device(trainer: pl.Trainer) -> str:
    root = trainer.strategy.root_device
    if root.type == "cuda":
        return f"{trainer.world_size} x {torch.cuda.get_device_name(root)} ({trainer.strategy.__class__.__name__})"
    return f"{trainer.world_size} x {root.type} ({platform.processor() or platform.machine()})"


def environment(trainer: Optional[pl.Trainer] = None) -> dict[str, Any]:
    """Package versions, device, seed and git commit of this run."""
    from importlib.metadata import PackageNotFoundError, version

    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            versions[name] = None
    try:
        root = Path(__file__).resolve().parents[2]
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=10)
        git = {"commit": commit.stdout.strip() or None, "dirty": bool(dirty.stdout.strip())}
    except (OSError, subprocess.SubprocessError):
        git = {"commit": None, "dirty": None}
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": versions,
        "device": env_device(trainer) if trainer is not None else None,
        "cuda_devices": torch.cuda.device_count(),
        "precision": str(trainer.precision) if trainer is not None else None,
        "seed": os.environ.get("PL_GLOBAL_SEED"),
        "git": git,
        "argv": sys.argv,
        "torch_threads": torch.get_num_threads(),  # of this (training) process
        "usable_cpus": usable_cpus(),
    }
