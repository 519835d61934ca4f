"""Inverse kinematics of a planar 3-link arm with a symbolic Jacobian (Gauss-Newton / pseudo-inverse).

    python examples/robot_arm.py [--target 1.2,0.9] [--export DIR]

Forward kinematics: joint angles q (3,) -> end-effector position p(q) (2,), the link angles being the
cumulative sums of q. ``sd.jacobian(p, q)`` (2x3) is a graph like any other; compiled together with
p, one call gives both. The IK loop is the damped Gauss-Newton step of the least-squares problem
min |p(q) - target|^2:  q <- q - J^+ (p(q) - target), J^+ = J^T (J J^T + lambda I)^-1 (the
pseudo-inverse, damped near singular poses). With ``--export DIR`` the same Jacobian is written to a C
library (``libarm.so``, functions ``arm_fk`` and ``arm_fk_jac``), which ``examples/c_jacobian/ik.c``
calls from C.
"""
from __future__ import annotations

import argparse

import numpy as np

import symdiff as sd

LINKS = np.array([1.0, 0.8, 0.5])


def kinematics():
    """(q, p, J): the joint-angle leaf, the end position and its Jacobian (symbolic)."""
    q = sd.input("q", (3,), "float64")
    ang = sd.cumsum(q)  # absolute link angles
    p = sd.stack([sd.sum(LINKS * sd.cos(ang)), sd.sum(LINKS * sd.sin(ang))])
    return q, p, sd.jacobian(p, q)


def solve(target, q0=(0.3, 0.3, 0.3), iters: int = 50, damping: float = 1e-4, tol: float = 1e-10):
    """Damped Gauss-Newton IK: returns (q, history of |p(q) - target|)."""
    q, p, J = kinematics()
    f = sd.compile([p, J], inputs=[q])
    qv, hist = np.array(q0, dtype=float), []
    for _ in range(iters):
        pv, Jv = f(qv)
        err = pv - target
        hist.append(float(np.linalg.norm(err)))
        if hist[-1] < tol:
            break
        step = Jv.T @ np.linalg.solve(Jv @ Jv.T + damping * np.eye(2), err)  # J^+ err
        qv = qv - step
    return qv, hist


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--target", default="1.2,0.9", help="end-effector target x,y (reachable: |t| < 2.3)")
    ap.add_argument("--export", metavar="DIR", help="also write libarm.so with arm_fk and arm_fk_jac")
    a = ap.parse_args(argv)
    target = np.array([float(v) for v in a.target.split(",")])
    q, hist = solve(target)
    print(f"target {target}, reached in {len(hist)} Gauss-Newton steps; |error| per step:")
    print("  " + "  ".join(f"{e:.1e}" for e in hist))
    print(f"joint angles q = {np.round(q, 6)}")
    qn, p, J = kinematics()
    print("Jacobian at the solution:\n", np.round(sd.compile(J)(q=q), 6))
    if a.export:
        res = sd.export({"fk": p, "fk_jac": J}, "arm", a.export)
        print(f"wrote {res.shared_library} (arm_fk, arm_fk_jac) and {a.export}/arm.h")
    return {"q": q, "errors": hist}


if __name__ == "__main__":
    main()
