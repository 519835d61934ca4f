"""The op table: one entry per op.

Each :class:`OpDef` has a name, a shape/dtype rule, a NumPy implementation, and either

- a SymPy expression ``expr`` in the symbols ``X[0..arity-1]`` (elementwise ops: partial derivatives come
  from ``sympy.diff``; broadcasting is implicit), or
- an explicit vector-Jacobian rule ``vjp(node, cotangent) -> [grad per input or None]`` (tensor ops).

A new elementwise op is one line: ``elementwise("name", sympy_expr, numpy_fn)``.
The table is filled once at import time (``ops_elementwise``, ``ops_tensor``) and never mutated after.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np
import sympy as sp

from . import dtypes as _dt

X = sp.symbols("x0:3", real=True)  # operand symbols of elementwise expressions


@dataclass(frozen=True)
class OpDef:
    name: str
    infer: Callable  # (inputs: list[Node], attrs: dict) -> (shape, dtype); raises on bad input
    impl: Callable  # numpy: impl(*arrays, **attrs) -> ndarray
    vjp: Optional[Callable] = None  # (node, g) -> list[Node | None]
    expr: Optional[sp.Expr] = None  # elementwise ops: value as a SymPy expression of X[:arity]
    arity: int = 1
    differentiable: bool = True
    doc: str = ""

    @property
    def elementwise(self) -> bool:
        return self.expr is not None


OPS: dict[str, OpDef] = {}
SYMPY_FUNCS: dict = {}  # sympy function class -> op name (reverse map, for sympy -> graph)


def register(opdef: OpDef) -> OpDef:
    if opdef.name in OPS:
        raise ValueError(f"op {opdef.name!r} registered twice")
    OPS[opdef.name] = opdef
    return opdef


def broadcast_shapes(op: str, *shapes: tuple) -> tuple:
    """NumPy broadcasting, with an error that names the op and the shapes."""
    try:
        return tuple(np.broadcast_shapes(*shapes))
    except ValueError:
        raise ValueError(f"{op}: shapes {' and '.join(str(tuple(s)) for s in shapes)} cannot be broadcast together") from None


def _elementwise_infer(name: str):
    def infer(inputs, attrs):
        for i in inputs:
            if not _dt.is_float(i.dtype):
                raise TypeError(f"{name}: integer tensor {i.name or i.op!r} ({i.dtype}) can only be used as labels "
                                f"(cross_entropy); arithmetic needs float32/float64")
        return broadcast_shapes(name, *(i.shape for i in inputs)), _dt.promote(*(i.dtype for i in inputs))
    return infer


def elementwise(name: str, expr: sp.Expr, impl: Callable, doc: str = "") -> OpDef:
    """Register an elementwise op defined by a SymPy expression of X[0], X[1], ..."""
    arity = max(int(str(s)[1:]) for s in expr.free_symbols) + 1 if expr.free_symbols else 0
    op = register(OpDef(name, _elementwise_infer(name), impl, expr=expr, arity=arity, doc=doc))
    if isinstance(expr, sp.Function) or type(expr).__name__ in ("Max", "Min", "Abs", "sign", "Heaviside"):
        key = (expr.func, tuple(expr.args[1:]) if expr.func is sp.Heaviside else ())
        SYMPY_FUNCS[key] = name
    return op


def op_for_sympy(expr: sp.Expr) -> Optional[str]:
    """The op whose expression has the same head as ``expr`` (exp, tanh, sigmoid, Max, ...)."""
    key = (expr.func, tuple(expr.args[1:]) if expr.func is sp.Heaviside else ())
    return SYMPY_FUNCS.get(key)


# fill the table
from . import ops_elementwise  # noqa: E402,F401
from . import ops_tensor  # noqa: E402,F401
from . import ops_random  # noqa: E402,F401
