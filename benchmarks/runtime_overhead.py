"""Runtime call overhead (not a test): per-call cost of an 8-input no-op kernel through
``symdiff.codegen.runtime`` (``Kernel``: positional, keywords, ``**dict``, casting copies, GIL kept)
against a plain ctypes call, and the dispatch cost of ``sd_parallel_for`` on a 2-thread pool (serial,
workers spinning, workers asleep)::

    python benchmarks/runtime_overhead.py

Medians; numbers depend on the machine and on its load. ``tests/test_runtime.py`` checks the behaviour
(``test_parallel_for_waits_for_every_chunk`` uses the same dispatch loop).
"""
from __future__ import annotations

import ctypes
import shutil
import statistics
import subprocess
import sys
import tempfile
import timeit
from pathlib import Path

import numpy as np

from symdiff.codegen.runtime import kernel as runtime

C_SOURCE = r"""
#include <stdint.h>
#include <string.h>
#include <time.h>

typedef void (*task_fn)(void *, int64_t, int64_t);
typedef void (*pfor_fn)(void *, task_fn, void *, int64_t);
static pfor_fn g_pfor;                 /* resolved like JIT code: from runtime_symbols() */
void set_pfor(void *p) { memcpy(&g_pfor, &p, sizeof p); }
static double now_s(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + 1e-9 * t.tv_nsec; }

/* no-op entry: any inputs/outputs */
void k_noop(void **a, void *pool) { (void)a; (void)pool; }

/* times[i] = microseconds of the i-th sd_parallel_for(pool, spin(work_us per index), n) */
static void spin_task(void *c, int64_t b, int64_t e) { double us = *(double *)c * (double)(e - b); if (us <= 0) return; double t0 = now_s(); while ((now_s() - t0) * 1e6 < us) {} }
void bench_dispatch(void *pool, int64_t iters, double work_us, int64_t n, double *times) {
    for (int64_t i = 0; i < iters; i++) { double t0 = now_s(); g_pfor(pool, spin_task, &work_us, n); times[i] = (now_s() - t0) * 1e6; }
}
"""


def build(directory: Path) -> ctypes.CDLL:
    """Compile ``C_SOURCE`` into a shared library and bind ``sd_parallel_for``."""
    src, so = directory / "k.c", directory / "libk.so"
    src.write_text(C_SOURCE)
    subprocess.run([shutil.which("gcc") or "cc", "-O2", "-shared", "-fPIC", "-pthread", str(src), "-o", str(so)],
                   check=True)
    lib = ctypes.CDLL(str(so))
    lib.set_pfor.argtypes = [ctypes.c_void_p]
    lib.set_pfor(runtime.runtime_symbols()["sd_parallel_for"])
    lib.bench_dispatch.argtypes = [ctypes.c_void_p, ctypes.c_int64, ctypes.c_double, ctypes.c_int64,
                                   ctypes.c_void_p]
    return lib


def addr(lib, name: str) -> int:
    """The address of a function of ``lib``."""
    return ctypes.cast(getattr(lib, name), ctypes.c_void_p).value


def median_us(fn, number: int, repeat: int = 7) -> float:
    """Median microseconds per call of `fn` over `repeat` runs of `number` calls."""
    return statistics.median(timeit.repeat(fn, number=number, repeat=repeat)) / number * 1e6


def overhead_report(lib) -> str:
    """Per-call overhead (medians) of an 8-input no-op kernel vs plain ctypes, and
    sd_parallel_for dispatch cost.  Printed, never asserted."""
    lines = []
    noop = addr(lib, "k_noop")
    pool = runtime.Pool(2)
    specs = [(f"x{i}", (16,), "float32") for i in range(8)]
    arrs = [np.ones(16, np.float32) for _ in range(8)]
    k = runtime.Kernel(noop, pool, specs, [("out", (16,), "float32")])
    k_nogil = runtime.Kernel(noop, pool, specs, [("out", (16,), "float32")], release_gil=False)
    k_kw = {s[0]: a for s, a in zip(specs, arrs)}
    k_cast = [a.astype(np.float64) for a in arrs]
    cfn = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p)(noop)
    buf = (ctypes.c_void_p * 9)()
    vp9 = ctypes.c_void_p * 9

    def ctypes_unboxing():
        out = np.empty(16, np.float32)
        cfn(vp9(*[a.ctypes.data for a in arrs], out.ctypes.data), None)
        return out

    n = 100_000
    rows = [
        ("Kernel(*8 arrays) -> 1 output, GIL released", lambda: k(*arrs), n),
        ("Kernel(*8 arrays), release_gil=False", lambda: k_nogil(*arrs), n),
        ("Kernel(x0=.., ..., x7=..) literal keywords",
         lambda: k(x0=arrs[0], x1=arrs[1], x2=arrs[2], x3=arrs[3], x4=arrs[4], x5=arrs[5],
                   x6=arrs[6], x7=arrs[7]), n),
        ("Kernel(**dict of 8 arrays)", lambda: k(**k_kw), n),
        ("Kernel(*8 float64 arrays) (cast copies)", lambda: k(*k_cast), n // 10),
        ("plain ctypes call, prebuilt void*[9]", lambda: cfn(buf, None), n),
        ("ctypes + arr.ctypes.data unboxing + np.empty", ctypes_unboxing, n // 10),
    ]
    for label, fn, number in rows:
        lines.append(f"  {label:<48s} {median_us(fn, number):7.3f} us")
    lines.append("  sd_parallel_for(n=2) on a 2-thread pool, each index busy-waits `chunk` us "
                 "(ideal = chunk);\n  per-dispatch median / p90 us; serial = NULL pool (2 chunks "
                 "in a row); hot = workers spinning, cold = asleep:")

    def dist(p, iters, work):
        t = np.zeros(iters)
        lib.bench_dispatch(p, iters, work, 2, t.ctypes.data)
        return f"{np.median(t):7.2f} / {np.percentile(t, 90):7.2f}"

    for work in (0.0, 5.0, 50.0):
        iters = 20000 if work < 10 else 4000
        row = [f"    chunk={work:3.0f}: serial {dist(None, iters, work)}"]
        for spin, label in ((50, "hot"), (0, "cold")):
            pool.set_spin_us(spin)
            row.append(f"{label} {dist(pool.address, iters, work)}")
        lines.append(", ".join(row))
    pool.set_spin_us(50)
    return "\n".join(lines)


def main() -> int:
    """Build the probe library in a temporary folder and print the report."""
    with tempfile.TemporaryDirectory() as d:
        print("[runtime overhead, medians]\n" + overhead_report(build(Path(d))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
