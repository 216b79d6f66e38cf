"""Image classification with Perceiver IO (``perceiver.model.vision.image_classifier``)."""

from perceiver.tasks import Metric, RunPreset, Task

WARMUP_COSINE = {"class_path": "perceiver.training.schedulers.CosineWithWarmupLR", "init_args": {"warmup_steps": 50}}

TASK = Task(
    name="image_classifier",
    title="image classifier (Perceiver IO)",
    config="perceiver.model.vision.image_classifier:ImageClassifierConfig",
    model="perceiver.model.vision.image_classifier:ImageClassifier",
    lit="perceiver.model.vision.image_classifier.lightning:LitImageClassifier",
    cli="perceiver.scripts.vision.image_classifier",
    data="perceiver.data.vision:MNISTDataModule",
    links={"image_shape": ("encoder.image_shape",), "num_classes": ("decoder.num_classes",)},
    model_preset="mnist-907k",
    presets={
        "MNIST classifier (907K)": RunPreset(
            model="mnist-907k",
            settings={"batch_size": 128, "lr": 1e-3},
            extra={"trainer": {"val_check_interval": 500},
                   "lr_scheduler": {"class_path": "perceiver.training.schedulers.ConstantWithWarmupLR",
                                    "init_args": {"warmup_steps": 500}}},
        ),
        "tiny CPU": RunPreset(
            model="tiny",
            settings={"batch_size": 64, "max_steps": 800, "lr": 2e-3, "precision": "32-true"},
            extra={"trainer": {"val_check_interval": 100}, "journal": {"attention_every": 100},
                   "lr_scheduler": WARMUP_COSINE},
        ),
    },
    metrics=(Metric("accuracy", "accuracy", goal="max"),),
    figures=("perceiver.runs.image_figures:pixel_attention", "perceiver.runs.image_figures:misclassified"),
    notebook="train_image_classifier.ipynb",
    examples=(
        "python -m perceiver.scripts.vision.image_classifier fit --data.source=sample --model.num_latents=16 "
        "--model.num_latent_channels=64 --model.encoder.num_frequency_bands=8 "
        "--model.encoder.num_self_attention_heads=4 "
        "--model.encoder.num_self_attention_blocks=2 --model.encoder.num_self_attention_layers_per_block=2 "
        "--model.encoder.first_self_attention_block_shared=true --model.decoder.num_output_query_channels=64 "
        "--optimizer=AdamW --optimizer.lr=2e-3 --lr_scheduler=CosineWithWarmupLR --lr_scheduler.warmup_steps=50 "
        "--trainer.max_steps=800",
        "python -m perceiver.scripts.vision.image_classifier test --data.source=sample "
        "--config runs/image_classifier/config.yaml --ckpt_path runs/image_classifier/checkpoints/final.ckpt",
    ),
)
