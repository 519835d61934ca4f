"""The CUDA C scalar rules of bool and integer values, and of the ops that exist for every dtype, with
the device helpers they call (merged into ``cuda/ir.py``'s HELPERS, emitted only when used).

C types: ``bool`` (1 byte, numpy's bool_ layout), ``int``, ``long long``, ``float``, ``double``. Integer
arithmetic goes through the unsigned type (two's-complement wraparound, as NumPy; signed overflow is undefined
in C). Integer floor_divide / remainder / fmod guard the divisor: by 0 they give 0 and MIN // -1 wraps to MIN
(NumPy's results), so no generated kernel can trap. Float floor_divide / remainder are NumPy's npy_divmod.
"""
from __future__ import annotations

from typing import Callable

Rule = Callable[[list, str], str]  # rule(args, dtype) -> C expression

_T = {"int32": "int", "int64": "long long", "bool": "bool"}
_U = {"int32": "unsigned int", "int64": "unsigned long long", "bool": "unsigned int"}


def _wrap(sym: str) -> Rule:
    return lambda a, dt: f"({_T[dt]})(({_U[dt]}){a[0]} {sym} ({_U[dt]}){a[1]})"


INT_RULES: dict[str, Rule] = {
    "add": _wrap("+"),
    "sub": _wrap("-"),
    "mul": _wrap("*"),
    "neg": lambda a, dt: f"({_T[dt]})(0u - ({_U[dt]}){a[0]})",
    "square": lambda a, dt: f"({_T[dt]})(({_U[dt]}){a[0]} * ({_U[dt]}){a[0]})",
    "abs": lambda a, dt: f"({a[0]} < 0 ? ({_T[dt]})(0u - ({_U[dt]}){a[0]}) : {a[0]})",
    "sign": lambda a, dt: f"({_T[dt]})(({a[0]} > 0) - ({a[0]} < 0))",
    "maximum": lambda a, dt: f"({a[0]} > {a[1]} ? {a[0]} : {a[1]})",
    "minimum": lambda a, dt: f"({a[0]} < {a[1]} ? {a[0]} : {a[1]})",
}

_CMP = {"less": "<", "less_equal": "<=", "greater": ">", "greater_equal": ">=", "equal": "==", "not_equal": "!="}

ANY_DTYPE_RULES: dict[str, Rule] = {
    **{op: (lambda sym: lambda a, dt: f"({a[0]} {sym} {a[1]})")(sym) for op, sym in _CMP.items()},  # NaN != NaN
    "logical_and": lambda a, dt: f"({a[0]} && {a[1]})",
    "logical_or": lambda a, dt: f"({a[0]} || {a[1]})",
    "logical_xor": lambda a, dt: f"({a[0]} != {a[1]})",
    "logical_not": lambda a, dt: f"(!{a[0]})",
    "where": lambda a, dt: f"({a[0]} ? {a[1]} : {a[2]})",
    "stop_gradient": lambda a, dt: a[0],
    "isnan": lambda a, dt: f"(bool)isnan({a[0]})",
    "isinf": lambda a, dt: f"(bool)isinf({a[0]})",
    "isfinite": lambda a, dt: f"(bool)isfinite({a[0]})",
    "floor_divide": lambda a, dt: f"sd_floordiv({a[0]}, {a[1]})",
    "remainder": lambda a, dt: f"sd_remainder({a[0]}, {a[1]})",
    "fmod": lambda a, dt: f"sd_fmod({a[0]}, {a[1]})",
}
SPECIAL = {"floor_divide", "remainder", "fmod"}  # counted as special-function calls in the kernel statistics


def _int_helpers(T: str, U: str) -> str:
    return f"""\
__device__ __forceinline__ {T} sd_floordiv({T} a, {T} b) {{
    if (b == 0) return 0;
    if (b == -1) return ({T})(0u - ({U})a);
    const {T} q = a / b, r = a % b;
    return (r != 0 && ((r ^ b) < 0)) ? q - 1 : q;
}}
__device__ __forceinline__ {T} sd_remainder({T} a, {T} b) {{
    if (b == 0 || b == -1) return 0;
    const {T} r = a % b;
    return (r != 0 && ((r ^ b) < 0)) ? r + b : r;
}}
__device__ __forceinline__ {T} sd_fmod({T} a, {T} b) {{ return (b == 0 || b == -1) ? 0 : a % b; }}"""


def _float_helpers(T: str, f: str) -> str:
    return f"""\
__device__ __forceinline__ {T} sd_divmod({T} a, {T} b, {T}* modulus) {{
    {T} mod = fmod{f}(a, b);
    if (!b) {{ *modulus = mod; return a / b; }}
    {T} div = (a - mod) / b;
    if (mod) {{
        if ((b < 0) != (mod < 0)) {{ mod += b; div -= ({T})1; }}
    }} else {{
        mod = copysign{f}(({T})0, b);
    }}
    {T} floordiv;
    if (div) {{
        floordiv = floor{f}(div);
        if (div - floordiv > ({T})0.5) floordiv += ({T})1;
    }} else {{
        floordiv = copysign{f}(({T})0, a / b);
    }}
    *modulus = mod;
    return floordiv;
}}
__device__ __forceinline__ {T} sd_floordiv({T} a, {T} b) {{ {T} m; return sd_divmod(a, b, &m); }}
__device__ __forceinline__ {T} sd_remainder({T} a, {T} b) {{ {T} m; sd_divmod(a, b, &m); return m; }}
__device__ __forceinline__ {T} sd_fmod({T} a, {T} b) {{ return fmod{f}(a, b); }}"""


_DIVISION = ("// floor division and remainders with NumPy's semantics (symdiff/ops_compare.py); integer division\n"
             "// by 0 gives 0 and MIN / -1 wraps, so nothing traps\n"
             + "\n".join([_int_helpers("int", "unsigned int"), _int_helpers("long long", "unsigned long long"),
                          _float_helpers("float", "f"), _float_helpers("double", "")]))

# device helpers (name -> (dependencies, code)); every name a rule above calls must be a key
HELPERS: dict = {
    "sd_floordiv": (("sd_divmod_all",), ""),
    "sd_remainder": (("sd_divmod_all",), ""),
    "sd_fmod": (("sd_divmod_all",), ""),
    "sd_divmod_all": ((), _DIVISION),
}
