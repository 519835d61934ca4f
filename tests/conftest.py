"""Shared fixtures and helpers for the core test-suite (numpy reference backend only)."""
from __future__ import annotations

import numpy as np
import pytest

import symdiff as sd


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


def evaluate(outputs, simplify: bool = True, **values):
    """Run ``outputs`` with the numpy reference backend."""
    return sd.compile(outputs, "numpy", simplify_graph=simplify)(**values)


def signed_away(rng: np.random.Generator, shape, lo: float = 0.2, hi: float = 2.0) -> np.ndarray:
    """Random values with lo <= |x| <= hi and random sign (away from the kink at 0)."""
    return rng.uniform(lo, hi, shape) * rng.choice([-1.0, 1.0], shape)


def separated(rng: np.random.Generator, shapes, margin: float = 0.1, scale: float = 1.5, tries: int = 200):
    """Random normal arrays of ``shapes`` whose broadcast pairwise differences all exceed ``margin``."""
    for _ in range(tries):
        arrs = [rng.standard_normal(s) * scale for s in shapes]
        ok = all(np.min(np.abs(np.asarray(arrs[i]) - np.asarray(arrs[j]))) > margin
                 for i in range(len(arrs)) for j in range(i + 1, len(arrs)))
        if ok:
            return arrs
    raise RuntimeError("could not draw separated values")


def distinct(rng: np.random.Generator, shape, gap: float = 0.1) -> np.ndarray:
    """Values whose sorted entries are at least ``gap`` apart (no ties, e.g. for max)."""
    n = int(np.prod(shape))
    vals = np.cumsum(rng.uniform(gap, 3 * gap, n)) - gap * n
    return rng.permutation(vals).reshape(shape)


def assert_grad_ok(report: "sd.GradReport") -> None:
    assert report.leaves, "check_grad compared nothing"
    assert report.passed, "\n" + str(report)


def node_ops(outputs) -> list[str]:
    """The op names of the (simplified) graph, as the networkx view reports them."""
    G = sd.to_networkx(outputs)
    return [d["op"] for _, d in G.nodes(data=True)]


def hash_uniform_reference(seed: int, step: int, n: int, stream: int = 0) -> np.ndarray:
    """The documented rand_uniform formula with Python ints, one index at a time (independent of
    symdiff.ops_random's NumPy code)."""
    m32 = 0xFFFFFFFF
    out = []
    for i in range(n):
        x = ((i * 0x9E3779B1) ^ ((seed & m32) * 0x85EBCA77) ^ ((step & m32) * 0xC2B2AE3D)
             ^ ((stream & m32) * 0x27D4EB2F)) & m32
        for _ in range(2):
            x ^= x >> 16
            x = (x * 0x7FEB352D) & m32
            x ^= x >> 15
            x = (x * 0x846CA68B) & m32
            x ^= x >> 16
        out.append((x >> 8) / 2 ** 24)
    return np.array(out)


@pytest.fixture
def scratch_ops():
    """Ops registered inside the test (sd.define_elementwise, optable.elementwise) are removed afterwards,
    so that tests iterating over the op table see the built-in ops only."""
    yield from _scratch_ops()


def _scratch_ops():
    from symdiff import define, optable, sympy_bridge
    from symdiff.codegen import expand
    saved = (dict(optable.OPS), dict(optable.SYMPY_FUNCS), dict(define.DEFINED))
    try:
        yield
    finally:
        for table, old in zip((optable.OPS, optable.SYMPY_FUNCS, define.DEFINED), saved):
            table.clear()
            table.update(old)
        sympy_bridge.derivative_expr.cache_clear()
        expand.is_primitive.cache_clear()


@pytest.fixture(scope="module")
def scratch_ops_module():
    """``scratch_ops`` for a whole test module."""
    yield from _scratch_ops()
