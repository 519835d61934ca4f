"""Max ulp error of the LLVM backend's math functions (symdiff/ops_math.py) over dense sweeps.

For each function and dtype: compile ``f(x)`` (or ``f(x, y)``) with ``sd.compile(..., "llvm")``, evaluate it
on a sweep (a dense grid over the interesting range, log-spaced magnitudes of both signs, and random
finite values in the domain), and compare with a higher-precision reference: float64 NumPy/SciPy for
float32 results, 80-bit ``np.longdouble`` NumPy (or mpmath, for erf/erfc/erfinv/gelu) for float64 ones.
The error of one point is |got - ref| / ulp(ref) with ulp in the result dtype (the spacing at ref, rounded
to the result dtype); non-finite points must match the reference exactly (same inf, both NaN).

    python benchmarks/ulp_sweep.py                 # ~1e6 points per function (float32), 2e5 (float64)
    python benchmarks/ulp_sweep.py --n 20000       # quick
    python benchmarks/ulp_sweep.py --markdown      # the table for docs/llvm.md

``sweep(op, dtype, n)`` is importable (tests/test_math_ops.py runs it on a small n with generous bounds).
"""
from __future__ import annotations

import argparse
import math
import sys
import time
from typing import Callable, Optional

import numpy as np

import symdiff as sd
from symdiff.ir import apply
from symdiff.optable import OPS

LD = np.longdouble


def _mp(fn: Callable) -> Callable:
    """A float64 -> longdouble reference through mpmath (slow: used on a subsample)."""
    import mpmath

    def ref(*arrays):
        mpmath.mp.prec = 90
        out = np.empty(np.broadcast(*arrays).shape, LD)
        for idx, vals in zip(np.ndindex(out.shape), zip(*(np.broadcast_to(a, out.shape).ravel() for a in arrays))):
            v = fn(mpmath, *[mpmath.mpf(float(t)) for t in vals])
            out[idx] = LD(mpmath.nstr(v, 30)) if mpmath.isfinite(v) else LD(float(v))
        return out
    ref.mp = True  # slow: sweep() uses a subsample
    return ref


def _sp(name: str) -> Callable:
    def ref(a):
        from scipy import special
        return getattr(special, name)(a.astype(np.float64))
    return ref


def _gelu64(a):
    from scipy import special
    a = a.astype(np.float64)
    return a * special.erfc(-a / np.sqrt(2.0)) / 2


def _softplus(a):
    return np.logaddexp(np.zeros((), a.dtype), a)


