"""Vectorisable elementary functions emitted as LLVM IR (llvmlite IRBuilder code).

Calls to libm (``expf``, ``tanh`` ...) stop LLVM's loop vectoriser, so fused
elementwise loops use these instead: every function is straight-line IR
(range reduction + polynomial, ``select`` instead of branches, integer bit
tricks through ``bitcast``, rounding to integers by the 1.5 * 2**mantissa_bits
"magic number" trick, and only intrinsics that vectorise: ``llvm.fma``,
``llvm.floor``, ``llvm.fabs``, ``llvm.copysign``, ``llvm.sqrt``). On a target without FMA
units (``MathLib(hw_fma=False)``, SSE4.2) ``soft_fma`` replaces ``llvm.fma``.
No floating-point fast-math flags are used (the error-free transformations in
here rely on IEEE semantics).

Usage (by the lowering code)::

    lib = MathLib(module)
    y = lib.call(builder, "exp", [x], "float32")

emits, once per module, ``define internal float @sd_exp_f32(float)`` with
``alwaysinline nounwind readnone`` (``memory(none)``) and returns the call; at
O3 the call is inlined and the surrounding loop vectorises.

Accuracy: max relative error in ulp of the result dtype against a higher-precision
reference (float64 numpy for float32, 80-bit long double for float64), measured over
~10M random inputs per function (random bit patterns + the ranges in
tests/test_llvm_math.py, which asserts slightly looser bounds):

=========  =======  =======
function   float32  float64
=========  =======  =======
exp         1.04     1.02
log         0.78     0.75
log1p       0.88     0.88
expm1       1.54     1.98
sin, cos    1.53     1.48    (*)
tanh        2.21     2.50
sigmoid     2.07     2.00
softplus    1.59     1.44
pow         0.51     1.17
sqrt        0.5      0.5     (llvm.sqrt: correctly rounded)
abs         0        0
=========  =======  =======

(*) sin/cos use a 3-part Cody-Waite reduction by pi/2 (fma based, no Payne-Hanek):
accurate (<= 1.5 ulp, absolute error ~6e-8 / 1.2e-16) for |x| <= 2e5 in float32 and
|x| <= 3e12 in float64.  Beyond that the quadrant computed from x * 2/pi goes wrong
and the results degrade quickly (absolute errors 1e-2 at 3e5 / 1e13 and O(1) from
~1e7 / ~1e15): they stay finite and within [-1, 1] but are meaningless.
sin/cos(+-inf) = nan.

Special values follow numpy: exp overflow -> inf, underflow -> 0 (gradual
underflow to denormals is kept), log(0) = -inf, log(<0) = nan, log1p(-1) = -inf,
NaN in -> NaN out, tanh(+-inf) = +-1, sigmoid(+inf) = 1, sigmoid(-inf) = 0,
softplus(inf) = inf, softplus(-inf) = 0, signed zeros are kept where numpy keeps
them, and pow follows C99 / numpy (x < 0 with integer y, x == 0, infinities,
pow(x, 0) = pow(1, y) = 1 even for NaN).  float32 pow is evaluated in float64
internally (so it is nearly correctly rounded, at about twice the cost of the
other functions); float64 pow uses a double-word log and exp.

Cost (vectorised loop out[i] = f(in[i]), data in L2, AVX-512 host, 512-bit vectors):
about 0.3-0.5 ns/element for float32 exp/log/log1p/expm1/sin/cos/tanh/sigmoid
(~30-50 instructions per 16 lanes), ~0.8 softplus, ~2 pow; float64 2-3x that.
Identical sub-computations are shared by LLVM after inlining (sin(x) and cos(x)
share the reduction and both polynomials; sigmoid(u) and softplus(u) share
exp(-|u|)).
"""
from __future__ import annotations

import math
import struct
from typing import Optional, Sequence

from llvmlite import ir

from symdiff.codegen.llvm.coeffs import (COS_F32, COS_F64, EXPM1_F32, EXPM1_F64, EXPM1_F64_SHORT, LOGP2_F64, LOGR_F32,
                                          LOGR_F64, LOGR_F64_SHORT, SIN_F32, SIN_F64)
