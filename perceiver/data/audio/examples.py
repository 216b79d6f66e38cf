"""Windows of event ids from cached pieces, with optional random transposition and time stretch.

Dimensions: N = ``max_seq_len``, W = N + 1 (inputs and labels shifted by one), T events of a piece.

Example ``i`` is a window of at most W events inside one piece (windows never cross pieces): a piece of T events
gives ``max(1, ceil((T - 1) / N))`` windows starting at 0, N, 2N, ..., so every event but the first is a target
once; the last window of a piece may be shorter and is padded (left, by the collator). With ``random_shift`` a
window starts at a random offset in ``[start, start + N)``, kept full where the piece allows.

Augmentation (training only), drawn per window from torch's global generator (seeded per DataLoader worker):

- ``transpose=k``: all notes move by the same random number of semitones in ``[-k, k]``, restricted so that every
  pitch of the window stays in 0..127;
- ``time_stretch=s``: all times scale by a random factor in ``[1 - s, 1 + s]`` (time shifts re-quantized; the
  window is cut from a longer stretch of the piece, so it stays full).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from perceiver.data.text.examples import _Memmaps
from perceiver.model.audio.symbolic.events import NUM_PITCHES, pitch_range, stretch, transpose


class EventWindowDataset(Dataset):
    """Windows of W = ``max_seq_len + 1`` events within the pieces of one cached split (see the module
    docstring)."""

    def __init__(
        self,
        cache_dir: Path,
        split: str,
        dtype: str,
        max_seq_len: int,
        random_shift: bool = False,
        transpose: int = 0,
        time_stretch: float = 0.0,
    ):
        self.files = _Memmaps({"tokens": (cache_dir / f"{split}.tokens.bin", dtype)})
        offsets = np.fromfile(cache_dir / f"{split}.offsets.bin", dtype=np.int64)
        self.n, self.window = max_seq_len, max_seq_len + 1
        self.random_shift, self.transpose, self.time_stretch = random_shift, transpose, time_stretch
        # (piece start, piece end, window start) of every example
        index = []
        for a, b in zip(offsets[:-1].tolist(), offsets[1:].tolist()):
            count = max(1, -(-(b - a - 1) // self.n))
            index += [(a, b, a + k * self.n) for k in range(count)]
        self.index = np.asarray(index, dtype=np.int64).reshape(-1, 3)

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, idx: int) -> dict[str, torch.Tensor]:
        if not 0 <= idx < len(self):
            raise IndexError(idx)
        a, b, start = (int(x) for x in self.index[idx])
        if self.random_shift:
            start += int(torch.randint(self.n, ()).item())
            start = max(a, min(start, b - self.window))  # shifted windows stay full where the piece allows
        if not self.time_stretch:
            ids = self.files["tokens"][start : min(start + self.window, b)].astype(np.int64).tolist()
        else:
            factor = 1.0 + self.time_stretch * (2.0 * float(torch.rand(())) - 1.0)
            # stretching changes only the number of time-shift events: read twice W events so that W remain
            raw = self.files["tokens"][start : min(start + 2 * self.window, b)].astype(np.int64).tolist()
            ids = stretch(raw, factor)[: self.window]
        if self.transpose:
            ids = transpose(ids, self.random_semitones(ids))
        return {"input_ids": torch.tensor(ids, dtype=torch.long), "index": torch.tensor(idx)}

    def random_semitones(self, ids: list[int]) -> int:
        span = pitch_range(ids)
        if span is None:
            return 0
        low = max(-self.transpose, -span[0])
        high = min(self.transpose, NUM_PITCHES - 1 - span[1])
        return int(torch.randint(low, high + 1, ()).item()) if high >= low else 0
