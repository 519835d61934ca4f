"""The math set (symdiff/ops_math.py) at special values, the derivative conventions at singular points, and
ulp bounds of the compiled functions.

- Special values (0, -0, +-inf, NaN, domain edges, halves for rounding, huge and tiny magnitudes): every
  op in ONE compiled graph per backend, against the numpy backend (NumPy/SciPy themselves), signed zeros
  included.
- Conventions (as JAX / autograd, docs/differentiation.md): d/dy 0**y = 0, d/dx sqrt(x) at 0 = inf, the
  rounding functions have zero gradient, relu/abs/maximum at ties as before.
- ulp: a small sweep per LLVM function in float32 against float64 SciPy/NumPy (benchmarks/ulp_sweep.py is
  the dense version whose numbers are in docs/llvm.md); the bounds here are generous.
"""
from __future__ import annotations

import numpy as np
import pytest

import symdiff as sd
from symdiff.codegen.cuda import backend as cb
from symdiff.ir import apply
from symdiff.optable import OPS

BACKENDS = ["llvm", "cuda-cpu"] + (["cuda"] if cb.gpu_info()[0] else [])
GPU_RTOL = {"float32": 2e-5, "float64": 1e-12}  # CUDA's device math functions have their own ulp bounds

SPECIAL = np.array([0.0, -0.0, 0.25, -0.25, 0.5, -0.5, 1.0, -1.0, 1.5, -1.5, 2.5, -2.5, 3.0, -7.0, 1e-30, -1e-30,
                    30.0, -30.0, 1e30, -1e30, np.inf, -np.inf, np.nan])
PAIR = np.array([0.0, -0.0, 1.0, -2.0, 1e30, np.inf, -np.inf, np.nan])
UNARY = ["tan", "arcsin", "arccos", "arctan", "sinh", "cosh", "arcsinh", "arccosh", "arctanh", "exp2", "log2",
         "log10", "reciprocal", "rsqrt", "cbrt", "erf", "erfc", "erfinv", "floor", "ceil", "rint", "trunc", "deg2rad",
         "rad2deg", "sinc", "positive", "log_or_zero", "gelu", "gelu_tanh", "silu", "log_sigmoid", "softsign", "mish",
         "selu", "relu6", "hard_sigmoid", "hard_swish"]
BINARY = ["arctan2", "logaddexp", "logaddexp2", "hypot", "copysign", "fmax", "fmin"]



def _special_graph():
    """Every op at the special values, float64 and float32, in one graph: (outputs, labels, values)."""
    outs, labels, values = [], [], {}
    for dtype in ("float64", "float32"):
        t = dtype[-2:]
        x = sd.input(f"x{t}", SPECIAL.shape, dtype)
        a = sd.input(f"a{t}", (PAIR.size, 1), dtype)
        b = sd.input(f"b{t}", (1, PAIR.size), dtype)
        outs += [apply(op, [x]) for op in UNARY] + [apply(op, [a, b]) for op in BINARY]
        labels += [(op, dtype) for op in UNARY + BINARY]
        values.update({f"x{t}": SPECIAL.astype(dtype), f"a{t}": PAIR[:, None].astype(dtype),
                       f"b{t}": PAIR[None, :].astype(dtype)})
    return outs, labels, values


# inputs a backend may get wrong, with the reason: tan shares sin/cos's Cody-Waite reduction, accurate for
# |x| <= 2e5 (float32) / 3e12 (float64) only (docs/llvm.md); so does sinc (sin(pi x))
SKIP = {"tan": np.abs(SPECIAL) > 1e12, "sinc": np.abs(SPECIAL) > 1e12}
# gelu's erfc(-x / sqrt 2) has condition number ~x^2 in the left tail (the rounding of -x / sqrt 2 shows)
RTOL_FACTOR = {"gelu": 100}


def _same(got, want, what: str, dtype: str, factor: float = 1, gpu: bool = False) -> None:
    got, want = np.asarray(got), np.asarray(want)
    rtol = (GPU_RTOL[dtype] if gpu else 2e-6 if dtype == "float32" else 1e-14) * factor
    np.testing.assert_allclose(got, want, rtol=rtol, atol=0, equal_nan=True, err_msg=what)
    zero = (want == 0) & (got == 0)
    assert np.array_equal(np.signbit(got[zero]), np.signbit(want[zero])), f"{what}: signed zeros differ"


@pytest.mark.parametrize("backend", BACKENDS)
def test_special_values_against_numpy(backend):
    outs, labels, values = _special_graph()
    want = sd.compile(outs, "numpy")(**values)
    got = sd.compile(outs, backend)(**values)
    for (op, dtype), g, w in zip(labels, got, want):
        assert g.dtype == np.dtype(dtype), op
        keep = ~SKIP[op] if op in SKIP else np.ones(g.shape, bool)
        _same(g[keep], w[keep], f"{backend}/{dtype}: {op} at special values", dtype, RTOL_FACTOR.get(op, 1),
              gpu=backend == "cuda")


