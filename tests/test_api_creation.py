"""Array creation: linspace with tensor end points (values and gradients on every backend), the constant makers."""
from __future__ import annotations

import numpy as np
import pytest

import symdiff as sd

from conftest import assert_grad_ok

BACKENDS = ["numpy", "llvm", "cuda-cpu"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_linspace_with_tensor_end_points(backend):
    a, b = sd.input("a", (3,), "float64"), sd.input("b", (2, 1), "float64")
    av, bv = np.array([0.0, 1.0, -2.0]), np.array([[5.0], [-1.0]])
    outs = [sd.linspace(a, b, 5), sd.linspace(a, b, 4, endpoint=False, axis=-1), sd.linspace(0.0, b, 3, axis=1)]
    got = sd.compile(outs, backend)(a=av, b=bv)
    want = [np.linspace(av, bv, 5), np.linspace(av, bv, 4, endpoint=False, axis=-1), np.linspace(0.0, bv, 3, axis=1)]
    for g, w in zip(got, want):
        assert g.shape == w.shape
        np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-12)
    assert got[0][-1].tolist() == np.broadcast_to(bv, (2, 3)).tolist()  # the end point is exact


def test_linspace_gradient_and_step():
    a, b = sd.input("a", (), "float64"), sd.input("b", (), "float64")
    y = sd.sum(sd.sin(sd.linspace(a, b, 7)))
    assert_grad_ok(sd.check_grad(y, [a, b], {"a": np.array(0.3), "b": np.array(2.0)}))
    samples, step = sd.linspace(a, b, 5, retstep=True)
    _, s = sd.compile([samples, step], "numpy")(a=np.array(1.0), b=np.array(3.0))
    assert float(s) == 0.5
    assert len(samples) == 5 and len(sd.input("m", (4, 2))) == 4
    with pytest.raises(TypeError, match="0-d"):
        len(a)
    with pytest.raises(ValueError, match="non-negative"):
        sd.linspace(a, b, -1)


def test_constant_makers_match_numpy():
    x = sd.input("x", (2, 3), "float32")
    cases = [(sd.zeros((2, 3)), np.zeros((2, 3))), (sd.ones(4, "float32"), np.ones(4, np.float32)),
             (sd.full((2,), 7.5), np.full((2,), 7.5)), (sd.eye(3, 4, k=1), np.eye(3, 4, 1)),
             (sd.identity(2), np.identity(2)), (sd.arange(5), np.arange(5)), (sd.arange(1.0, 2.0, 0.25), np.arange(1.0, 2.0, 0.25)),
             (sd.zeros_like(x), np.zeros((2, 3), np.float32)), (sd.full_like(x, 2.0), np.full((2, 3), 2.0, np.float32))]
    got = sd.compile([c for c, _ in cases], "numpy")()
    for g, (_, w) in zip(got, cases):
        assert g.dtype == w.dtype and g.shape == w.shape
        np.testing.assert_array_equal(g, w)
    g = sd.grad(sd.sum(x * sd.ones_like(x) + sd.zeros_like(x)), x)
    np.testing.assert_array_equal(sd.compile(g, "numpy")(), np.ones((2, 3)))  # constant: needs no input
    with pytest.raises(ValueError, match="negative dimensions"):
        sd.zeros((2, -1))


@pytest.mark.parametrize("backend", BACKENDS)
def test_triu_tril_zero_non_finite_entries(backend):
    """The zeroed triangle is selected away, not multiplied by 0: inf and nan there give 0, as NumPy."""
    m = sd.input("m", (3, 3), "float64")
    i = sd.input("i", (2, 3), "int64")
    mv = np.array([[1.0, np.inf, 2.0], [np.nan, 3.0, -np.inf], [4.0, np.inf, 5.0]])
    iv = np.arange(6).reshape(2, 3)
    got = sd.compile([sd.triu(m), sd.tril(m, -1), sd.triu(i, 1)], backend)(m=mv, i=iv)
    for g, w in zip(got, [np.triu(mv), np.tril(mv, -1), np.triu(iv, 1)]):
        assert g.dtype == w.dtype
        np.testing.assert_array_equal(g, w)
