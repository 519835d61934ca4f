"""nn.adam / adamw / rmsprop / adagrad / sgd: 50-step trajectories against torch.optim (float32, 1e-6) and
against a NumPy transcription of PyTorch's update code; the Updates protocol; clipping."""
from __future__ import annotations

import numpy as np
import pytest

import symdiff as sd
import symdiff.nn as nn

CONFIGS = [
    ("sgd", dict(lr=0.05, momentum=0.9, dampening=0.1, weight_decay=0.01)),
    ("sgd", dict(lr=0.05, momentum=0.9, nesterov=True)),
    ("adam", dict(lr=0.01)),
    ("adam", dict(lr=0.01, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1, amsgrad=True)),
    ("adamw", dict(lr=0.01, weight_decay=0.1)),
    ("adamw", dict(lr=0.01, amsgrad=True)),
    ("rmsprop", dict(lr=0.01)),
    ("rmsprop", dict(lr=0.005, alpha=0.9, momentum=0.5, centered=True, weight_decay=0.01)),
    ("adagrad", dict(lr=0.1, lr_decay=0.01, weight_decay=0.01, initial_accumulator_value=0.1)),
]
TORCH_NAMES = {"sgd": "SGD", "adam": "Adam", "adamw": "AdamW", "rmsprop": "RMSprop", "adagrad": "Adagrad"}


def _problem():
    r = np.random.default_rng(0)
    X = r.standard_normal((16, 3)).astype(np.float32)
    Y = (X @ np.array([[1.0, -2.0], [0.5, 0.0], [2.0, 1.0]]) + 0.3).astype(np.float32)
    W0 = (0.1 * r.standard_normal((3, 2))).astype(np.float32)
    b0 = np.zeros(2, np.float32)
    return X, Y, W0, b0


def _symdiff_run(name, kw, steps=50, backend="numpy", clip=None):
    X, Y, W0, b0 = _problem()
    W, b = sd.param("W", (3, 2)), sd.param("b", (2,))
    x, y = sd.input("x", X.shape), sd.input("y", Y.shape)
    loss = sd.mean(sd.square(x @ W + b - y))
    ups = getattr(nn, name)(loss, [W, b], **kw, **(clip or {}))
    names = list(ups)
    f = sd.compile([loss, *ups.values()], backend=backend)
    state = {"W": W0.copy(), "b": b0.copy(), **ups.initial_state()}
    for _ in range(steps):
        out = f(x=X, y=Y, **{k: v for k, v in state.items() if k in f.input_names})
        state.update(dict(zip(names, out[1:])))
    return state


def _torch_run(name, kw, steps=50, clip=None):
    torch = pytest.importorskip("torch")
    X, Y, W0, b0 = _problem()
    W, b = torch.tensor(W0, requires_grad=True), torch.tensor(b0, requires_grad=True)
    opt = getattr(torch.optim, TORCH_NAMES[name])([W, b], **kw)
    for _ in range(steps):
        opt.zero_grad()
        loss = ((torch.tensor(X) @ W + b - torch.tensor(Y)) ** 2).mean()
        loss.backward()
        if clip and "clip_norm" in clip:
            torch.nn.utils.clip_grad_norm_([W, b], clip["clip_norm"])
        if clip and "clip_value" in clip:
            torch.nn.utils.clip_grad_value_([W, b], clip["clip_value"])
        opt.step()
    return {"W": W.detach().numpy(), "b": b.detach().numpy()}


@pytest.mark.parametrize("name,kw", CONFIGS, ids=[f"{c[0]}-{i}" for i, c in enumerate(CONFIGS)])
def test_trajectory_matches_torch_optim(name, kw):
    ours = _symdiff_run(name, kw)
    ref = _torch_run(name, kw)
    # centered RMSprop divides by sqrt(s - a^2), a float32 cancellation: rounding-order differences grow
    # to ~2e-6 over 50 steps (the other optimizers stay within 1e-6)
    tol = 5e-6 if kw.get("centered") else 1e-6
    for k in ("W", "b"):
        np.testing.assert_allclose(ours[k], ref[k], rtol=tol, atol=tol)


@pytest.mark.parametrize("clip", [{"clip_norm": 0.5}, {"clip_value": 0.05}])
def test_clipping_matches_torch_utils(clip):
    ours = _symdiff_run("adam", dict(lr=0.01), clip=clip)
    ref = _torch_run("adam", dict(lr=0.01), clip=clip)
    np.testing.assert_allclose(ours["W"], ref["W"], rtol=1e-6, atol=1e-6)


def test_adam_against_a_numpy_transcription_and_on_llvm():
    """PyTorch's Adam code written out in NumPy (float32), and the same optimizer compiled on llvm."""
    X, Y, W0, b0 = _problem()
    lr, (b1, b2), eps = 0.01, (0.9, 0.999), 1e-8
    P = {"W": W0.copy(), "b": b0.copy()}
    m = {k: np.zeros_like(v) for k, v in P.items()}
    v = {k: np.zeros_like(v) for k, v in P.items()}
    for t in range(1, 51):
        err = X @ P["W"] + P["b"] - Y
        g = {"W": (2 / err.size) * X.T @ err, "b": (2 / err.size) * err.sum(0)}
        for k in P:
            m[k] = b1 * m[k] + (1 - b1) * g[k]
            v[k] = b2 * v[k] + (1 - b2) * g[k] ** 2
            denom = np.sqrt(v[k]) / np.sqrt(1 - b2 ** t) + eps
            P[k] = (P[k] - (lr / (1 - b1 ** t)) * m[k] / denom).astype(np.float32)
    ours = _symdiff_run("adam", dict(lr=lr), backend="llvm")
    for k in P:
        np.testing.assert_allclose(ours[k], P[k], rtol=1e-5, atol=1e-6)


def test_updates_protocol_lists_every_buffer():
    W = sd.param("W", (2, 2))
    loss = sd.sum(sd.square(W))
    ups = nn.adam(loss, [W], amsgrad=True)
    assert set(ups) == {"W", "W__exp_avg", "W__exp_avg_sq", "W__max_exp_avg_sq", "adam__step"}
    init = ups.initial_state()
    assert set(init) == set(ups) - {"W"} and float(init["adam__step"]) == 0.0
    ups = nn.adagrad(loss, [W], initial_accumulator_value=0.5)
    assert np.all(ups.initial_state()["W__sum"] == 0.5)
    with pytest.raises(ValueError, match=r"adam: betas must be in \[0, 1\)"):
        nn.adam(loss, [W], betas=(1.0, 0.9))
    with pytest.raises(ValueError, match="nesterov momentum requires a momentum and zero dampening"):
        nn.sgd(loss, [W], 0.1, nesterov=True)
