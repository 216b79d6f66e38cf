"""GPU readiness: everything only a GPU can show, as one table (run by ``benchmarks/gpu_check.sh``).

    python benchmarks/gpu_check.py --pio-python benchmarks/.venv-perceiver-io/bin/python
    python benchmarks/gpu_check.py --dry-run          # tiny models and a few steps on the CPU: the same stages

Stages, in order of importance, each in its own process with a timeout, within ``--budget`` seconds overall (a stage
that no longer fits is reported as skipped):

    flops      FlopCounterMode on the device against the analytic FLOPs (perceiver.model.core.flops)
    train_*    30.6M CLM (16 x 4096, 512 latents) and 201M MLM (8 x 2048) training steps, bf16-mixed, torch.compile,
               ours and perceiver-io 0.11 in the same loop (gpu_worker.py): tokens/s and MFU
    gen        greedy kv-cached generation, batch 1, 512-token prompt, 256 new tokens: tokens/s, ours and perceiver-io
    cli        the Lightning CLI training the 30.6M CLM on the bundled sample (bf16-mixed, compiled): tokens/s and MFU
               as logged by ComputeMonitor into the run directory
    papermill  ``papermill notebooks/train_clm.ipynb out.ipynb -p devices -1``: the workbench trains on the GPU
    fsdp       the CLI with ``--trainer.strategy=fsdp`` on one GPU (on the CPU of a dry run: ddp, as FSDP needs CUDA)

MFU = achieved FLOP/s / the device's matrix-product peak (``perceiver.training.compute.device_peak``: the datasheet
value of a known GPU in bf16). The FLOPs are the analytic model FLOPs, the same for both libraries.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:0] = [str(HERE), str(ROOT)]


@dataclass
class Stage:
    name: str
    command: list[str]
    timeout_s: float
    parse: Callable[[str, Path], dict]
    cwd: Path = ROOT
    env: dict = field(default_factory=dict)
    lib: str = "ours"


def result_line(output: str, _run: Path) -> dict:
    for line in reversed(output.splitlines()):
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    return {"status": "error", "error": last_error(output)}


def run_directory(output: str, run: Path) -> dict:
    """The journal's summary of a CLI or workbench run (``metrics.json``) and its device (``env.json``)."""
    metrics, env = run / "metrics.json", run / "env.json"
    if not metrics.is_file():
        return {"status": "error", "error": last_error(output)}
    m = json.loads(metrics.read_text())
    out = {k: m.get(k) for k in ("status", "steps", "tokens_per_s", "mfu", "tokens", "flops", "wall_s")}
    out["final"] = m.get("final", {})
    if env.is_file():
        out["device"] = json.loads(env.read_text()).get("device")
    out["status"] = "ok" if m.get("status") == "completed" else m.get("status")
    return out


def last_error(output: str) -> str:
    lines = [line for line in output.strip().splitlines() if line.strip()]
    errors = [line for line in lines if "Error" in line or "error" in line]
    return (errors or lines or ["no output"])[-1][:300]


