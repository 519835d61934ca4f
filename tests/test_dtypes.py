"""Bool and integer tensors as values: NumPy 2 promotion (against np.result_type itself), integer arithmetic,
floor division / remainders, comparisons, bool masks and casts on every backend (exact results and dtypes
against NumPy), the DType object, and the errors (bool in arithmetic, gradients of int/bool results)."""
from __future__ import annotations

import json
import pickle
import warnings

import numpy as np
import pytest

import symdiff as sd
from symdiff import dtypes as D

from test_ops_backends import BACKENDS

DTS = ["bool", "int32", "int64", "float32", "float64"]
I32MIN, I64MIN = np.iinfo(np.int32).min, np.iinfo(np.int64).min


# -- promotion: the graph's dtypes are NumPy 2's ------------------------------------------------------------------

@pytest.mark.parametrize("a", DTS)
@pytest.mark.parametrize("b", DTS)
def test_promotion_of_two_tensors_matches_numpy(a, b):
    x, y = sd.input("x", (2,), a), sd.input("y", (2,), b)
    za, zb = np.ones(2, a), np.ones(2, b)
    assert (x < y).dtype == "bool" and (x == y).dtype == np.bool_
    assert sd.where(x > y, x, y).dtype == np.result_type(za, zb)
    assert sd.logical_and(x, y).dtype == "bool"
    if "bool" in (a, b):
        with pytest.raises(TypeError, match=r"add: boolean tensor '[xy]'"):
            sd.add(x, y)
        with pytest.raises(TypeError, match=r"div: boolean tensor '[xy]'"):
            sd.divide(x, y)
        return
    assert sd.add(x, y).dtype == np.result_type(za, zb) == (za + zb).dtype
    assert sd.floor_divide(x, y).dtype == np.floor_divide(za, zb).dtype
    assert sd.divide(x, y).dtype == np.divide(za, zb).dtype  # int / int -> float64
    assert sd.exp(x).dtype == np.exp(za).dtype and sd.sqrt(y).dtype == np.sqrt(zb).dtype


@pytest.mark.parametrize("a", DTS)
@pytest.mark.parametrize("scalar", [True, 3, 2.5, -1])
def test_weak_python_scalars_match_numpy(a, scalar):
    x = sd.input("x", (2,), a)
    za = np.zeros(2, a)
    assert (x < scalar).dtype == "bool"
    assert sd.where(x > 0, x, scalar).dtype == np.where(za > 0, za, scalar).dtype
    if a == "bool" or isinstance(scalar, bool):
        with pytest.raises(TypeError, match="boolean tensor|cannot use True"):
            x * scalar
        return
    assert (x * scalar).dtype == (za * scalar).dtype
    assert (scalar - x).dtype == (scalar - za).dtype
    assert (x / scalar).dtype == (za / scalar).dtype


def test_promotion_function_table():
    for a in DTS:
        for b in DTS:
            assert D.promote(a, b) == np.result_type(np.zeros(1, a), np.zeros(1, b)).name
    assert D.result_type(["int32"], ["i"]) == "int32" and D.result_type(["int32"], ["f"]) == "float64"
    assert D.result_type(["bool"], ["i"]) == "int64" and D.result_type(["float32"], ["i", "f"]) == "float32"
    with pytest.raises(OverflowError, match=r"add: Python integer 1099511627776 out of bounds for int32"):
        sd.input("k", (2,), "int32") + 2 ** 40


# -- every backend: integer arithmetic, division, comparisons, masks, casts ----------------------------------------