# op -> (reference on float64 inputs for float32, reference for float64 (longdouble or mpmath), domain, arity)
# domain: (lo, hi) of the dense grid and of the random values
_C = math.sqrt(2 / math.pi)
FUNCS: dict[str, tuple] = {
    "tan": (np.tan, np.tan, (-1e4, 1e4), 1),
    "arcsin": (np.arcsin, np.arcsin, (-1, 1), 1),
    "arccos": (np.arccos, np.arccos, (-1, 1), 1),
    "arctan": (np.arctan, np.arctan, (-1e6, 1e6), 1),
    "arctan2": (np.arctan2, np.arctan2, (-10, 10), 2),
    "sinh": (np.sinh, np.sinh, (-80, 80), 1),
    "cosh": (np.cosh, np.cosh, (-80, 80), 1),
    "arcsinh": (np.arcsinh, np.arcsinh, (-1e6, 1e6), 1),
    "arccosh": (np.arccosh, np.arccosh, (1, 1e6), 1),
    "arctanh": (np.arctanh, np.arctanh, (-1, 1), 1),
    "exp2": (np.exp2, np.exp2, (-140, 127), 1),
    "log2": (np.log2, np.log2, (0, 1e30), 1),
    "log10": (np.log10, np.log10, (0, 1e30), 1),
    "logaddexp": (np.logaddexp, np.logaddexp, (-50, 50), 2),
    "logaddexp2": (np.logaddexp2, np.logaddexp2, (-50, 50), 2),
    "hypot": (np.hypot, np.hypot, (-1e30, 1e30), 2),
    "cbrt": (np.cbrt, np.cbrt, (-1e30, 1e30), 1),
    "rsqrt": (lambda a: 1 / np.sqrt(a), lambda a: 1 / np.sqrt(a), (0, 1e30), 1),
    "erf": (_sp("erf"), _mp(lambda m, v: m.erf(v)), (-6, 6), 1),
    "erfc": (_sp("erfc"), _mp(lambda m, v: m.erfc(v)), (-6, 26), 1),  # results stay normal (> 2.2e-308)
    "erfinv": (_sp("erfinv"), _mp(lambda m, v: m.erfinv(v) if abs(v) < 1 else m.inf * m.sign(v)), (-1, 1), 1),
    "sinc": (np.sinc, lambda a: np.sinc(a), (-10, 10), 1),
    "gelu": (_gelu64, _mp(lambda m, v: v * m.erfc(-v / m.sqrt(2)) / 2), (-10, 10), 1),
    # 0.5 x (1 + tanh u) = x sigmoid(2u) = x / (1 + exp(-2u)): the reference without the tail's cancellation
    "gelu_tanh": (lambda a: a / (1 + np.exp(-2 * _C * (a + 0.044715 * a ** 3))),
                  lambda a: a / (1 + np.exp(-2 * LD(_C) * (a + LD(0.044715) * a ** 3))), (-8, 8), 1),
    "silu": (lambda a: a / (1 + np.exp(-a)), lambda a: a / (1 + np.exp(-a)), (-80, 80), 1),
    "log_sigmoid": (lambda a: -_softplus(-a), lambda a: -_softplus(-a), (-80, 80), 1),
    "mish": (lambda a: a * np.tanh(_softplus(a)), lambda a: a * np.tanh(_softplus(a)), (-30, 30), 1),
    "softsign": (lambda a: a / (1 + np.abs(a)), lambda a: a / (1 + np.abs(a)), (-1e3, 1e3), 1),
}
EXACT = ("floor", "ceil", "rint", "trunc", "copysign", "fmax", "fmin")  # bit-exact by construction (checked)


def points(lo: float, hi: float, n: int, dtype: str, rng: np.random.Generator) -> np.ndarray:
    """A dense grid over [lo, hi], log-spaced magnitudes inside it, and random values, in ``dtype``."""
    k = n // 3
    grid = np.linspace(lo, hi, k)
    tiny = np.finfo(dtype).tiny
    top = max(abs(lo), abs(hi))
    mags = np.logspace(np.log10(tiny) if lo <= 0 else np.log10(max(lo, tiny)), np.log10(top), k)
    signed = mags * np.where(rng.random(k) < 0.5, -1.0, 1.0) if lo < 0 else mags
    rand = rng.uniform(lo, hi, n - 2 * k)
    x = np.concatenate([grid, signed, rand]).astype(dtype)
    return x[(x >= lo) & (x <= hi)]


def ulp_errors(got: np.ndarray, ref: np.ndarray, dtype: str) -> np.ndarray:
    """|got - ref| in ulps of the result dtype at ref; inf where non-finite values disagree."""
    ref = np.asarray(ref, LD)
    fin = np.isfinite(ref)
    r = ref[fin].astype(dtype)
    ulp = np.spacing(np.abs(r).astype(dtype)).astype(LD)
    err = np.zeros(ref.shape, LD)
    with np.errstate(invalid="ignore", over="ignore"):
        err[fin] = np.abs(got[fin].astype(LD) - ref[fin]) / ulp
        bad = ~fin & ~((np.isnan(ref) & np.isnan(got)) | (ref == got))
    err[bad] = np.inf
    return err.astype(np.float64)


