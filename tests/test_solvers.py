"""gr.solvers against NumPy re-implementations of PyTorch's documented update formulas.

Each test trains two float64 parameters of a separable quadratic cost (gradient A·w + B, known
in closed form) for several steps on a TapeMachine and compares every step with the reference
at rtol 1e-12, with and without the common options (l1, l2, clip, batch_size), whose order is
g/batch_size → clip → + l2·w + l1·sign(w) → rule.
"""

from __future__ import annotations

import numpy as np
import pytest

import gorgon_rs as gr

N_STEPS = 6


# ---------------------------------------------------------------------------------------------
# NumPy references (PyTorch's algorithms, float64)
# ---------------------------------------------------------------------------------------------


def prep(g, w, l1=0.0, l2=0.0, clip=None, batch_size=1):
    g = g / batch_size
    if clip is not None:
        g = np.clip(g, -clip, clip)
    return g + l2 * w + l1 * np.sign(w)


class RefSGD:
    def __init__(self, lr=0.01, momentum=0.0, nesterov=False, dampening=0.0, **common):
        self.lr, self.mu, self.nesterov, self.damp, self.common = lr, momentum, nesterov, dampening, common
        self.buf = {}

    def step(self, ws, gs, t):
        for k in ws:
            d = prep(gs[k], ws[k], **self.common)
            if self.mu != 0:
                if t == 1:
                    self.buf[k] = d.copy()
                else:
                    self.buf[k] = self.mu * self.buf[k] + (1 - self.damp) * d
                d = d + self.mu * self.buf[k] if self.nesterov else self.buf[k]
            ws[k] = ws[k] - self.lr * d


class RefMomentum(RefSGD):
    def __init__(self, lr=0.001, momentum=0.9, **kw):
        super().__init__(lr=lr, momentum=momentum, **kw)


class RefAdaGrad:
    def __init__(self, lr=0.01, eps=1e-10, initial_accumulator_value=0.0, **common):
        self.lr, self.eps, self.init, self.common = lr, eps, initial_accumulator_value, common
        self.s = {}

    def step(self, ws, gs, t):
        for k in ws:
            d = prep(gs[k], ws[k], **self.common)
            s = self.s.get(k, np.full_like(ws[k], self.init)) + d * d
            self.s[k] = s
            ws[k] = ws[k] - self.lr * d / (np.sqrt(s) + self.eps)


class RefRMSProp:
    def __init__(self, lr=0.01, alpha=0.99, eps=1e-8, **common):
        self.lr, self.alpha, self.eps, self.common = lr, alpha, eps, common
        self.v = {}

    def step(self, ws, gs, t):
        for k in ws:
            d = prep(gs[k], ws[k], **self.common)
            v = self.alpha * self.v.get(k, np.zeros_like(ws[k])) + (1 - self.alpha) * d * d
            self.v[k] = v
            ws[k] = ws[k] - self.lr * d / (np.sqrt(v) + self.eps)


class RefAdam:
    decoupled = False

    def __init__(self, lr=0.001, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0, **common):
        self.lr, self.b1, self.b2, self.eps, self.wd, self.common = lr, beta1, beta2, eps, weight_decay, common
        self.m, self.v = {}, {}

    def step(self, ws, gs, t):
        for k in ws:
            d = prep(gs[k], ws[k], **self.common)
            w = ws[k]
            if self.decoupled:
                w = w * (1 - self.lr * self.wd)
            m = self.b1 * self.m.get(k, np.zeros_like(w)) + (1 - self.b1) * d
            v = self.b2 * self.v.get(k, np.zeros_like(w)) + (1 - self.b2) * d * d
            self.m[k], self.v[k] = m, v
            bc1, bc2 = 1 - self.b1**t, 1 - self.b2**t
            # torch: denom = sqrt(v)/sqrt(bc2) + eps; w -= lr/bc1 * m/denom
            ws[k] = w - (self.lr / bc1) * m / (np.sqrt(v) / np.sqrt(bc2) + self.eps)


