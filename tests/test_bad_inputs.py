"""The bad-input matrix: every way to misuse the DSL or a compiled function gets a clear Python
exception naming the input (or op) and the problem -- or documented, correct behaviour. Never a crash,
never a mutated input, never an output aliasing an input or another output.

Build time: shape and broadcast mismatches, bad axes, bad reshapes, unknown dtypes, bad leaves,
grad of non-scalars / with respect to non-leaves, unknown backends.
Call time (numpy, llvm and cuda-cpu backends, one parametrized test per case): missing/unexpected
names, wrong shape/rank/dtype, complex, strings, None, bool, object, ragged lists, float labels,
labels out of range, integers that do not fit, zero-size arrays for a fixed non-zero size; accepted
with documented semantics: read-only, non-contiguous, negative-stride, broadcast (zero-stride),
big-endian and unaligned arrays, lists, integer data for float inputs, float64 into float32
(rounded; beyond float32's range -> +-inf); special values (inf, nan, +-0, denormals, huge)
propagate exactly as on the numpy backend.
"""
from __future__ import annotations

import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest

import symdiff as sd
from symdiff.ir import apply
from symdiff.ops_random import rand_uniform

BACKENDS = ["numpy", "llvm", "cuda-cpu"]


# ---- build time -------------------------------------------------------------------------------------------------

def _x(shape=(2, 3), dtype="float32", name="x"):
    return sd.input(name, shape, dtype)


