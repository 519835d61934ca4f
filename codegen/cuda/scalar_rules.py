"""The CUDA backend's scalar-rule table: op name -> rule(args, dtype) -> a C expression.

Operands are C names or literals. Math functions use CUDA's (``expf``/``exp``...); the ``sd_*`` helpers
(NumPy's NaN-propagating max/min, sigmoid, softplus, step/heaviside/sign) live in ``cuda/ir.py``'s
device helpers. A composite op needs no entry: ``codegen/expand.py`` rewrites it into primitives first.
"""
from __future__ import annotations

from typing import Callable

from symdiff.codegen.cuda import dtype_rules
from symdiff.codegen.cuda.literals import flit, math_suffix

Rule = Callable[[list, str], str]  # rule(args, dtype) -> C expression

UNSUPPORTED: set[str] = set()  # ops this backend declares it cannot compile (none today)
# ops counted as special-function (SFU / libm) calls in the kernel statistics
SPECIAL = {"exp", "log", "log1p", "expm1", "sin", "cos", "tanh", "sigmoid", "softplus", "pow", "sqrt"}


# -- math functions (ops_math) --: op -> CUDA math-library function (float64 name; float32 adds "f");
# cuda_cpu.h supplies erfinv / erfinvf on the CPU (not in <math.h>)
MATH_LIBM = {"tan": "tan", "arcsin": "asin", "arccos": "acos", "arctan": "atan", "arctan2": "atan2",
             "arcsinh": "asinh", "arccosh": "acosh", "arctanh": "atanh", "exp2": "exp2", "log2": "log2",
             "log10": "log10", "hypot": "hypot", "cbrt": "cbrt", "erf": "erf", "erfc": "erfc", "erfinv": "erfinv",
             "floor": "floor", "ceil": "ceil", "rint": "rint", "trunc": "trunc", "copysign": "copysign"}
SPECIAL |= {"tan", "arcsin", "arccos", "arctan", "arctan2", "arcsinh", "arccosh", "arctanh", "exp2", "log2",
            "log10", "hypot", "cbrt", "erf", "erfc", "erfinv", "sinc", "logaddexp", "log_or_zero"}


def _libm(fname: str) -> Rule:
    return lambda a, dt: f"{fname}{math_suffix(dt)}({', '.join(a)})"


def _helper(fname: str) -> Rule:
    return lambda a, dt: f"sd_{fname}({a[0]})"


SCALAR_RULES: dict[str, Rule] = {
    "add": lambda a, dt: f"{a[0]} + {a[1]}",
    "sub": lambda a, dt: f"{a[0]} - {a[1]}",
    "mul": lambda a, dt: f"{a[0]} * {a[1]}",
    "div": lambda a, dt: f"{a[0]} / {a[1]}",
    "neg": lambda a, dt: f"-{a[0]}",
    "square": lambda a, dt: f"{a[0]} * {a[0]}",
    **{f: _libm(f) for f in ("exp", "log", "log1p", "expm1", "sin", "cos", "tanh", "sqrt", "pow")},
    "abs": _libm("fabs"),
    "maximum": lambda a, dt: f"sd_max({a[0]}, {a[1]})",
    "minimum": lambda a, dt: f"sd_min({a[0]}, {a[1]})",
    "relu": lambda a, dt: f"sd_max({a[0]}, {flit(0, dt)})",
    **{f: _helper(f) for f in ("sigmoid", "softplus", "step", "heaviside", "sign")},
    "eq": lambda a, dt: f"({a[0]} == {a[1]}) ? {flit(1, dt)} : {flit(0, dt)}",
    # -- math functions (ops_math) --
    **{op: _libm(f) for op, f in MATH_LIBM.items()},
    **{f: _helper(f) for f in ("sinc", "log_or_zero")},
    **{f: lambda a, dt, f=f: f"sd_{f}({a[0]}, {a[1]})" for f in ("logaddexp", "fmax", "fmin")},
}


# ops defined for every dtype (comparisons, logical, where, floor_divide, ...: cuda/dtype_rules.py); integer and
# bool operands use INT_RULES (the integer versions of the arithmetic primitives) instead of the float table
SCALAR_RULES.update(dtype_rules.ANY_DTYPE_RULES)
INT_RULES: dict[str, Rule] = {**dtype_rules.INT_RULES, **dtype_rules.ANY_DTYPE_RULES}
SPECIAL |= dtype_rules.SPECIAL


def scalar_expr(op: str, a: list, dtype: str) -> str:
    """One elementwise op on scalar C expressions, by table lookup (``dtype``: the operands' compute dtype)."""
    rule = (SCALAR_RULES if dtype in ("float32", "float64") else INT_RULES).get(op)
    if rule is None or op in UNSUPPORTED:
        raise NotImplementedError(f"backend 'cuda' has no scalar rule for op {op!r} on {dtype} operands")
    return rule(a, dtype)
