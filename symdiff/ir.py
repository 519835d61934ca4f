"""The graph IR: immutable, interned (hash-consed) tensor nodes.

A :class:`Node` is one tensor-valued operation: ``op`` (a name in the op table), its input nodes, its
attributes, and the inferred ``shape``/``dtype``. Forward, backward and simplified graphs are all made
of the same nodes.

Interning: every node carries a structural digest (op, attributes, shape, dtype and the digests of
its inputs), and construction returns the one live node with that digest when there is one (a weak-value
table, see docs/architecture.md "Node identity and interning"). So identity *is* structure: ``a is b``
exactly when ``a`` and ``b`` are structurally equal, hashing uses the digest, and common-subexpression
elimination falls out of building a graph. ``==``/``!=`` between tensors are *elementwise comparisons*
(``sd.equal`` / ``sd.not_equal``: they build a bool node, as NumPy), not structural equality: compare
nodes with ``is`` (and never test ``node in list_of_nodes``: that calls ``==``; use sets, dicts or ``is``).

``meta`` (leaf ``init``, display names, ``grad_of``) is per-structure annotation, not part of the digest:
creating a node that is already live with explicit ``meta`` updates the shared node's keys (the latest
declaration wins, e.g. ``sd.param("w", (3,), init=...)`` twice keeps the second ``init``).
``meta[PROVENANCE]`` on a backward node is the digest of the forward node whose backward step built it
(``autodiff.grad`` records it; the simplifier carries it to rewritten nodes; ``symdiff graph`` shows ``d%k``).
"""
from __future__ import annotations

import hashlib
import threading
import weakref
from typing import Any, Callable, Iterable, Optional, Sequence

import numpy as np

from . import dims as _dims
from . import dtypes as _dt


def _freeze(v: Any) -> Any:
    """Attribute value -> hashable, repr-stable form."""
    if isinstance(v, (list, tuple)):
        return tuple(_freeze(x) for x in v)
    if isinstance(v, np.ndarray):
        return ("array", v.dtype.str, v.shape, hashlib.blake2b(np.ascontiguousarray(v).tobytes(), digest_size=16).hexdigest())
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (np.floating,)):
        return float(v)
    return v


PROVENANCE = "d_of"  # meta key: digest of the forward node a backward node differentiates

_INTERNED: "weakref.WeakValueDictionary[str, Node]" = weakref.WeakValueDictionary()  # digest -> live node
_INTERN_LOCK = threading.Lock()  # makes lookup-or-insert atomic (two threads building one graph get one node)


def digest_of(op: str, inputs: Sequence["Node"], attrs: dict, shape: tuple, dtype: str) -> str:
    """The structural digest of a node: blake2b of (op, attributes, shape, dtype, input digests)."""
    key = repr((op, tuple(sorted((k, _freeze(v)) for k, v in attrs.items())), shape, dtype,
                tuple(i.digest for i in inputs)))
    return hashlib.blake2b(key.encode(), digest_size=16).hexdigest()


def interned_count() -> int:
    """How many nodes are live in the intern table (for tests and diagnostics)."""
    return len(_INTERNED)


def interned(digest: str) -> Optional["Node"]:
    """The live node with structural digest ``digest``, or None when no such node is referenced any more."""
    return _INTERNED.get(digest)


