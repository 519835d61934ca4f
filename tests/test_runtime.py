"""Tests for the kernel runtime: symdiff.codegen.runtime.native (Kernel, Pool, sd_parallel_for) and
symdiff.codegen.runtime.kernel (helpers). Call errors are worded by symdiff.signature.Signature.

Kernels under test are tiny C functions compiled with gcc at test time (and one
llvmlite-JIT function). The call and dispatch overheads are timed by a script, not here:
    python benchmarks/runtime_overhead.py
"""
from __future__ import annotations

import ctypes
import gc
import os
import shutil
import subprocess
import threading
import time
import weakref
from pathlib import Path

import numpy as np
import pytest

from symdiff.codegen.runtime import kernel as runtime
from runtime_support import *  # noqa: F401,F403  (C kernels, fixtures: clib, impl, xy, ...)


# ----------------------------------------------------------------------------- basics


def test_extension_built():
    from symdiff.codegen.runtime import native

    assert runtime.Kernel is native.Kernel and runtime.Pool is native.Pool


def test_symbol_addresses():
    syms = runtime.runtime_symbols()
    for name in ("sd_parallel_for", "sd_pool_num_threads", "sd_pool_create", "sd_pool_destroy"):
        assert isinstance(syms[name], int) and syms[name] != 0
    assert runtime.register_llvm_symbols() == syms


def test_default_num_threads(monkeypatch):
    from symdiff.codegen.runtime import native

    monkeypatch.delenv("SYMDIFF_NUM_THREADS", raising=False)
    expect = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    assert runtime.default_num_threads() == expect == native.default_num_threads()
    assert runtime.make_pool().nthreads == expect
    monkeypatch.setenv("SYMDIFF_NUM_THREADS", "3")
    assert runtime.default_num_threads() == 3 == native.default_num_threads()
    assert runtime.make_pool().nthreads == 3
    assert runtime.Pool(0).nthreads == 3
    assert runtime.make_pool(1).nthreads == 1
    for bad in ("0", "-2", "two"):
        monkeypatch.setenv("SYMDIFF_NUM_THREADS", bad)
        with pytest.raises(ValueError, match="SYMDIFF_NUM_THREADS"):
            runtime.default_num_threads()
    with pytest.raises(ValueError):
        runtime.make_pool(0)


def test_pool_object():
    p = runtime.Pool(3)
    assert p.nthreads == 3 and p.address != 0 and not p.closed
    assert "nthreads=3" in repr(p)
    p.set_spin_us(0)
    p.close()
    assert p.closed and p.address == 0
    p.close()  # idempotent
    with runtime.Pool(2) as q:
        assert not q.closed
    assert q.closed
    with pytest.raises(ValueError):
        runtime.Pool(-1)
    r = weakref.ref(runtime.Pool(2))
    gc.collect()
    assert r() is None  # collected -> workers joined, no hang


# ------------------------------------------------------------------ sd_parallel_for


@pytest.mark.parametrize("nthreads", [1, 2, 3, 4, 7])
def test_parallel_for_covers_range_once(clib, nthreads):
    pool = runtime.Pool(nthreads)
    for spin in (50, 0):
        pool.set_spin_us(spin)
        for n in (0, 1, 2, 3, 5, 7, 8, 64, 1000, 100003):
            hits = np.zeros(max(n, 1), np.int32)
            pool.parallel_for(addr(clib, "hits_task"), hits.ctypes.data, n)
            assert (hits[:n] == 1).all(), (nthreads, n)
            rec = np.zeros(1 + 2 * 64, np.int64)
            pool.parallel_for(addr(clib, "chunk_task"), rec.ctypes.data, n)
            count = int(rec[0])
            expect = 0 if n <= 0 else (1 if n == 1 else min(n, nthreads))
            assert count == expect, (nthreads, n, count)
            if count:
                chunks = sorted(zip(rec[1:1 + 2 * count:2], rec[2:2 + 2 * count:2]))
                assert chunks[0][0] == 0 and chunks[-1][1] == n
                assert all(a[1] == b[0] for a, b in zip(chunks, chunks[1:]))  # contiguous
                sizes = [e - b for b, e in chunks]
                assert max(sizes) - min(sizes) <= 1 and min(sizes) >= 1  # balanced


