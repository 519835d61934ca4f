"""The math functions of ``symdiff/ops_math.py`` as LLVM IR: the scalar rules' second library (``mathlib.py``
holds the core one).

All but erfinv are vectorisable straight-line IR: LLVM intrinsics that vectorise
(``llvm.floor/ceil/trunc/roundeven``, ``llvm.copysign``, ``llvm.fabs``, ``llvm.sqrt``, ``llvm.fma``),
``select`` for NumPy's NaN and signed-zero rules, fitted polynomials (arctan -- arcsin, arccos and arctan2
reduce to it --, float64 erfc), and the inlined functions of :class:`~symdiff.codegen.llvm.mathlib.MathLib`:
tan = sin / cos, exp2 = pow(2, x), log2 / log10 = log times a double-word constant, arcsinh / arccosh /
arctanh as log1p forms, cbrt = pow(|x|, 1/3) (+ a Newton step in float64), logaddexp = max + softplus,
erf / erfc = Taylor series below 1/2, t exp(-x^2 + Q(t)) above (float32: Numerical Recipes' erfcc in
float64). float32 log2, log10, hypot, cbrt, erf and erfc are evaluated in float64 and rounded once.

erfinv (not in libm) is Giles' single-precision approximation evaluated in float64, refined by Halley steps
on the C library's erf / erfc (on log erfc(x) - log(1 - |y|) for |y| > 1/2, so the tails keep their
relative accuracy); one non-inlined function per module. Its libm calls keep the loop around it scalar (in
compiled code); the JIT resolves them from the process, an exported ``.so`` links ``-lm``.

Measured accuracy (ulp, dense sweeps): ``benchmarks/ulp_sweep.py``, table in ``docs/llvm.md``.
"""
from __future__ import annotations

import math
from typing import Callable

import mpmath
import numpy as np
from llvmlite import ir

from symdiff.codegen.llvm.mathlib import MathLib
from symdiff.codegen.llvm.softfma import soft_fma

__all__ = ["EXT_RULES"]

F32, F64 = ir.FloatType(), ir.DoubleType()
FTYPE = {"float32": F32, "float64": F64}
TAG = {"float32": "f32", "float64": "f64"}


