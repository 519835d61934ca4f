"""symdiff.codegen.llvm.mathlib: vectorisable exp/log/sin/... in LLVM IR, against numpy.

Each function x dtype is compiled into ``k(in0, in1, out, n)`` (emit_elementwise_test_kernel),
JIT-compiled at O3 and checked for
  * accuracy: max relative error in ulp against a higher-precision reference (float64 numpy for
    float32; long double numpy for float64), over random values spanning the whole useful range;
  * special values (0, -0, +-inf, NaN, denormals, over/underflow thresholds) as numpy gives them;
  * vectorisation: the optimised loop works on vector types and has no call left;
each also with ``MathLib(hw_fma=False)``, the code for targets without FMA units (``soft_fma``: SSE4.2).
No timing assertions (the machine is shared).
"""
from __future__ import annotations

import ctypes
import re
import zlib

import numpy as np
import pytest

from symdiff.codegen.llvm import jit as llvm_jit
from symdiff.codegen.llvm.mathlib import ARITY, FUNCTIONS, MathLib, emit_elementwise_test_kernel

DTYPES = ("float32", "float64")
_KFN = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64)
_kernels: dict = {}

# long double must be wider than double to serve as the float64 reference (x86-64: 80-bit)
_LD_OK = np.finfo(np.longdouble).nmant >= 60

# max ulp error allowed (measured maxima are ~0.5 below these; the brief's limits are 4 / 8)
TOL = {
    "float32": dict(exp=1.5, log=1.5, log1p=1.5, expm1=2.0, sin=2.0, cos=2.0, tanh=3.0, sigmoid=3.0,
                    softplus=2.0, pow=1.0, sqrt=0.51, abs=0.0),
    "float64": dict(exp=1.5, log=1.5, log1p=1.5, expm1=2.5, sin=2.0, cos=2.0, tanh=3.0, sigmoid=3.0,
                    softplus=2.0, pow=2.0, sqrt=0.51, abs=0.0),
}


# hardware FMA (llvm.fma) and the code for targets without FMA units (soft_fma: SSE4.2)
FMA = pytest.mark.parametrize("fma", [True, False], ids=["hw_fma", "soft_fma"])


def _kernel(fname: str, dtype: str, fma: bool = True):
    key = (fname, dtype, fma)
    if key not in _kernels:
        mod = llvm_jit.new_module(f"test_{fname}_{dtype}")
        emit_elementwise_test_kernel(mod, fname, dtype, lib=MathLib(mod, hw_fma=fma))
        jm = llvm_jit.JitModule(mod)
        _kernels[key] = (jm, _KFN(jm.address("k")))
    return _kernels[key]


def run(fname: str, dtype: str, x, y=None, fma: bool = True) -> np.ndarray:
    _, k = _kernel(fname, dtype, fma)
    x = np.ascontiguousarray(x, dtype=dtype)
    y = x if y is None else np.ascontiguousarray(y, dtype=dtype)
    assert x.shape == y.shape
    out = np.empty_like(x)
    k(x.ctypes.data, y.ctypes.data, out.ctypes.data, x.size)
    return out


def reference(fname: str, dtype: str, x, y=None) -> np.ndarray:
    hp = np.float64 if dtype == "float32" else np.longdouble
    xh = np.asarray(x).astype(hp)
    with np.errstate(all="ignore"):
        if fname == "sigmoid":
            e = np.exp(-np.abs(xh))
            return np.where(xh >= 0, 1 / (1 + e), e / (1 + e))
        if fname == "softplus":
            return np.where(xh > 0, xh, 0) + np.log1p(np.exp(-np.abs(xh)))
        if fname == "pow":
            return np.power(xh, np.asarray(y).astype(hp))
        return getattr(np, fname)(xh)


def ulp_error(got: np.ndarray, ref: np.ndarray, dtype: str) -> np.ndarray:
    """|got - ref| in units of the dtype's spacing at ref; 0 where both are the same NaN / inf."""
    with np.errstate(all="ignore"):
        rd = ref.astype(dtype)
        spacing = np.spacing(np.abs(rd)).astype(ref.dtype)
        err = np.abs(got.astype(ref.dtype) - ref) / spacing
    agree = (np.isnan(got) & np.isnan(rd)) | (np.isinf(rd) & (got == rd))
    err = np.where(agree, 0.0, err)
    return np.where(np.isnan(err), np.inf, err)