BUILD_CASES = {
    # shapes and broadcasting
    "add-shape-mismatch": (lambda: _x((2, 3)) + _x((4,), name="y"), ValueError,
                           r"add: shapes \(2, 3\) and \(4,\) cannot be broadcast together"),
    "mul-rank-mismatch": (lambda: _x((2, 3)) * _x((3, 2), name="y"), ValueError, r"mul: shapes .* cannot be broadcast"),
    "const-array-mismatch": (lambda: _x((2, 3)) - np.ones((2, 2)), ValueError, r"sub: shapes"),
    "broadcast_to-incompatible": (lambda: sd.broadcast_to(_x((2, 3)), (4, 3)), ValueError, r"broadcast_to"),
    "broadcast_to-fewer-dims": (lambda: sd.broadcast_to(_x((2, 3)), (3,)), ValueError, r"broadcast_to"),
    "matmul-misaligned": (lambda: _x((2, 3)) @ _x((2, 3), name="y"), ValueError, r"matmul: shapes \(2, 3\) and \(2, 3\) are not aligned"),
    "matmul-scalar": (lambda: _x(()) @ _x((3,), name="y"), ValueError, r"matmul: operands must be at least 1-D"),
    "matmul-batch-mismatch": (lambda: _x((2, 2, 3)) @ _x((3, 3, 2), name="y"), ValueError,
                              r"matmul: batch dimensions of shapes \(2, 2, 3\) and \(3, 3, 2\) cannot be broadcast"),
    "cross_entropy-label-shape": (lambda: sd.cross_entropy(_x((2, 3)), _x((3,), "int64", "lab")), ValueError,
                                  r"labels of shape \(3,\) do not match logits of shape \(2, 3\)"),
    "cross_entropy-float-labels": (lambda: sd.cross_entropy(_x((2, 3)), _x((2,), "float32", "lab")), TypeError,
                                   r"labels must be an int32/int64 tensor"),
    "cross_entropy-array-labels": (lambda: sd.cross_entropy(_x((2, 3)), np.array([0, 1])), TypeError, r"labels must be a symdiff int tensor"),
    "bool-arithmetic": (lambda: (_x((2,)) > 0) * 2.0, TypeError, r"mul: boolean tensor .* cannot be used in arithmetic"),
    "int-reduction": (lambda: sd.sum(_x((2,), "int32")), TypeError, r"sum: expected a float tensor"),
    # axes
    "sum-axis-out-of-range": (lambda: sd.sum(_x(), axis=2), ValueError, r"sum: axis 2 is out of bounds for a tensor of rank 2"),
    "mean-axis-negative-out-of-range": (lambda: sd.mean(_x(), axis=-3), ValueError, r"mean: axis -3 is out of bounds"),
    "max-repeated-axis": (lambda: sd.max(_x(), axis=(1, -1)), ValueError, r"max: repeated axis"),
    "sum-axis-float": (lambda: sd.sum(_x(), axis=1.0), TypeError, r"sum: axis must be None, an int or a tuple of ints"),
    "sum-axis-bool": (lambda: sd.sum(_x(), axis=True), TypeError, r"axis must be None, an int or a tuple"),
    "sum-axis-str": (lambda: sd.sum(_x(), axis="0"), TypeError, r"axis must be None, an int or a tuple"),
    "softmax-axis": (lambda: sd.softmax(_x(), axis=2), ValueError, r"softmax: axis 2 is out of bounds"),
    "logsumexp-axis": (lambda: sd.logsumexp(_x(), axis=(0, 5)), ValueError, r"logsumexp: axis 5 is out of bounds"),
    "transpose-not-a-permutation": (lambda: sd.transpose(_x((2, 3, 4)), (0, 1)), ValueError, r"transpose: axes .* not a permutation"),
    "transpose-repeated": (lambda: sd.transpose(_x((2, 3)), (1, 1)), ValueError, r"transpose: axes \(1, 1\) are not a permutation"),
    # reshapes
    "reshape-size": (lambda: sd.reshape(_x(), (4, 2)), ValueError, r"reshape: cannot reshape a tensor of shape \(2, 3\) \(size 6\) into shape \(4, 2\)"),
    "reshape-two-minus-one": (lambda: sd.reshape(_x(), (-1, -1)), ValueError, r"reshape: only one dimension can be -1"),
    "reshape-minus-one-indivisible": (lambda: sd.reshape(_x(), (4, -1)), ValueError, r"reshape: cannot reshape"),
    "reshape-negative": (lambda: sd.reshape(_x(), (-2, -3)), ValueError, r"reshape: cannot reshape"),
    "reshape-zero": (lambda: sd.reshape(_x(), (0, 6)), ValueError, r"reshape: cannot reshape"),
    # dtypes
    "dtype-unknown-name": (lambda: _x(dtype="float128x"), TypeError, r"unknown dtype 'float128x'; supported: float32, float64, int32, int64"),
    "dtype-float16": (lambda: _x(dtype="float16"), TypeError, r"unsupported dtype 'float16'"),
    "dtype-complex": (lambda: _x(dtype="complex64"), TypeError, r"unsupported dtype 'complex64'"),
    "dtype-int8": (lambda: _x(dtype="int8"), TypeError, r"unsupported dtype"),
    "dtype-object": (lambda: _x(dtype=object), TypeError, r"unsupported dtype"),
    "param-int": (lambda: sd.param("w", (2,), "int64"), TypeError, r"param 'w': parameters must be float32/float64"),
    "astype-int": (lambda: sd.astype(_x(), "uint8"), TypeError, r"unsupported dtype 'uint8'"),
    # leaves
    "leaf-name-not-identifier": (lambda: sd.input("my x", (2,)), ValueError, r"name must be a Python identifier"),
    "leaf-name-not-str": (lambda: sd.input(3, (2,)), ValueError, r"name must be a Python identifier"),
    "leaf-shape-negative": (lambda: sd.input("x", (-1,)), ValueError, r"shape entries must be non-negative integers"),
    "leaf-shape-float": (lambda: sd.input("x", (2.0,)), ValueError, r"shape entries must be non-negative integers"),
    "leaf-shape-str": (lambda: sd.input("x", ("2 batch",)), ValueError, r"cannot read the dimension '2 batch'"),
    "leaf-shape-dim-power": (lambda: sd.input("x", ("n ** -1",)), ValueError, r"only names, integers"),
    "leaf-shape-none": (lambda: sd.input("x", None), TypeError, r"shape must be a tuple of ints"),
    "duplicate-leaf-names": (lambda: sd.compile(_x((2,)) + _x((3, 2)), "numpy"), ValueError,
                             r"leaf name 'x' is used twice in one graph"),
    # constants
    "const-str": (lambda: _x() + "a", TypeError, r"cannot use 'a' \(str\) as a tensor"),
    "const-none": (lambda: _x() * None, TypeError, r"cannot use None"),
    "const-complex": (lambda: _x() * 1j, TypeError, r"complex values are not supported"),
    "const-bool": (lambda: _x() * True, TypeError, r"cannot use True \(bool\) as a tensor"),
    "const-object-array": (lambda: _x((2,)) + np.array([1, None]), TypeError, r"cannot use an array of dtype object"),
    "truth-value": (lambda: bool(_x()), TypeError, r"a symbolic tensor has no truth value"),
    # grad
    "grad-non-scalar": (lambda: sd.grad(sd.exp(_x()), [_x()]), ValueError,
                        r"grad: y must be a scalar tensor, got shape \(2, 3\) \(reduce it first"),
    "grad-wrt-non-leaf": (lambda: sd.grad(sd.sum(sd.exp(_x())), [sd.exp(_x())]), ValueError,
                          r"grad: can only differentiate with respect to sd.input/sd.param leaves, got a exp node"),
    "grad-wrt-int-leaf": (lambda: sd.grad(sd.cross_entropy(_x(), _x((2,), "int64", "lab")), [_x((2,), "int64", "lab")]),
                          TypeError, r"grad: cannot differentiate with respect to integer tensor 'lab'"),
    "grad-wrt-array": (lambda: sd.grad(sd.sum(_x()), [np.ones(3)]), TypeError, r"grad: wrt entries must be symdiff tensors"),
    "grad-of-array": (lambda: sd.grad(np.float32(1.0), [_x()]), TypeError, r"grad: y must be a symdiff tensor"),
    # compile
    "compile-unknown-backend": (lambda: sd.compile(sd.sum(_x()), backend="tpu"), ValueError,
                                r"compile: unknown backend 'tpu'; registered backends: cuda, cuda-cpu, llvm, numpy"),
    "compile-no-outputs": (lambda: sd.compile([]), ValueError, r"compile: no outputs given"),
    "compile-not-a-tensor": (lambda: sd.compile([np.ones(3)]), TypeError, r"compile: outputs must be symdiff tensors"),
    "rand_uniform-float-seed": (lambda: rand_uniform(_x((), "float32", "seed"), 0, (2,)), TypeError,
                                r"rand_uniform: seed must be an int32/int64 scalar tensor"),
}


