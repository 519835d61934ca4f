"""Compiled SGD steps, the Trainer and History."""
import os

import numpy as np
import pytest

import symdiff as sd
import symdiff.nn as nn


def _numpy_sgd(X, T, W, b, steps, lr, momentum, wd, alpha):
    """Linear regression y = X W + b, loss mean((y - T)^2) + alpha ||W||^2, PyTorch-style SGD."""
    vW, vb = np.zeros_like(W), np.zeros_like(b)
    losses = []
    for k in range(steps):
        lr_k = lr(k)
        R = X @ W + b - T
        losses.append(np.mean(R ** 2) + alpha * np.sum(W ** 2))
        gW = 2 * X.T @ R / R.size + 2 * alpha * W + wd * W
        gb = 2 * R.sum(0) / R.size + wd * b
        if momentum:
            vW, vb = momentum * vW + gW, momentum * vb + gb
            gW, gb = vW, vb
        W, b = W - lr_k * gW, b - lr_k * gb
    return W, b, vW, vb, losses


@pytest.mark.parametrize("momentum,wd,lr_input", [(0.0, 0.0, False), (0.9, 0.01, True), (0.5, 0.0, False)])
def test_compiled_sgd_step_matches_numpy(momentum, wd, lr_input):
    rng = np.random.default_rng(0)
    X, T = rng.standard_normal((8, 3)), rng.standard_normal((8, 2))
    x, t = sd.input("x", (8, 3), "float64"), sd.input("t", (8, 2), "float64")
    lin = nn.Linear(3, 2, name="lin", dtype="float64")
    loss = nn.mse(lin(x), t) + nn.l2(lin, 0.05)
    lr = sd.input("lr", (), "float64") if lr_input else 0.1
    schedule = (lambda k: 0.1 * 0.9 ** k) if lr_input else (lambda k: 0.1)
    ups = nn.sgd(loss, lin, lr, momentum=momentum, weight_decay=wd)
    expect_keys = ["lin_W", "lin_b"] + (["lin_W__mom", "lin_b__mom"] if momentum else [])
    assert list(ups) == expect_keys
    step = sd.compile([loss, *ups.values()])
    state = {**lin.init_values(0), **ups.initial_state()}
    state["lin_b"] = rng.standard_normal(2)
    W0, b0 = state["lin_W"].copy(), state["lin_b"].copy()
    losses = []
    for k in range(5):
        feed = {"x": X, "t": T, **state}
        if lr_input:
            feed["lr"] = schedule(k)
        res = step(**{n: feed[n] for n in step.input_names})
        losses.append(float(res[0]))
        state.update(zip(ups.keys(), res[1:]))
    W, b, vW, vb, ref_losses = _numpy_sgd(X, T, W0, b0, 5, schedule, momentum, wd, 0.05)
    np.testing.assert_allclose(losses, ref_losses, rtol=1e-12)
    np.testing.assert_allclose(state["lin_W"], W, rtol=1e-12)
    np.testing.assert_allclose(state["lin_b"], b, rtol=1e-12)
    if momentum:
        np.testing.assert_allclose(state["lin_W__mom"], vW, rtol=1e-12)
        np.testing.assert_allclose(state["lin_b__mom"], vb, rtol=1e-12)


def test_sgd_argument_checks():
    p = sd.param("p", (2,))
    loss = sd.sum(sd.square(p))
    with pytest.raises(TypeError):
        nn.sgd(loss, [p], sd.input("lr", (2,)))
    with pytest.raises(ValueError):
        nn.sgd(loss, [p], 0.1, momentum=1.5)
    with pytest.raises(TypeError):
        nn.sgd(loss, [sd.input("q", (2,))], 0.1)
    assert nn.exponential_decay(1.0, 0.5)(2) == 0.25
    assert nn.step_decay(1.0, 0.1, 10)(15) == pytest.approx(0.1)
    assert nn.cosine_decay(1.0, 10)(10) == pytest.approx(0.0)


def _blobs(n=240, seed=0):
    rng = np.random.default_rng(seed)
    centers = np.array([[2, 0], [-2, 0], [0, 2.5]])
    y = rng.integers(0, 3, n)
    return (centers[y] + rng.standard_normal((n, 2)) * 0.6).astype(np.float32), y


def test_trainer_fits_and_is_reproducible(tmp_path):
    X, y = _blobs()

    def make():
        model = nn.Sequential(nn.Linear(2, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Dropout(0.1), nn.Linear(16, 3),
                              name="clf")
        return nn.Trainer(model, nn.cross_entropy, input_shape=(2,), batch_size=24, lr=nn.exponential_decay(0.1, 0.9),
                          momentum=0.9, regularizer=lambda m: nn.l2(m, 1e-4), seed=3, progress=False)

    tr = make()
    assert {"clf_1_running_mean", "clf_1_running_var", "clf_0_W__mom"} <= set(tr.updates)
    h = tr.fit(X[:200], y[:200], epochs=6, val_data=(X[200:], y[200:]))
    assert len(h) == 6 and h.epoch == list(range(6))
    assert h.loss[-1] < h.loss[0]
    assert h.val_acc[-1] > 0.9 and h.acc[-1] > 0.85
    assert h.lr[1] == pytest.approx(0.09)
    assert all(s > 0 for s in h.samples_per_sec)
    assert not np.allclose(tr.state["clf_1_running_mean"], 0)  # running statistics were updated
    assert tr.global_step == 6 * 9  # 200 samples in batches of 24: 8 full ones and the last partial one (8 rows)
    ev = tr.evaluate(X[200:], y[200:])
    assert ev["acc"] == pytest.approx(h.val_acc[-1])
    pred = tr.predict(X[200:])
    assert pred.shape == (40, 3)
    assert np.mean(pred.argmax(1) == y[200:]) == pytest.approx(ev["acc"])
    # same seed -> identical run (shuffling, init and dropout masks are all seeded)
    h2 = make().fit(X[:200], y[:200], epochs=6)
    np.testing.assert_array_equal(h.loss, h2.loss)
    path = h.plot(str(tmp_path / "hist.png"))
    assert os.path.getsize(path) > 1000
    assert "samples/s" in h.line()


def test_trainer_regression_without_metric():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((64, 3)).astype(np.float32)
    T = (X @ np.array([[1.0], [-2.0], [0.5]]) + 0.3).astype(np.float32)
    tr = nn.Trainer(nn.Linear(3, 1, name="reg"), nn.mse, input_shape=3, batch_size=16, lr=0.1, label_shape=(1,),
                    label_dtype="float32", metric=None, progress=False)
    h = tr.fit(X, T, epochs=30)
    assert h.loss[-1] < 1e-3 and h.acc[-1] is None
    np.testing.assert_allclose(tr.param_values()["reg_W"].ravel(), [1.0, -2.0, 0.5], atol=0.02)