class Ext:
    """Emits one function's IR into builder ``b`` for ``dtype`` (float32 / float64)."""

    def __init__(self, b: ir.IRBuilder, math_: MathLib, dtype: str) -> None:
        self.b, self.math, self.dtype, self.ty = b, math_, dtype, FTYPE[dtype]

    def at(self, dtype: str) -> "Ext":
        return Ext(self.b, self.math, dtype)

    def c(self, v: float) -> ir.Constant:
        return ir.Constant(self.ty, float(v))

    def intrinsic(self, name: str, *args: ir.Value) -> ir.Value:
        m, full = self.b.module, f"llvm.{name}.{TAG[self.dtype]}"
        fn = m.globals.get(full) or ir.Function(m, ir.FunctionType(self.ty, [self.ty] * len(args)), name=full)
        return self.b.call(fn, list(args))

    def libm(self, name: str, *args: ir.Value) -> ir.Value:
        m = self.b.module
        full = name + ("f" if self.dtype == "float32" else "")
        fn = m.globals.get(full)
        if fn is None:
            fn = ir.Function(m, ir.FunctionType(self.ty, [self.ty] * len(args)), name=full)
            for attr in ("nounwind", "readnone"):
                fn.attributes.add(attr)
        return self.b.call(fn, list(args))

    def call(self, fname: str, *args: ir.Value) -> ir.Value:
        return self.math.call(self.b, fname, list(args), self.dtype)

    def cmp(self, op: str, a, x):
        return self.b.fcmp_ordered(op, a, x)

    def isnan(self, a):
        return self.b.fcmp_unordered("uno", a, a)

    def sel(self, cond, a, x):
        return self.b.select(cond, a, x)

    def fma(self, a, x, y):
        return self.intrinsic("fma", a, x, y) if self.math.hw_fma else soft_fma(self.b, a, x, y)

    def fabs(self, a):
        return self.intrinsic("fabs", a)

    def to64(self, a):
        return self.b.fpext(a, F64) if self.dtype == "float32" else a

    def back(self, a):
        return self.b.fptrunc(a, F32) if self.dtype == "float32" else a

    # ---- functions ---------------------------------------------------------------------------------------
    def tan(self, x):
        return self.b.fdiv(self.call("sin", x), self.call("cos", x))  # LLVM shares the reduction

    def exp2(self, x):
        return self.call("pow", self.c(2.0), x)

    def _log_times(self, x, inv: tuple):
        """log(x) * inv in float64 with a double-word constant (float32: evaluated in float64)."""
        e = self.at("float64")
        xd = self.to64(x)
        hi, lo = inv
        ld = e.call("log", xd)
        return e, xd, e.fma(ld, e.c(hi), self.b.fmul(ld, e.c(lo)))

    def log2(self, x):
        e, xd, r = self._log_times(x, _INV_LN2)
        # exact powers of two (normal, mantissa 0) give their exponent exactly
        bits = self.b.bitcast(xd, ir.IntType(64))
        mant0 = self.b.icmp_unsigned("==", self.b.and_(bits, ir.Constant(ir.IntType(64), (1 << 52) - 1)),
                                     ir.Constant(ir.IntType(64), 0))
        expo = self.b.lshr(bits, ir.Constant(ir.IntType(64), 52))
        normal = self.b.and_(self.b.icmp_unsigned("!=", expo, ir.Constant(ir.IntType(64), 0)),
                             self.b.icmp_unsigned("<", expo, ir.Constant(ir.IntType(64), 2047)))
        k = self.b.sitofp(self.b.sub(expo, ir.Constant(ir.IntType(64), 1023)), F64)
        r = e.sel(self.b.and_(mant0, normal), k, r)
        return self.back(self._log_specials(e, xd, r))

    def log10(self, x):
        e, xd, r = self._log_times(x, _INV_LN10)
        return self.back(self._log_specials(e, xd, r))

    @staticmethod
    def _log_specials(e: "Ext", xd, r):
        # log's own specials (0 -> -inf, < 0 -> nan, inf, nan) survive the scaling except inf * lo (nan)
        r = e.sel(e.cmp("==", xd, e.c(math.inf)), xd, r)
        return e.sel(e.cmp("==", xd, e.c(0.0)), e.c(-math.inf), r)

    def hypot(self, x, y):
        if self.dtype == "float32":  # exact squares in float64, one rounding each for the sum and the sqrt
            e = self.at("float64")
            xd, yd = self.to64(x), self.to64(y)
            r = self.back(e.intrinsic("sqrt", e.fma(xd, xd, self.b.fmul(yd, yd))))
        else:  # a sqrt(1 + (b/a)^2), a = max(|x|, |y|)
            ax, ay = self.fabs(x), self.fabs(y)
            big = self.cmp(">", ax, ay)
            a, bb = self.sel(big, ax, ay), self.sel(big, ay, ax)
            q = self.b.fdiv(bb, a)
            q = self.sel(self.cmp("==", a, self.c(0.0)), self.c(0.0), q)
            r = self.b.fmul(a, self.intrinsic("sqrt", self.fma(q, q, self.c(1.0))))
        r = self.sel(self.b.fcmp_unordered("uno", x, y), self.b.fadd(x, y), r)
        inf = self.b.or_(self.cmp("==", self.fabs(x), self.c(math.inf)), self.cmp("==", self.fabs(y), self.c(math.inf)))
        return self.sel(inf, self.c(math.inf), r)  # C99: hypot(+-inf, nan) = inf

    def sinc(self, x):
        # NumPy: y = pi * x, sin(y) / y, and 1 at x = 0
        yv = self.b.fmul(self.c(math.pi), x)
        r = self.b.fdiv(self.call("sin", yv), yv)
        return self.sel(self.cmp("==", x, self.c(0.0)), self.c(1.0), r)

    def logaddexp(self, x, y):
        # max(x, y) + log1p(exp(-|x - y|)); x == y (infinities too) -> x + ln2, as NumPy; NaN propagates
        m = self.sel(self.cmp(">", x, y), x, y)
        d = self.b.fneg(self.fabs(self.b.fsub(x, y)))
        r = self.b.fadd(m, self.call("softplus", d))
        r = self.sel(self.cmp("==", x, y), self.b.fadd(x, self.c(math.log(2.0))), r)
        return self.sel(self.b.fcmp_unordered("uno", x, y), self.b.fadd(x, y), r)

    def fmax(self, x, y):
        # np.fmax on arrays: (x > y or y is NaN) ? x : y -- NaN ignored, a tie (+0, -0) gives y
        return self.sel(self.b.or_(self.cmp(">", x, y), self.isnan(y)), x, y)

    def fmin(self, x, y):
        return self.sel(self.b.or_(self.cmp("<", x, y), self.isnan(y)), x, y)

    def log_or_zero(self, x):
        return self.sel(self.cmp("==", x, self.c(0.0)), self.c(0.0), self.call("log", x))

    def _pi_plus(self, mult: float, r, sign: float = 1.0):
        """mult * pi + sign * r with pi as a double-word constant (|r| <= pi/4, mult * pi >= pi/4)."""
        hi, lo = _PI_DW[self.dtype]
        r = self.b.fmul(self.c(sign), r) if sign != 1.0 else r
        return self.b.fadd(self.b.fadd(r, self.c(mult * lo)), self.c(mult * hi))

    def atan(self, x):
        """|x| > 1: pi/2 - atan(1/|x|); t > tan(pi/8): pi/4 + atan((t - 1)/(t + 1)); then atan(u) = u + u^3 P(u^2)
        on |u| <= tan(pi/8) (coefficients fitted in float64 / float32 by least squares at 200-bit precision)."""
        b = self.b
        a = self.fabs(x)
        big = self.cmp(">", a, self.c(1.0))
        t = self.sel(big, b.fdiv(self.c(1.0), a), a)  # in [0, 1]; inf -> 0
        mid = self.cmp(">", t, self.c(_TAN_PI_8))
        u = self.sel(mid, b.fdiv(b.fsub(t, self.c(1.0)), b.fadd(t, self.c(1.0))), t)
        sq = b.fmul(u, u)
        coeffs = _ATAN_P[self.dtype]
        p = self.c(coeffs[-1])
        for cf in reversed(coeffs[:-1]):
            p = self.fma(p, sq, self.c(cf))
        r = self.fma(b.fmul(u, sq), p, u)
        r = self.sel(mid, self._pi_plus(0.25, r), r)
        r = self.sel(big, self._pi_plus(0.5, r, -1.0), r)
        return self.intrinsic("copysign", r, x)  # odd; NaN stays NaN

    def arcsin(self, x):
        # atan(a / sqrt((1 - a)(1 + a))): 1 - a exact near 1; a = 1 -> atan(inf) = pi/2; a > 1 -> nan
        b, a = self.b, self.fabs(x)
        den = self.intrinsic("sqrt", b.fmul(b.fsub(self.c(1.0), a), b.fadd(self.c(1.0), a)))
        return self.intrinsic("copysign", self.atan(b.fdiv(a, den)), x)

    def arccos(self, x):
        # 2 atan(sqrt((1 - x)/(1 + x))): x = 1 -> 0, x = -1 -> pi, |x| > 1 -> nan
        b = self.b
        z = self.intrinsic("sqrt", b.fdiv(b.fsub(self.c(1.0), x), b.fadd(self.c(1.0), x)))
        return b.fmul(self.c(2.0), self.atan(z))

    def arctan2(self, y, x):
        """atan(|y| / |x|), then pi - r when x has its sign bit set, then the sign of y (C99 / NumPy rules:
        atan2(+-0, -0) = +-pi, atan2(+-inf, +-inf) = +-pi/4 or +-3pi/4)."""
        b = self.b
        ay, ax = self.fabs(y), self.fabs(x)
        r = self.atan(b.fdiv(ay, ax))
        r = self.sel(self.b.and_(self.cmp("==", ay, self.c(0.0)), self.cmp("==", ax, self.c(0.0))), self.c(0.0), r)
        both_inf = self.b.and_(self.cmp("==", ay, self.c(math.inf)), self.cmp("==", ax, self.c(math.inf)))
        r = self.sel(both_inf, self.c(math.pi / 4), r)
        ity = ir.IntType(32 if self.dtype == "float32" else 64)
        xneg = b.icmp_signed("<", b.bitcast(x, ity), ir.Constant(ity, 0))  # sign bit of x (-0 too)
        r = self.sel(xneg, self._pi_plus(1.0, r, -1.0), r)
        r = self.intrinsic("copysign", r, y)
        return self.sel(b.fcmp_unordered("uno", x, y), b.fadd(x, y), r)

    def _big_log(self, a):
        """log(a) + ln 2 (asinh/acosh for a beyond 2**28 float64 / 2**12 float32, where a^2 + 1 = a^2)."""
        return self.b.fadd(self.call("log", a), self.c(math.log(2.0)))

    def _big(self):
        return self.c(2.0 ** (28 if self.dtype == "float64" else 12))

    def arcsinh(self, x):
        # sign(x) log1p(a + a^2 / (1 + sqrt(1 + a^2))), a = |x| (no cancellation, accurate near 0)
        b, a = self.b, self.fabs(x)
        a2 = b.fmul(a, a)
        small = self.call("log1p", b.fadd(a, b.fdiv(a2, b.fadd(self.c(1.0), self.intrinsic("sqrt", b.fadd(self.c(1.0), a2))))))
        r = self.sel(self.cmp(">", a, self._big()), self._big_log(a), small)
        return self.intrinsic("copysign", r, x)

    def arccosh(self, x):
        # log1p(t + sqrt(2t + t^2)), t = x - 1 (exact near 1); x < 1 -> nan
        b = self.b
        t = b.fsub(x, self.c(1.0))
        small = self.call("log1p", b.fadd(t, self.intrinsic("sqrt", self.fma(t, t, b.fmul(self.c(2.0), t)))))
        r = self.sel(self.cmp(">", x, self._big()), self._big_log(x), small)
        return self.sel(self.cmp("<", x, self.c(1.0)), self.c(math.nan), r)  # (t + sqrt(t^2 + 2t) = 0 for t << 0)

    def arctanh(self, x):
        # sign(x) log1p(2a / (1 - a)) / 2: a = 1 -> inf, a > 1 -> nan
        b, a = self.b, self.fabs(x)
        r = b.fmul(self.c(0.5), self.call("log1p", b.fdiv(b.fmul(self.c(2.0), a), b.fsub(self.c(1.0), a))))
        return self.intrinsic("copysign", r, x)

    def cbrt(self, x):
        """sign(x) |x|^(1/3): mathlib pow(|x|, 1/3) in float64 (float32: rounded once, done), then one Newton
        step y + (|x| / y^2 - y) / 3 for float64 (1/3 is not exact: pow alone is off by |ln x| * 2^-54)."""
        e, b = self.at("float64"), self.b
        ad = e.fabs(self.to64(x))
        y = e.call("pow", ad, e.c(1.0 / 3.0))
        if self.dtype == "float64":
            y = e.fma(b.fsub(b.fdiv(ad, b.fmul(y, y)), y), e.c(1.0 / 3.0), y)
        r = self.back(y)
        r = self.sel(self.b.or_(self.cmp("==", x, self.c(0.0)), self.cmp("==", self.fabs(x), self.c(math.inf))),
                     x, self.intrinsic("copysign", r, x))  # +-0, +-inf; NaN propagates through pow
        return r

    def _erfc_pos64(self, a):
        """erfc(a) for a >= 0 in float64 to ~1.2e-7 relative (Numerical Recipes' erfcc: t exp(-a^2 + P(t)),
        t = 1 / (1 + a/2)); a float32 a has an exact square in float64, so exp(-a^2) adds no error."""
        e, b = self.at("float64"), self.b
        t = b.fdiv(e.c(1.0), e.fma(a, e.c(0.5), e.c(1.0)))
        p = e.c(_ERFCC[-1])
        for cf in reversed(_ERFCC[:-1]):
            p = e.fma(p, t, e.c(cf))
        return b.fmul(t, e.call("exp", e.fma(e.fneg(a), a, p)))

    def _erf_f32(self, x, complement: bool):
        e, b = self.at("float64"), self.b
        xd = self.to64(x)
        a = e.fabs(xd)
        ec = self._erfc_pos64(a)
        if complement:  # erfc(x) = 2 - erfc(|x|) for x < 0 (no cancellation: the result is >= 1)
            return self.back(e.sel(e.cmp("<", xd, e.c(0.0)), b.fsub(e.c(2.0), ec), ec))
        # erf: Taylor series 2/sqrt(pi) sum (-1)^k x^(2k+1) / (k! (2k+1)) for |x| < 1/2, else 1 - erfc(|x|)
        sq = b.fmul(a, a)
        p = e.c(_ERF_TAYLOR[-1])
        for cf in reversed(_ERF_TAYLOR[:-1]):
            p = e.fma(p, sq, e.c(cf))
        r = e.sel(e.cmp("<", a, e.c(0.5)), b.fmul(a, p), b.fsub(e.c(1.0), ec))
        return self.back(e.intrinsic("copysign", r, xd))

    def _erfc_pos_f64(self, a):
        """erfc(a) for a >= 1/2 in float64: t exp(-a^2 + Q(t)), t = 1 / (1 + a/2), Q a degree-25 polynomial in
        (t - 0.434) / 0.366 fitted on a in [1/2, 27.4] at 300 bits (max error 8e-17 in the exponent); -a^2 is
        carried as a double word and added with TwoSum so the large exponent loses nothing."""
        b = self.b
        t = b.fdiv(self.c(1.0), self.fma(a, self.c(0.5), self.c(1.0)))
        u = b.fdiv(b.fsub(t, self.c(_ERFC_T0)), self.c(_ERFC_TH))
        q = self.c(_ERFC_Q[-1])
        for cf in reversed(_ERFC_Q[:-1]):
            q = self.fma(q, u, self.c(cf))
        hi = b.fmul(a, a)
        lo = self.fma(a, a, b.fneg(hi))  # a^2 = hi + lo exactly
        s = b.fsub(q, hi)
        bb = b.fsub(s, q)
        err = b.fadd(b.fsub(q, b.fsub(s, bb)), b.fsub(b.fneg(hi), bb))  # TwoSum(q, -hi) error
        low = b.fsub(err, lo)
        r = b.fmul(t, self.fma(self.call("exp", s), low, self.call("exp", s)))
        return self.sel(self.cmp(">", a, self.c(27.3)), self.c(0.0), r)  # (underflows; NaN stays in r)

    def _erf_f64(self, x, complement: bool):
        b = self.b
        a = self.fabs(x)
        sq = b.fmul(a, a)
        p = self.c(_ERF_TAYLOR64[-1])
        for cf in reversed(_ERF_TAYLOR64[:-1]):
            p = self.fma(p, sq, self.c(cf))
        erf_small = b.fmul(a, p)  # |x| < 1/2
        ec = self._erfc_pos_f64(a)
        small = self.cmp("<", a, self.c(0.5))
        if complement:
            ec = self.sel(small, b.fsub(self.c(1.0), erf_small), ec)
            return self.sel(self.cmp("<", x, self.c(0.0)), b.fsub(self.c(2.0), ec), ec)
        r = self.sel(small, erf_small, b.fsub(self.c(1.0), ec))
        return self.intrinsic("copysign", r, x)

    def erf(self, x):
        return self._erf_f32(x, False) if self.dtype == "float32" else self._erf_f64(x, False)

    def erfc(self, x):
        return self._erf_f32(x, True) if self.dtype == "float32" else self._erf_f64(x, True)

    def erfinv(self, y):
        """A call of ``sd_erfinv_<f32|f64>``, emitted once per module and not inlined: it calls libm (so it
        does not vectorise) and is long (a fused kernel may use it many times)."""
        m, name = self.b.module, f"sd_erfinv_{TAG[self.dtype]}"
        fn = m.globals.get(name)
        if fn is None:
            fn = ir.Function(m, ir.FunctionType(self.ty, [self.ty]), name=name)
            fn.linkage = "internal"
            for attr in ("noinline", "nounwind", "readnone"):
                fn.attributes.add(attr)
            body = ir.IRBuilder(fn.append_basic_block("entry"))
            body.ret(Ext(body, self.math, self.dtype).erfinv_body(fn.args[0]))
        return self.b.call(fn, [y])

    def erfinv_body(self, y):
        """Giles (2010) single-precision erfinv in float64, then Halley steps on erf / erfc."""
        e, b = self.at("float64"), self.b
        yd = self.to64(y)
        a = e.fabs(yd)
        w = e.fneg(e.call("log", b.fmul(b.fsub(e.c(1.0), a), b.fadd(e.c(1.0), a))))
        central = e.cmp("<", w, e.c(5.0))
        t = e.sel(central, b.fsub(w, e.c(2.5)), b.fsub(e.intrinsic("sqrt", w), e.c(3.0)))
        p_c, p_t = e.c(_GILES_C[0]), e.c(_GILES_T[0])
        for cc, ct in zip(_GILES_C[1:], _GILES_T[1:]):
            p_c, p_t = e.fma(p_c, t, e.c(cc)), e.fma(p_t, t, e.c(ct))
        xk = b.fmul(e.sel(central, p_c, p_t), a)
        tail = e.cmp(">", a, e.c(0.5))
        log_q = e.call("log", b.fsub(e.c(1.0), a))  # 1 - a exact for a in [1/2, 1]
        for _ in range(1 if self.dtype == "float32" else 3):
            d = b.fmul(e.c(2.0 / math.sqrt(math.pi)), e.call("exp", e.fneg(b.fmul(xk, xk))))  # erf'(x)
            # centre: Halley on erf(x) - a: x - u / (1 + x u), u = (erf(x) - a) / erf'(x)
            u = b.fdiv(b.fsub(e.libm("erf", xk), a), d)
            x_c = b.fsub(xk, b.fdiv(u, e.fma(xk, u, e.c(1.0))))
            # tail: Halley on h = log erfc(x) - log(1 - a) (nearly quadratic in x, so it converges from
            # the extrapolated float32 guess too); h' = -erf'/erfc, h'' = -2x h' - h'^2
            ec = e.libm("erfc", xk)
            h = b.fsub(e.call("log", ec), log_q)
            h1 = e.fneg(b.fdiv(d, ec))
            h2 = b.fsub(b.fmul(b.fmul(e.c(-2.0), xk), h1), b.fmul(h1, h1))
            x_t = b.fsub(xk, b.fdiv(b.fmul(b.fmul(e.c(2.0), h), h1),
                                    b.fsub(b.fmul(b.fmul(e.c(2.0), h1), h1), b.fmul(h, h2))))
            xk = e.sel(tail, x_t, x_c)
        r = e.sel(e.cmp("==", a, e.c(1.0)), e.c(math.inf), xk)
        r = e.sel(e.b.fcmp_unordered(">", a, e.c(1.0)), e.c(math.nan), r)  # |y| > 1 or NaN
        r = e.intrinsic("copysign", r, yd)
        return self.back(e.sel(e.cmp("==", a, e.c(0.0)), e.c(0.0), r))  # erfinv(-0) = +0, as scipy

    def fneg(self, a):
        return self.b.fneg(a)



