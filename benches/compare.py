#!/usr/bin/env python3
"""gorgon_rs against NumPy, PyTorch (CPU, eager) and JAX (jit), measured side by side in ONE
process, each workload's libraries alternated over several rounds.

For every workload it reports the median time per call of each library, the ratio of
gorgon_rs's time to the best other library's time (below 1.0: gorgon_rs is faster), and the
target of the performance issue with whether it is met; at the end a markdown table.

Workloads (``--only`` takes these names, comma-separated):

  seed      z = x + y on float64 scalars: let/let/run_all/value on a TapeMachine and one
            ``gr.function`` call, vs a NumPy 0-d add, a torch eager scalar add and a jit'ed JAX add
  matmul    ``a @ b`` through ``gr.function``: float32 N = 256, 512, 1024, 2048 and float64 1024 (GFLOP/s)
  fused     tanh(a*b + c) on 16M float32 through ``gr.function`` (elementwise fusion)
  sum       sum of a 4096×4096 float32 matrix: all / axis 0 / axis 1
  mlp       training step 784-512-256-10, ReLU, batch 128, softmax cross-entropy, SGD
  convnet   training step, batch 64 of 1×28×28: conv(1→32, 3×3, pad 1), relu, maxpool 2,
            conv(32→64, 3×3, pad 1), relu, maxpool 2, dense 3136→128, relu, dense 128→10,
            cross-entropy, SGD
  chain     a 2,000-op elementwise chain on a 1,000-vector: build + compile time and time per
            call (NumPy eager; JAX jit: trace + compile time and time per call)
  compile   compiling a 10,000-node graph (``gr.function`` and ``TapeMachine``)

Fairness: every library gets the same thread count (``--threads``, default 2):
GORGON_NUM_THREADS, OMP_NUM_THREADS, OPENBLAS_NUM_THREADS, MKL_NUM_THREADS,
``torch.set_num_threads``; on a machine with more cores the process is pinned to that many
CPUs (which also caps JAX/XLA). OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE, which some machines set
to work around old OpenBLAS bugs, slow a current NumPy down: the script re-executes itself once
with both removed (for this process only) and prints which BLAS kernel NumPy then runs
(threadpoolctl, when installed). The equivalent by hand:
``env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benches/compare.py``.

Run:  python benches/compare.py [--quick] [--only seed,matmul] [--json out.json] [--rounds N]
(``make bench`` installs torch and jax when it can, then runs this.)

The harness (timing, rows and targets, libraries) is ``_compare_harness.py``; the workloads
are ``_compare_workloads.py`` and ``_compare_training.py`` beside this script.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
from typing import Optional

from _compare_harness import Libs, Row, _fmt_time
from _compare_workloads import Bench

WORKLOADS = ("seed", "matmul", "fused", "sum", "mlp", "convnet", "chain", "compile")
_DROP_ENV = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
_CHILD_FLAG = "GORGON_BENCH_CHILD"


def _parse_args(argv: Optional[list[str]] = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="few rounds and small sizes (a smoke test, not a measurement)")
    ap.add_argument("--only", default="", help=f"comma-separated workloads out of: {','.join(WORKLOADS)}")
    ap.add_argument("--json", default=None, metavar="PATH", help="also write every sample and result to this JSON file")
    ap.add_argument("--rounds", type=int, default=None, help="alternation rounds per workload (default 7, quick 3)")
    ap.add_argument("--threads", type=int, default=2, help="threads for every library (default 2)")
    ap.add_argument("--libs", default="numpy,torch,jax", help="comparison libraries to try (default numpy,torch,jax)")
    ap.add_argument("--keep-env", action="store_true", help="do not re-execute with OPENBLAS_CORETYPE/OPENBLAS_L2_SIZE removed")
    ap.add_argument("--omp-passive", action="store_true",
                    help="OMP_WAIT_POLICY=PASSIVE (PyTorch's OpenMP threads sleep instead of spinning: on a machine shared "
                         "with other jobs, spinning 2-thread barriers collapse; this gives torch numbers that mean something there)")
    return ap.parse_args(argv)


def _reexec_with_clean_env(args: argparse.Namespace) -> None:
    """Re-executes this script once, with thread counts set and the OpenBLAS overrides removed.

    Thread-count variables must be in the environment before NumPy/torch load their BLAS, so
    this happens before any of them is imported.
    """
    if os.environ.get(_CHILD_FLAG) == "1":
        return
    env = dict(os.environ)
    dropped = [] if args.keep_env else [k for k in _DROP_ENV if k in env]
    for k in dropped:
        env.pop(k)
    n = str(args.threads)
    for k in ("GORGON_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[k] = n
    if args.omp_passive:
        env["OMP_WAIT_POLICY"] = "PASSIVE"
    env.setdefault("JAX_PLATFORMS", "cpu")
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env[_CHILD_FLAG] = "1"
    env["GORGON_BENCH_DROPPED_ENV"] = ",".join(f"{k}={os.environ[k]}" for k in dropped)
    sys.stdout.flush()
    os.execve(sys.executable, [sys.executable, os.path.abspath(__file__), *sys.argv[1:]], env)


def _fmt_cell(row: Row, lib: str, stat: str) -> str:
    m = row.values(stat)
    if lib not in m:
        return "—"
    t = m[lib]
    cell = _fmt_time(t)
    if row.flops:
        cell = f"{row.flops / t / 1e9:.1f} GFLOP/s ({cell})"
    return cell


def markdown_table(rows: list[Row], libs: list[str], stat: str = "median") -> str:
    head = ["workload", *libs, "gorgon_rs ÷ best other", "target", "met?"]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] * len(head)) + "|"]
    for row in rows:
        rb = row.ratio_vs_best(stat)
        ratio = f"{rb[0]:.2f}× ({rb[1]})" if rb else "—"
        tgt, met = [], []
        for t, ok, msg in row.checks(stat):
            tgt.append(t.text)
            met.append(("n/a" if ok is None else ("yes" if ok else "**no**")) + f": {msg}")
        cells = [row.name, *[_fmt_cell(row, lib, stat) for lib in libs], ratio, "; ".join(tgt) or "—", "; ".join(met) or "—"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def machine_info(libs: Libs, threads: int) -> list[str]:
    import numpy as np

    import gorgon_rs as gr

    cpu = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    out = [
        f"date: {datetime.datetime.now().astimezone().isoformat(timespec='seconds')}",
        f"command: {' '.join([os.path.relpath(sys.executable), *[os.path.relpath(sys.argv[0])], *sys.argv[1:]])}",
        f"machine: {cpu}; {os.cpu_count()} logical CPUs"
        + (f" (this process pinned to {len(os.sched_getaffinity(0))})" if hasattr(os, "sched_getaffinity") else "")
        + f"; {platform.system()} {platform.release()} {platform.machine()}",
    ]
    try:
        la = os.getloadavg()
        out.append(f"load average at start: {la[0]:.2f} {la[1]:.2f} {la[2]:.2f} (other processes share these cores)")
    except OSError:
        pass
    if os.environ.get("OMP_WAIT_POLICY"):
        out.append(f"OMP_WAIT_POLICY={os.environ['OMP_WAIT_POLICY']}")
    out.append(f"threads: {threads} for every library (GORGON_NUM_THREADS={os.environ.get('GORGON_NUM_THREADS')}, "
               f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}, OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS')}"
               + (f", torch.get_num_threads()={libs.torch.get_num_threads()}" if libs.torch is not None else "") + ")")
    dropped = os.environ.get("GORGON_BENCH_DROPPED_ENV", "")
    out.append(f"removed from this process's environment: {dropped or 'nothing (OPENBLAS_CORETYPE/OPENBLAS_L2_SIZE were not set)'}")
    vers = dict(libs.versions)
    vers["gorgon_rs"] = f"{gr.__version__} (SIMD: {gr.simd_level()})"
    try:
        import subprocess

        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        rev = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=root, capture_output=True, text=True, timeout=10).stdout.strip()
        so = [os.path.join(os.path.dirname(gr.__file__), f) for f in os.listdir(os.path.dirname(gr.__file__)) if f.startswith("_native")]
        built = datetime.datetime.fromtimestamp(os.path.getmtime(so[0])).isoformat(timespec="seconds") if so else "?"
        out.append(f"gorgon_rs source: git {rev or '?'}; extension built {built}")
    except (OSError, subprocess.SubprocessError):
        pass
    out.append("versions: " + ", ".join(f"{k} {v}" for k, v in vers.items()))
    for k, why in libs.skipped.items():
        out.append(f"skipped {k}: {why}")
    try:
        from threadpoolctl import threadpool_info

        for p in threadpool_info():
            out.append(f"threadpool: {p.get('internal_api')} {p.get('version')} kernel={p.get('architecture')} "
                       f"threads={p.get('num_threads')} ({os.path.basename(p.get('filepath', ''))}, {p.get('user_api')})")
    except ImportError:
        cfg = getattr(np, "show_runtime", None)
        out.append("threadpoolctl is not installed: cannot tell which BLAS kernel NumPy runs"
                   + (" (np.show_runtime() prints it)" if cfg else ""))
    return out


def main() -> int:
    args = _parse_args()
    _reexec_with_clean_env(args)
    only = [w.strip() for w in args.only.split(",") if w.strip()] or list(WORKLOADS)
    bad = [w for w in only if w not in WORKLOADS]
    if bad:
        print(f"unknown workload(s) {bad}; choose from {', '.join(WORKLOADS)}", file=sys.stderr)
        return 2
    if hasattr(os, "sched_setaffinity") and len(os.sched_getaffinity(0)) > args.threads:
        os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[: args.threads])

    libs = Libs([s.strip() for s in args.libs.split(",") if s.strip()], args.threads)
    info = machine_info(libs, args.threads)
    print("# gorgon_rs benchmark" + (" (--quick: a smoke test, not a measurement)" if args.quick else ""))
    for line in info:
        print(line)
    bench = Bench(args, libs)
    print(f"rounds per workload: {bench.rounds}; ~{bench.target_s:g} s of calls per sample; median of rounds reported\n")
    sys.stdout.flush()
    failures: dict[str, str] = {}
    for w in only:
        print(f"## {w}")
        try:
            getattr(bench, w)()
        except Exception as e:  # noqa: BLE001 - report, go on with the others, fail at the end
            import traceback

            traceback.print_exc()
            failures[w] = f"{type(e).__name__}: {e}"
            print(f"  {w} FAILED: {failures[w]}")
        print()
    try:
        la = os.getloadavg()
        print(f"load average at end: {la[0]:.2f} {la[1]:.2f} {la[2]:.2f}\n")
    except OSError:
        pass
    table = markdown_table(bench.rows, libs.columns())
    table_p10 = markdown_table(bench.rows, libs.columns(), "p10")
    print("## Results: median per call (ratio = gorgon_rs time ÷ best other library's time; below 1 gorgon_rs is faster)\n")
    print(table)
    print("\n## Same run, 10th percentile of the samples (less sensitive to other processes on a shared machine)\n")
    print(table_p10)
    if failures:
        print("\nfailed workloads: " + "; ".join(f"{k}: {v}" for k, v in failures.items()))
    if args.json:
        payload = {
            "info": info,
            "args": vars(args),
            "rows": [
                {"group": r.group, "name": r.name, "samples_s": r.samples, "median_s": r.medians, "p10_s": r.values("p10"),
                 "flops": r.flops, "ratio_vs_best": r.ratio_vs_best(), "ratio_vs_best_p10": r.ratio_vs_best("p10"),
                 "labels": r.labels, "note": r.note,
                 "targets": [{"text": t.text, "met": ok, "detail": msg} for t, ok, msg in r.checks()],
                 "targets_p10": [{"text": t.text, "met": ok, "detail": msg} for t, ok, msg in r.checks("p10")]}
                for r in bench.rows
            ],
            "failures": failures,
            "table": table,
            "table_p10": table_p10,
        }
        with open(args.json, "w") as fh:
            json.dump(payload, fh, indent=1)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
