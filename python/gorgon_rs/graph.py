"""Graphs and nodes: ``gr.Graph`` and ``gr.Node`` (API.md "Graph and nodes").

This module owns the Python handles on the native graph (``Graph._g``, a
``gorgon_rs._native.Graph``) and its nodes (``Node._id``, an index into the graph's arena),
the conversion of user values for ``let`` (NumPy ``same_kind`` casting), the lifting of
Python scalars, lists and arrays to constants, the source location (``file.py:LINE``) passed
with every build call, and the generic builder :func:`_apply`. Each graph keeps one ``Node``
object per node id, so building the same expression twice returns the same object (nodes
hash and compare by identity). Operators and methods delegate to :mod:`gorgon_rs.ops`.

Shapes, dtypes and everything numeric are checked by the native graph, which raises at once.

Example:
    >>> import numpy as np, gorgon_rs as gr
    >>> g = gr.Graph()
    >>> x = g.scalar(gr.float64, name="x")
    >>> y = g.scalar(gr.float64, name="y")
    >>> z = x + y
    >>> z.shape, z.dtype
    ((), dtype('float64'))
"""

from __future__ import annotations

import numbers
import os
import sys
from typing import Any, Callable, NoReturn, Optional, Sequence, Union, cast

import numpy as np
import numpy.typing as npt

from . import _native
from .errors import DTypeError, GraphError, ShapeError

__all__ = ["Graph", "Node", "as_dtype", "DTypeLike", "ShapeLike", "InitLike", "Axis", "Operand"]

#: What a dtype argument accepts: a NumPy dtype (``gr.float32`` is one), a scalar type such as
#: ``np.float32``, or a name such as ``"float32"``.
DTypeLike = npt.DTypeLike
#: A shape: one int (a length) or a sequence of ints.
ShapeLike = Union[int, Sequence[int]]
#: What ``init=`` accepts: an initializer ``(shape, dtype) -> array`` (everything in ``gr.init``)
#: or a value (array, nested list or scalar) to bind as it is.
InitLike = Union[Callable[[tuple[int, ...], np.dtype[Any]], npt.ArrayLike], npt.ArrayLike]
#: An ``axis`` argument of a reduction: None (all axes), an int or a sequence of ints.
Axis = Union[None, int, Sequence[int]]

_PKG_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep
#: file name -> "" for files of this package, else the base name shown in locations.
_file_base: dict[str, str] = {}

_SUPPORTED = {"float32", "float64", "int32", "int64", "bool"}
#: dtype -> its name (``dtype.name`` is a Python-level property in NumPy 2, slow per node).
_dtype_names: dict[np.dtype[Any], str] = {}
#: dtype name -> dtype, for the names the native graph reports.
_dtypes_by_name: dict[str, np.dtype[Any]] = {n: np.dtype(n) for n in _SUPPORTED}


def _dtype_name(d: np.dtype[Any]) -> str:
    name = _dtype_names.get(d)
    if name is None:
        name = _dtype_names[d] = d.name
    return name


def _where() -> str:
    """``file.py:LINE`` of the first frame outside the gorgon_rs package."""
    f: Any = sys._getframe(1)
    cache = _file_base
    while f is not None:
        fn = f.f_code.co_filename
        base = cache.get(fn)
        if base is None:
            base = cache[fn] = "" if os.path.abspath(fn).startswith(_PKG_DIR) else os.path.basename(fn)
        if base:
            return f"{base}:{f.f_lineno}"
        f = f.f_back
    return "<unknown>"


def as_dtype(dtype: DTypeLike) -> np.dtype[Any]:
    """The NumPy dtype for a NumPy dtype, a type or a name; DTypeError if unsupported.

    Example:
        >>> gr.as_dtype("float32")
        dtype('float32')
        >>> gr.as_dtype(np.int64) == gr.int64
        True
    """
    try:
        d = np.dtype(dtype)
    except TypeError:
        raise DTypeError(f"not a dtype: {dtype!r}") from None
    if _dtype_name(d) not in _SUPPORTED:
        raise DTypeError(f"unsupported dtype {d.name} (gorgon_rs supports float32, float64, int32, int64 and bool)")
    return d


