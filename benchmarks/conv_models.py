"""The convolution workloads (kind "cnn": W6, LeNet-5 style; kind "conv": W7, one conv layer): seeded data,
the hand-written NumPy forward + backward (a contender, and in float64 the ground truth), and the symdiff
graph. The torch and jax versions are in ``peers.py`` beside the MLP ones.

Layouts are PyTorch's: images (N, C, H, W), conv weights (O, C, K, K), stride 1; dense weights (din, dout)
as in the MLP workloads. A cnn layer is conv + bias -> act -> pool x pool max pool; the pooled features
are flattened in (C, H, W) order into the dense layers. W7: ``loss = sum(y * y) / 2`` for y = conv(x, w)
(no bias), gradients w.r.t. x and w.

Max-pool ties: the pool follows a ReLU, so a window's entries tie only at 0, where the ReLU's derivative
is 0 already: every framework's tie rule gives the same gradient.
"""
from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .workloads import Workload, conv_layers


# --------------------------------------------------------------------------- data
def conv_data(wl: Workload, rng: np.random.Generator) -> dict[str, np.ndarray]:
    dt = np.dtype(wl.dtype)
    B = wl.batch
    if wl.kind == "conv":
        (c,) = conv_layers(wl)
        return {"x": rng.standard_normal((B,) + wl.image).astype(dt),
                "w": (rng.standard_normal((c["cout"], c["cin"], c["k"], c["k"]))
                      / np.sqrt(c["cin"] * c["k"] ** 2)).astype(dt)}
    data = {"x": rng.random((B,) + wl.image).astype(dt),                  # pixel-like in [0, 1)
            "y": rng.integers(0, wl.sizes[-1], size=B).astype(np.int64)}
    for i, c in enumerate(conv_layers(wl)):
        fan_in = c["cin"] * c["k"] ** 2
        data[f"Wc{i + 1}"] = (rng.standard_normal((c["cout"], c["cin"], c["k"], c["k"]))
                              * np.sqrt(2.0 / fan_in)).astype(dt)       # He
        data[f"bc{i + 1}"] = (0.1 * rng.standard_normal(c["cout"])).astype(dt)
    s = wl.sizes
    for i in range(wl.n_layers):
        data[f"W{i + 1}"] = (rng.standard_normal((s[i], s[i + 1])) * np.sqrt(2.0 / s[i])).astype(dt)
        data[f"b{i + 1}"] = (0.1 * rng.standard_normal(s[i + 1])).astype(dt)
    return data


# --------------------------------------------------------------------------- numpy conv, stride 1
def _pad(x: np.ndarray, p: int) -> np.ndarray:
    return np.pad(x, ((0, 0), (0, 0), (p, p), (p, p))) if p else x


def conv2d_fwd(x: np.ndarray, w: np.ndarray, pad: int) -> tuple[np.ndarray, np.ndarray]:
    """y[n, o, i, j] = sum_{c, a, b} w[o, c, a, b] xpad[n, c, i + a, j + b]; also the windows (for dw)."""
    win = sliding_window_view(_pad(x, pad), w.shape[2:], axis=(2, 3))        # (N, C, OH, OW, K, K)
    y = np.tensordot(win, w, axes=([1, 4, 5], [1, 2, 3]))                    # (N, OH, OW, O)
    return np.ascontiguousarray(y.transpose(0, 3, 1, 2)), win


def conv2d_bwd(g: np.ndarray, win: np.ndarray, w: np.ndarray, pad: int, need_dx: bool):
    """(dx or None, dw) of conv2d_fwd for the output gradient g (N, O, OH, OW)."""
    dw = np.tensordot(g, win, axes=([0, 2, 3], [0, 2, 3]))                  # (O, C, K, K)
    if not need_dx:
        return None, dw
    n, c, hp, wp = win.shape[0], win.shape[1], win.shape[2] + w.shape[2] - 1, win.shape[3] + w.shape[3] - 1
    oh, ow = g.shape[2:]
    dxp = np.zeros((n, c, hp, wp), g.dtype)
    for a in range(w.shape[2]):                                             # col2im: one product per offset
        for b in range(w.shape[3]):
            dxp[:, :, a:a + oh, b:b + ow] += np.tensordot(w[:, :, a, b], g, axes=([0], [1])).transpose(1, 0, 2, 3)
    return (dxp[:, :, pad:hp - pad, pad:wp - pad] if pad else dxp), dw