_TAN_PI_8 = math.sqrt(2.0) - 1.0
# atan(u) = u + u^3 P(u^2) on |u| <= tan(pi/8): least squares on 200 Chebyshev nodes at 200 bits, weighted by
# the term's share of atan; max relative error of the fit 2e-18 (float64) / 2e-9 (float32, coefficients rounded)
_ATAN_P = {
    "float64": (-0.33333333333333326, 0.19999999999997575, -0.14285714285378395, 0.1111111108766921,
                -0.09090908128628628, 0.07692282442823326, -0.066662226198888, 0.058769855975500676,
                -0.05218195053785969, 0.045027816530914574, -0.03345828485587056, 0.015180259821583797),
    "float32": (-0.3333331346511841, 0.19998441636562347, -0.1424306482076645, 0.10590773075819016,
                -0.060713041573762894),
}

# Numerical Recipes (2nd ed., 6.2) erfcc: erfc(z) = t exp(-z^2 + P(t)), t = 1/(1 + z/2), fractional error < 1.2e-7
_ERFCC = (-1.26551223, 1.00002368, 0.37409196, 0.09678418, -0.18628806, 0.27886807, -1.13520398, 1.48851587,
          -0.82215223, 0.17087277)
_ERF_TAYLOR = tuple(2 / math.sqrt(math.pi) * (-1) ** k / (math.factorial(k) * (2 * k + 1)) for k in range(9))
_ERF_TAYLOR64 = tuple(2 / math.sqrt(math.pi) * (-1) ** k / (math.factorial(k) * (2 * k + 1)) for k in range(15))
# float64 erfc on a >= 1/2: log(erfc(a) / t) + a^2 as a polynomial in u = (t - _ERFC_T0) / _ERFC_TH
# (benchmarks/ulp_sweep.py measures the result); least squares on 400 Chebyshev nodes at 300 bits
_ERFC_T0, _ERFC_TH = 0.434, 0.366
_ERFC_Q = (-0.7596535614828037, 0.48150738846061086, 0.034661818356785376, -0.01578713016256645, -0.004322449914625255, 0.0013909848823625295, 0.0005726680935684978, -0.00019845294317219497, -7.792187572962377e-05, 3.641381822478295e-05, 9.354257591036585e-06, -7.13168335039451e-06, -6.103620105988148e-07, 1.3034761656906384e-06, -1.23308837719672e-07, -1.9535545047026931e-07, 6.131066361807475e-08, 1.7950076120388174e-08, -1.426849182712128e-08, 9.629014939213625e-10, 2.0189239217723337e-09, -7.468854024995305e-10, -1.3149241742257953e-10, 1.379932639486219e-10, -2.663483219293985e-12, -1.0662308672773037e-11)