def _shape_of(shape: Any) -> tuple[int, ...]:
    if isinstance(shape, (numbers.Integral, np.integer)) and not isinstance(shape, bool):
        shape = (int(shape),)
    try:
        dims = tuple(int(d) if isinstance(d, (numbers.Integral, np.integer)) and not isinstance(d, bool) else d
                     for d in shape)
    except TypeError:
        raise TypeError(f"shape must be an int or a tuple of ints, got {shape!r}") from None
    if not all(isinstance(d, int) for d in dims):
        raise TypeError(f"shape must be an int or a tuple of ints, got {shape!r}")
    if any(d < 0 for d in dims):
        raise ShapeError(f"negative dimension in shape {dims} (at {_where()})")
    if any(d >= 2**63 for d in dims):
        raise ShapeError(f"dimension too large in shape {dims}: each must be below 2**63 (at {_where()})")
    return dims


class Graph:
    """An expression graph: leaves (inputs/variables), constants and op nodes.

    Args:
        stabilize: apply the numerical-stabilization rewrites of API.md as nodes are built
            (``log(1 + x)`` becomes ``log1p(x)``, ...). ``False`` builds the naive graph.

    Example:
        >>> g = gr.Graph()
        >>> W = g.matrix(gr.float32, (3, 2), name="W", init=gr.init.zeros())
        >>> W.value.shape
        (3, 2)
    """

    __slots__ = ("_g", "_nodes", "_consts", "__weakref__")

    def __init__(self, stabilize: bool = True) -> None:
        self._g: _native.Graph = _native.Graph(bool(stabilize))
        self._nodes: list[Optional[Node]] = []
        # Python scalars lifted to constants, by (type, value, dtype): see ``_lift``.
        self._consts: dict[tuple[type, Any, np.dtype[Any]], Node] = {}

    # -- node objects ------------------------------------------------------------------------

    def _cached(self, nid: int) -> Optional["Node"]:
        """The Node object of id ``nid`` if one was made already (the cache grows to fit)."""
        nodes = self._nodes
        if nid < len(nodes):
            return nodes[nid]
        nodes.extend([None] * (nid + 1 - len(nodes)))
        return None

    def _node(self, nid: int) -> "Node":
        n = self._cached(nid)
        if n is not None:
            return n
        name, shape, dtype, _kind = self._g.node_info(nid)
        return self._new_node(nid, name, shape, dtype)

    def _build(self, op: str, ids: list[int], attrs: Optional[dict[str, Any]], location: str) -> "Node":
        """The node of ``op`` on ``ids`` (new, or an identical one found by the native graph),
        with its facts from the same native call."""
        nid, name, shape, dtype = self._g.apply_node(op, ids, attrs, location)
        n = self._cached(nid)
        if n is not None:
            return n
        return self._new_node(nid, name, shape, dtype)

    def _new_node(self, nid: int, name: Optional[str], shape: tuple[int, ...], dtype: str) -> "Node":
        n = _node_object(Node, self._g, nid)
        n.graph = self
        n._g = self._g
        n._id = nid
        n.shape = shape
        n.dtype = _dtypes_by_name.get(dtype) or np.dtype(dtype)
        n._name = name
        self._nodes[nid] = n
        return n

    # -- building ------------------------------------------------------------------------------

    def _leaf(self, dtype: DTypeLike, shape: ShapeLike, name: Optional[str], init: Optional[InitLike],
              value: Optional[npt.ArrayLike]) -> "Node":
        d = as_dtype(dtype)
        s = _shape_of(shape)
        if name is not None and not isinstance(name, str):
            raise TypeError(f"name must be a str, got {type(name).__name__}")
        nid = self._g.leaf(d.name, list(s), name, _where())
        node = self._node(nid)
        if init is not None and value is not None:
            raise TypeError("give init= or value=, not both")
        if init is not None:
            v = init(s, d) if callable(init) else init
            node.let(v)
        elif value is not None:
            node.let(value)
        return node

    def scalar(self, dtype: DTypeLike = np.float64, name: Optional[str] = None, init: Optional[InitLike] = None,
               value: Optional[npt.ArrayLike] = None) -> "Node":
        """A 0-d input/variable node (bound later with ``let``, or now with ``init=``/``value=``).

        Example:
            >>> x = gr.Graph().scalar(gr.float64, name="x")
            >>> x.shape, x.has_value
            ((), False)
            >>> float(gr.Graph().scalar(gr.float32, value=0.5).value)
            0.5
        """
        return self._leaf(dtype, (), name, init, value)

    def vector(self, dtype: DTypeLike, n: int, name: Optional[str] = None, init: Optional[InitLike] = None,
               value: Optional[npt.ArrayLike] = None) -> "Node":
        """A 1-D input/variable node of length ``n``.

        Example:
            >>> v = gr.Graph().vector(gr.float32, 10, name="v")
            >>> v.shape, v.dtype
            ((10,), dtype('float32'))
        """
        s = _shape_of(n)
        if len(s) != 1:
            raise ShapeError(f"vector: expected one length, got shape {s} (at {_where()})")
        return self._leaf(dtype, s, name, init, value)

    def matrix(self, dtype: DTypeLike, shape: Sequence[int], name: Optional[str] = None,
               init: Optional[InitLike] = None, value: Optional[npt.ArrayLike] = None) -> "Node":
        """A 2-D input/variable node.

        Example:
            >>> W = gr.Graph().matrix(gr.float32, (784, 128), name="W", init=gr.init.glorot_uniform())
            >>> W.value.shape
            (784, 128)
        """
        s = _shape_of(shape)
        if len(s) != 2:
            raise ShapeError(f"matrix: expected a (rows, cols) shape, got {s} (at {_where()})")
        return self._leaf(dtype, s, name, init, value)

    def tensor(self, dtype: DTypeLike, shape: ShapeLike, name: Optional[str] = None,
               init: Optional[InitLike] = None, value: Optional[npt.ArrayLike] = None) -> "Node":
        """An input/variable node of any shape.

        Example:
            >>> X = gr.Graph().tensor(gr.float32, (64, 1, 28, 28), name="X")
            >>> X.ndim
            4
        """
        return self._leaf(dtype, shape, name, init, value)

    def constant(self, value: npt.ArrayLike, name: Optional[str] = None, dtype: Optional[DTypeLike] = None) -> "Node":
        """A constant node holding a copy of ``value`` (a NumPy array, nested list or scalar).

        The dtype is the array's own (Python floats are float64) unless ``dtype`` is given.

        Example:
            >>> c = gr.Graph().constant(np.eye(3))
            >>> c.dtype
            dtype('float64')
        """
        a = np.asarray(value) if dtype is None else np.asarray(value, dtype=as_dtype(dtype))
        if a.dtype.kind not in "biuf":
            raise DTypeError(f"constant: cannot hold values of dtype {a.dtype} (at {_where()})")
        if _dtype_name(a.dtype) not in _SUPPORTED:
            a = a.astype(np.float64 if a.dtype.kind == "f" else np.int64)
        nid = self._g.constant(np.asarray(a, order="C"), name, _where())
        return self._node(nid)

    # -- inspection ----------------------------------------------------------------------------

    @property
    def stabilize(self) -> bool:
        """Whether stabilization rewrites are applied as nodes are built.

        Example:
            >>> gr.Graph().stabilize, gr.Graph(stabilize=False).stabilize
            (True, False)
        """
        return self._g.stabilize

    def nodes(self) -> list["Node"]:
        """Every node, in creation order.

        Example:
            >>> len(gr.Graph().nodes())
            0
        """
        return [self._node(i) for i in range(self._g.num_nodes())]

    def __len__(self) -> int:
        return self._g.num_nodes()

    def to_dot(self) -> str:
        """Graphviz DOT text of the graph (gradient nodes dashed red); see also ``gr.render``.

        Example:
            >>> g = gr.Graph(); x = g.scalar(gr.float64, name="x")
            >>> print(g.to_dot().splitlines()[0])
            digraph gorgon {
        """
        return self._g.to_dot()

    def __repr__(self) -> str:
        return f"<gorgon_rs.Graph with {len(self)} nodes, stabilize={self.stabilize}>"


