"""Per-example gradient norms of the digits MLP with ``sd.vmap``, against a Python loop over examples.

    python examples/per_example_grads.py [--batch 256] [--backend llvm]

``sd.vmap(lambda x, y: sd.grad(loss(x, y), W))(X, Y)`` maps the gradient of ONE example's loss over the
batch axis of X and Y: one batched graph, compiled once, whose output holds a gradient per example
(the quantity differentially private SGD clips). The loop compiles the single-example gradient and
calls it once per example. Both give the same values; the script prints the time of each.
"""
from __future__ import annotations

import argparse
import time

import numpy as np
from sklearn.datasets import load_digits

import symdiff as sd


def model(hidden: int = 32):
    W1 = sd.param("W1", (64, hidden), "float32")
    W2 = sd.param("W2", (hidden, 10), "float32")

    def loss(x, y):  # one example: x (64,), y () int64
        h = sd.tanh(sd.reshape(x, (1, 64)) @ W1)
        return sd.cross_entropy(h @ W2, sd.reshape(y, (1,)))
    return W1, W2, loss


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--backend", default="llvm")
    a = ap.parse_args(argv)
    d = load_digits()
    X = (d.data[:a.batch] / 16.0).astype(np.float32)
    Y = d.target[:a.batch].astype(np.int64)
    r = np.random.default_rng(0)
    W1, W2, loss = model()
    vals = {"W1": (r.standard_normal((64, 32)) / 8).astype(np.float32),
            "W2": (r.standard_normal((32, 10)) / 6).astype(np.float32)}
    Xs, Ys = sd.input("X", X.shape, "float32"), sd.input("Y", Y.shape, "int64")
    g1, g2 = sd.vmap(lambda x, y: sd.grad(loss(x, y), [W1, W2]))(Xs, Ys)  # (B, 64, 32), (B, 32, 10)
    norms = sd.sqrt(sd.sum(g1 * g1, axis=(1, 2)) + sd.sum(g2 * g2, axis=(1, 2)))
    t = time.perf_counter()
    f = sd.compile(norms, backend=a.backend)
    t_compile_v = time.perf_counter() - t
    batched = f(X=X, Y=Y, **vals)
    t = time.perf_counter()
    batched = f(X=X, Y=Y, **vals)
    t_vmap = time.perf_counter() - t
    x1, y1 = sd.input("x1", (64,), "float32"), sd.input("y1", (), "int64")
    one = sd.grad(loss(x1, y1), [W1, W2])
    f1 = sd.compile(one, backend=a.backend)
    f1(x1=X[0], y1=Y[0], **vals)
    t = time.perf_counter()
    looped = np.array([np.sqrt(sum(float(np.sum(gi.astype(np.float64) ** 2)) for gi in f1(x1=X[i], y1=Y[i], **vals)))
                       for i in range(a.batch)])
    t_loop = time.perf_counter() - t
    err = float(np.max(np.abs(batched - looped) / np.maximum(looped, 1e-6)))
    print(f"per-example gradient norms of {a.batch} digits (MLP 64-32-10, {a.backend}):")
    print(f"  first five: {np.round(batched[:5], 4)}")
    print(f"  vmap: one call {t_vmap * 1e3:.2f} ms (compile {t_compile_v:.2f} s); "
          f"Python loop: {t_loop * 1e3:.2f} ms ({a.batch} calls); max relative difference {err:.1e}")
    return {"vmap": batched, "loop": looped, "t_vmap": t_vmap, "t_loop": t_loop, "max_rel": err}


if __name__ == "__main__":
    main()
