"""Symbolic music with Perceiver AR on MIDI events (``perceiver.model.audio.symbolic``)."""

from perceiver.tasks import Metric, RunPreset, Task
from perceiver.tasks.clm import WARMUP_COSINE

TASK = Task(
    name="music",
    title="symbolic music (Perceiver AR on MIDI events)",
    config="perceiver.model.audio.symbolic:SymbolicAudioModelConfig",
    model="perceiver.model.audio.symbolic:SymbolicAudioModel",
    lit="perceiver.model.audio.symbolic.lightning:LitSymbolicAudioModel",
    cli="perceiver.scripts.audio.symbolic",
    data="perceiver.data.audio:MaestroV3DataModule",
    links={"vocab_size": ("vocab_size",), "max_seq_len": ("max_seq_len",)},
    model_preset="maestro-28.5m",
    presets={
        "MAESTRO (28.5M)": RunPreset(
            model="maestro-28.5m",
            settings={"max_seq_len": 2048, "batch_size": 48, "precision": "bf16-mixed", "lr": 2e-4},
            extra={"trainer": {"val_check_interval": 500, "limit_val_batches": 20, "gradient_clip_val": 0.5},
                   "data": {"transpose": 3, "time_stretch": 0.05},
                   "lr_scheduler": {"class_path": "perceiver.training.schedulers.CosineWithWarmupLR",
                                    "init_args": {"warmup_steps": 200}}},
        ),
        "tiny CPU": RunPreset(
            model="tiny",
            settings={"max_seq_len": 512, "batch_size": 16, "max_steps": 300, "lr": 3e-3, "precision": "32-true"},
            # max_time: the documented target is "trained for at most 5 minutes" on a CPU
            extra={"trainer": {"val_check_interval": 100, "limit_val_batches": 8, "gradient_clip_val": 1.0,
                               "max_time": "00:00:05:00"},
                   "model": {"validation_sample_length": 256}, "journal": {"attention_every": 100},
                   "lr_scheduler": WARMUP_COSINE},
        ),
    },
    metrics=(Metric("acc", "next-event accuracy", goal="max"),),
    figures=("perceiver.runs.figures:byte_attention", "perceiver.runs.music:piano_roll",
             "perceiver.runs.music:sample_audio"),
    notebook="train_music.ipynb",
    examples=(
        "python -m perceiver.scripts.audio.symbolic fit --data.source=sample --data.max_seq_len=512 "
        "--model.num_channels=128 --model.num_heads=4 --model.max_latents=128 --trainer.max_steps=300",
        "python -m perceiver.scripts.audio.symbolic fit --data=GiantMidiPianoDataModule --data.source=/path/to/midis "
        "--model.params=/path/to/perceiver-io-0.11-model",
    ),
)
