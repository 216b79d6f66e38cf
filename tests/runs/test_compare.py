"""Comparison plots over registry rows: what each draws, read back from the figure."""

import numpy as np
from run_dirs import write_run

import perceiver.runs
from perceiver.runs import compare


def sweep(tmp_path):
    for lr in (1e-3, 3e-3):
        for channels in (32, 64):
            final = 5.0 - 100 * lr - channels / 100
            write_run(tmp_path / f"lr={lr}_c={channels}", lr=lr, channels=channels, val_losses=(5.5, final))
    return perceiver.runs.load(tmp_path)


def test_table_ranks_the_runs_by_the_metric(tmp_path):
    table = compare.table(sweep(tmp_path))
    assert list(table["best.val_loss"]) == sorted(table["best.val_loss"])
    assert list(table.columns[:4]) == ["run", "status", "model.num_channels", "optimizer.lr"]
    best = table.iloc[0]
    assert (best["optimizer.lr"], best["model.num_channels"]) == (3e-3, 64)


def test_overlay_draws_one_labelled_curve_per_run_against_steps_tokens_or_flops(tmp_path):
    runs = sweep(tmp_path)
    fig = compare.overlay(runs, "train_loss", x="tokens")
    lines = fig.axes[0].get_lines()
    assert len(lines) == 4 and {line.get_label() for line in lines} == {
        f"num_channels={c}, lr={lr:g}" for lr in (1e-3, 3e-3) for c in (32, 64)}
    assert list(lines[0].get_xdata()) == [256, 512, 768, 1024]
    assert compare.overlay(runs, "val_loss", x="flops").axes[0].get_xscale() == "log"


def test_metric_against_a_parameter_draws_one_line_per_value_of_the_other(tmp_path):
    fig = compare.metric_vs_param(sweep(tmp_path), "optimizer.lr")
    lines = fig.axes[0].get_lines()
    assert sorted(line.get_label() for line in lines) == ["num_channels=32", "num_channels=64"]
    for line in lines:
        assert list(line.get_xdata()) == [1e-3, 3e-3]
        channels = int(line.get_label().split("=")[1])
        assert np.allclose(line.get_ydata(), [5.0 - 100 * lr - channels / 100 for lr in (1e-3, 3e-3)])


def test_frontier_is_the_best_value_reached_for_each_amount_of_compute(tmp_path):
    runs = sweep(tmp_path)
    fig = compare.frontier(runs, "train_loss")
    envelope = next(line for line in fig.axes[0].get_lines() if line.get_label() == "frontier")
    xs, ys = envelope.get_xdata(), envelope.get_ydata()
    assert list(xs) == sorted(xs) and all(b < a for a, b in zip(ys, ys[1:]))  # falls as compute grows
    points = [(x, y) for _, row in runs.iterrows() for x, y in zip(*compare.series(row["path"], "train_loss", "flops"))]
    for x, y in points:  # nothing lies below the frontier at or beyond its compute
        reached = [fy for fx, fy in zip(xs, ys) if fx <= x]
        assert reached and min(reached) <= y


def test_parallel_coordinates_and_the_summary_figures(tmp_path):
    runs = sweep(tmp_path)
    fig = compare.parallel_coordinates(runs)
    assert len(fig.axes[0].get_lines()) == 4
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == [
        "model.\nnum_channels", "optimizer.\nlr", "best.\nval_loss"]
    figures = compare.figures(runs)
    assert list(figures) == ["summary", "best.val_loss-vs-model.num_channels", "best.val_loss-vs-optimizer.lr",
                             "parallel-coordinates"]
    assert [ax.get_title() for ax in figures["summary"].axes] == [
        "val_loss against step", "val_loss against compute", "best.val_loss against optimizer.lr"]
    saved = compare.save(figures, tmp_path / "plots")
    assert all(p.read_bytes()[:4] == b"\x89PNG" for p in saved.values())
