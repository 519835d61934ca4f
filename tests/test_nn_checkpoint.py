"""Trainer checkpoints: 3 epochs, save, load in a new process, 2 more epochs equals 5 epochs straight, bit for
bit (Adam state, batch-norm buffers, dropout steps, shuffling); early stopping keeps the best state."""
from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np

import symdiff.nn as nn

SETUP = textwrap.dedent("""
    import numpy as np
    import symdiff.nn as nn
    r = np.random.default_rng(0)
    X = r.standard_normal((96, 6)).astype(np.float32)
    y = (X[:, 0] - X[:, 1] > 0).astype(np.int64)
    def trainer():
        model = nn.Sequential(nn.Linear(6, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Dropout(0.2), nn.Linear(16, 2),
                              name="ck")
        return nn.Trainer(model, input_shape=(6,), batch_size=16, lr=nn.StepLR(0.01, 2, 0.5), optimizer="adam",
                          progress=False, compile_options={"backend": "numpy"})
""")


def test_resume_in_a_new_process_is_bit_identical(tmp_path):
    ns: dict = {}
    exec(SETUP, ns)  # noqa: S102 - the shared set-up of both processes
    straight = ns["trainer"]()
    straight.fit(ns["X"], ns["y"], epochs=5)
    first = ns["trainer"]()
    first.fit(ns["X"], ns["y"], epochs=3)
    ck = tmp_path / "ck.npz"
    first.save(ck)
    out = tmp_path / "resumed.npz"
    script = SETUP + textwrap.dedent(f"""
        t = trainer().load({str(ck)!r})
        t.fit(X, y, epochs=2)
        np.savez({str(out)!r}, **t.state)
        assert t.epochs_done == 5 and len(t.history.loss) == 5
    """)
    subprocess.run([sys.executable, "-c", script], check=True, timeout=300)
    with np.load(out) as f:
        resumed = {k: f[k] for k in f.files}
    assert set(resumed) == set(straight.state)
    for k, v in straight.state.items():
        np.testing.assert_array_equal(resumed[k], v, err_msg=k)


def test_early_stopping_restores_the_best_epoch():
    ns: dict = {}
    exec(SETUP, ns)  # noqa: S102
    t = ns["trainer"]()
    X, y = ns["X"], ns["y"]
    h = t.fit(X[:64], y[:64], epochs=40, val_data=(X[64:], y[64:]), patience=2)
    assert len(h.loss) < 40 and t.stopped_epoch == len(h.loss) - 1
    best = int(np.argmin(h.val_loss))
    assert abs(t.evaluate(X[64:], y[64:])["loss"] - h.val_loss[best]) < 1e-6
