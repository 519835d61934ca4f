"""Reverse-mode differentiation: accumulation, broadcasting, errors, higher order, the lecture's models."""
from __future__ import annotations

import numpy as np
import pytest

import symdiff as sd

from conftest import assert_grad_ok, distinct, evaluate


# -- accumulation and broadcasting ---------------------------------------------------------------------------

def test_fan_out_contributions_are_summed(rng):
    x = sd.input("x", (5,), "float64")
    y = sd.sum(x * x + sd.sin(x) * x + x + sd.exp(x) / x)
    g = sd.grad(y, x)
    xv = rng.uniform(0.5, 2.0, 5)
    expected = 2 * xv + np.cos(xv) * xv + np.sin(xv) + 1 + np.exp(xv) / xv - np.exp(xv) / xv**2
    np.testing.assert_allclose(evaluate(g, x=xv), expected, rtol=1e-12)


def test_same_leaf_through_two_paths_of_a_matmul(rng):
    A = sd.input("A", (3, 3), "float64")
    y = sd.sum(A @ A)  # d/dA sum(A A) = 1 A^T + A^T 1
    av = rng.standard_normal((3, 3))
    ones = np.ones((3, 3))
    np.testing.assert_allclose(evaluate(sd.grad(y, A), A=av), ones @ av.T + av.T @ ones, rtol=1e-12)


@pytest.mark.parametrize("sa,sb", [((3, 1), (4,)), ((2, 3, 4), (1, 4)), ((1,), (2, 3)), ((), (2, 2)),
                                   ((2, 1, 4), (3, 1))])
def test_broadcast_gradients_sum_over_broadcast_axes(rng, sa, sb):
    a, b = sd.input("a", sa, "float64"), sd.input("b", sb, "float64")
    out_shape = np.broadcast_shapes(sa, sb)
    W = rng.standard_normal(out_shape)
    ga, gb = sd.grad(sd.sum((a * b) * W), [a, b])
    av, bv = rng.standard_normal(sa), rng.standard_normal(sb)
    assert ga.shape == sa and gb.shape == sb
    full_a = np.broadcast_to(W * bv, out_shape)
    full_b = np.broadcast_to(W * av, out_shape)

    def reduce_to(g, shape):
        lead = g.ndim - len(shape)
        g = g.sum(axis=tuple(range(lead)))
        return g.sum(axis=tuple(i for i, s in enumerate(shape) if s == 1), keepdims=True).reshape(shape)

    out = evaluate([ga, gb], a=av, b=bv)
    np.testing.assert_allclose(out[0], reduce_to(full_a, sa), rtol=1e-12)
    np.testing.assert_allclose(out[1], reduce_to(full_b, sb), rtol=1e-12)


def test_broadcast_gradient_explicit_values():
    b = sd.input("b", (3,), "float64")
    x = sd.input("x", (4, 3), "float64")
    gb = sd.grad(sd.sum(x + b), b)  # each b[j] is used by 4 rows
    assert sd.compile(gb).input_names == ()  # the gradient is a constant
    np.testing.assert_array_equal(evaluate(gb), [4.0, 4.0, 4.0])


# -- errors and edge cases -------------------------------------------------------------------------------------

def test_grad_of_non_scalar_is_an_error():
    x = sd.input("x", (2, 3), "float64")
    with pytest.raises(ValueError, match=r"scalar.*\(2, 3\)"):
        sd.grad(x * 2.0, x)


def test_grad_wrt_non_leaf_is_an_error():
    x = sd.input("x", (2,), "float64")
    h = x * 2.0
    with pytest.raises(ValueError, match="leaves.*mul"):
        sd.grad(sd.sum(h), h)
    with pytest.raises(TypeError, match="symdiff tensors"):
        sd.grad(sd.sum(x), [np.ones(2)])
    with pytest.raises(TypeError, match="symdiff tensor"):
        sd.grad(3.0, x)


def test_grad_wrt_integer_tensor_is_an_error():
    x = sd.input("x", (2, 3), "float64")
    lab = sd.input("lab", (2,), "int64")
    with pytest.raises(TypeError, match="integer tensor 'lab'"):
        sd.grad(sd.cross_entropy(x, lab), lab)


def test_grad_wrt_leaf_not_in_graph_is_zeros():
    x = sd.input("x", (2, 3), "float64")
    z = sd.param("z", (4,), "float32")
    gx, gz = sd.grad(sd.sum(x * x), [x, z])
    assert (gz.shape, gz.dtype) == ((4,), "float32")
    out = evaluate([gx, gz], x=np.ones((2, 3)))
    np.testing.assert_array_equal(out[0], 2 * np.ones((2, 3)))
    np.testing.assert_array_equal(out[1], np.zeros(4, np.float32))
    assert out[1].dtype == np.float32