def _logu(rng, lo, hi, n, signed=True):
    v = np.exp(rng.uniform(np.log(lo), np.log(hi), n))
    return v * rng.choice([-1.0, 1.0], n) if signed else v


def inputs(fname: str, dtype: str, rng, n: int = 40000):
    """Random arguments over the whole useful range (uniform + log-uniform magnitudes)."""
    f32 = dtype == "float32"
    big, tiny = (3e38, 1e-45) if f32 else (1e308, 5e-324)
    y = None
    if fname == "exp":
        x = np.concatenate([rng.uniform(-104 if f32 else -746, 89 if f32 else 710, n), _logu(rng, 1e-30, 1, n)])
    elif fname == "expm1":
        x = np.concatenate([rng.uniform(-30 if f32 else -60, 89 if f32 else 710, n), _logu(rng, tiny, 1, n)])
    elif fname in ("log", "sqrt"):
        x = _logu(rng, tiny, big, 2 * n, signed=False)
    elif fname == "log1p":
        x = np.concatenate([_logu(rng, tiny, big, n, signed=False), -_logu(rng, tiny, 1, n, signed=False),
                            rng.uniform(-1, 1, n)])
    elif fname in ("sin", "cos"):
        lim = 2e5 if f32 else 3e12  # documented accurate range
        x = np.concatenate([rng.uniform(-lim, lim, n), rng.uniform(-10, 10, n), _logu(rng, tiny, 1e4, n)])
    elif fname == "tanh":
        x = np.concatenate([rng.uniform(-20, 20, n), _logu(rng, tiny, 50, n)])
    elif fname in ("sigmoid", "softplus"):
        lim = 110 if f32 else 750
        x = np.concatenate([rng.uniform(-lim, lim, n), _logu(rng, tiny, 100, n)])
    elif fname == "pow":
        lim = 88 if f32 else 709
        x = _logu(rng, 1e-30 if f32 else 1e-300, 1e30 if f32 else 1e300, n, signed=False)
        y = rng.uniform(-lim - 15, lim, n) / np.log(x)        # results over the whole range
        x2 = _logu(rng, 0.01, 100, n)                          # negative bases with integer exponents
        y2 = rng.integers(-40, 40, n).astype(float)
        x, y = np.concatenate([x, x2]), np.concatenate([y, y2]).astype(dtype)
    else:  # abs
        x = _logu(rng, tiny, big, 2 * n)
    return x.astype(dtype), y


@FMA
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("fname", FUNCTIONS)
def test_accuracy(fname, dtype, fma):
    rng = np.random.default_rng(zlib.crc32(f"{fname}/{dtype}".encode()))
    x, y = inputs(fname, dtype, rng)
    got = run(fname, dtype, x, y, fma)
    ref = reference(fname, dtype, x, y)
    err = ulp_error(got, ref, dtype)
    tol = TOL[dtype][fname] + (0.0 if dtype == "float32" or _LD_OK else 1.0)
    i = int(np.argmax(err))
    assert err[i] <= tol, (f"{fname}/{dtype}: {err[i]:.3g} ulp at x={x[i]!r}"
                           + ("" if y is None else f" y={y[i]!r}") + f": got {got[i]!r}, want {ref[i]!r}")


SPECIAL = {
    "float32": [0.0, -0.0, np.inf, -np.inf, np.nan, 1e-45, -1e-45, 1e-40, -1e-40, 1.1754944e-38, 3.4028235e38,
                -3.4028235e38, 1.0, -1.0, 0.5, -0.5, 2.0, -2.0, 88.72283, 88.72284, 88.7229, 89.0, 100.0, -87.33654,
                -87.5, -103.27893, -103.972, -104.0, -200.0, 1e-7, -1e-7, 1e-30, -1e-30, 9.0, -9.0, 20.0, -20.0,
                1e4, -1e4, 3.0, 0.99999994, -0.99999994, 1.0000001, 1e30, -1e30, 3.1415927, 1.5707964],
    "float64": [0.0, -0.0, np.inf, -np.inf, np.nan, 5e-324, -5e-324, 1e-310, -1e-310, 2.2250738585072014e-308,
                1.7976931348623157e308, -1.7976931348623157e308, 1.0, -1.0, 0.5, -0.5, 2.0, 709.782712893384,
                709.7827128933841, 709.79, 710.0, 800.0, -708.3964185322641, -708.5, -744.44007192138,
                -745.1332191019411, -745.2, -746.0, -800.0, 1e-17, -1e-17, 1e-300, -1e-300, 20.0, -20.0, 40.0,
                -40.0, 1e4, -1e4, 0.9999999999999999, -0.9999999999999999, 1e300, -1e300, 19.0, -19.0,
                3.141592653589793, 1.5707963267948966],
}


