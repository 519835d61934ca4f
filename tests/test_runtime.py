"""Tests for the kernel runtime: symdiff.codegen.runtime._runtime (Kernel, Pool, sd_parallel_for) and
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

CODEGEN_DIR = Path(runtime.__file__).resolve().parent

C_SOURCE = r"""
#include <stdint.h>
#include <string.h>
#include <time.h>
#include <pthread.h>

typedef void (*task_fn)(void *, int64_t, int64_t);
typedef void (*pfor_fn)(void *, task_fn, void *, int64_t);
static pfor_fn g_pfor;                 /* resolved like JIT code: from symbol_addresses() */
void set_pfor(void *p) { memcpy(&g_pfor, &p, sizeof p); }

static double now_s(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + 1e-9 * t.tv_nsec; }

/* x, y: float32[2,3] -> o = 2x + y (float32[2,3]), s = sum(x) (float64 scalar) */
void k_axpy(void **a, void *pool) {
    const float *x = a[0], *y = a[1]; float *o = a[2]; double *s = a[3]; double acc = 0;
    (void)pool;
    for (int i = 0; i < 6; i++) { o[i] = 2 * x[i] + y[i]; acc += x[i]; }
    *s = acc;
}

/* logits float64[4,3], labels int64[4] (or int32) -> out float64[4] = logits[i, labels[i]] */
void k_pick64(void **a, void *pool) {
    const double *l = a[0]; const int64_t *y = a[1]; double *o = a[2]; (void)pool;
    for (int i = 0; i < 4; i++) o[i] = l[3 * i + y[i]];
}
void k_pick32(void **a, void *pool) {
    const double *l = a[0]; const int32_t *y = a[1]; double *o = a[2]; (void)pool;
    for (int i = 0; i < 4; i++) o[i] = l[3 * i + y[i]];
}

/* x float64[3] -> out int64[2] = {address of input 0, address of output 0} */
void k_ptrs(void **a, void *pool) { int64_t *o = a[1]; (void)pool; o[0] = (int64_t)(intptr_t)a[0]; o[1] = (int64_t)(intptr_t)a[1]; }

/* workspace after the outputs: x float64[64] -> out = 3x, through the workspace, with a
 * pause in between (concurrent calls sharing one workspace would corrupt each other);
 * out[0] gets +1000 if the workspace is not 64-byte aligned */
void k_ws(void **a, void *pool) {
    const double *x = a[0]; double *o = a[1]; double *ws = a[2]; (void)pool;
    for (int i = 0; i < 64; i++) ws[i] = 3 * x[i];
    double t0 = now_s(); while (now_s() - t0 < 50e-6) {}
    for (int i = 0; i < 64; i++) o[i] = ws[i];
    if ((uintptr_t)ws % 64) o[0] += 1000;
}
/* workspace_bytes=0: out[0] = (workspace pointer is NULL) */
void k_ws0(void **a, void *pool) { double *o = a[1]; (void)pool; o[0] = a[2] == 0; }

/* no-op entry: any inputs/outputs */
void k_noop(void **a, void *pool) { (void)a; (void)pool; }

/* 40 float64[1] inputs -> float64 scalar sum (more args than the on-stack buffer) */
void k_sum40(void **a, void *pool) { double s = 0; (void)pool; for (int i = 0; i < 40; i++) s += *(const double *)a[i]; *(double *)a[40] = s; }

/* parallel elementwise: x float64[N] -> out float64[N], out[i] = 64 steps of t = 0.999 t + x[i] */
#define PAR_N 20000
typedef struct { const double *x; double *o; } par_ctx;
static void par_task(void *c, int64_t b, int64_t e) {
    par_ctx *p = c;
    for (int64_t i = b; i < e; i++) { double t = 0; for (int j = 0; j < 64; j++) t = 0.999 * t + p->x[i]; p->o[i] = t; }
}
void k_par(void **a, void *pool) { par_ctx c = {a[0], a[1]}; g_pfor(pool, par_task, &c, PAR_N); }