def _convert_for(node: "Node", value: Any) -> npt.NDArray[Any]:
    """``value`` as a C-contiguous array of the node's dtype and shape (one conversion, with
    NumPy's ``same_kind`` rule), or the error ``let`` raises."""
    try:
        a = np.asarray(value)
    except Exception as e:  # ragged lists and the like
        raise DTypeError(f"let: cannot bind {type(value).__name__} to node {node._describe()}: {e}") from None
    if a.dtype.kind not in "biuf" or not np.can_cast(a.dtype, node.dtype, "same_kind"):
        raise DTypeError(
            f"let: cannot bind a value of dtype {a.dtype} to node {node._describe()}: NumPy's same_kind "
            "casting does not allow it (float → int, complex, strings and objects are refused)")
    if a.shape != node.shape:
        raise ShapeError(f"let: value of shape {a.shape} does not fit node {node._describe()}")
    return np.require(a, dtype=node.dtype, requirements=["C", "A"])


class Node(_native.NodeBase):
    """A node of a :class:`Graph`: an input/variable, a constant or an operation.

    Attributes: ``name``, ``shape`` (tuple), ``dtype`` (NumPy dtype), ``ndim``, ``graph``;
    ``value`` (NumPy array; GraphError if none) and ``grad`` (array or None). ``let(value)``
    binds a value to an input/variable node.

    ``let`` and ``value`` are methods of the native base class (``_native.NodeBase``), so the
    let/run/value cycle runs no Python code of this package.

    Example:
        >>> g = gr.Graph()
        >>> x = g.vector(gr.float64, 3, name="x")
        >>> y = (x * 2 + 1)[1:]
        >>> y.shape
        (2,)
        >>> x.let([1.0, 2.0, 3.0]); x.value
        array([1., 2., 3.])
    """

    __slots__ = ("graph", "_g", "_id", "shape", "dtype", "_name", "__weakref__")

    graph: Graph
    _g: _native.Graph
    _id: int
    shape: tuple[int, ...]
    dtype: np.dtype[Any]
    _name: Optional[str]

    # Make NumPy defer to our reflected operators: ``array * node`` calls ``node.__rmul__``.
    __array_ufunc__ = None

    def __new__(cls, *args: Any, **kwargs: Any) -> "Node":  # pragma: no cover - nodes come from graphs
        raise TypeError("nodes are made by a Graph (g.scalar, g.matrix, ...) or by operations")

    # -- attributes ----------------------------------------------------------------------------

    @property
    def name(self) -> Optional[str]:
        """The user-given name (None when unnamed); assignable.

        Example:
            >>> x = gr.Graph().scalar(gr.float64)
            >>> x.name is None
            True
            >>> x.name = "x"; x.name
            'x'
        """
        return self._name

    @name.setter
    def name(self, value: str) -> None:
        self._g.set_name(self._id, str(value))
        self._name = str(value)

    @property
    def ndim(self) -> int:
        """Number of dimensions.

        Example:
            >>> gr.Graph().matrix(gr.float32, (2, 3)).ndim
            2
        """
        return len(self.shape)

    @property
    def size(self) -> int:
        """Number of elements.

        Example:
            >>> gr.Graph().matrix(gr.float32, (2, 3)).size
            6
        """
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def kind(self) -> str:
        """``"leaf"``, ``"constant"``, ``"op:<name>"`` or ``"grad:<name>"``.

        Example:
            >>> g = gr.Graph(); x = g.scalar(gr.float64)
            >>> x.kind, (x + 1).kind
            ('leaf', 'op:add')
        """
        return self._g.node_info(self._id)[3]

    @property
    def location(self) -> Optional[str]:
        """``file.py:LINE`` of the user code that built the node (None when unknown).

        Example:
            >>> x = gr.Graph().scalar(gr.float64)
            >>> x.location                                   # doctest: +ELLIPSIS
            '...:1'
        """
        return self._g.location(self._id)

    def _label(self) -> str:
        return self._g.label(self._id)

    def _describe(self) -> str:
        return f"{self._g.label(self._id)} {self.shape} {self.dtype.name}"

    # -- values ------------------------------------------------------------------------------

    @property
    def grad(self) -> Optional[npt.NDArray[Any]]:
        """d(cost)/d(self) from the last run that computed it, else None.

        Example:
            >>> g = gr.Graph(); x = g.scalar(gr.float64, value=3.0)
            >>> _ = gr.grad(x * x, [x])
            >>> x.grad is None                               # nothing computed yet
            True
            >>> with gr.TapeMachine(g) as m:
            ...     m.run_all()
            ...     print(float(x.grad))                     # read it while the machine is open
            6.0
        """
        return self._g.grad_value(self._id)

    @property
    def has_value(self) -> bool:
        """True when :attr:`value` would succeed.

        Example:
            >>> x = gr.Graph().scalar(gr.float64)
            >>> x.has_value
            False
            >>> x.let(1.0); x.has_value
            True
        """
        return self._g.has_value(self._id)

    # -- operators ---------------------------------------------------------------------------

    def __add__(self, o: Any) -> "Node":
        return _ops.add(self, o)

    def __radd__(self, o: Any) -> "Node":
        return _ops.add(o, self)

    def __sub__(self, o: Any) -> "Node":
        return _ops.sub(self, o)

    def __rsub__(self, o: Any) -> "Node":
        return _ops.sub(o, self)

    def __mul__(self, o: Any) -> "Node":
        return _ops.mul(self, o)

    def __rmul__(self, o: Any) -> "Node":
        return _ops.mul(o, self)

    def __truediv__(self, o: Any) -> "Node":
        return _ops.div(self, o)

    def __rtruediv__(self, o: Any) -> "Node":
        return _ops.div(o, self)

    def __floordiv__(self, o: Any) -> "Node":
        return _ops.floordiv(self, o)

    def __rfloordiv__(self, o: Any) -> "Node":
        return _ops.floordiv(o, self)

    def __pow__(self, o: Any) -> "Node":
        return _ops.pow(self, o)

    def __rpow__(self, o: Any) -> "Node":
        return _ops.pow(o, self)

    def __matmul__(self, o: Any) -> "Node":
        return _ops.matmul(self, o)

    def __rmatmul__(self, o: Any) -> "Node":
        return _ops.matmul(o, self)

    def __neg__(self) -> "Node":
        return _ops.neg(self)

    def __pos__(self) -> "Node":
        return self

    def __abs__(self) -> "Node":
        return _ops.abs(self)

    def __lt__(self, o: Any) -> "Node":
        return _ops.lt(self, o)

    def __le__(self, o: Any) -> "Node":
        return _ops.le(self, o)

    def __gt__(self, o: Any) -> "Node":
        return _ops.gt(self, o)

    def __ge__(self, o: Any) -> "Node":
        return _ops.ge(self, o)

    # ``==``/``!=`` keep identity semantics (nodes are dict keys); use gr.eq / gr.ne.
    __hash__ = object.__hash__

    def __getitem__(self, key: Any) -> "Node":
        return _ops._getitem(self, key)

    def __iter__(self) -> NoReturn:
        raise TypeError("a Node is not iterable; index it (x[i]) or iterate over x.value")

    # -- methods -------------------------------------------------------------------------------

    @property
    def T(self) -> "Node":
        """The transpose (axes reversed).

        Example:
            >>> gr.Graph().matrix(gr.float32, (2, 3)).T.shape
            (3, 2)
        """
        return _ops.transpose(self)

    def reshape(self, *shape: Union[int, Sequence[int]]) -> "Node":
        """Same elements, new shape (one dimension may be -1): ``x.reshape(2, -1)``.

        Example:
            >>> x = gr.Graph().vector(gr.float32, 6)
            >>> x.reshape(2, -1).shape, x.reshape((3, 2)).shape
            ((2, 3), (3, 2))
        """
        dims: Sequence[Any] = shape
        if len(shape) == 1 and not isinstance(shape[0], (numbers.Integral, np.integer)):
            dims = tuple(cast("Sequence[int]", shape[0]))  # one sequence given
        return _ops.reshape(self, dims)

    def transpose(self, *axes: Union[int, Sequence[int], None]) -> "Node":
        """Permute axes (reversed when none are given).

        Example:
            >>> x = gr.Graph().tensor(gr.float32, (2, 3, 4))
            >>> x.transpose().shape, x.transpose(0, 2, 1).shape, x.transpose((1, 0, 2)).shape
            ((4, 3, 2), (2, 4, 3), (3, 2, 4))
        """
        perm = cast("tuple[int, ...]", axes)
        if len(axes) == 1 and not isinstance(axes[0], (numbers.Integral, np.integer)):
            perm = tuple(cast("Sequence[int]", axes[0])) if axes[0] is not None else ()  # one sequence given
        return _ops.transpose(self, perm or None)

    def sum(self, axis: Axis = None, keepdims: bool = False) -> "Node":
        """Sum over ``axis`` (None: all); ``gr.sum(self, axis, keepdims)``.

        Example:
            >>> x = gr.Graph().matrix(gr.float64, (2, 3))
            >>> x.sum().shape, x.sum(axis=0).shape, x.sum(1, keepdims=True).shape
            ((), (3,), (2, 1))
        """
        return _ops.sum(self, axis, keepdims)

    def mean(self, axis: Axis = None, keepdims: bool = False) -> "Node":
        """Mean over ``axis`` (None: all); ``gr.mean(self, axis, keepdims)``.

        Example:
            >>> x = gr.Graph().matrix(gr.float64, (2, 3))
            >>> x.mean().shape, x.mean(axis=0).shape, x.mean(1, keepdims=True).shape
            ((), (3,), (2, 1))
        """
        return _ops.mean(self, axis, keepdims)

    def max(self, axis: Axis = None, keepdims: bool = False) -> "Node":
        """Maximum over ``axis`` (None: all); ``gr.max(self, axis, keepdims)``.

        Example:
            >>> x = gr.Graph().matrix(gr.float64, (2, 3))
            >>> x.max().shape, x.max(axis=0).shape, x.max(1, keepdims=True).shape
            ((), (3,), (2, 1))
        """
        return _ops.max(self, axis, keepdims)

    def min(self, axis: Axis = None, keepdims: bool = False) -> "Node":
        """Minimum over ``axis`` (None: all); ``gr.min(self, axis, keepdims)``.

        Example:
            >>> x = gr.Graph().matrix(gr.float64, (2, 3))
            >>> x.min().shape, x.min(axis=0).shape, x.min(1, keepdims=True).shape
            ((), (3,), (2, 1))
        """
        return _ops.min(self, axis, keepdims)

    def prod(self, axis: Axis = None, keepdims: bool = False) -> "Node":
        """Product over ``axis`` (None: all); ``gr.prod(self, axis, keepdims)``.

        Example:
            >>> x = gr.Graph().matrix(gr.float64, (2, 3))
            >>> x.prod().shape, x.prod(axis=0).shape, x.prod(1, keepdims=True).shape
            ((), (3,), (2, 1))
        """
        return _ops.prod(self, axis, keepdims)

    def argmax(self, axis: Optional[int] = None, keepdims: bool = False) -> "Node":
        """Index of the maximum (int64); ``gr.argmax(self, axis, keepdims)``.

        Example:
            >>> x = gr.Graph().matrix(gr.float32, (4, 10))
            >>> x.argmax(axis=1).shape, x.argmax(axis=1).dtype
            ((4,), dtype('int64'))
        """
        return _ops.argmax(self, axis, keepdims)

    def argmin(self, axis: Optional[int] = None, keepdims: bool = False) -> "Node":
        """Index of the minimum (int64); ``gr.argmin(self, axis, keepdims)``.

        Example:
            >>> gr.Graph().vector(gr.float32, 5).argmin().shape
            ()
        """
        return _ops.argmin(self, axis, keepdims)

    def astype(self, dtype: DTypeLike) -> "Node":
        """``gr.cast(self, dtype)``.

        Example:
            >>> gr.Graph().vector(gr.int64, 3).astype(gr.float32).dtype
            dtype('float32')
        """
        return _ops.cast(self, dtype)

    def __repr__(self) -> str:
        try:
            kind = self._g.node_info(self._id)[3]
        except Exception:  # pragma: no cover
            kind = "?"
        name = f"{self._name!r}" if self._name is not None else self._label()
        return f"Node({name}, shape={self.shape}, dtype={self.dtype.name}, {kind})"


