"""The measuring harness of ``benches/compare.py``: timing of the cases (rotated rounds,
calibrated repetitions), the result rows with their targets, the comparison libraries, and the
base of the workload classes.

Nothing here imports NumPy, torch or JAX at module level: ``compare.py`` must set the thread
counts in the environment (and re-execute itself) before any of them loads its BLAS.
"""

from __future__ import annotations

import argparse
import gc
import itertools
import platform
import statistics
import sys
import time
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Optional


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
    # As timeit does: no cyclic garbage collection inside the timed region (reference
    # counting still frees everything promptly; no explicit collection is needed).
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        for r in range(rounds):
            k = r % len(names)
            for name in names[k:] + names[:k]:
                c = cases[name]
                if c.oneshot is not None:
                    samples[name].append(c.oneshot())
                elif single[name]:
                    samples[name].extend(_timed_calls(c.fn, reps[name]))  # type: ignore[arg-type]
                else:
                    samples[name].append(loops[name](reps[name]) / reps[name])
    finally:
        if was_enabled:
            gc.enable()
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


# ----------------------------------------------------------------------------------------------
# Workloads (base)
# ----------------------------------------------------------------------------------------------

class BenchBase:
    """What every workload uses: the options, the libraries, the random source, and the rows
    measured so far (printed as they come). The workloads are methods of the subclasses
    (``_compare_training.TrainingWorkloads``, ``_compare_workloads.Bench``)."""

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
