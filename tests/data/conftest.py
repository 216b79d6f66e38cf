"""Shared fixtures: data modules on the gensim Wikipedia sample, preprocessed once per test session."""

from __future__ import annotations

import pytest

from perceiver.data.text import WikipediaDataModule


@pytest.fixture(scope="session")
def sample_dir(tmp_path_factory):
    """A dataset_dir shared by tests that only read the sample's preprocessed cache."""
    return str(tmp_path_factory.mktemp("sample-datasets"))


@pytest.fixture(scope="session")
def sample_mlm(sample_dir):
    dm = WikipediaDataModule(source="sample", dataset_dir=sample_dir, max_seq_len=512, batch_size=32, num_workers=0)
    dm.setup()
    return dm


@pytest.fixture(scope="session")
def sample_clm(sample_dir):
    dm = WikipediaDataModule(
        source="sample", dataset_dir=sample_dir, max_seq_len=256, task="clm", batch_size=8, num_workers=0
    )
    dm.setup()
    return dm