def test_single_wrt_returns_tensor_list_returns_list():
    x = sd.input("x", (2,), "float64")
    y = sd.sum(x)
    assert isinstance(sd.grad(y, x), sd.Tensor)
    gs = sd.grad(y, [x])
    assert isinstance(gs, list) and len(gs) == 1


def test_gradient_dtype_follows_leaf():
    x32 = sd.input("x", (3,), "float32")
    w64 = sd.param("w", (3,), "float64")
    y = sd.sum(x32 * w64)
    assert y.dtype == "float64"
    gx, gw = sd.grad(y, [x32, w64])
    assert gx.dtype == "float32" and gw.dtype == "float64"
    out = evaluate([gx, gw], x=np.arange(3, dtype=np.float32), w=np.array([1.0, 2.0, 3.0]))
    assert out[0].dtype == np.float32
    np.testing.assert_array_equal(out[0], [1.0, 2.0, 3.0])
    np.testing.assert_array_equal(out[1], [0.0, 1.0, 2.0])


# -- higher order ------------------------------------------------------------------------------------------------

def _mlp(dtype="float64", n=4, d=3, h=5, c=2):
    X = sd.input("X", (n, d), dtype)
    W1, b1 = sd.param("W1", (d, h), dtype), sd.param("b1", (h,), dtype)
    W2, b2 = sd.param("W2", (h, c), dtype), sd.param("b2", (c,), dtype)
    out = sd.tanh(X @ W1 + b1) @ W2 + b2
    return X, [W1, b1, W2, b2], out


def _mlp_values(rng, n=4, d=3, h=5, c=2, dtype=np.float64):
    return {"X": rng.standard_normal((n, d)).astype(dtype), "W1": (rng.standard_normal((d, h)) * 0.7).astype(dtype),
            "b1": (rng.standard_normal(h) * 0.1).astype(dtype), "W2": (rng.standard_normal((h, c)) * 0.7).astype(dtype),
            "b2": (rng.standard_normal(c) * 0.1).astype(dtype)}


def test_hessian_vector_product_matches_finite_differences_of_gradient(rng):
    X, params, out = _mlp()
    T = sd.input("T", out.shape, "float64")
    loss = sd.mse(out, T)
    W1 = params[0]
    gW1 = sd.grad(loss, W1)
    V = rng.standard_normal(W1.shape)
    hvp = sd.grad(sd.sum(gW1 * sd.const(V, "float64")), W1)
    vals = _mlp_values(rng)
    vals["T"] = rng.standard_normal(out.shape)
    f_g = sd.compile(gW1)
    hv = evaluate(hvp, **{k: vals[k] for k in sd.compile(hvp).input_names})
    eps = 1e-5
    plus = f_g(**{**vals, "W1": vals["W1"] + eps * V})
    minus = f_g(**{**vals, "W1": vals["W1"] - eps * V})
    fd = (plus - minus) / (2 * eps)
    np.testing.assert_allclose(hv, fd, rtol=1e-6, atol=1e-9)
    assert np.abs(hv).max() > 1e-3  # a real, non-trivial curvature


def test_grad_of_grad_composes():
    x = sd.input("x", (3,), "float64")
    y = sd.sum(x ** 3.0 + sd.sin(x))
    g1 = sd.grad(y, x)  # 3x^2 + cos x
    g2 = sd.grad(sd.sum(g1), x)  # 6x - sin x
    g3 = sd.grad(sd.sum(g2), x)  # 6 - cos x
    xv = np.array([-1.5, 0.3, 2.0])
    out = evaluate([g1, g2, g3], x=xv)
    np.testing.assert_allclose(out[0], 3 * xv**2 + np.cos(xv), rtol=1e-12)
    np.testing.assert_allclose(out[1], 6 * xv - np.sin(xv), rtol=1e-12)
    np.testing.assert_allclose(out[2], 6 - np.cos(xv), rtol=1e-12)
    assert_grad_ok(sd.check_grad(sd.sum(g2 * np.array([1.0, -2.0, 0.5])), x, {"x": xv}))


def test_mixed_second_derivative():
    x, w = sd.input("x", (2,), "float64"), sd.param("w", (2,), "float64")
    y = sd.sum(sd.exp(x * w))
    gx = sd.grad(y, x)  # w exp(xw)
    gxw = sd.grad(sd.sum(gx), w)  # exp(xw) + x w exp(xw)
    xv, wv = np.array([0.5, -1.0]), np.array([1.5, 0.25])
    np.testing.assert_allclose(evaluate(gxw, x=xv, w=wv), np.exp(xv * wv) * (1 + xv * wv), rtol=1e-12)


# -- the lecture's models -------------------------------------------------------------------------------------------

