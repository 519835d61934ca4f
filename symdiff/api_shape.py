"""The DSL's indexing, axis and joining functions (NumPy names, arguments and semantics).

Everything here is built from the index-mapping ops of ``ops_index.py`` (``slice``, ``flip``,
``embed``, ``concatenate``) and ``reshape``/``transpose``/``broadcast_to``, so it is differentiable to
any order and fuses into the neighbouring kernels on every backend. ``x[key]`` (``Node.__getitem__``) is
:func:`getitem`; a key holding an integer or boolean *array* (or a symdiff tensor) is advanced indexing,
handed to ``symdiff.api_gather.advanced_index``.
"""
from __future__ import annotations

import builtins
import numbers
from typing import Any, Optional, Sequence

import numpy as np

from . import dims as _dims
from . import dtypes as _dt
from .api import as_tensor, reshape, transpose
from .ir import Node
from .ops_index import ceil_div, concat, decide, slice_axis, strided_slice
from .ops_index import flip as _flip_op
from .ops_tensor import cast

__all__ = ["getitem", "normalize_axis", "normalize_axes", "result_dtype", "concatenate", "stack", "split",
           "array_split", "hsplit", "vsplit", "dsplit", "flip", "fliplr", "flipud", "expand_dims", "squeeze",
           "swapaxes", "moveaxis", "rollaxis", "ravel", "flatten", "hstack", "vstack", "dstack", "column_stack",
           "append", "atleast_1d", "atleast_2d", "atleast_3d"]


# -- axes and dtypes ---------------------------------------------------------------------------------------------

def _is_int(v: Any) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, (bool, np.bool_))


def normalize_axis(op: str, axis: Any, ndim: int) -> int:
    """``axis`` (negative counts from the end) as an int in [0, ndim), or a clear error naming ``op``."""
    if not _is_int(axis):
        raise TypeError(f"{op}: axis must be an integer, got {axis!r}")
    if not -ndim <= axis < ndim:
        raise np.exceptions.AxisError(f"{op}: axis {axis} is out of bounds for array of dimension {ndim}")
    return int(axis) % ndim


def normalize_axes(op: str, axes: Any, ndim: int) -> tuple:
    """An int or a sequence of ints as distinct non-negative axes (in the given order)."""
    axes = (axes,) if _is_int(axes) else tuple(axes)
    out = tuple(normalize_axis(op, a, ndim) for a in axes)
    if len(set(out)) != len(out):
        raise ValueError(f"{op}: repeated axis in {axes}")
    return out


def result_dtype(op: str, dtypes: Sequence[str]) -> str:
    """NumPy's promotion of tensor dtypes (int32 + int64 -> int64, int + float32 -> float64, ...)."""
    dts = list(dict.fromkeys(dtypes))
    if len(dts) == 1:
        return dts[0]
    name = np.result_type(*dts).name
    if name not in _dt.ALL_DTYPES:
        raise TypeError(f"{op}: dtypes {dts} promote to {name}, which symdiff does not support")
    return name


def _tensors(op: str, arrays: Any) -> list:
    """A sequence of tensor-likes as tensors of one (promoted) dtype; Python scalars take a tensor's dtype."""
    if isinstance(arrays, Node):
        arrays = [arrays[i] for i in range(arrays.shape[0])] if arrays.ndim else [arrays]
    arrays = list(arrays)
    if not arrays:
        raise ValueError(f"{op}: need at least one array")
    like = next((a for a in arrays if isinstance(a, Node)), None)
    ts = [as_tensor(a, like) for a in arrays]
    dt = result_dtype(op, [t.dtype for t in ts])
    return [cast(t, dt) for t in ts]


# -- indexing -----------------------------------------------------------------------------------------------------

def _is_advanced(k: Any) -> bool:
    if isinstance(k, Node) or isinstance(k, (list, bool, np.bool_)):
        return True
    return isinstance(k, np.ndarray) and (k.ndim > 0 or k.dtype == bool)


