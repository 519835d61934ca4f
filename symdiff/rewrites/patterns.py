"""Small pattern helpers shared by the rewrite modules."""
from __future__ import annotations

from typing import Optional

import numpy as np

from ..ir import Node, const
from ..ops_tensor import broadcast_to, cast


def uniform(n: Node) -> Optional[float]:  # (int / bool for int / bool constants)
    """The value of a constant whose entries are all equal (possibly broadcast), else None."""
    if n.op == "broadcast_to":
        n = n.inputs[0]
    if n.op != "const" or n.value.size == 0:
        return None
    v = n.value.reshape(-1)
    return v[0].item() if np.all(v == v[0]) else None  # (a Python int for int constants: exact)


def like(x: Node, node: Node) -> Node:
    """x, broadcast and cast to the shape and dtype of ``node`` (for identities like x + 0 -> x)."""
    return broadcast_to(cast(x, node.dtype), node.shape)


def fill(node: Node, v: float) -> Node:
    """A constant ``v`` with the shape and dtype of ``node`` (a broadcast scalar)."""
    return broadcast_to(const(v, node.dtype), node.shape)


def one_plus(n: Node) -> Optional[Node]:
    """x when n is 1 + x or x + 1."""
    if n.op == "add":
        a, b = n.inputs
        if uniform(a) == 1:
            return b
        if uniform(b) == 1:
            return a
    return None