@pytest.mark.parametrize("case", sorted(BUILD_CASES))
def test_build_time_errors(case):
    build, exc, msg = BUILD_CASES[case]
    with pytest.raises(exc, match=msg):
        build()


# ---- call time -------------------------------------------------------------------------------------------------

def _graph():
    x = sd.input("x", (2, 3), "float32")
    w = sd.param("W", (3, 3), "float32")
    lab = sd.input("lab", (2,), "int64")
    h = x @ w
    loss = sd.cross_entropy(h, lab)
    return [loss, h * 2.0, x] + sd.grad(loss, [w])  # x itself is an output: it must come back as a copy


@pytest.fixture(scope="module", params=BACKENDS)
def fn(request):
    return sd.compile(_graph(), backend=request.param)


@pytest.fixture
def good():
    rng = np.random.default_rng(0)
    return {"x": rng.standard_normal((2, 3)).astype(np.float32), "W": rng.standard_normal((3, 3)).astype(np.float32),
            "lab": np.array([0, 2], np.int64)}


def _ro(a):
    a = np.array(a)
    a.setflags(write=False)
    return a


# (name, input, value builder from the good value, exception, message)
CALL_ERRORS = [
    ("missing", None, "MISSING", TypeError, r"missing input\(s\) 'x'\. The function takes: x: float32\[2, 3\] \(input\)"),
    ("unexpected", "y", lambda v: np.ones(3), TypeError, r"unexpected input\(s\) 'y'"),
    ("wrong-shape", "x", lambda v: np.zeros((3, 2), np.float32), ValueError, r"input 'x': expected shape \(2, 3\), got \(3, 2\)"),
    ("wrong-rank", "x", lambda v: v[None], ValueError, r"input 'x': expected shape \(2, 3\), got \(1, 2, 3\)"),
    ("scalar-for-array", "x", lambda v: 1.0, ValueError, r"input 'x': expected shape \(2, 3\), got \(\)"),
    ("zero-size", "x", lambda v: np.zeros((0, 3), np.float32), ValueError, r"input 'x': expected shape \(2, 3\), got \(0, 3\)"),
    ("zero-size-labels", "lab", lambda v: np.zeros((0,), np.int64), ValueError, r"input 'lab': expected shape \(2,\), got \(0,\)"),
    ("complex", "x", lambda v: v.astype(np.complex64), TypeError, r"input 'x': complex arrays are not supported"),
    ("complex-scalar-list", "W", lambda v: [[1j] * 3] * 3, TypeError, r"input 'W': complex arrays are not supported"),
    ("string", "x", lambda v: "abc", TypeError, r"input 'x': expected a numeric array float32\[2, 3\], got str"),
    ("string-array", "x", lambda v: np.full((2, 3), "a"), TypeError, r"input 'x': expected a numeric array of dtype float32, got dtype <U1"),
    ("bytes", "x", lambda v: b"abc", TypeError, r"input 'x': .* got bytes"),
    ("none", "x", lambda v: None, TypeError, r"input 'x': expected a numeric array float32\[2, 3\], got NoneType"),
    ("none-in-list", "x", lambda v: [[1.0, None, 2.0]] * 2, TypeError, r"input 'x': expected a numeric array of dtype float32, got dtype object"),
    ("object-array", "x", lambda v: v.astype(object), TypeError, r"input 'x': .* got dtype object"),
    ("ragged-list", "x", lambda v: [[1.0, 2.0, 3.0], [1.0]], TypeError, r"input 'x': cannot convert list to a numeric array"),
    ("bool", "x", lambda v: v > 0, TypeError, r"input 'x': expected a numeric array of dtype float32, got dtype bool"),
    ("bool-list", "x", lambda v: [[True, False, True]] * 2, TypeError, r"input 'x': .* got dtype bool"),
    ("bool-labels", "lab", lambda v: np.array([True, False]), TypeError, r"input 'lab': .* got dtype bool"),
    ("datetime", "x", lambda v: np.zeros((2, 3), "datetime64[s]"), TypeError, r"input 'x': .* got dtype datetime64"),
    ("float-labels", "lab", lambda v: v.astype(np.float64), TypeError, r"input 'lab': labels must be integers \(int64\), got float64"),
    ("float-labels-integral", "lab", lambda v: [0.0, 1.0], TypeError, r"input 'lab': labels must be integers"),
    ("label-too-large", "lab", lambda v: np.array([0, 3]), ValueError, r"input 'lab': label 3 is out of range \[0, 3\)"),
    ("label-negative", "lab", lambda v: np.array([-1, 0], np.int32), ValueError, r"input 'lab': label -1 is out of range \[0, 3\)"),
    ("label-huge-uint64", "lab", lambda v: np.array([0, 2**64 - 1], np.uint64), ValueError, r"input 'lab': label 18446744073709551615 is out of range"),
]