@FMA
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("fname", [f for f in FUNCTIONS if f != "pow"])
def test_special_values(fname, dtype, fma):
    x = np.array(SPECIAL[dtype], dtype=dtype)
    got = run(fname, dtype, x, fma=fma)
    ref = reference(fname, dtype, x)
    with np.errstate(over="ignore"):
        rd = ref.astype(dtype)
    err = ulp_error(got, ref, dtype)
    if fname in ("sin", "cos"):  # outside the accurate range: only bounded
        far = np.isfinite(x) & (np.abs(x) > (2e5 if dtype == "float32" else 3e12))
        assert np.all(np.abs(got[far]) <= 1)
        err[far] = 0
    bad = err > TOL[dtype][fname] + (0.0 if dtype == "float32" or _LD_OK else 1.0)
    # NaN / inf / signed zero must match exactly
    bad |= np.isnan(got) != np.isnan(rd)
    bad |= np.isinf(rd) & (got != rd)
    bad |= (rd == 0) & ((got != 0) | (np.signbit(got) != np.signbit(rd)))
    msgs = [f"x={x[i]!r}: got {got[i]!r}, want {rd[i]!r}" for i in np.nonzero(bad)[0]]
    assert not msgs, f"{fname}/{dtype}: " + "; ".join(msgs)


@pytest.mark.parametrize("dtype", DTYPES)
def test_special_values_documented(dtype):
    inf, nan = np.inf, np.nan
    x = np.array([-inf, inf, nan], dtype=dtype)
    assert np.array_equal(run("exp", dtype, x), np.array([0, inf, nan], dtype), equal_nan=True)
    assert np.array_equal(run("expm1", dtype, x), np.array([-1, inf, nan], dtype), equal_nan=True)
    assert np.array_equal(run("tanh", dtype, x), np.array([-1, 1, nan], dtype), equal_nan=True)
    assert np.array_equal(run("sigmoid", dtype, x), np.array([0, 1, nan], dtype), equal_nan=True)
    assert np.array_equal(run("softplus", dtype, x), np.array([0, inf, nan], dtype), equal_nan=True)
    assert np.all(np.isnan(run("sin", dtype, x))) and np.all(np.isnan(run("cos", dtype, x)))
    z = np.array([0.0, -0.0, -1.0, -inf], dtype=dtype)
    assert np.array_equal(run("log", dtype, z), np.array([-inf, -inf, nan, nan], dtype), equal_nan=True)
    assert np.array_equal(run("log1p", dtype, np.array([-1.0, -2.0], dtype)), np.array([-inf, nan], dtype),
                          equal_nan=True)
    # gradual underflow: exp into the denormal range, log of denormals
    tiny = np.finfo(dtype).smallest_subnormal
    assert 0 < run("exp", dtype, np.array([np.log(float(tiny)) + 0.3], dtype))[0] < np.finfo(dtype).tiny
    assert run("log", dtype, np.array([tiny], dtype))[0] == pytest.approx(np.log(float(tiny)), rel=1e-6)


@FMA
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("fname", FUNCTIONS)
def test_nan_propagates(fname, dtype, fma):
    x = np.array([np.nan, -np.nan, 1.5, np.nan], dtype=dtype)
    if fname == "pow":  # pow(NaN, y) = NaN and pow(x, NaN) = NaN unless y == 0 or x == 1
        got = run(fname, dtype, x, np.array([2.0, 0.5, np.nan, -3.0], dtype=dtype), fma)
        assert np.all(np.isnan(got))
        one = run(fname, dtype, np.array([np.nan, 1.0], dtype), np.array([0.0, np.nan], dtype), fma)
        assert np.array_equal(one, np.ones(2, dtype))
    else:
        got = run(fname, dtype, x, fma=fma)
        assert np.all(np.isnan(got[[0, 1, 3]])) and not np.isnan(got[2])


