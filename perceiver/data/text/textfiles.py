"""Users' own corpora: a local directory of text or parquet files, or a dataset saved with ``save_to_disk``."""

from __future__ import annotations

from typing import Any

from perceiver.data.text.common import TextDataModule


class TextFilesDataModule(TextDataModule):
    """Text from a local directory.

    Accepted layouts of ``source`` (searched recursively, hidden directories skipped):

    - ``*.txt`` files, one document each, decoded as UTF-8 (invalid bytes become U+FFFD and are logged);
    - ``*.parquet`` files with a ``text`` column, one document per row (plus ``label`` for ``task="clf"``);
    - a dataset directory written by ``datasets.save_to_disk`` (with ``train``/``validation`` splits or one split);
    - ``train/`` and ``validation/`` (or ``valid/``) subdirectories keep that split; otherwise every
      ``valid_every``-th document is used for validation. For ``task="clf"`` with text files, the name of the
      directory holding a file is its class.

    Args:
        source: Path of the directory (required).
        **kwargs: ``TextDataModule`` arguments (``tokenizer``, ``max_seq_len``, ``task``, ...).
    """

    cache_name = "textfiles"

    def __init__(self, source: str, **kwargs: Any):
        if source == "hub":
            raise ValueError("TextFilesDataModule reads local files: pass --data.source=/path/to/dir")
        super().__init__(source=source, **kwargs)
