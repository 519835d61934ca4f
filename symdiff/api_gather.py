"""The DSL of gathers, scatters, scans and sorts: ``take``, ``take_along_axis``, NumPy advanced (integer-array)
indexing, JAX's functional updates ``x.at[key].set/add/multiply/get``, ``cumsum``/``cumprod`` and
``sort``/``argsort``/``partition``/``argpartition``.

Every index expression becomes a short chain of ``take_along`` gathers (point ops: they fuse into the
kernels that read them), reshapes and transposes: :class:`Gather` records the chain, so a functional
update applies its transpose -- ``scatter_add`` (``.add``, and the gradient of every gather),
``scatter_mul`` (``.multiply``) or ``scatter_max`` (which update of ``.set`` wins) -- in reverse.

Index rules:

- static indices (Python ints, lists, NumPy integer arrays, constant boolean masks): checked when the
  graph is built, exactly as NumPy (an out-of-range index is an ``IndexError`` naming the axis and its
  size; negative indices count from the end);
- dynamic indices (int32/int64 symdiff tensors): cannot be checked at build time; at run time a negative
  index wraps once (``i + n``) and is then CLAMPED to ``[0, n - 1]``, as JAX does -- identical on every
  backend, never an out-of-bounds access (``symdiff.ops_gather.wrap_clamp``);
- a boolean *tensor* index has a data-dependent shape and is rejected (use ``sd.where``), as in JAX.

``x.at[key].set(v)`` with repeated indices: the LAST update in row-major order of the indexed result wins
(what NumPy's ``x[key] = v`` does), on every backend, static or dynamic; ``.add`` sums repeated indices,
``.multiply`` multiplies them all.
"""
from __future__ import annotations

import builtins
import numbers
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np

from . import dims as _dims
from . import dtypes as _dt
from .api import TensorLike, as_tensor
from .ir import Node, apply, const
from .ops_gather import cumsum as _cumsum
from .ops_gather import gather_shape, iota
from .ops_gather import scatter_add as _scatter_add
from .ops_gather import take_along as _take_along
from .ops_tensor import broadcast_to, cast, reshape, transpose
from .optable import broadcast_shapes

__all__ = ["take", "take_along_axis", "advanced_index", "cumsum", "cumprod", "sort", "argsort", "partition",
           "argpartition", "AtIndexer", "AtUpdate", "Gather",
           "gather_of"]


# -- index values -------------------------------------------------------------------------------------------

def _is_dynamic(v: Any) -> bool:
    return isinstance(v, Node)


def _check_dynamic(op: str, v: Node) -> Node:
    if str(v.dtype) == "bool":  # a mask tensor (dtype "bool"): its nonzero count is only known at run time
        raise IndexError(f"{op}: a boolean tensor index has a data-dependent result shape (tensor {v.name or v.op!r} "
                         f"{list(v.shape)}); use sd.where(mask, x, other) or a constant NumPy mask")
    if v.dtype not in _dt.INT_DTYPES:
        raise IndexError(f"{op}: index tensors must be int32/int64, got a {v.dtype} tensor {v.name or v.op!r}")
    return v


def _static_ints(op: str, v: Any, n: int, axis: int, shape: tuple) -> np.ndarray:
    """A static integer index array, bounds-checked as NumPy (IndexError naming the axis and its size), wrapped."""
    a = np.asarray(v)
    if a.dtype.kind not in "iu":
        raise IndexError(f"{op}: only integers, slices, None, Ellipsis and integer or boolean arrays are valid "
                         f"indices (got {a.dtype} {v!r})")
    if isinstance(n, _dims.Dim):  # a symbolic axis (every size >= 1): only index 0 is in range for every size
        if a.size and (a.min() < 0 or a.max() >= 1):
            bad = int(a.reshape(-1)[np.argmax((a < 0) | (a >= 1)).item()])
            raise _dims.SymbolicDimError(f"{op}: the constant index {bad} into the symbolic axis {axis} (size {n}) "
                                         f"is out of range for some sizes (tensor shape {shape}); index it with an "
                                         f"int tensor (clamped at run time) or use x[-1] / slices")
        return a.astype(np.int64)
    bad = a[(a >= n) | (a < -n)]
    if bad.size:
        raise IndexError(f"{op}: index {int(bad.reshape(-1)[0])} is out of bounds for axis {axis} with size {n} "
                         f"(tensor shape {shape})")
    return np.where(a < 0, a + n, a).astype(np.int64)


