"""Calling compiled functions (every test on the numpy and the llvm backend): argument validation,
casting, views, aliasing."""
from __future__ import annotations

import numpy as np
import pytest

import symdiff as sd


@pytest.fixture(autouse=True, params=["numpy", "llvm"])
def backend(request, monkeypatch):
    """Run every test of this file on both backends (through sd.compile's default)."""
    import symdiff.compiled
    monkeypatch.setattr(symdiff.compiled, "DEFAULT_BACKEND", request.param)
    return request.param


@pytest.fixture
def fn():
    x = sd.input("x", (2, 3))  # float32
    lab = sd.input("lab", (2,), "int64")
    W = sd.param("W", (3, 3))
    logits = x @ W
    return sd.compile([sd.cross_entropy(logits, lab), logits * 2.0])


@pytest.fixture
def args():
    return {"x": np.arange(6, dtype=np.float32).reshape(2, 3) / 10, "lab": np.array([0, 2]),
            "W": np.eye(3, dtype=np.float32)}


def test_input_names_and_repr(fn):
    assert fn.input_names == ("x", "W", "lab")
    r = repr(fn)
    assert fn.backend in r and "lab: int64[2] (labels in [0, 3))" in r and "W: float32[3, 3] (param)" in r


def test_missing_and_unexpected_names(fn, args):
    with pytest.raises(TypeError, match=r"missing input\(s\) 'lab'. The function takes: x: float32\[2, 3\]"):
        fn(x=args["x"], W=args["W"])
    with pytest.raises(TypeError, match=r"unexpected input\(s\) 'z', 'q'"):
        fn(**args, z=1, q=2)
    with pytest.raises(TypeError, match=r"missing input\(s\) 'W'; unexpected input\(s\) 'w'"):
        fn(x=args["x"], lab=args["lab"], w=args["W"])
    with pytest.raises(TypeError):
        fn(args["x"], args["W"], args["lab"])  # keyword-only


def test_wrong_shape_or_rank(fn, args):
    with pytest.raises(ValueError, match=r"input 'x': expected shape \(2, 3\), got \(3, 2\)"):
        fn(**{**args, "x": np.zeros((3, 2))})
    with pytest.raises(ValueError, match=r"input 'x': expected shape \(2, 3\), got \(2, 3, 1\)"):
        fn(**{**args, "x": np.zeros((2, 3, 1))})
    with pytest.raises(ValueError, match=r"input 'lab': expected shape \(2,\), got \(\)"):
        fn(**{**args, "lab": 1})


@pytest.mark.parametrize("bad,exc,msg", [
    (np.zeros((2, 3), np.complex64), TypeError, "complex arrays are not supported"),
    ("abc", TypeError, "got str"),
    (b"abc", TypeError, "got bytes"),
    (None, TypeError, "got NoneType"),
    (np.array([["a", "b", "c"]] * 2), TypeError, "got dtype <U1"),
    (np.zeros((2, 3), object), TypeError, "got dtype object"),
    (np.zeros((2, 3), bool), TypeError, "got dtype bool"),
])
def test_bad_values(fn, args, bad, exc, msg):
    with pytest.raises(exc, match=msg):
        fn(**{**args, "x": bad})


def test_labels(fn, args):
    with pytest.raises(TypeError, match=r"input 'lab': labels must be integers \(int64\), got float64"):
        fn(**{**args, "lab": np.array([0.0, 1.0])})
    with pytest.raises(ValueError, match=r"input 'lab': label 3 is out of range \[0, 3\)"):
        fn(**{**args, "lab": np.array([0, 3])})
    with pytest.raises(ValueError, match=r"label -1 is out of range"):
        fn(**{**args, "lab": np.array([-1, 0])})
    a = fn(**{**args, "lab": np.array([0, 2], np.int32)})  # other int widths are accepted
    b = fn(**{**args, "lab": [0, 2]})  # and lists
    np.testing.assert_array_equal(a[0], b[0])


def test_float64_into_float32_graph_is_cast(fn, args):
    x64 = np.array([[0.1, 0.2, 1 / 3], [1e-8, 2.0, 3.0]])
    out = fn(**{**args, "x": x64})
    ref = fn(**{**args, "x": x64.astype(np.float32)})
    assert out[1].dtype == np.float32
    np.testing.assert_array_equal(out[1], ref[1])
    np.testing.assert_array_equal(out[1], (x64.astype(np.float32) @ np.eye(3, dtype=np.float32)) * np.float32(2))
    # python lists and ints work too
    out2 = fn(**{**args, "x": [[1, 2, 3], [4, 5, 6]]})
    np.testing.assert_array_equal(out2[1], 2 * np.array([[1, 2, 3], [4, 5, 6]], np.float32))