def test_numpy_backend_matches_numpy_names():
    """The numpy backend of each op is NumPy's (or SciPy's) function of that name, special values included."""
    from scipy import special
    x = SPECIAL
    with np.errstate(all="ignore"):
        for op in ("tan", "arcsin", "arccos", "arctan", "sinh", "cosh", "arcsinh", "arccosh", "arctanh", "exp2",
                   "log2", "log10", "reciprocal", "cbrt", "floor", "ceil", "rint", "trunc", "deg2rad", "rad2deg",
                   "sinc", "positive"):
            np.testing.assert_array_equal(OPS[op].impl(x), getattr(np, op)(x), err_msg=op)
        for op in ("erf", "erfc", "erfinv"):
            np.testing.assert_array_equal(OPS[op].impl(x), getattr(special, op)(x), err_msg=op)
        for op in BINARY:
            a, b = PAIR[:, None], PAIR[None, :]
            np.testing.assert_array_equal(OPS[op].impl(a, b), getattr(np, op)(a, b), err_msg=op)
    assert sd.round is sd.around and sd.absolute(sd.input("x", (2,))).op == "abs" and sd.fix(1.5).op == "trunc"
    assert sd.true_divide(sd.input("x", (2,)), 2.0).op == "div" and sd.swish(1.0).op == "silu"
    np.testing.assert_allclose(sd.compile(sd.round(sd.input("x", (4,), "float64"), 1))(
        x=np.array([0.25, 0.35, -1.25, 2.675])), np.round(np.array([0.25, 0.35, -1.25, 2.675]), 1), rtol=1e-15)


# -- derivative conventions at singular points ----------------------------------------------------------------

@pytest.mark.parametrize("backend", ["numpy"] + BACKENDS)
def test_derivative_conventions(backend):
    y = sd.input("y", (3,), "float64")
    x = sd.input("x", (3,), "float64")
    yv, xv = np.array([0.5, 2.0, 3.0]), np.array([0.0, 1.0, 4.0])
    outs = [
        sd.grad(sd.sum(sd.power(0.0, y)), y),  # d/dy 0**y = 0 (a constant base)
        sd.grad(sd.sum(sd.power(x, y)), y),  # ... and a base that is 0 at run time: 0, then x**y log x
        sd.grad(sd.sum(sd.grad(sd.sum(sd.power(x, y)), y)), y),  # second order: x**y log(x)**2, 0 at x = 0
        sd.grad(sd.sum(sd.sqrt(x)), x),  # 1 / (2 sqrt x): inf at 0
    ]
    # a symbolic zero has no inputs: evaluate the constant base case on its own
    f = sd.compile(outs, backend)
    got = f(**{k: {"x": xv, "y": yv}[k] for k in f.input_names})
    np.testing.assert_array_equal(got[0], np.zeros(3))
    np.testing.assert_allclose(got[1], [0.0, 0.0, 4.0 ** 3 * np.log(4.0)], rtol=1e-13)
    np.testing.assert_allclose(got[2], [0.0, 0.0, 4.0 ** 3 * np.log(4.0) ** 2], rtol=1e-13)
    np.testing.assert_array_equal(got[3], [np.inf, 0.5, 0.25])


@pytest.mark.parametrize("backend", ["numpy"] + BACKENDS)
def test_rounding_has_zero_gradient_and_ties_split(backend):
    x = sd.input("x", (4,), "float64")
    a, b = sd.input("a", (3,), "float64"), sd.input("b", (3,), "float64")
    xs = np.array([-1.5, 0.5, 2.3, 2.5])
    rounding = [sd.floor, sd.ceil, sd.rint, sd.trunc, sd.round, sd.fix]
    g_round = sd.grad(sd.sum(sum((f(x) for f in rounding[1:]), rounding[0](x)) * x), x)  # d/dx (sum r(x)) x
    outs = [g_round, *sd.grad(sd.sum(sd.fmax(a, b)), [a, b]), *sd.grad(sd.sum(sd.relu(x) + sd.abs(x)), [x])]
    f = sd.compile(outs, backend)
    got = f(**{k: v for k, v in {"x": xs, "a": np.array([1.0, 2.0, 3.0]), "b": np.array([0.0, 2.0, 5.0])}.items()
               if k in f.input_names})
    expected_round = sum((np.floor(xs), np.ceil(xs), np.rint(xs), np.trunc(xs), np.rint(xs), np.trunc(xs)))
    np.testing.assert_array_equal(got[0], expected_round)  # only the factor x is differentiated
    np.testing.assert_array_equal(got[1], [1.0, 0.5, 0.0])  # fmax at a tie: split, as maximum
    np.testing.assert_array_equal(got[2], [0.0, 0.5, 1.0])
    np.testing.assert_array_equal(got[3], [-1.0, 2.0, 2.0, 2.0])  # relu' + abs' (relu'(x > 0) = 1)


