"""sd.jvp / sd.vjp / sd.hvp / sd.jacobian / sd.hessian: every op-suite case through forward mode (the adjoint
identity against reverse mode), finite differences, and the compositions (jacobian rows are vjps of basis
vectors, hessian is the jacobian of grad, hvp is hessian @ v) on every backend."""
from __future__ import annotations

import numpy as np
import pytest

import symdiff as sd
from test_ops import API_CASES, CASES, _float_leaves, _leaf_nodes

ALL = {**CASES, **{f"sd.{k}": c for k, c in API_CASES.items()}}


def _random_like(r, nodes):
    return [r.standard_normal(n.shape) for n in nodes]


@pytest.mark.parametrize("name", sorted(ALL))
def test_jvp_is_the_adjoint_of_vjp(name):
    """<u, J t> == <J^T u, t> for random t, u: forward mode agrees with reverse mode for every op."""
    case = ALL[name]
    r = np.random.default_rng(7)
    values = (case.gen_grad or case.gen)(r)
    nodes = _leaf_nodes(values)
    wrt = _float_leaves(nodes)
    y = case.build(*nodes.values())
    if not wrt or y.dtype not in ("float32", "float64"):
        pytest.skip("no float input or output")
    ts = _random_like(r, wrt)
    u = r.standard_normal(y.shape)
    jt = sd.jvp(y, wrt, [sd.const(t, w.dtype) for t, w in zip(ts, wrt)])
    vu = sd.vjp(y, wrt, sd.const(u, y.dtype))
    out = sd.compile([jt, *vu], backend="numpy", inputs=list(nodes.values()))(**values)
    lhs = float(np.sum(u * out[0]))
    rhs = sum(float(np.sum(g * t)) for g, t in zip(out[1:], ts))
    tol = 1e-5 if "float32" in {y.dtype, *(w.dtype for w in wrt)} or "cast" in name else 1e-9  # a cast may round
    assert np.isclose(lhs, rhs, rtol=tol, atol=tol * max(1.0, abs(lhs))), (lhs, rhs)


def _net():
    x = sd.input("x", (3,), "float64")
    W = sd.param("W", (2, 3), "float64")
    y = sd.tanh(W @ x) * sd.softmax(W @ sd.exp(x))  # (2,)
    return x, W, y


def _vals(r):
    return {"x": r.standard_normal(3), "W": r.standard_normal((2, 3))}


def test_jvp_matches_central_differences():
    x, W, y = _net()
    r = np.random.default_rng(1)
    vals, t, tw = _vals(r), r.standard_normal(3), r.standard_normal((2, 3))
    ty = sd.jvp(y, [x, W], [t, tw])
    f = sd.compile([y, ty], backend="numpy")
    eps = 1e-6
    up = f(x=vals["x"] + eps * t, W=vals["W"] + eps * tw)[0]
    dn = f(x=vals["x"] - eps * t, W=vals["W"] - eps * tw)[0]
    np.testing.assert_allclose(f(**vals)[1], (up - dn) / (2 * eps), rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize("backend", ["numpy", "llvm", "cuda-cpu"])
def test_jacobian_hessian_hvp_compositions(backend):
    x, W, y = _net()
    loss = sd.sum(y * y) + sd.sum(sd.sin(W) * sd.exp(x))
    r = np.random.default_rng(2)
    vals, v = _vals(r), r.standard_normal(3)
    Jf, Jr = sd.jacobian(y, x, mode="fwd"), sd.jacobian(y, x, mode="rev")
    JW = sd.jacobian(y, W)  # auto: 6 inputs > 2 outputs -> reverse
    H, hv, g = sd.hessian(loss, x), sd.hvp(loss, x, v), sd.grad(loss, x)
    rows = [sd.vjp(y, x, sd.const(np.eye(2)[i], "float64")) for i in range(2)]
    jg = sd.jacobian(g, x)
    out = sd.compile([Jf, Jr, JW, H, hv, jg, *rows], backend=backend)(**vals)
    Jf_v, Jr_v, JW_v, H_v, hv_v, jg_v = out[:6]
    assert Jf_v.shape == (2, 3) and JW_v.shape == (2, 2, 3) and H_v.shape == (3, 3)
    np.testing.assert_allclose(Jf_v, Jr_v, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(Jr_v, np.stack(out[6:]), rtol=1e-12, atol=1e-13)  # rows are vjps of e_i
    np.testing.assert_allclose(H_v, jg_v, rtol=1e-12, atol=1e-13)  # hessian = jacobian of grad
    np.testing.assert_allclose(H_v, H_v.T, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(hv_v, H_v @ v, rtol=1e-10, atol=1e-12)  # hvp = hessian @ v
    # JW against central differences in W
    f = sd.compile(y, backend="numpy")
    eps, fd = 1e-6, np.zeros((2, 2, 3))
    for idx in np.ndindex(2, 3):
        d = np.zeros((2, 3))
        d[idx] = eps
        fd[(slice(None),) + idx] = (f(x=vals["x"], W=vals["W"] + d) - f(x=vals["x"], W=vals["W"] - d)) / (2 * eps)
    np.testing.assert_allclose(JW_v, fd, rtol=1e-6, atol=1e-8)


def test_second_order_of_the_transforms_by_check_grad():
    """jvp and jacobian results are graphs: differentiable again (order 2 by finite differences)."""
    x, W, y = _net()
    r = np.random.default_rng(3)
    vals = _vals(r)
    t = sd.const(r.standard_normal(3), "float64")
    res = sd.check_grad(sd.sum(sd.jvp(y, x, t) ** 2) + sd.sum(sd.jacobian(y, x) * 0.5), [x, W], vals)
    assert res.passed, str(res)


def test_errors_name_the_transform():
    x, W, y = _net()
    with pytest.raises(ValueError, match=r"jvp: tangent of shape \(2,\) does not match 'x' of shape \(3,\)"):
        sd.jvp(y, x, np.zeros(2))
    with pytest.raises(ValueError, match=r"vjp: 2 cotangents for 1 outputs"):
        sd.vjp(y, x, [np.zeros(2), np.zeros(2)])
    with pytest.raises(ValueError, match=r"jacobian: mode must be 'auto', 'fwd' or 'rev'"):
        sd.jacobian(y, x, mode="both")
    with pytest.raises(ValueError, match=r"jvp: can only differentiate with respect to sd.input/sd.param leaves"):
        sd.jvp(y, W @ x, np.zeros(2))
