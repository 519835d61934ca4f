"""Pooling, as PyTorch's ``torch.nn.functional``: ``max_pool1d/2d``, ``avg_pool1d/2d``,
``adaptive_avg_pool1d/2d`` and ``adaptive_max_pool1d/2d``, built from ops every backend compiles (no
backend code): the sliding ``window`` op of ``ops_conv`` over an ``embed``-padded input (or, for disjoint
windows tiling the input, a crop and a reshape), the ``max``/``sum`` reductions over the window axes, elementwise products with constants, reshapes and static gathers.

Inputs are ``(N, C, *S)`` or unbatched ``(C, *S)``; float32/float64 only. Per spatial axis (input ``S``,
kernel ``k``, stride ``s`` (default ``k``), padding ``p`` (``p <= k // 2``), dilation ``d``; Dumoulin and
Visin's convolution arithmetic, PyTorch's rounding)::

    OS = floor((S + 2p - d(k - 1) - 1) / s) + 1                      (ceil_mode=False)
    OS = ceil((S + 2p - d(k - 1) - 1) / s) + 1, minus 1 if (OS - 1) s >= S + p   (ceil_mode=True:
         the last window must start inside the input or the left padding)

Window ``i`` reads the padded positions ``i s - p + j d`` (``j < k``); positions outside ``[0, S)`` are padding.

- max pooling pads with ``-inf`` and takes ``max`` over the window axes. Its gradient is the ``max``
  reduction's rule: the cotangent of a window is SHARED EQUALLY between its tied maxima (as the gradient
  of ``jax.numpy.max``; PyTorch's pooling kernels give it all to the first maximum), and the
  contributions of overlapping windows add. Away from ties the two agree.
- average pooling sums the zero-padded windows and multiplies by a constant ``1 / divisor`` array
  (NumPy, at build time): ``divisor_override`` if given, else with ``count_include_pad`` the window
  clipped to the padded bounds ``[-p, S + p)``, without it the number of real input entries.
- adaptive pooling: output ``i`` of ``o`` along an axis of size ``S`` pools ``[floor(i S / o),
  ceil((i + 1) S / o))`` (PyTorch's windows). An axis with ``S % o == 0`` is split by a reshape into
  ``(o, S / o)``; any other axis by a static gather (``take``) of the windows padded to the longest
  length ``K`` (indices ``(o, K)``; the short windows read one appended fill entry: 0 for avg,
  ``-inf`` for max) -- no dense selection matrix, O(o K) reads. Then one ``sum``/``max`` over all the
  window axes together (so max ties share the gradient equally as above) and, for avg, a constant
  ``1 / (window sizes)`` product.
"""
from __future__ import annotations

import builtins
from typing import Optional

import numpy as np

from . import dims as _dims
from . import dtypes as _dt
from .api import TensorLike, as_tensor
from .api_conv import int_tuple, is_int
from .api_gather import take
from .ir import Node, apply, const
from .ops_conv import window
from .ops_index import embed, strided_slice
from .ops_tensor import reshape
from .optable import dsl_function

__all__ = ["max_pool1d", "max_pool2d", "avg_pool1d", "avg_pool2d", "adaptive_avg_pool1d", "adaptive_avg_pool2d",
           "adaptive_max_pool1d", "adaptive_max_pool2d", "pool_out_size"]

_FILL = {"max": float("-inf"), "sum": 0.0}  # the padding value of each reduction
_MAX_OPS = ("embed", "window", "slice", "max", "reshape")  # the ops each family builds (docs/dsl.md's table)
_AVG_OPS = ("embed", "window", "slice", "sum", "mul", "const", "reshape")
_ADAPTIVE_MAX_OPS = ("reshape", "embed", "take_along", "max")
_ADAPTIVE_AVG_OPS = ("reshape", "embed", "take_along", "sum", "mul", "const")


# -- arguments ------------------------------------------------------------------------------------------------

def _spatial_input(fn: str, x: TensorLike, k: int) -> tuple:
    """``x`` as a float ``(N, C, *S)`` node, and whether it was unbatched ``(C, *S)``."""
    x = as_tensor(x)
    if x.ndim not in (k + 1, k + 2):
        raise ValueError(f"{fn}: expected a {k + 1}-D (C, *spatial) or {k + 2}-D (N, C, *spatial) input, got "
                         f"shape {x.shape}")
    if not _dt.is_float(x.dtype):
        raise TypeError(f"{fn}: input must be a float32/float64 tensor, got {x.dtype}{list(x.shape)} "
                        f"(cast with sd.astype)")
    unbatched = x.ndim == k + 1
    if unbatched:
        x = reshape(x, (1,) + x.shape)
    for d, s in enumerate(x.shape[2:]):  # the batch and channel axes may be symbolic, the spatial ones not
        if isinstance(s, _dims.Dim):
            raise _dims.SymbolicDimError(f"{fn}: the symbolic spatial axis {d} (size {s}) is not supported: the "
                                         f"windows and their counts need a fixed size (a symbolic batch works)")
    if builtins.any(s < 1 for s in x.shape[1:]):
        raise ValueError(f"{fn}: expected non-zero channel and spatial sizes, got input shape "
                         f"{x.shape[1:] if unbatched else x.shape}")
    return x, unbatched


