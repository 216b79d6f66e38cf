"""A non-finite loss stops training with a message naming the step; no step is taken on it."""

from __future__ import annotations

import pytest
from pytorch_lightning.callbacks import ModelCheckpoint

from perceiver.model.text.clm import LitCausalLanguageModel
from perceiver.training.callbacks import InterruptCheckpoint
from perceiver.training.module import NonFiniteLossError
from training_helpers import LossRecorder, clm_data, tiny_clm_config, tiny_trainer


class NaNAtStep(LitCausalLanguageModel):
    nan_at = 3  # 1-based training step whose loss is NaN

    def loss_and_metrics(self, batch):
        loss, metrics = super().loss_and_metrics(batch)
        if self.training and self.global_step + 1 == self.nan_at:
            loss = loss * float("nan")
        return loss, metrics


@pytest.mark.parametrize("value", ["nan", "inf"])
def test_non_finite_loss_stops_training_and_names_the_step(value, dataset_dir, tmp_path):
    model = NaNAtStep.create(tiny_clm_config())
    if value == "inf":
        model.loss_and_metrics = lambda batch, f=model.loss_and_metrics: (
            (f(batch)[0] * 0 + float("inf"), {}) if model.training and model.global_step + 1 == 3 else f(batch)
        )
    losses = LossRecorder()
    callbacks = [losses, InterruptCheckpoint(), ModelCheckpoint(dirpath=str(tmp_path / "ckpt"), every_n_train_steps=1)]
    trainer = tiny_trainer(tmp_path, callbacks, max_steps=10, num_sanity_val_steps=0, limit_val_batches=0)
    with pytest.raises(NonFiniteLossError, match=r"at step 3 \(global_step=2"):
        trainer.fit(model, clm_data(dataset_dir))
    assert trainer.global_step == 2  # no optimizer step on the non-finite loss
    assert sorted(losses.losses) == [1, 2]
    assert not (tmp_path / "ckpt" / "interrupted.ckpt").exists()  # the last regular checkpoint is the one to use
