"""WikiText language modeling benchmark (``Salesforce/wikitext``), or the Wikipedia sample for offline use."""

from __future__ import annotations

from typing import Any, Literal

from datasets import DatasetDict

from perceiver.data.text import sources
from perceiver.data.text.common import TextDataModule


class WikiTextDataModule(TextDataModule):
    """WikiText with its own train and validation splits (rows are lines; empty lines are dropped).

    Args:
        config: ``wikitext-103-raw-v1`` (103M tokens) or ``wikitext-2-raw-v1`` (2M tokens).
        revision: Hub revision (commit, tag or branch) of the dataset; pin it to make the cache key exact.
        **kwargs: ``TextDataModule`` arguments (``source``, ``tokenizer``, ``max_seq_len``, ``task``, ...).
            ``source="sample"`` uses the Wikipedia sample shipped with gensim.
    """

    cache_name = "wikitext"
    hub_path = "Salesforce/wikitext"

    def __init__(
        self,
        config: Literal["wikitext-103-raw-v1", "wikitext-2-raw-v1"] = "wikitext-103-raw-v1",
        revision: str | None = None,
        **kwargs: Any,
    ):
        self.config = config
        self.revision = revision
        super().__init__(**kwargs)

    def hub_identity(self) -> dict[str, Any]:
        return sources.hub_identity(self.hub_path, self.config, self.revision)

    def load_hub_source(self) -> DatasetDict:
        dsd = sources.load_hub(self.hub_path, self.config, self.revision)
        return DatasetDict(train=dsd["train"], validation=dsd["validation"])
