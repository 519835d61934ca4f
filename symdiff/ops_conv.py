"""Convolutions: sliding windows and the three convolution ops, with shape rules, NumPy implementations,
vector-Jacobian rules and the expansions the compiled backends lower them through.

Layouts are PyTorch's: ``x`` is ``(N, C, *S)`` (batch, channels, k spatial axes), a weight ``(O, C/G, *K)``
(``G`` groups: output channels ``o`` of group ``o // (O/G)`` read input channels of that group only).
Per spatial axis ``d`` (padding ``lo/hi``, stride ``s``, dilation ``r``, kernel ``K``, input ``S``; the
convolution-arithmetic formula of Dumoulin and Visin)::

    P = S + lo + hi                       (the padded size)
    OS = (P - r * (K - 1) - 1) // s + 1   (the output size)

- ``window(x; kernel, stride, dilation, out)``: the sliding windows of the last k axes:
  ``out[..., k_1..k_k, o_1..o_k] = x[..., o * s + k * r]`` (``out``: the output sizes, at most the full
  ``(S - r(K-1) - 1) // s + 1``). An index map: the kernels compute it inline (im2col in registers).
- ``fold(cols; shape, kernel, stride, dilation)``: its transpose (col2im): zeros of ``shape``, plus every
  window entry added where ``window`` read it. ``window`` and ``fold`` are each other's VJP.
- ``conv(x, w; stride, padding, dilation, groups)``: ``y[n, o, os] = sum_{c, k} w[o, c, k] *
  xpad[n, g(o) * C/G + c, os * s + k * r]`` (a cross-correlation, as every deep-learning library).
- ``conv_transpose(g, w; stride, padding, dilation, groups, shape)``: the transpose of ``conv`` in its
  input (the gradient of ``conv`` with respect to ``x``): ``g`` is ``(N, O, *OS)``, the result
  ``(N, C, *shape)``. ``sd.conv_transpose2d`` is this op (PyTorch's weight layout ``(C_in, C_out/G, *K)``
  is this ``w``).
- ``conv_weight(x, g; stride, padding, dilation, groups, kernel)``: the gradient of ``conv`` with respect
  to ``w``: ``dw[o, c, k] = sum_{n, os} g[n, o, os] * xpad[n, g(o) * C/G + c, os * s + k * r]``.

The three are bilinear and each one's partial derivatives are the other two (the rules below), so
derivatives of any order stay within these ops. The compiled backends lower each through
``window``/``fold``, ``embed``/``slice`` (padding) and one GEMM per group: ``cols`` is
``window(xpad)`` laid out as ``(G, K*C/G, N*OS)`` (im2col in the workspace), so a convolution is
``W (G, O/G, K*C/G) @ cols``, its weight gradient ``g @ cols^T`` and its input gradient
``fold(W^T @ g)`` -- the same ``cols`` buffer serves the forward pass and the weight gradient.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from . import dtypes as _dt
from .ir import Node, apply
from .ops_index import embed, flip, strided_slice
from .ops_reduce import TENSOR_EXPANSIONS
from .ops_tensor import reshape, transpose
from .optable import OpDef, register

__all__ = ["window", "fold", "conv", "conv_transpose", "conv_weight", "conv_out_size", "transpose_as_conv", "CONV_OPS"]

CONV_OPS = ("conv", "conv_transpose", "conv_weight")


def conv_out_size(size: int, lo: int, hi: int, kernel: int, stride: int, dilation: int) -> int:
    """``(size + lo + hi - dilation * (kernel - 1) - 1) // stride + 1`` (may be <= 0: no window fits)."""
    return (size + lo + hi - dilation * (kernel - 1) - 1) // stride + 1


def _ints(v: Sequence[int]) -> tuple:
    return tuple(int(a) for a in v)


def _pads(padding: Sequence[Sequence[int]]) -> tuple:
    return tuple((int(lo), int(hi)) for lo, hi in padding)


# -- builders --------------------------------------------------------------------------------------------------