def _index_node(op: str, v: Any, n: int, axis: int, shape: tuple) -> Node:
    if _is_dynamic(v):
        return _check_dynamic(op, v)
    return const(_static_ints(op, v, n, axis, shape), "int64")


# -- the gather chain ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Gather:
    """A linear map ``x -> x[key]`` as steps over tensors of ``in_shape``: ``("reshape", shape)``,
    ``("transpose", perm)``, ``("take", idx, axis)`` (take_along). ``apply`` runs it; ``transpose_apply``
    runs its transpose with the scatter op ``op`` (scatter_add: the adjoint; scatter_mul; scatter_max)."""
    in_shape: tuple
    steps: tuple

    def apply(self, x: Node) -> Node:
        for step in self.steps:
            kind = step[0]
            if kind == "reshape":
                x = reshape(x, step[1])
            elif kind == "transpose":
                x = transpose(x, step[1])
            else:
                x = _take_along(x, step[1], step[2])
        return x

    def shapes(self) -> list:
        """The shape before each step, and the final one."""
        shapes = [tuple(self.in_shape)]
        for step in self.steps:
            s = shapes[-1]
            if step[0] == "reshape":
                s = tuple(step[1])
            elif step[0] == "transpose":
                s = tuple(s[p] for p in step[1])
            else:
                s = gather_shape("take_along", s, step[1].shape, step[2])
            shapes.append(s)
        return shapes

    def transpose_apply(self, v: Node, op: str = "scatter_add", fill: Optional[int] = None) -> Node:
        shapes = self.shapes()
        for step, before in zip(reversed(self.steps), reversed(shapes[:-1])):
            kind = step[0]
            if kind == "reshape":
                v = reshape(v, before)
            elif kind == "transpose":
                v = transpose(v, tuple(int(p) for p in np.argsort(step[1])))
            else:
                attrs = {} if fill is None else {"fill": int(fill)}
                v = apply(op, [v, step[1]], axis=step[2], shape=tuple(before), **attrs)
        return v


def _expand_key(op: str, key: Any, ndim: int, shape: tuple) -> list:
    """The key as entries ('new',) | ('slice', slice, dim) | ('adv', value, dim); Ellipsis expanded,
    static boolean masks turned into their nonzero() integer arrays."""
    if not isinstance(key, tuple):
        key = (key,)
    items = []
    for k in key:
        if isinstance(k, (list, np.ndarray)) and not _is_dynamic(k):
            a = np.asarray(k)
            if a.dtype == bool:
                items += [("mask", a)]
                continue
            k = a
        if isinstance(k, np.ndarray) and k.dtype == bool:
            items.append(("mask", k))
        else:
            items.append(("item", k))
    consumed = builtins.sum(it[1].ndim if it[0] == "mask" else
                            (0 if it[1] is None or it[1] is Ellipsis else 1) for it in items)
    if builtins.sum(1 for it in items if it[0] == "item" and it[1] is Ellipsis) > 1:
        raise IndexError(f"{op}: an index can only have a single ellipsis ('...')")
    if consumed > ndim:
        raise IndexError(f"{op}: too many indices for tensor: tensor is {ndim}-dimensional, but {consumed} were "
                         f"indexed (shape {shape})")
    out, d = [], 0
    for kind, k in items:
        if kind == "mask":
            if k.shape != shape[d:d + k.ndim]:
                raise IndexError(f"{op}: boolean index of shape {k.shape} does not match the indexed dims "
                                 f"{shape[d:d + k.ndim]} of shape {shape}")
            for j, nz in enumerate(np.nonzero(k)):
                out.append(("adv", nz.astype(np.int64), d + j))
            d += k.ndim
        elif k is None:
            out.append(("new",))
        elif k is Ellipsis:
            for _ in range(ndim - consumed):
                out.append(("slice", slice(None), d))
                d += 1
        elif isinstance(k, slice):
            out.append(("slice", k, d))
            d += 1
        elif isinstance(k, bool) or (isinstance(k, np.generic) and k.dtype == bool):
            raise IndexError(f"{op}: a boolean scalar index is not supported (shape {shape})")
        elif _is_dynamic(k) or isinstance(k, (numbers.Integral, np.ndarray)):
            out.append(("adv", k, d))
            d += 1
        else:
            raise IndexError(f"{op}: only integers, slices (`:`), ellipsis (`...`), None and integer or boolean "
                             f"arrays/tensors are valid indices, got {type(k).__name__} {k!r}")
    while d < ndim:  # an implicit trailing Ellipsis
        out.append(("slice", slice(None), d))
        d += 1
    return out


