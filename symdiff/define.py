"""``sd.define_elementwise``: a user elementwise op from a SymPy expression, on every backend.

The op is registered in the op table like a built-in one: its derivative comes from ``sympy.diff``
(``sympy_bridge``), its NumPy implementation from ``sympy.lambdify`` unless one is given, and the
compiled backends expand it into the primitive ops of its expression (``codegen/expand.py``), so it
needs no backend code as long as the expression uses SymPy heads that are ops already.

Re-defining a name with the same expression returns the existing function (re-running a notebook cell);
a different expression, or the name of a built-in op or DSL function, is an error.
"""
from __future__ import annotations

import inspect
from typing import Callable, Optional

import numpy as np
import sympy as sp

from . import api
from .ir import Node
from .optable import OPS, X, elementwise, op_for_sympy

DEFINED: dict[str, Callable[..., Node]] = {}  # name -> DSL function, for ops made here


def _numpy_modules() -> dict:
    """SymPy function classes of the op table that NumPy lacks (sigmoid, softplus, relu) -> their impls."""
    out = {}
    for d in OPS.values():
        if d.elementwise and isinstance(d.expr, sp.Function) and d.expr.func.__module__.startswith("symdiff"):
            out[d.expr.func.__name__] = d.impl
    return out


def _lambdify(expr: sp.Expr, arity: int) -> Callable:
    f = sp.lambdify(X[:arity], expr, modules=[_numpy_modules(), "numpy"])

    def impl(*arrays):
        dt = np.result_type(*arrays)
        out = np.asarray(f(*arrays), dtype=dt)
        return np.broadcast_to(out, np.broadcast_shapes(*(np.shape(a) for a in arrays))).copy() \
            if out.shape != np.broadcast_shapes(*(np.shape(a) for a in arrays)) else out
    return impl


def define_elementwise(name: str, fn: Callable[..., sp.Expr], impl: Optional[Callable] = None,
                       doc: str = "") -> Callable[..., Node]:
    """Register elementwise op ``name`` with value ``fn(x0, x1, ...)`` (a SymPy expression of its arguments)
    and return its DSL function (tensors or scalars in, NumPy broadcasting).

    >>> softsign = define_elementwise("my_softsign", lambda x: x / (1 + sympy.Abs(x)))
    """
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"define_elementwise: name must be an identifier string, got {name!r}")
    params = [p for p in inspect.signature(fn).parameters.values()
              if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    arity = len(params)
    if not 1 <= arity <= len(X):
        raise ValueError(f"define_elementwise({name!r}): fn must take 1 to {len(X)} arguments, got {arity}")
    expr = sp.sympify(fn(*X[:arity]))
    if not expr.free_symbols <= set(X[:arity]):
        raise ValueError(f"define_elementwise({name!r}): the expression {expr} uses symbols other than the arguments")
    if name in DEFINED:
        if OPS[name].expr == expr and OPS[name].arity == arity:
            return DEFINED[name]
        raise ValueError(f"define_elementwise: {name!r} is already defined with expression {OPS[name].expr}")
    if name in OPS or name in api.ELEMENTWISE or hasattr(api, name):
        raise ValueError(f"define_elementwise: {name!r} clashes with a built-in op or DSL function")
    for f in expr.atoms(sp.Function) | expr.atoms(sp.Abs, sp.sign, sp.Max, sp.Min, sp.Heaviside):
        if op_for_sympy(f) is None:
            raise ValueError(f"define_elementwise({name!r}): {f.func} is not an op; the expression may use "
                             f"+ - * / ** and the SymPy heads of existing ops (exp, log, tanh, Abs, Max, ...)")
    cost = "expensive" if expr.atoms(sp.Function) or any(p.is_Pow for p in sp.preorder_traversal(expr)) else "cheap"
    elementwise(name, expr, impl if impl is not None else _lambdify(expr, arity), cost, None,
                doc or f"{name}({', '.join(p.name for p in params)}) = {fn(*sp.symbols([p.name for p in params]))}",
                arity=arity)
    DEFINED[name] = out = api.elementwise_function(name, name)
    return out