@pytest.mark.parametrize("dtype", DTYPES)
def test_pow_special_grid(dtype):
    """pow over a grid of special bases x exponents: NaN / inf / zero (and sign) exactly as np.power."""
    xs = np.array(SPECIAL[dtype] + [-3.0, -2.5, 0.25, -0.25, 10.0], dtype=dtype)
    big_int = 2.0 ** 53 if dtype == "float64" else 2.0 ** 24
    ys = np.array([0.0, -0.0, 1.0, -1.0, 2.0, -2.0, 3.0, -3.0, 0.5, -0.5, 2.5, np.inf, -np.inf, np.nan, 1e30, -1e30,
                   7.0, 1e10, 11.0, -11.0, big_int, big_int + 2, 1e-7], dtype=dtype)
    X, Y = (a.ravel() for a in np.meshgrid(xs, ys))
    got = run("pow", dtype, X, Y)
    with np.errstate(all="ignore"):
        want = np.power(X, Y)
    err = ulp_error(got, reference("pow", dtype, X, Y), dtype)
    bad = (np.isnan(got) != np.isnan(want)) | (err > TOL[dtype]["pow"] + (0 if dtype == "float32" or _LD_OK else 1))
    with np.errstate(invalid="ignore"):
        bad |= ((want == 0) | np.isinf(want)) & ((got != want) | (np.signbit(got) != np.signbit(want)))
    msgs = [f"pow({X[i]!r}, {Y[i]!r}) = {got[i]!r}, numpy {want[i]!r}" for i in np.nonzero(bad)[0]]
    assert not msgs, "; ".join(msgs[:20])


def _loop_asm(asm: str) -> list[str]:
    """Instructions of the innermost loop with the most vector-register instructions."""
    lines = asm.splitlines()
    labels = {m.group(1): i for i, l in enumerate(lines) if (m := re.match(r"^(\.LBB\d+_\d+):", l.strip()))}
    best: list[str] = []
    for j, l in enumerate(lines):
        m = re.match(r"\s+j\w+\s+(\.LBB\d+_\d+)", l)
        if m and m.group(1) in labels and labels[m.group(1)] < j:
            body = [s for s in lines[labels[m.group(1)] + 1:j + 1] if s.strip() and not s.strip().startswith((".", "#"))]
            if sum(("ymm" in s or "zmm" in s) for s in body) > sum(("ymm" in s or "zmm" in s) for s in best):
                best = body
    return best


@FMA
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("fname", FUNCTIONS)
def test_vectorised(fname, dtype, fma):
    jm, _ = _kernel(fname, dtype, fma)
    text = jm.optimized_ir
    body = text[text.index("define void @k"):]
    body = body[:body.index("\n}\n")]
    if not fma:  # llvm.fma on a target without FMA units is a libm call per element
        assert "llvm.fma" not in body
    elt = "float" if dtype == "float32" else "double"
    widths = {int(w) for w in re.findall(rf"<(\d+) x {elt}>", body)}
    assert widths and max(widths) >= 4, f"{fname}/{dtype}: loop not vectorised"
    calls = set(re.findall(r"call [^@\n]*@\"?([\w.]+)", body))
    assert not {c for c in calls if not c.startswith("llvm.")}, f"calls left in the loop: {calls}"
    vec_calls = [c for c in calls if re.match(r"llvm\.\w+\.v\d+f(32|64)$", c)]
    if fname != "abs":
        assert vec_calls or "fdiv <" in body or "fmul <" in body
    host = llvm_jit.host_cpu()[1]
    if "+avx2" in host or "+avx512f" in host:
        loop = _loop_asm(jm.asm())
        assert sum(("ymm" in s or "zmm" in s) for s in loop) >= 2, "\n".join(loop)
        assert not any(re.search(r"\bcall", s) for s in loop), "\n".join(loop)