def _result(y: Node, unbatched: bool) -> Node:
    return reshape(y, y.shape[1:]) if unbatched else y


def pool_out_size(size: int, kernel: int, stride: int, padding: int, dilation: int, ceil_mode: bool) -> int:
    """PyTorch's pooling output size (``pooling_output_shape``): floor or ceil of
    ``(size + 2 padding - dilation (kernel - 1) - 1) / stride`` plus 1; in ceil mode one less when the last
    window would start at or after ``size + padding`` (inside the right padding)."""
    span = size + 2 * padding - dilation * (kernel - 1) - 1
    out = (span + (stride - 1 if ceil_mode else 0)) // stride + 1
    if ceil_mode and (out - 1) * stride >= size + padding:
        out -= 1
    return out


def _geometry(fn: str, x: Node, k: int, kernel_size, stride, padding, dilation, ceil_mode: bool) -> tuple:
    """(kernel, stride, padding, dilation, out sizes), checked as PyTorch checks them."""
    kernel = int_tuple(fn, "kernel_size", kernel_size, k, 1)
    stride = kernel if stride is None or (isinstance(stride, (tuple, list)) and not stride) else \
        int_tuple(fn, "stride", stride, k, 1)
    pad = int_tuple(fn, "padding", padding, k, 0)
    dil = int_tuple(fn, "dilation", dilation, k, 1)
    if not isinstance(ceil_mode, (bool, np.bool_)):
        raise TypeError(f"{fn}: ceil_mode must be a bool, got {ceil_mode!r}")
    spatial = x.shape[2:]
    for d, (p, kk) in enumerate(zip(pad, kernel)):
        if p > kk // 2:
            raise ValueError(f"{fn}: padding {p} on spatial axis {d} must be at most half the kernel size "
                             f"{kk} (padding={tuple(pad)}, kernel_size={tuple(kernel)}, input shape {x.shape})")
    out = []
    for d in range(k):
        o = pool_out_size(spatial[d], kernel[d], stride[d], pad[d], dil[d], bool(ceil_mode))
        if o < 1:
            raise ValueError(f"{fn}: kernel_size {kernel[d]} (dilation {dil[d]}: spans {dil[d] * (kernel[d] - 1) + 1})"
                             f" is larger than the padded input size {spatial[d] + 2 * pad[d]} on spatial axis {d} "
                             f"(input shape {x.shape}, padding={tuple(pad)}, kernel_size={tuple(kernel)})")
        out.append(o)
    return kernel, stride, pad, dil, tuple(out)


def _windows(x: Node, kernel: tuple, stride: tuple, pad: tuple, dil: tuple, out: tuple, fill: float) -> tuple:
    """The windows of ``x`` padded with ``fill`` (``pad`` before each spatial axis, after it only as far as the
    last window reaches), and the axes that index a window's entries (the ones to reduce).

    Disjoint windows that tile the padded input (stride == kernel, dilation 1: the default pooling) are a
    crop and a reshape to ``(N, C, o1, k1, o2, k2, ...)``, axes (3, 5, ...): the reduction then reads each
    row once, front to back, and its gradient is the reshape back (measured on a 64x6x28x28 2x2 max pool,
    forward + backward on llvm: 607 -> 319 us; avg pool 537 -> 147 us). Any other geometry is the sliding
    ``window`` op, ``(N, C, *kernel, *out)``, axes (2, ..., 1 + k)."""
    spatial = x.shape[2:]
    k = len(kernel)
    # the last window ends at (o - 1) s + d (k - 1) in padded coordinates
    full = tuple(builtins.max(p + s, (o - 1) * st + r * (kk - 1) + 1)
                 for s, p, o, st, r, kk in zip(spatial, pad, out, stride, dil, kernel))
    xp = embed(x, x.shape[:2] + full, (0, 0) + pad, (1,) * x.ndim, fill)
    if tuple(stride) == tuple(kernel) and builtins.all(r == 1 for r in dil):
        tiled = tuple(o * kk for o, kk in zip(out, kernel))
        xp = strided_slice(xp, (0,) * xp.ndim, (1,) * xp.ndim, x.shape[:2] + tiled)  # (the identity if it fits)
        split = tuple(v for o, kk in zip(out, kernel) for v in (o, kk))
        return reshape(xp, x.shape[:2] + split), tuple(3 + 2 * d for d in range(k))
    return window(xp, kernel, stride, dil, out), tuple(range(2, 2 + k))