def getitem(x: Node, key: Any) -> Node:
    """``x[key]`` with NumPy basic indexing: ints (negative count from the end), slices (any step),
    ``None``/``np.newaxis`` and one ``...``; integer/boolean arrays go to advanced indexing."""
    key = key if isinstance(key, tuple) else (key,)
    shown = key  # as written, for error messages
    if any(_is_advanced(k) for k in key):
        from . import api_gather  # noqa: PLC0415  (advanced indexing lives with the gathers)
        return api_gather.advanced_index(x, key if len(key) != 1 else key[0])
    key = tuple(int(k) if isinstance(k, np.ndarray) and k.dtype.kind in "iu" else k for k in key)  # 0-d int arrays
    for k in key:
        if not (_is_int(k) or k is None or k is Ellipsis or isinstance(k, builtins.slice)):
            raise IndexError(f"only integers, slices (`:`), ellipsis (`...`), numpy.newaxis (`None`) and "
                             f"integer or boolean arrays are valid indices; got {k!r} indexing shape {x.shape}")
    if sum(k is Ellipsis for k in key) > 1:
        raise IndexError("an index can only have a single ellipsis ('...')")
    used = sum(1 for k in key if k is not None and k is not Ellipsis)
    if used > x.ndim:
        raise IndexError(f"too many indices for array: array is {x.ndim}-dimensional, but {used} were indexed "
                         f"(shape {x.shape})")
    if Ellipsis in key:
        e = key.index(Ellipsis)
        key = key[:e] + (builtins.slice(None),) * (x.ndim - used) + key[e + 1:]
    else:
        key = key + (builtins.slice(None),) * (x.ndim - used)
    start, step, size, flips, out_shape, d = [], [], [], [], [], 0
    for k in key:
        if k is None:
            out_shape.append(1)
            continue
        n = x.shape[d]
        if isinstance(n, _dims.Dim):  # a symbolic axis: bounds as size expressions, when they are certain
            b, s, m, rev = _symbolic_index(x, shown, d, k)
            flips += [d] if rev else []
            start.append(b)
            step.append(s)
            size.append(m)
            out_shape += [] if _is_int(k) else [m]
        elif _is_int(k):
            if not -n <= k < n:
                raise IndexError(f"index {k} is out of bounds for axis {d} with size {n} (shape {x.shape})")
            start.append(int(k) % n)
            step.append(1)
            size.append(1)
        else:
            b, e, s = k.indices(n)
            m = len(range(b, e, s))
            if s < 0:  # a reversed slice: flip the axis, then b - |s|*j becomes (n-1-b) + |s|*j
                flips.append(d)
                b, s = n - 1 - b, -s
            start.append(b if m else 0)
            step.append(s)
            size.append(m)
            out_shape.append(m)
        d += 1
    y = strided_slice(_flip_op(x, flips), start, step, size)
    return reshape(y, tuple(out_shape))


def _key_text(key: tuple) -> str:
    def one(k):
        if isinstance(k, builtins.slice):
            text = ":".join("" if v is None else str(v) for v in (k.start, k.stop))
            return text + ("" if k.step is None else f":{k.step}")
        return "None" if k is None else "..." if k is Ellipsis else str(k)
    return "x[" + ", ".join(one(k) for k in key) + "]"


def _clip(v: Any, n: Any) -> Any:
    """NumPy's clipping of a slice bound to [0, n] (``v`` already made non-negative-relative), or None when
    the clip depends on the size at call time."""
    if v is None:
        return None
    if decide(lambda: v >= 0) is True and decide(lambda: v <= n) is True:
        return v
    if decide(lambda: v <= 0) is True:
        return 0
    if decide(lambda: v >= n) is True:
        return n
    return None


