"""The model DSL: leaves, dtype rules, shape errors, tensor attributes, matmul and reductions."""
from __future__ import annotations

import numpy as np
import pytest

import symdiff as sd

from conftest import evaluate


# -- dtype rules (NumPy 2 / NEP 50 as implemented) -------------------------------------------------------------

def test_python_scalars_are_weak():
    x = sd.input("x", (2, 3))  # float32 by default
    assert x.dtype == "float32"
    for expr in (x * 2.0, 2.0 * x, x + 1, 1 - x, x / 3.0, 3.0 / x, x ** 2.0, 2.0 ** x, sd.maximum(x, 0.5), -x):
        assert expr.dtype == "float32", expr
    out = evaluate(x * 0.1, x=np.ones((2, 3), np.float32))
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, np.float32(1.0) * np.float32(0.1))


def test_float32_plus_float64_promotes():
    a, b = sd.input("a", (3,), "float32"), sd.input("b", (3,), "float64")
    assert (a + b).dtype == "float64" and (b * a).dtype == "float64"
    assert (a * np.float64(2.0)).dtype == "float64"  # a NumPy float64 scalar is strong (NumPy 2)
    assert (a * np.float32(2.0)).dtype == "float32"
    assert (a * np.ones(3)).dtype == "float64" and (a * np.ones(3, np.float32)).dtype == "float32"
    assert (np.float32(2.0) * a).dtype == "float32"  # numpy defers to the tensor (reflected operators)
    assert sd.matmul(sd.input("m", (2, 3), "float32"), b).dtype == "float64"
    out = evaluate(a + b, a=np.full(3, 0.1, np.float32), b=np.full(3, 0.1))
    assert out.dtype == np.float64
    np.testing.assert_array_equal(out, np.float32(0.1).astype(np.float64) + 0.1)


def test_integer_tensors_are_values_and_bool_tensors_are_not_numbers():
    lab = sd.input("lab", (2,), "int64")
    x = sd.input("x", (2,))
    assert (lab + 1).dtype == "int64" and (x * lab).dtype == "float64" and sd.exp(lab).dtype == "float64"
    mask = x > 0
    with pytest.raises(TypeError, match=r"add: boolean tensor .* cannot be used in arithmetic"):
        mask + 1
    with pytest.raises(TypeError, match=r"exp: boolean tensor"):
        sd.exp(mask)
    with pytest.raises(TypeError, match="sum: expected a float tensor, got int64"):
        sd.sum(lab)
    with pytest.raises(TypeError, match="parameters must be float32/float64"):
        sd.param("p", (2,), "int32")


def test_unknown_and_unsupported_dtypes():
    with pytest.raises(TypeError, match="unknown dtype 'banana'.*float32, float64, int32, int64"):
        sd.input("x", (2,), "banana")
    for bad in ("float16", "complex64", "int8", "uint8"):
        with pytest.raises(TypeError, match="unsupported dtype"):
            sd.input("x", (2,), bad)
    assert sd.input("x", (2,), np.float64).dtype == "float64"


def test_bad_scalar_operands():
    x = sd.input("x", (2,))
    for bad, msg in (("a", "str"), (None, "NoneType"), (True, "bool")):
        with pytest.raises(TypeError, match=msg):
            x * bad
    with pytest.raises(TypeError, match="complex"):
        x + 1j
    with pytest.raises(TypeError, match="no truth value"):
        bool(x)


# -- shapes and their errors ---------------------------------------------------------------------------------

def test_matmul_shape_mismatch_names_both_shapes():
    a, b = sd.input("a", (2, 3)), sd.input("b", (4, 2))
    with pytest.raises(ValueError, match=r"matmul: shapes \(2, 3\) and \(4, 2\) are not aligned"):
        a @ b
    with pytest.raises(ValueError, match=r"matmul: shapes \(3,\) and \(4,\)"):
        sd.input("u", (3,)) @ sd.input("v", (4,))
    with pytest.raises(ValueError, match="at least 1-D"):
        sd.matmul(a, 2.0)
    with pytest.raises(ValueError, match=r"batch dimensions of shapes \(2, 2, 3\) and \(3, 3, 2\) cannot be broadcast"):
        sd.input("t", (2, 2, 3)) @ sd.input("s", (3, 3, 2))


