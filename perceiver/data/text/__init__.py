"""Lightning data modules for text: Wikipedia, WikiText, IMDb and local files, for mlm, clm and classification.

Example (offline, with the Wikipedia sample shipped in gensim's wheel)::

    from perceiver.data.text import WikipediaDataModule

    dm = WikipediaDataModule(source="sample", max_seq_len=512, task="mlm", batch_size=8)
    dm.vocab_size                  # 262, known right after __init__ (CLI: link data.vocab_size to the model)
    dm.setup()                     # tokenizes once into dataset_dir/preproc/wikipedia-<hash>, then reuses it
    batch = next(iter(dm.train_dataloader()))
    batch["input_ids"], batch["labels"], batch["pad_mask"]   # (B, N) long, (B, N) long (-100 = ignore), (B, N) bool

``source`` is ``"hub"`` (default), ``"sample"`` or a local directory (``TextFilesDataModule`` needs one).
Modules: ``common`` (``TextDataModule``), ``sources`` and ``sample`` (raw text), ``preprocess`` (tokenize and
cache), ``masking`` (whole-word masking), ``examples`` (datasets, batch format and collator).
"""

from perceiver.data.text.common import TextDataModule
from perceiver.data.text.examples import TextCollator
from perceiver.data.text.imdb import ImdbDataModule
from perceiver.data.text.sources import HubUnreachableError
from perceiver.data.text.textfiles import TextFilesDataModule
from perceiver.data.text.wikipedia import WikipediaDataModule
from perceiver.data.text.wikitext import WikiTextDataModule

__all__ = [
    "HubUnreachableError",
    "ImdbDataModule",
    "TextCollator",
    "TextDataModule",
    "TextFilesDataModule",
    "WikiTextDataModule",
    "WikipediaDataModule",
]
