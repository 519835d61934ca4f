"""canonicalize, layout: transpose/reshape/broadcast chains, sums over size-1 axes, casts."""
from __future__ import annotations

from typing import Optional

import numpy as np

from .. import dims as _dims
from ..ir import Node, apply, const
from ..ops_reduce import axis_size
from ..ops_tensor import broadcast_to, reshape
from .registry import rewrite


# -- transpose ------------------------------------------------------------------------------------------------

@rewrite("canonicalize", ops=("transpose",))
def transpose_transpose(n: Node) -> Optional[Node]:
    """transpose(transpose(x, p), q) -> transpose(x, p∘q) (none when the composition is the identity)."""
    x = n.inputs[0]
    if x.op != "transpose":
        return None
    inner = x.attrs["perm"]
    perm = tuple(inner[p] for p in n.attrs["perm"])
    src = x.inputs[0]
    return src if perm == tuple(range(src.ndim)) else apply("transpose", [src], perm=perm)


@rewrite("canonicalize", ops=("transpose",))
def transpose_unit_axes(n: Node) -> Optional[Node]:
    """A transpose that only moves size-1 axes -> reshape."""
    x = n.inputs[0]
    if x.ndim <= 1 or all(x.shape[p] == 1 or p == i for i, p in enumerate(n.attrs["perm"])):
        return reshape(x, n.shape)
    return None


# -- reshape --------------------------------------------------------------------------------------------------

@rewrite("canonicalize", ops=("reshape",))
def reshape_reshape(n: Node) -> Optional[Node]:
    """reshape(reshape(x)) -> reshape(x) (nothing when the shape comes back)."""
    x = n.inputs[0]
    return reshape(x.inputs[0], n.shape) if x.op == "reshape" else None


@rewrite("canonicalize", ops=("reshape",))
def reshape_noop(n: Node) -> Optional[Node]:
    """reshape(x, x.shape) -> x."""
    x = n.inputs[0]
    return x if x.shape == n.shape else None


@rewrite("canonicalize", ops=("reshape",))
def reshape_fill(n: Node) -> Optional[Node]:
    """reshape(broadcast_to(scalar)) -> broadcast_to(scalar): a reshaped fill is a fill."""
    x = n.inputs[0]
    if x.op == "broadcast_to" and x.inputs[0].size == 1:
        return broadcast_to(reshape(x.inputs[0], ()), n.shape)
    return None


# -- broadcast_to ---------------------------------------------------------------------------------------------

@rewrite("canonicalize", ops=("broadcast_to",))
def broadcast_noop(n: Node) -> Optional[Node]:
    """broadcast_to(x, x.shape) -> x."""
    x = n.inputs[0]
    return x if x.shape == n.shape else None


@rewrite("canonicalize", ops=("broadcast_to",))
def broadcast_broadcast(n: Node) -> Optional[Node]:
    """broadcast_to(broadcast_to(x)) -> broadcast_to(x)."""
    x = n.inputs[0]
    return broadcast_to(x.inputs[0], n.shape) if x.op == "broadcast_to" else None


@rewrite("canonicalize", ops=("broadcast_to",))
def broadcast_scalar_const(n: Node) -> Optional[Node]:
    """broadcast_to(const of size 1, rank > 0) -> broadcast_to(scalar const)."""
    x = n.inputs[0]
    if x.op == "const" and x.size == 1 and x.ndim > 0:
        return broadcast_to(const(x.value.reshape(()), x.dtype), n.shape)
    return None


@rewrite("canonicalize", ops=("broadcast_to",))
def broadcast_reshaped_scalar(n: Node) -> Optional[Node]:
    """broadcast_to(reshape(s)) with s of size 1 -> broadcast_to(reshape(s, ()))."""
    x = n.inputs[0]
    if x.op == "reshape" and x.inputs[0].size == 1:
        return broadcast_to(reshape(x.inputs[0], ()), n.shape)
    return None


# -- sum ------------------------------------------------------------------------------------------------------

@rewrite("canonicalize", ops=("sum",))
def sum_unit_axes(n: Node) -> Optional[Node]:
    """sum over size-1 axes -> reshape."""
    x = n.inputs[0]
    return reshape(x, n.shape) if all(x.shape[a] == 1 for a in n.attrs["axes"]) else None


@rewrite("canonicalize", ops=("sum",))
def sum_fill(n: Node) -> Optional[Node]:
    """sum(broadcast_to(s)) over axes A -> count(A) * s."""
    x = n.inputs[0]
    if x.op == "broadcast_to" and x.inputs[0].size == 1:
        count = _dims.prod(x.shape[a] for a in n.attrs["axes"])
        # a symbolic count is the call's (axis_size)
        c = axis_size(x, n.attrs["axes"], n.dtype) if isinstance(count, _dims.Dim) else const(float(count), n.dtype)
        return broadcast_to(apply("mul", [reshape(x.inputs[0], ()), c]), n.shape)
    return None


# -- cast -----------------------------------------------------------------------------------------------------

@rewrite("canonicalize", ops=("cast",))
def cast_noop(n: Node) -> Optional[Node]:
    """cast(x, x.dtype) -> x."""
    x = n.inputs[0]
    return x if x.dtype == n.dtype else None


@rewrite("canonicalize", ops=("cast",))
def cast_round_trip(n: Node) -> Optional[Node]:
    """cast(cast(x, wide), narrow) -> x when x is narrow: only a widening round trip is exact (f32 -> f64 -> f32)."""
    x = n.inputs[0]
    if (x.op == "cast" and x.inputs[0].dtype == n.dtype
            and np.dtype(x.dtype).itemsize >= np.dtype(n.dtype).itemsize):
        return x.inputs[0]
    return None
