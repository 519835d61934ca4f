"""W1 (MLP 784-256-256-10, batch 64) and W2 (the same MLP, batch 1: latency), loss + all gradients, float32, on
llvm: a fixed-shape compile of each against ONE compile with a symbolic batch ("batch", 784) that serves both
sizes (its code takes the batch as a runtime argument). Per-call medians, side by side, rounds interleaved in
one run (docs/symbolic_dims.md, docs/performance.md).

Run: python benchmarks/symbolic_dims.py [--rounds 5] [--calls 200]
For a comparison against numpy-backed peers, unset OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE in that command only.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import symdiff as sd  # noqa: E402

from machine import describe  # noqa: E402


def mlp(rows):
    x = sd.input("x", (rows, 784))
    y = sd.input("y", (rows,), "int64")
    w1, w2, w3 = sd.param("w1", (784, 256)), sd.param("w2", (256, 256)), sd.param("w3", (256, 10))
    loss = sd.cross_entropy(sd.relu(sd.relu(x @ w1) @ w2) @ w3, y)
    return [loss, *sd.grad(loss, [w1, w2, w3])]


def median_us(f, vals, calls: int) -> float:
    ts = []
    for _ in range(calls):
        t = time.perf_counter()
        f(**vals)
        ts.append(time.perf_counter() - t)
    return float(np.median(ts)) * 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--calls", type=int, default=200)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    weights = {"w1": rng.standard_normal((784, 256)).astype("f4") * .05,
               "w2": rng.standard_normal((256, 256)).astype("f4") * .05,
               "w3": rng.standard_normal((256, 10)).astype("f4") * .05}
    t = time.perf_counter()
    symbolic = sd.compile(mlp("batch"), "llvm")
    t_sym = time.perf_counter() - t
    rows = {"W1": 64, "W2": 1}
    fixed, vals, t_fixed = {}, {}, {}
    for w, n in rows.items():
        vals[w] = {"x": rng.standard_normal((n, 784)).astype("f4"), "y": rng.integers(0, 10, n), **weights}
        t = time.perf_counter()
        fixed[w] = sd.compile(mlp(n), "llvm")
        t_fixed[w] = time.perf_counter() - t
        for a, b in zip(fixed[w](**vals[w]), symbolic(**vals[w])):
            np.testing.assert_allclose(a, b, rtol=2e-5, atol=1e-6)
    m = describe(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    print(f"{m['cpu']} ({m['cpu_flags']}), {m['logical_cpus']} logical CPUs, symdiff {m['symdiff_git']}")
    print(f"compile (this process's disk cache as it is): symbolic {t_sym:.2f} s for every batch size; "
          + ", ".join(f"fixed {w} {t_fixed[w]:.2f} s" for w in rows))
    res = {w: ([], []) for w in rows}
    for _ in range(args.rounds):
        for w in rows:
            res[w][0].append(median_us(fixed[w], vals[w], args.calls))
            res[w][1].append(median_us(symbolic, vals[w], args.calls))
    print(f"{'workload':<22}{'fixed us':>10}{'symbolic us':>13}{'ratio':>8}   (median of {args.rounds} rounds x "
          f"{args.calls} calls)")
    for w, n in rows.items():
        a, b = float(np.median(res[w][0])), float(np.median(res[w][1]))
        print(f"{w + f' (batch {n})':<22}{a:>10.1f}{b:>13.1f}{b / a:>8.3f}")
    print(f"symbolic compiles: {symbolic.compiles} (one function for both sizes)")


if __name__ == "__main__":
    main()