# ---------------------------------------------------------------------------------------------
# Lifting and the generic builder
# ---------------------------------------------------------------------------------------------


#: An operand of a binary op: a node, or a value lifted to a constant (Python scalar, nested list,
#: NumPy array).
Operand = Union[Node, npt.ArrayLike]


def _is_py_scalar(v: Any) -> bool:
    t = type(v)
    if t is float or t is int:
        return True
    return isinstance(v, (bool, int, float, np.bool_, np.integer, np.floating)) and not isinstance(v, np.ndarray)


def _same_graph(op: str, nodes: Sequence[Node]) -> Graph:
    g = nodes[0].graph
    for n in nodes[1:]:
        if n.graph is not g:
            raise GraphError(
                f"{op}: nodes of two different graphs cannot be combined: {nodes[0]._describe()} and "
                f"{n._describe()} (at {_where()})")
    return g


def _const(g: Graph, a: npt.NDArray[Any]) -> Node:
    if a.dtype.kind not in "biuf":
        raise DTypeError(f"cannot use a value of dtype {a.dtype} in a graph (at {_where()})")
    if _dtype_name(a.dtype) not in _SUPPORTED:
        a = a.astype(np.float64 if a.dtype.kind == "f" else np.int64)
    return g._node(g._g.constant(np.asarray(a, order="C"), None, None))


