"""The DSL's rearranging functions: pad, roll, repeat, tile, triu/tril, diagonal/trace, rot90, diff, cross,
and ``asarray``/``array`` of nested sequences of tensors (NumPy names, arguments and semantics).

Static index patterns along one axis (``pad``'s edge/reflect/symmetric/wrap modes, per-element
``repeat``) are :func:`take_static`: the source index of every output position, cut into runs of
consecutive (+1), reversed (-1) or repeated (0) indices, each a ``slice`` (of a ``flip``) or a broadcast
element, joined by ``concatenate``. So each is a handful of index-mapping ops and its gradient comes from
theirs.
"""
from __future__ import annotations

import builtins
import numbers
from typing import Any, Optional, Sequence

import numpy as np

from . import dims as _dims
from . import dtypes as _dt
from .api import as_tensor, reshape
from .api_shape import (concatenate, expand_dims, flip, moveaxis, normalize_axes, normalize_axis, result_dtype,
                        stack, swapaxes)
from .ir import Node, apply, const
from .ops_gather import iota
from .ops_index import concat, decide, dim_max, dim_min, embed, slice_axis, strided_slice
from .ops_index import flip as flip_axes
from .ops_tensor import broadcast_to, cast, reduce_sum

__all__ = ["take_static", "pad", "roll", "repeat", "tile", "triu", "tril", "diagonal", "trace", "rot90", "diff",
           "cross", "asarray", "array"]


def _is_int(v: Any) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, (bool, np.bool_))


def take_static(x: Node, axis: int, src: Sequence[int]) -> Node:
    """``x`` indexed along ``axis`` (non-negative) by the static in-range indices ``src``: runs of step
    +1, -1 or 0 become slices, flipped slices and broadcast elements, concatenated."""
    src = [int(s) for s in src]
    n = x.shape[axis]
    if src == list(range(n)):
        return x
    parts, k = [], 0
    while k < len(src):
        d = src[k + 1] - src[k] if k + 1 < len(src) and abs(src[k + 1] - src[k]) <= 1 else None
        m = 1
        while d is not None and k + m < len(src) and src[k + m] - src[k + m - 1] == d:
            m += 1
        s = src[k]
        if d == 0:
            one = slice_axis(x, axis, s, s + 1)
            parts.append(broadcast_to(one, one.shape[:axis] + (m,) + one.shape[axis + 1:]))
        elif d == -1:
            parts.append(slice_axis(flip_axes(x, (axis,)), axis, n - 1 - s, n - 1 - s + m))
        else:
            parts.append(slice_axis(x, axis, s, s + m))
        k += m
    return concat(parts, axis) if len(parts) > 1 else parts[0]


# -- pad ----------------------------------------------------------------------------------------------------------

def _pad_pairs(op: str, width: Any, ndim: int, what: str) -> list:
    arr = np.asarray(width)
    try:
        pairs = np.broadcast_to(arr, (ndim, 2)) if arr.ndim <= 2 else None
    except ValueError:
        pairs = None
    if pairs is None:
        raise ValueError(f"{op}: {what} {width!r} cannot be broadcast to ({ndim}, 2) for a tensor of rank {ndim}")
    return [tuple(p) for p in pairs.tolist()]


def pad(array, pad_width, mode: str = "constant", constant_values: Any = 0) -> Node:
    """Pad with ``mode`` ``"constant"`` (``constant_values``), ``"edge"``, ``"reflect"``, ``"symmetric"``
    or ``"wrap"``; ``pad_width`` is an int, ``(before, after)`` or one pair per axis, as ``np.pad``."""
    x = as_tensor(array)
    pw = _pad_pairs("pad", pad_width, x.ndim, "pad_width")
    for b, a in pw:
        if not (_is_int(b) and _is_int(a)) or b < 0 or a < 0:
            raise ValueError(f"pad: pad_width must be non-negative integers, got {pad_width!r}")
    if mode == "empty":  # NumPy leaves the padding undefined; here it is 0
        mode, constant_values = "constant", 0
    if mode == "constant":
        vals = _pad_pairs("pad", constant_values, x.ndim, "constant_values")
        if len({v for p in vals for v in p}) == 1:  # one value: a single embed
            shape = tuple(s + b + a for s, (b, a) in zip(x.shape, pw))
            return embed(x, shape, [b for b, _ in pw], [1] * x.ndim, float(vals[0][0]))
        for ax, ((b, a), (vb, va)) in enumerate(zip(pw, vals)):  # axis by axis: later axes cover the corners
            side = lambda k, v: broadcast_to(const(v, x.dtype), x.shape[:ax] + (k,) + x.shape[ax + 1:])  # noqa: E731
            x = concat([p for p in (side(b, vb), x, side(a, va)) if p.shape[ax]] or [x], ax) if b or a else x
        return x
    if mode not in ("edge", "reflect", "symmetric", "wrap"):
        raise ValueError(f"pad: mode {mode!r} is not supported (constant, edge, reflect, symmetric, wrap, empty)")
    for ax, (b, a) in enumerate(pw):
        if (b or a) and isinstance(x.shape[ax], _dims.Dim):
            x = _symbolic_edge_pad(x, ax, b, a, mode)
        elif b or a:
            if x.shape[ax] == 0:
                raise ValueError(f"pad: can't extend empty axis {ax} using modes other than 'constant' or 'empty'")
            x = take_static(x, ax, np.pad(np.arange(x.shape[ax]), (b, a), mode=mode))
    return x


