"""Hand-written NumPy forward + backward pass for every workload.

This is both a contender ("numpy", run in the workload's dtype) and the ground truth for the
gradient check (the same code run on the inputs upcast to float64).

Conventions match the symdiff API: ``cross_entropy(logits, y)`` is the mean over rows of the
negative log-likelihood of a softmax; ``mse(pred, target)`` is the mean over all elements of
(pred - target)^2.  Everything stays in the input dtype (NumPy 2 / NEP 50: Python scalars are weak).
"""
from __future__ import annotations

import numpy as np

from .workloads import Workload


# --------------------------------------------------------------------------- losses
def cross_entropy_fwd_bwd(logits: np.ndarray, y: np.ndarray):
    """Mean softmax cross-entropy and d(loss)/d(logits), via a stable log-softmax."""
    B = logits.shape[0]
    shifted = logits - logits.max(axis=1, keepdims=True)
    lse = np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    logp = shifted - lse
    rows = np.arange(B)
    loss = -logp[rows, y].sum() * (1.0 / B)
    dlogits = np.exp(logp)                   # softmax
    dlogits[rows, y] -= 1.0
    dlogits *= 1.0 / B
    return loss, dlogits


def mse_fwd_bwd(pred: np.ndarray, target: np.ndarray):
    diff = pred - target
    inv_n = 1.0 / diff.size
    loss = (diff * diff).sum() * inv_n
    return loss, diff * (2.0 * inv_n)


# --------------------------------------------------------------------------- MLP
def mlp_layers_fwd_bwd(x: np.ndarray, Ws: list, bs: list, loss_fwd_bwd, relu: bool = True,
                       need_dx: bool = True) -> tuple:
    """Dense layers ``h = act(h @ W + b)`` (no act after the last), then ``loss_fwd_bwd(logits) ->
    (loss, dlogits)``; returns (loss, [dW1, db1, ...], dx or None)."""
    L = len(Ws)
    # forward: keep each layer's input activation (for dW) and hidden output (for act')
    acts = [x]
    h = x
    for i in range(L):
        z = h @ Ws[i]
        z += bs[i]
        if i < L - 1:
            h = np.maximum(z, 0) if relu else np.tanh(z)
            acts.append(h)
        else:
            h = z
    loss, dz = loss_fwd_bwd(h)

    # backward
    grads: list = [None] * (2 * L)
    for i in reversed(range(L)):
        grads[2 * i] = acts[i].T @ dz             # dW_i
        grads[2 * i + 1] = dz.sum(axis=0)         # db_i
        if i > 0 or need_dx:
            da = dz @ Ws[i].T
            if i == 0:
                return loss, grads, da
            a = acts[i]                           # output of hidden layer i-1
            if relu:
                dz = da * (a > 0)
            else:
                dz = da * (1 - a * a)             # tanh' = 1 - tanh^2
    return loss, grads, None


def mlp_fwd_bwd(wl: Workload, d: dict[str, np.ndarray]) -> list:
    """[loss, dW1, db1, dW2, db2, ...] for the MLP workloads."""
    L = wl.n_layers
    Ws = [d[f"W{i + 1}"] for i in range(L)]
    bs = [d[f"b{i + 1}"] for i in range(L)]
    if wl.loss == "ce":
        loss_fn = lambda h: cross_entropy_fwd_bwd(h, d["y"])  # noqa: E731
    else:
        loss_fn = lambda h: mse_fwd_bwd(h, d["y"])  # noqa: E731
    loss, grads, _ = mlp_layers_fwd_bwd(d["x"], Ws, bs, loss_fn, wl.act == "relu", need_dx=False)
    return [loss, *grads]


# --------------------------------------------------------------------------- W4
def elementwise_fwd_bwd(d: dict[str, np.ndarray]) -> list:
    """loss = sum(log(1+exp(sin(x)cos(y))) + tanh(xy)^2); returns [loss, dx, dy].

    d softplus(u)/du = sigmoid(u) = e/(1+e);  d tanh(v)^2/dv = 2 t (1 - t^2).
    u = sin(x) cos(y) lies in [-1, 1], so exp(u) cannot overflow.
    """
    x, y = d["x"], d["y"]
    sx, cy = np.sin(x), np.cos(y)
    e = np.exp(sx * cy)
    t = np.tanh(x * y)
    loss = np.log1p(e).sum() + (t * t).sum()
    sig = e / (1 + e)
    g = 2 * t * (1 - t * t)                       # d tanh^2 / d(xy)
    dx = sig * np.cos(x) * cy + g * y
    dy = -(sig * sx * np.sin(y)) + g * x
    return [loss, dx, dy]


def fwd_bwd(wl: Workload, d: dict[str, np.ndarray]) -> list:
    if wl.kind in ("cnn", "conv"):
        from .conv_models import conv_fwd_bwd
        return conv_fwd_bwd(wl, d)
    return elementwise_fwd_bwd(d) if wl.kind == "elementwise" else mlp_fwd_bwd(wl, d)


# --------------------------------------------------------------------------- gradient check
TOLERANCE = {"float32": 2e-4, "float64": 1e-9}


def compare(wl: Workload, got: list, truth: list, tol: float | None = None) -> dict:
    """Compare [loss, *grads] with the float64 ground truth.

    Error per output = max|got - truth| / max(max|truth|, tiny)  (normalised max-abs error).
    Gradients must have exactly the reference shape; the loss may be any size-1 array.
    """
    tol = TOLERANCE[wl.dtype] if tol is None else tol
    res = {"ok": True, "tol": tol, "max_err": 0.0, "errors": {}, "problems": []}
    if len(got) != len(truth):
        res.update(ok=False)
        res["problems"].append(f"{len(got)} outputs, expected {len(truth)}")
        return res
    for name, g, t in zip(wl.output_names, got, truth):
        g = np.asarray(g)
        t = np.asarray(t)
        if name == "loss":
            if g.size != 1:
                res["problems"].append(f"loss has shape {g.shape}")
                res["ok"] = False
                continue
            g, t = g.reshape(()), t.reshape(())
        elif g.shape != t.shape:
            res["problems"].append(f"{name}: shape {g.shape}, expected {t.shape}")
            res["ok"] = False
            continue
        if g.dtype != np.dtype(wl.dtype):
            res["problems"].append(f"{name}: dtype {g.dtype} (workload is {wl.dtype})")
        g64 = g.astype(np.float64)
        if not np.all(np.isfinite(g64)):
            res["problems"].append(f"{name}: non-finite values")
            res["ok"] = False
            res["errors"][name] = float("inf")
            continue
        scale = max(float(np.max(np.abs(t))), 1e-30)
        err = float(np.max(np.abs(g64 - t))) / scale
        res["errors"][name] = err
        res["max_err"] = max(res["max_err"], err)
        if err > tol:
            res["ok"] = False
    if not res["ok"] and not res["problems"]:
        worst = max(res["errors"], key=res["errors"].get)
        res["problems"].append(f"{worst}: error {res['errors'][worst]:.2e} > tol {tol:.0e}")
    return res
