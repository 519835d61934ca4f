"""The reduction DSL beyond sum/mean/max (NumPy names and arguments): min, prod, var, std, argmax, argmin,
amax/amin, average, norm (``sd.norm`` and ``sd.linalg.norm``).

``min`` is ``-max(-x)`` (its gradient is shared equally between ties, as max's); ``var``/``std`` are built
from means. ``norm`` composes sums, maxima and powers as ``jax.numpy.linalg.norm`` does, so its gradient
follows JAX's at singular points: the 2-norm / Frobenius norm of an all-zero input has a NaN gradient
(d sqrt(u) at 0 is inf, times 0), the 1-norm's is 0 (sign(0) = 0).
"""
from __future__ import annotations

import builtins
import numbers
from typing import Optional

import numpy as np

from . import api as _api
from . import dims as _dims
from .api import TensorLike, as_tensor
from .ir import Node, apply
from .ops_reduce import axis_size
from .optable import broadcast_shapes, dsl_function
from .ops_tensor import broadcast_to as _broadcast_to
from .ops_tensor import reshape as _reshape

__all__ = ["min", "amin", "amax", "prod", "var", "std", "argmax", "argmin", "average", "norm", "all", "any",
           "nansum", "nanmean"]

def axes_of(op: str, x: Node, axis) -> tuple:
    """``axis`` (None, an int or a tuple, negatives allowed) as sorted non-negative axes of ``x``."""
    return _api.reduction_axes(op, x, axis)


def _count(x: Node, axes: tuple) -> _dims.DimLike:
    """The number of entries over ``axes``: an int, or a Dim when an axis is symbolic."""
    return _dims.prod(x.shape[a] for a in axes)


@dsl_function(numpy_name='min', differentiable=True, ops=('max', 'neg'))
def min(x: TensorLike, axis=None, keepdims: bool = False) -> Node:  # noqa: A001
    """Minimum over ``axis`` as ``-max(-x)``: its gradient is shared equally between tied minima."""
    x = as_tensor(x)
    axes = axes_of("min", x, axis)
    if builtins.any(x.shape[a] == 0 for a in axes):
        raise ValueError(f"min: zero-size reduction over axes {axes} of shape {x.shape} has no identity")
    return _api.negative(apply("max", [_api.negative(x)], axes=axes, keepdims=bool(keepdims)))


amin = min


@dsl_function(numpy_name='amax', differentiable=True, ops=('max',))
def amax(x: TensorLike, axis=None, keepdims: bool = False) -> Node:
    """Alias of ``sd.max``."""
    return _api.max(x, axis, keepdims)


@dsl_function(numpy_name='prod', differentiable=True, ops=('prod',))
def prod(x: TensorLike, axis=None, keepdims: bool = False) -> Node:
    """Product over ``axis``; the gradient is the product of the other entries (exact where an entry is 0)."""
    x = as_tensor(x)
    return apply("prod", [x], axes=axes_of("prod", x, axis), keepdims=bool(keepdims))


@dsl_function(numpy_name='var', differentiable=True, ops=('sum', 'sub', 'square', 'mul'))
def var(x: TensorLike, axis=None, ddof: int = 0, keepdims: bool = False) -> Node:
    """Variance sum((x - mean)**2) / (N - ddof) over ``axis``, as ``np.var``."""
    x = as_tensor(x)
    axes = axes_of("var", x, axis)
    n = _count(x, axes)
    if not isinstance(ddof, numbers.Integral) or ddof < 0:
        raise ValueError(f"var: ddof must be a non-negative int, got {ddof!r}")
    if not isinstance(n, _dims.Dim) and n - ddof <= 0:
        raise ValueError(f"var: ddof={ddof} leaves no degrees of freedom for {n} entries "
                         f"(shape {x.shape}, axes {axes})")
    d = _api.subtract(x, _api.mean(x, axes, keepdims=True))
    ss = _api.sum(_api.square(d), axes, keepdims)
    if isinstance(n, _dims.Dim):  # divide by max(N - ddof, 0) at call time: no degrees of freedom give NaN/inf, as NumPy
        dof = axis_size(x, axes, ss.dtype)
        return _api.divide(ss, _api.maximum(_api.subtract(dof, float(ddof)), 0.0) if ddof else dof)
    return _api.multiply(ss, 1.0 / (n - ddof))


@dsl_function(numpy_name='std', differentiable=True, ops=('sum', 'sub', 'square', 'mul', 'sqrt'))
def std(x: TensorLike, axis=None, ddof: int = 0, keepdims: bool = False) -> Node:
    """Standard deviation sqrt(var(x, axis, ddof)), as ``np.std``."""
    return _api.sqrt(var(x, axis, ddof, keepdims))


