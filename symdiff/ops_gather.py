"""Dynamic gathers, scatters and cumulative ops: op-table entries with shape rules, NumPy
implementations and vector-Jacobian rules.

Index semantics (identical on every backend): an index ``i`` into an axis of length ``n`` first wraps
once when negative (``i + n``), then is CLAMPED to ``[0, n - 1]`` -- as JAX gathers do. No index ever
reads or writes out of bounds; an index that is still out of range after the wrap lands on the
nearest end of the axis (so ``-n - 5`` reads element 0 and ``n + 5`` reads element ``n - 1``).

- ``take_along(x, idx, axis)``: ``out[..., j, ...] = x[..., idx[..., j, ...], ...]``; ``x`` and ``idx``
  have the same rank and broadcast against each other on every axis but ``axis``; the output has
  ``idx.shape[axis]`` entries along ``axis``. A point op (computed inline by the kernels that read it).
- ``scatter_add(g, idx, axis, shape)``: the transpose of ``take_along``: zeros of ``shape``, plus each
  ``g[p]`` added at the position ``take_along`` reads for ``p`` (repeated indices sum).
  ``scatter_mul`` multiplies instead (ones, then the product of the values sent to a position);
  ``scatter_max`` keeps the largest (integer tensors only; positions nobody writes hold ``fill``).
- ``argsort(x, axis)``: the int64 permutation that sorts ``x`` along ``axis``, stable (ties keep their
  order) with NaNs last, as ``np.argsort(kind="stable")``; ``sort(x) = take_along(x, argsort(x))``, so the
  gradient of a sort is the scatter of the cotangent by the permutation.
- ``cumsum(x, axis, reverse)`` / ``cumprod(x, axis, reverse)``: inclusive scans along ``axis``;
  ``reverse=True`` scans from the end (``out[i] = sum(x[i:])``), which is the VJP of the forward scan.
"""
from __future__ import annotations

import numpy as np

from . import dims as _dims
from . import dtypes as _dt
from .ir import Node, apply, const
from .optable import OpDef, register

__all__ = ["wrap_clamp", "gather_shape", "take_along", "scatter_add", "cumsum", "iota", "SCATTER_OPS", "SCAN_OPS", "SORT_OPS"]

SCATTER_OPS = ("scatter_add", "scatter_mul", "scatter_max")  # combine rule per op: see the kernel renderers
SCAN_OPS = ("cumsum", "cumprod")
SORT_OPS = ("argsort",)


def wrap_clamp(idx: np.ndarray, n: int) -> np.ndarray:
    """The documented dynamic-index rule: negative indices wrap once (i + n), then clamp to [0, n-1]."""
    i = np.asarray(idx).astype(np.int64)
    i = np.where(i < 0, i + n, i)
    return np.clip(i, 0, max(n - 1, 0))


def gather_shape(op: str, x_shape: tuple, idx_shape: tuple, axis: int) -> tuple:
    """The output shape of ``take_along`` (= the shape of a ``scatter_*`` update): non-axis dims of
    ``x`` and ``idx`` broadcast (each 1 or equal), ``idx``'s length along ``axis``."""
    if len(x_shape) != len(idx_shape):
        raise ValueError(f"{op}: indices of shape {idx_shape} must have the rank of the values {x_shape} "
                         f"({len(idx_shape)} != {len(x_shape)})")
    if not 0 <= axis < len(x_shape):
        raise ValueError(f"{op}: axis {axis} is out of bounds for a tensor of rank {len(x_shape)} (shape {x_shape})")
    out = []
    for d, (a, b) in enumerate(zip(x_shape, idx_shape)):
        if d == axis:
            out.append(b)
        elif a == b or b == 1:
            out.append(a)
        elif a == 1:
            out.append(b)
        else:
            raise ValueError(f"{op}: indices of shape {idx_shape} do not broadcast against values of shape "
                             f"{x_shape} on axis {d} ({b} vs {a}; only axis {axis} may differ)")
    if x_shape[axis] == 0 and _dims.prod(out) != 0:
        raise IndexError(f"{op}: cannot index axis {axis} of length 0 (shape {x_shape})")
    return tuple(out)


