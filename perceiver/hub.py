"""Reaching the Hugging Face Hub: fail within seconds when it cannot be reached, with a message that says what to do.

``huggingface_hub`` and ``datasets`` retry unreachable hosts for a long time. Everything in this package that
loads from the Hub calls :func:`require_hub` first.
"""

from __future__ import annotations

import os
import socket
from urllib.parse import urlparse

OFFLINE_VARS = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE")


class HubUnavailableError(OSError):
    """The Hugging Face Hub is offline or unreachable."""


def offline_by_env() -> str | None:
    """The name of the set offline environment variable, if any."""
    for name in OFFLINE_VARS:
        if os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on"):
            return name
    return None


def hub_endpoint() -> str:
    return os.environ.get("HF_ENDPOINT") or "https://huggingface.co"


def hub_reachable(timeout: float = 3.0) -> bool:
    """True if a TCP connection to the Hub endpoint opens within ``timeout`` seconds."""
    url = urlparse(hub_endpoint())
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        with socket.create_connection((url.hostname, port), timeout=timeout):
            return True
    except OSError:
        return False


def require_hub(what: str, instead: str, timeout: float = 3.0) -> None:
    """Raise :class:`HubUnavailableError` naming ``what`` could not be loaded and what to do ``instead``."""
    var = offline_by_env()
    if var is not None:
        reason = f"{var}=1 is set"
    elif not hub_reachable(timeout):
        reason = f"{hub_endpoint()} cannot be reached"
    else:
        return
    raise HubUnavailableError(f"cannot load {what} from the Hugging Face Hub: {reason}. {instead}")