class RefAdamW(RefAdam):
    decoupled = True

    def __init__(self, lr=0.001, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.01, **common):
        super().__init__(lr, beta1, beta2, eps, weight_decay, **common)


class RefAdaDelta:
    def __init__(self, lr=1.0, rho=0.9, eps=1e-6, **common):
        self.lr, self.rho, self.eps, self.common = lr, rho, eps, common
        self.v, self.u = {}, {}

    def step(self, ws, gs, t):
        for k in ws:
            d = prep(gs[k], ws[k], **self.common)
            v = self.rho * self.v.get(k, np.zeros_like(d)) + (1 - self.rho) * d * d
            u = self.u.get(k, np.zeros_like(d))
            delta = np.sqrt(u + self.eps) / np.sqrt(v + self.eps) * d
            self.u[k] = self.rho * u + (1 - self.rho) * delta * delta
            self.v[k] = v
            ws[k] = ws[k] - self.lr * delta


class RefBB:
    def __init__(self, lr=0.001, **common):
        self.lr, self.common = lr, common
        self.prev_w = self.prev_g = None

    def step(self, ws, gs, t):
        keys = list(ws)
        ds = {k: prep(gs[k], ws[k], **self.common) for k in keys}
        wcat = np.concatenate([ws[k].ravel() for k in keys])
        gcat = np.concatenate([ds[k].ravel() for k in keys])
        if t == 1:
            eta = self.lr
        else:
            dw, dg = wcat - self.prev_w, gcat - self.prev_g
            den = float(dg @ dg)
            eta = float(dw @ dg) / den if den > 0 else self.lr
        self.prev_w, self.prev_g = wcat, gcat
        for k in keys:
            ws[k] = ws[k] - eta * ds[k]


REFS = {
    "SGD": RefSGD, "Momentum": RefMomentum, "AdaGrad": RefAdaGrad, "RMSProp": RefRMSProp, "Adam": RefAdam,
    "AdamW": RefAdamW, "AdaDelta": RefAdaDelta, "BarzilaiBorwein": RefBB,
}

COMMON = dict(l1=0.01, l2=0.02, clip=0.5, batch_size=4)

CASES = [
    ("SGD", dict(lr=0.1)),
    ("SGD", dict(lr=0.1, momentum=0.9)),
    ("SGD", dict(lr=0.1, momentum=0.9, nesterov=True)),
    ("SGD", dict(lr=0.05, momentum=0.5, dampening=0.3)),
    ("Momentum", dict()),
    ("Momentum", dict(lr=0.05, momentum=0.8)),
    ("AdaGrad", dict(lr=0.1)),
    ("AdaGrad", dict(lr=0.1, initial_accumulator_value=0.5)),
    ("RMSProp", dict(lr=0.01, alpha=0.9)),
    ("Adam", dict(lr=0.01)),
    ("Adam", dict(lr=0.05, beta1=0.5, beta2=0.9, eps=1e-6)),
    ("AdamW", dict(lr=0.01, weight_decay=0.1)),
    ("AdaDelta", dict(lr=1.0, rho=0.9)),
    ("BarzilaiBorwein", dict(lr=0.01)),
]
CASES = CASES + [(name, {**kw, **COMMON}) for name, kw in CASES]


def _case_id(c):
    name, kw = c
    return name + "(" + ",".join(f"{k}={v}" for k, v in kw.items()) + ")"


# ---------------------------------------------------------------------------------------------
# the graph under test
# ---------------------------------------------------------------------------------------------


def make_problem(seed=0):
    rng = np.random.default_rng(seed)
    A1, B1 = rng.uniform(0.5, 2.0, (3, 4)), rng.normal(0, 3, (3, 4))
    A2, B2 = rng.uniform(0.5, 2.0, 5), rng.normal(0, 3, 5)
    w1 = rng.normal(size=(3, 4))
    w1[0, 0] = 0.0  # sign(0) = 0 for l1
    w2 = rng.normal(size=5)
    return (A1, B1, w1), (A2, B2, w2)


