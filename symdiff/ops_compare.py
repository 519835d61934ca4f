"""Comparisons, logical ops, selection and integer-style division: elementwise ops over every dtype.

Each op is one ``elementwise`` entry with a SymPy head of its own (a ``sp.Function`` whose ``fdiff`` states
the derivative) and a dtype rule (``symdiff/dtypes.py``):

- ``less less_equal greater greater_equal equal not_equal`` ("compare": the promoted operands, a bool result;
  NaN compares false except ``!=``), ``isnan isinf isfinite`` ("predicate"), ``logical_and logical_or
  logical_xor logical_not`` ("logical": operands are truth values, ``x != 0``): bool results carry no gradient.
- ``where(c, a, b)``: a where c (any dtype, read as ``c != 0``) else b; d/da = where(c, 1, 0), d/db = where(c, 0, 1).
- ``stop_gradient(x)``: the identity with derivative 0 (any dtype).
- ``floor_divide remainder fmod`` ("numeric": int32/int64 stay integers). NumPy semantics: ``floor_divide`` and
  ``remainder`` round the quotient toward -inf (the remainder has the divisor's sign; floats use NumPy's
  divmod, so ``1.0 // 0.1 == 9.0``); ``fmod`` truncates (the dividend's sign). Integer division by zero gives
  0 for all three (NumPy's result, without its warning) and ``MIN // -1`` wraps to MIN, on every backend: the
  generated code guards the divisor, it never traps. Float gradients as JAX: floor_divide 0; remainder
  d/dx = 1, d/dy = -floor_divide(x, y); fmod d/dx = 1, d/dy = -trunc(x / y) = -(x - fmod(x, y)) / y.
"""
from __future__ import annotations

from typing import Callable, Optional

import numpy as np
import sympy as sp

from .optable import X, elementwise


def _head(name: str, nargs: int, fdiffs: Optional[dict] = None) -> type:
    """A SymPy function head; ``fdiffs[k](*args)``: the derivative in argument k (1-based), default 0."""
    table = dict(fdiffs or {})

    def fdiff(self, argindex=1):
        f = table.get(argindex)
        return f(*self.args) if f is not None else sp.S.Zero
    return type(name, (sp.Function,), {"nargs": nargs, "fdiff": fdiff, "__doc__": f"symdiff op {name}"})


x, y, z = X[0], X[1], X[2]


def _ew(name: str, nargs: int, impl: Callable, dtypes: str, doc: str, cost: str = "cheap",
        fdiffs: Optional[dict] = None) -> type:
    head = _head(name, nargs, fdiffs)
    elementwise(name, head(*X[:nargs]), impl, cost, name, doc, arity=nargs, dtypes=dtypes)
    return head


# -- comparisons and predicates (bool results) ----------------------------------------------------------------
for _name, _np_fn, _sym in (("less", np.less, "<"), ("less_equal", np.less_equal, "<="),
                            ("greater", np.greater, ">"), ("greater_equal", np.greater_equal, ">="),
                            ("equal", np.equal, "=="), ("not_equal", np.not_equal, "!=")):
    _ew(_name, 2, _np_fn, "compare", f"x {_sym} y elementwise (bool), NumPy broadcasting and promotion")

_ew("isnan", 1, np.isnan, "predicate", "x is NaN (bool)")
_ew("isinf", 1, np.isinf, "predicate", "x is +inf or -inf (bool)")
_ew("isfinite", 1, np.isfinite, "predicate", "x is neither NaN nor infinite (bool)")

# -- logical ops (operands read as truth values) ------------------------------------------------------------------
_ew("logical_and", 2, np.logical_and, "logical", "x and y (bool; a number is true when != 0)")
_ew("logical_or", 2, np.logical_or, "logical", "x or y (bool; a number is true when != 0)")
_ew("logical_xor", 2, np.logical_xor, "logical", "x xor y (bool; a number is true when != 0)")
_ew("logical_not", 1, np.logical_not, "logical", "not x (bool; a number is true when != 0)")

# -- selection ------------------------------------------------------------------------------------------------
where_head = _ew("where", 3, np.where, "where", "a where c is true (c != 0) else b, NumPy broadcasting",
                 fdiffs={2: lambda c, a, b: where_head(c, 1, 0), 3: lambda c, a, b: where_head(c, 0, 1)})
_ew("stop_gradient", 1, lambda a: a, "any", "the identity, with derivative zero (gradients stop here)", "free")

# -- floor division and remainders --------------------------------------------------------------------------------
floor_divide_head = _ew("floor_divide", 2, np.floor_divide, "numeric",
                        "x // y rounded toward -inf (NumPy); integer division by zero gives 0", "expensive")
_ew("remainder", 2, np.remainder, "numeric",
    "x - floor(x / y) * y: the sign of y (NumPy's %, alias sd.mod); integer remainder by zero gives 0", "expensive",
    fdiffs={1: lambda a, b: sp.S.One, 2: lambda a, b: -floor_divide_head(a, b)})
fmod_head = _ew("fmod", 2, np.fmod, "numeric",
                "C fmod: x - trunc(x / y) * y, the sign of x; integer fmod by zero gives 0", "expensive",
                fdiffs={1: lambda a, b: sp.S.One, 2: lambda a, b: -(a - fmod_head(a, b)) / b})
