"""RunJournal: a callback that writes everything a run leaves behind into one run directory, while it trains.

The workbench dashboard polls that directory, so training can run anywhere (a subprocess, DDP ranks, another
machine with a shared disk) and the notebook only reads files. Layout of ``run_dir``::

    env.json                  task, package versions, device, torch threads, seed, git commit, command line
    config.resolved.yaml      the configuration the CLI resolved (copied from the logger's directory)
    metrics.jsonl             one JSON line per logged step: train_loss, lr, tokens_per_s, wall_s, ...
                              and one per validation: val_loss, val_bpb, ...
    metrics.json              summary (final and per-step values), rewritten at every validation and at the end
    attention/step-<k>.npz    attention maps (H, I, J) of a fixed validation input, key labels and a title, if the
                              Lightning module provides them (``attention_maps``)
    samples.jsonl             validation samples (generated text or filled masks) per step
    checkpoints/final.ckpt    checkpoint at the end of training, also after Stop or Ctrl-C
    STOP                      created by the workbench's Stop button: training ends after the current step

Losses in ``metrics.json`` depend only on the seed and the data, so two CPU runs with the same configuration give
identical values; ``tokens_per_s`` and ``wall_s`` are measurements.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Optional

import pytorch_lightning as pl
import numpy as np
import torch
from pytorch_lightning.callbacks import Callback

from perceiver.tasks import task_of
from perceiver.training.threads import usable_cpus

PACKAGES = ["perceiver", "torch", "pytorch-lightning", "transformers", "datasets", "numpy", "jsonargparse", "ipywidgets"]


class RunJournal(Callback):
    """Writes metrics, attention maps, samples, the environment and a final checkpoint to ``run_dir``.

    Args:
        run_dir: the run directory.
        attention_every: record attention maps every this many training steps (0: only at the end).
        progress_every: print a one-line progress report every this many steps (0: never).
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
        self.status = "running"
        self._t0 = self._t_last = 0.0
        self._attention_input: Optional[dict] = None
        self._created = time.time()

    # --- files ------------------------------------------------------------------------------------------------------

    @property
    def stop_path(self) -> Path:
        return self.run_dir / "STOP"

    def _append(self, name: str, record: dict) -> None:
        with open(self.run_dir / name, "a") as f:
            f.write(json.dumps(record) + "\n")

    def _write_json(self, name: str, obj: Any) -> None:
        tmp = self.run_dir / f".{name}.tmp"
        tmp.write_text(json.dumps(obj, indent=1))
        os.replace(tmp, self.run_dir / name)  # readers never see a half-written file

    # --- Lightning hooks --------------------------------------------------------------------------------------------

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if stage == "fit" and trainer.is_global_zero:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            for name in ("metrics.jsonl", "samples.jsonl", "metrics.json"):
                (self.run_dir / name).unlink(missing_ok=True)
            shutil.rmtree(self.run_dir / "attention", ignore_errors=True)
            if self.stop_path.exists() and self.stop_path.stat().st_mtime < self._created:
                self.stop_path.unlink()  # left over from an earlier run; a Stop during startup is kept

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._t0 = self._t_last = time.perf_counter()
        self.steps, self.validations, self.status = [], [], "running"
        if not trainer.is_global_zero:
            return
        task = task_of(pl_module)
        self._write_json("env.json", {"task": task.name if task else None, **environment(trainer)})
        saved = Path(trainer.log_dir or "", "config.yaml")
        if saved.is_file():
            shutil.copyfile(saved, self.run_dir / "config.resolved.yaml")
        self._attention_input = self._fixed_input(trainer)
        n = sum(p.numel() for p in pl_module.parameters())
        print(f"[journal] {type(getattr(pl_module, 'model', pl_module)).__name__} with {n / 1e6:.2f}M parameters on "
              f"{env_device(trainer)}; run directory {self.run_dir}", flush=True)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        now = time.perf_counter()
        step = trainer.global_step
        tokens = batch["input_ids"].numel() * trainer.world_size
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        record = {
            "step": step,
            "train_loss": float(loss.detach()),
            "lr": trainer.optimizers[0].param_groups[0]["lr"] if trainer.optimizers else None,
            "tokens_per_s": tokens / max(now - self._t_last, 1e-9),
            "wall_s": now - self._t0,
        }
        if "train_bpb" in trainer.callback_metrics:
            record["train_bpb"] = float(trainer.callback_metrics["train_bpb"])
        self._t_last = now
        self.steps.append(record)
        if trainer.is_global_zero:
            self._append("metrics.jsonl", record)
            if self.progress_every and step % self.progress_every == 0:
                print(
                    f"[journal] step {step}/{trainer.max_steps}  loss {record['train_loss']:.4f}  "
                    f"{record['tokens_per_s']:.0f} tokens/s  {record['wall_s']:.1f}s",
                    flush=True,
                )
            if self.attention_every and step % self.attention_every == 0:
                self.write_attention(trainer, pl_module)
        if self.stop_file_check:
            stop = trainer.strategy.reduce_boolean_decision(self.stop_path.exists(), all=False)
            if stop and not trainer.should_stop:
                trainer.should_stop = True
                self.status = "stopped"
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
        summary = ", ".join(f"{k} {v:.4f}" for k, v in metrics.items())
        print(f"[journal] validation at step {trainer.global_step}: {summary}", flush=True)
        self._write_json("metrics.json", self.summary())

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._finish(trainer, pl_module, "stopped" if self.status == "stopped" else "completed")

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        if trainer.state.stage == "train" or self.steps:
            self._finish(trainer, pl_module, f"interrupted ({type(exception).__name__})", checkpoint=False)

    # --- pieces ---------------------------------------------------------------------------------------------------

    def _finish(self, trainer, pl_module, status: str, checkpoint: bool = True) -> None:
        self.status = status
        if checkpoint:  # a collective under DDP: every rank calls it
            trainer.save_checkpoint(str(self.run_dir / "checkpoints" / "final.ckpt"))
        if not trainer.is_global_zero:
            return
        if self._attention_input is not None:
            self.write_attention(trainer, pl_module)
        self._write_json("metrics.json", self.summary())
        print(f"[journal] {status} at step {trainer.global_step}; metrics: {self.run_dir / 'metrics.json'}", flush=True)

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
            "train": {k: [s.get(k) for s in steps] for k in ("step", "train_loss", "train_bpb", "lr", "tokens_per_s")},
            "validation": vals,
        }
        if not any(v is not None for v in out["train"]["train_bpb"]):
            del out["train"]["train_bpb"]
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
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(".tmp-" + path.name)
        with open(tmp, "wb") as f:
            np.savez_compressed(f, weights=maps["weights"].float().cpu().numpy().astype(np.float16),
                                labels=np.array(maps.get("labels", []), dtype=object), title=maps.get("title", ""),
                                step=trainer.global_step)
        os.replace(tmp, path)
        return path


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