from symdiff.codegen.llvm.softfma import soft_fma

__all__ = ["MathLib", "FUNCTIONS", "ARITY", "emit_elementwise_test_kernel"]


_DTYPES = {"float32": "f32", "float64": "f64", "f32": "f32", "f64": "f64"}


def _f32(v: float) -> float:
    """Round a Python float to the nearest float32 value."""
    return struct.unpack("<f", struct.pack("<f", v))[0]


class _DT:
    """Numeric constants of one floating-point format."""

    def __init__(self, tag: str) -> None:
        self.tag = tag
        if tag == "f32":
            self.ty, self.ity = ir.FloatType(), ir.IntType(32)
            self.nbits, self.mbits, self.bias = 32, 23, 127
            self.rnd = _f32
            self.min_normal = 2.0 ** -126
            # exp / expm1 clamps (argument), chosen so that the scaled result over/underflows
            self.exp_lo, self.exp_hi = -104.0, 89.0
            self.expm1_lo = -30.0
            self.sqrt_half_bits = 0x3F3504F3
            # Cody-Waite constants (fma based): exact pieces of ln2 / pi/2
            self.ln2 = (0.6931471824645996, -1.9046542121259336e-09)
            self.pio2 = (1.5707963705062866, -4.371138828673793e-08, -1.7151245100058819e-15)
            # ln2 with trailing zeros: k * LN2_HI is exact for |k| < 2**8
            self.ln2_tz = (0.6931381225585938, 9.05800061445916e-06)
            self.sincos_rmax = math.pi / 4 * 1.02       # range of the sin/cos polynomial fit
            self.expm1_p, self.sin_p, self.cos_p, self.logr = EXPM1_F32, SIN_F32, COS_F32, LOGR_F32
        else:
            self.ty, self.ity = ir.DoubleType(), ir.IntType(64)
            self.nbits, self.mbits, self.bias = 64, 52, 1023
            self.rnd = float
            self.min_normal = 2.0 ** -1022
            self.exp_lo, self.exp_hi = -750.0, 710.0
            self.expm1_lo = -60.0
            self.sqrt_half_bits = 0x3FE6A09E667F3BCD
            self.ln2 = (0.6931471805599453, 2.3190468138462996e-17)
            self.pio2 = (1.5707963267948966, 6.123233995736766e-17, -1.4973849048591698e-33)
            # k * LN2_HI exact for |k| < 2**21
            self.ln2_tz = (0.6931471803691238, 1.9082149292705877e-10)
            self.sincos_rmax = math.pi / 4 * 1.001
            self.expm1_p, self.sin_p, self.cos_p, self.logr = EXPM1_F64, SIN_F64, COS_F64, LOGR_F64
        self.mant_mask = (1 << self.mbits) - 1


_F32 = _DT("f32")
_F64 = _DT("f64")
_I32 = ir.IntType(32)