def test_broadcast_mismatch_names_op_and_shapes():
    a, b = sd.input("a", (2, 3)), sd.input("b", (4, 2))
    with pytest.raises(ValueError, match=r"add: shapes \(2, 3\) and \(4, 2\) cannot be broadcast together"):
        a + b
    with pytest.raises(ValueError, match=r"maximum: shapes \(2, 3\) and \(4, 2\)"):
        sd.maximum(a, b)
    with pytest.raises(ValueError, match=r"broadcast_to: shapes \(2, 3\) and \(3, 3\)"):
        sd.broadcast_to(a, (3, 3))


def test_bad_axis():
    x = sd.input("x", (2, 3))
    with pytest.raises(ValueError, match=r"sum: axis 2 is out of bounds for a tensor of rank 2 \(shape \(2, 3\)\)"):
        sd.sum(x, axis=2)
    with pytest.raises(ValueError, match="axis -3 is out of bounds"):
        sd.mean(x, axis=-3)
    with pytest.raises(ValueError, match="repeated axis"):
        sd.max(x, axis=(0, -2))
    with pytest.raises(TypeError, match="axis must be None, an int or a tuple"):
        sd.sum(x, axis=1.0)
    with pytest.raises(ValueError, match="softmax: axis 3 is out of bounds"):
        sd.softmax(x, axis=3)
    with pytest.raises(ValueError, match="logsumexp: axis 5"):
        sd.logsumexp(x, axis=5)
    with pytest.raises(ValueError, match="not a permutation"):
        sd.transpose(x, (0, 0))


def test_bad_reshape():
    x = sd.input("x", (2, 3))
    with pytest.raises(ValueError, match=r"reshape: cannot reshape a tensor of shape \(2, 3\) \(size 6\) into shape \(4, 2\)"):
        sd.reshape(x, (4, 2))
    with pytest.raises(ValueError, match="only one dimension can be -1"):
        x.reshape(-1, -1)
    with pytest.raises(ValueError, match="cannot reshape"):
        x.reshape(-1, 4)
    assert x.reshape(-1).shape == (6,) and x.reshape(3, -1).shape == (3, 2) and x.reshape((1, 6)).shape == (1, 6)


def test_bad_leaves():
    with pytest.raises(ValueError, match="identifier"):
        sd.input("1x", (2,))
    with pytest.raises(ValueError, match="identifier"):
        sd.input("a b", (2,))
    with pytest.raises(ValueError, match="non-negative integers"):
        sd.input("x", (-1, 2))
    with pytest.raises(ValueError, match="non-negative integers"):
        sd.input("x", (2.0,))
    with pytest.raises(TypeError, match="shape must be a tuple"):
        sd.input("x", None)
    assert sd.input("x", 3).shape == (3,) and sd.input("s", ()).shape == ()


def test_duplicate_leaf_names_in_one_graph():
    a = sd.input("x", (2,), "float32")
    b = sd.param("x", (2,), "float32")
    with pytest.raises(ValueError, match=r"leaf name 'x' is used twice in one graph: input float32\[2\] and param float32\[2\]"):
        sd.compile(a + b)
    c = sd.input("x", (2,), "float64")
    with pytest.raises(ValueError, match="used twice"):
        sd.compile([a, c])
    # the same declaration twice is the same leaf (hash-consing), not a duplicate
    f = sd.compile(a + sd.input("x", (2,), "float32"))
    assert f.input_names == ("x",)
    np.testing.assert_array_equal(f(x=np.array([1.0, 2.0], np.float32)), [2.0, 4.0])


# -- tensor attributes ---------------------------------------------------------------------------------------------