def _int_index(op: str, idx: Node) -> None:
    if idx.dtype not in _dt.INT_DTYPES:
        raise TypeError(f"{op}: indices must be an int32/int64 tensor, got {idx.dtype} tensor {idx.name or idx.op!r}")


# -- builders (used by the vjp rules and the DSL) --------------------------------------------------------------

def take_along(x: Node, idx: Node, axis: int) -> Node:
    return apply("take_along", [x, idx], axis=int(axis))


def scatter_add(g: Node, idx: Node, axis: int, shape: tuple) -> Node:
    return apply("scatter_add", [g, idx], axis=int(axis), shape=tuple(_dims.as_dim(s) for s in shape))


def cumsum(x: Node, axis: int, reverse: bool = False) -> Node:
    return apply("cumsum", [x], axis=int(axis), reverse=bool(reverse))


def iota(n: "_dims.DimLike", dtype: str = "int64") -> Node:
    """``[0, 1, ..., n - 1]`` as a 1-D ``dtype`` tensor: a constant for a fixed ``n``; for a symbolic one the
    inclusive cumulative sum of n ones, minus 1 (in float64: exact for n < 2**53), cast to ``dtype``."""
    if not isinstance(n, _dims.Dim):
        return const(np.arange(n).astype(dtype), dtype)
    ones = apply("broadcast_to", [const(1.0, "float64")], shape=(n,))
    out = apply("sub", [cumsum(ones, 0), const(1.0, "float64")])
    return out if dtype == "float64" else apply("cast", [out], dtype=dtype)


# -- shape rules ---------------------------------------------------------------------------------------------

def _take_along_infer(inputs, attrs):
    x, idx = inputs
    _int_index("take_along", idx)
    return gather_shape("take_along", x.shape, idx.shape, attrs["axis"]), x.dtype


def _scatter_infer(op):
    def infer(inputs, attrs):
        g, idx = inputs
        _int_index(op, idx)
        if op == "scatter_max":
            if g.dtype not in _dt.INT_DTYPES:
                raise TypeError(f"{op}: updates must be an int32/int64 tensor, got {g.dtype}")
        elif not _dt.is_float(g.dtype):
            raise TypeError(f"{op}: updates must be a float tensor, got {g.dtype} tensor {g.name or g.op!r}")
        shape = tuple(attrs["shape"])
        want = gather_shape(op, shape, idx.shape, attrs["axis"])
        if g.shape != want:
            raise ValueError(f"{op}: updates of shape {g.shape} do not match indices {idx.shape} into shape {shape} "
                             f"along axis {attrs['axis']} (expected updates of shape {want})")
        return shape, g.dtype
    return infer


def _scan_infer(op):
    def infer(inputs, attrs):
        (x,) = inputs
        if not _dt.is_float(x.dtype):
            raise TypeError(f"{op}: expected a float tensor, got {x.dtype} tensor {x.name or x.op!r}")
        if not 0 <= attrs["axis"] < x.ndim:
            raise ValueError(f"{op}: axis {attrs['axis']} is out of bounds for a tensor of rank {x.ndim} (shape {x.shape})")
        return x.shape, x.dtype
    return infer


def _argsort_infer(inputs, attrs):
    (x,) = inputs
    if not _dt.is_float(x.dtype):
        raise TypeError(f"argsort: expected a float tensor, got {x.dtype} tensor {x.name or x.op!r}")
    if not 0 <= attrs["axis"] < x.ndim:
        raise ValueError(f"argsort: axis {attrs['axis']} is out of bounds for a tensor of rank {x.ndim} (shape {x.shape})")
    return x.shape, "int64"


# -- numpy implementations -----------------------------------------------------------------------------------

def _take_along_np(a, idx, axis):
    out = gather_shape("take_along", a.shape, idx.shape, axis)
    i = np.broadcast_to(wrap_clamp(idx, a.shape[axis]), out)
    src = np.broadcast_to(a, out[:axis] + (a.shape[axis],) + out[axis + 1:])
    return np.take_along_axis(src, i, axis)