def _avg_divisor(spatial: tuple, kernel: tuple, stride: tuple, pad: tuple, out: tuple,
                 count_include_pad: bool) -> np.ndarray:
    """The divisor of every output position (PyTorch's avg_pool rule), the outer product of per-axis counts."""
    div = np.ones((), np.float64)
    for s, kk, st, p, o in zip(spatial, kernel, stride, pad, out):
        start = np.arange(o) * st - p
        end = np.minimum(start + kk, s + p)  # clipped to the padded bounds
        cnt = end - start if count_include_pad else np.minimum(end, s) - np.maximum(start, 0)
        div = np.multiply.outer(div, cnt.astype(np.float64))
    return div


# -- max / avg pooling ------------------------------------------------------------------------------------------

def _max_pool(fn: str, k: int, x, kernel_size, stride, padding, dilation, ceil_mode, return_indices) -> Node:
    if return_indices:
        raise NotImplementedError(f"{fn}: return_indices=True is not supported (use sd.argmax over the windows)")
    x, unbatched = _spatial_input(fn, x, k)
    kernel, stride, pad, dil, out = _geometry(fn, x, k, kernel_size, stride, padding, dilation, ceil_mode)
    win, axes = _windows(x, kernel, stride, pad, dil, out, _FILL["max"])
    y = apply("max", [win], axes=axes, keepdims=False)
    return _result(y, unbatched)


def _avg_pool(fn: str, k: int, x, kernel_size, stride, padding, ceil_mode, count_include_pad,
              divisor_override) -> Node:
    x, unbatched = _spatial_input(fn, x, k)
    kernel, stride, pad, dil, out = _geometry(fn, x, k, kernel_size, stride, padding, 1, ceil_mode)
    if divisor_override is not None and (not is_int(divisor_override) or divisor_override == 0):
        raise ValueError(f"{fn}: divisor_override must be a non-zero int or None, got {divisor_override!r}")
    win, axes = _windows(x, kernel, stride, pad, dil, out, _FILL["sum"])
    total = apply("sum", [win], axes=axes, keepdims=False)
    if divisor_override is not None:
        inv = const(1.0 / divisor_override, x.dtype)
    else:
        inv = const(1.0 / _avg_divisor(x.shape[2:], kernel, stride, pad, out, bool(count_include_pad)), x.dtype)
    return _result(apply("mul", [total, inv]), unbatched)


@dsl_function(ops=_MAX_OPS)
def max_pool1d(x: TensorLike, kernel_size, stride=None, padding=0, dilation=1, ceil_mode: bool = False,
               return_indices: bool = False) -> Node:
    """1-D max pooling of ``(N, C, L)`` / ``(C, L)``, as ``torch.nn.functional.max_pool1d``.

    The gradient of a window is shared equally between its tied maxima (as JAX; PyTorch picks one)."""
    return _max_pool("max_pool1d", 1, x, kernel_size, stride, padding, dilation, ceil_mode, return_indices)


@dsl_function(ops=_MAX_OPS)
def max_pool2d(x: TensorLike, kernel_size, stride=None, padding=0, dilation=1, ceil_mode: bool = False,
               return_indices: bool = False) -> Node:
    """2-D max pooling of ``(N, C, H, W)`` / ``(C, H, W)``, as ``torch.nn.functional.max_pool2d``.

    The gradient of a window is shared equally between its tied maxima (as JAX; PyTorch picks one)."""
    return _max_pool("max_pool2d", 2, x, kernel_size, stride, padding, dilation, ceil_mode, return_indices)


@dsl_function(ops=_AVG_OPS)
def avg_pool1d(x: TensorLike, kernel_size, stride=None, padding=0, ceil_mode: bool = False,
               count_include_pad: bool = True, divisor_override: Optional[int] = None) -> Node:
    """1-D average pooling of ``(N, C, L)`` / ``(C, L)``, as ``torch.nn.functional.avg_pool1d``.

    ``divisor_override`` (not in PyTorch's avg_pool1d) as avg_pool2d's."""
    return _avg_pool("avg_pool1d", 1, x, kernel_size, stride, padding, ceil_mode, count_include_pad,
                     divisor_override)


@dsl_function(ops=_AVG_OPS)
def avg_pool2d(x: TensorLike, kernel_size, stride=None, padding=0, ceil_mode: bool = False,
               count_include_pad: bool = True, divisor_override: Optional[int] = None) -> Node:
    """2-D average pooling of ``(N, C, H, W)`` / ``(C, H, W)``, as ``torch.nn.functional.avg_pool2d``."""
    return _avg_pool("avg_pool2d", 2, x, kernel_size, stride, padding, ceil_mode, count_include_pad,
                     divisor_override)