def test_tensor_attributes():
    x = sd.input("x", (2, 3), "float64")
    w = sd.param("w", (3,), "float32", init=np.zeros(3))
    assert x.shape == (2, 3) and x.dtype == "float64" and x.name == "x" and x.ndim == 2 and x.size == 6
    assert w.name == "w" and w.is_leaf and x.is_leaf and not (x * 2.0).is_leaf
    assert (x * 2.0).name is None
    assert x.T.shape == (3, 2) and x.T.op == "transpose"
    assert sd.input("v", (4,)).T.shape == (4,)
    assert x.T.T is not x and sd.simplify(x.T.T) is x  # built as two transposes; the simplifier cancels them
    assert "x" in repr(x) and "float64[2, 3]" in repr(x)
    assert isinstance(x, sd.Tensor)
    np.testing.assert_array_equal(evaluate(x.T, x=np.arange(6.0).reshape(2, 3)), np.arange(6.0).reshape(2, 3).T)


def test_matmul_with_1d_operands(rng):
    A = sd.input("A", (2, 3), "float64")
    v = sd.input("v", (3,), "float64")
    u = sd.input("u", (2,), "float64")
    av, vv, uv = rng.standard_normal((2, 3)), rng.standard_normal(3), rng.standard_normal(2)
    cases = [(A @ v, av @ vv, (2,)), (u @ A, uv @ av, (3,)), (v @ v, vv @ vv, ()), (A @ A.T, av @ av.T, (2, 2)),
             (np.ones(2) @ A, np.ones(2) @ av, (3,))]
    vals = {"A": av, "v": vv, "u": uv}
    for expr, ref, shape in cases:
        assert expr.shape == shape
        f = sd.compile(expr)
        np.testing.assert_allclose(f(**{k: vals[k] for k in f.input_names}), ref, rtol=1e-12)
    gA, gv = sd.grad(u @ A @ v, [A, v])
    out = evaluate([gA, gv], A=av, v=vv, u=uv)
    np.testing.assert_allclose(out[0], np.outer(uv, vv), rtol=1e-12)
    np.testing.assert_allclose(out[1], uv @ av, rtol=1e-12)


@pytest.mark.parametrize("fn", ["sum", "mean", "max"])
@pytest.mark.parametrize("axis", [None, 0, 1, -1, (0, 2), (-1, 0), (), (0, 1, 2)])
@pytest.mark.parametrize("keepdims", [False, True])
def test_reductions(rng, fn, axis, keepdims):
    x = sd.input("x", (2, 3, 4), "float64")
    xv = rng.standard_normal((2, 3, 4))
    expr = getattr(sd, fn)(x, axis=axis, keepdims=keepdims)
    ref = getattr(np, fn)(xv, axis=axis, keepdims=keepdims)
    assert expr.shape == ref.shape
    np.testing.assert_allclose(evaluate(expr, x=xv), ref, rtol=1e-12)
    method = getattr(x, fn)(axis, keepdims)
    np.testing.assert_allclose(evaluate(method, x=xv), ref, rtol=1e-12)


def test_mean_and_max_values():
    x = sd.input("x", (2, 3), "float32")
    xv = np.array([[1.0, 5.0, 3.0], [-2.0, -1.0, -7.0]], np.float32)
    mean0, max1, mean_all = evaluate([sd.mean(x, axis=0), sd.max(x, axis=1), sd.mean(x)], x=xv)
    np.testing.assert_allclose(mean0, [-0.5, 2.0, -2.0])
    np.testing.assert_array_equal(max1, [5.0, -1.0])
    np.testing.assert_allclose(mean_all, -1 / 6, rtol=1e-6)
    assert mean0.dtype == np.float32


