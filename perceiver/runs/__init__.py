"""Run directories: where runs live and the rules that keep them apart (``paths``), what a run is doing
(``status``), reading its files (``records``), the figures drawn from a run directory (``figures``), the registry that
reads many run directories into a DataFrame (``perceiver.runs.load(root)``, ``swept``, ``read_run``) and comparison
plots over runs (``compare``). The files themselves are written by ``perceiver.training.journal.RunJournal``, whose
docstring lists them.

    import perceiver.runs
    runs = perceiver.runs.load("runs/sweep-lr")     # a pandas DataFrame, one row per run
    perceiver.runs.swept(runs)                      # the configuration columns that differ between them
"""

REGISTRY = ("find_runs", "load", "read_run", "swept")


def __getattr__(name):
    # the registry needs pandas: imported on first use, so ``import perceiver.runs`` stays cheap
    if name in REGISTRY:
        from perceiver.runs import registry

        return getattr(registry, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = list(REGISTRY)