def _symbolic_edge_pad(x: Node, ax: int, before: int, after: int, mode: str) -> Node:
    """Padding of a symbolic axis: mode "edge" repeats the first and last entries (``x[:1]``, ``x[-1:]``,
    which exist for every size >= 1); the other modes read entries that depend on the size."""
    n = x.shape[ax]
    if mode != "edge":
        raise _dims.SymbolicDimError(f"pad: mode {mode!r} on the symbolic axis {ax} (size {n}) reads entries that "
                                     f"depend on the size; use 'constant' or 'edge'")
    def side(start, k):
        one = slice_axis(x, ax, start, start + 1)
        return broadcast_to(one, one.shape[:ax] + (k,) + one.shape[ax + 1:])
    parts = ([side(0, before)] if before else []) + [x] + ([side(n - 1, after)] if after else [])
    return concat(parts, ax)


# -- roll, repeat, tile -----------------------------------------------------------------------------------------------

def roll(a, shift, axis=None) -> Node:
    """Shift elements cyclically by ``shift`` along ``axis`` (None: over the flattened tensor)."""
    x = as_tensor(a)
    if axis is None:
        return reshape(roll(reshape(x, (-1,)), shift, 0), x.shape)
    axes = normalize_axes("roll", axis, x.ndim) if _is_int(axis) else tuple(normalize_axis("roll", v, x.ndim)
                                                                              for v in axis)
    shifts = np.broadcast_to(np.asarray(shift), (len(axes),)) if np.ndim(shift) <= 1 else None
    if shifts is None or len(np.atleast_1d(shift)) not in (1, len(axes)):
        raise ValueError(f"roll: shift {shift!r} and axis {axis!r} do not match")
    total: dict = {}
    for ax, s in zip(axes, shifts.tolist()):
        total[ax] = total.get(ax, 0) + int(s)
    for ax, s in total.items():
        n = x.shape[ax]
        if isinstance(n, _dims.Dim):
            s = _symbolic_shift(n, s, ax)
        else:
            s = s % n if n else 0
        if s:  # out[i] = x[(i - s) mod n]: the last s entries, then the first n - s
            x = concat([slice_axis(x, ax, n - s, n), slice_axis(x, ax, 0, n - s)], ax)
    return x


def _symbolic_shift(n: _dims.Dim, s: int, ax: int):
    """A roll by ``s`` on a symbolic axis as a shift in [0, n]: s itself when 0 <= s <= n for every size,
    n + s when -n <= s < 0 (a shift by n is the identity); else the wrap depends on n mod |s|."""
    if s == 0:
        return 0
    if decide(lambda: abs(s) <= n) is not True:
        raise _dims.SymbolicDimError(f"roll: a shift by {s} of the symbolic axis {ax} (size {n}) wraps by {s} mod "
                                     f"{n}, which depends on the size; shifts of -1, 0 and 1 work for every size")
    return s if s > 0 else n + s


def repeat(a, repeats, axis: Optional[int] = None) -> Node:
    """Repeat each element ``repeats`` times (an int, or one count per element along ``axis``);
    ``axis=None`` repeats the flattened tensor."""
    x = as_tensor(a)
    if axis is None:
        x, axis = reshape(x, (-1,)), 0
    ax = normalize_axis("repeat", axis, x.ndim)
    n = x.shape[ax]
    reps = np.asarray(repeats)
    if reps.dtype.kind not in "iu" or reps.ndim > 1 or np.any(reps < 0):
        raise ValueError(f"repeat: repeats must be a non-negative int or a sequence of them, got {repeats!r}")
    if reps.ndim == 1 and reps.size == 1:
        reps = reps.reshape(())
    if reps.ndim == 0:  # uniform: x[..., i, None, ...] broadcast to r copies, merged into the axis
        r = int(reps)
        e = expand_dims(x, ax + 1)
        b = broadcast_to(e, e.shape[:ax + 1] + (r,) + e.shape[ax + 2:])
        return reshape(b, x.shape[:ax] + (n * r,) + x.shape[ax + 1:])
    if isinstance(n, _dims.Dim):
        raise _dims.SymbolicDimError(f"repeat: one count per element of the symbolic axis {ax} (size {n}) needs a "
                                     f"fixed size; a single count works")
    if reps.size != n:
        raise ValueError(f"repeat: operands could not be broadcast together: {reps.size} repeats for axis {ax} "
                         f"of size {n} (shape {x.shape})")
    return take_static(x, ax, np.repeat(np.arange(n), reps))