def _graph():
    i = sd.input("i", (8,), "int32")
    j = sd.input("j", (8,), "int64")
    k = sd.input("k", (8,), "int32")
    x = sd.input("x", (8,), "float64")
    y = sd.input("y", (8,), "float64")
    f = sd.input("f", (8,), "float32")
    m = sd.input("m", (8,), "bool")
    outs = {
        "i+j": i + j, "i-k": i - k, "i*k": i * k, "-i": -i, "abs(i)": abs(i), "max(i,j)": sd.maximum(i, j),
        "min(i,3)": sd.minimum(i, 3), "square(k)": sd.square(k), "sign(j)": sd.sign(j),
        "i//k": i // k, "i%k": i % k, "fmod(i,k)": sd.fmod(i, k), "j//i": j // i, "j%i": j % i,
        "fmod(j,i)": sd.fmod(j, i), "i//2": i // 2, "-7%k": -7 % k, "i/k": i / k, "i+0.5": i + 0.5,
        "f*i": f * i, "sqrt(abs(k))": sd.sqrt(abs(k)),
        "x//y": x // y, "x%y": x % y, "fmod(x,y)": sd.fmod(x, y), "f//f": f // (f * 0.5 - 1), "f%3": f % 3.0,
        "x<y": x < y, "x<=y": x <= y, "x>y": x > y, "x>=y": x >= y, "x==y": x == y, "x!=y": x != y,
        "i<x": i < x, "j==i": j == i, "m==m": m == ~m,
        "isnan": sd.isnan(x), "isinf": sd.isinf(x), "isfinite": sd.isfinite(f),
        "m&(i>0)": m & (i > 0), "m|(x>0)": m | (x > 0), "m^(j<0)": m ^ (j < 0), "~m": ~m,
        "and(x,i)": sd.logical_and(x, i), "not(f)": sd.logical_not(f),
        "where(m,i,j)": sd.where(m, i, j), "where(x,m,~m)": sd.where(x, m, ~m), "where(m,f,2)": sd.where(m, f, 2),
        "m": m, "x.astype(bool)": x.astype("bool"), "y.astype(int32)": y.astype("int32"),
        "f.astype(int64)": f.astype("int64"), "m.astype(f32)": m.astype("float32"), "m.astype(i64)": m.astype("int64"),
        "j.astype(i32)": j.astype("int32"), "i.astype(bool)": i.astype("bool"), "i.astype(f32)": i.astype("float32"),
        "clip(i,-3,4)": sd.clip(i, -3, 4), "nan_to_num": sd.nan_to_num(x),
        "select": sd.select([i < 0, m], [j, k], default=-1),
        "const_bool": sd.where(sd.const(np.array([True, False] * 4), "bool"), x, y),
    }
    return outs


def _values():
    return {
        "i": np.array([7, -7, 7, -7, 0, I32MIN, 5, -1], np.int32),
        "j": np.array([3, -3, 1, 0, I64MIN, -1, 2 ** 40, 9], np.int64),
        "k": np.array([2, 2, -2, -2, 0, -1, 0, 3], np.int32),
        "x": np.array([1.0, -1.0, np.nan, np.inf, 0.0, -0.0, 5.5, -7.0]),
        "y": np.array([0.1, 3.0, 1.0, 2.0, 0.0, 2.0, np.inf, -2.0]),
        "f": np.array([1.5, -2.5, np.nan, -np.inf, 0.0, 7.0, -0.5, 3.25], np.float32),
        "m": np.array([1, 0, 1, 1, 0, 0, 1, 0], bool),
    }


_ORACLE: dict = {}


def _oracle():
    if not _ORACLE:
        outs = _graph()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            got = sd.compile(list(outs.values()), "numpy", simplify_graph=False)(**_values())
        _ORACLE.update(zip(outs, got))
    return _ORACLE


def test_numpy_backend_matches_numpy_itself():
    v, got = _values(), _oracle()
    i, j, k, x, y, f, m = (v[n] for n in "ijkxyfm")
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        want = {"i+j": i + j, "i//k": i // k, "i%k": i % k, "fmod(i,k)": np.fmod(i, k), "j//i": j // i, "j%i": j % i,
                "-7%k": -7 % k, "i/k": i / k, "f*i": f * i, "x//y": x // y, "x%y": x % y, "fmod(x,y)": np.fmod(x, y),
                "x!=y": x != y, "i<x": i < x, "m&(i>0)": m & (i > 0), "and(x,i)": np.logical_and(x, i),
                "where(m,f,2)": np.where(m, f, 2), "x.astype(bool)": x.astype(bool), "y.astype(int32)": y[:6].astype(np.int32),
                "m.astype(f32)": m.astype(np.float32), "j.astype(i32)": j.astype(np.int32), "clip(i,-3,4)": np.clip(i, -3, 4),
                "nan_to_num": np.nan_to_num(x), "select": np.select([i < 0, m], [j, k], default=-1), "square(k)": k * k}
    for name, w in want.items():
        g = got[name][:6] if name == "y.astype(int32)" else got[name]  # (inf -> int is unspecified)
        assert g.dtype == w.dtype, name
        np.testing.assert_array_equal(g, w, err_msg=name)
    assert got["i//k"][4] == 0 and got["i%k"][4] == 0 and got["fmod(i,k)"][4] == 0  # integer division by zero
    assert got["i//k"][5] == I32MIN and got["i%k"][5] == 0  # MIN // -1 wraps
    assert got["x//y"][0] == 9.0  # NumPy's divmod: 1.0 // 0.1 == 9


@pytest.mark.parametrize("backend", [b for b in BACKENDS if b != "numpy"])
def test_compiled_backends_agree_exactly(backend):
    outs, ref = _graph(), _oracle()
    got = sd.compile(list(outs.values()), backend)(**_values())
    for name, g in zip(outs, got):
        r = ref[name]
        if name in ("y.astype(int32)", "f.astype(int64)"):  # a float out of the int range casts to an unspecified value
            ok = np.isfinite(_values()["y" if name[0] == "y" else "f"])
            g, r = g[ok], r[ok]
        assert g.dtype == r.dtype, f"{backend}: {name}: {g.dtype} != {r.dtype}"
        np.testing.assert_array_equal(g, r, err_msg=f"{backend}: {name}")


