"""GFLOP/s of the generated GEMM kernels (codegen/llvm_gemm.py) vs numpy's matmul.

    python benchmarks/bench_gemm.py [--dtype float32|float64|both] [--reps N] [--shapes small|big|all]

For every shape: compile time of the one-GEMM module, our kernel single-threaded (all
tasks run serially in one call), our kernel on 2 Python threads calling disjoint task
ranges through ctypes (which releases the GIL), numpy's matmul (its own BLAS threads).
Times are medians over --reps calls; the machine may be shared, so numbers are noisy.
"""
from __future__ import annotations

import argparse
import ctypes
import os
import sys
import threading
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from codegen.llvm_gemm import emit_matmul  # noqa: E402
from codegen.llvm_jit import JitModule, new_module  # noqa: E402

# (M, K, N, trans_a, trans_b)
SHAPES = [
    (1, 784, 256, False, False),
    (1, 256, 10, False, False),
    (1, 256, 784, False, True),
    (1, 2, 16, False, False),
    (16, 16, 1, False, False),
    (64, 784, 256, False, False),
    (784, 64, 256, True, False),
    (64, 256, 784, False, True),
    (256, 1024, 1024, False, False),
    (1024, 256, 1024, True, False),
    (256, 1024, 1024, False, True),
]

_FN = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p,
                       ctypes.c_int64, ctypes.c_int64)


def _median_time(f, reps: int, min_time: float = 0.002) -> float:
    # Inner repetitions so that one sample lasts >= min_time (small shapes).
    t0 = time.perf_counter()
    f()
    one = max(time.perf_counter() - t0, 1e-7)
    inner = max(1, int(min_time / one))
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        for _ in range(inner):
            f()
        ts.append((time.perf_counter() - t0) / inner)
    return float(np.median(ts))


class _Pair:
    """Two worker threads, each running a task range when released."""

    def __init__(self, fn, args, n_tasks):
        self.fn, self.args = fn, args
        half = (n_tasks + 1) // 2
        self.ranges = [(0, half), (half, n_tasks)]
        self.go = [threading.Event(), threading.Event()]
        self.done = [threading.Event(), threading.Event()]
        self.stop = False
        self.threads = [threading.Thread(target=self._work, args=(i,), daemon=True) for i in range(2)]
        for t in self.threads:
            t.start()

    def _work(self, i):
        while True:
            self.go[i].wait()
            self.go[i].clear()
            if self.stop:
                return
            lo, hi = self.ranges[i]
            if hi > lo:
                self.fn(*self.args, lo, hi)
            self.done[i].set()

    def __call__(self):
        for i in range(2):
            self.go[i].set()
        for i in range(2):
            self.done[i].wait()
            self.done[i].clear()

    def close(self):
        self.stop = True
        for i in range(2):
            self.go[i].set()


def bench(dtype: str, M: int, K: int, N: int, ta: bool, tb: bool, reps: int) -> dict:
    mod = new_module("bench")
    t0 = time.perf_counter()
    info = emit_matmul(mod, "gemm", dtype, M, N, K, trans_a=ta, trans_b=tb)
    jm = JitModule(mod)
    fn = _FN(jm.address("gemm"))
    ctime = time.perf_counter() - t0
    rng = np.random.default_rng(0)
    A = rng.standard_normal((K, M) if ta else (M, K)).astype(dtype)
    B = rng.standard_normal((N, K) if tb else (K, N)).astype(dtype)
    C = np.zeros((M, N), dtype)
    args = (A.ctypes.data, B.ctypes.data, C.ctypes.data, None)
    fn(*args, 0, info.n_tasks)
    ref = (A.T if ta else A) @ (B.T if tb else B)
    err = float(np.abs(C - ref).max() / (np.abs(ref).max() + 1e-30))
    t1 = _median_time(lambda: fn(*args, 0, info.n_tasks), reps)
    t2 = None
    if info.n_tasks > 1:
        pair = _Pair(fn, args, info.n_tasks)
        t2 = _median_time(pair, reps)
        pair.close()
    Aop = A.T if ta else A
    Bop = B.T if tb else B
    tn = _median_time(lambda: np.matmul(Aop, Bop, out=C), reps)
    gf = lambda t: info.flops / t / 1e9 if t else float("nan")  # noqa: E731
    return dict(info=info, ctime=ctime, err=err, t1=t1, t2=t2, tn=tn, g1=gf(t1), g2=gf(t2), gn=gf(tn))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dtype", default="both")
    ap.add_argument("--reps", type=int, default=15)
    ap.add_argument("--shapes", default="all", choices=["small", "big", "all"])
    a = ap.parse_args()
    dtypes = ["float32", "float64"] if a.dtype == "both" else [a.dtype]
    shapes = SHAPES
    if a.shapes == "small":
        shapes = [s for s in SHAPES if s[0] * s[1] * s[2] < 10_000_000]
    elif a.shapes == "big":
        shapes = [s for s in SHAPES if s[0] * s[1] * s[2] >= 10_000_000]
    print(f"{'dtype':8s} {'M':>5s} {'K':>5s} {'N':>5s} tA tB  {'kern':4s} {'tasks':>5s} "
          f"{'compile':>8s} {'1thr':>8s} {'2thr':>8s} {'numpy':>8s}  {'t1(us)':>8s} {'np(us)':>8s} err")
    for dt in dtypes:
        for (M, K, N, ta, tb) in shapes:
            r = bench(dt, M, K, N, ta, tb, a.reps)
            i = r["info"]
            g2 = f"{r['g2']:8.1f}" if r["t2"] else f"{'-':>8s}"
            print(f"{dt:8s} {M:5d} {K:5d} {N:5d} {int(ta):2d} {int(tb):2d}  {i.kernel:4s} {i.n_tasks:5d} "
                  f"{r['ctime'] * 1e3:6.1f}ms {r['g1']:8.1f} {g2} {r['gn']:8.1f}  "
                  f"{r['t1'] * 1e6:8.1f} {r['tn'] * 1e6:8.1f} {r['err']:.1e}", flush=True)
    print("GFLOP/s, medians; 1thr = all tasks serially in one call; 2thr = two Python threads on "
          "disjoint task ranges; numpy = np.matmul (OpenBLAS, its own threads). Shared machine: noisy.")


if __name__ == "__main__":
    main()
