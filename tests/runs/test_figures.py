"""Figures of a run directory: the panels of a task's metrics, legends that match what is drawn, readable labels."""

import json
from types import SimpleNamespace

import numpy as np

from perceiver.runs.figures import attention_plot, curves, ordinal
from perceiver.tasks import Metric


def test_curves_legend_entries_all_have_something_drawn(tmp_path):
    task = SimpleNamespace(metrics=(Metric("masked_accuracy", "masked accuracy", goal="max"),))
    records = [{"step": 1, "train_loss": 5.0, "train_masked_accuracy": 0.1, "lr": 1e-3, "tokens_per_s": 10.0},
               {"step": 1, "val_loss": 4.9, "val_masked_accuracy": 0.2}]  # one training step so far
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    fig = curves(tmp_path, task)
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == ["loss", "masked accuracy", "learning rate", "throughput (tokens/s)"]
    for ax in fig.axes:
        legend = ax.get_legend()
        labelled = [line for line in ax.get_lines() if not line.get_label().startswith("_")]
        if legend is not None:
            assert [t.get_text() for t in legend.get_texts()] == [line.get_label() for line in labelled]
        for line in labelled:  # visible: a marker, or a line through at least two points
            assert line.get_marker() not in (None, "None", "") or len(line.get_xdata()) > 1, ax.get_title()


def test_attention_axis_label_reads_well():
    assert [ordinal(n) for n in (1, 2, 3, 4, 11, 12, 13, 21, 22, 102, 111)] == [
        "1st", "2nd", "3rd", "4th", "11th", "12th", "13th", "21st", "22nd", "102nd", "111th"]
    fig = attention_plot(np.random.rand(2, 4, 128), [chr(65 + i % 26) for i in range(128)], "cross-attention")
    assert fig.axes[0].get_xlabel() == "key (every 2nd of 128 labelled)"
