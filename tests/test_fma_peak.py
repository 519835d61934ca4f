"""benchmarks/fma_peak.py: the FMA loop's chains fit the register file and the loop runs."""
from __future__ import annotations

import ctypes
import dataclasses
import math

import pytest

from benchmarks import fma_peak
from symdiff.codegen.target import host_target


@pytest.mark.parametrize("vector_bytes, registers", [(16, 16), (32, 16), (64, 32)])
def test_chains_cover_latency_without_spilling(monkeypatch, vector_bytes, registers):
    # chains + the two operands must stay in registers; >= 10 chains cover 2 FMA pipes x 5 cycles
    target = dataclasses.replace(host_target(), vector_bytes=vector_bytes)
    monkeypatch.setattr(fma_peak, "host_target", lambda: target)
    n = fma_peak.accumulators()
    assert 10 <= n and n + 2 <= registers, (vector_bytes, n)


def test_loop_runs_and_returns_a_finite_value():
    jm, lanes = fma_peak.build_loop("float64")
    f = ctypes.CFUNCTYPE(ctypes.c_double, ctypes.c_int64)(jm.address("fma_loop"))
    assert lanes == host_target().vector_bytes // 8
    assert math.isfinite(f(1000))
