"""Pendulum swing-up by trajectory optimisation: a physical model, its gradient and Hessian-vector products.

A damped pendulum  m l^2 theta'' = u - m g l sin(theta) - b theta'  must go from hanging at rest
(theta = 0) to upright at rest (theta = pi) in ``--duration`` seconds with the least torque effort.
The trajectory is discretised on T steps of h seconds; the first two and the last two angles are
fixed (at rest at both ends), the free variables are the other angles q, and the torque follows from
the dynamics (inverse dynamics, finite differences):

    u_k = m l^2 (theta_{k+1} - 2 theta_k + theta_{k-1}) / h^2 + b (theta_{k+1} - theta_{k-1}) / (2h)
          + m g l sin(theta_k)
    J(q) = h sum_k u_k^2

written with the DSL (the finite differences are products with constant matrices). symdiff compiles
J with its gradient, and the Hessian-vector product  H v = d/dz <grad J(z), v>  (the gradient of the
gradient graph), which a Newton-CG / trust-region solver (scipy's ``trust-ncg``) uses without ever
forming the Hessian. Each compiled function is a small kernel called thousands of times: the script
reports the time per call.

    python examples/pendulum.py [--steps 80] [--duration 4]
"""
from __future__ import annotations

import argparse
import time

import numpy as np

import symdiff as sd


def build(T: int, h: float, m=1.0, l=1.0, g=9.81, b=0.1):
    """J(q) for the interior angles q = theta_2..theta_{T-2}; the first two and last two angles are
    fixed (0, 0 and pi, pi: at rest at both ends), and the torque follows from the dynamics."""
    q = sd.param("q", (T - 3,), "float64")
    E = np.zeros((T + 1, T - 3))
    E[2:T - 1] = np.eye(T - 3)                          # theta = E q + theta_fixed
    fixed = np.zeros(T + 1)
    fixed[T - 1:] = np.pi
    D2, D1, S = np.zeros((T - 1, T + 1)), np.zeros((T - 1, T + 1)), np.zeros((T - 1, T + 1))
    for k in range(1, T):
        D2[k - 1, k - 1:k + 2] = (1, -2, 1)           # second difference
        D1[k - 1, k - 1], D1[k - 1, k + 1] = -1, 1     # central first difference
        S[k - 1, k] = 1                                # interior points
    inertia = m * l * l
    theta = sd.matmul(sd.const(E), q) + sd.const(fixed)
    accel = sd.matmul(sd.const(D2 / h ** 2), theta)
    velocity = sd.matmul(sd.const(D1 / (2 * h)), theta)
    u = inertia * (accel + (b / inertia) * velocity + (g / l) * sd.sin(sd.matmul(sd.const(S), theta)))
    J = h * sd.sum(sd.square(u))                       # effort: integral of u^2 dt
    return q, theta, u, J


def per_call(fn, kwargs, repeat: int) -> float:
    fn(**kwargs)
    t0 = time.perf_counter()
    for _ in range(repeat):
        fn(**kwargs)
    return (time.perf_counter() - t0) / repeat


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=80, help="time steps T")
    ap.add_argument("--duration", type=float, default=4.0, help="seconds")
    ap.add_argument("--repeat", type=int, default=2000, help="calls per timing")
    ap.add_argument("--maxiter", type=int, default=100)
    args = ap.parse_args(argv)
    T, h = args.steps, args.duration / args.steps

    q, theta, u, J = build(T, h)
    t0 = time.perf_counter()
    g = sd.grad(J, q)
    v = sd.input("v", q.shape, "float64")
    Hv = sd.grad(sd.sum(g * v), q)                    # Hessian-vector product: gradient of <grad J, v>
    f_J = sd.compile(J)
    f_grad = sd.compile([J, g])
    f_hvp = sd.compile(Hv)
    f_traj = sd.compile([theta, u])
    print(f"T = {T} steps of h = {h:.3f} s, {q.size} free angles; differentiated and compiled J, grad J and H v "
          f"in {time.perf_counter() - t0:.2f} s ({f_grad.backend} backend)")

    def fun(z):
        j, gz = f_grad(q=z)
        return float(j), gz

    def hessp(z, vz):
        return f_hvp(q=z, v=vz)

    z0 = np.linspace(0, np.pi, T + 1)[2:T - 1]         # initial guess: a straight ramp from 0 to pi

    # the Hessian-vector product against central differences of the compiled gradient
    rng = np.random.default_rng(0)
    vz = rng.standard_normal(z0.size)
    eps = 1e-6
    hv_fd = (fun(z0 + eps * vz)[1] - fun(z0 - eps * vz)[1]) / (2 * eps)
    hv = hessp(z0, vz)
    print(f"H v vs central differences of grad J: relative error {np.linalg.norm(hv - hv_fd) / np.linalg.norm(hv):.2e}")

    t_J = per_call(f_J, {"q": z0}, args.repeat)
    t_g = per_call(f_grad, {"q": z0}, args.repeat)
    t_h = per_call(f_hvp, {"q": z0, "v": vz}, args.repeat)
    print(f"time per call: J {t_J * 1e6:.1f} us | J + grad {t_g * 1e6:.1f} us | H v {t_h * 1e6:.1f} us "
          f"(mean of {args.repeat} calls)")

    from scipy.optimize import minimize
    t0 = time.perf_counter()
    res = minimize(fun, z0, jac=True, hessp=hessp, method="trust-ncg", options={"maxiter": args.maxiter, "gtol": 1e-6})
    solve_s = time.perf_counter() - t0
    th, torque = f_traj(q=res.x)
    print(f"trust-ncg: {res.nit} iterations, {res.nfev} J+grad calls, {res.nhev} H v calls in {solve_s:.2f} s "
          f"({res.message.strip()})")
    print(f"|grad J| = {np.linalg.norm(res.jac):.1e}; effort J = h sum u^2 = {res.fun:.4f} N^2 m^2 s "
          f"(straight ramp: {fun(z0)[0]:.4f}); max |u| = {np.abs(torque).max():.3f} N m")
    swings = int(np.sum(np.diff(np.sign(np.diff(th))) != 0))
    print(f"trajectory: theta from {th[0]:.3f} to {th[-1]:.4f} rad, range [{th.min():+.2f}, {th.max():+.2f}], "
          f"{swings} reversal(s) of direction")


if __name__ == "__main__":
    main()
