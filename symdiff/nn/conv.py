"""Convolutional modules: convolutions, pooling, 2-d batch norm and channel dropout.

Layouts and constructor arguments are PyTorch's: inputs ``(N, C, *S)`` (NCL / NCHW), conv weights
``(O, C/G, *K)`` (``G = groups``), transposed-conv weights ``(C_in, C_out/G, *K)``, biases ``(O,)``.
Parameters are named ``<module name>_W`` and ``<module name>_b`` as :class:`~symdiff.nn.Linear`'s.

Initialisation: the weight defaults to Kaiming normal N(0, 2 / fan_in) with the fan-in of one output
unit, ``fan_in = C/G * prod(K)`` (``C_in/G * prod(K)`` for a transposed conv; see
:func:`symdiff.nn.init.conv_fans`); Xavier uses ``fan_out = O/G * prod(K)``. The bias defaults to zeros,
as Linear's (PyTorch draws it from U(-1/sqrt(fan_in), 1/sqrt(fan_in)); pass ``bias_init`` to change it).

Output sizes (Dumoulin and Visin, per spatial axis: input ``S``, padding ``p``, dilation ``r``, kernel
``K``, stride ``s``): convolution and pooling ``floor((S + 2p - r(K - 1) - 1) / s) + 1`` (``ceil`` with
``ceil_mode``); transposed convolution ``(S - 1)s - 2p + r(K - 1) + output_padding + 1``.
"""
from __future__ import annotations

from typing import Optional, Union

import numpy as np

from .. import api_conv, api_pool
from ..ir import Node
from . import functional as F
from . import init as _init
from .modules import BatchNorm1d, Dropout, Module

IntOrTuple = Union[int, tuple]

_CONV_FNS = {1: "conv1d", 2: "conv2d"}


def _tuple(v: IntOrTuple, k: int, what: str, owner: str) -> tuple:
    """``v`` as ``k`` ints (an int is repeated), as PyTorch's ``_single``/``_pair``."""
    t = (v,) * k if isinstance(v, (int, np.integer)) else tuple(v)
    if len(t) != k or not all(isinstance(a, (int, np.integer)) for a in t):
        raise ValueError(f"{owner}: {what} must be an int or {k} ints, got {v!r}")
    return tuple(int(a) for a in t)