class Node:
    """A tensor in a symdiff graph (what the DSL functions take and return).

    Construction is interning: ``Node(...)`` returns the live node of equal structure if there is one.
    """

    __slots__ = ("op", "inputs", "attrs", "shape", "dtype", "digest", "_hash", "meta", "__weakref__")

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        # operator ufuncs (np.float32(2) * x) build the operator's node; np.exp(x) names sd.exp (ufuncs.py)
        from .ufuncs import array_ufunc
        return array_ufunc(ufunc, method, inputs, kwargs)

    op: str
    inputs: tuple
    attrs: dict
    shape: tuple
    dtype: str
    digest: str
    meta: dict

    def __new__(cls, op: str, inputs: Sequence["Node"], attrs: dict, shape: tuple, dtype: str,
                meta: Optional[dict] = None) -> "Node":
        inputs = tuple(inputs)
        attrs = dict(attrs)
        shape = tuple(s if isinstance(s, int) else _dims.as_dim(s) for s in shape)
        dtype = _dt.as_dtype(dtype)
        digest = digest_of(op, inputs, attrs, shape, dtype)
        with _INTERN_LOCK:
            node = _INTERNED.get(digest)
            if node is None:
                node = object.__new__(cls)
                node.op, node.inputs, node.attrs, node.shape, node.dtype = op, inputs, attrs, shape, dtype
                node.digest, node._hash = digest, hash(digest)
                node.meta = dict(meta or {})
                _INTERNED[digest] = node
            elif meta:
                node.meta.update(meta)  # the latest declaration of per-structure metadata wins
        return node

    def __reduce__(self):
        """Pickling/copying rebuilds through the constructor, so the copy is the interned node."""
        return (Node, (self.op, self.inputs, self.attrs, self.shape, self.dtype, self.meta))

    def __copy__(self) -> "Node":
        return self

    def __deepcopy__(self, memo: dict) -> "Node":
        return self  # nodes are immutable and interned: a copy is the node itself

    # -- identity ---------------------------------------------------------------------------------
    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other: object):  # elementwise (sd.equal); compare nodes themselves with `is`
        return _api().equal(self, other) if _tensor_like(other) else NotImplemented

    def __ne__(self, other: object):
        return _api().not_equal(self, other) if _tensor_like(other) else NotImplemented

    def __bool__(self) -> bool:
        raise TypeError("a symbolic tensor has no truth value: `==`, `<`, ... build elementwise comparisons "
                        "(use sd.where to select with one, and `is` to compare graph nodes)")

    # -- properties -----------------------------------------------------------------------------------
    @property
    def name(self) -> Optional[str]:
        """The leaf name for inputs/params; a descriptive name for other nodes when one is known."""
        return self.attrs.get("name", self.meta.get("name"))

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> "_dims.DimLike":
        """The element count: an int, or a :class:`symdiff.dims.Dim` when a dimension is symbolic."""
        return _dims.prod(self.shape)

    @property
    def is_leaf(self) -> bool:
        return self.op in ("input", "param")

    @property
    def value(self) -> np.ndarray:
        """The constant value (const nodes only)."""
        if self.op != "const":
            raise AttributeError(f"{self.op} node has no constant value")
        return self.attrs["value"]

    @property
    def T(self) -> "Node":
        from . import api
        return api.transpose(self)

    def __repr__(self) -> str:
        nm = f" {self.name!r}" if self.name else ""
        return f"<symdiff.Tensor {self.op}{nm} {self.dtype}{list(self.shape)}>"

    # -- operators ------------------------------------------------------------------------------------
    def __add__(self, o): return _api().add(self, o)
    def __radd__(self, o): return _api().add(o, self)
    def __sub__(self, o): return _api().subtract(self, o)
    def __rsub__(self, o): return _api().subtract(o, self)
    def __mul__(self, o): return _api().multiply(self, o)
    def __rmul__(self, o): return _api().multiply(o, self)
    def __truediv__(self, o): return _api().divide(self, o)
    def __rtruediv__(self, o): return _api().divide(o, self)
    def __pow__(self, o): return _api().power(self, o)
    def __rpow__(self, o): return _api().power(o, self)
    def __matmul__(self, o): return _api().matmul(self, o)
    def __rmatmul__(self, o): return _api().matmul(o, self)
    def __neg__(self): return _api().negative(self)
    def __pos__(self): return self
    def __abs__(self): return _api().abs(self)
    def __floordiv__(self, o): return _api().floor_divide(self, o)
    def __rfloordiv__(self, o): return _api().floor_divide(o, self)
    def __mod__(self, o): return _api().remainder(self, o)
    def __rmod__(self, o): return _api().remainder(o, self)
    def __lt__(self, o): return _api().less(self, o)
    def __le__(self, o): return _api().less_equal(self, o)
    def __gt__(self, o): return _api().greater(self, o)
    def __ge__(self, o): return _api().greater_equal(self, o)
    def __and__(self, o): return _sel().bool_operator("&", self, o)
    def __rand__(self, o): return _sel().bool_operator("&", o, self)
    def __or__(self, o): return _sel().bool_operator("|", self, o)
    def __ror__(self, o): return _sel().bool_operator("|", o, self)
    def __xor__(self, o): return _sel().bool_operator("^", self, o)
    def __rxor__(self, o): return _sel().bool_operator("^", o, self)
    def __invert__(self): return _sel().bool_operator("~", self)

    def astype(self, dtype): return _api().astype(self, dtype)
    def clip(self, min=None, max=None): return _sel().clip(self, min, max)  # noqa: A002 - NumPy's names

    def sum(self, axis=None, keepdims: bool = False): return _api().sum(self, axis, keepdims)
    def mean(self, axis=None, keepdims: bool = False): return _api().mean(self, axis, keepdims)
    def max(self, axis=None, keepdims: bool = False): return _api().max(self, axis, keepdims)
    def min(self, axis=None, keepdims: bool = False): return _reduce_api().min(self, axis, keepdims)
    def prod(self, axis=None, keepdims: bool = False): return _reduce_api().prod(self, axis, keepdims)
    def var(self, axis=None, ddof: int = 0, keepdims: bool = False): return _reduce_api().var(self, axis, ddof, keepdims)
    def std(self, axis=None, ddof: int = 0, keepdims: bool = False): return _reduce_api().std(self, axis, ddof, keepdims)
    def argmax(self, axis=None, keepdims: bool = False): return _reduce_api().argmax(self, axis, keepdims)
    def argmin(self, axis=None, keepdims: bool = False): return _reduce_api().argmin(self, axis, keepdims)
    def all(self, axis=None, keepdims: bool = False): return _reduce_api().all(self, axis, keepdims)
    def any(self, axis=None, keepdims: bool = False): return _reduce_api().any(self, axis, keepdims)
    def reshape(self, *shape): return _api().reshape(self, shape[0] if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape)

    # indexing and shape methods (symdiff/api_shape.py)
    def __getitem__(self, key): return _api_shape().getitem(self, key)
    def ravel(self): return _api_shape().ravel(self)
    def flatten(self): return _api_shape().ravel(self)
    def squeeze(self, axis=None): return _api_shape().squeeze(self, axis)
    def swapaxes(self, axis1: int, axis2: int): return _api_shape().swapaxes(self, axis1, axis2)

    def __len__(self) -> int:
        """The length of the first axis, as ``len`` of a NumPy array."""
        if not self.shape:
            raise TypeError("len() of a 0-d tensor")
        return self.shape[0]

    def __iter__(self):
        """Iterate over the first axis (``x[0], x[1], ...``), as NumPy does."""
        if not self.shape:
            raise TypeError("iteration over a 0-d tensor")
        return (self[i] for i in range(self.shape[0]))

    # gathers, scatters, scans (symdiff/api_gather.py)
    @property
    def at(self):
        """JAX-style functional updates: ``x.at[key].set(v) / .add(v) / .multiply(v) / .get()``."""
        return _api_gather().AtIndexer(self)

    def take(self, indices, axis=None): return _api_gather().take(self, indices, axis)
    def cumsum(self, axis=None): return _api_gather().cumsum(self, axis)
    def cumprod(self, axis=None): return _api_gather().cumprod(self, axis)


