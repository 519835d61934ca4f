"""Sparse Jacobian by column compression against the dense Jacobian, on a banded problem.

    python benchmarks/sparse_jacobian.py [--n 2000] [--backend llvm]

The residual of a discretised 1-D boundary-value problem, ``r_i = 2 x_i - x_{i-1} - x_{i+1} + x_i^3``
(plus boundary rows), has a tridiagonal Jacobian. ``sd.jacobian`` pushes ``n`` basis tangents through
forward mode (one batched graph, an ``n x n`` result); ``sd.sparse_jacobian`` colours the columns of the
structural pattern (3 colours for a tridiagonal matrix), pushes one tangent per colour and scatters the
compressed product into a ``scipy.sparse.csr_matrix``. Prints compile time, median time per call and the
speed-up; the two results are checked equal first.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import symdiff as sd  # noqa: E402
from benchmarks.harness import TimingPlan, fmt_time, time_calls  # noqa: E402


def residual(n: int):
    x = sd.input("x", (n,), "float64")
    inner = 2.0 * x[1:-1] - x[:-2] - x[2:] + x[1:-1] ** 3
    return x, sd.concatenate([x[:1] - 1.0, inner, sd.exp(x[-1:])])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--backend", default="llvm")
    a = ap.parse_args(argv)
    x, y = residual(a.n)
    xv = np.random.default_rng(0).standard_normal(a.n)
    t = time.perf_counter()
    sj = sd.sparse_jacobian(y, x)
    f_sparse = sj.compile(backend=a.backend, cache=False) if a.backend == "llvm" else sj.compile(backend=a.backend)
    t_sparse = time.perf_counter() - t
    t = time.perf_counter()
    f_dense = sd.compile(sd.jacobian(y, x), backend=a.backend, **({"cache": False} if a.backend == "llvm" else {}))
    t_dense = time.perf_counter() - t
    Js, Jd = f_sparse(x=xv), f_dense(x=xv)
    assert np.allclose(Js.toarray(), Jd, rtol=1e-13, atol=1e-13), "sparse and dense Jacobians differ"
    plan = TimingPlan(target_s=1.0, min_reps=10)
    ms = time_calls(lambda: f_sparse(x=xv), plan)["median_s"]
    md = time_calls(lambda: f_dense(x=xv), plan)["median_s"]
    print(f"banded Jacobian, n = {a.n}, backend {a.backend}: pattern nnz {sj.pattern.nnz}, {sj.n_colors} colours")
    print(f"{'':8} {'compile':>10} {'per call':>10}")
    print(f"{'dense':8} {fmt_time(t_dense):>10} {fmt_time(md):>10}   ({a.n} tangents, {a.n * a.n:,} entries)")
    print(f"{'sparse':8} {fmt_time(t_sparse):>10} {fmt_time(ms):>10}   ({sj.n_colors} tangents, csr result)")
    print(f"speed-up per call: {md / ms:.1f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
