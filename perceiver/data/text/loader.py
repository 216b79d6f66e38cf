"""A training DataLoader whose batches are a function of (seed, epoch, position) and that Lightning resumes
mid-epoch.

Lightning saves the ``state_dict`` of a DataLoader that has one in the checkpoint and calls ``load_state_dict``
on resume, before it iterates again; it then expects the loader to yield only the batches not yet trained on
(it counts them as already fetched). This loader records the epoch and the number of batches it has yielded, and
after ``load_state_dict`` skips that many batches at the sampler (skipped examples are never read or collated).

What makes a resumed run equal to an uninterrupted one:

- order: ``ResumableSampler`` shuffles with its own generator seeded by ``seed + epoch`` (never the global RNG) and
  gives each of ``num_replicas`` ranks every ``num_replicas``-th index (it is a ``DistributedSampler``, so
  Lightning does not replace it under DDP/FSDP);
- dynamic masking: the collator's ``mask_seed`` is set per epoch, so example ``i`` of epoch ``e`` is masked with a
  generator seeded by ``(seed, e, i)`` wherever and whenever it is collated (main process or worker);
- worker processes are not persistent (each epoch's workers get the collator of that epoch).

``random_train_shift`` draws window offsets from the worker's RNG: reproducible per epoch from a fresh start, but
not bit-exact after a mid-epoch resume.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any, Callable

import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler


class ResumableSampler(DistributedSampler):
    """``DistributedSampler`` (per-epoch shuffle from ``seed + epoch``, rank ``r`` of ``R`` gets indices
    ``r, r + R, ...`` of the padded permutation) that can skip the first ``skip`` indices of the next iteration."""

    def __init__(self, dataset: Dataset, num_replicas: int = 1, rank: int = 0, shuffle: bool = True, seed: int = 0):
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=shuffle, seed=seed)
        self.skip = 0

    def __iter__(self) -> Iterator[int]:
        indices = list(super().__iter__())
        skip, self.skip = self.skip, 0
        return iter(indices[skip:])


class ResumableDataLoader(DataLoader):
    """Training DataLoader over ``dataset`` for rank ``rank`` of ``num_replicas`` (see the module docstring).

    Args:
        collate_fn: batch builder; if it has a ``mask_seed`` attribute and a ``mask_fn``, a copy with
            ``mask_seed`` derived from ``(seed, epoch)`` collates each epoch.
    """

    def __init__(
        self,
        dataset: Dataset,
        batch_size: int,
        collate_fn: Callable[[list], Any],
        seed: int = 0,
        shuffle: bool = True,
        num_replicas: int = 1,
        rank: int = 0,
        num_workers: int = 0,
        pin_memory: bool = False,
    ):
        self.seed = seed
        self.base_collate_fn = collate_fn
        super().__init__(
            dataset,
            batch_size=batch_size,
            sampler=ResumableSampler(dataset, num_replicas, rank, shuffle, seed),
            collate_fn=collate_fn,
            num_workers=num_workers,
            pin_memory=pin_memory,
            generator=torch.Generator().manual_seed(seed),  # worker base seeds never touch the global RNG
        )
        self.batches_yielded = 0
        self._skip_batches = 0

    @classmethod
    def for_training(cls, datamodule, dataset: Dataset | None,
                     collate_fn: Callable[[list], Any]) -> "ResumableDataLoader":
        """The training loader of a data module whose hparams hold ``batch_size``, ``seed``, ``num_workers`` and
        ``pin_memory``: this rank's share of ``dataset`` under its trainer (DDP/FSDP), all of it without one."""
        if dataset is None:
            raise RuntimeError("call setup() before requesting a dataloader")
        trainer, hp = datamodule.trainer, datamodule.hparams
        return cls(dataset, batch_size=hp.batch_size, collate_fn=collate_fn, seed=hp.seed,
                   num_replicas=trainer.world_size if trainer is not None else 1,
                   rank=trainer.global_rank if trainer is not None else 0,
                   num_workers=hp.num_workers, pin_memory=hp.pin_memory)

    @property
    def epoch(self) -> int:
        return self.sampler.epoch

    def __iter__(self):
        epoch = self.sampler.epoch
        self.generator.manual_seed(self.seed * 1_000_003 + epoch)
        if getattr(self.base_collate_fn, "mask_fn", None) is not None and hasattr(self.base_collate_fn, "mask_seed"):
            collate = copy.copy(self.base_collate_fn)
            collate.mask_seed = (self.seed + 1) * 1_000_033 + epoch
            self.collate_fn = collate
        skip, self._skip_batches = self._skip_batches, 0
        self.sampler.skip = skip * self.batch_size
        self.batches_yielded = skip
        return self._count(super().__iter__())

    def _count(self, iterator) -> Iterator[Any]:
        for batch in iterator:
            self.batches_yielded += 1
            yield batch

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.sampler.epoch, "batches": self.batches_yielded}

    def load_state_dict(self, state: dict[str, int]) -> None:
        epoch, batches = state["epoch"], state["batches"]
        if batches >= len(self):  # saved at the end of an epoch: continue with the next one
            epoch, batches = epoch + 1, 0
        self.sampler.set_epoch(epoch)
        self._skip_batches = batches
