"""A stand-in for a task's CLI in the sweep tests: ``python -m fake_cli fit --run_dir=<dir> --key=value ...`` writes
what a run directory holds (config.yaml, status.json, env.json, metrics.jsonl) without torch, so that the sweep's
scheduling is tested in seconds. It records the ``CUDA_VISIBLE_DEVICES`` it saw and when it ran (``device.json``),
sleeps ``$FAKE_CLI_SLEEP`` seconds, fails (exit 1) for a negative ``--optimizer.lr`` and counts its attempts per point in
``<run_dir>/../attempts.jsonl``."""

import json
import os
import sys
import time
from pathlib import Path

args = dict(a[2:].split("=", 1) for a in sys.argv[2:] if a.startswith("--") and "=" in a)
run_dir = Path(args.pop("run_dir"))
start = time.time()
with open(run_dir.parent / "attempts.jsonl", "a") as f:
    f.write(json.dumps({"point": run_dir.name, "start": start}) + "\n")
time.sleep(float(os.environ.get("FAKE_CLI_SLEEP", "0")))
(run_dir / "device.json").write_text(json.dumps({"CUDA_VISIBLE_DEVICES": os.environ.get("CUDA_VISIBLE_DEVICES"),
                                                 "start": start, "end": time.time()}))
lr = float(args.get("optimizer.lr", "1"))
if lr < 0:
    print("Traceback (most recent call last):\nValueError: optimizer.lr must be positive, got", lr, flush=True)
    sys.exit(1)
config: dict = {}
for key, value in args.items():  # --model.num_channels=64 -> {"model": {"num_channels": 64}}
    *parents, last = key.split(".")
    node = config
    for part in parents:
        node = node.setdefault(part, {})
    try:
        node[last] = json.loads(value)
    except ValueError:
        node[last] = value
(run_dir / "config.yaml").write_text(json.dumps(config))
(run_dir / "env.json").write_text(json.dumps({"task": "clm", "num_params": 1000}))
records = [{"step": s, "train_loss": 5.0 - lr * s, "tokens": 100 * s, "flops": 1e6 * s, "wall_s": 0.1 * s}
           for s in (1, 2)] + [{"step": 2, "val_loss": 5.0 - 2 * lr}]
(run_dir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
(run_dir / "status.json").write_text(json.dumps({"status": "completed", "step": 2, "task": "clm",
                                                 "started_at": start}))
