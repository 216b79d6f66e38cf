"""IMDb movie reviews (``stanfordnlp/imdb``) for sentiment classification, the movie-review sentences shipped with
gensim for offline use, and users' own labelled text."""

from __future__ import annotations

from typing import Any, Optional

from datasets import DatasetDict

from perceiver.data.text import labelled, sources
from perceiver.data.text.common import SPLITS, Task, TextDataModule


class ImdbDataModule(TextDataModule):
    """Labelled text for classification (``task="clf"``, the default); with ``task="mlm"`` its texts for masked
    language modeling (e.g. to adapt a pretrained encoder to the domain before classification).

    Sources (``source``):

    - ``"hub"``: IMDb (``stanfordnlp/imdb``): 25,000 training reviews, validated on the 25,000 test reviews; classes
      ``neg`` (0) and ``pos`` (1). With ``task="mlm"``, training uses the 50,000 unlabelled reviews.
    - ``"sample"``: the 200 movie-review sentences shipped with gensim (offline), 100 ``neg`` and 100 ``pos``, with a
      fixed split: 160 train, 40 validate (every 5th sentence; see ``perceiver.data.text.labelled``).
    - a local path: a ``.csv``/``.jsonl``/``.parquet`` file or directory of them with ``text`` and ``label`` columns,
      one folder per class of ``.txt`` files, or a dataset saved with ``datasets.save_to_disk``; ``train/`` and
      ``validation/`` subdirectories keep that split.

    ``num_classes`` and ``class_names`` are known right after ``__init__`` (the CLI links them to the model's
    ``decoder.num_classes`` and ``class_names``); for a local source they are read from its labels.

    Args:
        source: ``"hub"`` (IMDb), ``"sample"`` (the 200 labelled movie-review sentences shipped with gensim, offline)
            or the path of labelled text (a .csv/.jsonl/.parquet file or directory, class folders of .txt files, or a
            dataset saved with ``save_to_disk``).
        task: ``"clf"`` (classification) or ``"mlm"`` (masked language modeling on the texts).
        classes: The classes in label order. Hub and sample: new names of their two classes (e.g.
            ``[NEGATIVE, POSITIVE]``). Local sources: the classes to use and their order; string labels are matched
            by name (class folders not listed are skipped), integer labels index this list. None: the sorted
            distinct string labels, or ``0..max`` for integer labels.
        revision: Hub revision (commit, tag or branch) of the dataset; pin it to make the cache key exact.
        **kwargs: ``TextDataModule`` arguments (``source``, ``tokenizer``, ``max_seq_len``, ``batch_size``, ...).
    """

    cache_name = "imdb"
    hub_path = "stanfordnlp/imdb"

    def __init__(
        self,
        source: str = "hub",
        task: Task = "clf",
        classes: Optional[list[str]] = None,
        revision: Optional[str] = None,
        **kwargs: Any,
    ):
        self.revision = revision
        super().__init__(source=source, task=task, **kwargs)
        self._class_names: Optional[list[str]] = None
        if classes is not None and self.source in ("hub", "sample") and len(classes) != 2:
            raise ValueError(f"ImdbDataModule.classes: source {self.source!r} has 2 classes (neg, pos), got "
                             f"{len(classes)} names {classes}")

    # -- classes -----------------------------------------------------------------------------------------------------

    @property
    def class_names(self) -> list[str]:
        """The class names in label order (a local source's labels are read once to find them)."""
        if self._class_names is None:
            given = self.hparams.classes
            if self.source in ("hub", "sample"):
                self._class_names = list(given or labelled.SAMPLE_CLASSES)
            else:
                self._class_names = labelled.local_class_names(self.source, given)
        return self._class_names

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    # -- source ------------------------------------------------------------------------------------------------------

    def hub_identity(self) -> dict[str, Any]:
        return sources.hub_identity(self.hub_path, "plain_text", self.revision)

    def load_hub_source(self) -> DatasetDict:
        try:
            dsd = sources.load_hub(self.hub_path, "plain_text", self.revision)
        except sources.HubUnreachableError as e:
            raise sources.HubUnreachableError(
                f"IMDb ({self.hub_path}): {e} Here --data.source=sample is the 200 labelled movie-review sentences "
                f"shipped with gensim; a local path may hold labelled text (see ImdbDataModule)."
            ) from None
        if self.task == "clf":
            return DatasetDict(train=dsd["train"], validation=dsd["test"])
        return DatasetDict(train=dsd["unsupervised"], validation=dsd["test"])

    def source_identity(self) -> dict[str, Any]:
        if self.source == "hub":
            return self.hub_identity()
        if self.source == "sample":
            return labelled.sample_identity()
        return labelled.local_identity(self.source)

    def cache_settings(self) -> dict[str, Any]:
        return {**super().cache_settings(), "classes": self.hparams.classes}

    def load_source(self) -> DatasetDict:
        if self.source == "hub":
            dsd = self.load_hub_source()
        elif self.source == "sample":
            dsd = labelled.load_sample()
        else:
            dsd, self._class_names = labelled.load_local(self.source, self.hparams.valid_every, self.hparams.classes)
        dsd = DatasetDict({k: dsd[k].select_columns(["text", "label"] if self.task == "clf" else ["text"])
                           for k in SPLITS})
        return sources.limit_documents(dsd, self.hparams.max_documents)