def build(problem, dtype=gr.float64):
    (A1, B1, w1), (A2, B2, w2) = problem
    g = gr.Graph()
    W1 = g.matrix(dtype, w1.shape, name="w1")
    W2 = g.vector(dtype, w2.shape[0], name="w2")
    W1.let(w1)
    W2.let(w2)
    a1, b1 = g.constant(A1.astype(dtype)), g.constant(B1.astype(dtype))
    a2, b2 = g.constant(A2.astype(dtype)), g.constant(B2.astype(dtype))
    cost = gr.sum(W1 * W1 * a1 * 0.5 + W1 * b1) + gr.sum(W2 * W2 * a2 * 0.5 + W2 * b2)
    gr.grad(cost, [W1, W2])
    return g, W1, W2


@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_solver_matches_pytorch_formulas(case):
    name, kw = case
    problem = make_problem()
    (A1, B1, w1), (A2, B2, w2) = problem
    g, W1, W2 = build(problem)
    solver = getattr(gr.solvers, name)(**kw)
    ref = REFS[name](**kw)
    ws = {"w1": w1.copy(), "w2": w2.copy()}
    with gr.TapeMachine(g) as m:
        for t in range(1, N_STEPS + 1):
            m.run_all()
            # the reference uses the machine's gradients (checked against the closed form), so
            # only the update arithmetic is compared at rtol 1e-12
            g1, g2 = np.array(W1.grad), np.array(W2.grad)
            np.testing.assert_allclose(g1, A1 * ws["w1"] + B1, rtol=1e-10, atol=1e-12)
            np.testing.assert_allclose(g2, A2 * ws["w2"] + B2, rtol=1e-10, atol=1e-12)
            solver.step([W1, W2])
            ref.step(ws, {"w1": g1, "w2": g2}, t)
            np.testing.assert_allclose(W1.value, ws["w1"], rtol=1e-12, atol=1e-14, err_msg=f"step {t}")
            np.testing.assert_allclose(W2.value, ws["w2"], rtol=1e-12, atol=1e-14, err_msg=f"step {t}")
            m.reset()
    assert solver.t == N_STEPS


@pytest.mark.parametrize("name", ["SGD", "Adam", "RMSProp"])
def test_float32_parameters(name):
    problem = make_problem(1)
    (A1, B1, w1), (A2, B2, w2) = problem
    g, W1, W2 = build(problem, gr.float32)
    kw = {"lr": 0.01}
    solver, ref = getattr(gr.solvers, name)(**kw), REFS[name](**kw)
    ws = {"w1": w1.astype(np.float32).astype(np.float64), "w2": w2.astype(np.float32).astype(np.float64)}
    with gr.TapeMachine(g) as m:
        for t in range(1, 4):
            m.run_all()
            solver.step([W1, W2])
            ref.step(ws, {"w1": A1 * ws["w1"] + B1, "w2": A2 * ws["w2"] + B2}, t)
            m.reset()
    assert W1.value.dtype == np.float32
    np.testing.assert_allclose(W1.value, ws["w1"], rtol=2e-4, atol=1e-5)


def test_missing_gradient_raises_graph_error():
    g = gr.Graph()
    w = g.vector(gr.float64, 3, name="w", init=gr.init.ones())
    unused = g.vector(gr.float64, 3, name="unused", init=gr.init.ones())
    cost = gr.sum(w * w)
    gr.grad(cost, [w])
    solver = gr.solvers.SGD(lr=0.1)
    with gr.TapeMachine(g) as m:
        m.run_all()
        with pytest.raises(gr.GraphError, match="unused"):
            solver.step([w, unused])
    np.testing.assert_array_equal(unused.value, np.ones(3))