def _classifier(dtype, n=6, d=8, h=5, c=3):
    X = sd.input("X", (n, d), dtype)
    y = sd.input("y", (n,), "int64")
    W1, b1 = sd.param("W1", (d, h), dtype), sd.param("b1", (h,), dtype)
    W2, b2 = sd.param("W2", (h, c), dtype), sd.param("b2", (c,), dtype)
    logits = sd.relu(X @ W1 + b1) @ W2 + b2
    return sd.cross_entropy(logits, y), [W1, b1, W2, b2]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_mlp_cross_entropy_check_grad(rng, dtype):
    loss, params = _classifier(dtype)
    vals = {"X": rng.standard_normal((6, 8)).astype(dtype), "y": rng.integers(0, 3, 6),
            "W1": (rng.standard_normal((8, 5)) * 0.5).astype(dtype), "b1": (rng.standard_normal(5) * 0.1).astype(dtype),
            "W2": (rng.standard_normal((5, 3)) * 0.5).astype(dtype), "b2": (rng.standard_normal(3) * 0.1).astype(dtype)}
    # keep relu pre-activations away from the kink at 0
    pre = vals["X"].astype(np.float64) @ vals["W1"] + vals["b1"]
    assert np.abs(pre).min() > 1e-4
    report = sd.check_grad(loss, params, vals)
    assert_grad_ok(report)
    assert [r.mode for r in report.leaves] == ["directions", "full", "full", "full"]
    # the compiled float32 gradient is float32 and close to the float64 one
    grads = sd.grad(loss, params)
    out = evaluate([loss, *grads], **vals)
    assert all(o.dtype == np.dtype(dtype) for o in out)
    X, Y = vals["X"].astype(np.float64), vals["y"]
    h = np.maximum(X @ vals["W1"] + vals["b1"], 0)
    z = h @ vals["W2"] + vals["b2"]
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    np.testing.assert_allclose(out[0], -np.mean(np.log(p[np.arange(6), Y])), rtol=1e-5 if dtype == "float32" else 1e-12)
    dz = (p - np.eye(3)[Y]) / 6
    np.testing.assert_allclose(out[3], h.T @ dz, rtol=1e-4 if dtype == "float32" else 1e-10, atol=1e-6)
    np.testing.assert_allclose(out[4], dz.sum(0), rtol=1e-4 if dtype == "float32" else 1e-10, atol=1e-6)


def test_mse_gradient(rng):
    p, t = sd.input("p", (3, 4), "float64"), sd.input("t", (3, 4), "float64")
    loss = sd.mse(p, t)
    pv, tv = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
    out = evaluate([loss, *sd.grad(loss, [p, t])], p=pv, t=tv)
    np.testing.assert_allclose(out[0], np.mean((pv - tv) ** 2), rtol=1e-12)
    np.testing.assert_allclose(out[1], 2 * (pv - tv) / 12, rtol=1e-12)
    np.testing.assert_allclose(out[2], -2 * (pv - tv) / 12, rtol=1e-12)
    assert_grad_ok(sd.check_grad(loss, [p, t], {"p": pv, "t": tv}))


# -- max with ties; softmax family with axis / keepdims --------------------------------------------------------------

def test_max_gradient_is_shared_between_ties():
    x = sd.input("x", (2, 3), "float64")
    xv = np.array([[1.0, 3.0, 3.0], [2.0, 2.0, 2.0]])
    np.testing.assert_allclose(evaluate(sd.grad(sd.sum(sd.max(x, axis=1)), x), x=xv),
                               [[0, 0.5, 0.5], [1 / 3, 1 / 3, 1 / 3]], rtol=1e-15)
    np.testing.assert_allclose(evaluate(sd.grad(sd.max(x), x), x=np.array([[1.0, 3.0, 3.0], [2.0, 2.0, 3.0]])),
                               [[0, 1 / 3, 1 / 3], [0, 0, 1 / 3]], rtol=1e-15)
    g = sd.grad(sd.sum(sd.max(x, axis=0, keepdims=True) * np.array([[1.0, 2.0, 3.0]])), x)
    np.testing.assert_allclose(evaluate(g, x=np.array([[2.0, 3.0, 1.0], [2.0, 1.0, 1.0]])),
                               [[0.5, 2.0, 1.5], [0.5, 0.0, 1.5]], rtol=1e-15)


def test_max_gradient_without_ties(rng):
    x = sd.input("x", (3, 4), "float64")
    xv = distinct(rng, (3, 4))
    y = sd.sum(sd.max(x, axis=(0, 1), keepdims=True) * 2.0) + sd.sum(sd.max(x, axis=-1) * np.arange(3.0))
    assert_grad_ok(sd.check_grad(y, x, {"x": xv}))


