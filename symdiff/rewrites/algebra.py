"""canonicalize, arithmetic: constant folding and the algebraic identities of add/sub/mul/div/neg/pow.

Identities keep the shape and dtype of the node they replace (``like``/``fill``): ``x + zeros(3, 4)``
with ``x`` of shape ``(4,)`` becomes ``broadcast_to(x)``.
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from ..ir import Node, apply, const
from ..optable import OPS
from .patterns import fill, like, uniform
from .registry import rewrite

FOLD_LIMIT = 4096  # fold constants up to this many elements


@rewrite("canonicalize")  # every op
def fold_constants(n: Node) -> Optional[Node]:
    """op(constants) -> constant (elementwise ops on uniform constants stay a broadcast scalar)."""
    opdef = OPS[n.op]
    if not n.inputs or n.op == "broadcast_to":
        return None
    if opdef.elementwise and all(uniform(i) is not None for i in n.inputs):
        vals = [np.asarray(uniform(i), dtype=i.dtype) for i in n.inputs]
        with np.errstate(all="ignore"):
            v = np.asarray(opdef.impl(*vals), dtype=n.dtype)
        return fill(n, v.item())  # (an int64 stays exact)
    if all(i.op == "const" for i in n.inputs) and n.size <= FOLD_LIMIT:
        with np.errstate(all="ignore"):
            v = opdef.impl(*(i.value for i in n.inputs), **n.attrs)
        return const(np.asarray(v, dtype=n.dtype), n.dtype)
    return None


# -- add / sub ------------------------------------------------------------------------------------------------

@rewrite("canonicalize", ops=("add",))
def add_zero(n: Node) -> Optional[Node]:
    """x + 0 -> x, 0 + x -> x."""
    a, b = n.inputs
    if uniform(b) == 0:
        return like(a, n)
    if uniform(a) == 0:
        return like(b, n)
    return None


@rewrite("canonicalize", ops=("add",))
def add_neg(n: Node) -> Optional[Node]:
    """x + (-y) -> x - y, (-x) + y -> y - x."""
    a, b = n.inputs
    if b.op == "neg":
        return apply("sub", [a, b.inputs[0]])
    if a.op == "neg":
        return apply("sub", [b, a.inputs[0]])
    return None


@rewrite("canonicalize", ops=("sub",))
def sub_zero(n: Node) -> Optional[Node]:
    """x - 0 -> x."""
    return like(n.inputs[0], n) if uniform(n.inputs[1]) == 0 else None


@rewrite("canonicalize", ops=("sub",))
def zero_sub(n: Node) -> Optional[Node]:
    """0 - x -> -x."""
    return like(apply("neg", [n.inputs[1]]), n) if uniform(n.inputs[0]) == 0 else None


@rewrite("canonicalize", ops=("sub",))
def sub_neg(n: Node) -> Optional[Node]:
    """x - (-y) -> x + y."""
    a, b = n.inputs
    return apply("add", [a, b.inputs[0]]) if b.op == "neg" else None


@rewrite("canonicalize", ops=("sub",))
def sub_self(n: Node) -> Optional[Node]:
    """x - x -> 0."""
    return fill(n, 0.0) if n.inputs[0] is n.inputs[1] else None


# -- mul / div ------------------------------------------------------------------------------------------------

@rewrite("canonicalize", ops=("mul",))
def mul_one(n: Node) -> Optional[Node]:
    """x * 1 -> x, 1 * x -> x."""
    for a, b in ((0, 1), (1, 0)):
        if uniform(n.inputs[b]) == 1:
            return like(n.inputs[a], n)
    return None


@rewrite("canonicalize", ops=("mul",))
def mul_zero(n: Node) -> Optional[Node]:
    """x * 0 -> 0: a symbolic zero (as JAX's zeros: 0 * x = 0 even for non-finite x)."""
    return fill(n, 0.0) if 0 in (uniform(n.inputs[0]), uniform(n.inputs[1])) else None


@rewrite("canonicalize", ops=("mul",))
def mul_minus_one(n: Node) -> Optional[Node]:
    """x * -1 -> -x, -1 * x -> -x."""
    for a, b in ((0, 1), (1, 0)):
        if uniform(n.inputs[b]) == -1:
            return like(apply("neg", [n.inputs[a]]), n)
    return None


@rewrite("canonicalize", ops=("mul",))
def mul_neg_neg(n: Node) -> Optional[Node]:
    """(-x) * (-y) -> x * y."""
    a, b = n.inputs
    if a.op == "neg" and b.op == "neg":
        return apply("mul", [a.inputs[0], b.inputs[0]])
    return None


@rewrite("canonicalize", ops=("div",))
def div_one(n: Node) -> Optional[Node]:
    """x / 1 -> x."""
    return like(n.inputs[0], n) if uniform(n.inputs[1]) == 1 else None


@rewrite("canonicalize", ops=("div",))
def zero_div(n: Node) -> Optional[Node]:
    """0 / x -> 0 (a symbolic zero)."""
    return fill(n, 0.0) if uniform(n.inputs[0]) == 0 else None


@rewrite("canonicalize", ops=("div",))
def div_const(n: Node) -> Optional[Node]:
    """x / c -> x * (1/c) for a scalar constant c != 0."""
    a, b = n.inputs
    c = uniform(b)
    if c is not None and c != 0 and a.op != "const" and b.shape == ():
        return apply("mul", [a, const(1.0 / c, n.dtype)])
    return None


# -- neg / pow ------------------------------------------------------------------------------------------------

@rewrite("canonicalize", ops=("neg",))
def neg_neg(n: Node) -> Optional[Node]:
    """-(-x) -> x."""
    x = n.inputs[0]
    return like(x.inputs[0], n) if x.op == "neg" else None


@rewrite("canonicalize", ops=("pow",))
def pow_one(n: Node) -> Optional[Node]:
    """x ** 1 -> x."""
    return like(n.inputs[0], n) if uniform(n.inputs[1]) == 1 else None


@rewrite("canonicalize", ops=("pow",))
def pow_zero(n: Node) -> Optional[Node]:
    """x ** 0 -> 1."""
    return fill(n, 1.0) if uniform(n.inputs[1]) == 0 else None
