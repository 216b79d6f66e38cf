"""The workbench shows the analytic FLOPs per token and per step and a step-time estimate beside the parameter count,
and keeps them current as fields change."""

import html

import pytest

from perceiver.training.compute import format_flops
from widgets import Workbench, spec


@pytest.mark.parametrize("task", ["clm", "mlm"])
def test_form_shows_flops_per_token_and_step_and_follows_edits(task):
    wb = Workbench(task, preset="tiny CPU", run_dir=f"runs/test-compute-{task}")
    settings = wb.settings()
    config = wb.config()
    estimate = spec.compute_estimate(config, settings)
    per_example = config.flops()
    assert estimate["per_token"] == per_example.per_token
    assert estimate["per_step"] == per_example.step(settings["batch_size"])
    assert estimate["step_s"] == estimate["per_step"] / estimate["peak"].flops_per_s
    assert estimate["peak"].source == "measured" and estimate["peak"].dtype == "float32"  # tiny CPU: 32-true
    label = html.unescape(wb.params_label.value)
    assert f"{format_flops(per_example.per_token)}/token" in label
    assert f"{format_flops(estimate['per_step'])}/step" in label and "/step at " in label

    field = "num_channels" if task == "clm" else "num_latent_channels"
    wb.model_form.set_values({field: 2 * wb.model_form.values()[field]})
    wider = wb.config().flops()
    assert wider.per_token > per_example.per_token
    assert f"{format_flops(wider.per_token)}/token" in html.unescape(wb.params_label.value)
    wb.settings_form.set_values({"batch_size": 3})
    assert f"{format_flops(wider.step(3))}/step" in html.unescape(wb.params_label.value)
