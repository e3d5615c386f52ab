"""Per-call overhead of the Python ↔ Rust boundary on the seed graph z = x + y (float64 scalars).

Prints, in µs per call (best of 7 repeats), the let/let/run_all/value cycle on a TapeMachine, a
``gr.function`` call, and each step alone, next to reference NumPy calls measured in the same
run (``np.empty(())`` is the floor for any call that returns a new array), so numbers from a
loaded machine can be read as ratios.

Run:  python benches/bridge_overhead.py [--n 200000]
"""

from __future__ import annotations

import argparse
import timeit

import numpy as np

import gorgon_rs as gr


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=200_000)
    n = ap.parse_args().n
    g = gr.Graph()
    x = g.scalar(gr.float64, name="x")
    y = g.scalar(gr.float64, name="y")
    z = x + y
    m = gr.TapeMachine(g)
    f = gr.function([x, y], z)
    x.let(2.0)
    y.let(2.5)
    m.run_all()

    def cycle() -> np.ndarray:
        x.let(2.0)
        y.let(2.5)
        m.run_all()
        return z.value

    cases = {
        "let/let/run_all/value": cycle,
        "gr.function call": lambda: f(2.0, 2.5),
        "x.let(2.0)": lambda: x.let(2.0),
        "m.run_all()": m.run_all,
        "z.value": lambda: z.value,
        "ref: lambda: None": lambda: None,
        "ref: np.empty(())": lambda: np.empty(()),
        "ref: np.float64(1.0)": lambda: np.float64(1.0),
    }
    for name, fn in cases.items():
        fn()
        t = min(timeit.repeat(fn, number=n, repeat=7)) / n * 1e6
        print(f"{name:24s} {t:7.3f} µs")


if __name__ == "__main__":
    main()