def _api():
    from . import api
    return api


def _api_shape():
    from . import api_shape
    return api_shape


def _api_gather():
    from . import api_gather
    return api_gather


def _reduce_api():
    from . import api_reduce
    return api_reduce
def _sel():
    from . import api_select
    return api_select


def _tensor_like(v: object) -> bool:
    """Operands `==`/`!=` compare elementwise with (anything else: NotImplemented, so `node == None` is False)."""
    return isinstance(v, (Node, int, float, np.ndarray, np.generic, list, tuple)) and not isinstance(v, (str, bytes))


Tensor = Node  # the public name in docs


def apply(op: str, inputs: Sequence[Node], **attrs: Any) -> Node:
    """Create a node of op ``op``: checks and infers shape/dtype through the op table."""
    from .optable import OPS
    try:
        opdef = OPS[op]
    except KeyError:
        raise ValueError(f"unknown op {op!r}") from None
    for i in inputs:
        if not isinstance(i, Node):
            raise TypeError(f"{op}: expected symdiff tensors as inputs, got {type(i).__name__}")
    shape, dtype = opdef.infer(list(inputs), attrs)
    return Node(op, inputs, attrs, shape, dtype)


def const(value: Any, dtype: Optional[str] = None) -> Node:
    """A constant tensor (scalars are the common case)."""
    arr = np.asarray(value)
    if arr.dtype.kind == "c" or arr.dtype.kind not in "biuf":
        raise TypeError(f"constant of unsupported kind {arr.dtype} ({value!r})")
    dt = _dt.normalize(dtype) if dtype is not None else ("float64" if arr.dtype.kind in "biu" or arr.dtype == np.float64 else "float32")
    arr = np.array(arr, dtype=dt)  # own copy, never a view of user data
    arr.setflags(write=False)
    return Node("const", (), {"value": arr}, arr.shape, dt)