def window(x: Node, kernel: Sequence[int], stride: Sequence[int], dilation: Sequence[int],
           out: Sequence[int] = None) -> Node:
    """The sliding windows of the last ``len(kernel)`` axes of ``x``: ``x.shape[:-k] + kernel + out``."""
    kernel, stride, dilation = _ints(kernel), _ints(stride), _ints(dilation)
    k = len(kernel)
    if out is None:
        out = tuple(conv_out_size(s, 0, 0, kk, st, r) for s, kk, st, r in zip(x.shape[x.ndim - k:], kernel, stride, dilation))
    return apply("window", [x], kernel=kernel, stride=stride, dilation=dilation, out=_ints(out))


def fold(cols: Node, shape: Sequence[int], kernel: Sequence[int], stride: Sequence[int],
         dilation: Sequence[int]) -> Node:
    """The transpose of :func:`window`: window entries summed back into spatial ``shape``."""
    return apply("fold", [cols], shape=_ints(shape), kernel=_ints(kernel), stride=_ints(stride),
                 dilation=_ints(dilation))


def conv(x: Node, w: Node, stride: Sequence[int], padding, dilation: Sequence[int], groups: int = 1) -> Node:
    return apply("conv", [x, w], stride=_ints(stride), padding=_pads(padding), dilation=_ints(dilation),
                 groups=int(groups))


def conv_transpose(g: Node, w: Node, stride: Sequence[int], padding, dilation: Sequence[int], groups: int,
                   shape: Sequence[int]) -> Node:
    return apply("conv_transpose", [g, w], stride=_ints(stride), padding=_pads(padding), dilation=_ints(dilation),
                 groups=int(groups), shape=_ints(shape))


def conv_weight(x: Node, g: Node, stride: Sequence[int], padding, dilation: Sequence[int], groups: int,
                kernel: Sequence[int]) -> Node:
    return apply("conv_weight", [x, g], stride=_ints(stride), padding=_pads(padding), dilation=_ints(dilation),
                 groups=int(groups), kernel=_ints(kernel))


# -- shape rules -----------------------------------------------------------------------------------------------

def _float_pair(op: str, a: Node, b: Node, names: tuple) -> None:
    for t, nm in zip((a, b), names):
        if not _dt.is_float(t.dtype):
            raise TypeError(f"{op}: {nm} must be a float tensor, got {t.dtype}{list(t.shape)}")
    if a.dtype != b.dtype:
        raise TypeError(f"{op}: {names[0]} and {names[1]} dtypes differ ({a.dtype}, {b.dtype}); cast first "
                        f"(the sd.conv* functions promote)")


def _check_params(op: str, k: int, attrs: dict) -> None:
    for key in ("stride", "dilation"):
        v = attrs[key]
        if len(v) != k or any(a < 1 for a in v):
            raise ValueError(f"{op}: {key} must be {k} positive integers, got {tuple(v)}")
    pads = attrs.get("padding")
    if pads is not None and (len(pads) != k or any(lo < 0 or hi < 0 for lo, hi in pads)):
        raise ValueError(f"{op}: padding must be {k} pairs of non-negative integers, got {tuple(pads)}")


def _check_groups(op: str, x_ch: int, w: tuple, groups: int, in_name: str = "input") -> None:
    """x has ``x_ch`` channels; the weight ``w`` (O, C/G, *K)."""
    if groups < 1:
        raise ValueError(f"{op}: groups must be a positive integer, got {groups}")
    if w[0] % groups:
        raise ValueError(f"{op}: groups={groups} does not divide the {w[0]} output channels of weight {w}")
    if x_ch % groups:
        raise ValueError(f"{op}: groups={groups} does not divide the {x_ch} channels of the {in_name}")
    if x_ch != w[1] * groups:
        raise ValueError(f"{op}: {in_name} has {x_ch} channels but weight {w} expects {w[1] * groups} "
                         f"(= {w[1]} per group x groups={groups})")