class _Emitter:
    """Emits straight-line IR for one function body into ``b`` (one float format)."""

    def __init__(self, module: ir.Module, builder: ir.IRBuilder, dt: _DT, hw_fma: bool = True) -> None:
        self.m, self.b, self.d, self.hw_fma = module, builder, dt, hw_fma

    # ---- helpers --------------------------------------------------------------------
    def with_dt(self, dt: _DT) -> "_Emitter":
        return _Emitter(self.m, self.b, dt, self.hw_fma)

    def c(self, v: float) -> ir.Constant:
        return ir.Constant(self.d.ty, self.d.rnd(float(v)))

    def ic(self, v: int, ty: Optional[ir.IntType] = None) -> ir.Constant:
        return ir.Constant(ty or self.d.ity, v)

    def intrinsic(self, name: str, nargs: int) -> ir.Function:
        full = f"llvm.{name}.{self.d.tag}"
        fn = self.m.globals.get(full)
        if fn is None:
            fnty = ir.FunctionType(self.d.ty, [self.d.ty] * nargs)
            fn = ir.Function(self.m, fnty, name=full)
        return fn

    def _call(self, name: str, *args: ir.Value) -> ir.Value:
        return self.b.call(self.intrinsic(name, len(args)), list(args))

    def fma(self, a, x, y):
        return self._call("fma", a, x, y) if self.hw_fma else soft_fma(self.b, a, x, y)

    def floor(self, x):
        return self._call("floor", x)

    def fabs(self, x):
        return self._call("fabs", x)

    def copysign(self, mag, sgn):
        return self._call("copysign", mag, sgn)

    def sqrt(self, x):
        return self._call("sqrt", x)

    def add(self, a, x):
        return self.b.fadd(a, x)

    def sub(self, a, x):
        return self.b.fsub(a, x)

    def mul(self, a, x):
        return self.b.fmul(a, x)

    def div(self, a, x):
        return self.b.fdiv(a, x)

    def neg(self, x):
        return self.b.fneg(x)

    def cmp(self, op: str, a, x):
        """Ordered comparison (false when either side is NaN)."""
        return self.b.fcmp_ordered(op, a, x)

    def ucmp(self, op: str, a, x):
        """Unordered comparison (true when either side is NaN)."""
        return self.b.fcmp_unordered(op, a, x)

    def isnan(self, x):
        return self.b.fcmp_unordered("uno", x, x)

    def sel(self, cond, a, x):
        return self.b.select(cond, a, x)

    def to_bits(self, x):
        return self.b.bitcast(x, self.d.ity)

    def from_bits(self, i):
        return self.b.bitcast(i, self.d.ty)

    def poly(self, x, coeffs: Sequence[float]):
        """sum coeffs[i] * x**i by Horner's rule with fma."""
        acc = self.c(coeffs[-1])
        for cf in reversed(coeffs[:-1]):
            acc = self.fma(acc, x, self.c(cf))
        return acc

    def pow2i(self, k):
        """2**k as a float for an integer ``k`` (of the format's int type) in the normal range."""
        d = self.d
        e = self.b.add(k, self.ic(d.bias))
        return self.from_bits(self.b.shl(e, self.ic(d.mbits)))

    def round_magic(self, x, c: float):
        """rint(x * c) by adding 1.5 * 2**mbits (single rounding with fma).

        Returns (t, n as float, n as int): the integer n is read from the low mantissa
        bits of t, valid for |n| < 2**(mbits-1); no fptosi (whose NaN / overflow results
        are poison) is involved.
        """
        d = self.d
        magic = self.c(1.5 * 2.0 ** d.mbits)
        t = self.fma(x, self.c(c), magic)
        nf = self.sub(t, magic)
        n = self.b.sub(self.to_bits(t), self.to_bits(magic))
        return t, nf, n

    def clamp(self, x, lo: float, hi: float):
        """min(max(x, lo), hi) with NaN -> hi (two x86 min/max instructions)."""
        x1 = self.sel(self.cmp("<", x, self.c(hi)), x, self.c(hi))
        return self.sel(self.cmp(">", x1, self.c(lo)), x1, self.c(lo))

    # ---- exp / expm1 ------------------------------------------------------------------
    def _exp_reduce(self, xs, xlo=None):
        """xs -> (n as int, r) with xs (+ xlo) = n*ln2 + r, |r| <= ~ln2/2, for |xs| < 2**20."""
        d = self.d
        _, nf, n = self.round_magic(xs, 1.0 / math.log(2.0))
        mn = self.neg(nf)
        r = self.fma(mn, self.c(d.ln2[0]), xs)        # exact
        r = self.fma(mn, self.c(d.ln2[1]), r)
        if xlo is not None:
            r = self.add(r, xlo)
        return n, r

    def exp_core(self, x, xlo=None, coeffs=None, nonpos: bool = False):
        """exp(x [+ xlo]) without NaN handling (NaN input gives a finite garbage value)."""
        d = self.d
        hi = 0.0 if nonpos else d.exp_hi
        xs = self.clamp(x, d.exp_lo, hi)
        n, r = self._exp_reduce(xs, xlo)
        q = self.fma(self.mul(r, r), self.poly(r, coeffs or d.expm1_p), r)   # expm1(r)
        p = self.add(q, self.c(1.0))
        n1 = self.b.ashr(n, self.ic(1))
        n2 = self.b.sub(n, n1)
        # two-step scaling: exact except for the final (over/underflowing) multiply
        return self.mul(self.mul(p, self.pow2i(n1)), self.pow2i(n2))

    def exp(self, x):
        return self.sel(self.isnan(x), x, self.exp_core(x))

    def expm1_core(self, x, nonpos: bool = False, with_exp: bool = False):
        """expm1(x) for x not NaN (NaN gives garbage); -0 gives +0.

        With ``nonpos`` (x <= 0 known) and ``with_exp``, returns (expm1(x), exp(x)) both
        from the same reduction.
        """
        d = self.d
        hi = 0.0 if nonpos else d.exp_hi
        xs = self.clamp(x, d.expm1_lo, hi)
        n, r = self._exp_reduce(xs)
        p = self.fma(self.mul(r, r), self.poly(r, d.expm1_p), r)           # expm1(r)
        t = self.pow2i(self.b.sub(n, self.ic(1)))                            # 2**(n-1)
        tt = self.add(t, t)                                                  # 2**n
        small = self.fma(tt, p, self.sub(tt, self.c(1.0)))                   # 2^n p + (2^n - 1)
        if nonpos:
            return (small, self.fma(tt, p, tt)) if with_exp else small
        big = self.mul(self.mul(self.add(p, self.c(1.0)), t), self.c(2.0))  # n = max exponent + 1
        return self.sel(self.b.icmp_signed(">", n, self.ic(d.bias)), big, small)

    def expm1(self, x):
        r = self.expm1_core(x)
        # NaN -> NaN, +-0 -> +-0
        return self.sel(self.ucmp("==", x, self.c(0.0)), x, r)

    # ---- log family -------------------------------------------------------------------
    def _log_decompose(self, x, denormals: bool):
        """x > 0 finite -> (k as float, f, k as i32): x = 2**k * (1 + f), 1+f in [sqrt(1/2), sqrt(2))."""
        d = self.d
        kadj = None
        if denormals:
            sub = self.cmp("<", x, self.c(d.min_normal))
            x = self.sel(sub, self.mul(x, self.c(2.0 ** (d.mbits + 1))), x)
            kadj = self.sel(sub, self.ic(-(d.mbits + 1), _I32), self.ic(0, _I32))
        ix = self.to_bits(x)
        one_bits = d.bias << d.mbits
        ix = self.b.add(ix, self.ic(one_bits - d.sqrt_half_bits))
        k = self.b.lshr(ix, self.ic(d.mbits))
        if d.nbits == 64:
            k = self.b.trunc(k, _I32)
        k = self.b.sub(k, self.ic(d.bias, _I32))
        if kadj is not None:
            k = self.b.add(k, kadj)
        im = self.b.add(self.b.and_(ix, self.ic(d.mant_mask)), self.ic(d.sqrt_half_bits))
        f = self.sub(self.from_bits(im), self.c(1.0))
        return self.b.sitofp(k, d.ty), f, k

    def log_core(self, x, denormals: bool = True, corr=None, logr=None):
        """log(x + corr) for finite x > 0 (fdlibm's formula), |corr| <= ulp(x) / 2.

        ``corr`` (the rounding error of a preceding ``x = 1 + y``) is added without a
        division: log(x + corr) = k ln2 + log1p(f + c') with c' = corr * 2**-k, and
        log1p(f + c') ~ log1p(f) + c' / (1 + f), 1 / (1 + f) ~ 1 - f + f^2 (|f| <= 0.42,
        relative error <= 7%; c' is at most half an ulp of 1 + f, so this is accurate).
        """
        d = self.d
        dk, f, k = self._log_decompose(x, denormals)
        if corr is not None:
            e = self.b.sub(self.ic(d.bias, _I32), k)              # exponent field of 2**-k
            e = self.sel(self.b.icmp_signed(">", e, self.ic(1, _I32)), e, self.ic(1, _I32))
            if d.nbits == 64:
                e = self.b.zext(e, d.ity)
            scale = self.from_bits(self.b.shl(e, self.ic(d.mbits)))
            w = self.fma(f, self.sub(f, self.c(1.0)), self.c(1.0))
            corr = self.mul(self.mul(corr, scale), w)
        s = self.div(f, self.add(self.c(2.0), f))
        z = self.mul(s, s)
        R = self.mul(z, self.poly(z, logr or d.logr))
        hfsq = self.mul(self.mul(self.c(0.5), f), f)
        if corr is None:
            lo = self.mul(dk, self.c(d.ln2_tz[1]))
        else:
            lo = self.fma(dk, self.c(d.ln2_tz[1]), corr)
        t = self.fma(s, self.add(hfsq, R), lo)
        t = self.add(self.sub(t, hfsq), f)
        return self.fma(dk, self.c(d.ln2_tz[0]), t)

    def log(self, x):
        r = self.log_core(x)
        special = self.sel(self.cmp("==", x, self.c(0.0)), self.c(-math.inf), self.c(math.nan))
        r = self.sel(self.cmp("<=", x, self.c(0.0)), special, r)
        return self.sel(self.ucmp("==", x, self.c(math.inf)), x, r)   # NaN, +inf

    def _log1p_small(self, e):
        """log1p(e) for 0 <= e <= 1 (no special values)."""
        u = self.add(self.c(1.0), e)
        c = self.sub(e, self.sub(u, self.c(1.0)))          # exact rounding error of 1 + e
        return self.log_core(u, denormals=False, corr=c)

    def log1p(self, x):
        one = self.c(1.0)
        u = self.add(one, x)
        # exact rounding error of u = 1 + x (Fast2Sum with the larger operand first)
        c = self.sel(self.cmp(">", x, one), self.sub(one, self.sub(u, x)), self.sub(x, self.sub(u, one)))
        r = self.log_core(u, denormals=False, corr=c)
        special = self.sel(self.cmp("==", x, self.c(-1.0)), self.c(-math.inf), self.c(math.nan))
        r = self.sel(self.cmp("<=", x, self.c(-1.0)), special, r)
        r = self.sel(self.ucmp("==", x, self.c(math.inf)), x, r)        # NaN, +inf
        return self.sel(self.cmp("==", x, self.c(0.0)), x, r)           # keep -0

    # ---- trigonometric ------------------------------------------------------------------
    def sincos(self, x, cos: bool):
        d = self.d
        t, qf, _ = self.round_magic(x, 2.0 / math.pi)
        mq = self.neg(qf)
        r = self.fma(mq, self.c(d.pio2[0]), x)
        r = self.fma(mq, self.c(d.pio2[1]), r)
        r = self.fma(mq, self.c(d.pio2[2]), r)
        # keep |r| bounded (and so |result| <= 1) where the reduction is no longer accurate
        # (|x| beyond ~2**24 f32 / ~2**50 f64); NaN (x = +-inf / NaN) passes through
        rmax = self.c(d.sincos_rmax)
        r = self.sel(self.cmp(">", r, rmax), rmax, r)
        r = self.sel(self.cmp("<", r, self.neg(rmax)), self.neg(rmax), r)
        z = self.mul(r, r)
        sp = self.fma(self.mul(r, z), self.poly(z, d.sin_p), r)
        cp = self.fma(z, self.poly(z, (-0.5,) + tuple(d.cos_p)), self.c(1.0))
        # quadrant q mod 4 = low bits of t's mantissa (garbage but harmless for NaN / inf /
        # |x| beyond the accurate range)
        q = self.to_bits(t)
        if cos:
            q = self.b.add(q, self.ic(1))
        odd = self.b.icmp_unsigned("!=", self.b.and_(q, self.ic(1)), self.ic(0))
        res = self.sel(odd, cp, sp)
        sign = self.b.shl(self.b.and_(q, self.ic(2)), self.ic(d.nbits - 2))    # bit 1 -> sign bit
        res = self.from_bits(self.b.xor(self.to_bits(res), sign))
        if not cos:
            res = self.sel(self.cmp("==", x, self.c(0.0)), x, res)         # sin(-0) = -0
        return res

    # ---- hyperbolic / activations ------------------------------------------------------
    def tanh(self, x):
        ax = self.fabs(x)
        # tanh|x| = (1 - E) / (1 + E), E = exp(-2|x|): 1 - E = -expm1(-2|x|) keeps small |x|
        # accurate, 1 + E (not 2 + expm1) keeps E's error small relative to the denominator
        em1, e = self.expm1_core(self.mul(self.c(-2.0), ax), nonpos=True, with_exp=True)
        t = self.div(self.neg(em1), self.add(self.c(1.0), e))
        t = self.copysign(t, x)
        return self.sel(self.isnan(x), x, t)

    def sigmoid(self, x):
        e = self.exp_core(self.neg(self.fabs(x)), nonpos=True)             # exp(-|x|) in [0, 1]
        num = self.sel(self.cmp(">=", x, self.c(0.0)), self.c(1.0), e)
        r = self.div(num, self.add(self.c(1.0), e))
        return self.sel(self.isnan(x), x, r)

    def softplus(self, x):
        e = self.exp_core(self.neg(self.fabs(x)), nonpos=True)
        l1p = self._log1p_small(e)
        r = self.add(self.sel(self.cmp(">", x, self.c(0.0)), x, self.c(0.0)), l1p)
        return self.sel(self.isnan(x), x, r)

    # ---- pow ---------------------------------------------------------------------------
    def _log_dd(self, x):
        """Double-word log(x) = (H, L) for finite x > 0 (float64 only)."""
        d = self.d
        dk, f, _ = self._log_decompose(x, denormals=True)
        two = self.c(2.0)
        den = self.add(two, f)
        den_lo = self.sub(f, self.sub(den, two))                           # den + den_lo = 2 + f
        inv = self.div(self.c(1.0), den)
        s_hi = self.mul(f, inv)
        res = self.sub(self.fma(self.neg(s_hi), den, f), self.mul(s_hi, den_lo))
        s_lo = self.mul(res, inv)                                          # s = f/(2+f) = s_hi + s_lo
        z = self.mul(s_hi, s_hi)
        z_err = self.fma(s_hi, s_hi, self.neg(z))
        c3 = self.mul(s_hi, z)
        c3_lo = self.add(self.fma(s_hi, z, self.neg(c3)),
                         self.fma(s_hi, z_err, self.mul(self.mul(self.c(3.0), z), s_lo)))
        t_hi, t_lo = 0.6666666666666666, 3.700743415417188e-17              # 2/3 as double-word
        p = self.mul(self.c(t_hi), c3)
        p_lo = self.add(self.fma(self.c(t_hi), c3, self.neg(p)),
                        self.fma(self.c(t_hi), c3_lo, self.mul(self.c(t_lo), c3)))
        rest = self.mul(self.mul(c3, z), self.poly(z, LOGP2_F64))          # s^5 P2(s^2)
        a = self.add(s_hi, s_hi)
        sm = self.add(a, p)
        e1 = self.sub(p, self.sub(sm, a))                                  # Fast2Sum(a, p)
        lo = self.add(self.add(e1, self.add(s_lo, s_lo)), self.add(p_lo, rest))
        kh = self.mul(dk, self.c(d.ln2_tz[0]))                             # exact
        h = self.add(kh, sm)
        bb = self.sub(h, kh)
        e2 = self.add(self.sub(kh, self.sub(h, bb)), self.sub(sm, bb))    # TwoSum(kh, sm)
        lo = self.add(e2, self.fma(dk, self.c(d.ln2_tz[1]), lo))
        h2 = self.add(h, lo)
        return h2, self.sub(lo, self.sub(h2, h))

    def pow(self, x, y):
        d = self.d
        ax = self.fabs(x)
        if d.nbits == 32:
            # float64 internally: plain log / exp are then far more accurate than float32 needs
            e64 = self.with_dt(_F64)
            axd, yd = self.b.fpext(ax, _F64.ty), self.b.fpext(y, _F64.ty)
            ld = e64.log_core(axd, denormals=False, logr=LOGR_F64_SHORT)
            core = self.b.fptrunc(e64.exp_core(e64.mul(yd, ld), coeffs=EXPM1_F64_SHORT), d.ty)
        else:
            h, l = self._log_dd(ax)
            ph = self.mul(y, h)
            pl = self.fma(y, l, self.fma(y, h, self.neg(ph)))
            # beyond |y log x| ~ 746 the result over/underflows anyway; drop the (then
            # meaningless, possibly huge or NaN) low part so it cannot disturb exp's reduction
            pl = self.sel(self.cmp("<", self.fabs(ph), self.c(2048.0)), pl, self.c(0.0))
            core = self.exp_core(ph, xlo=pl)
        zero, one, inf = self.c(0.0), self.c(1.0), self.c(math.inf)
        yint = self.cmp("==", self.floor(y), y)
        hy = self.mul(y, self.c(0.5))
        yodd = self.b.and_(yint, self.cmp("!=", self.floor(hy), hy))
        xneg = self.cmp("<", x, zero)
        r = self.sel(self.b.and_(xneg, yodd), self.neg(core), core)
        r = self.sel(self.b.and_(xneg, self.b.not_(yint)), self.c(math.nan), r)
        # x = +-0 or +-inf
        big = self.b.xor(self.cmp("==", ax, inf), self.cmp("<", y, zero))
        v = self.sel(big, inf, zero)
        v = self.sel(yodd, self.copysign(v, x), v)
        xzi = self.b.or_(self.cmp("==", ax, zero), self.cmp("==", ax, inf))
        r = self.sel(xzi, v, r)
        # y = +-inf
        v2 = self.sel(self.b.xor(self.cmp(">", ax, one), self.cmp("<", y, zero)), inf, zero)
        v2 = self.sel(self.cmp("==", ax, one), one, v2)
        r = self.sel(self.cmp("==", self.fabs(y), inf), v2, r)
        # NaNs, then pow(x, 0) = pow(1, y) = 1
        r = self.sel(self.b.fcmp_unordered("uno", x, y), self.add(x, y), r)
        r = self.sel(self.b.or_(self.cmp("==", y, zero), self.cmp("==", x, one)), one, r)
        return r

    # ---- dispatch ----------------------------------------------------------------------
    def emit(self, fname: str, args: list) -> ir.Value:
        return EMIT[fname](self, *args)


