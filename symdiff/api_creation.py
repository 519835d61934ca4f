"""Array creation in the DSL: ``linspace`` with tensor end points, and the constant makers NumPy users reach
for (``zeros ones full eye identity arange`` and the ``*_like`` forms). NumPy names, arguments and semantics.

``linspace(start, stop, num)`` with tensors: ``start + (stop - start) * t`` for the constant fractions
``t_k = k / (num - 1)`` (``k / num`` without the end point), along a new axis (``axis``), so its gradient
with respect to both end points comes from the elementwise ops.
"""
from __future__ import annotations

import numbers
from typing import Any, Optional

import numpy as np

from . import dims as _dims
from . import dtypes as _dt
from .api import as_tensor
from .api_shape import moveaxis, normalize_axis
from .ir import Node, apply, const
from .ops_gather import iota
from .ops_index import decide
from .ops_tensor import broadcast_to, cast, reshape
from .optable import broadcast_shapes

__all__ = ["linspace", "zeros", "ones", "full", "zeros_like", "ones_like", "full_like", "eye", "identity", "arange"]


def _shape(op: str, shape: Any) -> tuple:
    """A shape argument as a tuple of sizes: ints, or symbolic sizes (``"batch"``, ``sd.dim``, ``x.shape[0]``)."""
    if isinstance(shape, (numbers.Integral, str, _dims.Dim)) and not isinstance(shape, bool):
        shape = (shape,)
    try:
        shape = tuple(_dims.as_dim(s) if isinstance(s, (str, _dims.Dim)) else int(s) for s in shape)
    except TypeError:
        raise TypeError(f"{op}: shape must be an int or a tuple of ints, got {shape!r}") from None
    if any(isinstance(s, int) and s < 0 for s in shape):
        raise ValueError(f"{op}: negative dimensions are not allowed, got shape {shape}")
    return shape


def _dtype(dtype: Any, default: str = "float64") -> str:
    return _dt.normalize(dtype) if dtype is not None else default


def linspace(start: Any, stop: Any, num: int = 50, endpoint: bool = True, retstep: bool = False,
             dtype: Any = None, axis: int = 0):
    """``num`` evenly spaced samples from ``start`` to ``stop`` (tensors or scalars; they broadcast, the samples
    run along a new ``axis``); differentiable in both end points. ``retstep`` also returns the spacing."""
    if not isinstance(num, numbers.Integral) or isinstance(num, bool) or num < 0:
        raise ValueError(f"linspace: number of samples must be a non-negative int, got {num!r}")
    like = start if isinstance(start, Node) else stop if isinstance(stop, Node) else None
    a, b = as_tensor(start, like), as_tensor(stop, like)
    dt = _dtype(dtype, _dt.promote(a.dtype, b.dtype) if _dt.is_float(a.dtype) or _dt.is_float(b.dtype)
                else "float64")
    a, b = cast(a, dt), cast(b, dt)
    shape = broadcast_shapes("linspace", a.shape, b.shape)
    div = (num - 1) if endpoint else num
    frac = np.arange(num, dtype=np.float64) / div if div > 0 else np.zeros(num)  # t_k = k / div
    t = const(frac.reshape((num,) + (1,) * len(shape)), dt)
    a1, b1 = reshape(a, (1,) + a.shape), reshape(b, (1,) + b.shape)
    out = a1 + (b1 - a1) * t  # start + (stop - start) * t_k, shape (num,) + shape
    if endpoint and num > 1:  # the last sample is exactly stop, as NumPy
        out = _last_is(out, b1, num, shape)
    out = moveaxis(out, 0, normalize_axis("linspace", axis, len(shape) + 1))
    if retstep:
        return out, (b - a) * (1.0 / div) if div > 0 else (b - a) * float("nan")
    return out


def _last_is(samples: Node, last: Node, num: int, shape: tuple) -> Node:
    """``samples`` with its final row along axis 0 replaced by ``last`` (a mask on the row index)."""
    mask = np.zeros((num,) + (1,) * len(shape))
    mask[-1] = 1.0
    m = const(mask, samples.dtype)
    return samples * (1.0 - m) + broadcast_to(last, samples.shape) * m


