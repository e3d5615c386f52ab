"""The workloads of ``benches/compare.py`` as the methods of ``Bench`` (``--only`` names them):
``seed``, ``matmul``, ``fused``, ``sum``, ``chain`` and ``compile`` here; ``mlp`` and ``convnet``
come from ``_compare_training``. Each imports NumPy, gorgon_rs and the other libraries when it
runs, checks that the libraries agree on the result, then measures them side by side."""

from __future__ import annotations

import itertools
import os
import statistics
import time
from typing import Any

from _compare_harness import Case, Row, Target, _fmt_time, measure
from _compare_training import TrainingWorkloads


class Bench(TrainingWorkloads):
    """Every workload of ``compare.WORKLOADS`` as a method of the same name."""

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
