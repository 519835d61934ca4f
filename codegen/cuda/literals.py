"""C literals of the CUDA renderer: a value in a dtype as C source, and the math-function suffix."""
from __future__ import annotations

import math

import numpy as np


def flit(v, dtype: str) -> str:
    """A C literal of value v in dtype (negative values parenthesised)."""
    if dtype == "bool":
        return "true" if v else "false"
    if dtype in ("int32", "int64"):
        v = int(v)
        if dtype == "int64" and v == -(2 ** 63):
            return "(-9223372036854775807LL - 1)"
        s = f"{abs(v)}{'LL' if dtype == 'int64' else ''}"
        return f"(-{s})" if v < 0 else s
    v = float(v)
    f32 = dtype == "float32"
    if math.isnan(v):
        return "NAN" if f32 else "((double)NAN)"
    if math.isinf(v):
        s = "INFINITY" if f32 else "((double)INFINITY)"
        return s if v > 0 else f"(-{s})"
    if f32:
        v = float(np.float32(v))
    r = repr(abs(v))
    if "." not in r and "e" not in r:
        r += ".0"
    if f32:
        r += "f"
    return f"(-{r})" if math.copysign(1.0, v) < 0 else r


def math_suffix(dtype: str) -> str:
    return "f" if dtype == "float32" else ""
