"""The convolution DSL: ``sd.conv1d/conv2d/conv3d`` and ``sd.conv_transpose1d/conv_transpose2d``, with
PyTorch's arguments, defaults, layouts and output sizes (``torch.nn.functional.conv2d`` et al.).

Layouts: input ``(N, C, *S)`` (or unbatched ``(C, *S)``), weight ``(O, C/groups, *K)``; a transposed
convolution's weight is ``(C_in, C_out/groups, *K)``. Output size per spatial axis (stride ``s``, padding
``p`` before and after, dilation ``d``, kernel ``K``; Dumoulin and Visin, "A guide to convolution
arithmetic for deep learning")::

    conv:            OS = floor((S + 2p - d (K - 1) - 1) / s) + 1
    conv_transpose:  OS = (S - 1) s - 2p + d (K - 1) + output_padding + 1

``padding`` is an int, one int per spatial axis, explicit ``(before, after)`` pairs per axis (as
``((top, bottom), (left, right))``), ``"valid"`` (no padding) or ``"same"`` (output size = input size,
stride 1 only: total ``d (K - 1)``, the smaller half before, as PyTorch). The ops are
``symdiff/ops_conv.py``'s; every bad argument is an error naming the function, the shapes and the parameter.
"""
from __future__ import annotations

import numbers
from typing import Optional, Sequence, Union

from . import dims as _dims
from . import dtypes as _dt
from .api import TensorLike, as_tensor
from .ir import Node
from .ops_conv import conv as _conv
from .ops_conv import conv_out_size
from .ops_conv import conv_transpose as _conv_transpose
from .ops_tensor import cast, reshape
from .optable import dsl_function

__all__ = ["conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d", "conv_padding", "int_tuple",
           "is_int"]

IntOrSeq = Union[int, Sequence[int]]
Padding = Union[int, str, Sequence]


def is_int(v) -> bool:
    """A Python or NumPy integer, not a bool."""
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def int_tuple(fn: str, name: str, v: IntOrSeq, k: int, minimum: int) -> tuple:
    """An int or a sequence of ``k`` ints (a 1-sequence is repeated), each ``>= minimum`` (0 or 1): the
    convolution and pooling arguments (stride, dilation, kernel_size, ...)."""
    vals = (v,) if is_int(v) else tuple(v) if isinstance(v, (tuple, list)) else None
    if vals is None or not all(is_int(a) for a in vals) or len(vals) not in (1, k):
        raise TypeError(f"{fn}: {name} must be an int or a tuple of {k} ints, got {v!r}")
    vals = tuple(int(a) for a in vals) * (k if len(vals) == 1 else 1)
    if any(a < minimum for a in vals):
        raise ValueError(f"{fn}: {name} must be {'positive' if minimum else 'non-negative'}, got {v!r}")
    return vals