def _symbolic_index(x: Node, key: tuple, d: int, k: Any) -> tuple:
    """(start, step, size, reversed) of index ``k`` on the symbolic axis ``d`` of ``x`` (size ``n``): a
    negative bound counts from the end (``n + b``), bounds clip to [0, n], and the size is ``stop - start``
    (``//`` the step, exactly). Raises SymbolicDimError when one of these depends on the size."""
    n = x.shape[d]
    where = f"{_key_text(key)}: "
    if _is_int(k):  # a single entry: start k or n + k, which must lie inside the axis for every size
        b = int(k) if k >= 0 else n + int(k)
        if decide(lambda: b >= 0) is not True or decide(lambda: b < n) is not True:
            raise _dims.SymbolicDimError(f"{where}the index {k} of the symbolic axis {d} (size {n}) is out of "
                                         f"range for some sizes; only 0 and -1 are always in range")
        return b, 1, 1, False
    st = 1 if k.step is None else k.step
    if not _is_int(st) or st == 0:
        raise ValueError(f"{where}slice step must be a non-zero integer, got {k.step!r}")
    lo, hi = k.start, k.stop
    if st < 0:  # x[b:e:-s] is flip(x)[-1-b : -1-e : s] (x[i] = flip(x)[n-1-i], n-1-i = -1-i from the end)
        lo, hi = (None if v is None else -1 - v for v in (lo, hi))
    for v in (lo, hi):
        if v is not None and not (_is_int(v) or isinstance(v, _dims.Dim)):
            raise TypeError(f"{where}slice indices must be integers, sizes or None, got {v!r}")
    lo = 0 if lo is None else _clip(_from_end(lo, n), n)
    hi = n if hi is None else _clip(_from_end(hi, n), n)
    if lo is None or hi is None:
        raise _dims.SymbolicDimError(f"{where}a slice bound of the symbolic axis {d} (size {n}) clips to the "
                                     f"axis for some sizes and not others; use bounds that hold for every size "
                                     f"(0, 1, -1, None)")
    span = hi - lo
    if decide(lambda: span <= 0) is True:
        return 0, 1, 0, st < 0
    if decide(lambda: span >= 0) is not True:
        raise _dims.SymbolicDimError(f"{where}the slice of the symbolic axis {d} (size {n}) has {span} entries, "
                                     f"which is negative for some sizes")
    s = abs(st)
    try:
        m = ceil_div(span, s)
    except _dims.SymbolicDimError:
        raise _dims.SymbolicDimError(f"{where}a strided slice of the symbolic axis {d} (size {n}) is not "
                                     f"supported: the number of entries, ceil({span} / {s}), is not a "
                                     f"polynomial in the sizes") from None
    return lo, s, m, st < 0


def _from_end(v: Any, n: Any) -> Any:
    """A slice bound counted from the start: a negative bound (an int, or a size expression certainly < 0)
    is ``n + v``; a symbolic one of unknown sign is None (then _clip reports it)."""
    neg = decide(lambda: v < 0)
    return None if neg is None else n + v if neg else v


# -- joining ------------------------------------------------------------------------------------------------------

def concatenate(arrays: Sequence, axis: Optional[int] = 0, dtype: Any = None) -> Node:
    """Join tensors along an existing axis (``axis=None``: flatten them first); dtypes promote as NumPy."""
    ts = _tensors("concatenate", arrays)
    if dtype is not None:
        ts = [cast(t, _dt.normalize(dtype)) for t in ts]
    if axis is None:
        ts, axis = [reshape(t, (-1,)) for t in ts], 0
    if ts[0].ndim == 0:
        raise ValueError("concatenate: zero-dimensional arrays cannot be concatenated")
    return concat(ts, normalize_axis("concatenate", axis, ts[0].ndim))


def stack(arrays: Sequence, axis: int = 0, dtype: Any = None) -> Node:
    """Join same-shaped tensors along a new axis."""
    ts = _tensors("stack", arrays)
    shapes = {t.shape for t in ts}
    if len(shapes) != 1:
        raise ValueError(f"stack: all input arrays must have the same shape, got {[t.shape for t in ts]}")
    ax = normalize_axis("stack", axis, ts[0].ndim + 1)
    return concatenate([expand_dims(t, ax) for t in ts], ax, dtype)


def atleast_1d(*arys):
    """Each input with at least one axis (0-d -> shape (1,)); one input returns a tensor, several a list."""
    out = [reshape(t, (1,)) if t.ndim == 0 else t for t in map(as_tensor, arys)]
    return out[0] if len(out) == 1 else out


def atleast_2d(*arys):
    """Each input with at least two axes ((n,) -> (1, n))."""
    out = [reshape(t, (1,) * (2 - t.ndim) + t.shape) if t.ndim < 2 else t for t in map(as_tensor, arys)]
    return out[0] if len(out) == 1 else out


def atleast_3d(*arys):
    """Each input with at least three axes ((n,) -> (1, n, 1), (m, n) -> (m, n, 1))."""
    def three(t):
        return {0: (1, 1, 1), 1: (1,) + t.shape + (1,), 2: t.shape + (1,)}.get(t.ndim, t.shape)
    out = [reshape(t, three(t)) for t in map(as_tensor, arys)]
    return out[0] if len(out) == 1 else out


def _as_list(tup) -> list:
    if isinstance(tup, Node):
        return [tup[i] for i in range(tup.shape[0])]
    return list(tup)


def hstack(tup: Sequence, dtype: Any = None) -> Node:
    """Stack horizontally: along axis 1, or axis 0 for 1-D inputs."""
    ts = [atleast_1d(t) for t in _tensors("hstack", _as_list(tup))]
    return concatenate(ts, 0 if ts[0].ndim == 1 else 1, dtype)


