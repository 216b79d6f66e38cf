"""Offline fixtures for the interop tests."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    """Tests never touch the network."""
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
        monkeypatch.setenv(name, "1")


@pytest.fixture
def seed():
    torch.manual_seed(0)
