"""x * y + z on targets without FMA units (SSE4.2), for the math library (codegen/llvm/mathlib.py) and its
extensions: ``llvm.fma`` there is a libm call per element, which stops vectorisation."""
from __future__ import annotations

from llvmlite import ir


def _fconst(ty: ir.Type, v: float) -> ir.Constant:
    if isinstance(ty, ir.VectorType):
        return ir.Constant(ty, [ir.Constant(ty.element, v)] * ty.count)
    return ir.Constant(ty, v)


def soft_fma(b: ir.IRBuilder, x: ir.Value, y: ir.Value, z: ir.Value) -> ir.Value:
    """x * y + z on a target without FMA units, where ``llvm.fma`` becomes a libm call per element (no
    vectorising: 19x slower elementwise code on SSE4.2). Exact wherever the error-free transformations of
    this library rely on it, i.e. where the true result is representable (z = -fl(x*y) and the
    Cody-Waite steps); within an ulp or so elsewhere (Horner steps):

    - float32: in float64, where x*y is exact and the sum is rounded once, then to float32;
    - float64: Dekker's product, p = fl(x*y) and e = x*y - p exactly from Veltkamp halves (split by
      2^27 + 1), then (p + z) + e; e is dropped where the split overflows (|x*y| near the largest double).
    """
    ty = x.type
    el = ty.element if isinstance(ty, ir.VectorType) else ty
    if isinstance(el, ir.FloatType):
        dty = ir.VectorType(ir.DoubleType(), ty.count) if isinstance(ty, ir.VectorType) else ir.DoubleType()
        xd, yd, zd = (b.fpext(v, dty) for v in (x, y, z))
        return b.fptrunc(b.fadd(b.fmul(xd, yd), zd), ty)
    split = _fconst(ty, 134217729.0)

    def halves(v):
        t = b.fmul(v, split)
        hi = b.fsub(t, b.fsub(t, v))
        return hi, b.fsub(v, hi)
    p = b.fmul(x, y)
    (xh, xl), (yh, yl) = halves(x), halves(y)
    e = b.fadd(b.fadd(b.fadd(b.fsub(b.fmul(xh, yh), p), b.fmul(xh, yl)), b.fmul(xl, yh)), b.fmul(xl, yl))
    # near the overflow threshold the split overflows (e: inf or NaN); the rounded p + z is all there is
    e = b.select(b.fcmp_ordered("==", b.fsub(e, e), _fconst(ty, 0.0)), e, _fconst(ty, 0.0))
    return b.fadd(b.fadd(p, z), e)


__all__ = ["soft_fma"]