def _arg(op: str, x: TensorLike, axis, keepdims: bool) -> Node:
    x = as_tensor(x)
    if axis is not None and not (isinstance(axis, numbers.Integral) and not isinstance(axis, bool)):
        raise TypeError(f"{op}: axis must be None or an int, got {axis!r}")
    axes = axes_of(op, x, axis)
    return apply(op, [x], axes=axes, keepdims=bool(keepdims))


@dsl_function(numpy_name='argmax', differentiable=False, ops=('argmax',))
def argmax(x: TensorLike, axis: Optional[int] = None, keepdims: bool = False) -> Node:
    """Index (int64) of the first maximum along ``axis`` (None: flattened), as ``np.argmax``.

    NaN counts as the maximum. Not differentiable."""
    return _arg("argmax", x, axis, keepdims)


@dsl_function(numpy_name='argmin', differentiable=False, ops=('argmin',))
def argmin(x: TensorLike, axis: Optional[int] = None, keepdims: bool = False) -> Node:
    """Index (int64) of the first minimum along ``axis`` (None: flattened), as ``np.argmin``."""
    return _arg("argmin", x, axis, keepdims)


@dsl_function(numpy_name='average', differentiable=True, ops=('sum', 'mul', 'div'))
def average(a: TensorLike, axis=None, weights: Optional[TensorLike] = None, returned: bool = False,
            keepdims: bool = False):
    """Weighted average sum(a * w) / sum(w) over ``axis``, as ``np.average``.

    ``weights`` has ``a``'s shape, or is 1-D along a single ``axis``. ``returned``: also return the sum of
    the weights."""
    a = as_tensor(a)
    if weights is None:
        avg = _api.mean(a, axis, keepdims)
        scl = _broadcast_to(axis_size(a, axes_of("average", a, axis), avg.dtype), avg.shape)
        return (avg, scl) if returned else avg
    w = as_tensor(weights, a)
    axes = axes_of("average", a, axis)
    if w.shape != a.shape:
        if axis is None or len(axes) != 1 or w.ndim != 1 or w.shape[0] != a.shape[axes[0]]:
            raise ValueError(f"average: weights of shape {w.shape} must have a's shape {a.shape}, or be 1-D "
                             f"with the length of a single axis (axis={axis!r})")
        w = _reshape(w, tuple(w.shape[0] if i == axes[0] else 1 for i in range(a.ndim)))
    num = _api.sum(_api.multiply(a, w), axes, keepdims)
    scl = _api.sum(_broadcast_to(w, _api_shape(a, w)), axes, keepdims)
    avg = _api.divide(num, scl)
    return (avg, _broadcast_to(scl, avg.shape)) if returned else avg


def _api_shape(a: Node, w: Node) -> tuple:
    return broadcast_shapes("average", a.shape, w.shape)


# -- norm ---------------------------------------------------------------------------------------------------

def _vector_norm(x: Node, ord, axes: tuple, keepdims: bool) -> Node:
    a = _api.abs(x)
    if ord is None or ord == 2:
        return _api.sqrt(_api.sum(_api.square(x), axes, keepdims))
    if ord == np.inf:
        return _api.max(a, axes, keepdims)
    if ord == -np.inf:
        return min(a, axes, keepdims)
    if ord == 1:
        return _api.sum(a, axes, keepdims)
    if ord == 0:  # the number of non-zero entries (not differentiable)
        return _api.sum(_api.subtract(1.0, apply("eq", [x, as_tensor(0.0, x)])), axes, keepdims)
    if isinstance(ord, str) or not isinstance(ord, numbers.Real):
        raise ValueError(f"norm: invalid norm order {ord!r} for vectors")
    p = float(ord)
    return _api.power(_api.sum(_api.power(a, p), axes, keepdims), 1.0 / p)


def _matrix_norm(x: Node, ord, axes: tuple, keepdims: bool) -> Node:
    r, c = axes
    if ord is None or ord == "fro":
        return _api.sqrt(_api.sum(_api.square(x), axes, keepdims))
    a = _api.abs(x)
    # 1 / -1: max / min over columns of the column sums; inf / -inf: over rows of the row sums
    table = {1: (r, c, _api.max), -1: (r, c, min), np.inf: (c, r, _api.max), -np.inf: (c, r, min)}
    if ord in ("nuc", 2, -2):
        raise NotImplementedError(f"norm: matrix norm ord={ord!r} needs a singular value decomposition and is "
                                  f"not supported; supported: None, 'fro', 1, -1, inf, -inf")
    if isinstance(ord, str) or ord not in table:
        raise ValueError(f"norm: invalid norm order {ord!r} for matrices")
    inner, outer, pick = table[ord]
    s = _api.sum(a, inner, keepdims=True)
    out = pick(s, outer, keepdims=True)
    return out if keepdims else _reshape(out, tuple(d for i, d in enumerate(x.shape) if i not in axes))


