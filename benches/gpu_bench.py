"""GPU benchmarks of issue 5: gorgon_rs ``device="cuda"`` against PyTorch CUDA, in one process.

Rows (each gorgon_rs row runs a ``TapeMachine(device="cuda")`` whose inputs were bound once,
so its values stay on the device between runs, as torch's tensors do):

  copy      device-to-device copy of 64M float32 through torch (the bandwidth ceiling,
            counting bytes read plus bytes written)
  matmul    a @ b, float32, N = 4096 (target >= 0.9x torch's speed)
  fused     tanh(a*b + c) on 64M float32 (target >= 80% of the copy bandwidth, counting
            3 reads + 1 write)
  mlp       training step 784-512-256-10, ReLU, batch 128, cross-entropy, SGD (target <= 1.2x torch)
  convnet   training step of the training issue's convnet, batch 64 (target <= 1.2x torch)

Run on a GPU machine: ``python benches/gpu_bench.py [--out results.md]``. Every timing is
the median of several rounds after warm-up, with the GPU synchronized around each round
(gorgon_rs's ``run_all`` returns only when the GPU has finished).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from typing import Any, Callable, Optional

import numpy as np

import gorgon_rs as gr


def timeit(fn: Callable[[], Any], sync: Callable[[], None], min_time: float = 0.2, rounds: int = 7) -> float:
    """Median seconds per call of ``fn`` (calls batched so a round lasts ~min_time/rounds)."""
    fn()
    sync()
    t0 = time.perf_counter()
    fn()
    sync()
    one = max(time.perf_counter() - t0, 1e-7)
    reps = max(1, int(min_time / rounds / one))
    times = []
    for _ in range(rounds):
        sync()
        t0 = time.perf_counter()
        for _ in range(reps):
            fn()
        sync()
        times.append((time.perf_counter() - t0) / reps)
    return statistics.median(times)


def no_sync() -> None:
    pass


def time_training(g: gr.Graph, loss: gr.Node, params: list[gr.Node], lr: float) -> tuple[float, float, float, float]:
    """Times SGD training steps on a CUDA TapeMachine: returns the first loss and the seconds
    per step, per ``run_all`` alone and per ``SGD.step`` alone; prints a traced run."""
    opt = gr.solvers.SGD(lr=lr)
    with gr.TapeMachine(g, device="cuda") as m:
        def step() -> None:
            m.run_all()
            opt.step(params)

        step()
        first = float(loss.value)
        ours = timeit(step, no_sync)
        run_only = timeit(m.run_all, no_sync)
        solver_only = timeit(lambda: opt.step(params), no_sync)
    print_trace(g)
    return first, ours, run_only, solver_only


def print_trace(g: gr.Graph, top: int = 10) -> None:
    """Prints the slowest instructions of one traced run (each synchronized) and the total."""
    with gr.TapeMachine(g, device="cuda", trace=True) as mt:
        mt.run_all()
        mt.run_all()
        lines = mt.trace
    total = sum(float(line.split()[-2]) for line in lines)
    slow = sorted(lines, key=lambda line: -float(line.split()[-2]))[:top]
    print(f"{len(lines)} instructions, {total:.0f} µs traced; slowest:\n  " + "\n  ".join(slow), flush=True)


class Bench:
    def __init__(self) -> None:
        self.rows: list[tuple[str, str, str, str, str]] = []
        try:
            import torch

            self.torch: Optional[Any] = torch if torch.cuda.is_available() else None
        except Exception:  # noqa: BLE001 - torch is optional
            self.torch = None
        self.rng = np.random.default_rng(0)

    def tsync(self) -> None:
        if self.torch is not None:
            self.torch.cuda.synchronize()

    def add(self, work: str, ours: float, theirs: Optional[float], target: str, extra: str = "") -> None:
        ratio = f"{ours / theirs:.2f}x torch's time" if theirs else "-"
        self.rows.append((work, f"{ours * 1e3:.3f} ms", f"{theirs * 1e3:.3f} ms" if theirs else "-", ratio, f"{target} {extra}".strip()))
        print(f"{work:34s} gorgon_rs {ours * 1e3:9.3f} ms   torch {theirs * 1e3 if theirs else float('nan'):9.3f} ms   {ratio}   {extra}", flush=True)

    def copy_bandwidth(self) -> Optional[float]:
        if self.torch is None:
            return None
        t = self.torch
        a = t.randn(64 << 20, device="cuda")
        b = t.empty_like(a)
        s = timeit(lambda: b.copy_(a), self.tsync)
        bw = 2 * a.numel() * 4 / s
        self.rows.append(("d2d copy 64M f32 (torch)", "-", f"{s * 1e3:.3f} ms", "-", f"{bw / 1e9:.0f} GB/s read+write"))
        print(f"copy: {bw / 1e9:.0f} GB/s", flush=True)
        return bw

    def matmul(self, n: int = 4096) -> None:
        a, b = (self.rng.standard_normal((n, n)).astype(np.float32) for _ in range(2))
        g = gr.Graph()
        A = g.matrix(gr.float32, (n, n), name="a", value=a)
        B = g.matrix(gr.float32, (n, n), name="b", value=b)
        C = A @ B
        with gr.TapeMachine(g, device="cuda") as m:
            ours = timeit(m.run_all, no_sync)
            got = np.array(C.value)
        ref = a[:256].astype(np.float64) @ b.astype(np.float64)
        err = np.linalg.norm(got[:256] - ref) / np.linalg.norm(ref)
        theirs = None
        if self.torch is not None:
            t = self.torch
            ta, tb = t.from_numpy(a).cuda(), t.from_numpy(b).cuda()
            theirs = timeit(lambda: ta @ tb, self.tsync)
        flops = 2 * n**3
        self.add(f"matmul f32 {n}", ours, theirs, "target >= 0.9x speed", f"{flops / ours / 1e12:.1f} TFLOP/s, rel err {err:.1e}")

    def fused(self, n: int = 64 << 20, copy_bw: Optional[float] = None) -> None:
        a, b, c = (self.rng.standard_normal(n).astype(np.float32) for _ in range(3))
        g = gr.Graph()
        A, B, Cn = (g.vector(gr.float32, n, name=k, value=v) for k, v in zip("abc", (a, b, c)))
        y = gr.tanh(A * B + Cn)
        with gr.TapeMachine(g, device="cuda", outputs=[y]) as m:  # outputs only: the tree fuses
            ours = timeit(m.run_all, no_sync)
            got = np.array(y.value)
        ref = np.tanh(a[: 1 << 20].astype(np.float64) * b[: 1 << 20] + c[: 1 << 20])
        err = float(np.max(np.abs(got[: 1 << 20] - ref)))
        theirs = None
        if self.torch is not None:
            t = self.torch
            ta, tb, tc = (t.from_numpy(v).cuda() for v in (a, b, c))
            theirs = timeit(lambda: t.tanh(ta * tb + tc), self.tsync)
        bw = 4 * n * 4 / ours
        frac = f", {bw / copy_bw:.0%} of copy bandwidth" if copy_bw else ""
        self.add("tanh(a*b+c) 64M f32", ours, theirs, "target >= 80% of copy bw", f"{bw / 1e9:.0f} GB/s{frac}, max err {err:.1e}")

    def mlp(self) -> None:
        batch, sizes, lr = 128, (784, 512, 256, 10), 0.01
        X = self.rng.standard_normal((batch, sizes[0])).astype(np.float32)
        Y = self.rng.integers(0, sizes[-1], batch).astype(np.int64)
        init_w = [(self.rng.standard_normal((i, o)) * np.sqrt(2.0 / i)).astype(np.float32) for i, o in zip(sizes, sizes[1:])]
        g = gr.Graph()
        x = g.matrix(gr.float32, (batch, sizes[0]), name="X", value=X)
        y = g.vector(gr.int64, batch, name="y", value=Y)
        params = []
        h = x
        for k, w0 in enumerate(init_w):
            W = g.matrix(gr.float32, w0.shape, name=f"W{k}", value=w0)
            bb = g.vector(gr.float32, w0.shape[1], name=f"b{k}", value=np.zeros(w0.shape[1], np.float32))
            params += [W, bb]
            h = gr.nn.linear(h, W, bb)
            if k < len(init_w) - 1:
                h = gr.relu(h)
        loss = gr.nn.cross_entropy(h, y)
        gr.grad(loss, params)
        first, ours, run_only, solver_only = time_training(g, loss, params, lr)
        theirs = None
        if self.torch is not None:
            t = self.torch
            layers: list[Any] = []
            for k, w0 in enumerate(init_w):
                lin = t.nn.Linear(*w0.shape)
                with t.no_grad():
                    lin.weight.copy_(t.from_numpy(w0.T.copy()))
                    lin.bias.zero_()
                layers.append(lin)
                if k < len(init_w) - 1:
                    layers.append(t.nn.ReLU())
            model = t.nn.Sequential(*layers).cuda()
            topt = t.optim.SGD(model.parameters(), lr=lr)
            tX, tY = t.from_numpy(X).cuda(), t.from_numpy(Y).cuda()

            def tstep() -> Any:
                topt.zero_grad()
                tl = t.nn.functional.cross_entropy(model(tX), tY)
                tl.backward()
                topt.step()
                return tl

            tfirst = float(tstep())
            assert abs(tfirst - first) < 1e-3 * max(1.0, abs(first)), f"MLP loss differs: {first} vs torch {tfirst}"
            theirs = timeit(tstep, self.tsync)
        self.add("MLP step 784-512-256-10 b128", ours, theirs, "target <= 1.2x torch",
                 f"run_all {run_only * 1e3:.3f} ms + SGD.step {solver_only * 1e3:.3f} ms")

    def convnet(self, batch: int = 64) -> None:
        lr = 0.01
        X = self.rng.standard_normal((batch, 1, 28, 28)).astype(np.float32)
        Y = self.rng.integers(0, 10, batch).astype(np.int64)

        def he(shape: tuple[int, ...], fan_in: int) -> Any:
            return (self.rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(np.float32)

        w = {"c1": he((32, 1, 3, 3), 9), "c2": he((64, 32, 3, 3), 288), "d1": he((3136, 128), 3136), "d2": he((128, 10), 128)}
        nb = {"c1": 32, "c2": 64, "d1": 128, "d2": 10}
        g = gr.Graph()
        x = g.tensor(gr.float32, X.shape, name="X", value=X)
        y = g.vector(gr.int64, batch, name="y", value=Y)
        P = {k: g.tensor(gr.float32, v.shape, name=f"w_{k}", value=v) for k, v in w.items()}
        Bn = {k: g.vector(gr.float32, n, name=f"b_{k}", value=np.zeros(n, np.float32)) for k, n in nb.items()}
        h = gr.nn.max_pool2d(gr.relu(gr.nn.conv2d(x, P["c1"], Bn["c1"], padding=1)), 2)
        h = gr.nn.max_pool2d(gr.relu(gr.nn.conv2d(h, P["c2"], Bn["c2"], padding=1)), 2)
        h = h.reshape(batch, 3136)
        h = gr.relu(gr.nn.linear(h, P["d1"], Bn["d1"]))
        loss = gr.nn.cross_entropy(gr.nn.linear(h, P["d2"], Bn["d2"]), y)
        params = [*P.values(), *Bn.values()]
        gr.grad(loss, params)
        first, ours, run_only, solver_only = time_training(g, loss, params, lr)
        theirs = None
        if self.torch is not None:
            t = self.torch
            nn = t.nn
            model = nn.Sequential(nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                                  nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                                  nn.Linear(3136, 128), nn.ReLU(), nn.Linear(128, 10))
            with t.no_grad():
                for layer, k in zip([model[0], model[3], model[7], model[9]], ["c1", "c2", "d1", "d2"]):
                    wk = w[k] if w[k].ndim == 4 else w[k].T.copy()
                    layer.weight.copy_(t.from_numpy(wk))
                    layer.bias.zero_()
            model = model.cuda()
            topt = t.optim.SGD(model.parameters(), lr=lr)
            tX, tY = t.from_numpy(X).cuda(), t.from_numpy(Y).cuda()

            def tstep() -> Any:
                topt.zero_grad()
                tl = nn.functional.cross_entropy(model(tX), tY)
                tl.backward()
                topt.step()
                return tl

            tfirst = float(tstep())
            assert abs(tfirst - first) < 1e-3 * max(1.0, abs(first)), f"convnet loss differs: {first} vs torch {tfirst}"
            theirs = timeit(tstep, self.tsync)
        self.add(f"convnet step b{batch}", ours, theirs, "target <= 1.2x torch",
                 f"run_all {run_only * 1e3:.3f} ms + SGD.step {solver_only * 1e3:.3f} ms")


def main(argv: Optional[list[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", help="write the markdown table here")
    ap.add_argument("--only", nargs="*", default=None, help="rows to run (copy matmul fused mlp convnet)")
    args = ap.parse_args(argv)
    if not gr.cuda.is_available():
        print(f"no CUDA device: {gr.cuda.unavailable_reason()}")
        return 0
    b = Bench()
    want = set(args.only or ["copy", "matmul", "fused", "mlp", "convnet"])
    bw = None
    steps: list[tuple[str, Callable[[], Any]]] = [
        ("copy", lambda: None),
        ("matmul", b.matmul),
        ("fused", lambda: b.fused(copy_bw=bw)),
        ("mlp", b.mlp),
        ("convnet", b.convnet),
    ]
    if "copy" in want:
        bw = b.copy_bandwidth()
    for name, fn in steps[1:]:
        if name in want:
            try:
                fn()
            except Exception as e:  # noqa: BLE001 - report and go on with the other rows
                print(f"{name}: FAILED: {type(e).__name__}: {e}", flush=True)
                b.rows.append((name, "FAILED", "-", "-", f"{type(e).__name__}: {str(e)[:120]}"))
    dev = gr.TapeMachine(gr.Graph(), device="cuda")
    lines = [f"device: {dev.device_name}; torch {b.torch.__version__ if b.torch else 'not installed'}", "",
             "| work | gorgon_rs | torch | ratio | notes |", "|---|---|---|---|---|"]
    dev.close()
    lines += [f"| {' | '.join(r)} |" for r in b.rows]
    text = "\n".join(lines)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
