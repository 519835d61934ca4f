"""symdiff contenders: ``sd.compile(..., backend="llvm")`` and ``backend="numpy"``.

Written against the public API only (sd.input / sd.param / sd.grad / sd.compile).  Any failure
to import, build, differentiate or compile becomes a ``Skip`` carrying the reason, so the harness
keeps working while the library is under construction.

Compile phases reported (seconds):
  build     - building the forward graph with the DSL
  grad      - sd.grad(loss, wrt)
  compile   - first sd.compile of the graph in this (fresh) process: the cold compile
  cached    - a second sd.compile of the very same outputs: should hit the compile cache
  rebuilt   - sd.compile of a structurally identical graph built again from scratch
              (shows whether the cache is keyed on structure rather than object identity)
The harness adds ``first_call`` (the first f(...) call, which may include lazy work).
"""
from __future__ import annotations

import dataclasses
import os
import time
import traceback

import numpy as np

from . import workloads
from .harness import Prepared, Skip, outputs_list


def _jsonable(v, depth: int = 0):
    if isinstance(v, (bool, int, float, str)) or v is None:
        return v
    if isinstance(v, np.generic):
        return v.item()
    if depth > 3:
        return repr(v)[:200]
    if isinstance(v, dict):
        return {str(k): _jsonable(x, depth + 1) for k, x in list(v.items())[:200]}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x, depth + 1) for x in v[:200]]
    if dataclasses.is_dataclass(v) and not isinstance(v, type):
        return _jsonable(dataclasses.asdict(v), depth + 1)
    if hasattr(v, "__dict__"):
        return _jsonable({k: x for k, x in vars(v).items() if not k.startswith("_")}, depth + 1)
    return repr(v)[:200]


def kernel_stats(f) -> dict:
    """Whatever the compiled function exposes as ``f.stats`` / ``f.kernels`` (both optional)."""
    out: dict = {}
    for attr in ("stats", "kernels"):
        try:
            v = getattr(f, attr)
        except Exception:
            continue
        if callable(v) and not isinstance(v, (list, tuple, dict)):
            try:
                v = v()
            except Exception:
                continue
        if attr == "kernels":
            try:
                out["n_kernels"] = len(v)
            except TypeError:
                pass
            try:
                out["kernels"] = [getattr(k, "name", None) or repr(k)[:80] for k in list(v)[:64]]
            except TypeError:
                pass
        else:
            out["stats"] = _jsonable(v)
    for attr in ("compile_seconds", "compile_detail", "cache_hit"):   # optional extras
        if hasattr(f, attr):
            out[attr] = _jsonable(getattr(f, attr))
    stats = out.get("stats")
    if isinstance(stats, dict):                       # surface the headline numbers if present
        for key, val in stats.items():
            k = key.lower()
            if isinstance(val, (int, float)) and any(s in k for s in ("kernel", "flop", "byte")):
                out.setdefault("headline", {})[key] = val
    return out


def _prepare(backend: str, wl, data, threads: int) -> Prepared:
    os.environ.setdefault("SYMDIFF_NUM_THREADS", str(threads))
    try:
        import symdiff as sd
    except Exception as e:
        raise Skip(f"import symdiff failed: {type(e).__name__}: {e}") from e
    missing = [a for a in ("input", "param", "grad", "compile") if not hasattr(sd, a)]
    if missing:
        raise Skip(f"symdiff has no {', '.join('sd.' + m for m in missing)} yet")

    times: dict[str, float] = {}
    stage = "build"
    try:
        t0 = time.perf_counter()
        loss, wrt, info = workloads.build_symdiff(wl, sd)
        t1 = time.perf_counter()
        stage = "grad"
        grads = sd.grad(loss, wrt)
        t2 = time.perf_counter()
        outs = [loss, *grads]
        stage = f"compile(backend={backend!r})"
        f = sd.compile(outs, backend=backend)
        t3 = time.perf_counter()
        stage = "second compile"
        f2 = sd.compile(outs, backend=backend)
        t4 = time.perf_counter()
        times.update(build=t1 - t0, grad=t2 - t1, compile=t3 - t2, cached=t4 - t3)
    except Exception as e:
        tb = traceback.format_exc(limit=4).strip().splitlines()[-3:]
        raise Skip(f"{stage} failed: {type(e).__name__}: {e} | " + " / ".join(tb)) from e

    try:                                              # optional: cache keyed on structure?
        loss_b, wrt_b, _ = workloads.build_symdiff(wl, sd)
        outs_b = [loss_b, *sd.grad(loss_b, wrt_b)]
        t5 = time.perf_counter()
        sd.compile(outs_b, backend=backend)
        times["rebuilt"] = time.perf_counter() - t5
    except Exception as e:
        info["rebuilt_error"] = f"{type(e).__name__}: {e}"[:300]
    del f2

    info["version"] = f"symdiff {getattr(sd, '__version__', '?')}"
    info["backend"] = backend
    info.update(kernel_stats(f))
    feeds = {k: v for k, v in data.items()}
    return Prepared(call=lambda: f(**feeds), to_numpy=outputs_list, compile=times, info=info)


def prepare_llvm(wl, data, threads: int) -> Prepared:
    return _prepare("llvm", wl, data, threads)


def prepare_numpy(wl, data, threads: int) -> Prepared:
    return _prepare("numpy", wl, data, threads)
