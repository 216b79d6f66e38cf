"""``TextDataModule``: the Lightning data module shared by all text corpora.

Subclasses only say where their text comes from on the Hugging Face Hub (``load_hub_source``/``hub_identity``).
Sample and local-directory sources, tokenization, caching, masking, shifting and batching live here. See
``perceiver.data.text.examples`` for the batch format and ``perceiver.data.text.preprocess`` for the cache layout.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Literal

import pytorch_lightning as pl
import numpy as np
import torch
from datasets import DatasetDict
from torch.utils.data import DataLoader, Dataset, Subset

from perceiver.model.core.config import ConfigError
from perceiver.data.text import masking, sample, sources
from perceiver.data.text.examples import DocumentDataset, TextCollator, TokenStreamDataset
from perceiver.data.text.loader import ResumableDataLoader
from perceiver.data.text.preprocess import build_cache, cache_key, open_cache
from perceiver.hub import offline_by_env
from perceiver.model.text.tokenizer import load_tokenizer

logger = logging.getLogger(__name__)

Task = Literal["mlm", "clm", "clf"]
SPLITS = ("train", "validation")


class TextDataModule(pl.LightningDataModule):
    """Tokenized, chunked and cached text for masked (mlm) and causal (clm) language modeling and classification.

    Args:
        source: Where the text comes from: ``"hub"`` (the Hugging Face Hub dataset of the subclass), ``"sample"``
            (the 106-article English Wikipedia sample shipped with gensim, for offline use), or a local
            directory: ``.txt`` files (one document each), ``.parquet`` files (a ``text`` column, one document per
            row), or a dataset written by ``datasets.save_to_disk``. A directory with ``train/`` and
            ``validation/`` subdirectories keeps that split.
        dataset_dir: Directory for preprocessed (tokenized) data; subdirectory ``preproc/<name>-<hash>``.
        tokenizer: Tokenizer name or local path; ``deepmind/language-perceiver`` is the UTF-8 byte tokenizer.
        max_seq_len: Tokens per example (N). clm examples hold N + 1 tokens so that labels are inputs shifted by one.
        task: ``"mlm"`` (masked), ``"clm"`` (causal) language modeling, or ``"clf"`` (classification; needs a
            ``label`` column or ``<split>/<class name>/*.txt`` files).
        mask_prob: Fraction of tokens that become mlm targets.
        mask_words: Mask whole words (runs of non-whitespace bytes for the byte tokenizer) instead of single tokens.
            Targets are replaced by [MASK] (80%), a random token (10%) or kept (10%).
        static_masking: Mask once at preprocessing time (same masks every epoch) instead of for every batch.
        add_special_tokens: Wrap each document in the tokenizer's special tokens (e.g. [CLS] ... [SEP]).
        add_eos_token: Append the eos token to each document.
        padding_side: Side on which short examples are padded. ``None``: left for clm (required by Perceiver AR),
            right otherwise.
        random_train_shift: Start training windows at a random offset, so the inputs differ between epochs.
        random_valid_shift: Same for validation windows.
        valid_every: Sources without a validation split send every ``valid_every``-th document to validation.
        max_documents: Use at most this many documents per split (for quick experiments and tests).
        encoding_errors: Text files of a local source must be UTF-8 (``"strict"``: a file that is not is an error
            naming it); ``"replace"`` reads undecodable bytes as U+FFFD and logs how many.
        seed: Seed of static masking and of the (fixed) mlm masks of validation examples.
        batch_size: Training batch size.
        valid_batch_size: Validation batch size (default: ``batch_size``).
        num_workers: DataLoader worker processes.
        preproc_workers: Tokenizer processes during preprocessing (non-byte tokenizers only).
        pin_memory: Pin batches in page-locked memory.
    """

    cache_name = "text"

    def __init__(
        self,
        source: str = "hub",
        dataset_dir: str = ".cache/perceiver/datasets",
        tokenizer: str = "deepmind/language-perceiver",
        max_seq_len: int = 4096,
        task: Task = "mlm",
        mask_prob: float = 0.15,
        mask_words: bool = True,
        static_masking: bool = False,
        add_special_tokens: bool = False,
        add_eos_token: bool = False,
        padding_side: Literal["left", "right"] | None = None,
        random_train_shift: bool = False,
        random_valid_shift: bool = False,
        valid_every: int = 10,
        max_documents: int | None = None,
        encoding_errors: Literal["strict", "replace"] = "strict",
        seed: int = 0,
        batch_size: int = 16,
        valid_batch_size: int | None = None,
        num_workers: int = 1,
        preproc_workers: int | None = None,
        pin_memory: bool = False,
    ):
        super().__init__()
        self.save_hyperparameters()
        _check_args(task, max_seq_len, mask_prob, padding_side, valid_every, max_documents, batch_size,
                    encoding_errors)
        self.source = source
        self.dataset_dir = dataset_dir
        self.task = task
        self.padding_side: Literal["left", "right"] = padding_side or ("left" if task == "clm" else "right")
        self.tokenizer = load_tokenizer(tokenizer)
        self._max_seq_len = max_seq_len
        self.ds_train: Dataset | None = None
        self.ds_valid: Dataset | None = None
        self.manifest: dict[str, Any] | None = None
        self.cache_was_built = False

    # -- properties the CLI links to the model -------------------------------------------------------------------

    @property
    def vocab_size(self) -> int:
        return len(self.tokenizer)

    @property
    def max_seq_len(self) -> int:
        return self._max_seq_len

    @property
    def pad_token_id(self) -> int:
        """The tokenizer's pad id; tokenizers without one (e.g. GPT-2) pad with eos (``pad_mask`` marks padding)."""
        pad_id = self.tokenizer.pad_token_id
        return pad_id if pad_id is not None else (self.tokenizer.eos_token_id or 0)

    @property
    def num_classes(self) -> int:
        """Number of classes (clf only; available after ``setup``)."""
        if self.manifest is None:
            raise RuntimeError("num_classes is known after setup()")
        return self.manifest["num_classes"]

    def check_max_seq_len(self, model_max_seq_len: int) -> None:
        """Raise if examples are longer than the model accepts."""
        if self.max_seq_len > model_max_seq_len:
            raise ValueError(
                f"data.max_seq_len={self.max_seq_len} exceeds the model's maximum sequence length "
                f"{model_max_seq_len}; pass --data.max_seq_len={model_max_seq_len} or less"
            )

    # -- source and cache ------------------------------------------------------------------------------------------

    def check_source(self) -> None:
        """Check, without reading any data, that the source can be used here: a local path exists and is a
        directory; ``"hub"`` is not switched off by an offline variable. Raises ``ConfigError`` naming ``source``
        (the workbench calls this when the form changes; training would fail later, after loading the model)."""
        if self.source == "sample":
            return
        if self.source == "hub":
            var = offline_by_env()
            if var is not None:
                raise ConfigError(type(self).__name__, "source", f"'hub' needs the Hugging Face Hub, but {var}=1 is "
                                  f"set; use 'sample' (offline) or a local directory")
            return
        path = Path(self.source).expanduser()
        if not path.exists():
            raise ConfigError(type(self).__name__, "source", f"{path} does not exist; give a directory of .txt or "
                              f".parquet files, a saved dataset, 'sample' (offline) or 'hub'")
        if not path.is_dir():
            raise ConfigError(type(self).__name__, "source", f"{path} is not a directory; give the directory that "
                              f"holds the .txt/.parquet files or the saved dataset")

    def load_hub_source(self) -> DatasetDict:
        """Load the Hub dataset with ``train`` and ``validation`` splits (subclasses)."""
        raise ValueError(f"{type(self).__name__} has no Hub dataset; pass --data.source=sample or a directory path")

    def hub_identity(self) -> dict[str, Any]:
        raise ValueError(f"{type(self).__name__} has no Hub dataset; pass --data.source=sample or a directory path")

    def source_identity(self) -> dict[str, Any]:
        if self.source == "hub":
            return self.hub_identity()
        if self.source == "sample":
            return sample.sample_identity()
        return sources.local_identity(self.source, exclude=self.dataset_dir)

    def load_source(self) -> DatasetDict:
        """Raw documents of the configured source, split and limited to ``max_documents``."""
        if self.source == "hub":
            dsd = self.load_hub_source()
        elif self.source == "sample":
            dsd = sources.load_sample(self.hparams.valid_every)
        else:
            dsd = sources.load_local(self.source, self.hparams.valid_every, with_label=self.task == "clf",
                                     errors=self.hparams.encoding_errors)
        dsd = DatasetDict({k: dsd[k] for k in SPLITS})
        if self.task == "clf" and "label" not in dsd["train"].column_names:
            raise ValueError(f"task=clf needs a 'label' column; source {self.source!r} has none: give each parquet "
                             f"file a 'label' column, or put the .txt files of each class in a directory of its name")
        return sources.limit_documents(dsd, self.hparams.max_documents)

    def cache_settings(self) -> dict[str, Any]:
        """Every setting that changes the preprocessed data (and nothing else: windows are cut at read time)."""
        hp = self.hparams
        settings = {
            "module": self.cache_name,
            "source": self.source_identity(),
            "tokenizer": hp.tokenizer,
            "add_special_tokens": hp.add_special_tokens,
            "add_eos_token": hp.add_eos_token,
            "valid_every": hp.valid_every,
            "max_documents": hp.max_documents,
            "layout": "documents" if self.task == "clf" else "stream",
        }
        if self.source not in ("hub", "sample"):
            settings["encoding_errors"] = hp.encoding_errors
        if self.static_masking:
            settings["static_masking"] = {
                "block_len": self.max_seq_len,
                "mask_prob": hp.mask_prob,
                "mask_words": hp.mask_words,
                "seed": hp.seed,
            }
        return settings

    @property
    def static_masking(self) -> bool:
        return self.hparams.static_masking and self.task == "mlm"

    @property
    def cache_dir(self) -> Path:
        return Path(self.dataset_dir) / "preproc" / f"{self.cache_name}-{cache_key(self.cache_settings())}"

    def prepare_data(self) -> None:
        """Tokenize and cache the source unless an intact cache exists."""
        cache_dir = self.cache_dir
        if open_cache(cache_dir) is not None:
            logger.info("reusing preprocessed data in %s", cache_dir)
            return
        dsd = self.load_source()
        static_mask = (self.max_seq_len, self._numpy_mask_fn()) if self.static_masking else None
        extra = {"num_classes": int(max(max(dsd[s]["label"]) for s in SPLITS)) + 1} if self.task == "clf" else {}
        settings, workers = self.cache_settings(), self.hparams.preproc_workers
        describe = f"{type(self).__name__} source {self.source!r}"
        build_cache(cache_dir, dsd, self.tokenizer, settings, workers, static_mask, extra, describe)
        self.cache_was_built = True
        logger.info("preprocessed data written to %s", cache_dir)

    def setup(self, stage: str | None = None) -> None:
        self.prepare_data()
        cache_dir = self.cache_dir
        manifest = open_cache(cache_dir)
        if manifest is None:
            raise RuntimeError(f"preprocessed data in {cache_dir} disappeared during setup")
        self.manifest = manifest
        self.ds_train = self._dataset(cache_dir, "train", self.hparams.random_train_shift)
        self.ds_valid = self._dataset(cache_dir, "validation", self.hparams.random_valid_shift)

    def _dataset(self, cache_dir: Path, split: str, random_shift: bool) -> Dataset:
        assert self.manifest is not None
        dtype, n = self.manifest["dtype"], self.max_seq_len
        if self.task == "clf":
            return DocumentDataset(cache_dir, split, dtype, n, random_shift)
        num_tokens = self.manifest["splits"][split]["num_tokens"]
        window = n + 1 if self.task == "clm" else n
        return TokenStreamDataset(cache_dir, split, dtype, num_tokens, n, window, random_shift, self.static_masking)

    # -- batches ---------------------------------------------------------------------------------------------------

    def masker(self, generator: torch.Generator | None = None) -> masking.WordMasker:
        """Masking function ``(input_ids, pad_mask) -> (masked_ids, labels)`` with this module's settings."""
        hp = self.hparams
        return masking.WordMasker.for_tokenizer(self.tokenizer, hp.mask_prob, hp.mask_words, generator=generator)

    def _numpy_mask_fn(self):
        fn = self.masker(torch.Generator().manual_seed(self.hparams.seed))

        def np_fn(ids: np.ndarray, pad_mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            masked, labels = fn(torch.from_numpy(ids), torch.from_numpy(pad_mask))
            return masked.numpy(), labels.numpy()

        return np_fn

    @property
    def collator(self) -> TextCollator:
        """Collator of training batches (dynamic mlm masks differ in every epoch)."""
        return self.make_collator(fixed_masks=False)

    def make_collator(self, fixed_masks: bool) -> TextCollator:
        """Batch collator; ``fixed_masks``: dynamic mlm masks depend only on ``seed`` and the example index."""
        dynamic = self.task == "mlm" and not self.static_masking
        return TextCollator(
            task=self.task,
            max_seq_len=self.max_seq_len,
            pad_token_id=self.pad_token_id,
            padding_side=self.padding_side,
            mask_fn=self.masker() if dynamic else None,
            mask_seed=self.hparams.seed if dynamic and fixed_masks else None,
        )

    def train_dataloader(self) -> DataLoader:
        """Training batches in an order (and with mlm masks) given by ``seed`` and the epoch; resumable mid-epoch
        (see ``perceiver.data.text.loader``). Under DDP/FSDP each rank gets its own share."""
        return ResumableDataLoader.for_training(self, self.ds_train, self.collator)

    def val_dataloader(self) -> DataLoader:
        """Validation batches in a fixed random order of the split's windows (documents for clf): the first batches,
        which ``--trainer.limit_val_batches`` keeps, are then a sample of the whole split rather than the start of
        its first document (a list article can score 1 bit per byte worse than the split). The order is the same
        for every run and ``seed``, so runs are validated on the same windows; mlm validation masks are the same
        in every epoch (seeded by ``seed``)."""
        batch_size = self.hparams.valid_batch_size or self.hparams.batch_size
        return self._loader(fixed_random_order(self.ds_valid), batch_size, shuffle=False, fixed_masks=True)

    def _loader(self, ds: Dataset | None, batch_size: int, shuffle: bool, fixed_masks: bool = False) -> DataLoader:
        if ds is None:
            raise RuntimeError("call setup() before requesting a dataloader")
        workers = self.hparams.num_workers
        return DataLoader(
            ds,
            batch_size=batch_size,
            shuffle=shuffle,
            collate_fn=self.make_collator(fixed_masks),
            num_workers=workers,
            persistent_workers=workers > 0,
            pin_memory=self.hparams.pin_memory,
            # worker seeds come from this generator, not the global RNG (which exact resume restores)
            generator=torch.Generator().manual_seed(self.hparams.seed),
        )


def fixed_random_order(ds: Dataset | None) -> Dataset | None:
    """``ds`` in one fixed pseudo-random order (the same in every process: a constant seed)."""
    if ds is None:
        return None
    return Subset(ds, torch.randperm(len(ds), generator=torch.Generator().manual_seed(0)).tolist())


def _check_args(task, max_seq_len, mask_prob, padding_side, valid_every, max_documents, batch_size,
                encoding_errors) -> None:
    def fail(field: str, message: str):
        raise ConfigError("TextDataModule", field, message)

    if task not in ("mlm", "clm", "clf"):
        fail("task", f"must be 'mlm', 'clm' or 'clf', got {task!r}")
    if not isinstance(max_seq_len, int) or max_seq_len < 1:
        fail("max_seq_len", f"must be a positive integer, got {max_seq_len!r}")
    if not 0.0 < mask_prob < 1.0:
        fail("mask_prob", f"must be in (0, 1), got {mask_prob}")
    if task == "clm" and padding_side == "right":
        fail("padding_side", "must be 'left' for task=clm: Perceiver AR's latents sit at the end of the sequence; "
             "pass --data.padding_side=left or leave it unset")
    if valid_every < 2:
        fail("valid_every", f"must be at least 2, got {valid_every}")
    if max_documents is not None and max_documents < 1:
        fail("max_documents", f"must be positive, got {max_documents}")
    if not isinstance(batch_size, int) or batch_size < 1:
        fail("batch_size", f"must be a positive integer, got {batch_size!r}")
    if encoding_errors not in sources.ENCODING_ERRORS:
        fail("encoding_errors", f"must be 'strict' or 'replace', got {encoding_errors!r}")