def tile(A, reps) -> Node:
    """``A`` repeated ``reps`` times per axis (``reps`` is an int or a tuple; ranks are aligned at the end)."""
    x = as_tensor(A)
    reps = (int(reps),) if _is_int(reps) else tuple(int(r) for r in reps)
    if any(r < 0 for r in reps):
        raise ValueError(f"tile: negative repetitions {reps}")
    d = builtins.max(len(reps), x.ndim)
    reps = (1,) * (d - len(reps)) + reps
    x = reshape(x, (1,) * (d - x.ndim) + x.shape)
    # out[k*n + j] = x[j] per axis: x as (1, n_0, 1, n_1, ...) broadcast to (r_0, n_0, r_1, n_1, ...)
    inter = tuple(v for s in x.shape for v in (1, s))
    big = tuple(v for r, s in zip(reps, x.shape) for v in (r, s))
    return reshape(broadcast_to(reshape(x, inter), big), tuple(r * s for r, s in zip(reps, x.shape)))


# -- triangles and diagonals --------------------------------------------------------------------------------------------

def _tri_mask(op: str, m: Node, k: int, upper: bool) -> Node:
    if m.ndim < 2:
        raise ValueError(f"{op}: input must be at least 2-d, got shape {m.shape}")
    n, c = m.shape[-2:]
    if _dims.is_symbolic((n, c)):  # the mask from index iotas: keep where j - i >= k (upper) / <= k (lower)
        d = apply("sub", [reshape(iota(c, "float64"), (1, c)), reshape(iota(n, "float64"), (n, 1))])
        keep = apply("greater_equal" if upper else "less_equal", [d, const(float(k), "float64")])
    else:
        i, j = np.arange(n)[:, None], np.arange(c)[None, :]
        keep = const((j - i >= k) if upper else (j - i <= k), "bool")
    # a select, not a product with a 0/1 mask: an inf or nan in the zeroed part gives 0 (as NumPy)
    return apply("where", [keep, m, const(0, m.dtype)])


def triu(m, k: int = 0) -> Node:
    """The upper triangle of the last two axes (entries below diagonal ``k`` set to 0)."""
    return _tri_mask("triu", as_tensor(m), int(k), True)


def tril(m, k: int = 0) -> Node:
    """The lower triangle of the last two axes (entries above diagonal ``k`` zeroed)."""
    return _tri_mask("tril", as_tensor(m), int(k), False)


def diagonal(a, offset: int = 0, axis1: int = 0, axis2: int = 1) -> Node:
    """The diagonal ``offset`` of the (axis1, axis2) planes, as a last axis (NumPy's order).

    With the two axes moved last, ``(..., N, M)`` flattened to ``(..., N*M)``: entry i of diagonal
    ``offset >= 0`` is at ``offset + i*(M+1)``, of ``offset < 0`` at ``-offset*M + i*(M+1)``."""
    x = as_tensor(a)
    if x.ndim < 2:
        raise ValueError(f"diagonal: array must be at least 2-d, got shape {x.shape}")
    i1, i2 = normalize_axis("diagonal", axis1, x.ndim), normalize_axis("diagonal", axis2, x.ndim)
    if i1 == i2:
        raise ValueError(f"diagonal: axis1 and axis2 cannot be the same ({axis1}, {axis2})")
    y = moveaxis(x, (i1, i2), (-2, -1))
    n, m, lead = y.shape[-2], y.shape[-1], y.shape[:-2]
    offset = int(offset)
    what = f"diagonal (offset {offset}) of axes of sizes {n} and {m}"
    length = dim_max(0, dim_min(n, m - offset, what) if offset >= 0 else dim_min(n + offset, m, what), what)
    first = offset if offset >= 0 else -offset * m
    flat = reshape(y, lead + (n * m,))
    if length == 0:
        first = 0
    return strided_slice(flat, (0,) * len(lead) + (first,), (1,) * len(lead) + (m + 1,), lead + (length,))


def trace(a, offset: int = 0, axis1: int = 0, axis2: int = 1) -> Node:
    """The sum along a diagonal (``diagonal(...).sum(-1)``)."""
    d = diagonal(a, offset, axis1, axis2)
    return reduce_sum(d, (d.ndim - 1,)) if d.shape[-1] else broadcast_to(const(0.0, d.dtype), d.shape[:-1])


