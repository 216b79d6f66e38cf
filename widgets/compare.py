"""Choosing runs to compare in JupyterLab: the run registry's table of a directory of runs, a picker of the runs to
overlay, the metric and the x axis (steps, tokens or FLOPs).

    from widgets.compare import RunPicker
    RunPicker("runs/sweep-lr")                 # every run below runs/sweep-lr, all of them overlaid at first
    RunPicker("runs", curve="val_bpb", x="flops")

The figures are ``perceiver.runs.compare``'s, drawn on the Agg canvas into an image widget.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Optional

import ipywidgets as w

import perceiver.runs
from perceiver.runs import compare
from perceiver.runs.figures import png


def logged_metrics(runs) -> list[str]:
    """The metrics the runs logged (``val_loss``, ``train_bpb``, ...): validation metrics first."""
    names = [c.removeprefix("final.") for c in runs.columns if c.startswith("final.")] if len(runs) else []
    return sorted(names, key=lambda n: (not n.startswith("val_"), n))


TABLE_STYLE = ("<style>.perceiver-runs td, .perceiver-runs th {padding: 2px 10px; text-align: right}"
               ".perceiver-runs td:first-child {text-align: left}</style>")


def table_html(table) -> str:
    """A registry table as HTML (numbers to 4 significant digits, no path column)."""
    shown = table.drop(columns=[c for c in ("path",) if c in table]).fillna("")
    return TABLE_STYLE + shown.to_html(index=False, float_format=lambda x: f"{x:.4g}", border=0,
                                      classes="perceiver-runs")


class RunPicker:
    """The runs below ``root`` (``perceiver.runs.load``): a table ranked by ``metric``, and the chosen runs' curves of
    ``curve`` against ``x`` (``step``, ``tokens`` or ``flops``)."""

    def __init__(self, root: str | Path = "runs", metric: str = "best.val_loss", curve: str = "val_loss",
                 x: str = "step"):
        self.root, self.metric = root, metric
        self.select = w.SelectMultiple(description="runs", layout=w.Layout(width="640px"))
        self.curve = w.Dropdown(description="metric")
        self.x = w.ToggleButtons(options=["step", "tokens", "flops"], value=x, description="against")
        self.reload_button = w.Button(description="Reload", icon="refresh", tooltip="read the run directories again")
        self.image = w.Image(format="png", layout=w.Layout(max_width="100%"))
        self.table = w.HTML()
        self.runs = None
        self._quiet = False
        self.reload(curve)
        self.select.observe(lambda _: self.draw(), names="value")
        self.curve.observe(lambda _: self.draw(), names="value")
        self.x.observe(lambda _: self.draw(), names="value")
        self.reload_button.on_click(lambda _: self.reload())

    def reload(self, curve: Optional[str] = None) -> None:
        """Read the run directories again (new runs appear, finished ones update); the choice is kept."""
        self.runs = perceiver.runs.load(self.root)
        table = compare.table(self.runs, self.metric) if len(self.runs) else self.runs
        params = perceiver.runs.swept(self.runs) if len(self.runs) else []
        chosen = set(self.select.value)
        options = []
        for _, row in table.iterrows():
            full = self.runs.loc[self.runs["run"] == row["run"]].iloc[0]
            value = row.get(self.metric)
            score = f" · {self.metric} {value:.4g}" if isinstance(value, float) and value == value else ""
            options.append((f"{compare.label(full, params)} — {row['status']}{score} ({row['run']})", full["path"]))
        metrics = logged_metrics(self.runs)
        wanted = curve or self.curve.value
        self._quiet = True  # one drawing at the end, not one per changed widget
        try:
            self.select.options = options
            self.select.rows = min(max(len(options), 2), 12)
            self.select.value = tuple(p for _, p in options if not chosen or p in chosen)
            self.curve.options = metrics
            self.curve.value = wanted if wanted in metrics else (metrics[0] if metrics else None)
        finally:
            self._quiet = False
        self.table.value = table_html(table) if len(table) else f"<i>no runs in {html.escape(str(self.root))}</i>"
        self.draw()

    def chosen(self):
        """The registry rows of the chosen runs."""
        return self.runs[self.runs["path"].isin(self.select.value)] if self.runs is not None and len(self.runs) \
            else self.runs

    def figure(self):
        return compare.overlay(self.chosen(), self.curve.value, self.x.value)

    def draw(self) -> None:
        if self._quiet or self.runs is None or not len(self.runs) or not self.curve.value:
            return
        self.image.value = png(self.figure())

    @property
    def widget(self) -> w.Widget:
        return w.VBox([w.HBox([self.curve, self.reload_button]), self.x, self.select, self.image, self.table])

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)
