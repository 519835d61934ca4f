"""Loss-shape safety: every loss rejects a target of the wrong shape (naming both shapes and the fix)
instead of broadcasting; explicit broadcast=True still broadcasts; bce/l1/huber values equal PyTorch's."""
from __future__ import annotations

import numpy as np
import pytest

import symdiff as sd
import symdiff.nn as nn

P = sd.input("p", (64, 1))
Y = sd.input("y", (64,))


@pytest.mark.parametrize("loss", [sd.mse, nn.mse, nn.bce_with_logits, nn.bce, nn.l1_loss, nn.huber])
def test_column_prediction_against_flat_target_is_an_error(loss):
    with pytest.raises(ValueError, match=r"target of shape \(64,\) does not match the prediction of shape \(64, 1\) "
                                         r"\(they would broadcast to \(64, 64\)\); reshape the prediction"):
        loss(P, Y)
    assert loss(P, Y, broadcast=True).shape == ()  # asked for: broadcasting works


def test_flat_prediction_against_column_target_and_scalars():
    with pytest.raises(ValueError, match=r"reshape the target \(y.reshape\(-1\)\)"):
        sd.mse(Y, P)
    assert sd.mse(P, 0.0).shape == ()  # a Python scalar target is fine


@pytest.mark.parametrize("loss", [sd.cross_entropy, nn.cross_entropy, nn.nll])
def test_class_losses_check_labels(loss):
    logits = sd.input("z", (8, 3))
    with pytest.raises(ValueError, match=r"labels of shape \(8, 1\) do not match (logits|log-probabilities) of shape \(8, 3\): expected "
                                         r"labels of shape \(8,\)"):
        loss(logits, sd.input("lab", (8, 1), "int64"))
    with pytest.raises(TypeError, match=r"labels must be an int32/int64 tensor, got float32\[8\] \(class indices"):
        loss(logits, sd.input("labf", (8,), "float32"))


def test_int_targets_for_bce_name_the_trainer_option():
    with pytest.raises(TypeError, match=r"bce_with_logits: targets must be float .*label_dtype='float32'"):
        nn.bce_with_logits(sd.input("z1", (4,)), sd.input("yi", (4,), "int64"))


def test_logistic_regression_trains_with_the_default_labels_and_fails_loudly_with_wrong_ones():
    """The bug report: nn.Linear(64, 1) + bce_with_logits + the Trainer's old default label_shape=() trained to
    nothing (logits (B, 1) broadcast against targets (B,) to (B, B)). Now the Trainer infers float targets
    of shape (1,) from the loss and the output, (n,) labels are reshaped, and an explicit wrong label_shape
    is an error that names the fix."""
    with pytest.raises(ValueError, match=r"bce_with_logits: target of shape \(batch,\) does not match the prediction "
                                         r"of shape \(batch, 1\).*label_shape="):
        nn.Trainer(nn.Linear(64, 1, name="logreg"), nn.bce_with_logits, input_shape=(64,), label_shape=(),
                   progress=False)
    with pytest.raises(ValueError, match=r"target of shape \(32,\) does not match the prediction of shape \(32, 1\)"):
        nn.Trainer(nn.Linear(64, 1, name="logreg"), nn.bce_with_logits, input_shape=(64,), label_shape=(),
                   progress=False, batch_dim=None)  # fixed shapes: the sizes
    r = np.random.default_rng(0)
    X = r.standard_normal((128, 64)).astype(np.float32)
    y = (X[:, 0] > 0).astype(np.float32)  # (n,): reshaped to (n, 1)
    t = nn.Trainer(nn.Linear(64, 1, name="logreg2"), nn.bce_with_logits, input_shape=(64,), lr=0.5,
                   progress=False, compile_options={"backend": "numpy"})
    assert t.label_shape == (1,) and t.label_dtype == "float32"
    h = t.fit(X, y, epochs=10)
    assert h.loss[-1] < 0.5 * h.loss[0] and h.acc[-1] > 0.9  # binary accuracy
    with pytest.raises(ValueError, match=r"fit: labels of shape \(128, 2\) do not match label_shape=\(1,\)"):
        t.fit(X, np.zeros((128, 2)), epochs=1)


def test_bce_l1_huber_values_equal_torch():
    torch = pytest.importorskip("torch")
    r = np.random.default_rng(1)
    pv, tv = r.uniform(0.01, 0.99, (5, 3)), r.uniform(0, 1, (5, 3))
    pv[0, 0] = 0.0  # the log clamp
    p, t = sd.input("pp", (5, 3), "float64"), sd.input("tt", (5, 3), "float64")
    got = sd.compile([nn.bce(p, t), nn.l1_loss(p, t), nn.huber(p * 4.0, t, delta=0.7)], backend="numpy")(pp=pv, tt=tv)
    tp, tt = torch.tensor(pv), torch.tensor(tv)
    want = [torch.nn.functional.binary_cross_entropy(tp, tt), torch.nn.functional.l1_loss(tp, tt),
            torch.nn.functional.huber_loss(tp * 4.0, tt, delta=0.7)]
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w.item(), rtol=1e-12)


def test_regression_trainer_reports_rmse():
    r = np.random.default_rng(2)
    X = r.standard_normal((64, 3)).astype(np.float32)
    y = X @ np.array([[1.0, 0.5], [-1.0, 0.0], [0.5, 2.0]], np.float32)  # (n, 2) vector targets
    t = nn.Trainer(nn.Linear(3, 2, name="reg"), nn.mse, input_shape=(3,), batch_size=16, lr=0.1,
                   progress=False, compile_options={"backend": "numpy"})
    assert t.label_shape == (2,) and t.label_dtype == "float32"
    h = t.fit(X, y, epochs=20, val_data=(X, y))
    assert h.acc[-1] < 0.1 * h.acc[0] and "rmse" in h.line() and "val_rmse" in h.line()
