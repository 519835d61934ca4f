"""The contract between the harness and the contenders, and how calls are timed.

A contender is a function ``prepare(wl, data, threads) -> Prepared``.  ``prepare`` does
everything that is not the timed call (imports, graph building, compilation, moving data into
the framework's own array type) and returns a zero-argument ``call`` that computes the loss and
all gradients once, synchronously.  ``time_calls`` then warms it up and times many calls.
"""
from __future__ import annotations

import gc
import importlib
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np


# ----------------------------------------------------------------------------- protocol
class Skip(Exception):
    """The contender cannot run here (not installed, not implemented yet, failed to compile)."""


@dataclass
class Prepared:
    call: Callable[[], Any]                       # one loss+gradients evaluation, blocking
    to_numpy: Callable[[Any], list[np.ndarray]]   # call() result -> [loss, *grads] as numpy
    compile: dict[str, float] = field(default_factory=dict)   # seconds, by phase
    info: dict = field(default_factory=dict)      # versions, kernel stats, notes


# ----------------------------------------------------------------------------- registry
# name -> (module, function); modules are imported only in the child that runs them
REGISTRY: dict[str, tuple[str, str]] = {
    "symdiff-llvm": ("benchmarks.symdiff_contender", "prepare_llvm"),
    "symdiff-numpy": ("benchmarks.symdiff_contender", "prepare_numpy"),
    "numpy": ("benchmarks.peers", "prepare_numpy"),
    "torch": ("benchmarks.peers", "prepare_torch"),
    "torch-compile": ("benchmarks.peers", "prepare_torch_compiled"),
    "jax": ("benchmarks.peers", "prepare_jax"),
}
SYMDIFF = ["symdiff-llvm", "symdiff-numpy"]
PEERS = ["numpy", "torch", "torch-compile", "jax"]
GOAL_PEERS = ("torch", "jax")  # issue 17's ratio: symdiff-llvm over the best of torch eager and jax.jit
DEFAULT = ["symdiff-llvm", "symdiff-numpy", "numpy", "torch", "jax"]   # torch-compile: opt-in


def get(name: str) -> Callable:
    mod, fn = REGISTRY[name]
    return getattr(importlib.import_module(mod), fn)


def parse(names: str | None, torch_compile: bool = False) -> list[str]:
    out = [n.strip() for n in names.split(",") if n.strip()] if names else list(DEFAULT)
    unknown = [n for n in out if n not in REGISTRY]
    if unknown:
        raise SystemExit(f"unknown contender(s) {unknown}; known: {', '.join(REGISTRY)}")
    if torch_compile and "torch-compile" not in out:
        out.append("torch-compile")
    return out


def outputs_list(res) -> list[np.ndarray]:
    """Generic [loss, *grads] -> list of numpy arrays (a dict result is taken in its order)."""
    if isinstance(res, dict):
        res = list(res.values())
    return [np.asarray(r) for r in res]


# ----------------------------------------------------------------------------- timing
@dataclass(frozen=True)
class TimingPlan:
    warmup_s: float = 0.5          # warm up for at least this long ...
    min_warmup: int = 5            # ... and at least this many calls
    target_s: float = 3.0          # then time calls for about this long ...
    min_reps: int = 30             # ... but at least / at most this many calls
    max_reps: int = 20000
    repeat: int | None = None      # fixed repetition count (overrides target_s/min/max)

    @classmethod
    def make(cls, quick: bool, repeat: int | None) -> "TimingPlan":
        if quick:
            return cls(warmup_s=0.1, min_warmup=3, target_s=0.4, min_reps=10, max_reps=2000, repeat=repeat)
        return cls(repeat=repeat)


def time_calls(call, plan: TimingPlan) -> dict:
    """Time ``call()`` repeatedly; every repetition is one call measured with perf_counter_ns.

    The garbage collector is disabled while timing (as timeit does) and re-enabled afterwards.
    """
    # warm-up (also gives the per-call estimate that sizes the measurement)
    n_warm, t_start = 0, time.perf_counter()
    while n_warm < plan.min_warmup or time.perf_counter() - t_start < plan.warmup_s:
        call()
        n_warm += 1
        if n_warm >= 10 * plan.min_warmup and time.perf_counter() - t_start > 4 * plan.warmup_s:
            break
    est = (time.perf_counter() - t_start) / n_warm
    if plan.repeat:
        reps = plan.repeat
    else:
        reps = int(min(plan.max_reps, max(plan.min_reps, plan.target_s / max(est, 1e-9))))

    samples = np.empty(reps, dtype=np.int64)
    gc_was_enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        clock = time.perf_counter_ns
        for i in range(reps):
            t0 = clock()
            call()
            samples[i] = clock() - t0
    finally:
        if gc_was_enabled:
            gc.enable()
    s = samples / 1e9
    return {
        "median_s": float(np.median(s)),
        "p10_s": float(np.percentile(s, 10)),
        "p90_s": float(np.percentile(s, 90)),
        "min_s": float(s.min()),
        "mean_s": float(s.mean()),
        "reps": int(reps),
        "warmup_calls": int(n_warm),
    }


def fmt_time(sec: float | None) -> str:
    if sec is None:
        return "-"
    if sec < 1e-3:
        return f"{sec * 1e6:.1f} us"
    if sec < 1.0:
        return f"{sec * 1e3:.2f} ms"
    return f"{sec:.2f} s"
