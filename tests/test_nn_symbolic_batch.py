"""The nn modules and the Trainer with a symbolic batch dimension (docs/symbolic_dims.md, issue 15): modules
agree with fixed-shape graphs at every batch size, one compiled training and one evaluation function serve a
whole fit (the last partial batch kept), and the parameters equal a manual loop over the batches."""
from __future__ import annotations

import re
import types

import numpy as np
import pytest

import symdiff as sd
from symdiff import nn
from symdiff.backends import get_backend
from symdiff.nn import trainer as trainer_mod

F64 = "float64"
NUMPY = {"backend": "numpy"}


# -- modules: a symbolic batch gives what a fixed-shape graph gives, at sizes 1, 2 and 7 ---------------------------
def _mlp(p_drop: float = 0.3):
    return nn.Sequential(nn.Linear(4, 6, dtype=F64), nn.BatchNorm1d(6, dtype=F64), nn.ReLU(), nn.Dropout(p_drop),
                         nn.Linear(6, 3, dtype=F64), name="mlp")


def _convnet():
    return nn.Sequential(nn.Conv2d(1, 2, 3, padding=1, dtype=F64), nn.BatchNorm2d(2, dtype=F64), nn.ReLU(),
                         nn.Dropout2d(0.25), nn.MaxPool2d(2), nn.AvgPool2d(2), nn.Flatten(),
                         nn.Linear(8, 3, dtype=F64), name="cnn")


def _conv1d():
    return nn.Sequential(nn.Conv1d(2, 2, 3, dtype=F64), nn.Tanh(), nn.Flatten(), nn.Linear(8, 2, dtype=F64),
                         name="c1d")


def _logsoftmax():
    return nn.Sequential(nn.Linear(4, 3, dtype=F64), nn.LogSoftmax(), name="lsm")


# (model builder, sample shape, loss, label shape per sample, label dtype)
MODULE_CASES = {
    "linear-bn-dropout/cross_entropy": (_mlp, (4,), nn.cross_entropy, (), "int64"),
    "conv-bn2d-dropout2d-pools-flatten/cross_entropy": (_convnet, (1, 8, 8), nn.cross_entropy, (), "int64"),
    "conv1d/mse": (_conv1d, (2, 6), nn.mse, (2,), F64),
    "conv1d/huber": (_conv1d, (2, 6), nn.huber, (2,), F64),
    "conv1d/l1_loss": (_conv1d, (2, 6), nn.l1_loss, (2,), F64),
    "linear-bn/bce_with_logits": (_mlp, (4,), nn.bce_with_logits, (3,), F64),
    "logsoftmax/nll": (_logsoftmax, (4,), nn.nll, (), "int64"),
}


def _train_graph(model, rows, sample, loss_fn, label_shape, label_dtype):
    """[loss, outputs, *d loss / d params, *new running statistics] for a batch of ``rows`` (a name or an int)."""
    model.train()
    x = sd.input("x", (rows,) + sample, F64)
    out = model(x)
    loss = loss_fn(out, sd.input("y", (rows,) + label_shape, label_dtype))
    return [loss, out, *sd.grad(loss, model.params()), *model.state_updates().values()]


def _labels(rng, n, label_shape, label_dtype):
    if label_dtype == "int64":
        return rng.integers(0, 3, (n,) + label_shape)
    return rng.uniform(0, 1, (n,) + label_shape)


@pytest.mark.parametrize("case", list(MODULE_CASES))
def test_modules_with_a_symbolic_batch_match_fixed_shapes_at_every_size(case):
    build, sample, loss_fn, label_shape, label_dtype = MODULE_CASES[case]
    model = build()
    sym = sd.compile(_train_graph(model, "batch", sample, loss_fn, label_shape, label_dtype), "numpy")
    values = model.init_values(0)
    rng = np.random.default_rng(5)
    for n in (1, 2, 7):
        fixed = sd.compile(_train_graph(model, n, sample, loss_fn, label_shape, label_dtype), "numpy")
        feed = {**values, "x": rng.standard_normal((n,) + sample), "y": _labels(rng, n, label_shape, label_dtype),
                "rng_seed": np.int64(3), "rng_step": np.int64(n)}
        want = fixed(**{k: feed[k] for k in fixed.input_names})
        got = sym(**{k: feed[k] for k in sym.input_names})
        assert len(got) == len(want)
        for i, (g, w) in enumerate(zip(got, want)):
            assert g.shape == w.shape, (case, n, i)
            np.testing.assert_allclose(g, w, rtol=1e-10, atol=1e-12, err_msg=f"{case}, batch {n}, output {i}")


