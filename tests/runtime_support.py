"""Shared test support for tests/test_runtime*.py: tiny C kernels compiled with gcc at test time
(``C_SOURCE``), the ``clib``/``impl`` fixtures and kernel builders."""
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


def cc_path() -> str:
    cc = os.environ.get("CC") or shutil.which("gcc") or shutil.which("cc")
    if not cc:
        pytest.skip("no C compiler")
    return cc


@pytest.fixture(scope="module")
def clib(tmp_path_factory):
    cc = cc_path()
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