def _window_infer(inputs, attrs):
    (x,) = inputs
    kernel, stride, dilation, out = attrs["kernel"], attrs["stride"], attrs["dilation"], attrs["out"]
    k = len(kernel)
    _check_params("window", k, attrs)
    if x.ndim < k or len(out) != k or any(kk < 1 for kk in kernel):
        raise ValueError(f"window: kernel {tuple(kernel)} / out {tuple(out)} do not fit a tensor of shape {x.shape}")
    for d, (s, kk, st, r, o) in enumerate(zip(x.shape[x.ndim - k:], kernel, stride, dilation, out)):
        if o < 0 or o > max(conv_out_size(s, 0, 0, kk, st, r), 0):
            raise ValueError(f"window: spatial axis {d}: {o} windows of size {kk} (stride {st}, dilation {r}) "
                             f"do not fit in size {s} (shape {x.shape})")
    return x.shape[:x.ndim - k] + tuple(kernel) + tuple(out), x.dtype


def _fold_infer(inputs, attrs):
    (c,) = inputs
    shape, kernel = attrs["shape"], attrs["kernel"]
    k = len(kernel)
    _check_params("fold", k, attrs)
    if c.ndim < 2 * k or tuple(c.shape[c.ndim - 2 * k:c.ndim - k]) != tuple(kernel) or len(shape) != k:
        raise ValueError(f"fold: windows of shape {c.shape} do not match kernel {tuple(kernel)}")
    out = c.shape[c.ndim - k:]
    for d, (s, kk, st, r, o) in enumerate(zip(shape, kernel, attrs["stride"], attrs["dilation"], out)):
        if o > max(conv_out_size(s, 0, 0, kk, st, r), 0):
            raise ValueError(f"fold: spatial axis {d}: {o} windows of size {kk} do not fit in size {s}")
    return c.shape[:c.ndim - 2 * k] + tuple(shape), c.dtype


def _spatial(op: str, x: Node, w: Node, attrs: dict, x_name: str = "input") -> int:
    k = w.ndim - 2
    if k < 1 or x.ndim != k + 2:
        raise ValueError(f"{op}: {x_name} of shape {x.shape} and weight of shape {w.shape} do not have matching "
                         f"ranks (expected {x_name} (N, C, *spatial) and weight (O, C/groups, *kernel) with "
                         f"{max(k, 1)} spatial axes)")
    _check_params(op, k, attrs)
    return k


def _conv_infer(inputs, attrs):
    x, w = inputs
    k = _spatial("conv", x, w, attrs)
    _float_pair("conv", x, w, ("input", "weight"))
    _check_groups("conv", x.shape[1], w.shape, attrs["groups"])
    out = []
    for d in range(k):
        (lo, hi), S, K = attrs["padding"][d], x.shape[2 + d], w.shape[2 + d]
        r, s = attrs["dilation"][d], attrs["stride"][d]
        o = conv_out_size(S, lo, hi, K, s, r)
        if o < 1:
            raise ValueError(f"conv: kernel size {K} (dilation {r}: spans {r * (K - 1) + 1}) is larger than the "
                             f"padded input size {S + lo + hi} on spatial axis {d} (input {x.shape}, weight {w.shape}, "
                             f"padding {(lo, hi)})")
        out.append(o)
    return (x.shape[0], w.shape[0]) + tuple(out), x.dtype


def _conv_transpose_infer(inputs, attrs):
    g, w = inputs
    k = _spatial("conv_transpose", g, w, attrs)
    _float_pair("conv_transpose", g, w, ("input", "weight"))
    groups = attrs["groups"]
    if groups < 1 or w.shape[0] % groups:
        raise ValueError(f"conv_transpose: groups={groups} does not divide the {w.shape[0]} input channels of "
                         f"weight {w.shape}")
    if g.shape[1] != w.shape[0]:
        raise ValueError(f"conv_transpose: input has {g.shape[1]} channels but weight {w.shape} expects {w.shape[0]} "
                         f"(weight layout (C_in, C_out/groups, *kernel))")
    shape = attrs["shape"]
    if len(shape) != k:
        raise ValueError(f"conv_transpose: output shape {tuple(shape)} must have {k} entries")
    for d in range(k):
        (lo, hi), S, K, OS = attrs["padding"][d], shape[d], w.shape[2 + d], g.shape[2 + d]
        r, s = attrs["dilation"][d], attrs["stride"][d]
        if S < 1 or conv_out_size(S, lo, hi, K, s, r) < OS:
            raise ValueError(f"conv_transpose: output size {S} on spatial axis {d} is too small for {OS} input "
                             f"positions (stride {s}, padding {(lo, hi)}, kernel {K}, dilation {r})")
    return (g.shape[0], w.shape[1] * groups) + tuple(shape), g.dtype