def _static_flat(op: str, shape: tuple, key: Any) -> np.ndarray:
    """Flat positions of ``x[key]`` for a fully static key (NumPy does the indexing, and the checks)."""
    try:
        return np.asarray(np.arange(int(np.prod(shape, dtype=np.int64)), dtype=np.int64).reshape(shape)[key])
    except IndexError as e:
        raise IndexError(f"{op}: {e} (tensor shape {shape})") from None


def _has_dynamic(key: Any) -> bool:
    return any(_is_dynamic(k) for k in (key if isinstance(key, tuple) else (key,)))


def gather_of(shape: tuple, key: Any, op: str = "advanced_index") -> Gather:
    """The gather chain of ``x[key]`` for a tensor of ``shape`` (NumPy indexing semantics). A symbolic
    shape takes the general chain (constant indices are checked against the fixed axes they index)."""
    shape = tuple(shape)
    if not _has_dynamic(key) and not _dims.is_symbolic(shape):
        size = int(np.prod(shape, dtype=np.int64))
        flat = _static_flat(op, shape, key)
        return Gather(shape, (("reshape", (size,)), ("take", const(flat.reshape(-1), "int64"), 0),
                              ("reshape", flat.shape)))
    entries = _expand_key(op, key, len(shape), shape)
    steps: list = []
    cur = list(shape)
    for e in entries:  # 1. slices: a constant gather along their axis
        if e[0] == "slice":
            d = e[2]
            if isinstance(shape[d], _dims.Dim):
                if e[1] != slice(None):
                    raise _dims.SymbolicDimError(f"{op}: the slice {e[1]} of the symbolic axis {d} (size {shape[d]}) "
                                                 f"next to an array index is not supported; slice first (x[a:b][idx])")
                continue
            r = np.arange(*e[1].indices(shape[d]), dtype=np.int64)
            if len(r) != shape[d] or np.any(r != np.arange(shape[d])):
                steps.append(("take", const(r.reshape([1] * d + [len(r)] + [1] * (len(shape) - d - 1)), "int64"), d))
                cur[d] = len(r)
    adv = [e for e in entries if e[0] == "adv"]
    idx = [_index_node(op, e[1], shape[e[2]], e[2], shape) for e in adv]
    try:
        B = broadcast_shapes(op, *(i.shape for i in idx))
    except ValueError:
        raise IndexError(f"{op}: shape mismatch: indexing arrays could not be broadcast together with shapes "
                         f"{' '.join(str(i.shape) for i in idx)}") from None
    adims = [e[2] for e in adv]
    rest = [d for d in range(len(shape)) if d not in adims]
    nb, m = len(B), len(adv)
    steps.append(("transpose", tuple(adims + rest)))  # 2. indexed axes first, behind nb broadcast axes
    R = [cur[d] for d in rest]
    steps.append(("reshape", (1,) * nb + tuple(cur[d] for d in adims) + tuple(R)))
    for k, i in enumerate(idx):  # 3. one take_along per indexed axis
        ishape = (1,) * (nb - i.ndim) + i.shape + (1,) * (m + len(R))
        steps.append(("take", reshape(i, ishape), nb + k))
    steps.append(("reshape", B + tuple(R)))
    # 4. NumPy's placement: adjacent indexed entries (in key order, None included) keep their place
    pos = [j for j, e in enumerate(entries) if e[0] == "adv"]
    adjacent = pos == list(range(pos[0], pos[0] + len(pos)))
    order, final = ([] if adjacent else list(range(nb))), ([] if adjacent else list(B))
    r_of = {d: nb + j for j, d in enumerate(rest)}
    for j, e in enumerate(entries):
        if e[0] == "new":
            final.append(1)
        elif e[0] == "slice":
            order.append(r_of[e[2]])
            final.append(R[rest.index(e[2])])
        elif adjacent and j == pos[0]:
            order += list(range(nb))
            final += list(B)
    steps.append(("transpose", tuple(order)))
    steps.append(("reshape", tuple(final)))
    return Gather(shape, tuple(s for s in steps if not _identity_step(s)))


