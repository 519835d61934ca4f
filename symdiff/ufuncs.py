"""NumPy ufuncs applied to symbolic tensors (``Node.__array_ufunc__``).

A ufunc that is a Python operator (``np.float32(2) * x`` calls ``np.multiply``) builds the same node
as the operator. Any other ufunc (``np.exp(x)``) is refused with a TypeError that names its DSL twin
(``sd.exp``): NumPy functions compute on arrays, the ``sd`` functions build the graph, and silently
mixing the two is a common first mistake.
"""
from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["OPERATOR_UFUNCS", "array_ufunc", "dsl_twin"]

# ufunc -> (the tensor's method when it is the first operand, when it is the second): a NumPy scalar or
# array on the left reaches the same reflected operator as a Python scalar would (weak scalars stay weak)
OPERATOR_UFUNCS: dict[str, tuple] = {
    "add": ("__add__", "__radd__"), "subtract": ("__sub__", "__rsub__"), "multiply": ("__mul__", "__rmul__"),
    "true_divide": ("__truediv__", "__rtruediv__"), "floor_divide": ("__floordiv__", "__rfloordiv__"),
    "remainder": ("__mod__", "__rmod__"), "power": ("__pow__", "__rpow__"), "matmul": ("__matmul__", "__rmatmul__"),
    "less": ("__lt__", "__gt__"), "less_equal": ("__le__", "__ge__"), "greater": ("__gt__", "__lt__"),
    "greater_equal": ("__ge__", "__le__"), "equal": ("__eq__", "__eq__"), "not_equal": ("__ne__", "__ne__"),
    "bitwise_and": ("__and__", "__rand__"), "bitwise_or": ("__or__", "__ror__"),
    "bitwise_xor": ("__xor__", "__rxor__"),
    "negative": ("__neg__", None), "positive": ("__pos__", None), "absolute": ("__abs__", None),
    "invert": ("__invert__", None),
}


def dsl_twin(name: str) -> str | None:
    """The ``sd`` function of the same NumPy name, if there is one."""
    import symdiff
    return name if callable(getattr(symdiff, name, None)) else None


def array_ufunc(ufunc: np.ufunc, method: str, inputs: tuple, kwargs: dict) -> Any:
    from .ir import Node
    name = ufunc.__name__
    methods = OPERATOR_UFUNCS.get(name)
    if methods is not None and method == "__call__" and not kwargs and len(inputs) in (1, 2):
        a = inputs[0]
        if len(inputs) == 1:
            return getattr(a, methods[0])()
        b = inputs[1]
        if isinstance(a, Node):
            return getattr(a, methods[0])(b)
        return getattr(b, methods[1])(a)
    twin = dsl_twin(name)
    call = f"np.{name}" + ("" if method == "__call__" else f".{method}")
    if method != "__call__" or kwargs:
        extra = f" with {', '.join(sorted(kwargs))}=" if kwargs else ""
        raise TypeError(f"{call}{extra} cannot be applied to a symbolic sd.Tensor (it computes on arrays)"
                        + (f"; build the graph with sd.{twin}(...) and the sd reductions (sd.sum, sd.max, ...)"
                           if twin else ""))
    if twin:
        raise TypeError(f"{call}() cannot be applied to a symbolic sd.Tensor (NumPy computes on arrays); "
                        f"use sd.{twin}(...), its DSL twin, to add it to the graph")
    raise TypeError(f"{call}() cannot be applied to a symbolic sd.Tensor and symdiff has no sd.{name}; "
                    f"the DSL functions are listed in docs/dsl.md")
