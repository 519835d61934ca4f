"""rand_uniform (counter-based RNG op) and dropout masks."""
import numpy as np
import pytest

import symdiff as sd
import symdiff.nn as nn
from symdiff.ops_random import rand_uniform, rand_uniform_np

from conftest import hash_uniform_reference as reference

@pytest.mark.parametrize("seed,step,stream", [(0, 0, 0), (1, 2, 0), (12345, 678, 3), (-1, 2**31 + 5, 0),
                                              (2**40 + 7, -3, 0xDEADBEEF)])
def test_numpy_matches_python_int_reference(seed, step, stream):
    ref = np.array(reference(seed, step, 257, stream))
    for dt in ("float32", "float64"):
        got = rand_uniform_np(np.int64(seed), np.int64(step), (257,), dt, stream)
        assert got.dtype == dt
        np.testing.assert_array_equal(got.astype(np.float64), ref)  # exact: (x >> 8) * 2**-24


def test_compiled_op_matches_reference_and_shape():
    s, t = sd.input("s", (), "int64"), sd.input("t", (), "int32")
    f = sd.compile(rand_uniform(s, t, (3, 5), "float32", stream=9))
    u = f(s=42, t=7)
    assert u.shape == (3, 5) and u.dtype == np.float32
    np.testing.assert_array_equal(u.reshape(-1), np.array(reference(42, 7, 15, 9), np.float32))
    assert np.all((u >= 0) & (u < 1))


def test_statistics_uniform():
    u = rand_uniform_np(3, 4, (200_000,), "float64")
    assert abs(u.mean() - 0.5) < 0.005
    assert abs(u.var() - 1 / 12) < 0.002
    hist = np.histogram(u, bins=10, range=(0, 1))[0] / u.size
    assert np.all(np.abs(hist - 0.1) < 0.005)
    v = rand_uniform_np(3, 5, (200_000,), "float64")  # next step: uncorrelated
    assert abs(np.corrcoef(u, v)[0, 1]) < 0.01
    assert abs(np.corrcoef(u[:-1], u[1:])[0, 1]) < 0.01


def test_rand_uniform_checks_and_not_differentiable():
    x = sd.input("x", (), "float32")
    with pytest.raises(TypeError, match="int32/int64 scalar"):
        rand_uniform(x, 0, (2,))
    with pytest.raises(TypeError, match="int32/int64 scalar"):
        rand_uniform(sd.input("v", (2,), "int64"), 0, (2,))
    s = sd.input("s", (), "int64")
    u = rand_uniform(s, 0, (4,), "float64")
    w = sd.input("w", (4,), "float64")
    g = sd.grad(sd.sum(u * w), w)  # fine: u is a constant for w
    np.testing.assert_array_equal(sd.compile(g)(s=5), rand_uniform_np(5, 0, (4,), "float64"))


def _dropout_graph(p=0.3, shape=(64, 32)):
    x = sd.input("x", shape, "float32")
    r = sd.input("r", shape, "float32")
    drop = nn.Dropout(p, name="drop")
    y = drop(x)
    loss = sd.sum(y * r)
    return x, r, drop, y, loss


def test_dropout_reproducible_and_changes_with_step():
    x, r, drop, y, loss = _dropout_graph()
    f = sd.compile(y)
    xv = np.ones(x.shape, np.float32)
    a = f(x=xv, rng_seed=1, rng_step=0)
    b = f(x=xv, rng_seed=1, rng_step=0)
    c = f(x=xv, rng_seed=1, rng_step=1)
    d = f(x=xv, rng_seed=2, rng_step=0)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a != 0, c != 0)
    assert not np.array_equal(a != 0, d != 0)
    assert set(np.unique(a)) <= {0.0, np.float32(1 / 0.7)}  # inverted dropout scaling
    assert abs(np.mean(a == 0) - 0.3) < 0.03
    # the exact mask: keep where u >= p
    u = rand_uniform_np(1, 0, x.shape, "float32", drop.stream)
    np.testing.assert_array_equal(a != 0, u >= np.float32(0.3))


def test_dropout_mask_same_in_forward_and_backward():
    x, r, drop, y, loss = _dropout_graph(p=0.5)
    g = sd.grad(loss, x)
    rng = np.random.default_rng(0)
    xv = rng.standard_normal(x.shape).astype(np.float32)
    rv = rng.standard_normal(x.shape).astype(np.float32)
    for step in range(3):
        yv, gv = sd.compile([y, g])(x=xv, r=rv, rng_seed=7, rng_step=step)
        dropped = yv == 0
        assert 0.4 < dropped.mean() < 0.6
        np.testing.assert_array_equal(gv == 0, dropped)  # zero gradient exactly where dropped
        np.testing.assert_allclose(gv[~dropped], 2 * rv[~dropped], rtol=1e-6)
        g_alone = sd.compile(g)(r=rv, rng_seed=7, rng_step=step)  # a separate kernel recomputes the same mask
        np.testing.assert_array_equal(g_alone, gv)


def test_two_dropout_layers_have_independent_masks_and_eval_is_identity():
    x = sd.input("x", (50, 40), "float32")
    model = nn.Sequential(nn.Dropout(0.5), nn.Identity(), nn.Dropout(0.5), name="net")
    a, b = model[0], model[2]
    assert a.stream != b.stream
    ya = sd.compile(a(x))(x=np.ones(x.shape, np.float32), rng_seed=0, rng_step=0)
    yb = sd.compile(b(x))(x=np.ones(x.shape, np.float32), rng_seed=0, rng_step=0)
    assert np.mean((ya == 0) == (yb == 0)) < 0.6
    model.eval()
    assert model(x) is x
    assert nn.Dropout(0.0)(x) is x
    with pytest.raises(ValueError):
        nn.Dropout(1.0)


def test_dropout_check_grad():
    x = sd.input("x", (3, 4), "float64")
    w = sd.param("w", (4,), "float64")
    y = nn.dropout(x * w, 0.4)
    loss = sd.sum(sd.tanh(y))
    rng = np.random.default_rng(1)
    vals = {"x": rng.standard_normal((3, 4)), "w": rng.standard_normal(4), "rng_seed": 3, "rng_step": 11}
    sd.check_grad(loss, [x, w], vals, raise_on_failure=True)


def test_same_numbers_and_masks_on_the_llvm_backend():
    """The renderers implement the documented formula: bit-identical numbers, masks and gradients.
    (llvm is the default backend: this test runs, it is never skipped.)"""
    s, t = sd.input("s", (), "int64"), sd.input("t", (), "int32")
    u = rand_uniform(s, t, (7, 33), "float64", stream=0xDEADBEEF)
    for seed, step in ((0, 0), (-5, 2**31 - 1)):
        np.testing.assert_array_equal(sd.compile(u, backend="llvm")(s=seed, t=step),
                                      sd.compile(u, backend="numpy")(s=seed, t=step))
    x, r, drop, y, loss = _dropout_graph(p=0.3)
    g = sd.grad(loss, x)
    rng = np.random.default_rng(0)
    feed = {"x": rng.standard_normal(x.shape).astype(np.float32), "r": rng.standard_normal(x.shape).astype(np.float32),
            "rng_seed": 3, "rng_step": 9}
    a = sd.compile([y, g], backend="numpy")(**feed)
    f = sd.compile([y, g], backend="llvm")
    assert f.backend == "llvm"
    b = f(**feed)
    assert len(a) == len(b) == 2 and 0 < np.mean(a[0] == 0) < 1  # some, not all, entries dropped
    for p, q in zip(a, b):
        np.testing.assert_array_equal(p, q)
