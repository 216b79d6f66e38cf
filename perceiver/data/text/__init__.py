"""Lightning data modules for text: Wikipedia, WikiText and local files, for mlm, clm and classification."""

from perceiver.data.text.common import TextDataModule
from perceiver.data.text.examples import TextCollator
from perceiver.data.text.sources import HubUnreachableError
from perceiver.data.text.textfiles import TextFilesDataModule
from perceiver.data.text.wikipedia import WikipediaDataModule
from perceiver.data.text.wikitext import WikiTextDataModule

__all__ = [
    "HubUnreachableError",
    "TextCollator",
    "TextDataModule",
    "TextFilesDataModule",
    "WikiTextDataModule",
    "WikipediaDataModule",
]
