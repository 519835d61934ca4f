"""The LLVM scalar rules of bool and integer values, and of the ops that exist for every dtype.

Values in registers: floats as float/double, int32/int64 as i32/i64, bool as i8 holding 0 or 1 (the
memory layout of numpy's bool_, so loads, stores, constants and selects need no conversion; a rule that
needs an i1 compares with 0). ``dtype`` is the operands' compute dtype (``symdiff/dtypes.py``):

- :data:`INT_RULES`: the integer versions of the arithmetic primitives (two's-complement wraparound, as
  NumPy), used when the compute dtype is int32/int64/bool;
- :data:`ANY_DTYPE_RULES`: comparisons (fcmp ordered, ``!=`` unordered: NaN != NaN; icmp signed for ints),
  logical ops, where, isnan/isinf/isfinite, stop_gradient, floor_divide/remainder/fmod (NumPy's float divmod;
  integer division with a guarded divisor: by 0 gives 0, MIN // -1 wraps to MIN, nothing ever traps).
"""
from __future__ import annotations

from typing import Callable

from llvmlite import ir

I1, I8 = ir.IntType(1), ir.IntType(8)
FTYPE = {"float32": ir.FloatType(), "float64": ir.DoubleType()}
ITYPE = {"int32": ir.IntType(32), "int64": ir.IntType(64), "bool": I8}

Rule = Callable[[ir.IRBuilder, object, list, str], ir.Value]


def _ty(dtype: str) -> ir.Type:
    return FTYPE.get(dtype) or ITYPE[dtype]


def _k(dtype: str, v) -> ir.Constant:
    return ir.Constant(_ty(dtype), float(v) if dtype in FTYPE else int(v))


def _intrinsic(b: ir.IRBuilder, name: str, dtype: str, nargs: int) -> ir.Function:
    mod = b.module
    full = f"llvm.{name}.{'f32' if dtype == 'float32' else 'f64'}"
    if full in mod.globals:
        return mod.globals[full]
    ty = FTYPE[dtype]
    return ir.Function(mod, ir.FunctionType(ty, [ty] * nargs), full)


def truth(b: ir.IRBuilder, v: ir.Value) -> ir.Value:
    """An i8 bool (0/1) as an i1."""
    return b.icmp_unsigned("!=", v, ir.Constant(v.type, 0))


def as_bool(b: ir.IRBuilder, c: ir.Value) -> ir.Value:
    """An i1 as an i8 bool."""
    return b.zext(c, I8)


# -- integer arithmetic (wraps modulo 2**bits, as NumPy) -------------------------------------------------------

def _imax(pred: str) -> Rule:
    return lambda b, m, a, dt: b.select(b.icmp_signed(pred, a[0], a[1]), a[0], a[1])


def _isign(b, m, a, dt):
    x, zero = a[0], _k(dt, 0)
    return b.select(b.icmp_signed(">", x, zero), _k(dt, 1), b.select(b.icmp_signed("<", x, zero), _k(dt, -1), zero))


INT_RULES: dict[str, Rule] = {
    "add": lambda b, m, a, dt: b.add(a[0], a[1]),
    "sub": lambda b, m, a, dt: b.sub(a[0], a[1]),
    "mul": lambda b, m, a, dt: b.mul(a[0], a[1]),
    "neg": lambda b, m, a, dt: b.sub(_k(dt, 0), a[0]),
    "square": lambda b, m, a, dt: b.mul(a[0], a[0]),
    "abs": lambda b, m, a, dt: b.select(b.icmp_signed("<", a[0], _k(dt, 0)), b.sub(_k(dt, 0), a[0]), a[0]),
    "sign": _isign,
    "maximum": _imax(">"),
    "minimum": _imax("<"),
}


# -- integer division: floor (NumPy's // and %) and truncating (fmod) -------------------------------------------

def _idiv_parts(b, x, y, dt):
    """(q, r, bad): the truncating quotient and remainder by a guarded divisor (1 where y is 0 or -1)."""
    zero, minus1 = _k(dt, 0), _k(dt, -1)
    is0, ism1 = b.icmp_signed("==", y, zero), b.icmp_signed("==", y, minus1)
    d = b.select(b.or_(is0, ism1), _k(dt, 1), y)
    q, r = b.sdiv(x, d), b.srem(x, d)
    # floor correction: a nonzero remainder of the other sign than the divisor
    adj = b.and_(b.icmp_signed("!=", r, zero), b.icmp_signed("<", b.xor(r, d), zero))
    return q, r, adj, is0, ism1


def _ifloordiv(b, x, y, dt):
    q, r, adj, is0, ism1 = _idiv_parts(b, x, y, dt)
    q = b.sub(q, b.zext(adj, q.type))
    q = b.select(ism1, b.sub(_k(dt, 0), x), q)  # x // -1 = -x (MIN wraps to MIN)
    return b.select(is0, _k(dt, 0), q)  # x // 0 = 0


def _iremainder(b, x, y, dt):
    q, r, adj, is0, ism1 = _idiv_parts(b, x, y, dt)
    r = b.select(adj, b.add(r, y), r)
    return b.select(b.or_(is0, ism1), _k(dt, 0), r)  # x % 0 = 0, x % -1 = 0


def _ifmod(b, x, y, dt):
    q, r, adj, is0, ism1 = _idiv_parts(b, x, y, dt)
    return b.select(b.or_(is0, ism1), _k(dt, 0), r)