def toposort(outputs: Iterable[Node]) -> list[Node]:
    """Unique nodes reachable from ``outputs``, inputs before users (iterative DFS, deterministic)."""
    order: list[Node] = []
    seen: set[Node] = set()
    for out in outputs:
        if out in seen:
            continue
        stack: list[tuple[Node, int]] = [(out, 0)]
        while stack:
            node, i = stack.pop()
            if i < len(node.inputs):
                stack.append((node, i + 1))
                child = node.inputs[i]
                if child not in seen:
                    stack.append((child, 0))
            elif node not in seen:
                seen.add(node)
                order.append(node)
    return order


def rebuild(outputs: Sequence[Node], rule: Callable[[Node, list], Optional[Node]]) -> list[Node]:
    """Rebuild a graph bottom-up (one walk). ``rule(node, inputs)`` gets a node and its already rebuilt
    inputs and returns its replacement, or None to keep the node: it is then re-applied to the new
    inputs when one changed, and is itself (the same interned object) otherwise."""
    memo: dict[Node, Node] = {}
    for n in toposort(outputs):
        ins = [memo[i] for i in n.inputs]
        new = rule(n, ins)
        if new is None:
            new = apply(n.op, ins, **n.attrs) if any(a is not b for a, b in zip(ins, n.inputs)) else n
        memo[n] = new
    return [memo[o] for o in outputs]


def leaves(outputs: Iterable[Node]) -> list[Node]:
    """The input/param leaves of a graph in topological order; raises on duplicate leaf names."""
    found: dict[str, Node] = {}
    for n in toposort(outputs):
        if n.is_leaf:
            nm = n.attrs["name"]
            if nm in found and found[nm] is not n:
                a, b = found[nm], n
                raise ValueError(f"leaf name {nm!r} is used twice in one graph: {a.op} {a.dtype}{list(a.shape)} "
                                 f"and {b.op} {b.dtype}{list(b.shape)}; leaf names must be unique")
            found[nm] = n
    return list(found.values())


def is_zero(n: Node) -> bool:
    """True for a constant zero (possibly broadcast)."""
    if n.op == "broadcast_to":
        n = n.inputs[0]
    return n.op == "const" and n.value.size > 0 and not np.any(n.value)


def is_const_scalar(n: Node, v: Optional[float] = None) -> bool:
    if n.op != "const" or n.value.size != 1:
        return False
    return v is None or float(n.value.reshape(())) == v
