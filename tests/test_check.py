"""sd.check_grad: report contents, failure detection (with a deliberately broken vjp), modes."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import symdiff as sd
from symdiff import sympy_bridge
from symdiff.ir import apply
from symdiff.optable import OPS
from symdiff.ops_tensor import transpose

from conftest import assert_grad_ok


def _model(dtype="float64"):
    X = sd.input("X", (3, 4), dtype)
    W = sd.param("W", (4, 2), dtype)
    b = sd.param("b", (2,), dtype)
    return sd.sum(sd.tanh(X @ W + b) ** 2.0), X, W, b


def _values(rng, dtype=np.float64):
    return {"X": rng.standard_normal((3, 4)).astype(dtype), "W": rng.standard_normal((4, 2)).astype(dtype),
            "b": rng.standard_normal(2).astype(dtype)}


def test_report_fields(rng):
    y, X, W, b = _model()
    vals = _values(rng)
    rep = sd.check_grad(y, [W, b, X], vals)
    assert isinstance(rep, sd.GradReport) and rep.passed
    assert [r.name for r in rep.leaves] == ["W", "b", "X"]
    r = rep["W"]
    assert r.shape == (4, 2) and r.mode == "full" and r.passed
    assert 0 <= r.max_abs_err < 1e-7 and 0 <= r.max_rel_err < 1e-5
    assert r.worst.startswith("[") and r.worst.count(",") == 1
    # analytic vs numeric at the worst entry are the real values of the gradient there
    idx = tuple(int(i) for i in r.worst.strip("[]").split(","))
    g = sd.compile(sd.grad(y, W))(**vals)
    assert r.analytic == pytest.approx(g[idx], rel=1e-12)
    assert r.numeric == pytest.approx(g[idx], rel=1e-5, abs=1e-7)
    assert abs(r.analytic - r.numeric) == pytest.approx(r.max_abs_err, rel=1e-9, abs=1e-15)
    assert (rep.eps, rep.rtol, rep.atol) == (1e-6, 1e-5, 1e-6)
    text = str(rep)
    assert "W" in text and "PASS" in text and "all passed" in text
    with pytest.raises(KeyError):
        rep["nope"]


def _wrong_matmul_vjp(node, g):
    a, b = node.inputs
    da = apply("matmul", [g, transpose(b, (1, 0))])
    return [apply("mul", [da, sd.const(1.01, da.dtype)]), apply("matmul", [transpose(a, (1, 0)), g])]


def test_wrong_gradient_is_detected(rng, monkeypatch):
    y, X, W, b = _model()
    vals = _values(rng)
    assert sd.check_grad(y, [X, W], vals).passed
    monkeypatch.setitem(OPS, "matmul", dataclasses.replace(OPS["matmul"], vjp=_wrong_matmul_vjp))
    rep = sd.check_grad(y, [X, W], vals)
    assert not rep.passed
    assert not rep["X"].passed and rep["W"].passed  # only dA was corrupted
    assert rep["X"].max_rel_err == pytest.approx(0.01 / 1.01, rel=1e-3)
    assert rep["X"].analytic == pytest.approx(1.01 * rep["X"].numeric, rel=1e-6)
    assert "FAIL" in str(rep) and "FAILED" in str(rep)
    with pytest.raises(sd.GradCheckError, match="gradient check failed"):
        sd.check_grad(y, [X, W], vals, raise_on_failure=True)
    with pytest.raises(AssertionError):  # GradCheckError is an AssertionError (pytest-friendly)
        rep.raise_if_failed()


def test_wrong_elementwise_derivative_is_detected(rng, monkeypatch):
    # give tanh the SymPy expression of sin: the forward is still tanh, the derivative becomes cos
    import sympy as sp
    from symdiff.optable import X as SX
    x = sd.input("x", (5,), "float64")
    y = sd.sum(sd.tanh(x))
    xv = rng.uniform(0.3, 1.5, 5)
    monkeypatch.setitem(OPS, "tanh", dataclasses.replace(OPS["tanh"], expr=sp.sin(SX[0])))
    sympy_bridge.derivative_expr.cache_clear()
    try:
        rep = sd.check_grad(y, x, {"x": xv})
        assert not rep.passed and rep["x"].mode == "full"
        with pytest.raises(sd.GradCheckError):
            sd.check_grad(y, x, {"x": xv}, raise_on_failure=True)
    finally:
        sympy_bridge.derivative_expr.cache_clear()


def test_full_and_directions_modes(rng):
    y, X, W, b = _model()
    vals = _values(rng)
    rep = sd.check_grad(y, [X, W, b], vals, max_full=8, n_directions=3)
    modes = {r.name: r.mode for r in rep.leaves}
    assert modes == {"X": "directions", "W": "full", "b": "full"}
    assert rep["X"].worst in ("dir0", "dir1", "dir2")
    assert_grad_ok(rep)
    # the directional check catches a wrong gradient too
    rep_all = sd.check_grad(y, [X, W, b], vals, max_full=0, n_directions=4, seed=3)
    assert all(r.mode == "directions" for r in rep_all.leaves) and rep_all.passed


def test_directions_mode_detects_errors(rng, monkeypatch):
    y, X, W, b = _model()
    vals = _values(rng)
    monkeypatch.setitem(OPS, "matmul", dataclasses.replace(OPS["matmul"], vjp=_wrong_matmul_vjp))
    rep = sd.check_grad(y, [X], vals, max_full=0)
    assert rep["X"].mode == "directions" and not rep.passed


def test_float32_graph_is_checked_in_float64(rng):
    y, X, W, b = _model("float32")
    vals = _values(rng, np.float32)
    rep = sd.check_grad(y, [W, b], vals)
    assert rep.passed and rep["W"].max_abs_err < 1e-7  # float64 accuracy, not float32


def test_tolerances_matter(rng):
    y, X, W, b = _model()
    vals = _values(rng)
    # with a huge eps the central difference is visibly off; tight tolerances flag it
    rep = sd.check_grad(y, [W], vals, eps=0.3, rtol=1e-8, atol=1e-10)
    assert not rep.passed
    rep_loose = sd.check_grad(y, [W], vals, eps=0.3, rtol=0.5, atol=0.5)
    assert rep_loose.passed and rep_loose.eps == 0.3


def test_missing_values_is_an_error(rng):
    y, X, W, b = _model()
    with pytest.raises(TypeError, match="no values for"):
        sd.check_grad(y, [W], {"W": np.zeros((4, 2))})


def test_leaf_not_in_graph_checks_zero(rng):
    x = sd.input("x", (3,), "float64")
    z = sd.input("z", (2,), "float64")
    rep = sd.check_grad(sd.sum(x * x), [x, z], {"x": np.array([1.0, 2.0, 3.0]), "z": np.zeros(2)})
    assert rep.passed and rep["z"].max_abs_err == 0.0 and rep["z"].analytic == 0.0


def test_nan_gradient_fails(rng):
    x = sd.input("x", (2,), "float64")
    rep = sd.check_grad(sd.sum(sd.sqrt(x)), x, {"x": np.array([-1.0, 4.0])})
    assert not rep.passed
