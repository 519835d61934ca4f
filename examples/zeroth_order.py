"""Zeroth-order gradient estimates against the compiled symbolic gradient.

The loss is a small MLP (64 -> 32 -> ReLU -> 10, cross-entropy) on a batch of scikit-learn digits,
in float64. Its gradient with respect to all 2410 parameters is computed

- symbolically: ``sd.grad`` compiled together with the loss (one call);
- by central finite differences, one coordinate at a time: 2 n loss evaluations;
- by random perturbation (Gaussian smoothing, the "0th-order" methods of the lecture):
  g ~ 1/K sum_k (f(w + s v_k) - f(w - s v_k)) / (2 s) v_k with v_k ~ N(0, I): 2 K evaluations,
  unbiased for the smoothed loss but with relative error about sqrt(n / K).

It prints the time and the error of each, then trains with each kind of gradient for a few steps.

    python examples/zeroth_order.py [--batch 128] [--hidden 32]
"""
from __future__ import annotations

import argparse
import time

import numpy as np
from sklearn.datasets import load_digits

import symdiff as sd
import symdiff.nn as nn


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--hidden", type=int, default=32)
    ap.add_argument("--directions", type=int, nargs="+", default=[10, 100, 1000])
    ap.add_argument("--train-steps", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    X, y = load_digits(return_X_y=True)
    X = (X - X.mean(0)) / np.where(X.std(0) > 0, X.std(0), 1.0)
    rng = np.random.default_rng(args.seed)
    idx = rng.choice(len(X), args.batch, replace=False)
    data = {"x": X[idx], "y": y[idx]}

    model = nn.Sequential(nn.Linear(64, args.hidden, dtype="float64"), nn.ReLU(),
                          nn.Linear(args.hidden, 10, dtype="float64"), name="mlp")
    x = sd.input("x", (args.batch, 64), "float64")
    labels = sd.input("y", (args.batch,), "int64")
    loss = nn.cross_entropy(model(x), labels)
    params = model.params()
    grads = sd.grad(loss, params)
    f_loss = sd.compile(loss)
    f_both = sd.compile([loss, *grads])

    values = model.init_values(args.seed)
    names = [p.name for p in params]
    shapes = [values[n].shape for n in names]
    sizes = [values[n].size for n in names]
    n = sum(sizes)

    def unflatten(w):
        out, k = {}, 0
        for nm, shp, sz in zip(names, shapes, sizes):
            out[nm] = w[k:k + sz].reshape(shp)
            k += sz
        return out

    def f(w) -> float:
        return float(f_loss(**data, **unflatten(w)))

    def symbolic(w):
        res = f_both(**data, **unflatten(w))
        return float(res[0]), np.concatenate([g.ravel() for g in res[1:]])

    w0 = np.concatenate([values[nm].ravel() for nm in names])
    print(f"MLP 64-{args.hidden}-10 on a batch of {args.batch} digits: {n} parameters, loss {f(w0):.4f}")
    print(f"{'method':<34}{'loss evals':>11}{'time':>11}{'rel. error':>12}{'cosine':>9}")

    reps = 20
    t0 = time.perf_counter()
    for _ in range(reps):
        _, g_sym = symbolic(w0)
    t_sym = (time.perf_counter() - t0) / reps
    t0 = time.perf_counter()
    for _ in range(reps):
        f(w0)
    t_f = (time.perf_counter() - t0) / reps

    def row(name, evals, seconds, g):
        err = np.linalg.norm(g - g_sym) / np.linalg.norm(g_sym)
        cos = float(g @ g_sym / (np.linalg.norm(g) * np.linalg.norm(g_sym)))
        print(f"{name:<34}{evals:>11}{seconds * 1e3:>9.1f}ms{err:>12.2e}{cos:>9.4f}")

    print(f"{'symbolic (sd.grad, compiled)':<34}{'1 + grad':>11}{t_sym * 1e3:>9.2f}ms{0:>12.2e}{1:>9.4f}")

    h = 1e-5
    t0 = time.perf_counter()
    g_fd = np.empty(n)
    for i in range(n):
        e = np.zeros(n)
        e[i] = h
        g_fd[i] = (f(w0 + e) - f(w0 - e)) / (2 * h)
    row("central differences (per coord.)", 2 * n, time.perf_counter() - t0, g_fd)

    s = 1e-4
    for K in args.directions:
        t0 = time.perf_counter()
        V = rng.standard_normal((K, n))
        d = np.array([(f(w0 + s * v) - f(w0 - s * v)) / (2 * s) for v in V])
        g_zo = V.T @ d / K
        row(f"random perturbation, K={K}", 2 * K, time.perf_counter() - t0, g_zo)
    print(f"(one loss evaluation: {t_f * 1e6:.0f} us; the symbolic gradient costs {t_sym / t_f:.1f} of them "
          f"and is exact to rounding)")

    # -- training with each gradient for the same number of steps ---------------------------------------------
    K = 20
    print(f"\n{args.train_steps} plain gradient-descent steps (lr 0.1) with each gradient:")
    for name, est in (("symbolic", lambda w: symbolic(w)[1]),
                      (f"random perturbation K={K}", None)):
        w = w0.copy()
        rs = np.random.default_rng(1)
        t0 = time.perf_counter()
        for _ in range(args.train_steps):
            if est is not None:
                g = est(w)
                lr = 0.1
            else:
                V = rs.standard_normal((K, n))
                g = V.T @ np.array([(f(w + s * v) - f(w - s * v)) / (2 * s) for v in V]) / K
                lr = 0.1 * K / n  # the estimate's variance is ~n/K times larger: smaller steps
            w -= lr * g
        print(f"  {name:<28} loss {f(w0):.4f} -> {f(w):.4f} in {time.perf_counter() - t0:.2f} s")


if __name__ == "__main__":
    main()
