"""``symdiff check MODEL.py[:NAME]``: every gradient of NAME against central finite differences in
float64 at seeded random values; exit 0 when all agree, 1 when one disagrees."""
from __future__ import annotations

import argparse
import sys
import time

from .common import EXIT_FAIL, EXIT_OK, add_model_argument, load_model, require_scalar, select_wrt


def random_values(outputs, seed: int) -> dict:
    """Seeded random values for every leaf: float inputs N(0, 1); parameters N(0, 1/fan_in) for
    matrices and N(0, 0.25) otherwise; integer labels uniform in their range [0, depth); bool masks half true."""
    import numpy as np
    from ..signature import Signature
    rng = np.random.default_rng(seed)
    vals = {}
    for s in Signature(list(outputs)).leaves:
        if s.dtype.startswith("int"):
            hi = s.label_depth if s.label_depth is not None else 2
            vals[s.name] = rng.integers(0, hi, size=s.shape).astype(s.dtype)
        elif s.dtype == "bool":  # masks: half true
            vals[s.name] = rng.random(s.shape) < 0.5
        elif s.kind == "param" and len(s.shape) >= 2:
            vals[s.name] = (rng.standard_normal(s.shape) / np.sqrt(s.shape[0])).astype(s.dtype)
        elif s.kind == "param":
            vals[s.name] = (0.5 * rng.standard_normal(s.shape)).astype(s.dtype)
        else:
            vals[s.name] = rng.standard_normal(s.shape).astype(s.dtype)
    return vals


def run(a: argparse.Namespace) -> int:
    """The ``check`` subcommand."""
    from ..check import check_grad
    m = load_model(a.model)
    require_scalar(m, "a gradient check")
    wrt = select_wrt(m, a.wrt)
    values = random_values([m.tensor, *wrt], a.seed)
    t = time.perf_counter()
    report = check_grad(m.tensor, wrt, values, eps=a.eps, rtol=a.rtol, atol=a.atol, seed=a.seed)
    dt = time.perf_counter() - t
    print(f"symdiff check {m.spec}: d {m.name} / d {{{', '.join(w.name for w in wrt)}}} "
          f"(float64 central differences, seed {a.seed}, {dt:.2f} s)")
    print(report)
    bad = [r.name for r in report.leaves if not r.passed]
    if bad:
        print(f"FAIL: the gradient of {m.name} w.r.t. {', '.join(bad)} disagrees with finite differences",
              file=sys.stderr)
        return EXIT_FAIL
    return EXIT_OK


def add_parser(sub, common: argparse.ArgumentParser) -> None:
    """Register ``check`` and its options."""
    k = sub.add_parser("check", parents=[common], help="finite-difference check of every gradient",
                       description="Check d NAME / d param against central finite differences (float64) at "
                                   "seeded random values. Exit 0 when all agree, 1 when one disagrees.")
    add_model_argument(k)
    k.add_argument("--wrt", metavar="A,B", help="leaves to check (default: every sd.param)")
    k.add_argument("--seed", type=int, default=0, help="random seed for the values (default 0)")
    k.add_argument("--eps", type=float, default=1e-6, help="finite-difference step (default 1e-6)")
    k.add_argument("--rtol", type=float, default=1e-5, help="relative tolerance (default 1e-5)")
    k.add_argument("--atol", type=float, default=1e-6, help="absolute tolerance (default 1e-6)")
    k.set_defaults(func=run)