class _ConvNd(Module):
    """Shared by Conv1d / Conv2d (``k`` spatial axes) and ConvTranspose2d (``transposed``)."""

    kind = "conv"
    k = 2
    transposed = False

    def __init__(self, in_channels: int, out_channels: int, kernel_size: IntOrTuple, stride: IntOrTuple = 1,
                 padding: Union[int, tuple, str] = 0, dilation: IntOrTuple = 1, groups: int = 1, bias: bool = True,
                 padding_mode: str = "zeros", output_padding: IntOrTuple = 0, *, init="kaiming",
                 bias_init="zeros", dtype: str = "float32", name: Optional[str] = None) -> None:
        super().__init__(name)
        me = type(self).__name__
        self.in_channels, self.out_channels, self.groups = int(in_channels), int(out_channels), int(groups)
        if self.in_channels < 1 or self.out_channels < 1:
            raise ValueError(f"{me}: in_channels and out_channels must be positive, got {in_channels}, {out_channels}")
        if self.groups < 1 or self.in_channels % self.groups or self.out_channels % self.groups:
            raise ValueError(f"{me}: groups={groups} must divide in_channels={in_channels} and "
                             f"out_channels={out_channels}")
        if padding_mode != "zeros":
            raise ValueError(f"{me}: padding_mode={padding_mode!r} is not supported (only 'zeros'); pad the input "
                             f"with sd.pad(x, ..., mode='reflect' / 'edge' / 'wrap') and use padding=0")
        self.kernel_size = _tuple(kernel_size, self.k, "kernel_size", me)
        self.stride = _tuple(stride, self.k, "stride", me)
        self.dilation = _tuple(dilation, self.k, "dilation", me)
        if isinstance(padding, str):
            if self.transposed or padding not in ("valid", "same"):
                raise ValueError(f"{me}: padding={padding!r}: expected an int, a tuple"
                                 + ("" if self.transposed else ", 'valid' or 'same'"))
            if padding == "same" and any(s != 1 for s in self.stride):
                raise ValueError(f"{me}: padding='same' is not supported for strided convolutions "
                                 f"(stride={self.stride})")
            self.padding = padding
        else:
            self.padding = _tuple(padding, self.k, "padding", me)
        self.output_padding = _tuple(output_padding, self.k, "output_padding", me)
        if any(op >= max(s, r) for op, s, r in zip(self.output_padding, self.stride, self.dilation)):
            raise ValueError(f"{me}: output_padding={self.output_padding} must be smaller than stride={self.stride} "
                             f"or dilation={self.dilation}")
        c_in, c_out, g = self.in_channels, self.out_channels, self.groups
        shape = ((c_in, c_out // g) if self.transposed else (c_out, c_in // g)) + self.kernel_size
        fan_in, fan_out = _init.conv_fans(shape, g, self.transposed)
        self._declare_param("W", shape, dtype, _init.with_fans(init, shape, fan_in, fan_out))
        if bias:
            self._declare_param("b", (c_out,), dtype, bias_init)

    @property
    def W(self) -> Node:
        return self.param("W")

    @property
    def b(self) -> Optional[Node]:
        return self.param("b") if "b" in self._param_specs else None

    weight, bias = W, b  # PyTorch's names

    def _check_input(self, x: Node) -> None:
        """(N, C, *S), or an unbatched (C, *S) as PyTorch accepts."""
        if x.ndim not in (self.k + 1, self.k + 2) or x.shape[-self.k - 1] != self.in_channels:
            axes = "(N, C, L) or (C, L)" if self.k == 1 else "(N, C, H, W) or (C, H, W)"
            raise ValueError(f"{type(self).__name__} {self.name!r}: expected an input {axes} with C={self.in_channels} "
                             f"channels, got shape {x.shape}")

    def forward(self, x: Node) -> Node:
        self._check_input(x)
        fn = getattr(api_conv, _CONV_FNS[self.k])
        return fn(x, self.W, self.b, stride=self.stride, padding=self.padding, dilation=self.dilation,
                  groups=self.groups)

    def extra_repr(self) -> str:
        parts = [f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}", f"stride={self.stride}"]
        if self.padding != (0,) * self.k:
            parts.append(f"padding={self.padding!r}")
        if self.transposed and any(self.output_padding):
            parts.append(f"output_padding={self.output_padding}")
        if self.dilation != (1,) * self.k:
            parts.append(f"dilation={self.dilation}")
        if self.groups != 1:
            parts.append(f"groups={self.groups}")
        if "b" not in self._param_specs:
            parts.append("bias=False")
        return ", ".join(parts)


class Conv1d(_ConvNd):
    """1-d cross-correlation of (N, C_in, L) with a weight (C_out, C_in/groups, K) plus a bias: ``sd.conv1d``."""
    k = 1

    def __init__(self, in_channels: int, out_channels: int, kernel_size: IntOrTuple, stride: IntOrTuple = 1,
                 padding: Union[int, tuple, str] = 0, dilation: IntOrTuple = 1, groups: int = 1, bias: bool = True,
                 padding_mode: str = "zeros", **kw) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
                         padding_mode, **kw)


class Conv2d(_ConvNd):
    """2-d cross-correlation of (N, C_in, H, W) with a weight (C_out, C_in/groups, kH, kW) plus a bias:
    ``sd.conv2d``."""
    k = 2

    def __init__(self, in_channels: int, out_channels: int, kernel_size: IntOrTuple, stride: IntOrTuple = 1,
                 padding: Union[int, tuple, str] = 0, dilation: IntOrTuple = 1, groups: int = 1, bias: bool = True,
                 padding_mode: str = "zeros", **kw) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
                         padding_mode, **kw)


class ConvTranspose2d(_ConvNd):
    """The transpose (adjoint in the input) of a Conv2d, ``sd.conv_transpose2d``: (N, C_in, H, W) ->
    (N, C_out, H', W') with weight (C_in, C_out/groups, kH, kW); PyTorch's argument order."""
    k = 2
    transposed = True

    def __init__(self, in_channels: int, out_channels: int, kernel_size: IntOrTuple, stride: IntOrTuple = 1,
                 padding: IntOrTuple = 0, output_padding: IntOrTuple = 0, groups: int = 1, bias: bool = True,
                 dilation: IntOrTuple = 1, padding_mode: str = "zeros", **kw) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
                         padding_mode, output_padding, **kw)

    def forward(self, x: Node) -> Node:
        self._check_input(x)
        return api_conv.conv_transpose2d(x, self.W, self.b, stride=self.stride, padding=self.padding,
                                         output_padding=self.output_padding, groups=self.groups,
                                         dilation=self.dilation)


class _Pool2d(Module):
    def _check_input(self, x: Node) -> None:
        if x.ndim not in (3, 4):
            raise ValueError(f"{type(self).__name__} {self.name!r}: expected an (N, C, H, W) or (C, H, W) input, "
                             f"got shape {x.shape}")


