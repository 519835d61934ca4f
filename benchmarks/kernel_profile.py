"""Where the time of a compiled graph goes (not a test): every kernel of its lowered Program rendered
and JIT-compiled alone, then timed on the same inputs and workspace as the whole program::

    python benchmarks/kernel_profile.py W7            # a benchmark workload (benchmarks/workloads.py)
    python benchmarks/kernel_profile.py W6 --reps 20 --threads 2

Each kernel runs as a one-kernel Program (same buffers, same workspace plan, same task split); the
table lists its median time, the cost model's FLOPs and compulsory bytes, and the whole program's median
for comparison (the sum of the kernels is close to it: the kernels run one after another anyway).
Caveat: a kernel alone reads whatever its inputs hold (the workspace is not recomputed), which is
irrelevant for GEMMs and index loops and may change the speed of data-dependent math only.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def _median_call(f, feeds: dict, reps: int, best: bool = False) -> float:
    f(**feeds)
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        f(**feeds)
        ts.append(time.perf_counter() - t0)
    return float(np.min(ts)) if best else float(np.median(ts))


def profile(outputs: list, feeds: dict, reps: int = 10, best: bool = False) -> list[tuple]:
    """[(kernel index, description, median (``best``: minimum) seconds, Cost)] for every kernel of ``outputs``' llvm Program,
    then ("total", ...) for the whole program."""
    import symdiff as sd
    from symdiff.codegen.llvm import backend

    whole = sd.compile(outputs, backend="llvm", cache=False)
    prog = whole.program
    rows = []
    real_lower = backend.lower
    try:
        for i, k in enumerate(prog.kernels):
            one = replace(prog, kernels=(k,))
            backend.lower = lambda *a, _p=one, **kw: _p  # the one-kernel Program instead of the lowering's
            f = backend.LLVMFunction(outputs, single=False, cache=False)
            rows.append((i, k.describe(), _median_call(f, feeds, reps, best), k.cost(prog.where)))
    finally:
        backend.lower = real_lower
    rows.append(("total", f"{len(prog.kernels)} kernels", _median_call(whole, feeds, reps, best), None))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("workload")
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--best", action="store_true", help="minimum instead of median (a loaded machine)")
    a = ap.parse_args()
    os.environ.setdefault("SYMDIFF_NUM_THREADS", str(a.threads))
    import symdiff as sd
    from benchmarks import workloads
    from benchmarks.harness import fmt_time
    wl = workloads.WORKLOADS[a.workload.upper()]
    loss, wrt, _ = workloads.build_symdiff(wl, sd)
    outs = [loss, *sd.grad(loss, wrt)]
    data = workloads.make_data(wl)
    rows = profile(outs, data, a.reps, a.best)
    total = rows[-1][2]
    print(f"{wl.name}: {wl.describe()}; whole program {fmt_time(total)} per call ({'best' if a.best else 'median'}), "
          f"sum of kernels {fmt_time(sum(r[2] for r in rows[:-1]))}")
    for i, desc, t, c in sorted(rows[:-1], key=lambda r: -r[2]):
        gf = f"{c.flops / t / 1e9:6.1f} GFLOP/s" if c and c.flops else " " * 14
        gb = f"{(c.bytes_read + c.bytes_written) / t / 1e9:6.1f} GB/s" if c else ""
        print(f"k{i:<3} {fmt_time(t):>10} {100 * t / total:5.1f}%  {gf} {gb}  {desc[:110]}")


if __name__ == "__main__":
    main()