def _identity_step(step: tuple) -> bool:
    return step[0] == "transpose" and tuple(step[1]) == tuple(range(len(step[1])))


# -- DSL functions ------------------------------------------------------------------------------------------

def advanced_index(x: TensorLike, key: Any) -> Node:
    """``x[key]`` with NumPy semantics, integer-array ("advanced") indexing included: integers, slices,
    None, Ellipsis, integer lists/arrays, constant boolean masks and int32/int64 symdiff tensors (dynamic
    indices: wrapped once, then clamped -- see the module docstring). Differentiable w.r.t. ``x``."""
    x = as_tensor(x)
    return gather_of(x.shape, key).apply(x)


def take_along_axis(x: TensorLike, indices: Any, axis: Optional[int]) -> Node:
    """``np.take_along_axis``: ``indices`` (same rank as ``x``, broadcast on the other axes) pick entries along
    ``axis`` (None: of the flattened ``x``, 1-D indices). Static indices are bounds-checked; dynamic ones wrap
    once, then clamp."""
    x = as_tensor(x)
    if axis is None:
        x = reshape(x, (x.size,))
        axis = 0
    if not -x.ndim <= axis < max(x.ndim, 1):
        raise ValueError(f"take_along_axis: axis {axis} is out of bounds for a tensor of rank {x.ndim} (shape {x.shape})")
    axis = int(axis) % x.ndim
    i = _index_node("take_along_axis", indices, x.shape[axis], axis, x.shape)
    if i.ndim != x.ndim:
        raise ValueError(f"take_along_axis: indices of shape {i.shape} must have the rank of the tensor {x.shape}")
    return _take_along(x, i, axis)


def take(x: TensorLike, indices: Any, axis: Optional[int] = None) -> Node:
    """``np.take``: entries of ``x`` at ``indices`` (any shape) along ``axis`` (None: of the flattened ``x``);
    the result has shape ``x.shape[:axis] + indices.shape + x.shape[axis + 1:]``."""
    x = as_tensor(x)
    if axis is None:
        x, axis = reshape(x, (x.size,)), 0
    if not -x.ndim <= axis < max(x.ndim, 1):
        raise ValueError(f"take: axis {axis} is out of bounds for a tensor of rank {x.ndim} (shape {x.shape})")
    axis = int(axis) % x.ndim
    i = _index_node("take", indices, x.shape[axis], axis, x.shape)
    before, after = x.shape[:axis], x.shape[axis + 1:]
    a, b = _dims.prod(before), _dims.prod(after)
    x3 = reshape(x, (a, x.shape[axis], b))
    out = _take_along(x3, reshape(i, (1, i.size, 1)), 1)
    return reshape(out, before + i.shape + after)