def test_nn_functions_values(rng):
    x = sd.input("x", (3, 4), "float64")
    t = sd.input("t", (3, 4), "float64")
    lab = sd.input("lab", (3,), "int64")
    xv, tv, lv = rng.standard_normal((3, 4)), rng.standard_normal((3, 4)), np.array([0, 3, 1])
    outs = evaluate([sd.sigmoid(x), sd.softplus(x), sd.relu(x), sd.mse(x, t), sd.cross_entropy(x, lab),
                     sd.cross_entropy(sd.sum(x, axis=0), sd.input("l1", (), "int64"))],
                    x=xv, t=tv, lab=lv, l1=np.array(2))
    np.testing.assert_allclose(outs[0], 1 / (1 + np.exp(-xv)), rtol=1e-12)
    np.testing.assert_allclose(outs[1], np.log1p(np.exp(xv)), rtol=1e-12)
    np.testing.assert_array_equal(outs[2], np.maximum(xv, 0))
    np.testing.assert_allclose(outs[3], np.mean((xv - tv) ** 2), rtol=1e-12)
    logp = xv - np.log(np.exp(xv).sum(1, keepdims=True))
    np.testing.assert_allclose(outs[4], -np.mean(logp[np.arange(3), lv]), rtol=1e-12)
    s = xv.sum(0)
    np.testing.assert_allclose(outs[5], -(s[2] - np.log(np.exp(s).sum())), rtol=1e-12)


def test_cross_entropy_errors():
    x = sd.input("x", (2, 3))
    with pytest.raises(ValueError, match=r"labels of shape \(3,\) do not match logits of shape \(2, 3\)"):
        sd.cross_entropy(x, sd.input("lab", (3,), "int64"))
    with pytest.raises(TypeError, match="labels must be an int32/int64 tensor, got float32"):
        sd.cross_entropy(x, sd.input("lab", (2,)))
    with pytest.raises(TypeError, match="labels must be a symdiff int tensor"):
        sd.cross_entropy(x, np.array([0, 1]))
    with pytest.raises(ValueError, match=r"logits must be \(N, C\) or \(C,\)"):
        sd.cross_entropy(sd.input("t", (2, 2, 2)), sd.input("lab", (2,), "int64"))


def test_astype_and_constants():
    x = sd.input("x", (3,), "float32")
    y = sd.astype(x, "float64") * np.float64(1e-10) + 1.0
    assert y.dtype == "float64"
    np.testing.assert_array_equal(evaluate(y, x=np.ones(3, np.float32)), np.full(3, 1.0 + 1e-10))
    assert sd.const(2).dtype == "float64" and sd.const(np.float32(2)).dtype == "float32"
    with pytest.raises(TypeError):
        sd.const(1j)
    with pytest.raises(TypeError, match="unsupported dtype"):
        sd.astype(x, "float16")


@pytest.mark.parametrize("name,ref", [
    ("sign", np.sign), ("expm1", np.expm1), ("log1p", np.log1p), ("negative", np.negative),
    ("sqrt", np.sqrt), ("abs", np.abs), ("relu", lambda v: np.maximum(v, 0)),
])
def test_unary_dsl_functions_match_numpy(name, ref):
    xv = np.array([[0.3, 1.7, 2.5], [0.1, 0.9, 4.0]])
    x = sd.input("x", xv.shape, "float64")
    got = sd.compile(getattr(sd, name)(x), backend="numpy")(x=xv)
    np.testing.assert_allclose(got, ref(xv), rtol=1e-14)


@pytest.mark.parametrize("name,ref", [
    ("minimum", np.minimum), ("maximum", np.maximum), ("divide", np.divide), ("subtract", np.subtract),
    ("multiply", np.multiply), ("add", np.add), ("power", np.power),
])
def test_binary_dsl_functions_broadcast_like_numpy(name, ref):
    av, bv = np.array([[0.5], [2.0]]), np.array([1.5, 0.25, 3.0])
    a, b = sd.input("a", av.shape, "float64"), sd.input("b", bv.shape, "float64")
    got = sd.compile(getattr(sd, name)(a, b), backend="numpy")(a=av, b=bv)
    assert got.shape == (2, 3)
    np.testing.assert_allclose(got, ref(av, bv), rtol=1e-14)
