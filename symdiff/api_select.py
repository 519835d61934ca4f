"""DSL functions for selection and dtype handling built from the op table (``ops_compare.py``):
``clip select nan_to_num``, the bool operators ``& | ^ ~`` and the NumPy alias ``mod`` (``true_divide`` is
with the other second names in ``api_math.py``).

Comparisons (``sd.less`` ...), ``sd.where``, ``sd.logical_*``, ``sd.isnan`` ..., ``sd.floor_divide``,
``sd.remainder``, ``sd.fmod`` and ``sd.stop_gradient`` are generated from their op-table entries (``api.py``).
"""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from . import dtypes as _dt
from .api import ELEMENTWISE, TensorLike, as_tensor
from .ir import Node

where, maximum, minimum = ELEMENTWISE["where"], ELEMENTWISE["maximum"], ELEMENTWISE["minimum"]
isnan, equal = ELEMENTWISE["isnan"], ELEMENTWISE["equal"]
mod = ELEMENTWISE["remainder"]  # NumPy's second name of remainder

_LOGICAL = {"&": "logical_and", "|": "logical_or", "^": "logical_xor", "~": "logical_not"}


def _operand(v) -> TensorLike:
    return v if isinstance(v, (Node, bool, int, float)) else as_tensor(v)


def clip(x: TensorLike, min: Optional[TensorLike] = None, max: Optional[TensorLike] = None) -> Node:  # noqa: A002
    """``np.clip``: minimum(maximum(x, min), max); ``None`` leaves that side open. The gradient is 1 inside
    the interval, 0 outside and 1/2 at a bound (the ties of maximum / minimum, as JAX); min/max may be tensors."""
    x = as_tensor(x)
    out = x
    if min is not None:
        out = maximum(out, _operand(min))
    if max is not None:
        out = minimum(out, _operand(max))
    return out


def select(condlist: Sequence[TensorLike], choicelist: Sequence[TensorLike], default: TensorLike = 0) -> Node:
    """``np.select``: the choice of the first true condition, ``default`` where none is true."""
    condlist, choicelist = list(condlist), list(choicelist)
    if len(condlist) != len(choicelist):
        raise ValueError(f"select: condlist and choicelist must have the same length, got {len(condlist)} "
                         f"and {len(choicelist)}")
    if not condlist:
        raise ValueError("select: condlist must not be empty")
    out = default
    for c, v in zip(reversed(condlist), reversed(choicelist)):
        out = where(_operand(c), _operand(v), out)
    return out if isinstance(out, Node) else as_tensor(out)


def nan_to_num(x: TensorLike, copy: bool = True, nan: float = 0.0, posinf: Optional[float] = None,
               neginf: Optional[float] = None) -> Node:
    """``np.nan_to_num``: NaN -> ``nan``, +inf -> ``posinf`` (default the dtype's largest finite value), -inf ->
    ``neginf`` (default the most negative finite value); integer and bool tensors are returned unchanged."""
    x = as_tensor(x)
    if not _dt.is_float(x.dtype):
        return x
    info = np.finfo(x.dtype)
    posinf = float(info.max) if posinf is None else posinf
    neginf = float(info.min) if neginf is None else neginf
    out = where(equal(x, -np.inf), neginf, x)
    out = where(equal(x, np.inf), posinf, out)
    return where(isnan(x), nan, out)


def bool_operator(sym: str, a: TensorLike, b: Optional[TensorLike] = None) -> Node:
    """``& | ^ ~`` on bool tensors (and Python bools): logical_and / or / xor / not, as NumPy's on bool arrays."""
    args = [a] if sym == "~" else [a, b]
    for v in args:
        if isinstance(v, Node) and v.dtype != "bool" or not isinstance(v, (Node, bool, np.bool_)):
            what = f"{v.dtype} tensor {v.name or v.op!r}" if isinstance(v, Node) else f"{type(v).__name__} {v!r}"
            raise TypeError(f"{sym}: operands must be bool tensors (bitwise {sym} on integers is not supported), "
                            f"got {what}; use sd.{_LOGICAL[sym]} for truth values")
    return ELEMENTWISE[_LOGICAL[sym]](*args)


__all__ = ["clip", "select", "nan_to_num", "bool_operator", "mod"]