def test_interface():
    mod = llvm_jit.new_module("iface")
    lib = MathLib(mod)
    f1 = lib.function("exp", "float32")
    assert lib.function("exp", "float32") is f1
    assert f1.name == "sd_exp_f32" and f1.linkage == "internal"
    assert {"alwaysinline", "nounwind", "readnone"} <= set(f1.attributes)
    # a second MathLib on the same module reuses the function instead of clashing
    assert MathLib(mod).function("exp", "float32") is f1
    f64 = lib.function("pow", "float64")
    assert f64.name == "sd_pow_f64" and len(f64.args) == 2
    with pytest.raises(ValueError):
        lib.function("erf", "float32")
    with pytest.raises(ValueError):
        lib.function("exp", "float16")
    # call(): returns the call instruction; argument checks
    from llvmlite import ir
    fn = ir.Function(mod, ir.FunctionType(ir.FloatType(), [ir.FloatType()] * 2), name="user")
    b = ir.IRBuilder(fn.append_basic_block())
    c = lib.call(b, "tanh", [fn.args[0]], "float32")
    assert isinstance(c, ir.CallInstr) and c.callee is lib.function("tanh", "float32")
    with pytest.raises(ValueError):
        lib.call(b, "pow", [fn.args[0]], "float32")
    with pytest.raises(TypeError):
        lib.call(b, "exp", [fn.args[0]], "float64")
    b.ret(lib.call(b, "pow", list(fn.args), "float32"))
    text = str(mod)
    assert text.count("define internal float @\"sd_tanh_f32\"") + text.count("define internal float @sd_tanh_f32") == 1
    jm = llvm_jit.JitModule(mod)  # verifies and compiles; every helper got inlined
    assert "sd_" not in re.sub(r"define[^\n]*", "", jm.optimized_ir.split("define float @user")[1])
    user = ctypes.CFUNCTYPE(ctypes.c_float, ctypes.c_float, ctypes.c_float)(jm.address("user"))
    assert user(2.0, 3.0) == pytest.approx(8.0, rel=1e-7)
    assert user(-2.0, 3.0) == pytest.approx(-8.0, rel=1e-7)
    assert ARITY["pow"] == 2 and all(ARITY[f] == 1 for f in FUNCTIONS if f != "pow")


def test_fused_expression_float32():
    """A small fused loop calling several functions (the shape the lowering emits) stays vectorised
    and agrees with numpy: softplus(sin(x) * cos(y)) + tanh(x * y) ** 2."""
    from llvmlite import ir
    mod = llvm_jit.new_module("fused")
    lib = MathLib(mod)
    f32, i64, ptr = ir.FloatType(), ir.IntType(64), ir.PointerType()
    fn = ir.Function(mod, ir.FunctionType(ir.VoidType(), [ptr, ptr, ptr, i64]), name="fused")
    for a in fn.args[:3]:
        a.add_attribute("noalias")
    px, py, po, n = fn.args
    entry, loop, done = fn.append_basic_block(), fn.append_basic_block(), fn.append_basic_block()
    b = ir.IRBuilder(entry)
    b.cbranch(b.icmp_signed(">", n, ir.Constant(i64, 0)), loop, done)
    b.position_at_end(loop)
    i = b.phi(i64)
    i.add_incoming(ir.Constant(i64, 0), entry)
    x = b.load(b.gep(px, [i], inbounds=True, source_etype=f32), typ=f32)
    y = b.load(b.gep(py, [i], inbounds=True, source_etype=f32), typ=f32)
    u = b.fmul(lib.call(b, "sin", [x], "float32"), lib.call(b, "cos", [y], "float32"))
    t = lib.call(b, "tanh", [b.fmul(x, y)], "float32")
    r = b.fadd(lib.call(b, "softplus", [u], "float32"), lib.call(b, "pow", [t, ir.Constant(f32, 2.0)], "float32"))
    b.store(r, b.gep(po, [i], inbounds=True, source_etype=f32))
    nxt = b.add(i, ir.Constant(i64, 1))
    i.add_incoming(nxt, loop)
    b.cbranch(b.icmp_signed("<", nxt, n), loop, done)
    b.position_at_end(done)
    b.ret_void()
    jm = llvm_jit.JitModule(mod)
    assert re.search(r"<(8|16) x float>", jm.optimized_ir)
    k = _KFN(jm.address("fused"))
    rng = np.random.default_rng(0)
    xs, ys = (rng.uniform(-3, 3, 1000).astype(np.float32) for _ in range(2))
    out = np.empty_like(xs)
    k(xs.ctypes.data, ys.ctypes.data, out.ctypes.data, xs.size)
    xd, yd = xs.astype(np.float64), ys.astype(np.float64)
    want = np.logaddexp(0, np.sin(xd) * np.cos(yd)) + np.tanh(xd * yd) ** 2
    np.testing.assert_allclose(out, want, rtol=3e-6, atol=1e-7)