@pytest.mark.parametrize("name,key,make,exc,msg", CALL_ERRORS, ids=[c[0] for c in CALL_ERRORS])
def test_call_errors(fn, good, name, key, make, exc, msg):
    kwargs = {k: v.copy() for k, v in good.items()}
    if make == "MISSING":
        del kwargs["x"]
    else:
        kwargs[key] = make(kwargs.get(key))
    before = {k: np.array(v, copy=True) if isinstance(v, np.ndarray) else v for k, v in kwargs.items()}
    with pytest.raises(exc, match=msg):
        fn(**kwargs)
    for k, v in kwargs.items():  # nothing was written on the way to the error
        if isinstance(v, np.ndarray) and v.dtype.kind in "biuf":
            np.testing.assert_array_equal(v, before[k])


def test_positional_arguments_are_rejected(fn, good):
    with pytest.raises(TypeError):
        fn(good["x"], good["W"], good["lab"])


def _reference(good):
    return sd.compile(_graph(), backend="numpy")(**good)


def _bigendian(v):
    return v.astype(v.dtype.newbyteorder(">"))


def _unaligned(v):
    raw = np.zeros(v.nbytes + 1, np.uint8)
    out = raw[1:].view(v.dtype).reshape(v.shape)
    out[...] = v
    assert not out.flags.aligned
    return out


