"""Causal language modelling with Perceiver AR (``perceiver.model.text.clm``)."""

from perceiver.tasks import Metric, RunPreset, Task

WARMUP_COSINE = {"class_path": "perceiver.training.schedulers.CosineWithWarmupLR", "init_args": {"warmup_steps": 10}}

TASK = Task(
    name="clm",
    title="causal language model (Perceiver AR)",
    config="perceiver.model.text.clm:CausalLanguageModelConfig",
    model="perceiver.model.text.clm:CausalLanguageModel",
    lit="perceiver.model.text.clm.lightning:LitCausalLanguageModel",
    cli="perceiver.scripts.text.clm",
    data="perceiver.data.text:WikiTextDataModule",
    data_args={"task": "clm", "padding_side": "left"},
    parse_links={"tokenizer": "tokenizer"},
    links={"vocab_size": ("vocab_size",), "max_seq_len": ("max_seq_len",)},
    model_preset="clm-30.6m",
    presets={
        "Perceiver AR (30.6M)": RunPreset(
            model="clm-30.6m",
            settings={"max_seq_len": 4096, "batch_size": 16, "precision": "bf16-mixed", "lr": 2e-4},
            extra={"trainer": {"val_check_interval": 500, "limit_val_batches": 20}},
        ),
        "tiny CPU": RunPreset(  # the demo: chosen on the validation split, docs/demo-tuning.md
            model="demo",
            settings={"max_seq_len": 128, "batch_size": 8, "max_steps": 3400, "lr": 4e-3, "precision": "32-true"},
            extra={"trainer": {"val_check_interval": 200, "limit_val_batches": 25},
                   "model": {"validation_sample_length": 64},
                   "journal": {"attention_every": 250, "progress_every": 100},
                   "optimizer": {"class_path": "torch.optim.AdamW",
                                 "init_args": {"betas": [0.9, 0.95], "weight_decay": 0.1}},
                   "lr_scheduler": {**WARMUP_COSINE, "init_args": {"warmup_steps": 100}}},
        ),
    },
    metrics=(Metric("bpb", "bits per byte"),),
    figures=("perceiver.runs.figures:byte_attention",),
    notebook="train_clm.ipynb",
    examples=(
        "python -m perceiver.scripts.text.clm fit --data.source=sample --data.max_seq_len=256 "
        "--model.num_channels=128 --model.max_latents=64 --trainer.max_steps=100",
        "python -m perceiver.scripts.text.clm fit --config runs/clm/config.yaml --trainer.max_steps=1000",
    ),
)
