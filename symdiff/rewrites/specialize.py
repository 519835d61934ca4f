"""specialize: cheaper equivalents (PyTensor's specialize phase)."""
from __future__ import annotations

from typing import Optional

from ..ir import Node, apply, const
from .patterns import uniform
from .registry import rewrite


def _scalar_exponent(n: Node) -> Optional[float]:
    """e when n is x ** e with a scalar constant e and x of n's shape."""
    e = uniform(n.inputs[1])
    return e if e is not None and n.inputs[1].shape == () and n.inputs[0].shape == n.shape else None


@rewrite("specialize", ops=("pow",))
def pow_square(n: Node) -> Optional[Node]:
    """x ** 2 -> square(x)."""
    return apply("square", [n.inputs[0]]) if _scalar_exponent(n) == 2 else None


@rewrite("specialize", ops=("pow",))
def pow_sqrt(n: Node) -> Optional[Node]:
    """x ** 0.5 -> sqrt(x)."""
    return apply("sqrt", [n.inputs[0]]) if _scalar_exponent(n) == 0.5 else None


@rewrite("specialize", ops=("pow",))
def pow_reciprocal(n: Node) -> Optional[Node]:
    """x ** -1 -> 1 / x."""
    return apply("div", [const(1.0, n.dtype), n.inputs[0]]) if _scalar_exponent(n) == -1 else None


@rewrite("specialize", ops=("mul",))
def mul_self(n: Node) -> Optional[Node]:
    """x * x -> square(x)."""
    return apply("square", [n.inputs[0]]) if n.inputs[0] is n.inputs[1] else None
