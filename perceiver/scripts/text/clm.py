"""Lightning CLI for the Perceiver AR causal language model (task ``clm`` of ``perceiver.tasks``).

    python -m perceiver.scripts.text.clm fit --data=WikiTextDataModule --data.source=sample ...
    python -m perceiver.scripts.text.clm evaluate --ckpt runs/clm --texts my_texts/

Defaults reproduce the documented 30.6M model (preset ``clm-30.6m`` of ``CausalLanguageModelConfig``);
``data.vocab_size`` and ``data.max_seq_len`` flow into the model config. ``evaluate`` prints the bits per byte of a
trained model on text files, with the window rule of validation (``perceiver.model.text.clm.evaluate``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Optional, Sequence

from perceiver.scripts.entry import task_main


def text_files(paths: Sequence[str]) -> list[Path]:
    """The files named, and the ``.txt`` files under the directories named (sorted)."""
    files = []
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(f for f in p.rglob("*.txt") if f.is_file())
            if not found:
                raise FileNotFoundError(f"--texts {p}: the directory holds no .txt files")
            files += found
        elif p.is_file():
            files.append(p)
        else:
            raise FileNotFoundError(f"--texts {p}: no such file or directory")
    return files


def checkpoint_file(path: str) -> Path:
    """A checkpoint file; or a run directory's ``checkpoints/final.ckpt`` (else its newest checkpoint); or, for a
    directory of runs (``runs/clm``), that of its most recently started run (``perceiver.runs.paths``)."""
    from perceiver.runs import paths

    p = Path(path)
    if p.is_file():
        return p
    if not p.is_dir():
        raise FileNotFoundError(f"--ckpt {path}: no such checkpoint file or run directory")
    run = paths.latest_run(p)
    if run is None:
        raise FileNotFoundError(f"--ckpt {path}: no run directory (with status.json) at or below it")
    final = run / "checkpoints" / "final.ckpt"
    found = final if final.is_file() else paths.latest_checkpoint(run)
    if found is None:
        raise FileNotFoundError(f"--ckpt {path}: the run {run} has no checkpoint (checkpoints/*.ckpt)")
    return found


def evaluate(args: Optional[Sequence[str]] = None) -> dict:
    """Bits per byte of a trained model on text files (one document per file)."""
    import torch

    from perceiver.model.text.clm.evaluate import score_text
    from perceiver.model.text.clm.lightning import LitCausalLanguageModel
    from perceiver.training.threads import set_cpu_threads

    parser = argparse.ArgumentParser(prog="python -m perceiver.scripts.text.clm evaluate", description=evaluate.__doc__)
    parser.add_argument("--ckpt", required=True, help="Lightning checkpoint, or a run directory (its final.ckpt)")
    parser.add_argument("--texts", required=True, nargs="+", help="text files and/or directories of .txt files")
    parser.add_argument("--num_latents", type=int, default=None, help="latents per window (default: max_latents)")
    parser.add_argument("--stride", type=int, default=None, help="new tokens per window (default: num_latents)")
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--cpu_threads", type=int, default=None, help="torch threads (default: all usable cores)")
    parser.add_argument("--json", default=None, help="also write the results to this JSON file")
    ns = parser.parse_args(args)
    set_cpu_threads(ns.cpu_threads)
    lit = LitCausalLanguageModel.load_from_checkpoint(str(checkpoint_file(ns.ckpt)), map_location=ns.device,
                                                      weights_only=True)
    model = lit.model.to(torch.device(ns.device)).eval()
    results, total = {}, None
    for f in text_files(ns.texts):
        score = score_text(model, lit.tokenizer, f.read_text(encoding="utf-8"), ns.num_latents, ns.stride,
                           ns.batch_size)
        total = score if total is None else total + score
        results[str(f)] = {"bits_per_byte": score.bits_per_byte, "bytes": score.num_bytes}
        print(f"{score.bits_per_byte:7.4f} bits/byte  {score.num_bytes:>9} bytes  {f}", flush=True)
    out = {"files": results, "bits_per_byte": total.bits_per_byte, "bytes": total.num_bytes}
    print(f"{total.bits_per_byte:7.4f} bits/byte  {total.num_bytes:>9} bytes  total ({len(results)} files)")
    if ns.json:
        Path(ns.json).write_text(json.dumps(out, indent=1) + "\n")
    return out


main = task_main("clm", commands={"evaluate": evaluate})

if __name__ == "__main__":
    main()