def _lift(v: Any, like: Node) -> Node:
    """A non-node operand as a constant in ``like``'s graph: Python/NumPy scalars and lists
    adopt ``like``'s dtype where NumPy's same_kind casting allows; arrays keep their dtype."""
    if isinstance(v, Node):
        return v
    g = like.graph
    if _is_py_scalar(v):
        # The same scalar lifted again gives the same constant node (the native graph shares
        # small equal constants too); zeros (0.0 == -0.0) and NaN (never equal) are not cached.
        key = (type(v), v, like.dtype)
        node = g._consts.get(key) if v and v == v else None
        if node is None:
            node = _lift_scalar(v, like)
            if v and v == v:
                g._consts[key] = node
        return node
    if isinstance(v, np.ndarray):
        return _const(g, v)
    try:
        a = np.asarray(v)
    except Exception as e:
        raise TypeError(f"cannot use {type(v).__name__} as an operand: {e}") from None
    if a.dtype.kind in "biuf" and np.can_cast(a.dtype, like.dtype, "same_kind"):
        a = a.astype(like.dtype)
    return _const(g, a)


def _lift_scalar(v: Any, like: Node) -> Node:
    """A Python or NumPy scalar as a constant of ``like``'s dtype where NumPy's same_kind
    casting allows, else of its own dtype (float64 for floats)."""
    g = like.graph
    try:
        src = np.asarray(v)
    except OverflowError:
        raise DTypeError(f"the Python int {v} does not fit any NumPy integer dtype (operand of {like!r})") from None
    if np.can_cast(src.dtype, like.dtype, "same_kind"):
        try:
            return _const(g, np.asarray(v, dtype=like.dtype))
        except OverflowError:
            raise DTypeError(f"the Python scalar {v!r} does not fit the dtype {like.dtype} of {like!r}") from None
    return _const(g, src.astype(np.float64) if src.dtype.kind == "f" else src)


