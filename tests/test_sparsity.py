"""sd.jacobian_sparsity (structural pattern, against the nonzeros of dense Jacobians at random points) and
sd.sparse_jacobian (column compression by colouring, against the dense Jacobian)."""
from __future__ import annotations

import numpy as np
import pytest

import symdiff as sd

pytest.importorskip("scipy")


def _banded(n):
    x = sd.input("x", (n,), "float64")
    # a tridiagonal system (discretised -u'' + u^3) plus a boundary term: bandwidth 3
    inner = 2.0 * x[1:-1] - x[:-2] - x[2:] + x[1:-1] ** 3
    return x, sd.concatenate([x[:1] - 1.0, inner, sd.exp(x[-1:])])


def _graphs():
    x, y = _banded(9)
    yield "banded", x, y
    X = sd.input("X", (1, 2, 5, 5), "float64")
    w = sd.const(np.random.default_rng(0).standard_normal((2, 2, 3, 3)), "float64")
    yield "conv", X, sd.tanh(sd.conv2d(X, w, padding=1, stride=(1, 2)))
    z = sd.input("z", (3, 4), "float64")
    yield "softmax-matmul", z, sd.softmax(z, axis=1) @ sd.const(np.ones((4, 2)), "float64") + sd.sum(z[:, :1] ** 2)
    yield "pool", X, sd.max_pool2d(sd.sin(X), 2) if hasattr(sd, "max_pool2d") else sd.sin(X)
    yield "where", z, sd.where(z > 0, z * 2.0, sd.cumsum(z, axis=0))


@pytest.mark.parametrize("name,x,y", list(_graphs()), ids=[g[0] for g in _graphs()])
def test_pattern_covers_the_jacobian_and_is_tight(name, x, y):
    pat = sd.jacobian_sparsity(y, x).toarray()
    f = sd.compile(sd.jacobian(y, x), backend="numpy")
    r = np.random.default_rng(1)
    seen = np.zeros_like(pat)
    for _ in range(3):
        J = f(**{x.name: r.standard_normal(x.shape)}).reshape(y.size, x.size)
        assert not np.any((J != 0) & ~pat), f"{name}: a nonzero outside the pattern"
        seen |= J != 0
    if name in ("banded", "conv", "softmax-matmul"):  # no value-dependent zeros: the pattern is exact
        np.testing.assert_array_equal(seen, pat)


def test_banded_pattern_and_colouring():
    x, y = _banded(30)
    pat = sd.jacobian_sparsity(y, x)
    assert pat.shape == (30, 30) and pat.nnz == 2 + 3 * 28
    sj = sd.sparse_jacobian(y, x)
    assert sj.n_colors == 3  # tridiagonal: three tangents instead of 30


@pytest.mark.parametrize("backend", ["numpy", "llvm"])
def test_sparse_jacobian_equals_dense(backend):
    x, y = _banded(12)
    sj = sd.sparse_jacobian(y, x)
    xv = np.random.default_rng(2).standard_normal(12)
    J = sj.compile(backend=backend)(x=xv)
    dense = sd.compile(sd.jacobian(y, x), backend="numpy")(x=xv)
    assert J.format == "csr" and J.shape == (12, 12)
    np.testing.assert_allclose(J.toarray(), dense, rtol=1e-13, atol=1e-13)