def cumsum(x: TensorLike, axis: Optional[int] = None) -> Node:
    """Inclusive cumulative sum along ``axis`` (None: of the flattened ``x``), as ``np.cumsum``. Its
    gradient is the cumulative sum of the cotangent taken from the end."""
    x = as_tensor(x)
    if axis is None:
        x, axis = reshape(x, (x.size,)), 0
    if not -x.ndim <= axis < max(x.ndim, 1):
        raise ValueError(f"cumsum: axis {axis} is out of bounds for a tensor of rank {x.ndim} (shape {x.shape})")
    return _cumsum(x, int(axis) % x.ndim)


def cumprod(x: TensorLike, axis: Optional[int] = None) -> Node:
    """Inclusive cumulative product along ``axis`` (None: of the flattened ``x``), as ``np.cumprod``.

    Gradient: dx_j = sum_{i>=j} g_i y_i / x_j (a reversed cumulative sum divided by x): exact wherever
    x != 0; at an entry x_j == 0 it is nan/inf (0/0), as autograd's rule -- avoid exact zeros."""
    x = as_tensor(x)
    if axis is None:
        x, axis = reshape(x, (x.size,)), 0
    if not -x.ndim <= axis < max(x.ndim, 1):
        raise ValueError(f"cumprod: axis {axis} is out of bounds for a tensor of rank {x.ndim} (shape {x.shape})")
    return apply("cumprod", [x], axis=int(axis) % x.ndim, reverse=False)


def _sort_axis(op: str, x: Node, axis: Optional[int]) -> tuple[Node, int]:
    if axis is None:
        return reshape(x, (x.size,)), 0
    if not isinstance(axis, numbers.Integral) or not -x.ndim <= axis < max(x.ndim, 1):
        raise ValueError(f"{op}: axis {axis!r} is out of bounds for a tensor of rank {x.ndim} (shape {x.shape})")
    if x.ndim == 0:
        raise ValueError(f"{op}: cannot sort a 0-d tensor along an axis; use axis=None")
    return x, int(axis) % x.ndim


def argsort(x: TensorLike, axis: Optional[int] = -1) -> Node:
    """The int64 permutation that sorts ``x`` along ``axis`` (None: the flattened ``x``), as
    ``np.argsort(kind="stable")``: ties keep their order, NaNs go last. Not differentiable (an index)."""
    x, axis = _sort_axis("argsort", as_tensor(x), axis)
    return apply("argsort", [x], axis=axis)


def sort(x: TensorLike, axis: Optional[int] = -1) -> Node:
    """``x`` sorted along ``axis`` (None: flattened), as ``np.sort``; NaNs last. The gradient flows back
    through the sorting permutation (a scatter of the cotangent by ``argsort``)."""
    x, axis = _sort_axis("sort", as_tensor(x), axis)
    return _take_along(x, apply("argsort", [x], axis=axis), axis)


def _kth(op: str, x: Node, kth: Any, axis: int) -> None:
    n = x.shape[axis]
    for k in np.atleast_1d(np.asarray(kth)).reshape(-1):
        if not isinstance(k.item(), int) or not -n <= int(k) < n:
            raise ValueError(f"{op}: kth(={k}) out of bounds for axis {axis} of length {n} (shape {x.shape})")


def partition(x: TensorLike, kth: Any, axis: Optional[int] = -1) -> Node:
    """``np.partition``: along ``axis`` the element at each ``kth`` position is the one a sort would put
    there, smaller ones before, larger ones after. NumPy leaves the order inside the two parts undefined;
    here they are sorted (the result is ``sort(x)``), which satisfies that contract. Differentiable as sort."""
    x, ax = _sort_axis("partition", as_tensor(x), axis)
    _kth("partition", x, kth, ax)
    return sort(x, ax)


def argpartition(x: TensorLike, kth: Any, axis: Optional[int] = -1) -> Node:
    """``np.argpartition``: the indices that partition ``x`` (here: the stable sorting permutation)."""
    x, ax = _sort_axis("argpartition", as_tensor(x), axis)
    _kth("argpartition", x, kth, ax)
    return argsort(x, ax)


