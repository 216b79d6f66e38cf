"""RunJournal in-process: the run directory it writes, determinism of its losses, and Stop via the STOP file."""

import json
from importlib.metadata import version

import pytorch_lightning as pl
import numpy as np
import torch

from configs import clm_config
from perceiver.data.text import WikiTextDataModule
from perceiver.model.text.clm import LitCausalLanguageModel
from perceiver.training.journal import RunJournal


class StopAt(pl.Callback):
    def __init__(self, journal: RunJournal, step: int):
        self.journal, self.step = journal, step

    def on_train_batch_end(self, trainer, *args):
        if trainer.global_step == self.step:
            self.journal.stop_path.touch()


def train(run_dir, max_steps=6, stop_at=None, seed=0, progress_every=1):
    pl.seed_everything(seed)
    dm = WikiTextDataModule(source="sample", max_seq_len=64, task="clm", batch_size=4, num_workers=0,
                            dataset_dir=str(run_dir.parent / "data"))
    model = LitCausalLanguageModel.create(clm_config(num_self_attention_layers=2), validation_sample_length=8)
    journal = RunJournal(str(run_dir), attention_every=2, progress_every=progress_every)
    callbacks = [journal] + ([StopAt(journal, stop_at)] if stop_at else [])
    trainer = pl.Trainer(accelerator="cpu", devices=1, max_steps=max_steps, val_check_interval=3,
                         check_val_every_n_epoch=None, limit_val_batches=2, logger=False,
                         enable_progress_bar=False, enable_model_summary=False, callbacks=callbacks,
                         default_root_dir=str(run_dir))
    trainer.fit(model, dm)
    return json.loads((run_dir / "metrics.json").read_text())


def test_run_directory_and_determinism(tmp_path, capsys):
    torch.set_num_threads(1)
    m1 = train(tmp_path / "a")
    assert [line.split("  ")[0] for line in capsys.readouterr().out.splitlines() if "[journal] step" in line] == [
        f"[journal] step {i}/6" for i in range(1, 7)]
    m2 = train(tmp_path / "b", progress_every=4)  # and at the last step, whatever progress_every is
    assert [line.split("  ")[0] for line in capsys.readouterr().out.splitlines() if "[journal] step" in line] == [
        "[journal] step 4/6", "[journal] step 6/6"]
    assert m1["status"] == "completed" and m1["steps"] == 6
    assert m1["train"]["train_loss"] == m2["train"]["train_loss"]
    assert m1["final"]["val_loss"] == m2["final"]["val_loss"]
    assert "val_bpb" in m1["final"] and m1["tokens_per_s"] > 0 and m1["wall_s"] > 0
    run = tmp_path / "a"
    for name in ("env.json", "metrics.jsonl", "samples.jsonl", "checkpoints/final.ckpt"):
        assert (run / name).is_file(), name
    maps = sorted((run / "attention").glob("step-*.npz"))
    assert [p.name for p in maps][:3] == ["step-000002.npz", "step-000004.npz", "step-000006.npz"]
    att = np.load(maps[-1], allow_pickle=True)
    assert att["weights"].shape == (2, 16, 64)  # (H, latents, prefix + latents)
    assert len(att["labels"]) == 64
    env = json.loads((run / "env.json").read_text())
    assert env["packages"]["torch"] == version("torch") and torch.__version__.startswith(env["packages"]["torch"])
    assert env["task"] == "clm" and env["torch_threads"] == torch.get_num_threads()
    # the last sample was streamed into sample.live.json while it was generated
    live = json.loads((run / "sample.live.json").read_text())
    final = [json.loads(line) for line in (run / "samples.jsonl").read_text().splitlines()][-1]
    assert live["step"] == final["step"] and final["text"].startswith(live["text"]) and len(live["text"]) > 5


def test_dashboard_shows_the_sample_being_generated(tmp_path):
    from perceiver import tasks
    from widgets.dashboard import Dashboard

    (tmp_path / "samples.jsonl").write_text(json.dumps({"step": 3, "text": "A man who"}) + "\n")
    (tmp_path / "sample.live.json").write_text(json.dumps({"step": 6, "text": "A man wa"}))
    dashboard = Dashboard(tmp_path, tasks.get("clm"))
    assert "sample at step 6 (generating)" in dashboard.sample.value and "A man wa<" in dashboard.sample.value
    (tmp_path / "samples.jsonl").write_text(json.dumps({"step": 6, "text": "A man was here"}) + "\n")
    dashboard.refresh()
    assert "sample at step 6</b>" in dashboard.sample.value and "A man was here<" in dashboard.sample.value


def test_stop_file_ends_run_with_checkpoint(tmp_path):
    m = train(tmp_path / "s", max_steps=50, stop_at=2)
    assert m["status"] == "stopped" and m["steps"] <= 3  # the journal sees the file at the next step
    assert (tmp_path / "s" / "checkpoints" / "final.ckpt").is_file()
