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
"""

from __future__ import annotations

import argparse
import datetime
import gc
import itertools
import json
import os
import platform
import statistics
import sys
import time
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

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


# ----------------------------------------------------------------------------------------------
# Timing
# ----------------------------------------------------------------------------------------------

@dataclass
class Case:
    """One library's implementation of a workload.

    ``fn()`` runs one call. Or ``loop(reps) -> seconds`` times ``reps`` calls itself (for
    sub-microsecond calls, to keep the harness's own frame out of the measurement). Or
    ``oneshot() -> seconds`` measures one expensive event (a compile) per round.
    """
    fn: Optional[Callable[[], Any]] = None
    loop: Optional[Callable[[int], float]] = None
    oneshot: Optional[Callable[[], float]] = None


def _loop_of(fn: Callable[[], Any]) -> Callable[[int], float]:
    def loop(reps: int) -> float:
        rep = itertools.repeat(None, reps)
        t0 = time.perf_counter()
        for _ in rep:
            fn()
        return time.perf_counter() - t0
    return loop


def _calibrate(loop: Callable[[int], float], target_s: float) -> int:
    reps = 1
    while True:
        t = loop(reps)
        if t >= target_s / 4 or reps >= 1 << 22:
            break
        reps *= 2 if t <= 0 else min(16, max(2, int(target_s / 4 / max(t, 1e-9)) + 1))
    per = t / reps
    return max(1, min(1 << 24, int(target_s / max(per, 1e-9))))


def _timed_calls(fn: Callable[[], Any], reps: int) -> list[float]:
    out = []
    clock = time.perf_counter
    for _ in itertools.repeat(None, reps):
        t0 = clock()
        fn()
        out.append(clock() - t0)
    return out


#: Calls at least this long are timed one by one (so percentiles of single calls can be
#: reported); shorter ones are timed as a loop and give one mean per round.
SINGLE_CALL_MIN_S = 20e-6


def measure(cases: dict[str, Case], rounds: int, target_s: float) -> dict[str, list[float]]:
    """Seconds per call of each case. Calls of 20 µs or more are timed one by one (every call
    is a sample); shorter ones as a loop (one mean per round). Each round runs every case for
    about ``target_s``, and the order of the cases rotates from round to round, so a slow phase
    of the machine is shared out among them."""
    loops: dict[str, Callable[[int], float]] = {}
    reps: dict[str, int] = {}
    single: dict[str, bool] = {}
    for name, c in cases.items():
        if c.oneshot is not None:
            continue
        loop = c.loop or _loop_of(c.fn)  # type: ignore[arg-type]
        loop(1)  # warm-up (JIT compiles, first-touch allocations)
        loops[name] = loop
        reps[name] = _calibrate(loop, target_s)
        single[name] = c.fn is not None and target_s / reps[name] >= SINGLE_CALL_MIN_S
    samples: dict[str, list[float]] = {k: [] for k in cases}
    names = list(cases)
    for r in range(rounds):
        k = r % len(names)
        for name in names[k:] + names[:k]:
            c = cases[name]
            gc.collect()
            if c.oneshot is not None:
                samples[name].append(c.oneshot())
            elif single[name]:
                samples[name].extend(_timed_calls(c.fn, reps[name]))  # type: ignore[arg-type]
            else:
                samples[name].append(loops[name](reps[name]) / reps[name])
    return samples


def percentile(v: list[float], q: float) -> float:
    """The q-quantile (0…1) of v, linearly interpolated."""
    s = sorted(v)
    if len(s) == 1:
        return s[0]
    x = q * (len(s) - 1)
    i = int(x)
    j = min(i + 1, len(s) - 1)
    return s[i] + (s[j] - s[i]) * (x - i)


# ----------------------------------------------------------------------------------------------
# Results and targets
# ----------------------------------------------------------------------------------------------

@dataclass
class Target:
    """``kind``: "time_le" (gorgon_rs's time ÷ ref's ≤ value), "speed_ge" (ref's time ÷
    gorgon_rs's ≥ value) or "abs_le" (gorgon_rs's time ≤ value seconds). ``ref`` is a library
    name or "best" (the best other library)."""
    kind: str
    value: float
    ref: str = "best"
    text: str = ""

    def check(self, gr_t: float, times: dict[str, float]) -> tuple[Optional[bool], str]:
        if self.kind == "abs_le":
            return gr_t <= self.value, f"{_fmt_time(gr_t)} vs ≤ {_fmt_time(self.value)}"
        if self.ref == "best":
            others = {k: v for k, v in times.items() if k != "gorgon_rs"}
            if not others:
                return None, "no other library"
            ref_t = min(others.values())
        elif self.ref in times:
            ref_t = times[self.ref]
        else:
            return None, f"{self.ref} not measured"
        if self.kind == "time_le":
            r = gr_t / ref_t
            return r <= self.value, f"{r:.2f}× {self.ref}'s time (≤ {self.value:g})"
        r = ref_t / gr_t
        return r >= self.value, f"{r:.2f}× {self.ref}'s speed (≥ {self.value:g})"


@dataclass
class Row:
    group: str
    name: str
    samples: dict[str, list[float]]
    flops: Optional[float] = None
    targets: list[Target] = field(default_factory=list)
    labels: dict[str, str] = field(default_factory=dict)  # library -> what its column measures
    note: str = ""

    def values(self, stat: str = "median") -> dict[str, float]:
        """Seconds per call of each library: ``median`` or ``p10`` (10th percentile) of the samples."""
        return {k: stat_of(v, stat) for k, v in self.samples.items() if v}

    @property
    def medians(self) -> dict[str, float]:
        return self.values("median")

    def ratio_vs_best(self, stat: str = "median") -> Optional[tuple[float, str]]:
        m = self.values(stat)
        if "gorgon_rs" not in m:
            return None
        others = {k: v for k, v in m.items() if k != "gorgon_rs"}
        if not others:
            return None
        best = min(others, key=others.__getitem__)
        return m["gorgon_rs"] / others[best], best

    def checks(self, stat: str = "median") -> list[tuple[Target, Optional[bool], str]]:
        m = self.values(stat)
        return [(t, *t.check(m.get("gorgon_rs", float("nan")), m)) for t in self.targets]


def stat_of(v: list[float], stat: str) -> float:
    return statistics.median(v) if stat == "median" else percentile(v, 0.10)


def _fmt_time(s: float) -> str:
    if s >= 1.0:
        return f"{s:.3g} s"
    if s >= 1e-3:
        return f"{s * 1e3:.3g} ms"
    if s >= 1e-6:
        return f"{s * 1e6:.3g} µs"
    return f"{s * 1e9:.3g} ns"


def _fmt_cell(row: Row, lib: str, stat: str) -> str:
    m = row.values(stat)
    if lib not in m:
        return "—"
    t = m[lib]
    cell = _fmt_time(t)
    if row.flops:
        cell = f"{row.flops / t / 1e9:.1f} GFLOP/s ({cell})"
    return cell


def print_row(row: Row) -> None:
    m, p10 = row.medians, row.values("p10")
    parts = []
    for lib, t in m.items():
        s = row.samples[lib]
        spread = f" p10 {_fmt_time(p10[lib])} [{_fmt_time(min(s))}…{_fmt_time(max(s))}, {len(s)} samples]" if len(s) > 1 else ""
        gf = f" = {row.flops / t / 1e9:.1f} GFLOP/s" if row.flops else ""
        lab = f" ({row.labels[lib]})" if lib in row.labels else ""
        parts.append(f"    {lib:10s}{lab} median {_fmt_time(t)}{gf}{spread}")
    print(f"  {row.name}")
    print("\n".join(parts))
    rb = row.ratio_vs_best()
    if rb:
        print(f"    gorgon_rs ÷ best other ({rb[1]}): {rb[0]:.2f}× (median), "
              f"{row.ratio_vs_best('p10')[0]:.2f}× (p10)")  # type: ignore[index]
    for t, ok, msg in row.checks():
        state = "n/a" if ok is None else ("MET" if ok else "MISSED")
        print(f"    target {t.text}: {state} ({msg})")
    sys.stdout.flush()


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


# ----------------------------------------------------------------------------------------------
# Libraries
# ----------------------------------------------------------------------------------------------

class Libs:
    """The comparison libraries that could be imported, and why the others were skipped."""

    def __init__(self, wanted: list[str], threads: int) -> None:
        import numpy as np

        self.np = np
        self.torch: Any = None
        self.jax: Any = None
        self.jnp: Any = None
        self.skipped: dict[str, str] = {}
        self.versions: dict[str, str] = {"python": platform.python_version(), "numpy": np.__version__}
        if "torch" in wanted:
            try:
                import torch

                torch.set_num_threads(threads)
                try:
                    torch.set_num_interop_threads(1)
                except RuntimeError:
                    pass
                self.torch = torch
                self.versions["torch"] = torch.__version__
            except Exception as e:  # noqa: BLE001 - any import failure means "skip it"
                self.skipped["torch"] = f"not importable ({type(e).__name__}: {e})"
        else:
            self.skipped["torch"] = "not requested (--libs)"
        if "jax" in wanted:
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    import jax
                    import jax.numpy as jnp

                    jax.config.update("jax_enable_x64", True)  # float64 workloads; float32 ones pass explicit float32 arrays
                    jax.numpy.zeros(1).block_until_ready()
                self.jax, self.jnp = jax, jnp
                self.versions["jax"] = jax.__version__
                try:
                    import jaxlib

                    self.versions["jaxlib"] = jaxlib.__version__
                except ImportError:
                    pass
            except Exception as e:  # noqa: BLE001
                self.skipped["jax"] = f"not importable ({type(e).__name__}: {e})"
        else:
            self.skipped["jax"] = "not requested (--libs)"
        if "numpy" not in wanted:
            self.skipped["numpy"] = "not requested (--libs)"
        self.use_numpy = "numpy" in wanted

    def columns(self) -> list[str]:
        cols = ["gorgon_rs"]
        if self.use_numpy:
            cols.append("numpy")
        if self.torch is not None:
            cols.append("torch")
        if self.jax is not None:
            cols.append("jax")
        return cols


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


# ----------------------------------------------------------------------------------------------
# Workloads
# ----------------------------------------------------------------------------------------------

class Bench:
    def __init__(self, args: argparse.Namespace, libs: Libs) -> None:
        self.args = args
        self.libs = libs
        self.quick = args.quick
        self.rounds = args.rounds or (3 if args.quick else 7)
        self.target_s = 0.03 if args.quick else 0.25  # seconds of calls per sample
        self.rows: list[Row] = []
        import numpy as np

        self.rng = np.random.default_rng(0)

    def add(self, row: Row) -> None:
        self.rows.append(row)
        print_row(row)

    def run_cases(self, group: str, name: str, cases: dict[str, Case], **kw: Any) -> Row:
        rounds = kw.pop("rounds", self.rounds)
        samples = measure(cases, rounds, kw.pop("target_s", self.target_s))
        row = Row(group, name, samples, **kw)
        self.add(row)
        return row

    # -- 5. seed graph ---------------------------------------------------------------------------

    def seed(self) -> None:
        import numpy as np

        import gorgon_rs as gr

        g = gr.Graph()
        x = g.scalar(gr.float64, name="x")
        y = g.scalar(gr.float64, name="y")
        z = x + y
        m = gr.TapeMachine(g)
        f = gr.function([x, y], z)

        def cycle_loop(reps: int) -> float:
            xl, yl, run = x.let, y.let, m.run_all
            rep = itertools.repeat(None, reps)
            t0 = time.perf_counter()
            for _ in rep:
                xl(2.0)
                yl(2.5)
                run()
                z.value
            return time.perf_counter() - t0

        def call_loop(reps: int) -> float:
            rep = itertools.repeat(None, reps)
            t0 = time.perf_counter()
            for _ in rep:
                f(2.0, 2.5)
            return time.perf_counter() - t0

        cycle_loop(1)
        assert float(z.value) == 4.5 and float(f(2.0, 2.5)) == 4.5
        a, b = np.array(2.0), np.array(2.5)
        add = np.add

        def np_loop(reps: int) -> float:
            rep = itertools.repeat(None, reps)
            t0 = time.perf_counter()
            for _ in rep:
                add(a, b)
            return time.perf_counter() - t0

        others: dict[str, Case] = {}
        if self.libs.use_numpy:
            others["numpy"] = Case(loop=np_loop)
        if self.libs.torch is not None:
            torch = self.libs.torch
            ta, tb = torch.tensor(2.0, dtype=torch.float64), torch.tensor(2.5, dtype=torch.float64)

            def torch_loop(reps: int) -> float:
                rep = itertools.repeat(None, reps)
                t0 = time.perf_counter()
                for _ in rep:
                    ta + tb
                return time.perf_counter() - t0

            others["torch"] = Case(loop=torch_loop)
        if self.libs.jax is not None:
            jnp = self.libs.jnp
            jadd = self.libs.jax.jit(lambda p, q: p + q)
            ja, jb = jnp.asarray(2.0, dtype=jnp.float64), jnp.asarray(2.5, dtype=jnp.float64)

            def jax_loop(reps: int) -> float:
                rep = itertools.repeat(None, reps)
                t0 = time.perf_counter()
                for _ in rep:
                    jadd(ja, jb).block_until_ready()
                return time.perf_counter() - t0

            others["jax"] = Case(loop=jax_loop)
        labels = {"numpy": "np.add on 0-d arrays", "torch": "eager 0-d tensor add", "jax": "jit add + block_until_ready"}
        self.run_cases("seed", "seed z=x+y: let/let/run_all/value (TapeMachine)", {"gorgon_rs": Case(loop=cycle_loop), **others},
                       targets=[Target("abs_le", 1e-6, text="≤ 1 µs per cycle")], labels=labels)
        self.run_cases("seed", "seed z=x+y: gr.function call", {"gorgon_rs": Case(loop=call_loop), **others},
                       targets=[Target("abs_le", 0.5e-6, text="≤ 0.5 µs per call")], labels=labels)
        m.close()
        f.close()

    # -- 1. matmul -------------------------------------------------------------------------------

    def matmul(self) -> None:
        import numpy as np

        import gorgon_rs as gr

        sizes = [(256, "float32"), (512, "float32")] if self.quick else \
            [(256, "float32"), (512, "float32"), (1024, "float32"), (2048, "float32"), (1024, "float64")]
        for n, dt in sizes:
            A = self.rng.standard_normal((n, n)).astype(dt)
            B = self.rng.standard_normal((n, n)).astype(dt)
            g = gr.Graph()
            a = g.matrix(dt, (n, n), name="a")
            b = g.matrix(dt, (n, n), name="b")
            f = gr.function([a, b], a @ b)
            ref = A @ B
            got = f(A, B)
            tol = 1e-3 if dt == "float32" else 1e-9
            assert np.allclose(got, ref, rtol=tol, atol=tol * n), "gorgon_rs matmul result differs from NumPy"
            cases = {"gorgon_rs": Case(fn=lambda: f(A, B))}
            if self.libs.use_numpy:
                cases["numpy"] = Case(fn=lambda: A @ B)
            if self.libs.torch is not None:
                torch = self.libs.torch
                tA, tB = torch.from_numpy(A), torch.from_numpy(B)
                cases["torch"] = Case(fn=lambda: torch.mm(tA, tB))
            if self.libs.jax is not None:
                jmm = self.libs.jax.jit(lambda p, q: p @ q)
                jA, jB = self.libs.jnp.asarray(A), self.libs.jnp.asarray(B)
                cases["jax"] = Case(fn=lambda: jmm(jA, jB).block_until_ready())
            targets = [Target("speed_ge", 0.9, "numpy", "≥ 0.9× NumPy's GFLOP/s")] if (dt == "float32" and n >= 1024) else []
            self.run_cases("matmul", f"matmul {dt} N={n}", cases, flops=2.0 * n ** 3, targets=targets)
            f.close()

    # -- 2. fused elementwise --------------------------------------------------------------------

    def fused(self) -> None:
        import numpy as np

        import gorgon_rs as gr

        n = 1 << 20 if self.quick else 1 << 24
        A, B, C = (self.rng.standard_normal(n).astype(np.float32) for _ in range(3))
        g = gr.Graph()
        a, b, c = (g.vector(gr.float32, n, name=k) for k in "abc")
        f = gr.function([a, b, c], gr.tanh(a * b + c))
        assert np.allclose(f(A, B, C), np.tanh(A * B + C), atol=1e-5)
        cases = {"gorgon_rs": Case(fn=lambda: f(A, B, C))}
        if self.libs.use_numpy:
            cases["numpy"] = Case(fn=lambda: np.tanh(A * B + C))
        if self.libs.torch is not None:
            torch = self.libs.torch
            tA, tB, tC = (torch.from_numpy(v) for v in (A, B, C))
            cases["torch"] = Case(fn=lambda: torch.tanh(tA * tB + tC))
        if self.libs.jax is not None:
            jnp = self.libs.jnp
            jf = self.libs.jax.jit(lambda p, q, r: jnp.tanh(p * q + r))
            jA, jB, jC = (jnp.asarray(v) for v in (A, B, C))
            cases["jax"] = Case(fn=lambda: jf(jA, jB, jC).block_until_ready())
        self.run_cases("fused", f"tanh(a*b+c) float32 n={n:,}", cases,
                       targets=[Target("speed_ge", 2.5, "numpy", "≥ 2.5× NumPy's speed")])
        f.close()

    # -- 3. sums ---------------------------------------------------------------------------------

    def sum(self) -> None:
        import numpy as np

        import gorgon_rs as gr

        n = 1024 if self.quick else 4096
        X = self.rng.standard_normal((n, n)).astype(np.float32)
        for axis in (None, 0, 1):
            g = gr.Graph()
            x = g.matrix(gr.float32, (n, n), name="x")
            f = gr.function([x], x.sum(axis=axis))
            assert np.allclose(f(X), X.sum(axis=axis, dtype=np.float64), rtol=1e-3, atol=1e-2)
            cases = {"gorgon_rs": Case(fn=lambda: f(X))}
            if self.libs.use_numpy:
                cases["numpy"] = Case(fn=lambda: X.sum(axis=axis))
            if self.libs.torch is not None:
                tX = self.libs.torch.from_numpy(X)
                cases["torch"] = Case(fn=(lambda: tX.sum()) if axis is None else (lambda: tX.sum(dim=axis)))
            if self.libs.jax is not None:
                jnp = self.libs.jnp
                jf = self.libs.jax.jit(lambda p: jnp.sum(p, axis=axis))
                jX = jnp.asarray(X)
                cases["jax"] = Case(fn=lambda: jf(jX).block_until_ready())
            self.run_cases("sum", f"sum {n}×{n} float32 axis={axis}", cases,
                           targets=[Target("time_le", 1.0, "best", "≤ 1.0× the best other's time")])
            f.close()

    # -- 4. MLP step -----------------------------------------------------------------------------

    def mlp(self) -> None:
        import numpy as np

        import gorgon_rs as gr

        batch, sizes, lr = 128, (784, 512, 256, 10), 0.01
        X = self.rng.standard_normal((batch, sizes[0])).astype(np.float32)
        Y = self.rng.integers(0, sizes[-1], batch).astype(np.int64)
        init_w = [(self.rng.standard_normal((i, o)) * np.sqrt(2.0 / i)).astype(np.float32) for i, o in zip(sizes, sizes[1:])]

        gr.seed(0)
        g = gr.Graph()
        x = g.matrix(gr.float32, (batch, sizes[0]), name="X")
        y = g.vector(gr.int64, batch, name="y")
        params = []
        h = x
        for k, w0 in enumerate(init_w):
            W = g.matrix(gr.float32, w0.shape, name=f"W{k}", value=w0)
            b = g.vector(gr.float32, w0.shape[1], name=f"b{k}", init=gr.init.zeros())
            params += [W, b]
            h = gr.nn.linear(h, W, b)
            if k < len(init_w) - 1:
                h = gr.relu(h)
        loss = gr.nn.cross_entropy(h, y)
        gr.grad(loss, params)
        m = gr.TapeMachine(g)
        opt = gr.solvers.SGD(lr=lr)
        x.let(X)
        y.let(Y)

        def gr_step() -> None:
            x.let(X)
            y.let(Y)
            m.run_all()
            opt.step(params)

        gr_step()
        first = float(loss.value)
        cases = {"gorgon_rs": Case(fn=gr_step)}
        labels = {"gorgon_rs": "TapeMachine.run_all + SGD.step", "numpy": "no autodiff: not run"}
        if self.libs.torch is not None:
            torch = self.libs.torch
            nn = torch.nn
            layers: list[Any] = []
            for k, w0 in enumerate(init_w):
                lin = nn.Linear(*w0.shape)
                with torch.no_grad():
                    lin.weight.copy_(torch.from_numpy(w0.T.copy()))
                    lin.bias.zero_()
                layers.append(lin)
                if k < len(init_w) - 1:
                    layers.append(nn.ReLU())
            model = nn.Sequential(*layers)
            topt = torch.optim.SGD(model.parameters(), lr=lr)
            tX, tY = torch.from_numpy(X), torch.from_numpy(Y)

            def torch_step() -> None:
                topt.zero_grad()
                tl = torch.nn.functional.cross_entropy(model(tX), tY)
                tl.backward()
                topt.step()

            with torch.no_grad():
                tfirst = float(torch.nn.functional.cross_entropy(model(tX), tY))
            assert abs(tfirst - first) < 1e-3 * max(1.0, abs(first)), f"MLP loss differs: gorgon_rs {first}, torch {tfirst}"
            cases["torch"] = Case(fn=torch_step)
            labels["torch"] = "eager forward+backward+SGD.step"
        if self.libs.jax is not None:
            jax, jnp = self.libs.jax, self.libs.jnp

            def jloss(p: list[Any], xb: Any, yb: Any) -> Any:
                hh = xb
                for k in range(0, len(p), 2):
                    hh = hh @ p[k] + p[k + 1]
                    if k < len(p) - 2:
                        hh = jax.nn.relu(hh)
                logp = jax.nn.log_softmax(hh, axis=-1)
                return -jnp.mean(jnp.take_along_axis(logp, yb[:, None], axis=1))

            @jax.jit
            def jstep(p: list[Any], xb: Any, yb: Any) -> tuple[list[Any], Any]:
                lv, gs = jax.value_and_grad(jloss)(p, xb, yb)
                return [w - lr * gw for w, gw in zip(p, gs)], lv

            jp = [jnp.asarray(a) for w0 in init_w for a in (w0, np.zeros(w0.shape[1], np.float32))]
            jX, jY = jnp.asarray(X), jnp.asarray(Y)
            state = {"p": jp}
            _, jfirst = jstep(jp, jX, jY)
            assert abs(float(jfirst) - first) < 1e-3 * max(1.0, abs(first)), f"MLP loss differs: gorgon_rs {first}, jax {float(jfirst)}"

            def jax_step() -> None:
                p, lv = jstep(state["p"], jX, jY)
                lv.block_until_ready()
                state["p"] = p

            cases["jax"] = Case(fn=jax_step)
            labels["jax"] = "jit(value_and_grad + SGD update)"
        self.run_cases("mlp", "MLP step 784-512-256-10, batch 128", cases, labels=labels,
                       targets=[Target("time_le", 1.0, "jax", "≤ 1.0× JAX jit"), Target("time_le", 1.0, "torch", "≤ 1.0× PyTorch eager")])
        m.close()

    # -- 6. convnet step -------------------------------------------------------------------------

    def convnet(self) -> None:
        import numpy as np

        import gorgon_rs as gr

        batch, lr = (16 if self.quick else 64), 0.01
        X = self.rng.standard_normal((batch, 1, 28, 28)).astype(np.float32)
        Y = self.rng.integers(0, 10, batch).astype(np.int64)

        def he(shape: tuple[int, ...], fan_in: int) -> Any:
            return (self.rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(np.float32)

        w = {"c1": he((32, 1, 3, 3), 9), "c2": he((64, 32, 3, 3), 288), "d1": he((3136, 128), 3136), "d2": he((128, 10), 128)}
        bias = {"c1": 32, "c2": 64, "d1": 128, "d2": 10}

        g = gr.Graph()
        x = g.tensor(gr.float32, X.shape, name="X")
        y = g.vector(gr.int64, batch, name="y")
        P = {k: g.tensor(gr.float32, v.shape, name=f"w_{k}", value=v) for k, v in w.items()}
        Bn = {k: g.vector(gr.float32, n, name=f"b_{k}", init=gr.init.zeros()) for k, n in bias.items()}
        h = gr.nn.max_pool2d(gr.relu(gr.nn.conv2d(x, P["c1"], Bn["c1"], padding=1)), 2)
        h = gr.nn.max_pool2d(gr.relu(gr.nn.conv2d(h, P["c2"], Bn["c2"], padding=1)), 2)
        h = h.reshape(batch, 3136)
        h = gr.relu(gr.nn.linear(h, P["d1"], Bn["d1"]))
        logits = gr.nn.linear(h, P["d2"], Bn["d2"])
        loss = gr.nn.cross_entropy(logits, y)
        params = [*P.values(), *Bn.values()]
        gr.grad(loss, params)
        m = gr.TapeMachine(g)
        opt = gr.solvers.SGD(lr=lr)

        def gr_step() -> None:
            x.let(X)
            y.let(Y)
            m.run_all()
            opt.step(params)

        gr_step()
        first = float(loss.value)
        cases = {"gorgon_rs": Case(fn=gr_step)}
        labels = {"gorgon_rs": "TapeMachine.run_all + SGD.step"}
        if self.libs.torch is not None:
            torch = self.libs.torch
            nn = torch.nn
            model = nn.Sequential(nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                                  nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                                  nn.Linear(3136, 128), nn.ReLU(), nn.Linear(128, 10))
            with torch.no_grad():
                for mod, k in ((model[0], "c1"), (model[3], "c2")):
                    mod.weight.copy_(torch.from_numpy(w[k]))
                    mod.bias.zero_()
                for mod, k in ((model[7], "d1"), (model[9], "d2")):
                    mod.weight.copy_(torch.from_numpy(w[k].T.copy()))
                    mod.bias.zero_()
                tfirst = float(torch.nn.functional.cross_entropy(model(torch.from_numpy(X)), torch.from_numpy(Y)))
            assert abs(tfirst - first) < 1e-3 * max(1.0, abs(first)), f"convnet loss differs: gorgon_rs {first}, torch {tfirst}"
            topt = torch.optim.SGD(model.parameters(), lr=lr)
            tX, tY = torch.from_numpy(X), torch.from_numpy(Y)

            def torch_step() -> None:
                topt.zero_grad()
                torch.nn.functional.cross_entropy(model(tX), tY).backward()
                topt.step()

            cases["torch"] = Case(fn=torch_step)
            labels["torch"] = "eager forward+backward+SGD.step"
        if self.libs.jax is not None:
            jax, jnp = self.libs.jax, self.libs.jnp
            lax = jax.lax

            def conv(h: Any, k: Any, b: Any) -> Any:
                o = lax.conv_general_dilated(h, k, (1, 1), ((1, 1), (1, 1)), dimension_numbers=("NCHW", "OIHW", "NCHW"))
                return o + b[None, :, None, None]

            def pool(h: Any) -> Any:
                return lax.reduce_window(h, -jnp.inf, lax.max, (1, 1, 2, 2), (1, 1, 2, 2), "VALID")

            def jloss(p: dict[str, Any], xb: Any, yb: Any) -> Any:
                hh = pool(jax.nn.relu(conv(xb, p["c1"], p["bc1"])))
                hh = pool(jax.nn.relu(conv(hh, p["c2"], p["bc2"])))
                hh = hh.reshape(hh.shape[0], -1)
                hh = jax.nn.relu(hh @ p["d1"] + p["bd1"])
                lg = hh @ p["d2"] + p["bd2"]
                return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(lg, axis=-1), yb[:, None], axis=1))

            @jax.jit
            def jstep(p: dict[str, Any], xb: Any, yb: Any) -> tuple[dict[str, Any], Any]:
                lv, gs = jax.value_and_grad(jloss)(p, xb, yb)
                return jax.tree_util.tree_map(lambda a, da: a - lr * da, p, gs), lv

            jp = {k: jnp.asarray(v) for k, v in w.items()}
            jp.update({f"b{k}": jnp.zeros(n, jnp.float32) for k, n in bias.items()})
            jX, jY = jnp.asarray(X), jnp.asarray(Y)
            _, jfirst = jstep(jp, jX, jY)
            assert abs(float(jfirst) - first) < 1e-3 * max(1.0, abs(first)), f"convnet loss differs: gorgon_rs {first}, jax {float(jfirst)}"
            state = {"p": jp}

            def jax_step() -> None:
                p, lv = jstep(state["p"], jX, jY)
                lv.block_until_ready()
                state["p"] = p

            cases["jax"] = Case(fn=jax_step)
            labels["jax"] = "jit(value_and_grad + SGD update)"
        self.run_cases("convnet", f"convnet step, batch {batch}", cases, labels=labels,
                       targets=[Target("time_le", 1.0, "torch", "≤ 1.0× PyTorch eager"), Target("time_le", 1.5, "torch", "≤ 1.5× PyTorch (minimum)")])
        m.close()

    # -- 7. 2,000-op elementwise chain -----------------------------------------------------------

    @staticmethod
    def _chain_ops(n_ops: int) -> list[tuple[str, float]]:
        """The chain as (op, constant) steps: x = tanh(x)*0.5 + 0.1, then x = sigmoid(x)*1.5 - 0.2, alternating."""
        pats = [[("tanh", 0.0), ("mul", 0.5), ("add", 0.1)], [("sigmoid", 0.0), ("mul", 1.5), ("sub", 0.2)]]
        out: list[tuple[str, float]] = []
        k = 0
        while len(out) < n_ops:
            out.extend(pats[k % 2])
            k += 1
        return out[:n_ops]

    def chain(self) -> None:
        import numpy as np

        import gorgon_rs as gr

        n_ops, n = (300 if self.quick else 2000), 1000
        ops = self._chain_ops(n_ops)
        X = self.rng.standard_normal(n).astype(np.float32)

        def gr_build() -> tuple[Any, Any]:
            g = gr.Graph()
            x = g.vector(gr.float32, n, name="x")
            h = x
            for op, c in ops:
                if op == "tanh":
                    h = gr.tanh(h)
                elif op == "sigmoid":
                    h = gr.sigmoid(h)
                elif op == "mul":
                    h = h * c
                elif op == "add":
                    h = h + c
                else:
                    h = h - c
            return x, h

        def np_chain(v: Any) -> Any:
            for op, c in ops:
                if op == "tanh":
                    v = np.tanh(v)
                elif op == "sigmoid":
                    v = 1.0 / (1.0 + np.exp(-v))
                elif op == "mul":
                    v = v * np.float32(c)
                elif op == "add":
                    v = v + np.float32(c)
                else:
                    v = v - np.float32(c)
            return v

        built: dict[str, Any] = {}

        def gr_build_compile() -> float:
            t0 = time.perf_counter()
            x, h = gr_build()
            t1 = time.perf_counter()
            f = gr.function([x], h)
            t2 = time.perf_counter()
            built.setdefault("build", []).append(t1 - t0)
            built.setdefault("compile", []).append(t2 - t1)
            built["f"] = f
            return t2 - t0

        gr_build_compile()
        f = built["f"]
        ref = np_chain(X)
        assert np.allclose(f(X), ref, atol=1e-4), "gorgon_rs chain result differs from NumPy"
        compile_cases = {"gorgon_rs": Case(oneshot=gr_build_compile)}
        run_cases: dict[str, Case] = {"gorgon_rs": Case(fn=lambda: built["f"](X))}
        if self.libs.use_numpy:
            run_cases["numpy"] = Case(fn=lambda: np_chain(X))
        if self.libs.jax is not None:
            jax, jnp = self.libs.jax, self.libs.jnp
            jX = jnp.asarray(X)

            def make_jax_fn() -> Any:
                def fn(v: Any) -> Any:
                    for op, c in ops:
                        if op == "tanh":
                            v = jnp.tanh(v)
                        elif op == "sigmoid":
                            v = jax.nn.sigmoid(v)
                        elif op == "mul":
                            v = v * c
                        elif op == "add":
                            v = v + c
                        else:
                            v = v - c
                    return v
                return jax.jit(fn)

            jf_holder: dict[str, Any] = {}

            def jax_compile() -> float:
                t0 = time.perf_counter()
                jf = make_jax_fn()
                jf(jX).block_until_ready()  # trace + lower + compile + first run
                dt = time.perf_counter() - t0
                jf_holder["f"] = jf
                return dt

            jax_compile()
            assert np.allclose(np.asarray(jf_holder["f"](jX)), ref, atol=1e-4), "JAX chain result differs from NumPy"
            compile_cases["jax"] = Case(oneshot=jax_compile)
            run_cases["jax"] = Case(fn=lambda: jf_holder["f"](jX).block_until_ready())
        crounds = 3 if self.quick else 5
        row = self.run_cases("chain", f"chain of {n_ops} elementwise ops on {n}-vector: build+compile", compile_cases, rounds=crounds,
                             labels={"gorgon_rs": "graph build in Python + gr.function compile", "jax": "trace + compile + first call"},
                             targets=[Target("abs_le", 20e-3, text="≤ 20 ms")])
        bm, cm = statistics.median(built["build"]), statistics.median(built["compile"])
        row.note = f"gorgon_rs split: build {_fmt_time(bm)}, compile {_fmt_time(cm)}"
        print(f"    {row.note}")
        self.add(Row("chain", f"chain of {n_ops} ops: gr.function compile only", {"gorgon_rs": built["compile"]},
                     targets=[Target("abs_le", 20e-3, text="≤ 20 ms")]))
        self.run_cases("chain", f"chain of {n_ops} ops: per call", run_cases,
                       labels={"numpy": "eager", "jax": "jit"}, targets=[Target("time_le", 1.0, "jax", "≤ 1.0× JAX jit")])

    # -- 8. compile of a 10,000-node graph -------------------------------------------------------

    def compile(self) -> None:
        import gorgon_rs as gr

        n_nodes = 2000 if self.quick else 10_000

        def build() -> tuple[Any, Any, Any]:
            g = gr.Graph()
            x = g.vector(gr.float32, 16, name="x")
            c = g.vector(gr.float32, 16, name="c")
            h = x
            k = 0
            while len(g) < n_nodes:
                h = (h + c) if k % 2 == 0 else gr.tanh(h)
                k += 1
            return g, x, h

        g, x, h = build()
        size = len(g)

        def fn_compile() -> float:
            t0 = time.perf_counter()
            f = gr.function([x], h)
            dt = time.perf_counter() - t0
            f.close()
            return dt

        def tape_compile() -> float:
            t0 = time.perf_counter()
            m = gr.TapeMachine(g)
            dt = time.perf_counter() - t0
            m.close()
            return dt

        old = os.environ.get("GORGON_FUSE")

        def unfused_compile() -> float:
            os.environ["GORGON_FUSE"] = "0"
            try:
                return fn_compile()
            finally:
                if old is None:
                    os.environ.pop("GORGON_FUSE", None)
                else:
                    os.environ["GORGON_FUSE"] = old

        rounds = 3 if self.quick else 5
        tgt = [Target("abs_le", 50e-3, text="≤ 50 ms")]
        self.add(Row("compile", f"compile {size:,}-node graph: gr.function (fused)", measure({"gorgon_rs": Case(oneshot=fn_compile)}, rounds, 0), targets=tgt))
        self.add(Row("compile", f"compile {size:,}-node graph: gr.function, GORGON_FUSE=0", measure({"gorgon_rs": Case(oneshot=unfused_compile)}, rounds, 0), targets=tgt))
        self.add(Row("compile", f"compile {size:,}-node graph: TapeMachine (whole graph)", measure({"gorgon_rs": Case(oneshot=tape_compile)}, rounds, 0), targets=tgt))
        bt = []
        for _ in range(rounds):
            t0 = time.perf_counter()
            build()
            bt.append(time.perf_counter() - t0)
        self.add(Row("compile", f"build {size:,}-node graph in Python (for reference)", {"gorgon_rs": bt}))


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