def test_parallel_for_null_pool_is_serial(clib):
    # a kernel with pool=None gets NULL and sd_parallel_for runs fn(ctx, 0, n) directly
    K = runtime.Kernel(addr(clib, "k_par"), None, [("x", (20000,), "float64")],
                       [("o", (20000,), "float64")])
    x = np.random.default_rng(0).random(20000)
    ref = runtime.Kernel(addr(clib, "k_par"), runtime.Pool(3), [("x", (20000,), "float64")],
                         [("o", (20000,), "float64")])(x)[0]
    np.testing.assert_array_equal(K(x)[0], ref)


@pytest.mark.parametrize("nthreads", [1, 2, 4])
def test_nested_parallel_for_runs_serially(clib, nthreads):
    pool = runtime.Pool(nthreads)
    for n, m in ((1, 5), (2, 7), (5, 3), (16, 16), (3, 1)):
        hits = np.zeros(n * m, np.int32)
        full = clib.run_nested(pool.address, hits.ctypes.data, n, m)
        assert (hits == 1).all()
        if n >= 2:  # (n == 1 runs directly, holding no pool: its inner loop may go parallel)
            assert full == n  # every inner loop ran as a single serial chunk (no deadlock)
        elif nthreads > 1 and m > 1:
            assert full == 0


_STEER_PROBE = """
import json, os, threading
import numpy as np
import symdiff as sd
a, b = sd.input("a", (64, 256)), sd.input("b", (256, 256))
f = sd.compile(a @ b, "llvm", num_threads=2, cache=False)
A, B = np.ones((64, 256), np.float32), np.ones((256, 256), np.float32)
for _ in range(20):
    out = f(a=A, b=B)
assert float(out[0, 0]) == 256.0
main = threading.get_native_id()
print(json.dumps({"allowed": sorted(os.sched_getaffinity(0)),
                  "others": [sorted(os.sched_getaffinity(int(t))) for t in os.listdir("/proc/self/task")
                             if int(t) != main]}))
"""


@pytest.mark.skipif(not hasattr(os, "sched_getaffinity") or len(os.sched_getaffinity(0)) < 2,
                    reason="needs Linux CPU masks and 2+ CPUs")