def vstack(tup: Sequence, dtype: Any = None) -> Node:
    """Stack vertically (row-wise) after ``atleast_2d``."""
    return concatenate([atleast_2d(t) for t in _tensors("vstack", _as_list(tup))], 0, dtype)


def dstack(tup: Sequence) -> Node:
    """Stack along the third axis after ``atleast_3d``."""
    return concatenate([atleast_3d(t) for t in _tensors("dstack", _as_list(tup))], 2)


def column_stack(tup: Sequence) -> Node:
    """1-D inputs become columns; 2-D inputs are stacked along axis 1."""
    ts = _tensors("column_stack", _as_list(tup))
    return concatenate([reshape(t, (-1, 1)) if t.ndim < 2 else t for t in ts], 1)


def append(arr, values, axis: Optional[int] = None) -> Node:
    """``values`` appended to ``arr`` (``axis=None``: both flattened)."""
    a, v = _tensors("append", [arr, values])
    if axis is None:
        return concatenate([ravel(a), ravel(v)], 0)
    return concatenate([a, v], axis)


# -- splitting ----------------------------------------------------------------------------------------------------

def array_split(ary, indices_or_sections, axis: int = 0) -> list:
    """Split into ``n`` nearly equal parts (the first ``len % n`` one longer), or at the given indices."""
    x = as_tensor(ary)
    ax = normalize_axis("array_split", axis, x.ndim)
    n = x.shape[ax]
    if isinstance(n, _dims.Dim):
        return _symbolic_split(x, ax, indices_or_sections)
    if _is_int(indices_or_sections):
        k = int(indices_or_sections)
        if k <= 0:
            raise ValueError(f"array_split: number sections must be larger than 0, got {k}")
        each, extra = divmod(n, k)
        sizes = [each + 1] * extra + [each] * (k - extra)
        bounds = np.concatenate([[0], np.cumsum(sizes)]).tolist()
    else:
        idx = [int(i) for i in indices_or_sections]
        bounds = [0] + idx + [n]
    out = []
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        lo, hi = builtins.slice(lo, hi).indices(n)[:2]  # NumPy slicing: negative from the end, clipped
        out.append(slice_axis(x, ax, lo, builtins.max(lo, hi)))
    return out


