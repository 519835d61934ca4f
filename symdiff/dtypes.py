"""Dtype names and promotion rules (NumPy 2 semantics, restricted to the dtypes symdiff supports).

- Floating tensors: ``float32`` and ``float64``. Mixing them promotes to ``float64``.
- Integer tensors (``int32``, ``int64``) exist for labels (``cross_entropy``); arithmetic on them is rejected.
- Python scalars are "weak": ``x32 * 2.0`` stays ``float32`` (NEP 50, as NumPy 2 does).
"""
from __future__ import annotations

import numpy as np

FLOAT_DTYPES = ("float32", "float64")
INT_DTYPES = ("int32", "int64")
ALL_DTYPES = FLOAT_DTYPES + INT_DTYPES


def normalize(dtype) -> str:
    """Canonical dtype name; raises TypeError for anything symdiff does not support."""
    try:
        name = np.dtype(dtype).name
    except TypeError as e:
        raise TypeError(f"unknown dtype {dtype!r}; supported: {', '.join(ALL_DTYPES)}") from e
    if name not in ALL_DTYPES:
        raise TypeError(f"unsupported dtype {dtype!r}; supported: {', '.join(ALL_DTYPES)}")
    return name


def is_float(dtype: str) -> bool:
    return dtype in FLOAT_DTYPES


def promote(*dtypes: str) -> str:
    """Result dtype of an elementwise op over tensors of these dtypes (float only)."""
    return "float64" if "float64" in dtypes else "float32"