# fname -> emitter method (the one table; ARITY and FUNCTIONS derive from it)
EMIT = {
    "exp": _Emitter.exp, "log": _Emitter.log, "log1p": _Emitter.log1p, "expm1": _Emitter.expm1,
    "sin": lambda e, x: e.sincos(x, cos=False), "cos": lambda e, x: e.sincos(x, cos=True),
    "tanh": _Emitter.tanh, "sigmoid": _Emitter.sigmoid, "softplus": _Emitter.softplus,
    "pow": _Emitter.pow, "sqrt": _Emitter.sqrt, "abs": _Emitter.fabs,
}
ARITY = {f: (2 if f == "pow" else 1) for f in EMIT}  # fname -> number of arguments
FUNCTIONS = tuple(EMIT)


def _dt(dtype: str) -> _DT:
    try:
        tag = _DTYPES[dtype]
    except KeyError:
        raise ValueError(f"unsupported dtype {dtype!r} (float32 / float64)") from None
    return _F32 if tag == "f32" else _F64


class MathLib:
    """Lazily emits ``internal alwaysinline`` math functions into one llvmlite module.

    ``sd_<fname>_<f32|f64>`` is created on first use and cached on this instance (a
    second MathLib on the same module reuses functions already there).
    """

    def __init__(self, module: ir.Module, hw_fma: bool = True) -> None:
        self.module = module
        self.hw_fma = hw_fma  # False: the target has no FMA units (SSE4.2): soft_fma instead of llvm.fma
        self._funcs: dict[tuple[str, str], ir.Function] = {}

    @staticmethod
    def name(fname: str, dtype: str) -> str:
        return f"sd_{fname}_{_dt(dtype).tag}"

    def function(self, fname: str, dtype: str) -> ir.Function:
        if fname not in ARITY:
            raise ValueError(f"unknown math function {fname!r}; known: {', '.join(FUNCTIONS)}")
        dt = _dt(dtype)
        key = (fname, dt.tag)
        fn = self._funcs.get(key)
        if fn is not None:
            return fn
        name = f"sd_{fname}_{dt.tag}"
        existing = self.module.globals.get(name)
        if isinstance(existing, ir.Function):
            self._funcs[key] = existing
            return existing
        fnty = ir.FunctionType(dt.ty, [dt.ty] * ARITY[fname])
        fn = ir.Function(self.module, fnty, name=name)
        fn.linkage = "internal"
        for attr in ("alwaysinline", "nounwind", "readnone"):
            fn.attributes.add(attr)
        builder = ir.IRBuilder(fn.append_basic_block("entry"))
        builder.ret(_Emitter(self.module, builder, dt, self.hw_fma).emit(fname, list(fn.args)))
        self._funcs[key] = fn
        return fn

    def call(self, builder: ir.IRBuilder, fname: str, args: list, dtype: str) -> ir.Value:
        fn = self.function(fname, dtype)
        if len(args) != ARITY[fname]:
            raise ValueError(f"{fname} takes {ARITY[fname]} argument(s), got {len(args)}")
        for a in args:
            if a.type != fn.args[0].type:
                raise TypeError(f"{fname}/{dtype}: argument of type {a.type}, expected {fn.args[0].type}")
        return builder.call(fn, list(args))


