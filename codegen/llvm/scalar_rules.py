"""The LLVM backend's scalar-rule table: op name -> rule(builder, math, args, dtype) -> ir.Value.

One entry per elementwise primitive (and ``eq``); the loop vectoriser widens the scalar code. Math
functions (exp, log, tanh, ...) call the inlined polynomial library of ``mathlib.py``. A composite op
(its SymPy expression built from other ops) needs no entry: ``codegen/expand.py`` rewrites it first.
"""
from __future__ import annotations

from typing import Callable

from llvmlite import ir

from symdiff.codegen.llvm.dtype_rules import ANY_DTYPE_RULES, INT_RULES
from symdiff.codegen.llvm.mathlib import FUNCTIONS, MathLib
from symdiff.codegen.llvm.mathlib_ext import EXT_RULES

FTYPE = {"float32": ir.FloatType(), "float64": ir.DoubleType()}

# rule(b, math, args, dtype) -> value
Rule = Callable[[ir.IRBuilder, MathLib, list, str], ir.Value]

UNSUPPORTED: set[str] = set()  # ops this backend declares it cannot compile (none today)


def _max_min(which: str, with_zero: bool = False) -> Rule:
    # exactly np.maximum / np.minimum: (a > b or a is NaN) ? a : b -- NaN propagates, and a tie
    # (+0 vs -0) gives b, as numpy (llvm.maximum would order -0 < +0); relu = np.maximum(x, 0)
    def rule(b, math, a, dtype):
        x, y = (a[0], ir.Constant(FTYPE[dtype], 0.0)) if with_zero else a
        better = b.fcmp_ordered("<" if which == "min" else ">", x, y)
        return b.select(b.or_(better, b.fcmp_unordered("uno", x, x)), x, y)
    return rule


def _step_like(at0: float, below: float) -> Rule:
    # x > 0 -> 1, x < 0 -> below, x == 0 -> at0, NaN stays NaN (step, heaviside, sign)
    def rule(b, math, a, dtype):
        ty = FTYPE[dtype]
        x, zero = a[0], ir.Constant(ty, 0.0)
        pos, neg = b.fcmp_ordered(">", x, zero), b.fcmp_ordered("<", x, zero)
        v = b.select(pos, ir.Constant(ty, 1.0), b.select(neg, ir.Constant(ty, below), ir.Constant(ty, at0)))
        return b.select(b.fcmp_unordered("uno", x, x), x, v)
    return rule


def _math(fname: str) -> Rule:
    return lambda b, math, a, dtype: math.call(b, fname, a, dtype)


SCALAR_RULES: dict[str, Rule] = {
    "add": lambda b, m, a, dt: b.fadd(a[0], a[1]),
    "sub": lambda b, m, a, dt: b.fsub(a[0], a[1]),
    "mul": lambda b, m, a, dt: b.fmul(a[0], a[1]),
    "div": lambda b, m, a, dt: b.fdiv(a[0], a[1]),
    "neg": lambda b, m, a, dt: b.fneg(a[0]),
    "square": lambda b, m, a, dt: b.fmul(a[0], a[0]),
    "maximum": _max_min("max"),
    "minimum": _max_min("min"),
    "relu": _max_min("max", with_zero=True),
    "step": _step_like(0.0, 0.0),
    "heaviside": _step_like(0.5, 0.0),
    "sign": _step_like(0.0, -1.0),
    "eq": lambda b, m, a, dt: b.uitofp(b.fcmp_ordered("==", a[0], a[1]), FTYPE[dt]),
    **{f: _math(f) for f in FUNCTIONS},  # exp log log1p expm1 sin cos tanh sigmoid softplus pow sqrt abs
    # -- math functions (ops_math) --
    **EXT_RULES,  # tan arcsin ... erfinv floor ceil rint trunc copysign fmax fmin (codegen/llvm/mathlib_ext.py)
}


# ops defined for every dtype (comparisons, logical, where, floor_divide, ...: llvm/dtype_rules.py); integer and
# bool operands use INT_RULES (the integer versions of the arithmetic primitives) instead of the float table
SCALAR_RULES.update(ANY_DTYPE_RULES)
INT_RULES = {**INT_RULES, **ANY_DTYPE_RULES}


def scalar(b: ir.IRBuilder, math: MathLib, op: str, args: list, dtype: str) -> ir.Value:
    """One elementwise op on scalars, by table lookup (``dtype``: the operands' compute dtype)."""
    rule = (SCALAR_RULES if dtype in FTYPE else INT_RULES).get(op)
    if rule is None or op in UNSUPPORTED:
        raise NotImplementedError(f"backend 'llvm' has no scalar rule for op {op!r} on {dtype} operands")
    return rule(b, math, args, dtype)