@dsl_function(numpy_name='linalg.norm', differentiable=True, ops=('sum', 'square', 'sqrt', 'abs', 'max', 'pow'))
def norm(x: TensorLike, ord=None, axis=None, keepdims: bool = False) -> Node:
    """Vector norms (ord None/2, 1, inf, -inf, 0, p) and matrix norms ('fro', 1, -1, inf, -inf), as ``np.linalg.norm``.

    Matrices: a 2-tuple ``axis``, or a 2-D input with ``axis=None``."""
    x = as_tensor(x)
    if axis is None:
        if ord is None:
            return _vector_norm(x, None, tuple(range(x.ndim)), keepdims)
        if x.ndim == 1:
            return _vector_norm(x, ord, (0,), keepdims)
        if x.ndim == 2:
            return _matrix_norm(x, ord, (0, 1), keepdims)
        raise ValueError(f"norm: improper number of dimensions to norm (shape {x.shape}); pass axis")
    if isinstance(axis, numbers.Integral) and not isinstance(axis, bool):
        return _vector_norm(x, ord, axes_of("norm", x, axis), keepdims)
    axis = tuple(axis)
    if len(axis) == 1:
        return _vector_norm(x, ord, axes_of("norm", x, axis), keepdims)
    if len(axis) != 2:
        raise ValueError(f"norm: axis must be an int or a 2-tuple, got {axis!r}")
    axes = axes_of("norm", x, axis)
    ordered = tuple(a % x.ndim for a in axis)  # the matrix's (row, column) axes, as given
    if ord is None or ord == "fro":
        return _matrix_norm(x, ord, axes, keepdims)
    return _matrix_norm(x, ord, ordered, keepdims)


# -- truth-value and NaN-skipping reductions --------------------------------------------------------------------

def _truth_count(op: str, x: TensorLike, axis, keepdims: bool) -> tuple:
    """(number of true entries over the axes as float64, the count of entries, axes): an entry is true when
    it is != 0 (NaN is true), as NumPy's ``bool(x)``."""
    x = as_tensor(x)
    axes = axes_of(op, x, axis)
    t = _api.astype(_api.astype(x, "bool"), "float64")
    return _api.sum(t, axes, keepdims), axis_size(x, axes, "float64")


@dsl_function(numpy_name="all", differentiable=False, ops=("cast", "sum", "equal"))
def all(x: TensorLike, axis=None, keepdims: bool = False) -> Node:  # noqa: A001
    """True (bool) where every entry over ``axis`` is true (!= 0), as ``np.all``; an empty reduction is True."""
    n, count = _truth_count("all", x, axis, keepdims)
    return _api.equal(n, count)


@dsl_function(numpy_name="any", differentiable=False, ops=("cast", "sum", "greater"))
def any(x: TensorLike, axis=None, keepdims: bool = False) -> Node:  # noqa: A001
    """True (bool) where some entry over ``axis`` is true (!= 0), as ``np.any``; an empty reduction is False."""
    n, _ = _truth_count("any", x, axis, keepdims)
    return _api.greater(n, 0.0)


@dsl_function(numpy_name="nansum", ops=("isnan", "where", "sum"))
def nansum(x: TensorLike, axis=None, keepdims: bool = False) -> Node:
    """Sum over ``axis`` treating NaN as 0, as ``np.nansum`` (NaN entries get a zero gradient)."""
    x = as_tensor(x)
    return _api.sum(_api.where(_api.isnan(x), 0.0, x), axis, keepdims)


@dsl_function(numpy_name="nanmean", ops=("isnan", "where", "sum", "div"))
def nanmean(x: TensorLike, axis=None, keepdims: bool = False) -> Node:
    """Mean over ``axis`` of the non-NaN entries, as ``np.nanmean`` (an all-NaN slice gives NaN)."""
    x = as_tensor(x)
    nan = _api.isnan(x)
    kept = _api.sum(_api.astype(_api.logical_not(nan), x.dtype), axis, keepdims)
    return _api.divide(_api.sum(_api.where(nan, 0.0, x), axis, keepdims), kept)

