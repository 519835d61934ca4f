"""GEMMs sized at call time (codegen/llvm/gemm/dynamic.py): symbolic M, N and/or K, both layouts of each
operand, a fused bias, float32 and float64, at sizes that hit every plan variant (1: the fixed-shape product;
below 16: the small-M plan; else the nominal plan) and every edge remainder, against a float64 NumPy product."""
from __future__ import annotations

import ctypes

import numpy as np
import pytest
from llvmlite import ir

from symdiff.codegen.llvm.gemm.dynamic import SMALL_M, emit_dynamic_matmul
from symdiff.codegen.llvm.jit import JitModule, new_module
from symdiff.dims import dim, evaluate

_GEMM = ctypes.CFUNCTYPE(None, *([ctypes.c_void_p] * 4), *([ctypes.c_int64] * 5))
_TASKS = ctypes.CFUNCTYPE(ctypes.c_int64, ctypes.c_int64, ctypes.c_int64, ctypes.c_int64)
n = dim("n")
SHAPES = [(n, 256, 784), (n, 10, 33), (784, 256, n), (13, 37, n), (16, 6 * n, 27), (5, n, 3), (n, n, 9), (n, 7, 1)]
CASES = [("float32", M, N, K, ta, tb, bias) for (M, N, K) in SHAPES for ta in (False, True) for tb in (False, True)
         for bias in (False, True) if (ta, tb) != (True, True) or not bias]
CASES += [("float64", n, 24, 50, False, True, True), ("float64", 40, 24, n, True, False, False)]
SIZES = (1, 2, 7, 9, 15, 16, 17, 64, 301)
pytestmark = pytest.mark.xdist_group("dynamic_gemm")  # one worker compiles the module once


@pytest.fixture(scope="module")
def built():
    mod = new_module("dyn_gemm_test")
    plans = []
    for i, (dt, M, N, K, ta, tb, bias) in enumerate(CASES):
        g = emit_dynamic_matmul(mod, f"g{i}", dt, M, N, K, ta, tb, bias, threads=2)
        plans.append(g)
        i64 = ir.IntType(64)  # the task count at given sizes, as the renderer computes it
        tf = ir.Function(mod, ir.FunctionType(i64, [i64, i64, i64]), f"t{i}")
        b = ir.IRBuilder(tf.append_basic_block("e"))
        b.ret(g.tasks(b, *tf.args))
    jm = JitModule(mod)
    return jm, plans


@pytest.mark.parametrize("case", range(len(CASES)))
def test_dynamic_gemm_matches_numpy_at_every_size(built, case):
    jm, plans = built
    dt, M, N, K, ta, tb, bias = CASES[case]
    gemm, tasks = _GEMM(jm.address(f"g{case}")), _TASKS(jm.address(f"t{case}"))
    rng = np.random.default_rng(case)
    for size in SIZES:
        m, nn, k = (evaluate(v, {"n": size}) for v in (M, N, K))
        A = rng.standard_normal((k, m) if ta else (m, k)).astype(dt)
        B = rng.standard_normal((nn, k) if tb else (k, nn)).astype(dt)
        bv = rng.standard_normal(nn).astype(dt)
        C = np.full((m, nn), np.nan, dt)
        want = (A.T if ta else A).astype(np.float64) @ (B.T if tb else B).astype(np.float64) + (bv if bias else 0)
        T = tasks(m, k, nn)
        assert 1 <= T <= 2
        for t in range(T):  # task by task, as the thread pool runs them
            gemm(A.ctypes.data, B.ctypes.data, C.ctypes.data, bv.ctypes.data, t, t + 1, m, k, nn)
        tol = (1e-5 if dt == "float32" else 1e-12) * max(1.0, np.sqrt(k))
        err = float(np.max(np.abs(C - want) / (1 + np.abs(want)))) if C.size else 0.0
        assert err < tol, (f"{dt} M={M} N={N} K={K} trans_a={ta} trans_b={tb} bias={bias} at n={size}: "
                           f"max rel error {err:.3g}, tasks {T}")


def test_plan_variants_follow_the_symbolic_size(built):
    """A symbolic M gets the fixed-shape product for M = 1 and the small-M plan below SMALL_M; a symbolic K the
    fixed-shape product for K = 1; a symbolic N one plan with run-time edge tables."""
    _, plans = built
    by = {(c[1], c[2], c[3]): p for c, p in zip(CASES, plans)}
    assert [v[2] for v in by[(n, 256, 784)].variants] == ["static", "dynamic"] and SMALL_M == 16
    assert [v[2] for v in by[(784, 256, n)].variants] == ["static"]
    assert by[(16, 6 * n, 27)].variants == []
