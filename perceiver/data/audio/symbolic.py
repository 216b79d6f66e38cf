"""``SymbolicAudioDataModule``: MIDI pieces as windows of event ids for Perceiver AR (shared by the MAESTRO and
GiantMIDI-Piano data modules, which only say where their files come from)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Optional

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset

from perceiver.data.audio import sources
from perceiver.data.audio.examples import EventWindowDataset
from perceiver.data.audio.preprocess import build_event_cache, open_cache, unigram_entropy
from perceiver.data.text.examples import TextCollator
from perceiver.data.text.loader import ResumableDataLoader
from perceiver.data.text.preprocess import cache_key
from perceiver.model.audio.symbolic.events import PAD_ID, VOCAB_SIZE
from perceiver.model.audio.symbolic.midi import MidiTokenizer
from perceiver.model.core.config import ConfigError

logger = logging.getLogger(__name__)

SPLITS = ("train", "validation")


class SymbolicAudioDataModule(pl.LightningDataModule):
    """MIDI pieces encoded to perceiver-io 0.11's events (``MidiTokenizer``), cached once, and cut into windows of
    ``max_seq_len + 1`` events within pieces; batches as the causal language model's (``input_ids``, ``labels`` =
    next events, ``pad_mask``; left padding with id 388).

    Args:
        source: ``"hub"`` (the subclass's Hugging Face Hub dataset), ``"sample"`` (the 413 Bach chorales shipped with
            music21, offline; every 10th piece is validation) or a local folder of ``.mid``/``.midi`` files (with
            ``train/`` and ``validation/`` subfolders, or split every ``valid_every``-th file).
        dataset_dir: Directory for preprocessed (encoded) data; subdirectory ``preproc/<name>-<hash>``.
        max_seq_len: Events per example (N); examples hold N + 1 events so that labels are inputs shifted by one.
        transpose: Random transposition of training windows by up to this many semitones (0: off).
        time_stretch: Random time stretch of training windows by a factor in [1 - s, 1 + s] (0: off).
        random_train_shift: Start training windows at a random offset, so the inputs differ between epochs.
        velocity_every_note: Encode a velocity event before every note-on (as perceiver-io 0.11's encoder did).
        sustain: Extend notes held by the sustain pedal.
        valid_every: Sources without a split send every ``valid_every``-th piece to validation.
        max_pieces: Use at most this many pieces per split (for quick experiments and tests).
        skip_invalid: Skip MIDI files that cannot be read (logged, listed in the cache manifest) instead of failing.
        revision: Hub revision (commit, tag or branch) of the dataset repository.
        seed: Seed of the training order.
        batch_size: Training batch size.
        valid_batch_size: Validation batch size (default: ``batch_size``).
        num_workers: DataLoader worker processes.
        preproc_workers: Processes that encode pieces during preprocessing.
        pin_memory: Pin batches in page-locked memory.
    """

    cache_name = "midi"
    hub_repo: Optional[str] = None
    """Hugging Face Hub dataset repository of MIDI files (``source="hub"``); None: no Hub source."""

    def __init__(
        self,
        source: str = "hub",
        dataset_dir: str = ".cache/perceiver/datasets",
        max_seq_len: int = 2048,
        transpose: int = 0,
        time_stretch: float = 0.0,
        random_train_shift: bool = True,
        velocity_every_note: bool = False,
        sustain: bool = True,
        valid_every: int = 10,
        max_pieces: Optional[int] = None,
        skip_invalid: bool = False,
        revision: Optional[str] = None,
        seed: int = 0,
        batch_size: int = 16,
        valid_batch_size: Optional[int] = None,
        num_workers: int = 1,
        preproc_workers: Optional[int] = None,
        pin_memory: bool = False,
    ):
        super().__init__()
        self.save_hyperparameters()
        _check_args(max_seq_len, transpose, time_stretch, valid_every, max_pieces, batch_size)
        self.source = source
        self.dataset_dir = dataset_dir
        self.tokenizer = MidiTokenizer(velocity_every_note=velocity_every_note, sustain=sustain)
        self._max_seq_len = max_seq_len
        self.ds_train: Optional[Dataset] = None
        self.ds_valid: Optional[Dataset] = None
        self.manifest: Optional[dict[str, Any]] = None

    # -- properties the CLI links to the model -------------------------------------------------------------------

    @property
    def vocab_size(self) -> int:
        return VOCAB_SIZE

    @property
    def max_seq_len(self) -> int:
        return self._max_seq_len

    @property
    def pad_token_id(self) -> int:
        return PAD_ID

    # -- sources ---------------------------------------------------------------------------------------------------

    def offline_hint(self) -> str:
        return ("Use the Bach chorales shipped with music21 (--data.source=sample) or a local folder of MIDI files "
                "(--data.source=/path/to/midi).")

    def hub_splits(self) -> sources.Splits:
        if self.hub_repo is None:
            raise ValueError(f"{type(self).__name__} has no Hugging Face Hub dataset. {self.offline_hint()}")
        return self.local_splits(sources.hub_snapshot(self.hub_repo, self.hparams.revision, self.offline_hint()))

    def local_splits(self, root: str | Path) -> sources.Splits:
        """Pieces of a local copy (subclasses read a dataset's own split, e.g. MAESTRO's metadata)."""
        return sources.folder_splits(root, self.hparams.valid_every)

    def source_identity(self) -> dict[str, Any]:
        if self.source == "hub":
            if self.hub_repo is None:
                raise ValueError(f"{type(self).__name__} has no Hugging Face Hub dataset. {self.offline_hint()}")
            return {"source": "hub", "repo": self.hub_repo, "revision": self.hparams.revision or "main"}
        if self.source == "sample":
            return sources.chorale_identity()
        return sources.folder_identity(self.source, exclude=self.dataset_dir)

    def load_splits(self) -> sources.Splits:
        """The pieces of the configured source, split and limited to ``max_pieces``."""
        if self.source == "hub":
            splits = self.hub_splits()
        elif self.source == "sample":
            splits = sources.split_by_index(sources.chorale_pieces(), self.hparams.valid_every)
        else:
            splits = self.local_splits(self.source)
        limit = self.hparams.max_pieces
        return {k: splits[k][:limit] if limit else splits[k] for k in SPLITS}

    # -- cache -----------------------------------------------------------------------------------------------------

    def cache_settings(self) -> dict[str, Any]:
        """Every setting that changes the encoded events (windows and augmentation are applied at read time)."""
        hp = self.hparams
        return {"module": self.cache_name, "source": self.source_identity(), "vocab": "perceiver-io-0.11-midi",
                "velocity_every_note": hp.velocity_every_note, "sustain": hp.sustain, "valid_every": hp.valid_every,
                "max_pieces": hp.max_pieces, "skip_invalid": hp.skip_invalid}

    @property
    def cache_dir(self) -> Path:
        return Path(self.dataset_dir) / "preproc" / f"{self.cache_name}-{cache_key(self.cache_settings())}"

    def prepare_data(self) -> None:
        """Encode and cache the source unless an intact cache exists."""
        cache_dir = self.cache_dir
        if open_cache(cache_dir) is not None:
            logger.info("reusing preprocessed data in %s", cache_dir)
            return
        splits = self.load_splits()
        describe = f"{type(self).__name__} source {self.source!r}"
        build_event_cache(cache_dir, splits, self.tokenizer, self.cache_settings(), self.hparams.preproc_workers,
                          self.hparams.skip_invalid, describe)
        logger.info("preprocessed data written to %s", cache_dir)

    def setup(self, stage: Optional[str] = None) -> None:
        self.prepare_data()
        manifest = open_cache(self.cache_dir)
        if manifest is None:
            raise RuntimeError(f"preprocessed data in {self.cache_dir} disappeared during setup")
        self.manifest = manifest
        hp = self.hparams
        self.ds_train = EventWindowDataset(self.cache_dir, "train", manifest["dtype"], self.max_seq_len,
                                           hp.random_train_shift, hp.transpose, hp.time_stretch)
        self.ds_valid = EventWindowDataset(self.cache_dir, "validation", manifest["dtype"], self.max_seq_len)

    def unigram_entropy(self, split: str = "validation") -> float:
        """Entropy (nats per event) of the events of ``split`` under their own unigram distribution: the loss of
        the best context-free model (available after ``setup``)."""
        if self.manifest is None:
            raise RuntimeError("unigram_entropy is known after setup()")
        return unigram_entropy(self.manifest["splits"][split]["event_counts"])

    # -- batches ---------------------------------------------------------------------------------------------------

    @property
    def collator(self) -> TextCollator:
        return TextCollator(task="clm", max_seq_len=self.max_seq_len, pad_token_id=PAD_ID, padding_side="left")

    def train_dataloader(self) -> DataLoader:
        """Training batches in an order given by ``seed`` and the epoch; resumable mid-epoch."""
        if self.ds_train is None:
            raise RuntimeError("call setup() before requesting a dataloader")
        trainer = self.trainer
        return ResumableDataLoader(
            self.ds_train,
            batch_size=self.hparams.batch_size,
            collate_fn=self.collator,
            seed=self.hparams.seed,
            num_replicas=trainer.world_size if trainer is not None else 1,
            rank=trainer.global_rank if trainer is not None else 0,
            num_workers=self.hparams.num_workers,
            pin_memory=self.hparams.pin_memory,
        )

    def val_dataloader(self) -> DataLoader:
        if self.ds_valid is None:
            raise RuntimeError("call setup() before requesting a dataloader")
        workers = self.hparams.num_workers
        return DataLoader(
            self.ds_valid,
            batch_size=self.hparams.valid_batch_size or self.hparams.batch_size,
            shuffle=False,
            collate_fn=self.collator,
            num_workers=workers,
            persistent_workers=workers > 0,
            pin_memory=self.hparams.pin_memory,
            generator=torch.Generator().manual_seed(self.hparams.seed),
        )


def _check_args(max_seq_len, transpose, time_stretch, valid_every, max_pieces, batch_size) -> None:
    def fail(field: str, message: str):
        raise ConfigError("SymbolicAudioDataModule", field, message)

    if not isinstance(max_seq_len, int) or max_seq_len < 1:
        fail("max_seq_len", f"must be a positive integer, got {max_seq_len!r}")
    if not isinstance(transpose, int) or not 0 <= transpose <= 24:
        fail("transpose", f"must be an integer number of semitones in [0, 24], got {transpose!r}")
    if not 0.0 <= time_stretch < 1.0:
        fail("time_stretch", f"must be in [0, 1), got {time_stretch}")
    if valid_every < 2:
        fail("valid_every", f"must be at least 2, got {valid_every}")
    if max_pieces is not None and max_pieces < 1:
        fail("max_pieces", f"must be positive, got {max_pieces}")
    if not isinstance(batch_size, int) or batch_size < 1:
        fail("batch_size", f"must be a positive integer, got {batch_size!r}")