class MaxPool2d(_Pool2d):
    """The maximum over each window (``sd.max_pool2d``; padding counts as -inf; the gradient is shared
    equally between tied maxima). ``stride`` defaults to ``kernel_size``; ``return_indices`` goes to
    ``sd.max_pool2d`` (which does not support True yet)."""
    kind = "maxpool"

    def __init__(self, kernel_size: IntOrTuple, stride: Optional[IntOrTuple] = None, padding: IntOrTuple = 0,
                 dilation: IntOrTuple = 1, return_indices: bool = False, ceil_mode: bool = False,
                 name: Optional[str] = None) -> None:
        super().__init__(name)
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding
        self.dilation, self.ceil_mode, self.return_indices = dilation, bool(ceil_mode), bool(return_indices)

    def forward(self, x: Node) -> Node:
        self._check_input(x)
        return api_pool.max_pool2d(x, self.kernel_size, stride=self.stride, padding=self.padding,
                                   dilation=self.dilation, ceil_mode=self.ceil_mode,
                                   return_indices=self.return_indices)

    def extra_repr(self) -> str:
        return (f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
                f"dilation={self.dilation}, ceil_mode={self.ceil_mode}")


class AvgPool2d(_Pool2d):
    """The mean over each window (``sd.avg_pool2d``); ``count_include_pad``: padded zeros count in the
    divisor; ``divisor_override``: a fixed divisor. ``stride`` defaults to ``kernel_size``."""
    kind = "avgpool"

    def __init__(self, kernel_size: IntOrTuple, stride: Optional[IntOrTuple] = None, padding: IntOrTuple = 0,
                 ceil_mode: bool = False, count_include_pad: bool = True, divisor_override: Optional[int] = None,
                 name: Optional[str] = None) -> None:
        super().__init__(name)
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding
        self.ceil_mode, self.count_include_pad = bool(ceil_mode), bool(count_include_pad)
        self.divisor_override = divisor_override

    def forward(self, x: Node) -> Node:
        self._check_input(x)
        return api_pool.avg_pool2d(x, self.kernel_size, stride=self.stride, padding=self.padding,
                                   ceil_mode=self.ceil_mode, count_include_pad=self.count_include_pad,
                                   divisor_override=self.divisor_override)

    def extra_repr(self) -> str:
        return (f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
                f"ceil_mode={self.ceil_mode}, count_include_pad={self.count_include_pad}")


class AdaptiveAvgPool2d(_Pool2d):
    """Average pooling to a fixed ``output_size`` (an int or (H_out, W_out); ``None`` keeps that size):
    output cell ``i`` averages rows ``floor(i H / H_out) .. ceil((i + 1) H / H_out) - 1`` (PyTorch's bins)."""
    kind = "adaptive_avgpool"

    def __init__(self, output_size, name: Optional[str] = None) -> None:
        super().__init__(name)
        self.output_size = output_size

    def forward(self, x: Node) -> Node:
        self._check_input(x)
        return api_pool.adaptive_avg_pool2d(x, self.output_size)

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}"


class BatchNorm2d(BatchNorm1d):
    """Batch normalisation of (N, C, H, W) inputs, per channel over (N, H, W): the statistics, running
    updates and modes of :class:`~symdiff.nn.BatchNorm1d` (``N`` in the unbiased variance: N * H * W)."""
    kind = "bn"
    ranks = {4: "(N, C, H, W)"}


class Dropout2d(Dropout):
    """Channel dropout: in training mode each channel of each sample, ``x[n, c, :, :]``, is zeroed with
    probability ``p`` and the rest scaled by ``1 / (1 - p)`` (a keep mask of shape (N, C, 1, 1), drawn as
    :class:`~symdiff.nn.Dropout`'s from ``rng_seed`` / ``rng_step`` with stream ``crc32(name)``); in
    evaluation mode the identity. Accepts (N, C, *S) inputs (the mask (N, C, 1, ...))."""
    kind = "dropout2d"

    def forward(self, x: Node) -> Node:
        if x.ndim < 3:
            raise ValueError(f"Dropout2d {self.name!r}: expected an (N, C, H, W) input, got shape {x.shape}")
        return F.dropout(x, self.p, self.seed, self.step, self.stream, self.training,
                         mask_shape=x.shape[:2] + (1,) * (x.ndim - 2))

    def extra_repr(self) -> str:
        return f"p={self.p}"


__all__ = ["Conv1d", "Conv2d", "ConvTranspose2d", "MaxPool2d", "AvgPool2d", "AdaptiveAvgPool2d", "BatchNorm2d",
           "Dropout2d"]
