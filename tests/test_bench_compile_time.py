"""benchmarks/compile_time.py: the --tuning overrides it passes to jit.EMIT_TUNING."""
from __future__ import annotations

import pytest

from benchmarks.compile_time import parse_tuning


def test_parse_tuning():
    assert parse_tuning("") == {}
    assert parse_tuning("loop_unrolling=0, slp_vectorization=1") == {"loop_unrolling": False,
                                                                     "slp_vectorization": True}
    with pytest.raises(SystemExit, match="name=0 or name=1"):
        parse_tuning("loop_unrolling=off")