def emit_elementwise_test_kernel(module: ir.Module, fname: str, dtype: str, name: str = "k",
                                 lib: Optional[MathLib] = None) -> ir.Function:
    """Emit ``void name(ptr in0, ptr in1, ptr out, i64 n)``: out[i] = fname(in0[i] [, in1[i]]).

    in1 is ignored by unary functions.  Pointers are ``noalias`` so that the vectorised
    loop needs no runtime alias checks.
    """
    lib = lib or MathLib(module)
    dt = _dt(dtype)
    i64 = ir.IntType(64)
    ptr = ir.PointerType()
    fn = ir.Function(module, ir.FunctionType(ir.VoidType(), [ptr, ptr, ptr, i64]), name=name)
    for a, nm in zip(fn.args, ("in0", "in1", "out", "n")):
        a.name = nm
    for a in fn.args[:3]:
        a.add_attribute("noalias")
    in0, in1, out, n = fn.args
    entry = fn.append_basic_block("entry")
    loop = fn.append_basic_block("loop")
    done = fn.append_basic_block("done")
    b = ir.IRBuilder(entry)
    b.cbranch(b.icmp_signed(">", n, ir.Constant(i64, 0)), loop, done)
    b.position_at_end(loop)
    i = b.phi(i64, name="i")
    i.add_incoming(ir.Constant(i64, 0), entry)
    args = [b.load(b.gep(in0, [i], inbounds=True, source_etype=dt.ty), typ=dt.ty)]
    if ARITY[fname] == 2:
        args.append(b.load(b.gep(in1, [i], inbounds=True, source_etype=dt.ty), typ=dt.ty))
    r = lib.call(b, fname, args, dtype)
    b.store(r, b.gep(out, [i], inbounds=True, source_etype=dt.ty))
    nxt = b.add(i, ir.Constant(i64, 1), name="i.next")
    i.add_incoming(nxt, loop)
    b.cbranch(b.icmp_signed("<", nxt, n), loop, done)
    b.position_at_end(done)
    b.ret_void()
    return fn
