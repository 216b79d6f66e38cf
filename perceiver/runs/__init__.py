"""Run directories: what a training run leaves behind (written by ``perceiver.training.journal.RunJournal``), the
registry that reads them into a DataFrame (``perceiver.runs.load(root)``), the figures of one run
(``perceiver.runs.figures``) and comparison plots over runs (``perceiver.runs.compare``)."""


def __getattr__(name):
    # the registry needs pandas and yaml: imported on first use, so ``import perceiver.runs`` stays cheap
    if name in ("load", "swept", "find_runs"):
        from perceiver.runs import registry

        return getattr(registry, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["find_runs", "load", "swept"]