# (name, input, value builder): accepted, the result equals the one for a contiguous copy of the value
CALL_ACCEPTED = [
    ("read-only", "x", _ro),
    ("read-only-params", "W", _ro),
    ("non-contiguous", "x", lambda v: np.repeat(v, 2, axis=1)[:, ::2]),
    ("negative-stride", "x", lambda v: v[::-1, ::-1].copy()[::-1, ::-1]),
    ("transposed-view", "W", lambda v: np.ascontiguousarray(v.T).T),
    ("fortran-order", "W", np.asfortranarray),
    ("zero-stride-broadcast", "x", lambda v: np.broadcast_to(v[:1], (2, 3))),
    ("zero-stride-scalar", "W", lambda v: np.broadcast_to(np.float32(0.5), (3, 3))),
    ("big-endian", "x", _bigendian),
    ("unaligned", "x", _unaligned),
    ("list", "x", lambda v: v.tolist()),
    ("labels-int32", "lab", lambda v: v.astype(np.int32)),
    ("labels-uint8", "lab", lambda v: v.astype(np.uint8)),
    ("labels-list", "lab", lambda v: v.tolist()),
    ("labels-read-only-reversed", "lab", lambda v: _ro(v[::-1])[::-1]),
]


@pytest.mark.parametrize("name,key,make", CALL_ACCEPTED, ids=[c[0] for c in CALL_ACCEPTED])
def test_call_accepted_variants(fn, good, name, key, make):
    kwargs = dict(good)
    kwargs[key] = make(good[key])
    ref = _reference({**good, key: np.ascontiguousarray(kwargs[key], dtype=good[key].dtype)})
    snapshot = {k: np.array(v, copy=True) for k, v in kwargs.items()}
    out = fn(**kwargs)
    for o, r in zip(out, ref):
        np.testing.assert_allclose(o, r, rtol=2e-6, atol=1e-6)
        assert o.dtype == r.dtype and o.flags.c_contiguous and o.flags.writeable
    for k, v in kwargs.items():  # inputs never written, not even the read-only or strided ones
        np.testing.assert_array_equal(np.asarray(v), snapshot[k])
    _assert_no_alias(out, kwargs)


def _assert_no_alias(out, kwargs):
    for i, o in enumerate(out):
        for j in range(i):
            assert not np.shares_memory(o, out[j]), f"outputs {i} and {j} alias"
        for k, v in kwargs.items():
            if isinstance(v, np.ndarray):
                assert not np.shares_memory(o, v), f"output {i} aliases input {k!r}"