# -- adaptive pooling ---------------------------------------------------------------------------------------------

def _output_size(fn: str, output_size, spatial: tuple) -> tuple:
    """An int, or a sequence of ints / None (None keeps that input size)."""
    k = len(spatial)
    vals = (output_size,) * k if is_int(output_size) else tuple(output_size) \
        if isinstance(output_size, (tuple, list)) else None
    if vals is None or len(vals) != k or not builtins.all(v is None or is_int(v) for v in vals):
        raise TypeError(f"{fn}: output_size must be an int or a tuple of {k} ints or None, got {output_size!r}")
    vals = tuple(s if v is None else int(v) for v, s in zip(vals, spatial))
    if builtins.any(v < 1 for v in vals):
        raise ValueError(f"{fn}: output_size must be positive, got {output_size!r} (input spatial sizes {spatial})")
    return vals


def adaptive_windows(size: int, out: int) -> tuple:
    """PyTorch's adaptive windows: (start, end) arrays, ``start = floor(i S / o)``, ``end = ceil((i + 1) S / o)``."""
    i = np.arange(out)
    return (i * size) // out, -((-(i + 1) * size) // out)


def _split_axis(x: Node, axis: int, out: int, fill: float) -> tuple:
    """Axis ``axis`` of ``x`` (size S) replaced by (out, K): window ``i``'s entries, short windows padded
    with ``fill``; and the window lengths."""
    size = x.shape[axis]
    if size % out == 0:  # equal, disjoint windows: a reshape
        return reshape(x, x.shape[:axis] + (out, size // out) + x.shape[axis + 1:]), np.full(out, size // out)
    start, end = adaptive_windows(size, out)
    length = end - start
    width = int(length.max())
    j = np.arange(width)
    idx = np.where(j[None, :] < length[:, None], start[:, None] + j[None, :], size)  # size: the fill entry
    if (length < width).any():
        grown = x.shape[:axis] + (size + 1,) + x.shape[axis + 1:]
        x = embed(x, grown, (0,) * x.ndim, (1,) * x.ndim, fill)
    return take(x, idx, axis=axis), length


def _adaptive(fn: str, k: int, reduce: str, x, output_size) -> Node:
    x, unbatched = _spatial_input(fn, x, k)
    out = _output_size(fn, output_size, x.shape[2:])
    counts = np.ones((), np.float64)
    for d in range(k):  # spatial axis d sits at 2 + 2d once the earlier ones are split into (o, K)
        x, length = _split_axis(x, 2 + 2 * d, out[d], _FILL[reduce])
        counts = np.multiply.outer(counts, length.astype(np.float64))
    y = apply(reduce, [x], axes=tuple(3 + 2 * d for d in range(k)), keepdims=False)
    if reduce == "sum":
        y = apply("mul", [y, const(1.0 / counts, x.dtype)])
    return _result(y, unbatched)


@dsl_function(ops=_ADAPTIVE_AVG_OPS)
def adaptive_avg_pool1d(x: TensorLike, output_size) -> Node:
    """1-D adaptive average pooling to ``output_size`` positions, as ``torch.nn.functional.adaptive_avg_pool1d``."""
    return _adaptive("adaptive_avg_pool1d", 1, "sum", x, output_size)


@dsl_function(ops=_ADAPTIVE_AVG_OPS)
def adaptive_avg_pool2d(x: TensorLike, output_size) -> Node:
    """2-D adaptive average pooling, as ``torch.nn.functional.adaptive_avg_pool2d``.

    ``output_size``: an int, or a pair whose None entries keep that input size."""
    return _adaptive("adaptive_avg_pool2d", 2, "sum", x, output_size)


@dsl_function(ops=_ADAPTIVE_MAX_OPS)
def adaptive_max_pool1d(x: TensorLike, output_size, return_indices: bool = False) -> Node:
    """1-D adaptive max pooling, as ``torch.nn.functional.adaptive_max_pool1d`` (ties share the gradient)."""
    if return_indices:
        raise NotImplementedError("adaptive_max_pool1d: return_indices=True is not supported")
    return _adaptive("adaptive_max_pool1d", 1, "max", x, output_size)


@dsl_function(ops=_ADAPTIVE_MAX_OPS)
def adaptive_max_pool2d(x: TensorLike, output_size, return_indices: bool = False) -> Node:
    """2-D adaptive max pooling, as ``torch.nn.functional.adaptive_max_pool2d`` (ties share the gradient)."""
    if return_indices:
        raise NotImplementedError("adaptive_max_pool2d: return_indices=True is not supported")
    return _adaptive("adaptive_max_pool2d", 2, "max", x, output_size)