def _conv_weight_infer(inputs, attrs):
    x, g = inputs
    kernel, groups = attrs["kernel"], attrs["groups"]
    k = len(kernel)
    if x.ndim != k + 2 or g.ndim != k + 2 or x.shape[0] != g.shape[0]:
        raise ValueError(f"conv_weight: input {x.shape} and output gradient {g.shape} do not match a kernel "
                         f"{tuple(kernel)}")
    _check_params("conv_weight", k, attrs)
    _float_pair("conv_weight", x, g, ("input", "output gradient"))
    if groups < 1 or x.shape[1] % groups or g.shape[1] % groups:
        raise ValueError(f"conv_weight: groups={groups} does not divide the channels of input {x.shape} and "
                         f"output gradient {g.shape}")
    for d in range(k):
        (lo, hi), S, K, OS = attrs["padding"][d], x.shape[2 + d], kernel[d], g.shape[2 + d]
        if conv_out_size(S, lo, hi, K, attrs["stride"][d], attrs["dilation"][d]) < OS:
            raise ValueError(f"conv_weight: {OS} output positions do not fit input size {S} on spatial axis {d}")
    return (g.shape[1], x.shape[1] // groups) + tuple(kernel), x.dtype


# -- numpy implementations (the oracle) ---------------------------------------------------------------------------

def _window_np(a, kernel, stride, dilation, out):
    k = len(kernel)
    lead = a.shape[:a.ndim - k]
    res = np.empty(lead + tuple(kernel) + tuple(out), a.dtype)
    for offs in np.ndindex(*kernel):  # one strided slice per kernel offset
        src = tuple(slice(o * r, o * r + s * (m - 1) + 1, s) if m > 0 else slice(0, 0)
                    for o, r, s, m in zip(offs, dilation, stride, out))
        res[(Ellipsis,) + offs + (slice(None),) * k] = a[(Ellipsis,) + src]
    return res


def _fold_np(c, shape, kernel, stride, dilation):
    k = len(kernel)
    out = c.shape[c.ndim - k:]
    res = np.zeros(c.shape[:c.ndim - 2 * k] + tuple(shape), c.dtype)
    for offs in np.ndindex(*kernel):
        dst = tuple(slice(o * r, o * r + s * (m - 1) + 1, s) if m > 0 else slice(0, 0)
                    for o, r, s, m in zip(offs, dilation, stride, out))
        res[(Ellipsis,) + dst] += c[(Ellipsis,) + offs + (slice(None),) * k]
    return res


def _pad_np(a, padding):
    return np.pad(a, ((0, 0), (0, 0)) + tuple(tuple(p) for p in padding)) if any(any(p) for p in padding) else a


def _cols_np(x, kernel, stride, padding, dilation, groups, out):
    """(N, G, C/G * prod(K), prod(OS)): the windows of the padded input, grouped."""
    win = _window_np(_pad_np(x, padding), kernel, stride, dilation, out)
    n, c = x.shape[:2]
    return win.reshape(n, groups, c // groups * int(np.prod(kernel)), int(np.prod(out)))


def _conv_np(x, w, stride, padding, dilation, groups):
    k = w.ndim - 2
    out = tuple(conv_out_size(x.shape[2 + d], *padding[d], w.shape[2 + d], stride[d], dilation[d]) for d in range(k))
    cols = _cols_np(x, w.shape[2:], stride, padding, dilation, groups, out)
    w2 = w.reshape(groups, w.shape[0] // groups, -1)
    y = np.matmul(w2[None], cols)  # (N, G, O/G, L)
    return y.reshape((x.shape[0], w.shape[0]) + out).astype(x.dtype, copy=False)


def _conv_transpose_np(g, w, stride, padding, dilation, groups, shape):
    k = w.ndim - 2
    n, o = g.shape[:2]
    cg = w.shape[1]
    w2 = w.reshape(groups, o // groups, -1)  # (G, O/G, C/G * K)
    g2 = g.reshape(n, groups, o // groups, -1)  # (N, G, O/G, L)
    cols = np.matmul(np.swapaxes(w2, 1, 2)[None], g2)  # (N, G, C/G * K, L)
    cols = cols.reshape((n, groups * cg) + tuple(w.shape[2:]) + tuple(g.shape[2:]))
    full = tuple(shape[d] + sum(padding[d]) for d in range(k))
    res = _fold_np(cols, full, w.shape[2:], stride, dilation)
    crop = tuple(slice(lo, lo + s) for (lo, _), s in zip(padding, shape))
    return np.ascontiguousarray(res[(Ellipsis,) + crop]).astype(g.dtype, copy=False)


def _conv_weight_np(x, g, stride, padding, dilation, groups, kernel):
    n, o = g.shape[:2]
    cols = _cols_np(x, kernel, stride, padding, dilation, groups, g.shape[2:])  # (N, G, C/G * K, L)
    g2 = g.reshape(n, groups, o // groups, -1)
    dw = np.einsum("ngol,ngkl->gok", g2, cols, optimize=True)
    return dw.reshape((o, x.shape[1] // groups) + tuple(kernel)).astype(x.dtype, copy=False)


# -- vector-Jacobian rules (each op's partials are the other two ops) ------------------------------------------

def _params(node: Node) -> tuple:
    a = node.attrs
    return a["stride"], a["padding"], a["dilation"], a["groups"]


def _fit(y: Node, shape: tuple) -> Node:
    """``y`` cut to ``shape`` on its spatial axes (a conv of a transposed conv's output can be longer)."""
    if y.shape == tuple(shape):
        return y
    return strided_slice(y, (0,) * y.ndim, (1,) * y.ndim, shape)


def _window_vjp(node, g):
    (x,) = node.inputs
    k = len(node.attrs["kernel"])
    return [fold(g, x.shape[x.ndim - k:], node.attrs["kernel"], node.attrs["stride"], node.attrs["dilation"])]


def _fold_vjp(node, g):
    (c,) = node.inputs
    k = len(node.attrs["kernel"])
    return [window(g, node.attrs["kernel"], node.attrs["stride"], node.attrs["dilation"], c.shape[c.ndim - k:])]


def _conv_vjp(node, g):
    # y = conv(x, w):  dx = conv^T(g, w),  dw = corr(x, g)
    x, w = node.inputs
    s, p, r, G = _params(node)
    return [conv_transpose(g, w, s, p, r, G, x.shape[2:]), conv_weight(x, g, s, p, r, G, w.shape[2:])]


def _conv_transpose_vjp(node, gy):
    # y = conv^T(g, w) is linear in g with adjoint conv(., w), and in w: dw = corr(gy, g)
    g, w = node.inputs
    s, p, r, G = _params(node)
    return [_fit(conv(gy, w, s, p, r, G), g.shape), conv_weight(gy, g, s, p, r, G, w.shape[2:])]


def _conv_weight_vjp(node, gw):
    # dw = corr(x, g) is linear in x (adjoint conv^T(g, .)) and in g (adjoint conv(x, .))
    x, g = node.inputs
    s, p, r, G = _params(node)
    return [conv_transpose(g, gw, s, p, r, G, x.shape[2:]), _fit(conv(x, gw, s, p, r, G), g.shape)]


register(OpDef("window", _window_infer, _window_np, _window_vjp,
               doc="window(x; kernel, stride, dilation, out): sliding windows of the last k axes (im2col)"))
register(OpDef("fold", _fold_infer, _fold_np, _fold_vjp, cost_class="cheap",
               doc="fold(cols; shape, kernel, stride, dilation): window entries summed back (col2im)"))
register(OpDef("conv", _conv_infer, _conv_np, _conv_vjp, arity=2, cost_class="expensive",
               doc="conv(x, w; stride, padding, dilation, groups): N-d cross-correlation, NC* / OI* layouts"))
register(OpDef("conv_transpose", _conv_transpose_infer, _conv_transpose_np, _conv_transpose_vjp, arity=2,
               cost_class="expensive", doc="conv_transpose(g, w; ..., shape): the transpose of conv in its input"))
register(OpDef("conv_weight", _conv_weight_infer, _conv_weight_np, _conv_weight_vjp, arity=2,
               cost_class="expensive", doc="conv_weight(x, g; ..., kernel): the gradient of conv in its weight"))


# -- expansions for the compiled backends (window/fold + one GEMM per group) -------------------------------------

def _padded(x: Node, padding: tuple) -> Node:
    if not any(lo or hi for lo, hi in padding):
        return x
    k = len(padding)
    shape = x.shape[:2] + tuple(s + lo + hi for s, (lo, hi) in zip(x.shape[2:], padding))
    return embed(x, shape, (0, 0) + tuple(lo for lo, _ in padding), (1,) * (k + 2))


def _gshape(G: int, *rest: int) -> tuple:
    """A GEMM operand shape: ``(G, *rest)``, or ``rest`` when there is one group (a plain 2-D GEMM, the
    path with the most fusion)."""
    return tuple(rest) if G == 1 else (G,) + tuple(rest)


def _cols(x: Node, kernel: tuple, s, p, r, G: int, out: tuple) -> Node:
    """im2col: ``(G, prod(K) * C/G, N * prod(OS))``, rows ordered (kernel offset, channel) so the loop that
    fills it splits over kernel offsets. One node per (input, parameters): shared by forward and dw."""
    n, c = x.shape[:2]
    k = len(kernel)
    win = window(_padded(x, p), kernel, s, r, out)  # (N, C, *K, *OS)
    kk, ll = int(np.prod(kernel)), int(np.prod(out))
    if G == 1:  # -> (*K, C, N, *OS)
        t = transpose(win, tuple(range(2, 2 + k)) + (1, 0) + tuple(range(2 + k, 2 + 2 * k)))
    else:  # -> (G, *K, C/G, N, *OS)
        win = reshape(win, (n, G, c // G) + tuple(kernel) + tuple(out))
        t = transpose(win, (1,) + tuple(range(3, 3 + k)) + (2, 0) + tuple(range(3 + k, 3 + 2 * k)))
    return reshape(t, _gshape(G, kk * (c // G), n * ll))


def _weight_rows(w: Node, G: int) -> Node:
    """The weight as ``(G, O/G, prod(K) * C/G)`` with columns in the order of ``_cols``' rows."""
    o, cg = w.shape[:2]
    k = w.ndim - 2
    if G == 1:
        t = transpose(w, (0,) + tuple(range(2, 2 + k)) + (1,))  # (O, *K, C)
    else:
        t = transpose(reshape(w, (G, o // G, cg) + tuple(w.shape[2:])), (0, 1) + tuple(range(3, 3 + k)) + (2,))
    return reshape(t, _gshape(G, o // G, int(np.prod(w.shape[2:])) * cg))


def _grad_rows(g: Node, G: int) -> Node:
    """An (N, O, *OS) tensor as ``(G, O/G, N * prod(OS))``."""
    n, o = g.shape[:2]
    k = g.ndim - 2
    gt = transpose(g, (1, 0) + tuple(range(2, 2 + k)))
    return reshape(gt, _gshape(G, o // G, n * int(np.prod(g.shape[2:]))))


def _mm(a: Node, b: Node) -> Node:
    return apply("matmul", [a, b])


def _mt(a: Node) -> Node:
    """The matrix transpose of every group: read in place by the GEMM."""
    return transpose(a, tuple(range(a.ndim - 2)) + (a.ndim - 1, a.ndim - 2))


def expand_conv(n: Node, ins: list) -> Node:
    x, w = ins
    s, p, r, G = _params(n)
    k = w.ndim - 2
    out = n.shape[2:]
    y = _mm(_weight_rows(w, G), _cols(x, w.shape[2:], s, p, r, G, out))  # (G, O/G, N * L)
    y = reshape(y, (w.shape[0], x.shape[0]) + tuple(out))
    return transpose(y, (1, 0) + tuple(range(2, 2 + k)))


def expand_conv_weight(n: Node, ins: list) -> Node:
    x, g = ins
    s, p, r, G = _params(n)
    kernel = n.attrs["kernel"]
    k = len(kernel)
    dw = _mm(_grad_rows(g, G), _mt(_cols(x, kernel, s, p, r, G, g.shape[2:])))  # (G, O/G, K * C/G)
    o, cg = n.shape[:2]
    dw = reshape(dw, (o,) + tuple(kernel) + (cg,))
    return transpose(dw, (0, k + 1) + tuple(range(1, k + 1)))


def transpose_as_conv(n: Node, ins: list):
    """A stride-1 ``conv_transpose`` (the input gradient of a convolution) as the convolution it is:
    dx[n, c, t] = sum_{o, a} w[o, c, K-1-a] g[n, o, t + a r - q_lo], i.e. ``conv(g, w')`` with w' the weight
    with in/out channels swapped and the kernel flipped, padding q = (K-1) r - p on each side. None for other
    strides or when some q < 0 (a crop first). The compiled backends choose it when the convolution's
    product reads its im2col in place (codegen/gather.py)."""
    g, w = ins
    s, p, r, G = _params(n)
    kernel = w.shape[2:]
    k = len(kernel)
    if any(v != 1 for v in s):
        return None
    q = tuple(((kk - 1) * rr - lo, (kk - 1) * rr - hi) for kk, rr, (lo, hi) in zip(kernel, r, p))
    if any(a < 0 or b < 0 for a, b in q):
        return None
    o, cg = w.shape[:2]
    sp = tuple(range(2, 2 + k))
    if G == 1:
        wt = transpose(w, (1, 0) + sp)
    else:  # (G, O/G, C/G, *K) -> (G, C/G, O/G, *K) -> (C, O/G, *K)
        wt = transpose(reshape(w, (G, o // G, cg) + tuple(kernel)), (0, 2, 1) + tuple(range(3, 3 + k)))
        wt = reshape(wt, (G * cg, o // G) + tuple(kernel))
    y = conv(g, flip(wt, sp), (1,) * k, q, r, G)
    return y if y.shape == n.shape else None


def expand_conv_transpose(n: Node, ins: list) -> Node:
    g, w = ins
    s, p, r, G = _params(n)
    kernel, shape = w.shape[2:], n.attrs["shape"]
    k = len(kernel)
    nb, c = n.shape[:2]
    cols = _mm(_mt(_weight_rows(w, G)), _grad_rows(g, G))  # (G, K * C/G, N * L)
    cols = reshape(cols, (G,) + tuple(kernel) + (c // G, nb) + tuple(g.shape[2:]))
    # (G, *K, C/G, N, *OS) -> (N, G, C/G, *K, *OS) -> (N, C, *K, *OS)
    perm = (k + 2, 0, k + 1) + tuple(range(1, k + 1)) + tuple(range(k + 3, 2 * k + 3))
    cols = reshape(transpose(cols, perm), (nb, c) + tuple(kernel) + tuple(g.shape[2:]))
    full = tuple(sz + lo + hi for sz, (lo, hi) in zip(shape, p))
    y = fold(cols, full, kernel, s, r)
    return strided_slice(y, (0, 0) + tuple(lo for lo, _ in p), (1,) * (k + 2), n.shape)


def expand_fold(n: Node, ins: list) -> Node:
    """col2im as a sum of placements: for each kernel offset, that slice of the windows embedded at
    ``offset * dilation`` with step ``stride`` (each output point reads prod(K) entries, in bounds)."""
    (c,) = ins
    kernel, stride, dilation = n.attrs["kernel"], n.attrs["stride"], n.attrs["dilation"]
    k = len(kernel)
    lead = c.shape[:c.ndim - 2 * k]
    out = c.shape[c.ndim - k:]
    total = None
    for offs in np.ndindex(*kernel):
        part = strided_slice(c, (0,) * len(lead) + offs + (0,) * k, (1,) * c.ndim, lead + (1,) * k + tuple(out))
        part = reshape(part, lead + tuple(out))
        placed = embed(part, n.shape, (0,) * len(lead) + tuple(o * r for o, r in zip(offs, dilation)),
                       (1,) * len(lead) + tuple(stride))
        total = placed if total is None else apply("add", [total, placed])
    return total


TENSOR_EXPANSIONS.update({"conv": expand_conv, "conv_weight": expand_conv_weight,
                          "conv_transpose": expand_conv_transpose, "fold": expand_fold})
