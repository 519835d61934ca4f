"""The N-dimensional Rosenbrock function, minimised by scipy with symdiff's compiled gradient and Hessian-vector product.

    f(x) = sum_{i<N-1} 100 (x_{i+1} - x_i^2)^2 + (1 - x_i)^2          (minimum 0 at x = (1, ..., 1))

is written with slicing, as in NumPy: ``sum(100 * (x[1:] - x[:-1]**2)**2 + (1 - x[:-1])**2)``. symdiff
differentiates it symbolically and compiles two functions:

- ``f_and_grad(x) -> (f, grad f)`` (one fused kernel program), for BFGS and Newton-CG;
- ``hvp(x, v) -> H(x) v``, the gradient of ``<grad f(x), v>`` with ``v`` an input: a Hessian-vector product
  that Newton-CG uses without ever forming the N x N Hessian.

``scipy.optimize.minimize`` then runs BFGS and Newton-CG twice: with symdiff's functions and with scipy's
hand-written ``rosen_der`` / ``rosen_hess_prod``; the script prints iterations, evaluations and time side by
side, and checks that the two gradients and Hessian-vector products agree.

    python examples/rosenbrock.py [--n 100] [--backend llvm]
"""
from __future__ import annotations

import argparse
import time

import numpy as np
from scipy.optimize import minimize, rosen, rosen_der, rosen_hess_prod

import symdiff as sd


def rosenbrock(x: sd.Tensor) -> sd.Tensor:
    """f(x) = sum(100 (x[1:] - x[:-1]^2)^2 + (1 - x[:-1])^2), written with slices as in NumPy."""
    return sd.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)


def build(n: int, backend: str):
    """Compiled ``f_and_grad(x)`` and ``hvp(x, v)`` for the n-dimensional Rosenbrock function."""
    x = sd.input("x", (n,), "float64")
    v = sd.input("v", (n,), "float64")
    f = rosenbrock(x)
    g = sd.grad(f, x)
    hv = sd.grad(sd.sum(g * v), x)  # d/dx <grad f(x), v> = H(x) v
    fg_compiled = sd.compile([f, g], backend)
    hvp_compiled = sd.compile(hv, backend)

    def f_and_grad(z: np.ndarray) -> tuple[float, np.ndarray]:
        fv, gv = fg_compiled(x=z)
        return float(fv), gv

    def hvp(z: np.ndarray, p: np.ndarray) -> np.ndarray:
        return hvp_compiled(x=z, v=p)
    return f_and_grad, hvp


def solve(method: str, fun, x0, jac, hessp=None, maxiter: int = 2000):
    t0 = time.perf_counter()
    options = {"maxiter": maxiter, **({"xtol": 1e-9} if method == "Newton-CG" else {"gtol": 1e-6})}
    res = minimize(fun, x0, jac=jac, hessp=hessp, method=method, options=options)
    return res, time.perf_counter() - t0


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=100, help="dimension N")
    ap.add_argument("--backend", default="llvm", help="symdiff backend (llvm, cuda-cpu, numpy, ...)")
    ap.add_argument("--maxiter", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    n = args.n
    rng = np.random.default_rng(args.seed)

    t0 = time.perf_counter()
    f_and_grad, hvp = build(n, args.backend)
    print(f"Rosenbrock, N = {n}: graph built, differentiated and compiled for {args.backend!r} "
          f"in {time.perf_counter() - t0:.2f} s")

    # the compiled derivatives against scipy's hand-written ones at a random point
    z, p = rng.uniform(-2, 2, n), rng.standard_normal(n)
    fz, gz = f_and_grad(z)
    err_f = abs(fz - rosen(z)) / abs(rosen(z))
    err_g = np.max(np.abs(gz - rosen_der(z))) / np.max(np.abs(rosen_der(z)))
    err_h = np.max(np.abs(hvp(z, p) - rosen_hess_prod(z, p))) / np.max(np.abs(rosen_hess_prod(z, p)))
    print(f"relative error vs scipy at a random point: f {err_f:.1e}, gradient {err_g:.1e}, "
          f"Hessian-vector product {err_h:.1e}")

    x0 = np.zeros(n)  # from the origin both methods reach the global minimum (from (-1.2, 1, ...) BFGS may stop
    #                   at the local minimum near (-1, 1, ..., 1) that exists for N >= 4)
    runs = [
        ("BFGS", "symdiff", lambda: solve("BFGS", f_and_grad, x0, True, maxiter=args.maxiter)),
        ("BFGS", "scipy", lambda: solve("BFGS", rosen, x0, rosen_der, maxiter=args.maxiter)),
        ("Newton-CG", "symdiff", lambda: solve("Newton-CG", f_and_grad, x0, True, hvp, maxiter=args.maxiter)),
        ("Newton-CG", "scipy", lambda: solve("Newton-CG", rosen, x0, rosen_der, rosen_hess_prod, maxiter=args.maxiter)),
    ]
    print(f"\n{'method':<10} {'derivatives':<12} {'iterations':>10} {'f evals':>8} {'grad evals':>10} "
          f"{'H v evals':>9} {'time':>9}  {'f(x*)':>9}  {'max |x* - 1|':>12}")
    results = {}
    for method, source, run in runs:
        res, dt = run()
        dist = float(np.max(np.abs(res.x - 1.0)))
        nhev = getattr(res, "nhev", 0)
        print(f"{method:<10} {source:<12} {res.nit:>10} {res.nfev:>8} {res.njev:>10} {nhev:>9} {dt * 1e3:>7.1f} ms"
              f"  {res.fun:>9.2e}  {dist:>12.2e}")
        results[(method, source)] = {"nit": int(res.nit), "time": dt, "fun": float(res.fun), "dist": dist,
                                     "success": bool(res.success)}
    print("\nsymdiff's gradient and H v are compiled from the one-line NumPy-style definition; scipy's are "
          "hand-written for this function.")
    results["errors"] = {"f": float(err_f), "grad": float(err_g), "hvp": float(err_h)}
    return results


if __name__ == "__main__":
    main()
