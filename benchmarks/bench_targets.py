"""Per-target results (not a test): the same graphs compiled for every x86-64 level this CPU can run
(``sd.compile(..., isa="sse4.2" | "avx2" | "avx512")``) and for the host, timed side by side::

    python benchmarks/bench_targets.py                # GEMM W5 shape, W1 step, W4 elementwise; 2 threads
    python benchmarks/bench_targets.py --threads 1 --rounds 5

Cases: one float32 product 256x1024 @ 1024x1024 (GFLOP/s and the fraction of the FMA peak of the host,
measured in the same run by benchmarks/fma_peak.py: the lower levels' fraction says what a laptop
without the wider units loses), one W1 step (loss and all gradients) and one W4 step (1e6 elements).
The variants are timed in interleaved rounds (variant A, B, C, A, B, C, ...) and each reports the median
of its rounds' medians, so a burst of load on a shared machine hits every variant alike.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import symdiff as sd  # noqa: E402
from symdiff.codegen.target import ISA_LEVELS, host_supports  # noqa: E402

from fma_peak import fma_peak  # noqa: E402
import workloads as W  # noqa: E402


def _median_call(f, feed: dict, min_time: float = 0.05) -> float:
    f(**feed)
    t0 = time.perf_counter()
    f(**feed)
    inner = max(3, int(min_time / max(time.perf_counter() - t0, 1e-7)))
    ts = []
    for _ in range(inner):
        t0 = time.perf_counter()
        f(**feed)
        ts.append(time.perf_counter() - t0)
    return float(np.median(ts))


def cases() -> dict:
    """name -> (outputs, feed, flops)"""
    rng = np.random.default_rng(0)
    a, b = sd.input("a", (256, 1024), "float32"), sd.input("b", (1024, 1024), "float32")
    out = {"GEMM 256x1024x1024 f32": ([a @ b], {"a": rng.standard_normal((256, 1024)).astype("float32"),
                                               "b": rng.standard_normal((1024, 1024)).astype("float32")},
                                      2 * 256 * 1024 * 1024)}
    for name in ("W1", "W4"):
        wl = W.get(name)[0]
        loss, wrt, _ = W.build_symdiff(wl, sd)
        data = W.make_data(wl)
        outs = [loss, *sd.grad(loss, wrt)]
        out[f"{name} step"] = (outs, data, wl.flops())
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=5)
    a = ap.parse_args()
    levels = [lv for lv in ISA_LEVELS if host_supports(lv)]
    peak = fma_peak("float32", a.threads)
    print(f"levels this CPU runs: {', '.join(levels)}; FMA peak float32 on {a.threads} thread(s) (this run): "
          f"{peak:.1f} GFLOP/s")
    print(f"{'case':26s} {'target':8s} {'median':>10s} {'GFLOP/s':>8s} {'% peak':>7s} {'vs host':>8s}")
    for cname, (outs, data, flops) in cases().items():
        fns = {"host": sd.compile(outs, num_threads=a.threads)}
        for lv in levels:
            fns[lv] = sd.compile(outs, num_threads=a.threads, isa=lv)
        feed = {k: data[k] for k in fns["host"].input_names}
        ref = fns["host"](**feed)
        for f in fns.values():   # every target computes the same values (float32 rounding apart)
            for x, y in zip(f(**feed), ref):
                np.testing.assert_allclose(x, y, rtol=2e-3, atol=2e-3 * (np.abs(y).max() + 1))
        med = {k: [] for k in fns}
        for _ in range(a.rounds):
            for k, f in fns.items():
                med[k].append(_median_call(f, feed))
        host = float(np.median(med["host"]))
        for k in fns:
            t = float(np.median(med[k]))
            g = flops / t / 1e9
            print(f"{cname:26s} {k:8s} {t * 1e3:8.3f}ms {g:8.1f} {100 * g / peak:6.0f}% {t / host:7.2f}x", flush=True)


if __name__ == "__main__":
    main()