@pytest.mark.parametrize("fn", ["softmax", "log_softmax"])
@pytest.mark.parametrize("axis", [0, 1, -1])
def test_softmax_family_axis(rng, fn, axis):
    x = sd.input("x", (3, 4), "float64")
    xv = rng.standard_normal((3, 4))
    out = getattr(sd, fn)(x, axis=axis)
    e = np.exp(xv - xv.max(axis, keepdims=True))
    s = e / e.sum(axis, keepdims=True)
    np.testing.assert_allclose(evaluate(out, x=xv), s if fn == "softmax" else np.log(s), rtol=1e-12)
    W = rng.standard_normal((3, 4))
    assert_grad_ok(sd.check_grad(sd.sum(out * W), x, {"x": xv}))


@pytest.mark.parametrize("axis,keepdims", [(-1, False), (0, True), ((0, 1), False), (None, True), (1, True)])
def test_logsumexp_axis_keepdims(rng, axis, keepdims):
    x = sd.input("x", (3, 4), "float64")
    xv = rng.standard_normal((3, 4))
    out = sd.logsumexp(x, axis=axis, keepdims=keepdims)
    ref = np.log(np.sum(np.exp(xv), axis=axis, keepdims=keepdims))
    assert out.shape == ref.shape
    np.testing.assert_allclose(evaluate(out, x=xv), ref, rtol=1e-12)
    W = rng.standard_normal(ref.shape)
    assert_grad_ok(sd.check_grad(sd.sum(out * W), x, {"x": xv}))


# -- the lecture's stability point -------------------------------------------------------------------------------

def test_log_sigmoid_gradient_is_finite_and_exact_at_extremes():
    x = sd.input("x", (2,), "float64")
    y = sd.sum(sd.log(sd.sigmoid(x)))
    g = sd.grad(y, x)
    val, gv = evaluate([y, g], x=np.array([-800.0, 800.0]))
    # log sigmoid(x) = -softplus(-x): -800 and 0;  d/dx = sigmoid(-x): 1 and 0
    np.testing.assert_array_equal(gv, [1.0, 0.0])
    assert val == -800.0
    # also without simplifying at compile time (the gradient graph itself is stable)
    np.testing.assert_array_equal(evaluate(g, simplify=False, x=np.array([-800.0, 800.0])), [1.0, 0.0])


def test_log_softmax_of_huge_logits_is_finite():
    x = sd.input("x", (2, 3), "float64")
    xv = np.array([[1e4, -1e4, 0.0], [5e3, 5e3, -3e4]])
    y = sd.sum(sd.log(sd.softmax(x, axis=-1)) * np.array([1.0, 2.0, 3.0]))
    g = sd.grad(y, x)
    val, gv = evaluate([y, g], x=xv)
    assert np.isfinite(val) and np.all(np.isfinite(gv))
    s = np.exp(xv - xv.max(1, keepdims=True))
    s /= s.sum(1, keepdims=True)
    w = np.array([1.0, 2.0, 3.0])
    np.testing.assert_allclose(gv, w - s * w.sum(), rtol=1e-12, atol=1e-300)
    np.testing.assert_allclose(val, np.sum(w * np.array([[0, -2e4, -1e4], [-np.log(2), -np.log(2), -3.5e4 - np.log(2)]])),
                               rtol=1e-12)


def test_log_one_plus_exp_is_finite_at_1000():
    x = sd.input("x", (3,), "float64")
    y = sd.sum(sd.log(1.0 + sd.exp(x)))
    val, gv = evaluate([y, sd.grad(y, x)], x=np.array([1000.0, 0.0, -1000.0]))
    np.testing.assert_allclose(val, 1000.0 + np.log(2.0), rtol=1e-15)
    np.testing.assert_allclose(gv, [1.0, 0.5, 0.0], rtol=1e-15)


def test_cross_entropy_with_huge_logits_is_finite():
    z = sd.input("z", (2, 3), "float64")
    lab = sd.input("lab", (2,), "int64")
    loss = sd.cross_entropy(z, lab)
    zv = np.array([[1e4, -1e4, 0.0], [0.0, 1e4, 2e4]])
    val, gv = evaluate([loss, sd.grad(loss, z)], z=zv, lab=np.array([0, 1]))
    assert np.isfinite(val) and np.all(np.isfinite(gv))
    np.testing.assert_allclose(val, (0.0 + 1e4) / 2)
    np.testing.assert_allclose(gv, [[0, 0, 0], [0, -0.5, 0.5]], atol=1e-300)
    # float32 too
    z32 = sd.input("z", (2, 3), "float32")
    loss32 = sd.cross_entropy(z32, lab)
    v32, g32 = evaluate([loss32, sd.grad(loss32, z32)], z=zv.astype(np.float32), lab=np.array([0, 1]))
    assert np.isfinite(v32) and np.all(np.isfinite(g32)) and g32.dtype == np.float32