def test_step_before_any_run_raises_graph_error():
    g = gr.Graph()
    w = g.vector(gr.float64, 3, name="w", init=gr.init.ones())
    gr.grad(gr.sum(w * w), [w])
    with pytest.raises(gr.GraphError):
        gr.solvers.Adam().step([w])


def test_params_of_two_graphs_in_one_step():
    p1, p2 = make_problem(2), make_problem(3)
    g1, a1, b1 = build(p1)
    g2, a2, b2 = build(p2)
    solver = gr.solvers.Adam(lr=0.01)
    ref1, ref2 = RefAdam(lr=0.01), RefAdam(lr=0.01)
    ws1 = {"w1": p1[0][2].copy(), "w2": p1[1][2].copy()}
    ws2 = {"w1": p2[0][2].copy(), "w2": p2[1][2].copy()}
    with gr.TapeMachine(g1) as m1, gr.TapeMachine(g2) as m2:
        for t in range(1, 4):
            m1.run_all(); m2.run_all()
            solver.step([a1, b1, a2, b2])
            for ref, ws, p in ((ref1, ws1, p1), (ref2, ws2, p2)):
                (A1, B1, _), (A2, B2, _) = p
                ref.step(ws, {"w1": A1 * ws["w1"] + B1, "w2": A2 * ws["w2"] + B2}, t)
            m1.reset(); m2.reset()
    np.testing.assert_allclose(a1.value, ws1["w1"], rtol=1e-10)
    np.testing.assert_allclose(b2.value, ws2["w2"], rtol=1e-10)


@pytest.mark.parametrize("name,kw", [("Adam", dict(lr=0.01)), ("SGD", dict(lr=0.05, momentum=0.9)),
                                     ("AdaDelta", dict()), ("BarzilaiBorwein", dict(lr=0.01))])
def test_state_dict_round_trip(tmp_path, name, kw):
    """Train 3 steps, save solver state, continue 3 more; a fresh solver + loaded state must
    reproduce the same last 3 steps exactly."""
    problem = make_problem(4)
    g, W1, W2 = build(problem)
    solver = getattr(gr.solvers, name)(**kw)
    with gr.TapeMachine(g) as m:
        for _ in range(3):
            m.run_all(); solver.step([W1, W2]); m.reset()
        state = solver.state_dict()
        assert int(state["t"]) == 3
        assert int(state["w1/step"]) == 3
        path = tmp_path / "opt.safetensors"
        gr.save(path, state)
        gr.save(tmp_path / "w.safetensors", [W1, W2])
        for _ in range(3):
            m.run_all(); solver.step([W1, W2]); m.reset()
        expected = W1.value, W2.value

    g2, V1, V2 = build(problem)
    gr.load(tmp_path / "w.safetensors", [V1, V2])
    resumed = getattr(gr.solvers, name)(**kw)
    resumed.load_state_dict(gr.load(path))
    assert resumed.t == 3
    with gr.TapeMachine(g2) as m:
        for _ in range(3):
            m.run_all(); resumed.step([V1, V2]); m.reset()
    np.testing.assert_array_equal(V1.value, expected[0])
    np.testing.assert_array_equal(V2.value, expected[1])


def test_load_state_dict_validates_before_changing(tmp_path):
    problem = make_problem(5)
    g, W1, W2 = build(problem)
    solver = gr.solvers.Adam(lr=0.01)
    with gr.TapeMachine(g) as m:
        m.run_all(); solver.step([W1, W2]); m.reset()
    state = solver.state_dict()
    bad = dict(state)
    bad["w2/exp_avg"] = np.zeros(7)
    bad["w2/exp_avg_sq"] = np.zeros(7)
    before = solver.state_dict()
    with pytest.raises(gr.FormatError, match="w2"):
        solver.load_state_dict(bad)
    after = solver.state_dict()
    assert before.keys() == after.keys()
    for k in before:
        np.testing.assert_array_equal(before[k], after[k])
    with pytest.raises(gr.FormatError):
        gr.solvers.SGD(lr=0.1).load_state_dict(state)   # Adam's state is not SGD's