def test_erfinv_and_logaddexp_derivatives():
    x = sd.input("x", (4,), "float64")
    y = sd.input("y", (4,), "float64")
    xv, yv = np.array([-0.9, -0.1, 0.3, 0.99]), np.array([0.0, 50.0, -3.0, 0.3])
    gi, ga, gb = sd.compile([sd.grad(sd.sum(sd.erfinv(x)), x), *sd.grad(sd.sum(sd.logaddexp(x, y)), [x, y])],
                            "llvm")(x=xv, y=yv)
    from scipy import special
    np.testing.assert_allclose(gi, np.sqrt(np.pi) / 2 * np.exp(special.erfinv(xv) ** 2), rtol=1e-12)
    np.testing.assert_allclose(ga, 1 / (1 + np.exp(yv - xv)), rtol=1e-12)  # sigmoid(x - y), stable at 50
    np.testing.assert_allclose(ga + gb, 1.0, rtol=1e-15)


def test_gelu_tails_and_flags():
    x = sd.input("x", (4,), "float64")
    xs = np.array([-30.0, -9.0, 0.0, 9.0])
    from scipy import special
    exact, tanh = sd.compile([sd.gelu(x), sd.gelu(x, approximate=True)], "llvm")(x=xs)
    np.testing.assert_allclose(exact, xs * special.ndtr(xs), rtol=1e-12)  # no cancellation to 0 in the tail
    assert exact[1] < 0 and tanh[1] < 0
    with pytest.raises(ValueError, match="gelu: approximate"):
        sd.gelu(x, approximate="erf")


# -- ulp bounds (small sweep; the dense one is benchmarks/ulp_sweep.py) ---------------------------------------

ULP_F32 = {  # op -> (domain, max ulp allowed in float32 against float64 SciPy/NumPy)
    "tan": ((-100, 100), 4), "arcsin": ((-1, 1), 4), "arccos": ((-1, 1), 4), "arctan": ((-1e4, 1e4), 3),
    "sinh": ((-20, 20), 3), "cosh": ((-20, 20), 3), "arcsinh": ((-1e4, 1e4), 3), "arccosh": ((1, 1e4), 3),
    "arctanh": ((-0.999, 0.999), 3), "exp2": ((-120, 120), 2), "log2": ((1e-30, 1e30), 2),
    "log10": ((1e-30, 1e30), 2), "cbrt": ((-1e6, 1e6), 2), "erf": ((-5, 5), 2), "erfc": ((-5, 9), 4),
    "erfinv": ((-0.999999, 0.999999), 2), "silu": ((-20, 20), 4), "log_sigmoid": ((-20, 20), 3),
    "mish": ((-20, 20), 5), "rsqrt": ((1e-6, 1e6), 3),
}


def test_ulp_bounds_float32():
    from scipy import special
    ref = {"erf": special.erf, "erfc": special.erfc, "erfinv": special.erfinv,
           "silu": lambda v: v / (1 + np.exp(-v)), "log_sigmoid": lambda v: -np.logaddexp(0, -v),
           "mish": lambda v: v * np.tanh(np.logaddexp(0, v)), "rsqrt": lambda v: 1 / np.sqrt(v)}
    rng = np.random.default_rng(0)
    leaves, outs, xs = {}, [], {}
    for op, ((lo, hi), _) in ULP_F32.items():
        v = np.concatenate([np.linspace(lo, hi, 1500), rng.uniform(lo, hi, 1500)]).astype(np.float32)
        xs[op] = v
        leaves[op] = sd.input(op, v.shape, "float32")
        outs.append(apply(op, [leaves[op]]))
    got = sd.compile(outs, "llvm")(**xs)
    for (op, (_, bound)), g in zip(ULP_F32.items(), got):
        r = (ref[op] if op in ref else getattr(np, op))(xs[op].astype(np.float64))
        err = np.abs(g.astype(np.float64) - r) / np.spacing(np.abs(r).astype(np.float32)).astype(np.float64)
        assert np.nanmax(err) <= bound, f"{op}: {np.nanmax(err):.2f} ulp at x = {xs[op][np.nanargmax(err)]}"


def test_ulp_bounds_float64_erf_erfc():
    """The vectorised float64 erf/erfc (fitted polynomial, double-word exponent) against glibc's (math.erf,
    within ~1 ulp itself): the bound allows both errors."""
    import math
    xs = np.concatenate([np.linspace(-6, 26.5, 2500), np.linspace(-1, 1, 500)])
    x = sd.input("x", xs.shape, "float64")
    got_erf, got_erfc = sd.compile([sd.erf(x), sd.erfc(x)], "llvm")(x=xs)
    for got, f in ((got_erf, math.erf), (got_erfc, math.erfc)):
        ref = np.array([f(v) for v in xs])
        err = np.abs(got - ref) / np.spacing(np.abs(ref))
        assert err.max() <= 6, f"{f.__name__}: {err.max():.2f} ulp at x = {xs[err.argmax()]}"