def rot90(m, k: int = 1, axes: Sequence[int] = (0, 1)) -> Node:
    """Rotate by 90 degrees ``k`` times in the plane of ``axes`` (from the first towards the second)."""
    x = as_tensor(m)
    if len(axes) != 2:
        raise ValueError(f"rot90: len(axes) must be 2, got {axes!r}")
    a0, a1 = normalize_axis("rot90", axes[0], x.ndim), normalize_axis("rot90", axes[1], x.ndim)
    if a0 == a1:
        raise ValueError(f"rot90: axes must be different, got {axes!r}")
    k = int(k) % 4
    if k == 0:
        return x
    if k == 2:
        return flip_axes(x, (a0, a1))
    return swapaxes(flip(x, a1), a0, a1) if k == 1 else flip(swapaxes(x, a0, a1), a1)


# -- differences and products ----------------------------------------------------------------------------------------

def diff(a, n: int = 1, axis: int = -1, prepend: Any = None, append: Any = None) -> Node:
    """The ``n``-th discrete difference ``out[i] = a[i+1] - a[i]`` along ``axis`` (``prepend``/``append``
    values are joined first, scalars broadcast)."""
    x = as_tensor(a)
    if n < 0:
        raise ValueError(f"diff: order must be non-negative but got {n}")
    if x.ndim == 0:
        raise ValueError("diff requires input that is at least one dimensional")
    ax = normalize_axis("diff", axis, x.ndim)
    if n == 0:
        return x
    parts = []
    for v in (prepend, x, append):
        if v is None:
            continue
        t = as_tensor(v, x)
        if t.ndim == 0:
            t = broadcast_to(t, x.shape[:ax] + (1,) + x.shape[ax + 1:])
        parts.append(t)
    if len(parts) > 1:
        x = concatenate(parts, ax)
    for _ in range(n):
        m = x.shape[ax]
        if m == 0:
            break
        x = apply("sub", [slice_axis(x, ax, 1, m), slice_axis(x, ax, 0, m - 1)])
    return x


def cross(a, b, axisa: int = -1, axisb: int = -1, axisc: int = -1, axis: Optional[int] = None) -> Node:
    """The cross product of 3-vectors along ``axisa``/``axisb`` (``axis`` sets all three), broadcasting
    the other axes; the result's vector axis is ``axisc``."""
    x, y = as_tensor(a), as_tensor(b, as_tensor(a))
    if axis is not None:
        axisa = axisb = axisc = axis
    x = moveaxis(x, normalize_axis("cross", axisa, x.ndim), -1)
    y = moveaxis(y, normalize_axis("cross", axisb, y.ndim), -1)
    if x.shape[-1] != 3 or y.shape[-1] != 3:
        raise ValueError(f"cross: incompatible dimensions for cross product (dimension must be 3), got vector "
                         f"lengths {x.shape[-1]} and {y.shape[-1]}")
    dt = result_dtype("cross", [x.dtype, y.dtype])
    x, y = cast(x, dt), cast(y, dt)
    c = [slice_axis(x, x.ndim - 1, k, k + 1) for k in range(3)]
    d = [slice_axis(y, y.ndim - 1, k, k + 1) for k in range(3)]

    def term(i, j):  # a_i b_j - a_j b_i
        return apply("sub", [apply("mul", [c[i], d[j]]), apply("mul", [c[j], d[i]])])
    out = concatenate([term(1, 2), term(2, 0), term(0, 1)], -1)
    return moveaxis(out, -1, normalize_axis("cross", axisc, out.ndim))


# -- arrays of tensors ------------------------------------------------------------------------------------------

def _has_node(v: Any) -> bool:
    return isinstance(v, Node) or (isinstance(v, (list, tuple)) and any(_has_node(e) for e in v))


def asarray(a: Any, dtype: Any = None) -> Node:
    """A tensor from a tensor, an array, or a (nested) list/tuple of tensors and scalars (stacked)."""
    if isinstance(a, (list, tuple)) and _has_node(a):
        like = next((e for e in a if isinstance(e, Node)), None)
        out = stack([asarray(e) if isinstance(e, (list, tuple)) else as_tensor(e, like) for e in a], 0)
    else:
        out = as_tensor(a)
    return out if dtype is None else cast(out, _dt.normalize(dtype))


def array(object: Any, dtype: Any = None) -> Node:  # noqa: A002  (NumPy's argument name)
    """Like :func:`asarray` (symdiff tensors are immutable, so there is nothing to copy)."""
    return asarray(object, dtype)