def stages(args, out: Path) -> list[Stage]:
    from cases import model_config
    from gpu_worker import stage_case

    py, dry = sys.executable, args.dry_run
    device = "cpu" if dry else "cuda"
    steps, warmup = (3, 1) if dry else (args.steps, 5)
    worker = [str(HERE / "gpu_worker.py"), "--device", device, "--precision", "bf16-mixed", "--steps", str(steps),
              "--warmup", str(warmup), "--compile-backend", "eager" if dry else "inductor"] + (["--tiny"] if dry else [])
    pio_env = {"PYTHONPATH": ""}
    result: list[Stage] = [Stage("flops", [py, *worker, "--case", "flops"], 120, result_line)]
    for case in ("train_clm", "train_mlm", "gen"):
        compile_ = ["--compile"] if case != "gen" else []
        result.append(Stage(f"{case} ours", [py, *worker, "--case", case, *compile_], 300, result_line))
        if args.pio_python:  # -P and a cwd outside the repo: our package must not shadow perceiver-io's
            # perceiver-io's interpreter cannot import our presets: the model config comes from here
            config = json.dumps(model_config(stage_case(case, dry)))
            result.append(Stage(f"{case} pio", [args.pio_python, "-P", *worker, "--case", case, "--lib", "pio",
                                                "--model-config", config, *compile_], 300, result_line,
                                cwd=Path("/tmp"), env=pio_env, lib="pio"))

    data = ["--data=WikiTextDataModule", "--data.source=sample", f"--data.dataset_dir={out / 'data'}",
            "--data.num_workers=2"]
    if dry:
        data += ["--data.max_seq_len=256", "--data.batch_size=2", "--data.max_documents=6",
                 "--model.max_latents=64", "--model.num_channels=64", "--model.num_heads=2",
                 "--model.num_self_attention_layers=1"]
    else:
        data += ["--data.max_seq_len=4096", "--data.batch_size=16"]
    trainer = [f"--trainer.accelerator={'cpu' if dry else 'gpu'}", "--trainer.devices=1",
               "--trainer.precision=bf16-mixed", "--trainer.limit_val_batches=0", "--trainer.enable_progress_bar=false",
               "--model.validation_sample_prompt=null", "--optimizer=AdamW", "--optimizer.lr=2e-4",
               f"--optimizer.fused={'false' if dry else 'true'}"]

    def cli(name: str, max_steps: int, *extra: str) -> Stage:
        run = out / name
        journal = [f"--run_dir={run}", "--journal.attention_every=0", "--journal.progress_every=20",
                   f"--trainer.max_steps={max_steps}"]
        return Stage(name, [py, "-m", "perceiver.scripts.text.clm", "fit", *data, *trainer, *journal, *extra], 300,
                     lambda output, _: run_directory(output, run))

    # compiled on the GPU; the dry run leaves inductor's CPU compilation (minutes of C++) out
    result.append(cli("cli", steps if dry else args.steps, f"--model.compile={'false' if dry else 'true'}"))
    notebook = out / "train_clm.ipynb"
    nb_args = ["-p", "devices", "-1", "-p", "run_dir", str(out / "papermill")]
    nb_args += ["-p", "max_steps", "2", "-p", "max_seq_len", "64"] if dry else []
    result.append(Stage("papermill", [py, "-m", "papermill", str(ROOT / "notebooks" / "train_clm.ipynb"),
                                      str(notebook), *nb_args], 300,
                        lambda output, _: run_directory(output, out / "papermill")))
    result.append(cli("fsdp", steps if dry else 20, f"--trainer.strategy={'ddp' if dry else 'fsdp'}"))
    return result


def run_stage(stage: Stage, out: Path, timeout_s: float) -> dict:
    log = out / f"{stage.name.replace(' ', '_')}.log"
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
           "TOKENIZERS_PARALLELISM": "false", **stage.env}
    if stage.lib == "ours":
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    t = time.perf_counter()
    # a session of its own, so that a timeout ends the stage's children too (data loader workers, a notebook kernel)
    proc = subprocess.Popen(stage.command, cwd=stage.cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)
    try:
        output, _ = proc.communicate(timeout=timeout_s)
        result = stage.parse(output, out)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        output, _ = proc.communicate()
        result = {"status": "timeout", "error": f"exceeded {timeout_s:.0f} s"}
    log.write_text(" ".join(stage.command) + "\n\n" + output)
    return {**result, "stage": stage.name, "wall_s": time.perf_counter() - t, "log": str(log)}


# --- the table ------------------------------------------------------------------------------------------------------


def fmt(x, spec: str = ".3g") -> str:
    return "-" if x is None else format(x, spec)