def test_non_contiguous_and_negative_stride_views():
    x = sd.input("x", (3, 4), "float64")
    w = sd.input("w", (4,), "float64")
    f = sd.compile([x @ w, sd.sum(x * w, axis=0), x.T])
    base = np.arange(48.0).reshape(6, 8)
    wbase = np.arange(8.0) - 3
    views = {"x": base[::2, ::-2], "w": wbase[::-2]}  # strided + reversed
    assert not views["x"].flags.c_contiguous and views["w"].strides[0] < 0
    xc, wc = np.ascontiguousarray(views["x"]), np.ascontiguousarray(views["w"])
    out = f(**views)
    np.testing.assert_array_equal(out[0], xc @ wc)
    np.testing.assert_array_equal(out[1], (xc * wc).sum(0))
    np.testing.assert_array_equal(out[2], xc.T)
    assert out[2].flags.c_contiguous
    tr = f(x=base[:3, :4].T.T, w=wbase[:4])
    np.testing.assert_array_equal(tr[0], base[:3, :4] @ wbase[:4])


def test_inputs_never_mutated():
    x = sd.input("x", (3,), "float64")
    y = sd.input("y", (3,), "float32")
    f = sd.compile([x * 2.0, -x, sd.exp(x), x, y * 3.0, y])
    xv = np.array([1.0, -2.0, 3.0])
    yv = np.array([0.5, 1.5, -1.0], np.float32)
    xc, yc = xv.copy(), yv.copy()
    xv.setflags(write=False)  # a write would raise
    outs = f(x=xv, y=yv)
    for o in outs:
        o[...] = 99.0  # outputs are writable and independent
    np.testing.assert_array_equal(xv, xc)
    np.testing.assert_array_equal(yv, yc)
    g = sd.grad(sd.sum(sd.exp(x)), x)
    sd.compile(g)(x=xv)
    np.testing.assert_array_equal(xv, xc)


def test_outputs_never_alias_inputs_or_each_other():
    x = sd.input("x", (2, 3), "float64")
    c = sd.const(np.arange(3.0))
    f = sd.compile([x, x, sd.reshape(x, (6,)), x.T, x * 1.0, c, sd.broadcast_to(c, (2, 3))])
    xv = np.arange(6.0).reshape(2, 3)
    outs = f(x=xv)
    arrays = [xv, *outs]
    for i in range(len(arrays)):
        for j in range(i + 1, len(arrays)):
            assert not np.shares_memory(arrays[i], arrays[j]), (i, j)
    for o in outs:
        assert o.flags.writeable and o.flags.c_contiguous
    # nor between calls (a constant output is a fresh array each time)
    again = f(x=xv)
    assert not any(np.shares_memory(a, b) for a, b in zip(outs, again))
    outs[5][0] = 42.0
    np.testing.assert_array_equal(f(x=xv)[5], [0.0, 1.0, 2.0])


def test_nan_and_inf_propagate():
    x = sd.input("x", (4,), "float64")
    f = sd.compile([sd.exp(x) + 1.0, sd.log(x), sd.sum(x)])
    e, lg, s = f(x=np.array([np.nan, 1.0, np.inf, -1.0]))
    assert np.isnan(e[0]) and np.isclose(e[1], np.e + 1, rtol=1e-15, atol=0) and np.isinf(e[2])
    assert np.isnan(lg[0]) and np.isnan(lg[3]) and lg[1] == 0.0
    assert np.isnan(s)


def test_single_tensor_returns_array_list_returns_tuple():
    x = sd.input("x", (2,), "float64")
    one = sd.compile(x * 2.0)(x=np.ones(2))
    assert isinstance(one, np.ndarray) and one.shape == (2,)
    many = sd.compile([x * 2.0])(x=np.ones(2))
    assert isinstance(many, tuple) and len(many) == 1
    scalar = sd.compile(sd.sum(x))(x=np.ones(2))
    assert isinstance(scalar, np.ndarray) and scalar.shape == () and scalar.dtype == np.float64
    both = sd.compile((sd.sum(x), x))(x=np.ones(2))
    assert isinstance(both, tuple) and len(both) == 2


def test_compile_errors():
    x = sd.input("x", (2,))
    with pytest.raises(ValueError, match="no outputs"):
        sd.compile([])
    with pytest.raises(TypeError, match="outputs must be symdiff tensors"):
        sd.compile([x, np.ones(2)])
    with pytest.raises(ValueError, match="unknown backend 'tpu'"):
        sd.compile(x, backend="tpu")


def test_scalar_leaf_accepts_python_number():
    s = sd.input("s", (), "float64")
    x = sd.input("x", (2,), "float64")
    f = sd.compile(x * s)
    np.testing.assert_array_equal(f(x=np.array([1.0, 2.0]), s=3), [3.0, 6.0])
    np.testing.assert_array_equal(f(x=np.array([1.0, 2.0]), s=np.float32(0.5)), [0.5, 1.0])