def conv_padding(fn: str, padding: Padding, k: int, kernel: Sequence[int], stride: Sequence[int],
                 dilation: Sequence[int]) -> tuple:
    """``padding`` as ``k`` (before, after) pairs (see the module docstring for the accepted forms)."""
    if isinstance(padding, str):
        if padding == "valid":
            return ((0, 0),) * k
        if padding == "same":
            if any(s != 1 for s in stride):
                raise ValueError(f"{fn}: padding='same' is not supported for strided convolutions "
                                 f"(stride={tuple(stride)}), as in PyTorch; give the padding explicitly")
            total = [r * (kk - 1) for r, kk in zip(dilation, kernel)]
            return tuple((t // 2, t - t // 2) for t in total)
        raise ValueError(f"{fn}: padding must be 'valid', 'same', an int, {k} ints or {k} (before, after) pairs, "
                         f"got {padding!r}")
    if isinstance(padding, int) and not isinstance(padding, bool):
        padding = (padding,) * k
    items = tuple(padding)
    if len(items) != k:
        raise ValueError(f"{fn}: padding {padding!r} must have {k} entries (one per spatial axis)")
    pairs = []
    for p in items:
        pair = (p, p) if isinstance(p, int) and not isinstance(p, bool) else tuple(p)
        if len(pair) != 2 or not all(isinstance(a, int) and not isinstance(a, bool) and a >= 0 for a in pair):
            raise ValueError(f"{fn}: padding {padding!r}: each entry must be a non-negative int or a "
                             f"(before, after) pair of them")
        pairs.append(pair)
    return tuple(pairs)


def _operands(fn: str, x: TensorLike, w: TensorLike, k: int) -> tuple:
    """(x, w, unbatched): float tensors of one dtype (promoted), x batched."""
    x, w = as_tensor(x), as_tensor(w)
    dt = _dt.promote(x.dtype, w.dtype)
    if dt == "bool":
        raise TypeError(f"{fn}: expected float tensors, got input {x.dtype}{list(x.shape)} and weight "
                        f"{w.dtype}{list(w.shape)}")
    dt = dt if _dt.is_float(dt) else "float64"  # integer images compute in float64, as NumPy promotes
    x, w = cast(x, dt), cast(w, dt)
    if w.ndim != k + 2:
        raise ValueError(f"{fn}: weight must have {k + 2} dimensions (out_channels, in_channels/groups, "
                         f"{'kernel' if k == 1 else 'kH, kW' if k == 2 else 'kD, kH, kW'}), got shape {w.shape}")
    unbatched = x.ndim == k + 1
    if x.ndim not in (k + 1, k + 2):
        raise ValueError(f"{fn}: expected a {k + 2}-D (batched) or {k + 1}-D (unbatched) input, got shape {x.shape}")
    if unbatched:
        x = reshape(x, (1,) + x.shape)
    for d, n in enumerate(x.shape[1:] + w.shape):  # only the batch axis may be symbolic
        if isinstance(n, _dims.Dim):
            what = f"channel axis (size {n})" if d in (0, k + 1, k + 2) else f"spatial axis (size {n})"
            raise _dims.SymbolicDimError(f"{fn}: a symbolic {what} of the {'input' if d <= k else 'weight'} is not "
                                         f"supported: the geometry and the gradient need fixed sizes (a symbolic "
                                         f"batch works)")
    return x, w, unbatched


def _bias(fn: str, y: Node, bias: Optional[TensorLike], k: int) -> Node:
    if bias is None:
        return y
    b = as_tensor(bias)
    if b.shape != (y.shape[1],):
        raise ValueError(f"{fn}: bias must have shape ({y.shape[1]},) (one per output channel), got {b.shape}")
    return y + reshape(cast(b, y.dtype), (y.shape[1],) + (1,) * k)


def _conv_nd(fn: str, k: int, x, w, bias, stride, padding, dilation, groups) -> Node:
    x, w, unbatched = _operands(fn, x, w, k)
    stride = int_tuple(fn, "stride", stride, k, 1)
    dilation = int_tuple(fn, "dilation", dilation, k, 1)
    if not isinstance(groups, int) or groups < 1:
        raise ValueError(f"{fn}: groups must be a positive int, got {groups!r}")
    kernel = w.shape[2:]
    pads = conv_padding(fn, padding, k, kernel, stride, dilation)
    c, o = x.shape[1], w.shape[0]
    if c % groups or o % groups:
        raise ValueError(f"{fn}: groups={groups} must divide the input channels ({c}, input {x.shape}) and the "
                         f"output channels ({o}, weight {w.shape})")
    if w.shape[1] * groups != c:
        raise ValueError(f"{fn}: input {x.shape} has {c} channels but weight {w.shape} expects "
                         f"{w.shape[1] * groups} (in_channels/groups={w.shape[1]} x groups={groups})")
    for d in range(k):
        (lo, hi), size = pads[d], x.shape[2 + d]
        if conv_out_size(size, lo, hi, kernel[d], stride[d], dilation[d]) < 1:
            raise ValueError(f"{fn}: kernel size {kernel[d]} (dilation {dilation[d]}: spans "
                             f"{dilation[d] * (kernel[d] - 1) + 1}) is larger than the padded input size "
                             f"{size + lo + hi} on spatial axis {d} (input {x.shape}, weight {w.shape}, padding {pads})")
    y = _bias(fn, _conv(x, w, stride, pads, dilation, groups), bias, k)
    return reshape(y, y.shape[1:]) if unbatched else y


@dsl_function(ops=("conv",))
def conv1d(x: TensorLike, w: TensorLike, bias: Optional[TensorLike] = None, stride: IntOrSeq = 1,
           padding: Padding = 0, dilation: IntOrSeq = 1, groups: int = 1) -> Node:
    """1-D cross-correlation of ``x`` (N, C, L) with ``w`` (O, C/groups, K), as ``torch.nn.functional.conv1d``."""
    return _conv_nd("conv1d", 1, x, w, bias, stride, padding, dilation, groups)


@dsl_function(ops=("conv",))
def conv2d(x: TensorLike, w: TensorLike, bias: Optional[TensorLike] = None, stride: IntOrSeq = 1,
           padding: Padding = 0, dilation: IntOrSeq = 1, groups: int = 1) -> Node:
    """2-D cross-correlation of ``x`` (N, C, H, W) with ``w`` (O, C/groups, kH, kW), as ``F.conv2d``."""
    return _conv_nd("conv2d", 2, x, w, bias, stride, padding, dilation, groups)


@dsl_function(ops=("conv",))
def conv3d(x: TensorLike, w: TensorLike, bias: Optional[TensorLike] = None, stride: IntOrSeq = 1,
           padding: Padding = 0, dilation: IntOrSeq = 1, groups: int = 1) -> Node:
    """3-D cross-correlation of ``x`` (N, C, D, H, W) with ``w`` (O, C/groups, kD, kH, kW), as ``F.conv3d``."""
    return _conv_nd("conv3d", 3, x, w, bias, stride, padding, dilation, groups)


def _conv_transpose_nd(fn: str, k: int, x, w, bias, stride, padding, output_padding, groups, dilation) -> Node:
    x, w, unbatched = _operands(fn, x, w, k)
    stride = int_tuple(fn, "stride", stride, k, 1)
    dilation = int_tuple(fn, "dilation", dilation, k, 1)
    if isinstance(padding, str):
        raise ValueError(f"{fn}: padding must be an int or {k} ints (PyTorch's transposed convolutions take no "
                         f"padding strings), got {padding!r}")
    pads = conv_padding(fn, padding, k, w.shape[2:], stride, dilation)
    out_pad = int_tuple(fn, "output_padding", output_padding, k, 0)
    if not isinstance(groups, int) or groups < 1:
        raise ValueError(f"{fn}: groups must be a positive int, got {groups!r}")
    c = x.shape[1]
    if w.shape[0] != c:
        raise ValueError(f"{fn}: input {x.shape} has {c} channels but weight {w.shape} expects {w.shape[0]} "
                         f"(weight layout (in_channels, out_channels/groups, *kernel))")
    if c % groups:
        raise ValueError(f"{fn}: groups={groups} must divide the input channels ({c}, input {x.shape})")
    shape = []
    for d in range(k):
        if out_pad[d] >= max(stride[d], dilation[d]):
            raise ValueError(f"{fn}: output_padding {out_pad[d]} must be smaller than either stride ({stride[d]}) or "
                             f"dilation ({dilation[d]}) on spatial axis {d}")
        size = (x.shape[2 + d] - 1) * stride[d] - sum(pads[d]) + dilation[d] * (w.shape[2 + d] - 1) + out_pad[d] + 1
        if size < 1:
            raise ValueError(f"{fn}: the output size on spatial axis {d} would be {size} (input {x.shape}, weight "
                             f"{w.shape}, stride {stride}, padding {pads})")
        shape.append(size)
    y = _bias(fn, _conv_transpose(x, w, stride, pads, dilation, groups, shape), bias, k)
    return reshape(y, y.shape[1:]) if unbatched else y


@dsl_function(ops=("conv_transpose",))
def conv_transpose1d(x: TensorLike, w: TensorLike, bias: Optional[TensorLike] = None, stride: IntOrSeq = 1,
                     padding: IntOrSeq = 0, output_padding: IntOrSeq = 0, groups: int = 1,
                     dilation: IntOrSeq = 1) -> Node:
    """1-D transposed convolution (the input gradient of conv1d), as ``F.conv_transpose1d``."""
    return _conv_transpose_nd("conv_transpose1d", 1, x, w, bias, stride, padding, output_padding, groups, dilation)


@dsl_function(ops=("conv_transpose",))
def conv_transpose2d(x: TensorLike, w: TensorLike, bias: Optional[TensorLike] = None, stride: IntOrSeq = 1,
                     padding: IntOrSeq = 0, output_padding: IntOrSeq = 0, groups: int = 1,
                     dilation: IntOrSeq = 1) -> Node:
    """2-D transposed convolution of ``x`` (N, C_in, H, W) with ``w`` (C_in, C_out/groups, kH, kW), as
    ``F.conv_transpose2d`` (the gradient of conv2d with respect to its input)."""
    return _conv_transpose_nd("conv_transpose2d", 2, x, w, bias, stride, padding, output_padding, groups, dilation)