def _fdivmod(b, x, y, dt):
    """NumPy's npy_divmod: (floor quotient, remainder with the divisor's sign), b == 0 as NumPy."""
    zero, one = _k(dt, 0), _k(dt, 1)
    copysign, floor = _intrinsic(b, "copysign", dt, 2), _intrinsic(b, "floor", dt, 1)
    mod = b.frem(x, y)  # C fmod
    div = b.fdiv(b.fsub(x, mod), y)
    mod_nz = b.fcmp_unordered("!=", mod, zero)  # C truthiness: NaN is true
    adj = b.and_(mod_nz, b.xor(b.fcmp_ordered("<", y, zero), b.fcmp_ordered("<", mod, zero)))
    mod = b.select(mod_nz, b.select(adj, b.fadd(mod, y), mod), b.call(copysign, [zero, y]))
    div = b.select(adj, b.fsub(div, one), div)
    fl = b.call(floor, [div])
    fl = b.select(b.fcmp_ordered(">", b.fsub(div, fl), _k(dt, 0.5)), b.fadd(fl, one), fl)
    quot = b.fdiv(x, y)
    q = b.select(b.fcmp_unordered("!=", div, zero), fl, b.call(copysign, [zero, quot]))
    y0 = b.fcmp_ordered("==", y, zero)
    return b.select(y0, quot, q), b.select(y0, b.frem(x, y), mod)


def _by_kind(frule: Callable, irule: Callable) -> Rule:
    return lambda b, m, a, dt: (frule if dt in FTYPE else irule)(b, a[0], a[1], dt)


# -- comparisons, logical, selection, predicates ---------------------------------------------------------------

def _cmp(sym: str) -> Rule:
    def rule(b, m, a, dt):
        if dt in FTYPE:
            c = b.fcmp_unordered("!=", a[0], a[1]) if sym == "!=" else b.fcmp_ordered(sym, a[0], a[1])
        elif dt == "bool":
            c = b.icmp_unsigned(sym, a[0], a[1])
        else:
            c = b.icmp_signed(sym, a[0], a[1])
        return as_bool(b, c)
    return rule


def _fabs(b, x, dt):
    return b.call(_intrinsic(b, "fabs", dt, 1), [x])


ANY_DTYPE_RULES: dict[str, Rule] = {
    **{op: _cmp(sym) for op, sym in (("less", "<"), ("less_equal", "<="), ("greater", ">"),
                                     ("greater_equal", ">="), ("equal", "=="), ("not_equal", "!="))},
    "logical_and": lambda b, m, a, dt: b.and_(a[0], a[1]),  # i8 0/1 operands
    "logical_or": lambda b, m, a, dt: b.or_(a[0], a[1]),
    "logical_xor": lambda b, m, a, dt: b.xor(a[0], a[1]),
    "logical_not": lambda b, m, a, dt: b.xor(a[0], ir.Constant(I8, 1)),
    "where": lambda b, m, a, dt: b.select(truth(b, a[0]), a[1], a[2]),
    "stop_gradient": lambda b, m, a, dt: a[0],
    "isnan": lambda b, m, a, dt: as_bool(b, b.fcmp_unordered("uno", a[0], a[0])),
    "isinf": lambda b, m, a, dt: as_bool(b, b.fcmp_ordered("==", _fabs(b, a[0], dt), _k(dt, float("inf")))),
    "isfinite": lambda b, m, a, dt: as_bool(b, b.fcmp_ordered("<", _fabs(b, a[0], dt), _k(dt, float("inf")))),
    "floor_divide": _by_kind(lambda b, x, y, dt: _fdivmod(b, x, y, dt)[0], _ifloordiv),
    "remainder": _by_kind(lambda b, x, y, dt: _fdivmod(b, x, y, dt)[1], _iremainder),
    "fmod": _by_kind(lambda b, x, y, dt: b.frem(x, y), _ifmod),
}


# -- casts between dtypes: (source kind, destination kind) -> conversion ----------------------------------------

def _kind(dtype: str) -> str:
    return "f" if dtype in FTYPE else ("b" if dtype == "bool" else "i")


CASTS: dict = {
    ("i", "f"): lambda b, v, src, dst: b.sitofp(v, _ty(dst)),
    ("b", "f"): lambda b, v, src, dst: b.uitofp(v, _ty(dst)),
    ("f", "f"): lambda b, v, src, dst: b.fpext(v, _ty(dst)) if dst == "float64" else b.fptrunc(v, _ty(dst)),
    ("i", "i"): lambda b, v, src, dst: b.sext(v, _ty(dst)) if dst == "int64" else b.trunc(v, _ty(dst)),
    ("b", "i"): lambda b, v, src, dst: b.zext(v, _ty(dst)),
    ("f", "i"): lambda b, v, src, dst: b.fptosi(v, _ty(dst)),  # toward zero; out of range: unspecified
    ("i", "b"): lambda b, v, src, dst: as_bool(b, b.icmp_signed("!=", v, ir.Constant(v.type, 0))),
    ("f", "b"): lambda b, v, src, dst: as_bool(b, b.fcmp_unordered("!=", v, ir.Constant(v.type, 0.0))),  # NaN: true
}


def cast(b: ir.IRBuilder, v: ir.Value, src: str, dst: str) -> ir.Value:
    """Convert value ``v`` of dtype ``src`` to ``dst`` (numpy's astype)."""
    return CASTS[(_kind(src), _kind(dst))](b, v, src, dst)
