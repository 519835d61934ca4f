"""The graph IR: immutable, hash-consed tensor nodes.

A :class:`Node` is one tensor-valued operation: ``op`` (a name in the op table), its input nodes, its
attributes, and the inferred ``shape``/``dtype``. Forward, backward and simplified graphs are all made
of the same nodes.

Hash-consing: every node carries a structural digest (op, attributes, shape, dtype and the digests of
its inputs). Equality and hashing use that digest, so two structurally equal subexpressions are *the
same key* in every dict and set: common-subexpression elimination falls out of building a graph.
There is no global intern table (no module-level mutable state).
"""
from __future__ import annotations

import hashlib
from typing import Any, Iterable, Optional, Sequence

import numpy as np

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


class Node:
    """A tensor in a symdiff graph (what the DSL functions take and return)."""

    __slots__ = ("op", "inputs", "attrs", "shape", "dtype", "digest", "_hash", "meta")
    __array_ufunc__ = None  # make numpy defer to our reflected operators (np.float32(2) * x)

    def __init__(self, op: str, inputs: Sequence["Node"], attrs: dict, shape: tuple, dtype: str,
                 meta: Optional[dict] = None) -> None:
        self.op = op
        self.inputs = tuple(inputs)
        self.attrs = dict(attrs)
        self.shape = tuple(int(s) for s in shape)
        self.dtype = dtype
        key = repr((op, tuple(sorted((k, _freeze(v)) for k, v in self.attrs.items())), self.shape, dtype,
                    tuple(i.digest for i in self.inputs)))
        self.digest = hashlib.blake2b(key.encode(), digest_size=16).hexdigest()
        self._hash = hash(self.digest)
        self.meta = dict(meta or {})

    # -- identity ---------------------------------------------------------------------------------
    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other: object):  # structural equality (hash-consing)
        return isinstance(other, Node) and other.digest == self.digest

    def __ne__(self, other: object):
        return not self.__eq__(other)

    def __bool__(self) -> bool:
        raise TypeError("a symbolic tensor has no truth value (did you mean sd.maximum / comparisons on arrays?)")

    # -- properties -----------------------------------------------------------------------------------
    @property
    def name(self) -> Optional[str]:
        """The leaf name for inputs/params; a descriptive name for other nodes when one is known."""
        return self.attrs.get("name", self.meta.get("name"))

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

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

    def sum(self, axis=None, keepdims: bool = False): return _api().sum(self, axis, keepdims)
    def mean(self, axis=None, keepdims: bool = False): return _api().mean(self, axis, keepdims)
    def max(self, axis=None, keepdims: bool = False): return _api().max(self, axis, keepdims)
    def reshape(self, *shape): return _api().reshape(self, shape[0] if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape)


def _api():
    from . import api
    return api


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


def leaves(outputs: Iterable[Node]) -> list[Node]:
    """The input/param leaves of a graph in topological order; raises on duplicate leaf names."""
    found: dict[str, Node] = {}
    for n in toposort(outputs):
        if n.is_leaf:
            nm = n.attrs["name"]
            if nm in found and found[nm] != n:
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
