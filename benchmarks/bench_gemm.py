"""GFLOP/s of the generated GEMM kernels (codegen/llvm/gemm/emit.py) vs numpy's matmul, and as a fraction of
the machine's FMA peak measured in the same run (benchmarks/fma_peak.py).

    python benchmarks/bench_gemm.py [--dtype float32|float64|both] [--reps N] [--shapes small|big|all]

For every shape: compile time of the one-GEMM module (wall), our kernel single-threaded
(all tasks run serially in one call), the product compiled by ``sd.compile(op(a) @ op(b),
num_threads=2)`` and called through its thread pool (what a model gets: the task split, the
pool hand-off and the call overhead included), numpy's matmul on 1 thread (when
threadpoolctl is installed) and with its default threads.  GFLOP/s from the median and
the best of --reps timings (each timing averages enough calls to last >= 2 ms); on a shared
machine the best is the less disturbed number.
"""
from __future__ import annotations

import argparse
import ctypes
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from symdiff.codegen.llvm.gemm.emit import emit_matmul  # noqa: E402

try:
    from threadpoolctl import threadpool_limits
except ImportError:     # numpy 1-thread column left out
    threadpool_limits = None
from symdiff.codegen.llvm.jit import JitModule, new_module  # noqa: E402

from fma_peak import fma_peak  # noqa: E402

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
    # convolutions as GEMMs (conv_models.py): W7 forward, input gradient, weight gradient; W6's second conv
    (64, 576, 25088, False, False),
    (576, 64, 25088, True, False),
    (64, 25088, 576, False, True),
    (16, 150, 6400, False, False),
    (150, 16, 6400, True, False),
    (16, 6400, 150, False, True),
]

_FN = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p,
                       ctypes.c_int64, ctypes.c_int64)


SETTLE_S = 0.5  # idle time before our timings (see bench)


def _median_time(f, reps: int, min_time: float = 0.002) -> tuple[float, float]:
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
    return float(np.median(ts)), float(np.min(ts))


def _pool(dtype: str, A, B, ta: bool, tb: bool, threads: int, reps: int) -> tuple[float, float]:
    """The product as a compiled graph on ``threads`` threads (its thread pool), timed per call."""
    import symdiff as sd
    a, b = sd.input("a", A.shape, dtype), sd.input("b", B.shape, dtype)
    f = sd.compile((sd.transpose(a) if ta else a) @ (sd.transpose(b) if tb else b), num_threads=threads)
    return _median_time(lambda: f(a=A, b=B), reps)


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
    # numpy's BLAS threads keep spinning for a while after a call (the reference above): on a 2-core
    # machine our 2-thread pool then shares a core with one of them (measured: 102 GFLOP/s for a
    # 64x256x784 product right after numpy products, 178 half a second later)
    time.sleep(SETTLE_S)
    t1 = _median_time(lambda: fn(*args, 0, info.n_tasks), reps)
    t2 = _pool(dtype, A, B, ta, tb, 2, reps)
    Aop = A.T if ta else A
    Bop = B.T if tb else B
    tn1 = None
    if threadpool_limits is not None:
        with threadpool_limits(limits=1, user_api="blas"):
            tn1 = _median_time(lambda: np.matmul(Aop, Bop, out=C), reps)
    tn = _median_time(lambda: np.matmul(Aop, Bop, out=C), reps)
    return dict(info=info, ctime=ctime, err=err, t1=t1, t2=t2, tn1=tn1, tn=tn)


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
    peaks = {dt: (fma_peak(dt, 1), fma_peak(dt, 2)) for dt in dtypes}  # measured in this run
    for dt, (p1, p2) in peaks.items():
        print(f"FMA peak {dt} (benchmarks/fma_peak.py, this run): {p1:.1f} GFLOP/s on 1 thread, {p2:.1f} on 2")
    print(f"{'dtype':7s} {'M':>4s} {'K':>4s} {'N':>4s} tA tB kern tasks compile |"
          f" {'ours 1 thread':>13s} | {'ours pool 2 thr':>15s} | {'numpy 1 thr':>11s} | {'numpy':>11s} | "
          f"{'% peak 1/2':>10s} | err")
    for dt in dtypes:
        for (M, K, N, ta, tb) in shapes:
            r = bench(dt, M, K, N, ta, tb, a.reps)
            i = r["info"]

            def g(t, w):
                if t is None:
                    return f"{'-':>{w}s}"
                med, best = t
                s = f"{i.flops / med / 1e9:.1f}/{i.flops / best / 1e9:.1f}"
                return f"{s:>{w}s}"
            frac = "/".join(f"{100 * i.flops / t[0] / 1e9 / pk:.0f}" if t else "-"
                            for t, pk in ((r["t1"], peaks[dt][0]), (r["t2"], peaks[dt][1])))
            print(f"{dt:7s} {M:4d} {K:4d} {N:4d} {int(ta):2d} {int(tb):2d} {i.kernel:4s} {i.n_tasks:5d} "
                  f"{r['ctime'] * 1e3:5.0f}ms | {g(r['t1'], 13)} | {g(r['t2'], 15)} | {g(r['tn1'], 11)} | "
                  f"{g(r['tn'], 11)} | {frac:>10s} | {r['err']:.0e}", flush=True)
    print("GFLOP/s as median/best.  ours 1 thread: all tasks serially in one call; ours pool 2 thr: "
          "sd.compile of the product on 2 threads, called through its pool; numpy: "
          "np.matmul (1 BLAS thread / default); % peak: our medians over the FMA peak of 1 / 2 threads.  "
          "Shared machine: noisy.")


if __name__ == "__main__":
    main()