def _lift_pair(op: str, a: Any, b: Any) -> tuple[Node, Node]:
    """Both operands as nodes of one graph, following the scalar rules of API.md."""
    an, bn = isinstance(a, Node), isinstance(b, Node)
    if an and bn:
        _same_graph(op, (a, b))
        return a, b
    if not an and not bn:
        raise TypeError(f"{op}: at least one operand must be a gorgon_rs Node")
    node, other = (a, b) if an else (b, a)
    if _is_py_scalar(other) and node.dtype.kind in "iub" and isinstance(other, (float, np.floating)):
        # NumPy: an int array with a float scalar gives float64.
        node = _ops.cast(node, np.float64)
    lifted = _lift(other, node)
    return (node, lifted) if an else (lifted, node)


def _apply(op: str, inputs: Sequence[Any], **attrs: Any) -> Node:
    """Builds a native op node by name (``crates/autodiff/src/op.rs``, ``Op::parse``).

    Non-node inputs are lifted to constants of the first node's graph. Used by gr.nn for
    ``conv2d``, ``max_pool2d``, ``avg_pool2d`` and ``dropout_mask``.

    Example:
        >>> x = gr.Graph().tensor(gr.float32, (1, 1, 4, 4))
        >>> gr._apply("max_pool2d", [x], kernel=2).shape
        (1, 1, 2, 2)
    """
    nodes = [i for i in inputs if isinstance(i, Node)]
    if not nodes:
        raise TypeError(f"{op}: needs at least one gorgon_rs Node operand")
    g = _same_graph(op, nodes) if len(nodes) > 1 else nodes[0].graph
    if len(nodes) == len(inputs):
        ids = [i._id for i in nodes]
    else:
        first = nodes[0]
        ids = [(i if isinstance(i, Node) else _lift(i, first))._id for i in inputs]
    for k, v in attrs.items():
        if isinstance(v, np.dtype) or (isinstance(v, type) and issubclass(v, np.generic)):
            attrs[k] = np.dtype(v).name
    return g._build(op, ids, attrs or None, _where())


#: Makes a Node object (``Node(...)`` itself raises: nodes come from graphs).
_node_object = _native.NodeBase.__new__

from . import ops as _ops  # noqa: E402  (the op functions need Node defined first)