def _pool_fwd(h: np.ndarray, p: int) -> tuple[np.ndarray, np.ndarray]:
    n, c, hh, ww = h.shape
    r = h.reshape(n, c, hh // p, p, ww // p, p)
    m = r.max(axis=(3, 5))
    return m, (r == m[:, :, :, None, :, None])


def _pool_bwd(g: np.ndarray, mask: np.ndarray) -> np.ndarray:
    n, c, oh, p, ow, _ = mask.shape
    return (mask * g[:, :, :, None, :, None]).reshape(n, c, oh * p, ow * p)


def conv_fwd_bwd(wl: Workload, d: dict[str, np.ndarray]) -> list:
    """[loss, *grads] of a conv workload, in the order of ``wl.wrt``."""
    from .reference import cross_entropy_fwd_bwd, mlp_layers_fwd_bwd
    layers = conv_layers(wl)
    if wl.kind == "conv":
        y, win = conv2d_fwd(d["x"], d["w"], layers[0]["pad"])
        loss = (y * y).sum() * 0.5
        dx, dw = conv2d_bwd(y, win, d["w"], layers[0]["pad"], True)        # dloss/dy = y
        return [loss, dx, dw]
    h, saved = d["x"], []
    for i, c in enumerate(layers):
        z, win = conv2d_fwd(h, d[f"Wc{i + 1}"], c["pad"])
        z += d[f"bc{i + 1}"][:, None, None]
        a = np.maximum(z, 0)
        h, mask = _pool_fwd(a, wl.pool)
        saved.append((win, a, mask))
    flat = h.reshape(h.shape[0], -1)
    Ws = [d[f"W{i + 1}"] for i in range(wl.n_layers)]
    bs = [d[f"b{i + 1}"] for i in range(wl.n_layers)]
    loss, dense_grads, dflat = mlp_layers_fwd_bwd(flat, Ws, bs, lambda z: cross_entropy_fwd_bwd(z, d["y"]))
    g = dflat.reshape(h.shape)
    conv_grads: list = [None] * (2 * len(layers))
    for i in reversed(range(len(layers))):
        win, a, mask = saved[i]
        dz = _pool_bwd(g, mask) * (a > 0)
        g, dw = conv2d_bwd(dz, win, d[f"Wc{i + 1}"], layers[i]["pad"], i > 0)
        conv_grads[2 * i], conv_grads[2 * i + 1] = dw, dz.sum(axis=(0, 2, 3))
    return [loss, *conv_grads, *dense_grads]


# --------------------------------------------------------------------------- symdiff graph
def build_symdiff_conv(wl: Workload, sd) -> tuple[object, list, dict]:
    """(loss, wrt, info) with the public DSL: sd.conv2d, a 2x2 max pool as a max over a reshape (or
    sd.max_pool2d when the library has it), dense layers as in the MLP workloads."""
    info: dict = {}
    layers = conv_layers(wl)
    B, dt = wl.batch, wl.dtype
    x = sd.input("x", (B,) + wl.image, dtype=dt)
    if wl.kind == "conv":
        c = layers[0]
        w = sd.param("w", (c["cout"], c["cin"], c["k"], c["k"]), dtype=dt)
        y = sd.conv2d(x, w, padding=c["pad"])
        return sd.sum(y * y) * 0.5, [x, w], info
    y = sd.input("y", (B,), dtype="int64")
    params, h = [], x
    for i, c in enumerate(layers):
        W = sd.param(f"Wc{i + 1}", (c["cout"], c["cin"], c["k"], c["k"]), dtype=dt)
        b = sd.param(f"bc{i + 1}", (c["cout"],), dtype=dt)
        params += [W, b]
        h = sd.relu(sd.conv2d(h, W, b, padding=c["pad"]))
        p = wl.pool
        n, ch, hh, ww = h.shape
        h = sd.max(sd.reshape(h, (n, ch, hh // p, p, ww // p, p)), axis=(3, 5))
    h = sd.reshape(h, (B, -1))
    s = wl.sizes
    for i in range(wl.n_layers):
        W = sd.param(f"W{i + 1}", (s[i], s[i + 1]), dtype=dt)
        b = sd.param(f"b{i + 1}", (s[i + 1],), dtype=dt)
        params += [W, b]
        h = h @ W + b
        if i < wl.n_layers - 1:
            h = sd.relu(h)
    info["pool"] = "max over a (N, C, H/2, 2, W/2, 2) reshape"
    return sd.cross_entropy(h, y), params, info