def _symbolic_split(x: Node, ax: int, indices_or_sections) -> list:
    """array_split along a symbolic axis: k equal sections when k divides the size as a polynomial
    (``2*n`` into 2), or the parts between the given indices (each part is a slice, as NumPy's)."""
    n = x.shape[ax]
    if _is_int(indices_or_sections):
        k = int(indices_or_sections)
        if k <= 0:
            raise ValueError(f"array_split: number sections must be larger than 0, got {k}")
        if decide(lambda: n % k == 0) is not True:
            raise _dims.SymbolicDimError(f"array_split: the symbolic axis {ax} (size {n}) into {k} sections: the "
                                         f"section sizes depend on {n} mod {k} at call time")
        bounds = [j * (n // k) for j in range(k + 1)]
    else:
        bounds = [0] + [int(i) for i in indices_or_sections] + [None]
    lead = (builtins.slice(None),) * ax
    return [getitem(x, lead + (builtins.slice(lo, hi),)) for lo, hi in zip(bounds[:-1], bounds[1:])]


def split(ary, indices_or_sections, axis: int = 0) -> list:
    """Split into ``n`` equal parts (an error when the axis does not divide), or at the given indices."""
    x = as_tensor(ary)
    ax = normalize_axis("split", axis, x.ndim)
    if isinstance(x.shape[ax], _dims.Dim):  # the equal division is checked by array_split's symbolic path
        return array_split(x, indices_or_sections, ax)
    if _is_int(indices_or_sections) and (indices_or_sections <= 0 or x.shape[ax] % indices_or_sections):
        raise ValueError(f"split: array split does not result in an equal division: axis {ax} of shape {x.shape} "
                         f"into {indices_or_sections} sections")
    return array_split(x, indices_or_sections, ax)


def _split_ndim(op: str, ary, need: int, axis: int, indices_or_sections) -> list:
    x = as_tensor(ary)
    if x.ndim < need:
        raise ValueError(f"{op} only works on arrays of {need} or more dimensions (got shape {x.shape})")
    return split(x, indices_or_sections, axis)


def hsplit(ary, indices_or_sections) -> list:
    """Split along axis 1 (axis 0 for 1-D inputs)."""
    x = as_tensor(ary)
    return _split_ndim("hsplit", x, 1, 1 if x.ndim > 1 else 0, indices_or_sections)


def vsplit(ary, indices_or_sections) -> list:
    """Split along axis 0 (inputs of rank >= 2)."""
    return _split_ndim("vsplit", ary, 2, 0, indices_or_sections)


def dsplit(ary, indices_or_sections) -> list:
    """Split along axis 2 (inputs of rank >= 3)."""
    return _split_ndim("dsplit", ary, 3, 2, indices_or_sections)


# -- axes -----------------------------------------------------------------------------------------------------------

def flip(m, axis=None) -> Node:
    """Reverse the order of elements along ``axis`` (None: all axes)."""
    x = as_tensor(m)
    axes = tuple(range(x.ndim)) if axis is None else normalize_axes("flip", axis, x.ndim)
    return _flip_op(x, axes)


def fliplr(m) -> Node:
    """Reverse along axis 1 (rank >= 2)."""
    x = as_tensor(m)
    if x.ndim < 2:
        raise ValueError(f"fliplr: input must be >= 2-d, got shape {x.shape}")
    return _flip_op(x, (1,))


def flipud(m) -> Node:
    """Reverse along axis 0 (rank >= 1)."""
    x = as_tensor(m)
    if x.ndim < 1:
        raise ValueError(f"flipud: input must be >= 1-d, got shape {x.shape}")
    return _flip_op(x, (0,))


def expand_dims(a, axis) -> Node:
    """Insert size-1 axes at the positions ``axis`` of the result."""
    x = as_tensor(a)
    n = x.ndim + (1 if _is_int(axis) else len(tuple(axis)))
    axes = set(normalize_axes("expand_dims", axis, n))
    it = iter(x.shape)
    return reshape(x, tuple(1 if i in axes else next(it) for i in range(n)))


def squeeze(a, axis=None) -> Node:
    """Remove size-1 axes (all of them, or those in ``axis``, which must have size 1)."""
    x = as_tensor(a)
    if axis is None:
        axes = {i for i, s in enumerate(x.shape) if s == 1}
    else:
        axes = set(normalize_axes("squeeze", axis, x.ndim))
        bad = [i for i in sorted(axes) if x.shape[i] != 1]
        if bad:
            raise ValueError(f"squeeze: cannot select an axis to squeeze out which has size not equal to one "
                             f"(axis {bad[0]} of shape {x.shape})")
    return reshape(x, tuple(s for i, s in enumerate(x.shape) if i not in axes))


def swapaxes(a, axis1: int, axis2: int) -> Node:
    """Interchange two axes."""
    x = as_tensor(a)
    i, j = normalize_axis("swapaxes", axis1, x.ndim), normalize_axis("swapaxes", axis2, x.ndim)
    perm = list(range(x.ndim))
    perm[i], perm[j] = j, i
    return transpose(x, perm)


def moveaxis(a, source, destination) -> Node:
    """Move axes ``source`` to positions ``destination``, the others keep their order."""
    x = as_tensor(a)
    src = normalize_axes("moveaxis", source, x.ndim)
    dst = normalize_axes("moveaxis", destination, x.ndim)
    if len(src) != len(dst):
        raise ValueError(f"moveaxis: `source` and `destination` arguments must have the same number of elements "
                         f"({len(src)} and {len(dst)})")
    rest = [i for i in range(x.ndim) if i not in src]
    perm = [None] * x.ndim
    for s, d in zip(src, dst):
        perm[d] = s
    it = iter(rest)
    return transpose(x, [p if p is not None else next(it) for p in perm])


def rollaxis(a, axis: int, start: int = 0) -> Node:
    """Roll ``axis`` backwards until it lies before position ``start`` (NumPy's older moveaxis)."""
    x = as_tensor(a)
    ax = normalize_axis("rollaxis", axis, x.ndim)
    if not -x.ndim <= start <= x.ndim:
        raise np.exceptions.AxisError(f"rollaxis: start {start} is out of bounds for array of dimension {x.ndim}")
    start = start + x.ndim if start < 0 else start
    if ax < start:
        start -= 1
    return moveaxis(x, ax, start) if ax != start else x


def ravel(a) -> Node:
    """The tensor flattened to 1-D (row-major)."""
    return reshape(as_tensor(a), (-1,))


flatten = ravel
