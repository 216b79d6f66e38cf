"""A callback for the multi-process tests: each rank writes the hashes of its training batches and of its final
weights to ``<out_dir>/rank<r>.json``."""

from __future__ import annotations

import hashlib
import json
import os

import torch
from pytorch_lightning.callbacks import Callback


def digest(tensor: torch.Tensor) -> str:
    return hashlib.sha1(tensor.detach().cpu().contiguous().numpy().tobytes()).hexdigest()


class Probe(Callback):
    def __init__(self, out_dir: str):
        self.out_dir = out_dir
        self.batches: list[str] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.batches.append(digest(batch["input_ids"]))

    def on_train_end(self, trainer, pl_module):
        weights = hashlib.sha1()
        for name, p in sorted(pl_module.backend_model.state_dict().items()):
            weights.update(name.encode())
            weights.update(digest(p.float()).encode())
        os.makedirs(self.out_dir, exist_ok=True)
        result = {"rank": trainer.global_rank, "world_size": trainer.world_size, "batches": self.batches,
                  "weights": weights.hexdigest(), "global_step": trainer.global_step}
        with open(os.path.join(self.out_dir, f"rank{trainer.global_rank}.json"), "w") as f:
            json.dump(result, f)
