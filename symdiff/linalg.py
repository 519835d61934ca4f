"""``sd.linalg``: the linear-algebra namespace of the DSL, as ``numpy.linalg`` (norms for now)."""
from __future__ import annotations

from .api_reduce import norm

__all__ = ["norm"]
