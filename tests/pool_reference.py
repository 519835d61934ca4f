"""Direct loop-based NumPy references of pooling (PyTorch's C++ loops, ``aten/src/ATen/native/cpu``: one output
position at a time, reading the real input entries of its window); max-pool ties share the cotangent equally
(symdiff's rule). Used by tests/cases_pool.py and tests/test_api_pool.py."""
from __future__ import annotations

import itertools

import numpy as np


def out_size(size: int, k: int, s: int, p: int, d: int, ceil_mode: bool) -> int:
    """PyTorch's pooling_output_shape."""
    num = size + 2 * p - d * (k - 1) - 1
    o = (-(-num // s) if ceil_mode else num // s) + 1
    if ceil_mode and (o - 1) * s >= size + p:
        o -= 1
    return o


def _norm(v, k):
    return (v,) * k if isinstance(v, int) else tuple(v)


def pool_ref(x, mode: str, kernel, stride=None, padding=0, dilation=1, ceil_mode=False, count_include_pad=True,
             divisor_override=None, g=None):
    """Max ("max") or average ("avg") pooling of x (N, C, *S) with k = x.ndim - 2 spatial axes, by loops over
    the output positions. With ``g`` (the output cotangent) returns (y, dx)."""
    k = x.ndim - 2
    ker, pad, dil = _norm(kernel, k), _norm(padding, k), _norm(dilation, k)
    st = ker if stride is None else _norm(stride, k)
    S = x.shape[2:]
    outs = tuple(out_size(S[d], ker[d], st[d], pad[d], dil[d], ceil_mode) for d in range(k))
    y = np.zeros(x.shape[:2] + outs)
    dx = np.zeros_like(x, dtype=np.float64)
    for o in itertools.product(*(range(n) for n in outs)):
        starts = [o[d] * st[d] - pad[d] for d in range(k)]
        pos = [[starts[d] + j * dil[d] for j in range(ker[d]) if 0 <= starts[d] + j * dil[d] < S[d]] for d in range(k)]
        sel = (slice(None), slice(None)) + np.ix_(*pos) if all(pos) else None
        vals = x[sel].reshape(x.shape[:2] + (-1,)) if sel is not None else np.zeros(x.shape[:2] + (0,))
        idx = (slice(None), slice(None)) + o
        if mode == "max":
            m = vals.max(axis=-1) if vals.shape[-1] else np.full(x.shape[:2], -np.inf)
            y[idx] = m
            if g is not None and vals.shape[-1]:
                mask = vals == m[..., None]
                share = mask * (g[idx] / mask.sum(-1))[..., None]
                dx[sel] += share.reshape(x[sel].shape)
        else:
            if divisor_override is not None:
                div = divisor_override
            elif count_include_pad:
                div = np.prod([min(starts[d] + ker[d], S[d] + pad[d]) - starts[d] for d in range(k)])
            else:
                div = np.prod([len(p) for p in pos])
            y[idx] = vals.sum(-1) / div
            if g is not None and sel is not None:
                dx[sel] += (g[idx] / div)[(Ellipsis,) + (None,) * k]
    return y if g is None else (y, dx)


def adaptive_ref(x, mode: str, output_size, g=None):
    """Adaptive max/avg pooling of x (N, C, *S) by loops: window i of o over S is [floor(iS/o), ceil((i+1)S/o))."""
    k = x.ndim - 2
    S = x.shape[2:]
    outs = tuple(S[d] if v is None else v for d, v in enumerate(_norm(output_size, k)))
    y = np.zeros(x.shape[:2] + outs)
    dx = np.zeros_like(x, dtype=np.float64)
    for o in itertools.product(*(range(n) for n in outs)):
        sel = (slice(None), slice(None)) + tuple(
            slice(int(np.floor(o[d] * S[d] / outs[d])), int(np.ceil((o[d] + 1) * S[d] / outs[d]))) for d in range(k))
        vals = x[sel].reshape(x.shape[:2] + (-1,))
        idx = (slice(None), slice(None)) + o
        if mode == "max":
            m = vals.max(-1)
            y[idx] = m
            if g is not None:
                mask = vals == m[..., None]
                dx[sel] += (mask * (g[idx] / mask.sum(-1))[..., None]).reshape(x[sel].shape)
        else:
            y[idx] = vals.mean(-1)
            if g is not None:
                dx[sel] += (g[idx] / vals.shape[-1])[(Ellipsis,) + (None,) * k]
    return y if g is None else (y, dx)