def full(shape: Any, fill_value: Any, dtype: Any = None) -> Node:
    """A constant tensor of ``shape`` filled with ``fill_value`` (a tensor fill value broadcasts)."""
    shape = _shape("full", shape)
    if isinstance(fill_value, Node):
        v = fill_value if dtype is None else cast(fill_value, _dt.normalize(dtype))
        return broadcast_to(v, shape)
    arr = np.asarray(fill_value)
    default = "float64" if arr.dtype.kind == "f" else arr.dtype.name if arr.dtype.name in _dt.ALL_DTYPES else "int64"
    return broadcast_to(const(arr, _dtype(dtype, default)), shape)


def zeros(shape: Any, dtype: Any = None) -> Node:
    """A tensor of zeros (float64 unless ``dtype``)."""
    return full(shape, 0.0 if dtype is None or _dt.is_float(_dt.normalize(dtype)) else 0, dtype)


def ones(shape: Any, dtype: Any = None) -> Node:
    """A tensor of ones (float64 unless ``dtype``)."""
    return full(shape, 1.0 if dtype is None or _dt.is_float(_dt.normalize(dtype)) else 1, dtype)


def full_like(a: Any, fill_value: Any, dtype: Any = None, shape: Optional[Any] = None) -> Node:
    """``full`` with ``a``'s shape and dtype (unless given)."""
    a = as_tensor(a)
    return full(a.shape if shape is None else shape, fill_value, a.dtype if dtype is None else dtype)


def zeros_like(a: Any, dtype: Any = None, shape: Optional[Any] = None) -> Node:
    """Zeros with ``a``'s shape and dtype; its gradient with respect to ``a`` is zero."""
    return full_like(a, 0, dtype, shape)


def ones_like(a: Any, dtype: Any = None, shape: Optional[Any] = None) -> Node:
    """Ones with ``a``'s shape and dtype."""
    return full_like(a, 1, dtype, shape)


def eye(N: int, M: Optional[int] = None, k: int = 0, dtype: Any = None) -> Node:  # noqa: N803 (NumPy's names)
    """The ``N x M`` matrix with ones on diagonal ``k`` (``N``/``M`` may be symbolic sizes, ``x.shape[0]``)."""
    if _dims.is_symbolic((N, M)):  # [j - i == k] from index iotas
        M = N if M is None else M
        d = apply("sub", [reshape(iota(M, "float64"), (1, M)), reshape(iota(N, "float64"), (N, 1))])
        return cast(apply("eq", [d, const(float(k), "float64")]), _dtype(dtype))
    return const(np.eye(N, M, k), _dtype(dtype))


def identity(n: int, dtype: Any = None) -> Node:
    """The ``n x n`` identity matrix."""
    return eye(n, dtype=dtype)


def arange(start: Any, stop: Any = None, step: Any = 1, dtype: Any = None) -> Node:
    """``np.arange`` as a constant tensor (int64 for integer arguments, float64 otherwise, unless ``dtype``).
    A symbolic length (``arange(x.shape[0])``, ``arange(1, n + 1)``; integer steps of 1) is an index iota."""
    if _dims.is_symbolic((start, stop)):
        lo, hi = (0, start) if stop is None else (start, stop)
        if step != 1 or decide(lambda: hi - lo >= 0) is not True:
            raise _dims.SymbolicDimError(f"arange({start}, {stop}, {step}): a symbolic range needs step 1 and "
                                         f"stop >= start for every size")
        out = iota(hi - lo)
        out = out if lo == 0 else apply("add", [out, const(np.int64(lo), "int64")])
        return cast(out, _dtype(dtype, "int64"))
    arr = np.arange(start, stop, step) if stop is not None else np.arange(start)
    default = "int64" if arr.dtype.kind in "iu" else "float64"
    return const(arr, _dtype(dtype, default))
