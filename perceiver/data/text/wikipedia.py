"""English Wikipedia (``wikimedia/wikipedia``, ``20231101.en``), or its 106-article sample for offline use."""

from __future__ import annotations

from typing import Any

from datasets import DatasetDict

from perceiver.data.text import sources
from perceiver.data.text.common import TextDataModule


class WikipediaDataModule(TextDataModule):
    """Wikipedia articles for language modeling. Every ``valid_every``-th article is held out for validation.

    Args:
        config: Dump of ``wikimedia/wikipedia`` on the Hub (``<date>.<language>``).
        revision: Hub revision (commit, tag or branch) of the dataset; pin it to make the cache key exact.
        **kwargs: ``TextDataModule`` arguments (``source``, ``tokenizer``, ``max_seq_len``, ``task``, ...).
            ``source="sample"`` uses the Wikipedia sample shipped with gensim.
    """

    cache_name = "wikipedia"
    hub_path = "wikimedia/wikipedia"

    def __init__(self, config: str = "20231101.en", revision: str | None = None, **kwargs: Any):
        self.config = config
        self.revision = revision
        super().__init__(**kwargs)

    def hub_identity(self) -> dict[str, Any]:
        return sources.hub_identity(self.hub_path, self.config, self.revision)

    def load_hub_source(self) -> DatasetDict:
        dsd = sources.load_hub(self.hub_path, self.config, self.revision, num_proc=self.hparams.preproc_workers)
        return sources.split_dataset(dsd["train"], self.hparams.valid_every)