def sweep(op: str, dtype: str, n: int, seed: int = 0, mp_points: int = 3000) -> tuple[float, float, float]:
    """(max ulp error, the input where it occurs, NumPy's own max ulp error) of op on the llvm backend.

    NumPy's error is that of the numpy backend's implementation (NumPy/SciPy in the same dtype) on the same
    points: where a function is ill-conditioned (logaddexp near 0, sinc near its zeros) both are large."""
    ref32, ref64, (lo, hi), arity = FUNCS[op]
    rng = np.random.default_rng(seed)
    uses_mp = dtype == "float64" and getattr(ref64, "mp", False)
    m = min(n, mp_points) if uses_mp else n
    xs = [points(lo, hi, m, dtype, rng) for _ in range(arity)]
    if arity == 2:
        size = min(len(xs[0]), len(xs[1]))
        xs = [rng.permutation(x)[:size] for x in xs]
    leaves = [sd.input(f"x{i}", x.shape, dtype) for i, x in enumerate(xs)]
    f = sd.compile(_build(op, leaves), "llvm")
    got = np.asarray(f(**{f"x{i}": x for i, x in enumerate(xs)}))
    with np.errstate(all="ignore"):
        ref = ref32(*[x.astype(np.float64) for x in xs]) if dtype == "float32" else ref64(*[x.astype(LD) for x in xs])
    err = ulp_errors(got, np.asarray(ref), dtype)
    with np.errstate(all="ignore"):
        np_err = ulp_errors(np.asarray(OPS[op].impl(*xs)), np.asarray(ref), dtype)
    i = int(np.argmax(err))
    return float(err[i]), float(xs[0][i]), float(np_err.max())


def _build(op: str, leaves: list):
    fn = getattr(sd, op, None)  # gelu_tanh is internal (sd.gelu(x, approximate="tanh"))
    return fn(*leaves) if fn is not None and op != "gelu" else apply(op, list(leaves))


def check_exact(op: str, dtype: str, n: int = 20000) -> bool:
    """floor/ceil/rint/trunc/copysign/fmax/fmin are bit-identical to NumPy (NaN payloads aside)."""
    rng = np.random.default_rng(1)
    xs = [(rng.standard_normal(n) * 10.0 ** rng.integers(-3, 6, n)).astype(dtype) for _ in range(2)]
    arity = 2 if op in ("copysign", "fmax", "fmin") else 1
    leaves = [sd.input(f"x{i}", (n,), dtype) for i in range(arity)]
    got = sd.compile(getattr(sd, op)(*leaves), "llvm")(**{f"x{i}": xs[i] for i in range(arity)})
    return bool(np.array_equal(got, getattr(np, op)(*xs[:arity]), equal_nan=True))


def _fmt(e: float) -> str:
    return f"{e:.2f}" if e < 100 else f"{e:.3g}"


def main(argv: Optional[list] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, default=1_000_000, help="points per float32 function (float64: n / 5)")
    p.add_argument("--markdown", action="store_true", help="print a markdown table")
    p.add_argument("--only", default="", help="comma-separated function names")
    a = p.parse_args(argv)
    names = [s for s in a.only.split(",") if s] or list(FUNCS)
    rows = []
    for op in names:
        t = time.perf_counter()
        e32, x32, n32 = sweep(op, "float32", a.n)
        e64, x64, n64 = sweep(op, "float64", max(a.n // 5, 1000))
        rows.append((op, e32, n32, e64, n64))
        if not a.markdown:
            print(f"{op:12s} float32 {e32:8.2f} ulp (at {x32:.6g}; numpy {n32:.2f})   float64 {e64:8.2f} ulp "
                  f"(at {x64:.6g}; numpy {n64:.2f})   [{time.perf_counter() - t:.1f} s]", flush=True)
    exact = {op: check_exact(op, "float32") and check_exact(op, "float64") for op in EXACT}
    if a.markdown:
        print("| function | float32 max ulp (NumPy's) | float64 max ulp (NumPy's) | sweep range |")
        print("|---|---|---|---|")
        for op, e32, n32, e64, n64 in rows:
            lo, hi = FUNCS[op][2]
            print(f"| {op} | {_fmt(e32)} ({_fmt(n32)}) | {_fmt(e64)} ({_fmt(n64)}) | [{lo:g}, {hi:g}] |")
        print(f"| {', '.join(EXACT)} | 0 | 0 | bit-exact vs NumPy: {all(exact.values())} |")
    else:
        print("bit-exact:", exact)
    return 0


if __name__ == "__main__":
    sys.exit(main())
