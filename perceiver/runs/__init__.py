"""Run directories: where runs live and the rules that keep them apart (``paths``), what a run is doing
(``status``), the figures drawn from a run directory (``figures``), the registry that reads many run directories
into a DataFrame (``perceiver.runs.load(root)``) and comparison plots over runs (``compare``). The files themselves
are written by ``perceiver.training.journal.RunJournal``, whose docstring lists them."""


def __getattr__(name):
    # the registry needs pandas and yaml: imported on first use, so ``import perceiver.runs`` stays cheap
    if name in ("load", "swept", "find_runs"):
        from perceiver.runs import registry

        return getattr(registry, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["find_runs", "load", "swept"]
