"""Op-suite cases for comparisons, bool/int dtypes, where/clip (merged into tests/test_ops.py CASES / API_CASES)."""
from __future__ import annotations

from test_ops import Case  # noqa: F401

CASES: dict = {}  # op name -> Case
API_CASES: dict = {}  # DSL function name -> Case (functions built from other ops)
