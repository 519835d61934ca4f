"""canonicalize: identities of ``where`` (symdiff/ops_compare.py), mostly for the derivative graphs it makes.

The partial derivatives of where(c, a, b) are the indicators where(c, 1, 0) and where(c, 0, 1); a cotangent
times an indicator becomes a select (``g * where(c, 1, 0) -> where(c, g, 0)``), which is what JAX's VJP of
where computes and costs one select instead of a multiply.
"""
from __future__ import annotations

from typing import Optional

from ..ir import Node, apply
from .patterns import like, uniform
from .registry import rewrite


@rewrite("canonicalize", ops=("where",))
def where_same(n: Node) -> Optional[Node]:
    """where(c, x, x) -> x."""
    c, a, b = n.inputs
    return like(a, n) if a is b else None


@rewrite("canonicalize", ops=("where",))
def where_const_condition(n: Node) -> Optional[Node]:
    """where(True, a, b) -> a, where(False, a, b) -> b (a uniform constant condition)."""
    c, a, b = n.inputs
    v = uniform(c)
    if v is None or v != v:  # (NaN is true too, but leave it)
        return None
    return like(a if v != 0 else b, n)


@rewrite("canonicalize", ops=("where",))
def where_not(n: Node) -> Optional[Node]:
    """where(~c, a, b) -> where(c, b, a)."""
    c, a, b = n.inputs
    return apply("where", [c.inputs[0], b, a]) if c.op == "logical_not" else None


@rewrite("canonicalize", ops=("mul",))
def mul_indicator(n: Node) -> Optional[Node]:
    """g * where(c, 1, 0) -> where(c, g, 0) and g * where(c, 0, 1) -> where(c, 0, g) (either operand order)."""
    for g, w in (n.inputs, n.inputs[::-1]):
        if w.op != "where":
            continue
        c, one, zero = w.inputs
        u1, u0 = uniform(one), uniform(zero)
        if (u1, u0) == (1.0, 0.0):
            return like(apply("where", [c, g, zero]), n)
        if (u1, u0) == (0.0, 1.0):
            return like(apply("where", [c, one, g]), n)
    return None
