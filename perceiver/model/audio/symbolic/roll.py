"""Piano-roll figures: one bar per note (time on x, pitch on y, velocity as colour), drawn with Matplotlib's object
API (no pyplot), so it works headless, in threads and under papermill."""

from __future__ import annotations

from typing import Optional, Sequence

from matplotlib.figure import Figure

from perceiver.model.audio.symbolic.events import Note

NOTE_NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")


def note_name(pitch: int) -> str:
    """``C4`` for MIDI pitch 60."""
    return f"{NOTE_NAMES[pitch % 12]}{pitch // 12 - 1}"


def piano_roll(notes: Sequence[Note], title: str = "", prompt_end: Optional[float] = None,
               figsize: tuple[float, float] = (12, 3.6)) -> Figure:
    """A piano roll of ``notes``; with ``prompt_end`` (seconds), the prompt is drawn grey and a line marks where
    the generated continuation begins."""
    from matplotlib import colormaps

    fig = Figure(figsize=figsize, dpi=80, layout="constrained")
    ax = fig.subplots()
    cmap = colormaps["viridis"]
    for n in notes:
        prompt = prompt_end is not None and n.start < prompt_end
        color = "0.6" if prompt else cmap(n.velocity / 127)
        ax.broken_barh([(n.start, n.end - n.start)], (n.pitch - 0.4, 0.8), facecolors=color, edgecolor="none")
    if notes:
        low, high = min(n.pitch for n in notes), max(n.pitch for n in notes)
        ax.set_ylim(low - 2, high + 2)
        ax.set_xlim(0, max(n.end for n in notes))
        ticks = [p for p in range(low - 1, high + 2) if p % 12 == 0] or [low]
        ax.set_yticks(ticks, [note_name(p) for p in ticks])
    if prompt_end is not None:
        ax.axvline(prompt_end, color="tab:red", lw=1, ls="--", label="prompt | generated")
        ax.legend(fontsize=8, loc="upper right")
    ax.set_xlabel("time (s)", fontsize=8)
    ax.set_ylabel("pitch", fontsize=8)
    ax.tick_params(labelsize=8)
    ax.grid(alpha=0.3)
    ax.set_title(title or f"{len(notes)} notes", fontsize=10)
    return fig