/* rendezvous: proves the GIL is released -- waits (<= 2 s) until another call is inside */
static int g_inside, g_max;
void rendezvous_reset(void) { __atomic_store_n(&g_inside, 0, __ATOMIC_SEQ_CST); __atomic_store_n(&g_max, 0, __ATOMIC_SEQ_CST); }
int rendezvous_max(void) { return __atomic_load_n(&g_max, __ATOMIC_SEQ_CST); }
void k_rendezvous(void **a, void *pool) {
    const double *x = a[0]; double *o = a[1]; (void)pool;
    int now = __atomic_add_fetch(&g_inside, 1, __ATOMIC_SEQ_CST);
    int m = __atomic_load_n(&g_max, __ATOMIC_SEQ_CST);
    while (now > m && !__atomic_compare_exchange_n(&g_max, &m, now, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) {}
    double t0 = now_s();
    while (__atomic_load_n(&g_max, __ATOMIC_SEQ_CST) < 2 && now_s() - t0 < 2.0) {}
    o[0] = x[0] + 1;
    __atomic_sub_fetch(&g_inside, 1, __ATOMIC_SEQ_CST);
}

/* parallel_for tasks used directly through Pool.parallel_for */
void hits_task(void *c, int64_t b, int64_t e) { int32_t *h = c; for (int64_t i = b; i < e; i++) __atomic_fetch_add(&h[i], 1, __ATOMIC_SEQ_CST); }
/* ctx: int64[1 + 2*max]: count, then (begin, end) pairs */
void chunk_task(void *c, int64_t b, int64_t e) {
    int64_t *r = c; int64_t k = __atomic_fetch_add(&r[0], 1, __ATOMIC_SEQ_CST);
    r[1 + 2 * k] = b; r[2 + 2 * k] = e;
}
typedef struct { int32_t *row; int64_t m; int64_t *full; } inner_t;
static void inner_task(void *c, int64_t b, int64_t e) {
    inner_t *x = c;
    for (int64_t i = b; i < e; i++) __atomic_fetch_add(&x->row[i], 1, __ATOMIC_SEQ_CST);
    if (b == 0 && e == x->m) __atomic_fetch_add(x->full, 1, __ATOMIC_SEQ_CST);
}
typedef struct { void *pool; int32_t *hits; int64_t m; int64_t full; } outer_t;
static void outer_task(void *c, int64_t b, int64_t e) {
    outer_t *o = c;
    for (int64_t i = b; i < e; i++) { inner_t in = {o->hits + i * o->m, o->m, &o->full}; g_pfor(o->pool, inner_task, &in, o->m); }
}
/* returns how many inner loops ran as one serial chunk */
int64_t run_nested(void *pool, int32_t *hits, int64_t n, int64_t m) {
    outer_t o = {pool, hits, m, 0}; g_pfor(pool, outer_task, &o, n); return o.full;
}

/* each chunk touches 6 MiB of stack and waits (<= 2 s) for the other chunks to start,
 * so the workers really run chunks; ctx: int32 counter */
void bigstack_task(void *c, int64_t b, int64_t e) {
    volatile char buf[6 << 20];
    for (size_t i = 0; i < sizeof buf; i += 4096) buf[i] = (char)i;
    int *started = c; int parts = (int)(e - b); (void)parts;
    __atomic_add_fetch(started, 1, __ATOMIC_SEQ_CST);
    double t0 = now_s();
    while (__atomic_load_n(started, __ATOMIC_SEQ_CST) < 2 && now_s() - t0 < 2.0) {}
    buf[0] = buf[4096];
}

/* times[i] = microseconds of the i-th sd_parallel_for(pool, spin(work_us per chunk), n) */
static void spin_task(void *c, int64_t b, int64_t e) { double us = *(double *)c * (double)(e - b); if (us <= 0) return; double t0 = now_s(); while ((now_s() - t0) * 1e6 < us) {} }
void bench_dispatch(void *pool, int64_t iters, double work_us, int64_t n, double *times) {
    for (int64_t i = 0; i < iters; i++) { double t0 = now_s(); g_pfor(pool, spin_task, &work_us, n); times[i] = (now_s() - t0) * 1e6; }
}
"""


# ----------------------------------------------------------------------------- fixtures


def _cc() -> str:
    cc = os.environ.get("CC") or shutil.which("gcc") or shutil.which("cc")
    if not cc:
        pytest.skip("no C compiler")
    return cc


@pytest.fixture(scope="module")
def clib(tmp_path_factory):
    cc = _cc()
    d = tmp_path_factory.mktemp("rtlib")
    src = d / "k.c"
    src.write_text(C_SOURCE)
    so = d / "libk.so"
    subprocess.run([cc, "-O2", "-shared", "-fPIC", "-pthread", str(src), "-o", str(so)], check=True)
    lib = ctypes.CDLL(str(so))
    lib.set_pfor.argtypes = [ctypes.c_void_p]
    lib.set_pfor(runtime.runtime_symbols()["sd_parallel_for"])
    lib.run_nested.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64]
    lib.run_nested.restype = ctypes.c_int64
    lib.bench_dispatch.argtypes = [ctypes.c_void_p, ctypes.c_int64, ctypes.c_double, ctypes.c_int64,
                                   ctypes.c_void_p]
    lib.rendezvous_max.restype = ctypes.c_int
    return lib


def addr(lib, name: str) -> int:
    return ctypes.cast(getattr(lib, name), ctypes.c_void_p).value


@pytest.fixture
def impl():
    return runtime.Kernel, runtime.Pool


AXPY_IN = [("x", (2, 3), "float32"), ("y", (2, 3), np.float32)]
AXPY_OUT = [("o", (2, 3), "float32"), ("s", (), "float64")]
PICK_IN = [("logits", (4, 3), "float64"), ("labels", (4,), "int64", 3)]
PICK_OUT = [("out", (4,), "float64")]


def axpy_kernel(clib, impl, **kw):
    K, P = impl
    return K(addr(clib, "k_axpy"), None, AXPY_IN, AXPY_OUT, name="axpy", **kw)


def pick_kernel(clib, impl, dtype="int64", **kw):
    K, _ = impl
    fn = "k_pick64" if np.dtype(dtype).itemsize == 8 else "k_pick32"
    ins = [PICK_IN[0], ("labels", (4,), dtype, 3)]
    return K(addr(clib, fn), None, ins, PICK_OUT, name="pick", **kw)


def xy():
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    y = np.full((2, 3), 0.5, np.float32)
    return x, y


# ----------------------------------------------------------------------------- basics


def test_extension_built():
    from symdiff.codegen.runtime import _runtime

    assert runtime.Kernel is _runtime.Kernel and runtime.Pool is _runtime.Pool


def test_symbol_addresses():
    syms = runtime.runtime_symbols()
    for name in ("sd_parallel_for", "sd_pool_num_threads", "sd_pool_create", "sd_pool_destroy"):
        assert isinstance(syms[name], int) and syms[name] != 0
    assert runtime.register_llvm_symbols() == syms


def test_default_num_threads(monkeypatch):
    from symdiff.codegen.runtime import _runtime

    monkeypatch.delenv("SYMDIFF_NUM_THREADS", raising=False)
    expect = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    assert runtime.default_num_threads() == expect == _runtime.default_num_threads()
    assert runtime.make_pool().nthreads == expect
    monkeypatch.setenv("SYMDIFF_NUM_THREADS", "3")
    assert runtime.default_num_threads() == 3 == _runtime.default_num_threads()
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
    cc = _cc()
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


# ------------------------------------------------------------------ calling kernels


def test_call_basic(clib, impl):
    k = axpy_kernel(clib, impl)
    x, y = xy()
    o, s = k(x, y)
    np.testing.assert_array_equal(o, 2 * x + y)
    assert s.shape == () and s.dtype == np.float64 and float(s) == x.sum()
    o2, _ = k(y=y, x=x)
    o3, _ = k(x, y=y)
    np.testing.assert_array_equal(o2, o)
    np.testing.assert_array_equal(o3, o)
    assert k.input_names == ("x", "y") and k.output_names == ("o", "s")
    assert k.input_specs[0] == ("x", (2, 3), np.dtype("float32"), None)
    assert k.output_specs[1] == ("s", (), np.dtype("float64"))
    assert k.name == "axpy" and "axpy" in repr(k)


def test_returns_modes(clib, impl):
    K, _ = impl
    x, y = xy()
    d = axpy_kernel(clib, impl, returns="dict")(x, y)
    assert set(d) == {"o", "s"}
    np.testing.assert_array_equal(d["o"], 2 * x + y)
    single = K(addr(clib, "k_pick64"), None, PICK_IN, PICK_OUT, returns="single")
    logits = np.arange(12.0).reshape(4, 3)
    out = single(logits, np.array([0, 1, 2, 0]))
    assert isinstance(out, np.ndarray)
    np.testing.assert_array_equal(out, [0.0, 4.0, 8.0, 9.0])


def _err(k, *args, **kwargs):
    try:
        k(*args, **kwargs)
    except (TypeError, ValueError) as e:
        return e
    raise AssertionError("no error raised")


def test_argument_binding_errors(clib, impl):
    k = axpy_kernel(clib, impl)
    x, y = xy()
    e = _err(k, x)
    assert isinstance(e, TypeError) and "axpy(): takes 2 inputs ('x', 'y') but 1 positional was given" in str(e)
    assert isinstance(_err(k, x, y, y), TypeError)
    e = _err(k, x, z=y)
    assert isinstance(e, TypeError) and "unexpected input(s) 'z'" in str(e)
    e = _err(k, x, x=y)
    assert isinstance(e, TypeError) and "multiple values for input(s) 'x'" in str(e)
    e = _err(k, x=x)
    assert isinstance(e, TypeError) and "missing input(s) 'y'" in str(e)
    # the messages are Signature's: the same as the numpy backend's
    from symdiff.signature import Signature
    sig = Signature.from_specs(k.input_specs, "axpy")
    with pytest.raises(TypeError) as ref:
        sig.bind_call((x,), {})
    assert str(ref.value) == str(_err(k, x))


def test_signature_sees_only_calls_off_the_fast_path(clib):
    """Exact arrays never reach Python; one non-exact argument is converted by Signature.convert_input
    alone; a call C cannot bind goes whole to Signature.bind_call, whose error is the one raised."""
    from symdiff.signature import Signature

    class Recorder(Signature):
        def convert_input(self, i, value):
            calls.append(("convert_input", i))
            return super().convert_input(i, value)

        def bind_call(self, args, kwargs):
            calls.append(("bind_call", len(args), tuple(kwargs)))
            return super().bind_call(args, kwargs)

    calls: list = []
    sig = Recorder.from_specs([(n, shape, np.dtype(dt), None) for n, shape, dt in AXPY_IN], "axpy")
    k = runtime.Kernel(addr(clib, "k_axpy"), None, AXPY_IN, AXPY_OUT, name="axpy", signature=sig)
    assert k.signature is sig
    x, y = xy()
    ref = k(x, y)[0]
    k(x, y), k(y=y, x=x), k(x, y=y)
    assert calls == []
    np.testing.assert_array_equal(k(x.astype(np.float64), y)[0], ref)
    assert calls == [("convert_input", 0)]
    calls.clear()
    np.testing.assert_array_equal(k(x, y=y.tolist())[0], ref)
    assert calls == [("convert_input", 1)]
    calls.clear()
    with pytest.raises(TypeError, match=r"axpy\(\): missing input\(s\) 'y'"):
        k(x=x)
    assert calls == [("bind_call", 0, ("x",))]
    # without a signature= the Kernel builds one from its specs, with its name in the messages
    k2 = runtime.Kernel(addr(clib, "k_axpy"), None, AXPY_IN, AXPY_OUT, name="axpy2")
    assert k2.signature.names == ("x", "y") and k2.signature.prefix == "axpy2(): "


@pytest.mark.parametrize("case", ["none", "complex", "string", "object", "bytes", "shape", "ndim",
                                  "scalar", "ragged"])
def test_float_input_errors(clib, impl, case):
    k = axpy_kernel(clib, impl)
    x, y = xy()
    bad = {
        "none": None,
        "complex": x.astype(np.complex64),
        "string": np.array([["a", "b", "c"], ["d", "e", "f"]]),
        "object": np.array([[1.0, None, 2.0], [1.0, 2.0, 3.0]], dtype=object),
        "bytes": b"abcdef",
        "shape": np.zeros((3, 2), np.float32),
        "ndim": np.zeros(6, np.float32),
        "scalar": 1.0,
        "ragged": [[1.0, 2.0, 3.0], [1.0]],
    }[case]
    e = _err(k, bad, y)
    msg = str(e)
    assert "axpy()" in msg and "'x'" in msg, msg
    if case in ("shape", "ndim", "scalar"):
        assert isinstance(e, ValueError)
        got = np.shape(bad)
        assert f"expected shape (2, 3), got {got}" in msg
    else:
        assert isinstance(e, TypeError)
    if case == "complex":
        assert "complex64" in msg and "float32" in msg
    if case == "none":
        assert "got NoneType" in msg and "float32[2, 3]" in msg
    if case == "string":
        assert "<U1" in msg
    if case == "object":
        assert "object" in msg
    if case == "ragged":
        assert "cannot convert list" in msg


@pytest.mark.parametrize("dtype", ["int64", "int32"])
def test_label_errors(clib, impl, dtype):
    k = pick_kernel(clib, impl, dtype)
    logits = np.arange(12.0).reshape(4, 3)
    e = _err(k, logits, np.array([0.0, 1.0, 2.0, 0.0]))
    assert isinstance(e, TypeError) and "'labels'" in str(e) and "float64" in str(e)
    assert "integer" in str(e)
    e = _err(k, logits, np.array([True, False, True, False]))
    assert isinstance(e, TypeError) and "bool" in str(e)
    e = _err(k, logits, np.array([0, 1, 3, 0]))
    assert isinstance(e, ValueError)
    assert "pick(): input 'labels': label 3 is out of range [0, 3)" in str(e)
    e = _err(k, logits, np.array([0, -1, 1, 0], dtype=np.int8))  # via the cast path
    assert isinstance(e, ValueError) and "label -1 is out of range [0, 3)" in str(e)
    e = _err(k, logits, np.array([0, 1, 2, 2**40]))  # would wrap to 0 in int32
    assert isinstance(e, ValueError) and str(2**40) in str(e)
    e = _err(k, logits, np.array([0, 1, 2, 2**63 + 5], dtype=np.uint64))
    assert isinstance(e, ValueError) and str(2**63 + 5) in str(e)
    e = _err(k, logits, np.array([0, 1, 2]))
    assert isinstance(e, ValueError) and "expected shape (4,), got (3,)" in str(e)


def test_int_overflow_without_range(clib, impl):
    K, _ = impl
    k = K(addr(clib, "k_noop"), None, [("i", (3,), "int32")], [("o", (1,), "float64")], name="f")
    k(np.array([1, 2, 3], dtype=np.int64))
    e = _err(k, np.array([1, 2**31, 3], dtype=np.int64))
    assert isinstance(e, ValueError) and "f(): input 'i': value 2147483648 does not fit in int32" in str(e)


@pytest.mark.parametrize("dtype", ["int64", "int32"])
def test_label_conversions(clib, impl, dtype):
    k = pick_kernel(clib, impl, dtype)
    logits = np.arange(12.0).reshape(4, 3)
    expect = np.array([0.0, 4.0, 8.0, 9.0])
    base = np.array([0, 1, 2, 0])
    for lab in (base.astype(np.int64), base.astype(np.int32), base.astype(np.uint8),
                base.astype(np.int16), base.astype(">i8"), base.astype(np.longlong),
                np.repeat(base, 2)[::2], base[::-1][::-1].copy()[::-1][::-1], [0, 1, 2, 0]):
        before = np.array(lab, copy=True)
        np.testing.assert_array_equal(k(logits, lab)[0], expect)
        np.testing.assert_array_equal(np.asarray(lab), before)  # unmodified
    np.testing.assert_array_equal(k(np.asfortranarray(logits), base)[0], expect)
    np.testing.assert_array_equal(k(logits.astype(np.float32), base)[0], expect)


def test_float_conversions(clib, impl):
    k = axpy_kernel(clib, impl)
    x, y = xy()
    ref_o, ref_s = k(x, y)
    big = np.zeros((4, 6), np.float64)
    big[::2, ::2] = x
    variants = {
        "float64": x.astype(np.float64),
        "float16": x.astype(np.float16),
        "int64": x.astype(np.int64),
        "uint8": x.astype(np.uint8),
        "fortran": np.asfortranarray(x),
        "transposed": np.ascontiguousarray(x.T).T,
        "strided": big[::2, ::2],
        "negative strides": np.ascontiguousarray(x[::-1, ::-1])[::-1, ::-1],
        "byteswapped": x.astype(">f4"),
        "list": x.tolist(),
        "readonly": np.frombuffer(x.tobytes(), np.float32).reshape(2, 3),
    }
    for name, v in variants.items():
        before = np.array(v, copy=True)
        o, s = k(v, y)
        np.testing.assert_array_equal(o, ref_o, err_msg=name)
        assert float(s) == float(ref_s), name
        np.testing.assert_array_equal(np.asarray(v), before, err_msg=name)  # inputs unmodified
    raw = np.zeros(6 * 4 + 1, np.uint8)
    unaligned = raw[1:].view(np.float32).reshape(2, 3)
    unaligned[...] = x
    assert not unaligned.flags.aligned
    np.testing.assert_array_equal(k(unaligned, y)[0], ref_o)
    # bool data is rejected, as by the numpy backend (a mask passed by mistake is an error, not 0/1)
    m = np.array([[True, False, True], [False, True, False]])
    with pytest.raises(TypeError, match="bool"):
        k(m, y)
    # 0-d float input from Python scalars / numpy scalars
    K, _ = impl
    k0 = K(addr(clib, "k_rendezvous"), None, [("x", (), "float64")], [("o", (), "float64")])
    clib.rendezvous_reset()
    for v in (1.5, np.float32(1.5), np.array(1.5), 3):
        assert float(k0(v)[0]) == float(v) + 1


def test_zero_copy_fast_path_and_copies(clib):
    k = runtime.Kernel(addr(clib, "k_ptrs"), None, [("x", (3,), "float64")], [("o", (2,), "int64")])
    x = np.arange(3.0)
    (p,) = k(x)
    assert p[0] == x.ctypes.data  # exact match: passed without a copy
    assert p[1] != x.ctypes.data
    xs = np.arange(6.0)[::2]
    (p,) = k(xs)
    assert p[0] != xs.ctypes.data  # non-contiguous: copied
    (p,) = k(np.arange(3, dtype=np.float32))
    assert p[0] != 0


def test_outputs_are_fresh(clib, impl):
    k = axpy_kernel(clib, impl)
    x, y = xy()
    o1, s1 = k(x, y)
    o2, s2 = k(x, y)
    for a in (o1, s1, o2, s2):
        assert a.flags.c_contiguous and a.flags.writeable and a.flags.owndata and a.base is None
    assert o1.dtype == np.float32 and o1.shape == (2, 3) and s1.shape == ()
    arrays = [x, y, o1, s1, o2, s2]
    for i, a in enumerate(arrays):
        for b in arrays[i + 1:]:
            assert not np.shares_memory(a, b)
    o1[...] = -1
    np.testing.assert_array_equal(o2, 2 * x + y)


def test_zero_outputs(clib, impl):
    K, _ = impl
    k = K(addr(clib, "k_noop"), None, [("x", (3,), "float64")],
          [("o", (1000,), "float64"), ("c", (2,), "complex128"), ("b", (), "bool")], zero_outputs=True)
    for _ in range(3):
        o, c, b = k(np.zeros(3))
        assert (o == 0).all() and (c == 0).all() and not b and b.dtype == np.bool_


def test_many_inputs_heap_path(clib, impl):
    K, _ = impl
    n = 40
    k = K(addr(clib, "k_sum40"), None, [(f"a{i}", (1,), "float64") for i in range(n)],
          [("s", (), "float64")], returns="single")
    vals = [np.array([float(i)]) for i in range(n)]
    assert float(k(*vals)) == sum(range(n))
    assert float(k(**{f"a{i}": v for i, v in enumerate(vals)})) == sum(range(n))
    e = _err(k, *vals[:-1], None)
    assert "input 'a39': expected a numeric array float64[1], got NoneType" in str(e)


def test_workspace_slot(clib, impl):
    K, _ = impl
    ins, outs = [("x", (64,), "float64")], [("o", (64,), "float64")]
    k = K(addr(clib, "k_ws"), None, ins, outs, workspace_bytes=64 * 8, returns="single")
    assert k.workspace_bytes == 512
    x = np.arange(64.0)
    for _ in range(3):
        np.testing.assert_array_equal(k(x), 3 * x)
    k0 = K(addr(clib, "k_ws0"), None, ins, outs, workspace_bytes=0, returns="single")
    assert k0(x)[0] == 1.0
    with pytest.raises(ValueError, match="workspace_bytes"):
        K(addr(clib, "k_ws"), None, ins, outs, workspace_bytes=-1)
    # concurrent calls never share a workspace
    xs = [np.full(64, float(i)) for i in range(6)]
    bad: list = []

    def worker(t):
        for it in range(40):
            i = (t + it) % 6
            if not np.array_equal(k(xs[i]), 3 * xs[i]):
                bad.append((t, it))

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not bad


def test_spec_errors(clib, impl):
    K, P = impl
    a = addr(clib, "k_noop")
    out = [("o", (1,), "float64")]
    with pytest.raises(ValueError, match="non-zero function address"):
        K(0, None, [], out)
    with pytest.raises(TypeError, match="not a numpy dtype"):
        K(a, None, [("x", (1,), "nonsense")], out)
    with pytest.raises(TypeError, match="unsupported dtype"):
        K(a, None, [("x", (1,), "complex128")], out)
    with pytest.raises(TypeError, match="unsupported dtype"):
        K(a, None, [("x", (1,), "U3")], out)
    with pytest.raises(ValueError, match="non-negative ints"):
        K(a, None, [("x", (-1,), "float64")], out)
    with pytest.raises(ValueError, match="non-negative ints"):
        K(a, None, [("x", (1.5,), "float64")], out)
    with pytest.raises(ValueError, match="duplicate input name 'x'"):
        K(a, None, [("x", (1,), "float64"), ("x", (2,), "float64")], out)
    with pytest.raises(TypeError, match="label range needs an integer dtype"):
        K(a, None, [("x", (1,), "float64", 3)], out)
    with pytest.raises(ValueError, match="does not fit"):
        K(a, None, [("x", (1,), "int8", 1000)], out)
    with pytest.raises(ValueError, match="needs exactly one output"):
        K(a, None, [], out * 2 if False else [("o", (1,), "f8"), ("p", (1,), "f8")], returns="single")
    with pytest.raises(ValueError, match="returns must be"):
        K(a, None, [], out, returns="list")
    with pytest.raises(TypeError, match="pool must be"):
        K(a, "pool", [], out)
    with pytest.raises(TypeError, match="spec"):
        K(a, None, ["x"], out)
    # np.int64 dims, dtype objects, (lo, hi) ranges are accepted
    k = K(a, P(1), [("x", (np.int64(2),), np.dtype("<f8")), ("y", [3], "i4", (-1, 2))], out)
    assert k.input_specs[1] == ("y", (3,), np.dtype("int32"), (-1, 2))
    k(np.zeros(2), np.array([-1, 0, 1]))
    assert "out of range [-1, 2)" in str(_err(k, np.zeros(2), np.array([-1, 0, 2])))


def test_kernel_keeps_pool_and_owner_alive(clib):
    class Owner:
        pass

    pool = runtime.Pool(2)
    owner = Owner()
    k = runtime.Kernel(addr(clib, "k_par"), pool, [("x", (20000,), "float64")],
                       [("o", (20000,), "float64")], owner=owner)
    wp, wo = weakref.ref(pool), weakref.ref(owner)
    del pool, owner
    gc.collect()
    assert wp() is not None and wo() is not None and k.pool is wp() and k.owner is wo()
    x = np.linspace(0, 1, 20000)
    r1 = k(x)[0]
    k.pool.close()  # closed pool: the kernel runs serially
    np.testing.assert_array_equal(k(x)[0], r1)
    # a reference cycle kernel <-> owner is collectable
    holder = Owner()
    holder.k = runtime.Kernel(addr(clib, "k_noop"), None, [], [("o", (1,), "f8")], owner=holder)
    wh = weakref.ref(holder)
    del holder, k
    gc.collect()
    assert wh() is None and wp() is None


def test_concurrent_calls_match_sequential(clib):
    pool = runtime.Pool(2)
    k = runtime.Kernel(addr(clib, "k_par"), pool, [("x", (20000,), "float64")],
                       [("o", (20000,), "float64")], returns="single")
    rng = np.random.default_rng(1)
    xs = [rng.random(20000) for _ in range(8)]
    expect = [k(x) for x in xs]
    results: dict = {}
    errors: list = []
    barrier = threading.Barrier(4)

    def worker(t):
        try:
            barrier.wait()
            for it in range(25):
                i = (t + it) % len(xs)
                results[(t, it)] = (i, k(xs[i]))
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(results) == 100
    for i, out in results.values():
        np.testing.assert_array_equal(out, expect[i])


def test_gil_released_during_call(clib):
    k = runtime.Kernel(addr(clib, "k_rendezvous"), None, [("x", (), "float64")], [("o", (), "float64")],
                       returns="single")
    clib.rendezvous_reset()
    out = {}
    threads = [threading.Thread(target=lambda i=i: out.__setitem__(i, k(np.array(float(i)))))
               for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert clib.rendezvous_max() == 2  # both calls were inside entry() at the same time
    assert float(out[0]) == 1.0 and float(out[1]) == 2.0


def test_pool_close_refused_while_in_flight(clib):
    pool = runtime.Pool(2)
    k = runtime.Kernel(addr(clib, "k_rendezvous"), pool, [("x", (), "float64")], [("o", (), "float64")],
                       returns="single")
    clib.rendezvous_reset()
    t = threading.Thread(target=k, args=(np.array(1.0),))
    t.start()
    deadline = time.monotonic() + 10
    while clib.rendezvous_max() < 1 and time.monotonic() < deadline:  # wait until inside entry()
        time.sleep(0.001)
    with pytest.raises(RuntimeError, match="in flight"):
        pool.close()
    assert float(k(np.array(2.0))) == 3.0  # second caller releases the rendezvous
    t.join()
    pool.close()
    assert pool.closed and float(k(np.array(2.0))) == 3.0  # closed pool -> serial


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