@pytest.mark.parametrize("steer", ["1", "0"])
def test_workers_are_kept_off_the_dispatchers_cpu(steer):
    """sd_pool.c's sd_steer: a dispatch sets each worker's CPU mask to the pool's CPUs minus the
    dispatcher's current CPU; with SYMDIFF_WORKER_AFFINITY=0 no mask is touched (fresh process)."""
    import json
    import sys
    env = {**os.environ, "SYMDIFF_WORKER_AFFINITY": steer, "SYMDIFF_NUM_THREADS": "2"}
    out = subprocess.run([sys.executable, "-c", _STEER_PROBE], env=env, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    allowed = set(got["allowed"])
    steered = [m for m in got["others"] if set(m) < allowed and len(m) == len(allowed) - 1]
    if steer == "1":
        assert len(steered) == 1  # the pool's one worker
    else:
        assert not steered and all(set(m) == allowed for m in got["others"])


def test_worker_stacks_are_large(clib):
    pool = runtime.Pool(2)
    pool.set_spin_us(0)
    started = np.zeros(1, np.int32)
    pool.parallel_for(addr(clib, "bigstack_task"), started.ctypes.data, 2)  # 6 MiB alloca
    assert started[0] == 2


def test_pool_after_fork(clib):
    if not hasattr(os, "fork"):
        pytest.skip("no fork")
    pool = runtime.Pool(2)
    hits = np.zeros(100, np.int32)
    pool.parallel_for(addr(clib, "hits_task"), hits.ctypes.data, 100)  # workers started
    pid = os.fork()
    if pid == 0:  # child: the workers do not exist here; must run serially, not hang
        code = 1
        try:
            h = np.zeros(1000, np.int32)
            pool.parallel_for(addr(clib, "hits_task"), h.ctypes.data, 1000)
            code = 0 if (h == 1).all() else 2
            pool.close()
        finally:
            os._exit(code)
    deadline = time.monotonic() + 30
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            pytest.fail("sd_parallel_for hung in a forked child")
        time.sleep(0.01)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
    hits[:] = 0
    pool.parallel_for(addr(clib, "hits_task"), hits.ctypes.data, 100)
    assert (hits == 1).all()


def test_standalone_shared_library(tmp_path):
    """sd_pool.c builds on its own into an exported .so that a plain C program uses."""
    cc = cc_path()
    lib = tmp_path / "libsd_pool.so"
    subprocess.run([cc, "-O2", "-std=c11", "-Wall", "-Wextra", "-Werror", "-fPIC", "-shared",
                    "-fvisibility=hidden", "-pthread", str(CODEGEN_DIR / "sd_pool.c"), "-o", str(lib)],
                   check=True)
    main = tmp_path / "main.c"
    main.write_text(r"""
#include "sd_pool.h"
#include <stdio.h>
#include <stdlib.h>
static void body(void *c, int64_t b, int64_t e) { int *h = c; for (int64_t i = b; i < e; i++) __atomic_fetch_add(&h[i], 1, __ATOMIC_SEQ_CST); }
typedef struct { sd_pool *p; int *h; } nc;
static void nested(void *c, int64_t b, int64_t e) { nc *x = c; for (int64_t i = b; i < e; i++) sd_parallel_for(x->p, body, x->h + 10 * i, 10); }
int main(void) {
    for (int t = 0; t <= 4; t++) {
        sd_pool *p = sd_pool_create(t);
        if (!p) return 3;
        for (int n = 0; n < 300; n++) {
            int *h = calloc(n * 10 + 1, sizeof *h);
            sd_parallel_for(p, body, h, n);
            for (int i = 0; i < n; i++) if (h[i] != 1) return 1;
            for (int i = 0; i < n; i++) h[i] = 0;
            nc c = {p, h}; sd_parallel_for(p, nested, &c, n);
            for (int i = 0; i < n * 10; i++) if (h[i] != 1) return 2;
            free(h);
        }
        sd_pool_destroy(p);
    }
    sd_parallel_for(NULL, body, (int[4]){0}, 4);
    puts("standalone ok");
    return 0;
}
""")
    exe = tmp_path / "main"
    subprocess.run([cc, "-O2", "-std=c11", f"-I{CODEGEN_DIR}", str(main), f"-L{tmp_path}", "-lsd_pool",
                    f"-Wl,-rpath,{tmp_path}", "-pthread", "-o", str(exe)], check=True)
    out = subprocess.run([str(exe)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "standalone ok" in out.stdout


# --------------------------------------------------------------------------- llvmlite JIT


def _jit_module():
    from symdiff.codegen.llvm import jit as llvm_jit

    n = 1000
    text = f"""
target triple = "{llvm_jit.host_triple()}"
declare void @sd_parallel_for(ptr, ptr, ptr, i64)

define internal void @body(ptr %ctx, i64 %b, i64 %e) {{
entry:
  %x = load ptr, ptr %ctx
  %yp = getelementptr ptr, ptr %ctx, i64 1
  %y = load ptr, ptr %yp
  %op = getelementptr ptr, ptr %ctx, i64 2
  %o = load ptr, ptr %op
  %c = icmp slt i64 %b, %e
  br i1 %c, label %loop, label %exit
loop:
  %i = phi i64 [ %b, %entry ], [ %i.next, %loop ]
  %xa = getelementptr double, ptr %x, i64 %i
  %xv = load double, ptr %xa
  %ya = getelementptr double, ptr %y, i64 %i
  %yv = load double, ptr %ya
  %t = fmul double %xv, 2.0
  %r = fadd double %t, %yv
  %oa = getelementptr double, ptr %o, i64 %i
  store double %r, ptr %oa
  %i.next = add i64 %i, 1
  %d = icmp slt i64 %i.next, %e
  br i1 %d, label %loop, label %exit
exit:
  ret void
}}

define void @entry(ptr %args, ptr %pool) {{
  call void @sd_parallel_for(ptr %pool, ptr @body, ptr %args, i64 {n})
  ret void
}}
"""
    return llvm_jit.JitModule(text, symbols=runtime.runtime_symbols()), n


def test_llvmlite_jit_kernel_with_pool():
    jit, n = _jit_module()
    pool = runtime.make_pool(2)
    k = runtime.jit_kernel(jit, "entry", [("x", (n,), "float64"), ("y", (n,), "float64")],
                           [("o", (n,), "float64")], pool=pool, returns="single")
    assert k.owner is jit and k.name == "entry"
    rng = np.random.default_rng(2)
    x, y = rng.random(n), rng.random(n)
    np.testing.assert_array_equal(k(x, y), 2 * x + y)
    np.testing.assert_array_equal(k(x.astype(np.float32), y), 2 * x.astype(np.float32) + y)
    serial = runtime.Kernel(jit.address("entry"), None, k.input_specs, k.output_specs, owner=jit)
    np.testing.assert_array_equal(serial(x, y)[0], 2 * x + y)


# ------------------------------------------------------------------------------ dispatch


@pytest.mark.parametrize("spin", [50, 0], ids=["hot", "cold"])
def test_parallel_for_waits_for_every_chunk(clib, spin):
    """sd_parallel_for returns only when its slowest chunk has finished, whether the workers spin or
    sleep: n indices that busy-wait w us each, split into min(n, threads) balanced chunks, take at least
    ceil(n / threads) * w per dispatch on a pool and n * w on the NULL pool (one chunk). (The dispatch
    *cost* is reported by benchmarks/runtime_overhead.py, not asserted.)"""
    pool = runtime.Pool(2)
    pool.set_spin_us(spin)
    work, iters = 20.0, 50
    for n in (1, 2, 5):
        for p, longest in ((pool.address, -(-n // 2)), (None, n)):
            t = np.zeros(iters)
            clib.bench_dispatch(p, iters, work, n, t.ctypes.data)
            assert t.min() >= 0.99 * longest * work, (n, p, t.min())
    pool.close()


_HUGE_PROBE = """
import json, numpy as np, symdiff as sd
x, y = sd.input("x", (1024, 1024)), sd.input("y", (1024, 8))
f = sd.compile(sd.sum(sd.exp(x) @ y, axis=0), "llvm", cache=False)  # exp(x): a 4 MiB temporary
rng = np.random.default_rng(0)
a, b = rng.standard_normal((1024, 1024), dtype=np.float32) * 0.1, rng.standard_normal((1024, 8), dtype=np.float32)
got = [f(x=a, y=b) for _ in range(3)][-1]
ref = (np.exp(a.astype(np.float64)) @ b).sum(axis=0)
print(json.dumps({"ws": int(f.program.workspace_bytes), "err": float(np.max(np.abs(got - ref)) / np.max(np.abs(ref)))}))
"""


@pytest.mark.parametrize("huge", ["1", "0"])
def test_large_workspaces_with_and_without_huge_pages(huge):
    """runtime_kernel.c's ws_alloc: a workspace of 4 MiB or more is 2 MiB aligned and advised as huge pages
    (SYMDIFF_HUGE_PAGES=0: plain 64-byte aligned); either way the program computes the same (fresh process:
    the setting is read once)."""
    import json
    import sys
    out = subprocess.run([sys.executable, "-c", _HUGE_PROBE], env={**os.environ, "SYMDIFF_HUGE_PAGES": huge},
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["ws"] >= 4 << 20  # (the huge-page path is the one taken)
    assert got["err"] < 1e-5