@pytest.mark.parametrize("bad", [dict(lr=0.0), dict(lr=-1.0), dict(lr=float("nan")), dict(clip=0.0),
                                 dict(batch_size=0), dict(l2=-0.1)])
def test_invalid_options(bad):
    with pytest.raises(ValueError):
        gr.solvers.SGD(**{"lr": 0.1, **bad})


def test_nesterov_needs_momentum():
    with pytest.raises(ValueError):
        gr.solvers.SGD(lr=0.1, nesterov=True)


def test_api_defaults():
    s = gr.solvers
    assert s.SGD().lr == 0.01 and s.SGD().momentum == 0.0
    assert s.Momentum().lr == 0.001 and s.Momentum().momentum == 0.9
    assert s.AdaGrad().eps == 1e-10
    r = s.RMSProp()
    assert (r.lr, r.alpha, r.eps) == (0.01, 0.99, 1e-8)
    a = s.Adam()
    assert (a.lr, a.beta1, a.beta2, a.eps) == (0.001, 0.9, 0.999, 1e-8)
    assert s.AdamW().weight_decay == 0.01
    d = s.AdaDelta()
    assert (d.lr, d.rho, d.eps) == (1.0, 0.9, 1e-6)
    assert s.BarzilaiBorwein().lr == 0.001
    assert "Adam" in repr(a)


@pytest.mark.parametrize("name", sorted(REFS))
def test_against_torch(name):
    """Optional extra oracle: the same steps with torch.optim (skipped without torch)."""
    torch = pytest.importorskip("torch")
    kw = {"SGD": dict(lr=0.1, momentum=0.9), "Momentum": dict(), "AdaGrad": dict(lr=0.1),
          "RMSProp": dict(lr=0.01, alpha=0.9), "Adam": dict(lr=0.01), "AdamW": dict(lr=0.01, weight_decay=0.1),
          "AdaDelta": dict(), "BarzilaiBorwein": None}[name]
    if kw is None:
        pytest.skip("torch has no Barzilai-Borwein optimizer")
    make = {
        "SGD": lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9),
        "Momentum": lambda p: torch.optim.SGD(p, lr=0.001, momentum=0.9),
        "AdaGrad": lambda p: torch.optim.Adagrad(p, lr=0.1, eps=1e-10),
        "RMSProp": lambda p: torch.optim.RMSprop(p, lr=0.01, alpha=0.9, eps=1e-8),
        "Adam": lambda p: torch.optim.Adam(p, lr=0.01),
        "AdamW": lambda p: torch.optim.AdamW(p, lr=0.01, weight_decay=0.1),
        "AdaDelta": lambda p: torch.optim.Adadelta(p, lr=1.0, rho=0.9, eps=1e-6),
    }[name]
    problem = make_problem(6)
    (A1, B1, w1), (A2, B2, w2) = problem
    g, W1, W2 = build(problem)
    solver = getattr(gr.solvers, name)(**kw)
    t1 = torch.tensor(w1, requires_grad=True)
    t2 = torch.tensor(w2, requires_grad=True)
    opt = make([t1, t2])
    with gr.TapeMachine(g) as m:
        for _ in range(N_STEPS):
            m.run_all(); solver.step([W1, W2]); m.reset()
            opt.zero_grad()
            cost = (0.5 * torch.tensor(A1) * t1 * t1 + torch.tensor(B1) * t1).sum() + \
                   (0.5 * torch.tensor(A2) * t2 * t2 + torch.tensor(B2) * t2).sum()
            cost.backward()
            opt.step()
    np.testing.assert_allclose(W1.value, t1.detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(W2.value, t2.detach().numpy(), rtol=1e-10, atol=1e-12)