def test_identity_output_is_a_copy(fn, good):
    """The graph returns x itself: the caller gets a fresh array, writing to it leaves x alone."""
    out = fn(**good)
    x_out = out[2]
    np.testing.assert_array_equal(x_out, good["x"])
    assert not np.shares_memory(x_out, good["x"])
    x_out[...] = 7
    assert not np.any(good["x"] == 7)
    out2 = fn(**good)  # and later calls are unaffected
    assert not np.any(out2[2] == 7)


def test_numeric_casts(fn, good):
    """Documented: integer data and float64 data for a float32 input are cast like ndarray.astype."""
    ref = _reference(good)
    x64 = good["x"].astype(np.float64) + 1e-9  # rounds back to the float32 values
    out = fn(**{**good, "x": x64})
    np.testing.assert_allclose(out[1], ref[1], rtol=1e-6)
    xi = np.array([[1, 2, 3], [-4, 5, 6]], np.int16)
    out = fn(**{**good, "x": xi})
    np.testing.assert_allclose(out[2], xi.astype(np.float32))
    # float64 beyond float32's range -> +-inf (numpy warns "overflow encountered in cast")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        out = fn(**{**good, "x": np.array([[1e300, -1e300, 1e-300], [0, 0, 0]])})
    np.testing.assert_array_equal(out[2][0], np.array([np.inf, -np.inf, 0.0], np.float32))


@pytest.mark.parametrize("backend", BACKENDS)
def test_int_inputs_that_do_not_fit_are_rejected(backend):
    """An int32 seed given a value outside int32 raises (it used to wrap silently on numpy/cuda-cpu)."""
    seed, step = sd.input("seed", (), "int32"), sd.input("step", (), "int64")
    x = sd.input("x", (3,), "float64")
    f = sd.compile(x * rand_uniform(seed, step, (3,), "float64"), backend=backend)
    ok = f(seed=np.int64(-5), step=2**40, x=np.ones(3))
    assert ok.shape == (3,)
    for bad in (2**31, -2**31 - 1, np.uint64(2**63)):
        with pytest.raises(ValueError, match=r"input 'seed': value -?\d+ does not fit in int32"):
            f(seed=bad, step=1, x=np.ones(3))
    with pytest.raises(ValueError, match=r"input 'step': value 9223372036854775808 does not fit in int64"):
        f(seed=1, step=np.uint64(2**63), x=np.ones(3))


# ---- special values: very large, denormal, inf, nan, signed zeros -------------------------------------------------

UNARY = ["neg", "square", "sqrt", "exp", "log", "log1p", "expm1", "sin", "cos", "tanh", "abs", "sign", "sigmoid",
         "softplus", "relu", "heaviside", "step"]
BINARY = ["add", "sub", "mul", "div", "pow", "maximum", "minimum"]


def _specials(dt):
    fi = np.finfo(dt)
    return np.array([np.inf, -np.inf, np.nan, 0.0, -0.0, fi.smallest_subnormal, -fi.smallest_subnormal * 7, fi.tiny,
                     -fi.tiny / 3, fi.max, -fi.max / 3, 1e-30, 1e19, -88.5, 88.8, 709.0, 711.0, 1.5, -2.5, 1e5], dt)