# -- the Trainer ---------------------------------------------------------------------------------------------------
def _data(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    return rng.standard_normal((n, 4)) + y[:, None], y


def _trainer(model=None, **kw):
    opts = dict(input_shape=(4,), batch_size=16, lr=0.1, momentum=0.9, dtype=F64, seed=2, progress=False,
                compile_options=NUMPY)
    opts.update(kw)
    return nn.Trainer(_mlp() if model is None else model, nn.cross_entropy, **opts)


def _record_batches(tr):
    """Wrap ``tr.step`` to record the batches it trains on."""
    seen, step = [], tr.step

    def recording(xb, yb, lr=None):
        seen.append(xb.copy())
        return step(xb, yb, lr)

    tr.step = recording
    return seen


def test_one_train_and_one_eval_compile_for_a_fit_with_a_partial_batch_and_an_odd_validation_set(monkeypatch):
    calls = []
    real = trainer_mod._compile
    monkeypatch.setattr(trainer_mod, "_compile", lambda *a, **k: calls.append(1) or real(*a, **k))
    X, y = _data(50)
    Xv, yv = _data(37, 1)
    tr = _trainer()
    tr.fit(X, y, epochs=2, val_data=(Xv, yv))  # batches 16, 16, 16, 2; validation chunks 16, 16, 5
    tr.evaluate(Xv[:3], yv[:3])
    assert tr.compiles == {"train": 1, "eval": 1}
    assert len(calls) == 2  # sd.compile itself ran once for training, once for evaluation
    assert tr.step_fn.signature.leaves[tr.step_fn.input_names.index("x")].shape[0] == sd.dims.dim("batch")


def test_every_sample_is_used_each_epoch_and_the_parameters_equal_a_manual_loop():
    X, y = _data(50)
    tr = _trainer()
    seen = _record_batches(tr)
    epochs = 2
    h = tr.fit(X, y, epochs=epochs)
    assert [len(b) for b in seen] == [16, 16, 16, 2] * epochs and tr.global_step == 4 * epochs
    for e in range(epochs):  # each epoch is a permutation of the training set
        rows = np.concatenate(seen[4 * e:4 * e + 4])
        np.testing.assert_array_equal(np.sort(rows[:, 0]), np.sort(X[:, 0]))

    # the same steps by hand: fixed-shape graphs of each batch size, the Trainer's shuffling and rng inputs
    model = _mlp()
    graphs, state, step, losses = {}, None, 0, []
    for e in range(epochs):
        order = np.random.default_rng([2, e]).permutation(50)
        ep = []
        for k in range(4):
            idx = order[16 * k:16 * (k + 1)]
            n = len(idx)
            if n not in graphs:
                model.train()
                out = model(sd.input("x", (n, 4), F64))
                loss = nn.cross_entropy(out, sd.input("y", (n,), "int64"))
                ups = nn.sgd(loss, model.params(), sd.input("lr", (), F64), momentum=0.9)
                ups.update(model.state_updates())
                graphs[n] = (sd.compile([loss, *ups.values()], "numpy"), list(ups))
                if state is None:
                    state = {**model.init_values(2), **ups.initial_state()}
            fn, names = graphs[n]
            feed = {**state, "x": X[idx], "y": y[idx], "lr": np.float64(0.1), "rng_seed": np.int64(2),
                    "rng_step": np.int64(step)}
            loss, *new = fn(**{k: feed[k] for k in fn.input_names})
            state.update(zip(names, new))
            ep.append((float(loss), n))
            step += 1
        losses.append(sum(v * n for v, n in ep) / 50)  # the epoch mean weights each batch by its rows
    assert set(state) == set(tr.state)
    for k, v in state.items():
        np.testing.assert_allclose(tr.state[k], v, rtol=1e-9, atol=1e-12, err_msg=k)
    np.testing.assert_allclose(h.loss, losses, rtol=1e-9)


def test_evaluate_an_odd_validation_set_in_chunks_equals_one_full_batch_evaluation():
    X, y = _data(50)
    Xv, yv = _data(37, 1)
    tr = _trainer()
    tr.fit(X, y, epochs=2)
    ev = tr.evaluate(Xv, yv)  # chunks of 16, 16, 5
    pred = tr.predict(Xv)
    # the whole validation set in one fixed-shape evaluation-mode graph
    model = tr.model
    model.eval()
    out = model(sd.input("x", (37, 4), F64))
    full = sd.compile([nn.cross_entropy(out, sd.input("y", (37,), "int64")), out], "numpy")
    model.train()
    loss, outs = full(**{k: {"x": Xv, "y": yv}.get(k, tr.state.get(k)) for k in full.input_names})
    assert ev["loss"] == pytest.approx(float(loss), rel=1e-12)
    np.testing.assert_allclose(pred, outs, rtol=1e-12)
    assert ev["acc"] == np.mean(outs.argmax(1) == yv)
    assert tr.compiles == {"train": 1, "eval": 2}  # evaluate (with labels) and predict (without)


def test_epoch_means_weight_each_batch_by_its_size():
    X, y = _data(20)
    tr = _trainer(nn.Sequential(nn.Linear(4, 3, dtype=F64), name="lin"), batch_size=8, lr=0.0, momentum=0.0)
    losses, step = [], tr.step

    def recording(xb, yb, lr=None):
        loss, out = step(xb, yb, lr)
        losses.append((loss, np.mean(out.argmax(1) == yb), len(xb)))
        return loss, out

    tr.step = recording
    h = tr.fit(X, y, epochs=1)
    assert [n for *_, n in losses] == [8, 8, 4]
    assert h.loss[0] == pytest.approx(sum(v * n for v, _, n in losses) / 20, rel=1e-12)
    assert h.acc[0] == pytest.approx(sum(a * n for _, a, n in losses) / 20, rel=1e-12)
    # lr = 0: the parameters do not move, so the epoch's mean is the full-batch loss
    assert h.loss[0] == pytest.approx(tr.evaluate(X, y)["loss"], rel=1e-12)


def test_drop_last_drops_the_partial_batch():
    X, y = _data(50)
    tr = _trainer(drop_last=True)
    seen = _record_batches(tr)
    tr.fit(X, y, epochs=2)
    assert [len(b) for b in seen] == [16] * 6
    with pytest.raises(ValueError, match="fewer than one batch of 16.*drop_last=True"):
        tr.fit(X[:10], y[:10])
    assert _trainer().fit(X[:10], y[:10], epochs=1).epoch == [0]  # one partial batch of 10


def test_batch_dim_none_builds_fixed_shapes_and_trains_the_same():
    X, y = _data(50)
    Xv, yv = _data(37, 1)
    fixed, sym = _trainer(batch_dim=None), _trainer()
    x_leaf = fixed.step_fn.signature.leaves[fixed.step_fn.input_names.index("x")]
    assert x_leaf.shape == (16, 4)
    hf = fixed.fit(X, y, epochs=2, val_data=(Xv, yv))
    hs = sym.fit(X, y, epochs=2, val_data=(Xv, yv))
    assert fixed.compiles == {"train": 2, "eval": 2}  # batches of 16 and 2; evaluation chunks of 16 and 5
    for k, v in sym.state.items():
        np.testing.assert_allclose(fixed.state[k], v, rtol=1e-9, atol=1e-12, err_msg=k)
    np.testing.assert_allclose(hf.val_loss, hs.val_loss, rtol=1e-9)
    with pytest.raises(ValueError, match="batch_dim must be a name"):
        _trainer(batch_dim="2 rows")


def test_history_lines_keep_their_format():
    X, y = _data(50)
    Xv, yv = _data(37, 1)
    h = _trainer().fit(X, y, epochs=1, val_data=(Xv, yv))
    assert re.fullmatch(r"epoch 0: loss \d+\.\d{4} acc \d\.\d{4} val_loss \d+\.\d{4} val_acc \d\.\d{4} lr 0\.1 "
                        r"\d+ samples/s", h.line()), h.line()


def test_a_client_refuses_a_last_batch_smaller_than_its_shard_count():
    X, y = _data(50)
    tr = _trainer(nn.Sequential(nn.Linear(4, 3, dtype=F64), name="lin"))
    tr.parallel = types.SimpleNamespace(dp=types.SimpleNamespace(shards=4))  # what fit reads of a ParallelStep
    with pytest.raises(ValueError, match="last batch has 2 rows.*4 shards.*drop_last=True"):
        tr.fit(X, y, epochs=1)
    tr.parallel = None


# -- llvm: one compile per distinct size today, one compile once the backend takes runtime sizes ------------------
LLVM_SYMBOLIC = getattr(get_backend("llvm"), "symbolic_dims", False)


def _llvm_fit():
    X, y = _data(20)
    Xv, yv = _data(11, 1)
    model = nn.Sequential(nn.Linear(4, 3, dtype="float32"), name="lin32")
    tr = nn.Trainer(model, nn.cross_entropy, input_shape=(4,), batch_size=8, lr=0.1, seed=0, progress=False,
                    compile_options={"backend": "llvm"})
    tr.fit(X, y, epochs=2, val_data=(Xv, yv))  # batches of 8, 8, 4; validation chunks of 8 and 3
    return tr


def test_llvm_compiles_at_most_once_per_distinct_batch_size():
    tr = _llvm_fit()
    first = tr.compiles
    assert 1 <= first["train"] <= 2 and 1 <= first["eval"] <= 2
    tr.fit(*_data(20), epochs=1, val_data=_data(11, 1))
    assert tr.compiles == first  # sizes seen before reuse their compile
    assert tr.history.loss[-1] < tr.history.loss[0]


@pytest.mark.skipif(not LLVM_SYMBOLIC, reason="the llvm Backend does not take runtime sizes yet "
                                              "(symbolic_dims=False: one compile per distinct size)")
def test_llvm_compiles_once_for_every_batch_size():
    assert _llvm_fit().compiles == {"train": 1, "eval": 1}
