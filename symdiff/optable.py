"""The op table: one entry per op.

Each :class:`OpDef` has a name, a shape/dtype rule, a NumPy implementation, and either

- a SymPy expression ``expr`` in the symbols ``X[0..arity-1]`` (elementwise ops: partial derivatives come
  from ``sympy.diff``; broadcasting is implicit), or
- an explicit vector-Jacobian rule ``vjp(node, cotangent) -> [grad per input or None]`` (tensor ops).

A new elementwise op is one line: ``elementwise("name", sympy_expr, numpy_fn, cost_class, api="name")``; the
DSL function ``sd.<api>`` is generated from the entry (``api.py``). If the expression is built from existing
ops (``x / (1 + Abs(x))``) the compiled backends expand it into those ops (``codegen/expand.py``); a new
SymPy head needs one scalar rule per backend (``codegen/llvm/scalar_rules.py``, ``codegen/cuda/scalar_rules.py``),
or a declaration in that backend's ``UNSUPPORTED`` set. ``tests/test_op_coverage.py`` guards both.
The table is filled when ``symdiff`` is imported (its ``__init__`` imports ``ops_elementwise``, ``ops_tensor``,
``ops_random``, which register here; this module imports none of them); afterwards only
``define_elementwise`` adds entries (never replaces one).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np
import sympy as sp

from . import dims as _dims
from . import dtypes as _dt

X = sp.symbols("x0:3", real=True)  # operand symbols of elementwise expressions

# cost classes, read by the lowering (what to recompute inline) and the cost model:
#   free: data movement, leaves, casts; cheap: one or a few ALU instructions (add, compare, max);
#   expensive: a math-library call or a division (exp, log, tanh, pow, sqrt, div, ...)
COST_CLASSES = ("free", "cheap", "expensive")


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
    cost_class: str = "free"  # one of COST_CLASSES
    api: Optional[str] = None  # the DSL name (sd.<api>) generated from this entry; None: internal or hand-written

    def __post_init__(self) -> None:
        if self.cost_class not in COST_CLASSES:
            raise ValueError(f"op {self.name!r}: cost_class must be one of {COST_CLASSES}, got {self.cost_class!r}")

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
    """NumPy broadcasting, with an error that names the op and the shapes.

    Symbolic sizes (``symdiff/dims.py``): a named size against 1 keeps the name; against a fixed size k
    the result is k, and the call checks that the name is k (``dims.broadcast_constraints``); two different
    symbolic sizes on one axis are an error (give them one name)."""
    if not any(_dims.is_symbolic(s) for s in shapes):
        try:
            return tuple(np.broadcast_shapes(*shapes))
        except ValueError:
            raise ValueError(f"{op}: shapes {' and '.join(str(tuple(s)) for s in shapes)} cannot be broadcast "
                             f"together") from None
    ndim = max(len(s) for s in shapes)
    out = []
    for k in range(ndim):
        sizes = {s[len(s) - ndim + k] for s in shapes if len(s) - ndim + k >= 0} - {1}
        fixed = {d for d in sizes if not isinstance(d, _dims.Dim)}
        symbolic = sizes - fixed
        if len(fixed) > 1 or len(symbolic) > 1:
            raise ValueError(f"{op}: shapes {' and '.join(str(tuple(s)) for s in shapes)} cannot be broadcast "
                             f"together (axis {k - ndim}: sizes {', '.join(sorted(map(str, sizes)))})")
        out.append(fixed.pop() if fixed else symbolic.pop() if symbolic else 1)
    return tuple(out)


def _describe(n) -> str:
    """An operand in error messages: 'mask' (bool[3]), or <greater node> (bool[3]) when unnamed."""
    return f"{n.name!r} ({n.dtype}{list(n.shape)})" if n.name else f"<{n.op} node> ({n.dtype}{list(n.shape)})"


def _elementwise_infer(name: str):
    def infer(inputs, attrs):
        _ins, out = _dt.signature(name, [i.dtype for i in inputs], lambda k: _describe(inputs[k]))
        return broadcast_shapes(name, *(i.shape for i in inputs)), out
    return infer


def elementwise(name: str, expr: sp.Expr, impl: Callable, cost_class: str = "cheap", api: Optional[str] = None,
                doc: str = "", arity: Optional[int] = None, dtypes: str = "float") -> OpDef:
    """Register an elementwise op defined by a SymPy expression of X[0], X[1], ...

    ``api``: the DSL name of the generated function (``sd.<api>``); None keeps the op internal.
    ``arity``: default one more than the highest operand symbol used.
    ``dtypes``: the dtype rule (``symdiff/dtypes.py`` RULE_KINDS): "float" (default: ints promote to
    float64, bool is an error), "numeric" (ints stay ints), "compare", "logical", "predicate", "any", "where".
    ``impl`` sees its operands converted to the rule's compute dtypes."""
    if arity is None:
        arity = max(int(str(s)[1:]) for s in expr.free_symbols) + 1 if expr.free_symbols else 0
    _dt.set_rule(name, dtypes)
    op = register(OpDef(name, _elementwise_infer(name), _dt.numpy_wrapped(name, impl), expr=expr, arity=arity,
                        doc=doc, cost_class=cost_class, api=api))
    if _is_head(expr) and all(a in X for a in _head_args(expr)):
        key = (expr.func, tuple(expr.args[1:]) if expr.func is sp.Heaviside else ())
        SYMPY_FUNCS.setdefault(key, name)
    return op


def _is_head(expr: sp.Expr) -> bool:
    return isinstance(expr, sp.Function) or type(expr).__name__ in ("Max", "Min", "Abs", "sign", "Heaviside")


def _head_args(expr: sp.Expr) -> tuple:
    return expr.args[:1] if expr.func is sp.Heaviside else expr.args


def op_for_sympy(expr: sp.Expr) -> Optional[str]:
    """The op whose expression has the same head as ``expr`` (exp, tanh, sigmoid, Max, ...)."""
    key = (expr.func, tuple(expr.args[1:]) if expr.func is sp.Heaviside else ())
    return SYMPY_FUNCS.get(key)


# -- DSL functions built from ops (sd.mean, sd.mse, ...): a registry for docs and tooling -----------------------

@dataclass(frozen=True)
class DslFunction:
    """A public DSL function that is not one op-table entry but is built from ops."""
    name: str  # sd.<name>
    fn: Callable
    numpy_name: Optional[str] = None  # the NumPy equivalent ("mean", "ndarray.astype"), None: none
    differentiable: bool = True
    ops: tuple = ()  # the ops it builds (for the backend column of docs/dsl.md); () = table ops in general
    doc: str = ""


DSL_FUNCTIONS: dict[str, DslFunction] = {}


def dsl_function(numpy_name: Optional[str] = None, differentiable: bool = True, ops: tuple = (),
                 name: Optional[str] = None) -> Callable[[Callable], Callable]:
    """Decorator: register a DSL function built from ops (listed in the op table of docs/dsl.md).

    ``numpy_name``: its NumPy equivalent (``"var"`` for ``np.var``); ``ops``: the op names it builds."""
    def register_fn(fn: Callable) -> Callable:
        key = name or fn.__name__
        doc = (fn.__doc__ or "").strip().split("\n")[0]
        DSL_FUNCTIONS[key] = DslFunction(key, fn, numpy_name, differentiable, tuple(ops), doc)
        return fn
    return register_fn