# -- gradients ------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("backend", BACKENDS)
def test_gradients_stop_at_bool_and_int_edges(backend):
    x, y = sd.input("x", (4,), "float64"), sd.input("y", (4,), "float64")
    f = sd.sum(sd.where(x > 0, x * x, y * 2) + sd.stop_gradient(x) * y + x * (x > 0.5).astype("float64")
               + x.astype("int32") * y + sd.clip(x, -0.5, 0.5))
    gx, gy = sd.grad(f, [x, y])
    xv, yv = np.array([1.0, -2.0, 0.3, -0.2]), np.array([0.7, 1.1, -1.3, 2.0])
    fn = sd.compile([gx, gy], backend)
    got = fn(**{k: v for k, v in (("x", xv), ("y", yv)) if k in fn.input_names})
    np.testing.assert_allclose(got[0], np.where(xv > 0, 2 * xv, 0) + (xv > 0.5) + (np.abs(xv) < 0.5), rtol=1e-12)
    np.testing.assert_allclose(got[1], np.where(xv > 0, 0, 2) + xv + np.trunc(xv), rtol=1e-12)


def test_float_division_gradients_as_jax():
    x, y = sd.input("x", (3,), "float64"), sd.input("y", (3,), "float64")
    xv, yv = np.array([5.3, -5.3, 2.2]), np.array([2.0, 2.0, -0.7])
    g = sd.compile([*sd.grad(sd.sum(x // y), [x, y]), *sd.grad(sd.sum(x % y), [x, y]),
                    *sd.grad(sd.sum(sd.fmod(x, y)), [x, y])], "numpy")(x=xv, y=yv)
    np.testing.assert_array_equal(g[0], 0)
    np.testing.assert_array_equal(g[1], 0)
    np.testing.assert_allclose(g[2], 1)
    np.testing.assert_allclose(g[3], -np.floor_divide(xv, yv))
    np.testing.assert_allclose(g[4], 1)
    np.testing.assert_allclose(g[5], -np.trunc(xv / yv), rtol=1e-12)


def test_errors_name_the_op_and_the_input():
    x, m = sd.input("x", (3,), "float32"), sd.input("mask", (3,), "bool")
    with pytest.raises(TypeError, match=r"mul: boolean tensor 'mask' \(bool\[3\]\) cannot be used in arithmetic"):
        m * 2.0
    with pytest.raises(TypeError, match=r"tanh: boolean tensor 'mask'"):
        sd.tanh(m)
    k = sd.input("k", (), "int64")
    with pytest.raises(TypeError, match=r"grad: output 'mul\[\]' \(int64\[\]\) is an integer tensor; integer and "
                                         r"bool results are not differentiable"):
        sd.grad(k * 2, [x])
    s = sd.input("s", (), "float32")
    with pytest.raises(TypeError, match=r"grad: output 'greater\[\]' \(bool\[\]\) is a bool tensor"):
        sd.grad(s > 0, [s])
    with pytest.raises(TypeError, match=r"sum: expected a float tensor, got bool tensor 'mask'"):
        sd.sum(m)
    with pytest.raises(TypeError, match=r"&: operands must be bool tensors .* got int64 tensor 'k'"):
        m & k
    with pytest.raises(ValueError, match="select: condlist and choicelist must have the same length"):
        sd.select([m], [x, x])
    with pytest.raises(TypeError, match="no truth value"):
        bool(x == x)


# -- the DType object -------------------------------------------------------------------------------------------------

def test_dtype_behaves_like_a_string_and_a_numpy_dtype():
    x = sd.input("x", (2,), "float32")
    d = x.dtype
    assert isinstance(d, str) and d == "float32" and "float32" == d and d != "float64"
    assert d == np.float32 and np.float32 == d and d == np.dtype("float32") and np.dtype("float32") == d
    assert d != np.float64 and not (d == np.int32) and (d == None) is False  # noqa: E711
    assert hash(d) == hash("float32") and {"float32": 1}[d] == 1 and {d: 2}["float32"] == 2
    assert np.dtype(d) == np.float32 and np.zeros(2, dtype=d).dtype == np.float32
    assert (d.name, d.kind, d.itemsize, d.type, d.char) == ("float32", "f", 4, np.float32, "f")
    b = (x > 0).dtype
    assert (b.name, b.kind, b.itemsize, b.type) == ("bool", "b", 1, np.bool_) and b == bool and b == np.bool_
    assert sd.input("k", (2,), "int64").dtype.kind == "i" and sd.input("k", (2,), np.int32).dtype == np.int32
    assert pickle.loads(pickle.dumps(d)) == d and json.dumps(d) == '"float32"' and repr(d) == "'float32'"
    assert x.astype(np.float64).dtype == "float64" and sd.input("m", (2,), bool).dtype == "bool"


@pytest.mark.skipif(__import__("shutil").which("gcc") is None, reason="gcc is needed to link the library")
def test_exported_library_takes_and_returns_bool_and_int_arrays(tmp_path):
    import ctypes

    from symdiff.codegen.runtime.export import export_c
    x, m, k = sd.input("x", (4,), "float64"), sd.input("m", (4,), "bool"), sd.input("k", (4,), "int32")
    outs = [m & (x > 0), k // 3, sd.where(m, x, k)]
    res = export_c(outs, "masks", tmp_path, output_names=["both", "q", "sel"])
    header = (tmp_path / "masks.h").read_text()
    assert "#include <stdbool.h>" in header and "const bool *m" in header and "bool *both" in header
    assert "const int32_t *k" in header
    lib = ctypes.CDLL(str(res.shared_library))
    vals = {"x": np.array([1.0, -1.0, 2.0, 0.0]), "m": np.array([1, 1, 0, 1], bool), "k": np.array([7, -7, 3, 0], np.int32)}
    ins = [vals[a.name] for a in res.args if a.role != "output"]
    got = [np.empty(a.shape, dtype=a.dtype) for a in res.args if a.role == "output"]
    run = lib.masks_run
    run.argtypes = [ctypes.c_void_p] * (len(ins) + len(got) + 2)
    assert run(*[a.ctypes.data_as(ctypes.c_void_p) for a in ins + got], None, None) == 0
    for g, w in zip(got, sd.compile(outs, "numpy")(**vals)):
        assert g.dtype == w.dtype
        np.testing.assert_array_equal(g, w)


@pytest.mark.parametrize("backend", BACKENDS)
def test_bool_and_int_leaves_check_their_arguments(backend):
    m, x, k = sd.input("m", (3,), "bool"), sd.input("x", (3,), "float32"), sd.input("k", (3,), "int32")
    f = sd.compile([sd.where(m, x, k), ~m], backend)
    ok = {"m": np.array([1, 0, 1], bool), "x": np.full(3, 2.0, np.float32), "k": np.arange(3, dtype=np.int32)}
    sel, inv = f(**ok)
    assert sel.dtype == np.float64 and inv.dtype == np.bool_
    np.testing.assert_array_equal(sel, [2.0, 1.0, 2.0])
    np.testing.assert_array_equal(inv, [False, True, False])
    with pytest.raises(TypeError, match=r"input 'm': expected a bool array \(a mask\) of shape \(3,\), got dtype int64"):
        f(**{**ok, "m": np.array([1, 0, 1])})
    with pytest.raises(TypeError, match=r"input 'x': expected a numeric array of dtype float32, got dtype bool"):
        f(**{**ok, "x": ok["m"]})
    assert f(**{**ok, "k": [5, 6, 7]})[0][1] == 6.0  # a list of Python ints into an int32 leaf
    with pytest.raises(ValueError, match=r"input 'k': value 4294967296 does not fit in int32"):
        f(**{**ok, "k": np.array([0, 2 ** 32, 1])})


def test_simplifier_folds_int64_constants_exactly():
    k = sd.input("k", (2,), "int64")
    out = k + sd.const(np.array(2 ** 60 + 1), "int64") * 1 + (sd.const(np.array(2 ** 62 + 3), "int64") - 1)
    got = sd.compile(out, "numpy")(k=np.array([1, 2]))
    np.testing.assert_array_equal(got, np.array([1, 2]) + (2 ** 60 + 1) + (2 ** 62 + 2))


@pytest.mark.skipif(__import__("shutil").which("nvcc") is None, reason="nvcc is needed to check the device code")
def test_cuda_device_code_of_every_dtype_compiles_with_nvcc():
    from symdiff.codegen.cuda import backend as cb
    from symdiff.codegen.cuda.render import render_cuda
    from symdiff.codegen.lower import lower
    source, _header = render_cuda(lower(sd.simplify(list(_graph().values()))))
    rc, log = cb.nvcc_ptx(source)
    assert rc == 0, log[-3000:]


@pytest.mark.parametrize("backend", BACKENDS)
def test_one_hot_in_bool_and_int_dtypes(backend):
    from symdiff.ir import apply
    lab = sd.input("lab", (3,), "int64")
    outs = [apply("one_hot", [lab], depth=4, dtype=d) for d in ("bool", "int32")]
    for got, d in zip(sd.compile(outs, backend)(lab=np.array([0, 3, 1])), ("bool", "int32")):
        assert got.dtype == d
        np.testing.assert_array_equal(got, np.eye(4, dtype=d)[[0, 3, 1]])
