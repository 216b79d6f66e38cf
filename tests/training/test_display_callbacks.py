"""What the CLI's terminal shows: the progress bar counts steps (not "Epoch 0/-2" for a run bounded by max_steps),
and the model summary shows FLOPs only where they are known (counted by Lightning, or analytic from the config)."""

import logging

import pytorch_lightning as pl

from perceiver.training.callbacks import ModelSummaryCounted, progress_bar


def test_progress_bar_counts_steps_without_a_negative_epoch_total():
    bar = progress_bar()
    # max_epochs=-1: what a run bounded by max_steps has, and what Lightning's rich bar shows as "Epoch 0/-2"
    trainer = pl.Trainer(max_steps=5, max_epochs=-1, callbacks=[bar], logger=False, enable_checkpointing=False)
    bar.setup(trainer, None, "fit")
    assert bar.get_metrics(trainer, None)["step"] == "0/5"
    assert "v_num" not in bar.get_metrics(trainer, None)
    if hasattr(bar, "_get_train_description"):
        assert bar._get_train_description(0).strip() == "Epoch 0"
        bounded = pl.Trainer(max_epochs=3, callbacks=[bar], logger=False, enable_checkpointing=False)
        bar.setup(bounded, None, "fit")
        assert bar._get_train_description(1).strip() == "Epoch 1/2"


def test_model_summary_hides_uncounted_flops(caplog):
    columns = [(" ", ["0"]), ("Name", ["model"]), ("Type", ["Linear"]), ("Params", ["20"]), ("Mode", ["train"]),
               ("FLOPs", ["0"])]
    for flops, shown in ((0, False), (1234, True)):  # 0: no module defined example_input_array, nothing was counted
        caplog.clear()
        with caplog.at_level(logging.INFO):
            ModelSummaryCounted.summarize(columns, 20, 20, 0.0001, {"train": 1, "eval": 0}, flops)
        assert "Total params" in caplog.text and "Linear" in caplog.text
        assert ("FLOPs" in caplog.text) == shown and ("Total Flops" in caplog.text) == shown, caplog.text


def test_model_summary_shows_the_analytic_flops_where_lightning_counted_none(caplog):
    """A module without ``example_input_array`` gets no per-layer count; the summary then shows the training FLOPs of
    one example from the config (what ComputeMonitor logs per example), not zeros."""
    from configs import clm_config
    from perceiver.model.text.clm import LitCausalLanguageModel
    from perceiver.training.compute import format_flops

    lit = LitCausalLanguageModel.create(clm_config())
    trainer = pl.Trainer(max_steps=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False)
    summary = ModelSummaryCounted()
    with caplog.at_level(logging.INFO):
        summary.on_fit_start(trainer, lit)
    expected = lit.config.flops()
    assert expected.forward_backward > 0 and format_flops(expected.forward_backward) in caplog.text
    assert f"Training FLOPs per example ({expected.tokens} tokens" in caplog.text
    header = next(line for line in caplog.text.splitlines() if "| Name" in line)
    assert "Total Flops" not in caplog.text and "FLOPs" not in header  # no column of zeros
