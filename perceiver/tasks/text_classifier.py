"""Text classification with Perceiver IO (``perceiver.model.text.classifier``): IMDb sentiment, fine-tuned from a
pretrained masked language model's encoder, or trained from scratch."""

from perceiver.tasks import Metric, RunPreset, Task
from perceiver.tasks.clm import WARMUP_COSINE

TASK = Task(
    name="text_classifier",
    title="text classifier (Perceiver IO)",
    config="perceiver.model.text.classifier:TextClassifierConfig",
    model="perceiver.model.text.classifier:TextClassifier",
    lit="perceiver.model.text.classifier.lightning:LitTextClassifier",
    cli="perceiver.scripts.text.classifier",
    data="perceiver.data.text:ImdbDataModule",
    data_args={"task": "clf", "max_seq_len": 2048},
    parse_links={"tokenizer": "tokenizer"},
    links={"vocab_size": ("encoder.vocab_size",), "max_seq_len": ("encoder.max_seq_len",),
           "num_classes": ("decoder.num_classes",), "class_names": ("class_names",)},
    model_preset="deepmind-encoder",
    presets={
        "DeepMind encoder + classifier (200.6M)": RunPreset(
            model="deepmind-encoder",
            settings={"max_seq_len": 2048, "batch_size": 64, "precision": "bf16-mixed", "lr": 1e-3},
            extra={"trainer": {"val_check_interval": 500, "limit_val_batches": 20}},
        ),
        "tiny CPU": RunPreset(
            model="tiny",
            settings={"max_seq_len": 256, "batch_size": 16, "max_steps": 300, "lr": 1e-3, "precision": "32-true"},
            extra={"trainer": {"val_check_interval": 30, "gradient_clip_val": 1.0}, "journal": {"attention_every": 30},
                   "lr_scheduler": WARMUP_COSINE},
        ),
    },
    metrics=(Metric("accuracy", "accuracy", goal="max"),),
    figures=("perceiver.runs.figures:byte_attention", "perceiver.runs.classification:confusion_matrix"),
    notebook="train_text_classifier.ipynb",
    examples=(
        "python -m perceiver.scripts.text.classifier fit --data.source=sample --data.max_seq_len=256 "
        "--model.num_latents=32 --model.num_latent_channels=128 --model.encoder.num_input_channels=64 "
        "--model.encoder.num_cross_attention_heads=4 --model.encoder.num_self_attention_heads=4 "
        "--model.encoder.num_cross_attention_qk_channels=null --model.encoder.num_cross_attention_v_channels=null "
        "--model.encoder.num_self_attention_qk_channels=null --model.encoder.num_self_attention_v_channels=null "
        "--model.encoder.num_self_attention_layers_per_block=3 --model.encoder.dropout=0.0 "
        "--model.decoder.num_output_query_channels=128 --model.decoder.dropout=0.0 --trainer.max_steps=300",
        "python -m perceiver.scripts.text.classifier fit --model.encoder.params=deepmind/language-perceiver "
        "--model.encoder.freeze=true --model.encoder.dropout=0.0 --data.source=hub --data.add_special_tokens=true",
    ),
)
