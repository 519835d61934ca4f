"""Direct loop-based NumPy references for the convolution ops (independent of symdiff/ops_conv.py's
window + matmul implementation): one output position and one kernel offset at a time."""
from __future__ import annotations

import itertools

import numpy as np


def _padded(x, pads):
    out = np.zeros(x.shape[:2] + tuple(s + lo + hi for s, (lo, hi) in zip(x.shape[2:], pads)), x.dtype)
    out[(slice(None), slice(None)) + tuple(slice(lo, lo + s) for s, (lo, _) in zip(x.shape[2:], pads))] = x
    return out


def out_sizes(spatial, kernel, stride, pads, dil):
    return tuple((s + lo + hi - d * (k - 1) - 1) // st + 1
                 for s, k, st, (lo, hi), d in zip(spatial, kernel, stride, pads, dil))


def conv(x, w, stride, pads, dil, groups):
    """y[n, o, p] = sum_{c, k} w[o, c, k] * xpad[n, group(o) * C/G + c, p * s + k * d]."""
    xp = _padded(x, pads)
    n, o = x.shape[0], w.shape[0]
    cg, og = w.shape[1], o // groups
    out = out_sizes(x.shape[2:], w.shape[2:], stride, pads, dil)
    y = np.zeros((n, o) + out)
    for p in itertools.product(*map(range, out)):
        for k in itertools.product(*map(range, w.shape[2:])):
            pos = tuple(pi * s + ki * d for pi, ki, s, d in zip(p, k, stride, dil))
            for g in range(groups):
                xs = xp[(slice(None), slice(g * cg, (g + 1) * cg)) + pos]  # (N, C/G)
                ws = w[(slice(g * og, (g + 1) * og), slice(None)) + k]  # (O/G, C/G)
                y[(slice(None), slice(g * og, (g + 1) * og)) + p] += xs @ ws.T
    return y


def conv_transpose(g, w, stride, pads, dil, groups, shape):
    """The adjoint of conv in x: each g[n, o, p] spreads w[o, c, k] * g onto xpad[n, ., p * s + k * d]."""
    n, o = g.shape[:2]
    cg, og = w.shape[1], o // groups
    full = tuple(s + lo + hi for s, (lo, hi) in zip(shape, pads))
    xp = np.zeros((n, cg * groups) + full)
    for p in itertools.product(*map(range, g.shape[2:])):
        for k in itertools.product(*map(range, w.shape[2:])):
            pos = tuple(pi * s + ki * d for pi, ki, s, d in zip(p, k, stride, dil))
            if any(q >= f for q, f in zip(pos, full)):
                continue
            for gr in range(groups):
                gs = g[(slice(None), slice(gr * og, (gr + 1) * og)) + p]  # (N, O/G)
                ws = w[(slice(gr * og, (gr + 1) * og), slice(None)) + k]  # (O/G, C/G)
                xp[(slice(None), slice(gr * cg, (gr + 1) * cg)) + pos] += gs @ ws
    return xp[(slice(None), slice(None)) + tuple(slice(lo, lo + s) for s, (lo, _) in zip(shape, pads))]


def conv_weight(x, g, stride, pads, dil, groups, kernel):
    """dw[o, c, k] = sum_{n, p} g[n, o, p] * xpad[n, group(o) * C/G + c, p * s + k * d]."""
    xp = _padded(x, pads)
    o = g.shape[1]
    cg, og = x.shape[1] // groups, o // groups
    dw = np.zeros((o, cg) + tuple(kernel))
    for p in itertools.product(*map(range, g.shape[2:])):
        for k in itertools.product(*map(range, kernel)):
            pos = tuple(pi * s + ki * d for pi, ki, s, d in zip(p, k, stride, dil))
            for gr in range(groups):
                xs = xp[(slice(None), slice(gr * cg, (gr + 1) * cg)) + pos]  # (N, C/G)
                gs = g[(slice(None), slice(gr * og, (gr + 1) * og)) + p]  # (N, O/G)
                dw[(slice(gr * og, (gr + 1) * og), slice(None)) + k] += gs.T @ xs
    return dw


def window(x, kernel, stride, dil, out):
    k = len(kernel)
    res = np.zeros(x.shape[:x.ndim - k] + tuple(kernel) + tuple(out))
    for kk in itertools.product(*map(range, kernel)):
        for p in itertools.product(*map(range, out)):
            res[(Ellipsis,) + kk + p] = x[(Ellipsis,) + tuple(pi * s + ki * d for pi, ki, s, d in zip(p, kk, stride, dil))]
    return res


def fold(c, shape, kernel, stride, dil):
    k = len(kernel)
    out = c.shape[c.ndim - k:]
    res = np.zeros(c.shape[:c.ndim - 2 * k] + tuple(shape))
    for kk in itertools.product(*map(range, kernel)):
        for p in itertools.product(*map(range, out)):
            res[(Ellipsis,) + tuple(pi * s + ki * d for pi, ki, s, d in zip(p, kk, stride, dil))] += c[(Ellipsis,) + kk + p]
    return res
