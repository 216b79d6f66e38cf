"""Fixtures of the training tests (helpers are in ``training_helpers``)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def dataset_dir(tmp_path_factory) -> str:
    """One preprocessed-data directory for the whole session (the sample is tokenized once per setting)."""
    return str(tmp_path_factory.mktemp("datasets"))
