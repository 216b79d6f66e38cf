"""Run directories: where runs live and the rules that keep them apart (``paths``), what a run is doing
(``status``), and the figures drawn from a run directory (``figures``). The files themselves are written by
``perceiver.training.journal.RunJournal``, whose docstring lists them."""
