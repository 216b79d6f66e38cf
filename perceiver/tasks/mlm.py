"""Masked language modelling with Perceiver IO (``perceiver.model.text.mlm``)."""

from perceiver.tasks import Metric, RunPreset, Task
from perceiver.tasks.clm import WARMUP_COSINE

BYTE_SAMPLES = ["The capit[MASK]l of Fr[MASK]nce is P[MASK]ris, a b[MASK]autiful c[MASK]ty."]
"""Validation samples of the tiny preset: single masked bytes, as it is trained."""

TASK = Task(
    name="mlm",
    title="masked language model (Perceiver IO)",
    config="perceiver.model.text.mlm:MaskedLanguageModelConfig",
    model="perceiver.model.text.mlm:MaskedLanguageModel",
    lit="perceiver.model.text.mlm.lightning:LitMaskedLanguageModel",
    cli="perceiver.scripts.text.mlm",
    data="perceiver.data.text:WikipediaDataModule",
    data_args={"task": "mlm", "max_seq_len": 2048},
    parse_links={"tokenizer": "tokenizer"},
    links={"vocab_size": ("encoder.vocab_size", "decoder.vocab_size"),
           "max_seq_len": ("encoder.max_seq_len", "decoder.max_seq_len")},
    model_preset="deepmind-201m",
    presets={
        "DeepMind MLM (201M)": RunPreset(
            model="deepmind-201m",
            settings={"max_seq_len": 2048, "batch_size": 8, "precision": "bf16-mixed", "lr": 2e-4},
            extra={"trainer": {"val_check_interval": 500, "limit_val_batches": 20}},
        ),
        "tiny CPU": RunPreset(
            model="demo",
            settings={"max_seq_len": 64, "batch_size": 32, "max_steps": 2000, "lr": 4e-3, "precision": "32-true"},
            extra={"trainer": {"val_check_interval": 250, "limit_val_batches": 10}, "journal": {"attention_every": 250},
                   "lr_scheduler": WARMUP_COSINE,
                   # single masked bytes, and the loss of the given bytes: the latents learn to carry each
                   # position within the budget (whole words and the masked loss alone stay at the unigram)
                   "data": {"mask_words": False},
                   "model": {"unmasked_loss_weight": 1.0, "masked_samples": BYTE_SAMPLES}},
        ),
    },
    metrics=(Metric("masked_accuracy", "masked accuracy", goal="max"),),
    figures=("perceiver.runs.figures:byte_attention",),
    notebook="train_mlm.ipynb",
    examples=(
        "python -m perceiver.scripts.text.mlm fit --data.source=sample --data.max_seq_len=256 "
        "--model.num_latent_channels=128 --model.encoder.num_input_channels=64 --trainer.max_steps=100",
        "python -m perceiver.scripts.text.mlm fit --model.params=deepmind/language-perceiver --data.source=/my/texts",
    ),
)