def _double_word(v: mpmath.mpf) -> tuple[float, float]:
    hi = float(v)
    return hi, float(v - hi)


with mpmath.workprec(200):
    _INV_LN2, _INV_LN10 = _double_word(1 / mpmath.log(2)), _double_word(1 / mpmath.log(10))
    _PI_DW = {"float64": _double_word(mpmath.pi)}
    _pi_hi32 = float(np.float32(float(mpmath.pi)))
    _PI_DW["float32"] = (_pi_hi32, float(np.float32(float(mpmath.pi - _pi_hi32))))
# Giles, "Approximating the erfinv function" (GPU Computing Gems, 2011), single precision, highest first
_GILES_C = (2.81022636e-08, 3.43273939e-07, -3.5233877e-06, -4.39150654e-06, 0.00021858087, -0.00125372503,
            -0.00417768164, 0.246640727, 1.50140941)
_GILES_T = (-0.000200214257, 0.000100950558, 0.00134934322, -0.00367342844, 0.00573950773, -0.0076224613,
            0.00943887047, 1.00167406, 2.83297682)


Rule = Callable  # rule(b, math, args, dtype) -> ir.Value


def _method(name: str) -> Rule:
    return lambda b, m, a, dt: getattr(Ext(b, m, dt), name)(*a)


def _intrinsic(name: str) -> Rule:
    return lambda b, m, a, dt: Ext(b, m, dt).intrinsic(name, *a)


# op -> rule, merged into scalar_rules.SCALAR_RULES
EXT_RULES: dict[str, Rule] = {
    "floor": _intrinsic("floor"), "ceil": _intrinsic("ceil"), "trunc": _intrinsic("trunc"),
    "rint": _intrinsic("roundeven"), "copysign": _intrinsic("copysign"),
    **{op: _method(op) for op in ("tan", "exp2", "log2", "log10", "hypot", "sinc", "logaddexp", "fmax", "fmin",
                                  "log_or_zero", "erfinv", "arcsin", "arccos", "arctan2", "arcsinh",
                                  "arccosh", "arctanh", "cbrt", "erf", "erfc")},
    "arctan": _method("atan"),
}