# -- functional updates: x.at[key] ----------------------------------------------------------------------------

class AtIndexer:
    """``x.at``: ``x.at[key]`` is an :class:`AtUpdate` (JAX's functional index updates)."""

    def __init__(self, x: Node) -> None:
        self.x = x

    def __getitem__(self, key: Any) -> "AtUpdate":
        return AtUpdate(self.x, key)


class AtUpdate:
    """``x.at[key]``: ``.get()``, ``.set(v)``, ``.add(v)``, ``.multiply(v)`` return new tensors (``x`` is
    unchanged); ``v`` broadcasts to the shape of ``x[key]``. Repeated indices: ``.add`` sums, ``.multiply``
    multiplies all, ``.set``: the last update in row-major order of ``x[key]`` wins. Differentiable w.r.t.
    ``x`` and ``v`` (``.multiply``'s gradient w.r.t. ``v`` is nan at v == 0 when indices repeat or are dynamic)."""

    def __init__(self, x: Node, key: Any) -> None:
        self.x, self.key = x, key
        self.g = gather_of(x.shape, key, "at")
        self.static = not _has_dynamic(key) and not _dims.is_symbolic(x.shape)
        self.out_shape = self.g.shapes()[-1]

    def _v(self, v: TensorLike, what: str) -> Node:
        v = as_tensor(v, self.x)
        if _dt.is_float(self.x.dtype) and _dt.is_float(v.dtype):
            v = cast(v, self.x.dtype)
        elif v.dtype != self.x.dtype:
            raise TypeError(f"at[...].{what}: update dtype {v.dtype} does not match the tensor's {self.x.dtype}")
        try:
            return broadcast_to(v, self.out_shape)
        except ValueError:
            raise ValueError(f"at[...].{what}: update of shape {v.shape} cannot be broadcast to the indexed shape "
                             f"{self.out_shape} (tensor shape {self.x.shape})") from None

    def _flat(self) -> np.ndarray:
        return _static_flat("at", self.x.shape, self.key).reshape(-1)

    def get(self) -> Node:
        return self.g.apply(self.x)

    def add(self, v: TensorLike) -> Node:
        v = self._v(v, "add")
        return apply("add", [self.x, self.g.transpose_apply(v, "scatter_add")])

    def multiply(self, v: TensorLike) -> Node:
        v = self._v(v, "multiply")
        if self.static and len(np.unique(self._flat())) == self._flat().size:  # unique: x * (1 + S(v - 1)), exact
            one = const(1.0, v.dtype)
            return apply("mul", [self.x, apply("add", [one, self.g.transpose_apply(apply("sub", [v, one]))])])
        return apply("mul", [self.x, self.g.transpose_apply(v, "scatter_mul")])

    def set(self, v: TensorLike) -> Node:
        v = self._v(v, "set")
        dt = self.x.dtype
        if self.static:  # the last occurrence of each position wins; computed now
            flat = self._flat()
            last = np.zeros(flat.size, bool)
            _, first_rev = np.unique(flat[::-1], return_index=True)
            last[flat.size - 1 - first_rev] = True
            winner = const(last.reshape(self.out_shape).astype(dt), dt)
        else:  # the largest row-major position sent to each target wins: a scatter_max of positions
            pos = reshape(iota(_dims.prod(self.out_shape)), self.out_shape)
            back = cast(self.g.apply(self.g.transpose_apply(pos, "scatter_max", fill=-1)), "float64")
            winner = cast(apply("eq", [back, cast(pos, "float64")]), dt)
        # one winner per written position: scattering the winner mask marks exactly the positions hit
        keep = apply("sub", [const(1.0, dt), self.g.transpose_apply(winner)])
        return apply("add", [apply("mul", [self.x, keep]), self.g.transpose_apply(apply("mul", [v, winner]))])
