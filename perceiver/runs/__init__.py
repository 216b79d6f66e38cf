"""Run directories: what a training run leaves behind (written by ``perceiver.training.journal.RunJournal``) and the
figures drawn from it."""