def _scatter_np(ufunc, ident):
    def impl(g, idx, axis, shape, fill=None):
        base = ident(g.dtype) if fill is None else fill
        out = np.full(shape, base, g.dtype)
        coords = list(np.indices(g.shape, sparse=True))
        coords = [np.zeros_like(c) if shape[d] == 1 else c for d, c in enumerate(coords)]
        coords[axis] = np.broadcast_to(wrap_clamp(idx, shape[axis]), g.shape)
        ufunc.at(out, tuple(coords), g)
        return out
    return impl


def _scan_np(fn):
    def impl(a, axis, reverse=False):
        if not reverse:
            return fn(a, axis=axis).astype(a.dtype)
        return np.flip(fn(np.flip(a, axis), axis=axis), axis).astype(a.dtype)
    return impl


# -- vector-Jacobian rules ------------------------------------------------------------------------------------

def _take_along_vjp(node, g):
    x, idx = node.inputs
    return [scatter_add(g, idx, node.attrs["axis"], x.shape), None]


def _scatter_add_vjp(node, g):
    _, idx = node.inputs
    return [take_along(g, idx, node.attrs["axis"]), None]


def _scatter_mul_vjp(node, g):
    # out[t] = prod_{p -> t} u[p]:  d out[t] / d u[p] = out[t] / u[p]  (undefined where u[p] == 0: nan/inf)
    u, idx = node.inputs
    back = take_along(apply("mul", [g, node]), idx, node.attrs["axis"])
    return [apply("div", [back, u]), None]


def _cumsum_vjp(node, g):
    # y_i = sum_{k<=i} x_k  ->  dx_j = sum_{i>=j} g_i: the scan in the other direction
    return [cumsum(g, node.attrs["axis"], not node.attrs.get("reverse", False))]


def _cumprod_vjp(node, g):
    # y_i = prod_{k<=i} x_k  ->  dx_j = sum_{i>=j} g_i y_i / x_j (the reversed cumsum of g*y, over x):
    # exact where x != 0; at an x_j == 0 it is 0/0 or c/0 (nan/inf), as autograd's cumprod rule
    (x,) = node.inputs
    s = cumsum(apply("mul", [g, node]), node.attrs["axis"], not node.attrs.get("reverse", False))
    return [apply("div", [s, x])]


register(OpDef("take_along", _take_along_infer, _take_along_np, _take_along_vjp, arity=2,
               doc="take_along(x, idx, axis): x[..., idx[..., j, ...], ...] (wrap once, then clamp)"))
register(OpDef("scatter_add", _scatter_infer("scatter_add"), _scatter_np(np.add, lambda dt: 0), _scatter_add_vjp,
               arity=2, cost_class="cheap", doc="zeros(shape) with g added at take_along's positions"))
register(OpDef("scatter_mul", _scatter_infer("scatter_mul"), _scatter_np(np.multiply, lambda dt: 1), _scatter_mul_vjp,
               arity=2, cost_class="cheap", doc="ones(shape) multiplied by g at take_along's positions"))
register(OpDef("scatter_max", _scatter_infer("scatter_max"), _scatter_np(np.maximum, lambda dt: np.iinfo(dt).min),
               arity=2, differentiable=False, cost_class="cheap",
               doc="integer scatter keeping the largest value per position (attr fill: value of untouched ones)"))
register(OpDef("argsort", _argsort_infer, lambda a, axis: np.argsort(a, axis=axis, kind="stable").astype(np.int64),
               arity=1, differentiable=False, cost_class="cheap",
               doc="argsort(x, axis): the stable sorting permutation along axis (NaN last), int64"))
register(OpDef("cumsum", _scan_infer("cumsum"), _scan_np(np.cumsum), _cumsum_vjp, cost_class="cheap",
               doc="inclusive cumulative sum along axis (reverse: from the end)"))
register(OpDef("cumprod", _scan_infer("cumprod"), _scan_np(np.cumprod), _cumprod_vjp, cost_class="cheap",
               doc="inclusive cumulative product along axis (reverse: from the end)"))