def pct(x) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def table(results: dict[str, dict], peak, flops_per_step: dict[str, int]) -> str:
    rows = []

    def get(name: str, key: str):
        r = results.get(name, {})
        return r.get(key) if r.get("status") == "ok" else None

    def status(name: str) -> str:
        r = results.get(name)
        if r is None:
            return "not run"
        if r.get("status") == "ok":
            notes = [f"{r['wall_s']:.0f} s"]
            if r.get("compile_error"):
                notes.append(f"compile failed, eager: {r['compile_error'][:60]}")
            return "ok (" + ", ".join(notes) + ")"
        return f"{r.get('status')}: {r.get('error', '')[:90]}"

    def mfu(name: str, kind: str):
        tps = get(name, "tokens_per_s")
        r = results.get(name, {})
        if tps is None or kind not in flops_per_step:
            return None
        return tps / (r["batch"] * r["seq"]) * flops_per_step[kind] / peak.flops_per_s

    def ratio(a, b):
        return None if a is None or not b else a / b

    fl = results.get("flops", {})
    for kind in ("train_clm", "train_mlm"):
        c = fl.get(kind) if fl.get("status") == "ok" else None
        expected = "-" if c is None or c["device_convention"] is None else f"{c['device_convention'] / c['analytic']:.4f}"
        rows.append([f"FLOPs {kind[6:].upper()}: FlopCounterMode / analytic", "ratio",
                     "-" if c is None else f"{c['counted'] / c['analytic']:.4f} (expected {expected})", "-", "-",
                     status("flops")])
    labels = {"train_clm": "CLM 30.6M train, 16x4096, bf16-mixed, compile",
              "train_mlm": "MLM 201M train, 8x2048, bf16-mixed, compile",
              "gen": "generation, greedy cached, batch 1, 512+256"}
    for kind, label in labels.items():
        o, p = f"{kind} ours", f"{kind} pio"
        a, b = get(o, "tokens_per_s"), get(p, "tokens_per_s")
        rows.append([label, "tokens/s", fmt(a, ",.0f"), fmt(b, ",.0f"), fmt(ratio(a, b), ".2f"),
                     f"ours {status(o)}; pio {status(p)}"])
        if kind != "gen":
            rows.append(["", "MFU", pct(mfu(o, kind)), pct(mfu(p, kind)), "-", ""])
    for name, label in (("cli", "CLI fit, CLM 30.6M, sample data, bf16-mixed, compile"),
                        ("papermill", "papermill train_clm.ipynb -p devices -1"),
                        ("fsdp", "CLI fit, CLM 30.6M, FSDP on one GPU")):
        r = results.get(name, {})
        rows.append([label, "tokens/s", fmt(get(name, "tokens_per_s"), ",.0f"), "-", "-", status(name)])
        rows.append(["", "MFU (ComputeMonitor)", pct(get(name, "mfu")), "-", "-",
                     f"device: {r.get('device', '-')}; steps {r.get('steps', '-')}; "
                     f"val_loss {fmt((r.get('final') or {}).get('val_loss'), '.3f')}"])
    header = ["check", "metric", "ours", "perceiver-io 0.11", "ours/pio", "status"]
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    line = lambda r: "| " + " | ".join(str(x).ljust(w) for x, w in zip(r, widths)) + " |"  # noqa: E731
    return "\n".join([line(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|"] + [line(r) for r in rows])


def main(argv: Optional[list[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dry-run", action="store_true", help="tiny models, a few steps, on the CPU")
    p.add_argument("--pio-python", default=None, help="perceiver-io 0.11's interpreter (none: its column is empty)")
    p.add_argument("--steps", type=int, default=200, help="timed training steps per training stage")
    p.add_argument("--budget", type=float, default=None,
                   help="seconds for all stages, later stages are skipped (default 450; dry run 1200)")
    p.add_argument("--only", default=None, help="comma list of stage names (or prefixes) to run")
    p.add_argument("--out", default=str(HERE / "results" / "gpu_check"))
    args = p.parse_args(argv)

    import torch

    from gpu_worker import ours_flops_per_step
    from perceiver.training.compute import device_peak

    args.budget = args.budget or (1200 if args.dry_run else 450)
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    if not args.dry_run and not torch.cuda.is_available():
        print("no CUDA device: run on a GPU machine, or use --dry-run", file=sys.stderr)
        return 2
    device = "cpu" if args.dry_run else "cuda"
    peak = device_peak(device, torch.bfloat16)
    flops_per_step = {kind: ours_flops_per_step(kind, args.dry_run) for kind in ("train_clm", "train_mlm")}
    t0, results = time.perf_counter(), {}
    for stage in stages(args, out):
        if args.only and not any(stage.name.startswith(o) for o in args.only.split(",")):
            continue
        left = args.budget - (time.perf_counter() - t0)
        if left < 20:
            results[stage.name] = {"status": "skipped", "error": f"budget of {args.budget:.0f} s used up"}
            continue
        r = run_stage(stage, out, min(stage.timeout_s, left))
        results[stage.name] = r
        print(f"  {stage.name:16s} {r['status']:8s} {r['wall_s']:6.1f} s  {r.get('error', '')}", file=sys.stderr,
              flush=True)

    text = table(results, peak, flops_per_step)
    name = torch.cuda.get_device_name(0) if device == "cuda" else platform.processor() or platform.machine()
    footer = (f"{'DRY RUN (tiny models on the CPU)' if args.dry_run else name}; peak for MFU {peak}; torch "
              f"{torch.__version__}; {time.perf_counter() - t0:.0f} s of stages; logs and JSON in {out}")
    print(text + "\n\n" + footer)
    (out / "gpu_check.json").write_text(json.dumps(
        {"results": results, "peak": vars(peak), "flops_per_step": flops_per_step, "table": text, "footer": footer,
         "dry_run": args.dry_run}, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