@pytest.mark.parametrize("backend", ["llvm", "cuda-cpu"])
@pytest.mark.parametrize("dt", ["float32", "float64"])
def test_special_values_match_numpy(backend, dt):
    """Every elementwise op on every pair of special values, reductions and row ops over rows that hold
    them: NaN where numpy has NaN, the same infinities and signed zeros, finite values close.

    Documented exception: llvm sin/cos are only accurate for |x| <= 2e5 (float32) / 3e12 (float64)
    (codegen/llvm/mathlib.py), so huge arguments are left out for them."""
    s = _specials(dt)
    n = len(s)
    a, b = sd.input("a", (n,), dt), sd.input("b", (n, 1), dt)
    outs = [apply(op, [a]) for op in UNARY] + [apply(op, [b, a]) for op in BINARY]
    prod = b * a
    outs += [sd.sum(prod, axis=1), sd.max(prod, axis=1), sd.max(b + a, axis=0), sd.logsumexp(prod, axis=1),
             sd.logsumexp(prod, axis=0, keepdims=True), sd.softmax(prod, axis=1), sd.log_softmax(prod, axis=0),
             sd.matmul(prod, a), sd.mean(prod)]
    outs += sd.grad(sd.sum(sd.max(prod, axis=1)) + sd.sum(sd.logsumexp(prod, axis=1)), [a])
    vals = {"a": s, "b": s.reshape(n, 1)}
    ref = sd.compile(outs, backend="numpy")(**vals)
    got = sd.compile(outs, backend=backend)(**vals)
    names = UNARY + BINARY + ["sum", "max1", "max0", "lse1", "lse0", "softmax", "log_softmax", "matvec", "mean", "grad"]
    limit = 2e5 if dt == "float32" else 3e12
    for nm, g, r in zip(names, got, ref):
        if nm in ("sin", "cos"):
            keep = ~(np.abs(s) > limit) | ~np.isfinite(s)
            g, r = g[keep], r[keep]
        assert np.array_equal(np.isnan(g), np.isnan(r)), f"{nm}: NaN placement differs\n{g}\n{r}"
        fin, inf = np.isfinite(r), np.isinf(r)
        assert np.array_equal(g[inf], r[inf]), f"{nm}: infinities differ"
        tol = 4e-6 if dt == "float32" else 1e-13
        if nm in ("sum", "matvec", "mean", "grad"):  # summation order may differ
            np.testing.assert_allclose(g[fin], r[fin], rtol=tol * 100, atol=0, err_msg=nm)
        else:
            np.testing.assert_allclose(g[fin], r[fin], rtol=tol, atol=0, err_msg=nm)
            zero = fin & (r == 0)
            assert np.array_equal(np.signbit(g[zero]), np.signbit(r[zero])), f"{nm}: signed zeros differ"


# ---- no crash, ever: the same matrix in a child process ------------------------------------------------------------

def test_bad_calls_never_crash_the_interpreter(tmp_path):
    """Run every bad call against llvm and cuda-cpu in a subprocess: a segfault would show up as a
    signal exit status here instead of killing the test run."""
    script = textwrap.dedent("""
        import faulthandler, sys, numpy as np
        faulthandler.enable()
        sys.path.insert(0, %r)
        import test_bad_inputs as t
        rng = np.random.default_rng(0)
        good = {"x": rng.standard_normal((2, 3)).astype(np.float32),
                "W": rng.standard_normal((3, 3)).astype(np.float32), "lab": np.array([0, 2])}
        n = 0
        for backend in ("llvm", "cuda-cpu"):
            f = t.sd.compile(t._graph(), backend=backend)
            for name, key, make, exc, msg in t.CALL_ERRORS:
                kw = dict(good)
                if make == "MISSING":
                    del kw["x"]
                else:
                    kw[key] = make(kw.get(key))
                try:
                    f(**kw)
                except (TypeError, ValueError):
                    n += 1
                else:
                    raise SystemExit("accepted: " + name)
            for name, key, make in t.CALL_ACCEPTED:
                f(**{**good, key: make(good[key])})
            for junk in (object(), [object()], np.empty((2, 3), dtype="V4"), np.zeros((2, 3), dtype=[("a", "f4")]),
                         np.ma.masked_array(good["x"]), memoryview(b"abcdef"), float("nan"), 10**30, 10**400):
                try:
                    f(**{**good, "x": junk})
                except (TypeError, ValueError):
                    n += 1
            del f
        print("ok", n)
    """ % str(__import__("pathlib").Path(__file__).parent))
    p = tmp_path / "child.py"
    p.write_text(script)
    r = subprocess.run([sys.executable, str(p)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, f"child exited with {r.returncode}\n{r.stdout}\n{r.stderr[-3000:]}"
    assert r.stdout.startswith("ok")
