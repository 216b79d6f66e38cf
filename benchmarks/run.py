"""Side-by-side benchmark of this library, perceiver-io 0.11.0 and Hugging Face transformers: prints one table and
writes it as JSON.

    .venv/bin/python benchmarks/run.py                      # all cases, fp32 and bf16-mixed (long: see --help)
    .venv/bin/python benchmarks/run.py --quick --cases clm,gen --precisions fp32
    .venv/bin/python benchmarks/run.py --smoke              # tiny models, seconds; what CI may run

Each (case, precision, library) runs in its own process (``benchmarks/worker.py``), so peak memory is that process's
own maximum RSS. perceiver-io runs in ``benchmarks/.venv-perceiver-io`` (``bash benchmarks/setup_perceiver_io.sh``);
without it its column reads ``n/a``. Hugging Face transformers (the one in this interpreter) has only the MLM.
Timings are never asserted: this is a tool for people.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
from cases import CASES, model_config  # noqa: E402
WORKER = HERE / "worker.py"
PIO_PYTHON = HERE / ".venv-perceiver-io" / "bin" / "python"

GROUPS = {
    "clm": ["clm_train_b2_s4096", "clm_train_b4_s1024", "clm_train_b2_s4096_ckpt"],
    "mlm": ["mlm_s2048", "mlm_s512"],
    "gen": ["gen_b1", "gen_b8"],
    "long": ["long_8k", "long_16k", "long_32k"],
    "smoke": ["smoke_clm", "smoke_mlm", "smoke_gen", "smoke_long"],
}
GROUPS["all"] = GROUPS["clm"] + GROUPS["mlm"] + GROUPS["gen"] + GROUPS["long"]
LABELS = {
    "clm_train_b2_s4096": "CLM train step, 2 x 4096, 512 latents",
    "clm_train_b4_s1024": "CLM train step, 4 x 1024, 256 latents",
    "clm_train_b2_s4096_ckpt": "CLM train step, 2 x 4096, checkpointing",
    "mlm_s2048": "MLM fwd+bwd, 1 x 2048",
    "mlm_s512": "MLM fwd+bwd, 1 x 512",
    "gen_b1": "Greedy gen, cached, batch 1 (tok/s)",
    "gen_b8": "Greedy gen, cached, batch 8 (tok/s)",
    "long_8k": "CLM fwd+bwd, 8k, 1024 latents",
    "long_16k": "CLM fwd+bwd, 16k, 1024 latents",
    "long_32k": "CLM fwd+bwd, 32k, 1024 latents",
    "smoke_clm": "smoke: CLM train step",
    "smoke_mlm": "smoke: MLM fwd+bwd",
    "smoke_gen": "smoke: generation (tok/s)",
    "smoke_long": "smoke: CLM fwd+bwd long",
}


def libs_for(case: str) -> list[str]:
    return ["ours", "pio", "hf"] if "mlm" in case else ["ours", "pio"]


def run_worker(lib: str, case: str, precision: str, args, count_flops: bool) -> dict:
    reps = args.reps if args.reps is not None else (1 if args.quick or args.smoke or precision != "fp32" else 3)
    warmup = args.warmup if args.warmup is not None else (0 if args.smoke else 1)
    cmd = ["--lib", lib, "--case", case, "--precision", precision, "--reps", str(reps), "--warmup", str(warmup),
           "--threads", str(args.threads), "--model-config", json.dumps(model_config(CASES[case]))]
    cmd += ["--count-flops"] if count_flops else []
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))
    if lib == "pio":
        if not PIO_PYTHON.exists():
            return dict(status="n/a", error="benchmarks/.venv-perceiver-io missing (run setup_perceiver_io.sh)")
        env.pop("PYTHONPATH", None)
        argv, cwd = [str(PIO_PYTHON), "-P", str(WORKER)] + cmd, "/tmp"  # -P and /tmp: our package must not shadow
    else:
        env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
        argv, cwd = [sys.executable, str(WORKER)] + cmd, str(ROOT)
    t = time.perf_counter()
    try:
        proc = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=args.timeout)
    except subprocess.TimeoutExpired:
        return dict(status="timeout", error=f"exceeded --timeout {args.timeout} s")
    wall = time.perf_counter() - t
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return dict(json.loads(line[7:]), status="ok", wall_s=wall)
    err = (proc.stderr.strip().splitlines() or ["no output"])[-1]
    if "MemoryError" in proc.stderr or proc.returncode in (-9, 137):
        err = f"out of memory (rc {proc.returncode}): {err}"
    return dict(status="error", error=err, returncode=proc.returncode)


def merge_rounds(prev: dict | None, r: dict) -> dict:
    """One result from several worker processes of the same (case, precision, library): all timed repetitions
    pooled (median over all of them), the highest peak RSS, the median matmul peak."""
    if not prev or prev.get("status") != "ok":
        return r
    if r.get("status") != "ok":
        return prev
    merged = dict(prev, times=prev["times"] + r["times"], rounds=prev.get("rounds", 1) + 1)
    merged["median_s"] = statistics.median(merged["times"])
    merged["max_rss_mb"] = max(prev["max_rss_mb"], r["max_rss_mb"])
    merged["rss_mb_per_round"] = prev.get("rss_mb_per_round", [prev["max_rss_mb"]]) + [r["max_rss_mb"]]
    merged["matmul_gflops_per_round"] = prev.get("matmul_gflops_per_round", [prev["matmul_gflops"]]) + [r["matmul_gflops"]]
    merged["matmul_gflops"] = statistics.median(merged["matmul_gflops_per_round"])
    if "tokens_per_s" in r:
        merged["tokens_per_s"] = r["batch_tokens"] / merged["median_s"]
    return merged


# --- formatting -----------------------------------------------------------------------------------------------------


def value(r: dict, key: str):
    return r.get(key) if r and r.get("status") == "ok" else None


def fmt(x, nd=2):
    if x is None:
        return "-"
    return f"{x:.{nd}f}" if isinstance(x, float) else str(x)


def cell(r: dict, key: str, nd=2) -> str:
    if not r:
        return "-"
    if r.get("status") != "ok":
        return r.get("status", "-")
    return fmt(r.get(key), nd)


def ratio(a, b):
    return a / b if a is not None and b else None


def metric_rows(results: dict, cases: list[str], precisions: list[str]) -> list[list[str]]:
    """Rows: case | precision | metric | ours | pio | hf | ours/pio | ours/hf | ours/pio-fp32."""
    rows = []
    for case in cases:
        gen = "gen" in case
        for prec in precisions:
            rs = {lib: results.get((case, prec, lib), {}) for lib in ["ours", "pio", "hf"]}
            if not any(rs.values()):
                continue  # not run
            pio_fp32 = results.get((case, "fp32", "pio"), {})
            label = LABELS.get(case, case)
            if gen:
                key = "tokens_per_s"
                o, p = value(rs["ours"], key), value(rs["pio"], key)
                rows.append([label, prec, "tokens/s", cell(rs["ours"], key, 1), cell(rs["pio"], key, 1), "-",
                             fmt(ratio(o, p)) + "x" if ratio(o, p) else "-", "-",
                             fmt(ratio(o, value(pio_fp32, key))) + "x" if prec != "fp32" and ratio(o, value(pio_fp32, key)) else "-"])
            else:
                key = "median_s"
                o = value(rs["ours"], key)
                rows.append([label, prec, "time s", cell(rs["ours"], key), cell(rs["pio"], key), cell(rs["hf"], key),
                             fmt(ratio(o, value(rs["pio"], key))), fmt(ratio(o, value(rs["hf"], key))),
                             fmt(ratio(o, value(pio_fp32, key))) if prec != "fp32" else "-"])
                eff = {lib: effective(results, case, prec, lib) for lib in rs}
                rows.append(["", prec, "GFLOP/s (% peak)"] + [
                    "-" if eff[lib] is None else f"{eff[lib][0]:.1f} ({100 * eff[lib][1]:.0f}%)" for lib in rs
                ] + ["-", "-", "-"])
            key = "max_rss_mb"
            o = value(rs["ours"], key)
            rows.append(["", prec, "peak RSS MB", cell(rs["ours"], key, 0), cell(rs["pio"], key, 0),
                         cell(rs["hf"], key, 0) if "mlm" in case else "-",
                         fmt(ratio(o, value(rs["pio"], key))), fmt(ratio(o, value(rs["hf"], key))), "-"])
    return rows


def effective(results: dict, case: str, prec: str, lib: str):
    """(effective GFLOP/s, fraction of the same process's matmul peak). The model's FLOPs are counted by the
    worker's FlopCounterMode in our fp32 run of the same case (the same architecture and shapes in each library)."""
    r = results.get((case, prec, lib), {})
    if r.get("status") != "ok":
        return None
    # model FLOPs: a checkpointing case counts those of its plain twin (its recomputation is not model work)
    twin = case.removesuffix("_ckpt")
    flops = results.get((twin, "fp32", "ours"), {}).get("flops") or r.get("flops")
    if not flops:
        return None
    gflops = flops / r["median_s"] / 1e9
    return gflops, gflops / r["matmul_gflops"]


def growth_rows(results: dict, cases: list[str], precisions: list[str]) -> list[list[str]]:
    longs = [c for c in GROUPS["long"] + ["smoke_long"] if c in cases]
    rows = []
    for prec in precisions:
        for lib in ["ours", "pio"]:
            for a, b in zip(longs, longs[1:]):
                ra, rb = results.get((a, prec, lib), {}), results.get((b, prec, lib), {})
                if not (ra and rb):
                    continue
                rows.append([f"{a} -> {b}", prec, lib,
                             fmt(ratio(value(rb, "max_rss_mb"), value(ra, "max_rss_mb"))),
                             fmt(ratio(value(rb, "median_s"), value(ra, "median_s")))])
    return rows


def table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    line = lambda r: "| " + " | ".join(str(x).ljust(w) for x, w in zip(r, widths)) + " |"  # noqa: E731
    return "\n".join([line(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|"] + [line(r) for r in rows])


def targets(results: dict) -> list[list[str]]:
    """The issue's CPU targets, evaluated on this run's medians."""
    out = []

    def t(case, prec, lib, key="median_s"):
        return value(results.get((case, prec, lib), {}), key)

    def check(name, x, limit, le=True):
        if x is None:
            out.append([name, "-", f"{'<=' if le else '>='} {limit}", "not measured"])
        else:
            ok = x <= limit if le else x >= limit
            out.append([name, f"{x:.2f}", f"{'<=' if le else '>='} {limit}", "met" if ok else "MISSED"])

    for c in GROUPS["clm"]:
        if c.endswith("_ckpt") and t(c, "fp32", "pio") is None:
            # perceiver-io 0.11.0's own activation checkpointing fails (AttributeError in its forward): compare with
            # its run of the plain twin case, i.e. its default configuration
            twin = c.removesuffix("_ckpt")
            check(f"{c} fp32 time / pio (no ckpt)", ratio(t(c, "fp32", "ours"), t(twin, "fp32", "pio")), 1.0)
            check(f"{c} fp32 RSS / pio (no ckpt)", ratio(t(c, "fp32", "ours", "max_rss_mb"),
                                                          t(twin, "fp32", "pio", "max_rss_mb")), 0.6)
            continue
        check(f"{c} bf16 / pio fp32", ratio(t(c, "bf16-mixed", "ours"), t(c, "fp32", "pio")), 0.33)
        check(f"{c} bf16 / pio bf16", ratio(t(c, "bf16-mixed", "ours"), t(c, "bf16-mixed", "pio")), 0.75)
        check(f"{c} fp32 time / pio", ratio(t(c, "fp32", "ours"), t(c, "fp32", "pio")), 1.0)
        check(f"{c} fp32 RSS / pio", ratio(t(c, "fp32", "ours", "max_rss_mb"), t(c, "fp32", "pio", "max_rss_mb")), 0.6)
    for c in GROUPS["mlm"]:
        for other in ["pio", "hf"]:
            check(f"{c} fp32 / {other} fp32", ratio(t(c, "fp32", "ours"), t(c, "fp32", other)), 0.9)
            check(f"{c} bf16 / {other} fp32", ratio(t(c, "bf16-mixed", "ours"), t(c, "fp32", other)), 0.33)
    for prec in ["fp32", "bf16-mixed"]:
        check(f"gen_b1 {prec} tok/s / pio fp32 tok/s",
              ratio(t("gen_b1", prec, "ours", "tokens_per_s"), t("gen_b1", "fp32", "pio", "tokens_per_s")), 5.0, le=False)
    for a, b in zip(GROUPS["long"], GROUPS["long"][1:]):
        for prec in ["fp32", "bf16-mixed"]:
            # at most linear growth: the RSS ratio stays at or below the length ratio (2)
            check(f"{a}->{b} {prec} RSS growth", ratio(t(b, prec, "ours", "max_rss_mb"), t(a, prec, "ours", "max_rss_mb")), 2.0)
    for c in GROUPS["clm"]:
        e = effective(results, c, "bf16-mixed", "ours")
        check(f"{c} bf16 effective / bf16 matmul peak", None if e is None else e[1], 0.5, le=False)
    return [r for r in out if r[3] != "not measured"]


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cases", default=None, help=f"comma list of cases or groups {sorted(GROUPS)} (default: all, or smoke)")
    p.add_argument("--precisions", default="fp32,bf16-mixed")
    p.add_argument("--libs", default="ours,pio,hf")
    p.add_argument("--quick", action="store_true", help="1 timed repetition after 1 warm-up (default: 3 in fp32)")
    p.add_argument("--smoke", action="store_true", help="tiny models, 1 repetition, no warm-up (CI)")
    p.add_argument("--reps", type=int, default=None)
    p.add_argument("--warmup", type=int, default=None, help="untimed steps before timing (default 1; smoke 0)")
    p.add_argument("--rounds", type=int, default=1,
                   help="run each (case, precision) this many times, the libraries taking turns; reps are pooled")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--timeout", type=int, default=1800, help="seconds per worker process")
    p.add_argument("--json", default=str(HERE / "results" / "latest.json"))
    p.add_argument("--from-json", nargs="+", metavar="FILE",
                   help="run nothing: merge the results of earlier runs (e.g. an fp32 and a bf16-mixed one) into one table")
    args = p.parse_args()

    names = []
    for c in (args.cases or ("smoke" if args.smoke else "all")).split(","):
        names += GROUPS.get(c, [c])
    precisions = args.precisions.split(",")
    libs = args.libs.split(",")
    started = datetime.now(timezone.utc)
    load_before = os.getloadavg()

    results = {}
    if args.from_json:
        names, precisions = [], []
        for f in args.from_json:
            data = json.loads(Path(f).read_text())
            for r in data["results"]:
                results[(r["case"], r["precision"], r["lib"])] = r
                names += [] if r["case"] in names else [r["case"]]
                precisions += [] if r["precision"] in precisions else [r["precision"]]
            load_before = tuple(data.get("load_average_before", load_before))
            started = min(started, datetime.fromisoformat(data["date"])) if "date" in data else started
        order = GROUPS["all"] + GROUPS["smoke"]
        names.sort(key=lambda c: order.index(c) if c in order else len(order))
        precisions.sort(key=lambda pr: pr != "fp32")
    for case in [] if args.from_json else names:
        for prec in precisions:
            # the model's FLOPs are counted once, in our fp32 run (same architecture and shapes in every
            # library); bf16-mixed rows and the other libraries use that count (--from-json merges runs)
            count = prec == "fp32" and "gen" not in case
            for rnd in range(args.rounds):  # libraries take turns, so that a slow spell of the machine hits all
                for lib in libs_for(case):
                    if lib not in libs:
                        continue
                    r = run_worker(lib, case, prec, args, count_flops=count and lib == "ours" and rnd == 0)
                    results[(case, prec, lib)] = merge_rounds(results.get((case, prec, lib)), r)
                    msg = (f"{r['median_s']:.3f} s, {r['max_rss_mb']:.0f} MB" if r.get("status") == "ok"
                           else r.get("error"))
                    print(f"  {case:24s} {prec:10s} {lib:5s} round {rnd + 1} {r['status']:7s} {msg}", file=sys.stderr,
                          flush=True)
                    save(args.json, results, started, load_before, "(partial)")  # readable while a long run goes

    header = ["case", "precision", "metric", "ours", "perceiver-io 0.11", "HF", "ours/pio", "ours/HF",
              "ours/pio fp32"]
    text = [table(header, metric_rows(results, names, precisions))]
    g = growth_rows(results, names, precisions)
    if g:
        text += ["", "Long context growth from one length to the next (x2 tokens):", "",
                 table(["lengths", "precision", "lib", "peak RSS ratio", "time ratio"], g)]
    tg = targets(results)
    if tg:
        text += ["", "Targets:", "", table(["target", "measured", "limit", "status"], tg)]
    versions = {lib: {k: r.get(k) for k in ("torch", "transformers")} for (_, _, lib), r in results.items()
                if r.get("status") == "ok"}
    text += ["", f"{started:%Y-%m-%d %H:%M} UTC, {platform.processor() or platform.machine()}, "
                 f"{os.cpu_count()} CPUs, {args.threads} threads, load average before/after "
                 f"{load_before[0]:.2f}/{os.getloadavg()[0]:.2f}, versions {json.dumps(versions)}"]
    print("\n".join(text))

    save(args.json, results, started, load_before, "\n".join(text), tg)
    print(f"\nJSON: {args.json}", file=sys.stderr)


def save(path: str, results: dict, started, load_before, text: str, tg=()) -> None:
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    versions = {lib: {k: r.get(k) for k in ("torch", "transformers")} for (_, _, lib), r in results.items()
                if r.get("status") == "ok"}
    out.write_text(json.dumps(dict(
        date=started.isoformat(), argv=sys.argv[1:], cpu=cpu_name(),
        load_average_before=load_before, load_average_after=os.getloadavg(), versions=versions,
        results=[dict(r, case=c, precision=pr, lib=lib) for (c, pr, lib), r in results.items()],
        targets=[dict(zip(["target", "measured", "limit", "status"], r)) for r in tg],
        table=text,
    ), indent=1))


def cpu_name() -> str:
    try:
        m = re.search(r"model name\s*:\s*(.*)", Path("/proc/cpuinfo").read_text())
        return m.group(1) if m else platform.processor()
    except OSError:
        return platform.processor()


if __name__ == "__main__":
    main()
