"""Memory: a long training loop does not grow the process, and compiled functions release their
LLVM execution engines (and everything else they own) when dropped.

RSS is read from /proc/self/statm (the current resident set, not the peak), after a warm-up, with
generous bounds: the point is to catch per-call or per-compile leaks, which grow linearly.
"""
from __future__ import annotations

import gc
import os
import weakref

import numpy as np
import pytest

import symdiff as sd
from symdiff.codegen.llvm import backend as llvm_backend
from symdiff.codegen.llvm.jit import JitModule

pytestmark = pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="needs /proc (Linux)")


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _digits():
    try:
        from sklearn.datasets import load_digits  # bundled with scikit-learn, no download
        d = load_digits()
        return (d.data / 16.0).astype(np.float32), d.target.astype(np.int64)
    except ImportError:  # same shapes, random data
        r = np.random.default_rng(0)
        return r.random((1797, 64), dtype=np.float32), r.integers(0, 10, 1797)


@pytest.mark.parametrize("backend,steps", [("llvm", 10_000), ("cuda-cpu", 400)])
def test_training_loop_rss_does_not_grow(backend, steps):
    """10,000 SGD steps of a digits MLP (64 -> 128 -> 10, batch 64): forward, backward and the update
    compiled into one function (sd.nn.sgd); parameters fed back every step."""
    B, D, H, C = 64, 64, 128, 10
    x, lab = sd.input("x", (B, D)), sd.input("lab", (B,), "int64")
    w1, b1 = sd.param("w1", (D, H)), sd.param("b1", (H,))
    w2, b2 = sd.param("w2", (H, C)), sd.param("b2", (C,))
    loss = sd.cross_entropy(sd.relu(x @ w1 + b1) @ w2 + b2, lab)
    upd = sd.nn.sgd(loss, [w1, b1, w2, b2], lr=0.1)
    names = list(upd)
    step = sd.compile([loss] + [upd[n] for n in names], backend=backend)
    X, Y = _digits()
    r = np.random.default_rng(0)
    params = {"w1": (r.standard_normal((D, H)) * 0.1).astype(np.float32), "b1": np.zeros(H, np.float32),
              "w2": (r.standard_normal((H, C)) * 0.1).astype(np.float32), "b2": np.zeros(C, np.float32)}
    n_batches = len(X) // B
    losses = []
    warm = steps // 10
    for s in range(steps):
        i = (s % n_batches) * B
        out = step(x=X[i:i + B], lab=Y[i:i + B], **params)
        params = dict(zip(names, out[1:]))
        if s % n_batches == 0:
            losses.append(float(out[0]))
        if s == warm:
            gc.collect()
            before = rss_mb()
    gc.collect()
    after = rss_mb()
    assert np.isfinite(losses).all() and losses[-1] < 0.5 * losses[0], losses  # it does train
    # a leak of one 64x128 float32 array (32 KiB) per step would be ~280 MiB here
    assert after - before < 8.0, f"RSS grew {after - before:.1f} MiB over {steps - warm} steps ({before:.1f} -> {after:.1f})"


def _small_graph(i: int):
    """A distinct small graph per i (elementwise + reductions: no GEMM library, so compiles are quick)."""
    x = sd.input("x", (8, 16), "float32")
    w = sd.param("w", (16,), "float32")
    y = sd.sum(sd.tanh(x * w) * float(i + 1)) + sd.sum(sd.sum(sd.exp(x) * (0.5 + i), axis=0) * w)
    return [y] + sd.grad(y, [w])


def _cycles(n, offset, **options):
    xv, wv = np.ones((8, 16), np.float32), np.ones(16, np.float32)
    refs = []
    for i in range(n):
        f = sd.compile(_small_graph(offset + i), **options)
        f(x=xv, w=wv)
        refs += [weakref.ref(f), weakref.ref(f.jit), weakref.ref(f.jit.engine), weakref.ref(f.kernel)]
        if f.pool is not None:
            refs.append(weakref.ref(f.pool))
        del f
    gc.collect()
    return [r() for r in refs if r() is not None]


GRAPHS = 20  # per cycle of the test below (30 took 17 s of the CI run)


def test_compiled_functions_are_collected_and_free_their_engines(tmp_path, monkeypatch):
    """GRAPHS (30) distinct graphs compiled with cache=False, called and dropped: every LLVMFunction, its JIT
    module (the MCJIT engine), kernel and thread pool are collected.

    RSS: loading the same graphs from the cache (engines, kernels, pools, workspaces, but no LLVM
    optimisation) must not grow the process; uncached compiles are allowed a little per graph for
    llvmlite's own leak (its new-pass-manager binding never frees the PassInstrumentationCallbacks it
    allocates per optimisation run, ~0.2 MiB per module; see docs/reliability.md)."""
    monkeypatch.setenv("SYMDIFF_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("SYMDIFF_CACHE", raising=False)
    assert not _cycles(5, 1000, cache=False)  # warm-up: one-time LLVM state, first pools
    gc.collect()
    before = rss_mb()
    alive = _cycles(GRAPHS, 0, cache=False)
    uncached = rss_mb() - before
    assert not alive, f"{len(alive)} objects still alive, e.g. {alive[:3]}"
    assert uncached < GRAPHS * 1.0, f"RSS grew {uncached:.1f} MiB over {GRAPHS} uncached compile/free cycles"
    assert not _cycles(GRAPHS, 0, cache=True)  # fill the cache
    gc.collect()
    before = rss_mb()
    for _ in range(2):
        assert not _cycles(GRAPHS, 0, cache=True)  # 2 x GRAPHS cache hits: engines created and freed
    hits = rss_mb() - before
    assert hits < 6.0, f"RSS grew {hits:.1f} MiB over {2 * GRAPHS} cached compile/free cycles (engines not freed?)"


def test_jit_engines_are_freed():
    """Loading the same object file into 300 fresh MCJIT engines and dropping them does not grow the
    process: JitModule's engine (and the object file it holds) is disposed when collected."""
    f = sd.compile(_small_graph(7), cache=False)
    obj = llvm_backend.emit_object(str(llvm_backend.Renderer(f.program, llvm_backend.ENTRY).render()))[0]
    syms = llvm_backend.runtime_symbols()
    for _ in range(20):
        JitModule.from_object(obj, symbols=syms).address(llvm_backend.ENTRY)
    gc.collect()
    before = rss_mb()
    refs = []
    for _ in range(300):
        jm = JitModule.from_object(obj, symbols=syms)
        assert jm.address(llvm_backend.ENTRY)
        refs.append(weakref.ref(jm.engine))
        del jm
    gc.collect()
    assert all(r() is None for r in refs)
    grown = rss_mb() - before
    assert grown < 8.0, f"RSS grew {grown:.1f} MiB over 300 engine create/free cycles"


def test_many_calls_of_one_function_do_not_grow():
    """Outputs are fresh arrays, inputs are converted per call: nothing accumulates across calls,
    including calls that fail validation."""
    f = sd.compile(_small_graph(3))
    xv, wv = np.ones((8, 16), np.float32), np.ones(16, np.float32)
    x64 = xv.astype(np.float64)  # converted (a temporary per call)
    for _ in range(2000):
        f(x=xv, w=wv)
    gc.collect()
    before = rss_mb()
    for i in range(20000):
        f(x=x64 if i % 2 else xv, w=wv)
        if i % 10 == 0:
            try:
                f(x=xv[:4], w=wv)
            except ValueError:
                pass
    gc.collect()
    assert rss_mb() - before < 4.0


def test_cuda_cpu_recompiles_load_one_library(tmp_path, monkeypatch):
    """Compiling the same graph again on cuda-cpu (a cache hit) reuses the loaded library: shared
    libraries are never unloaded, so loading a fresh copy per compile would grow the process."""
    monkeypatch.setenv("SYMDIFF_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("SYMDIFF_CACHE", "1")
    x = sd.input("x", (8, 16))
    y = sd.sum(sd.tanh(x) * 2.0)
    first = sd.compile(y, backend="cuda-cpu")
    gc.collect()
    before = rss_mb()
    for _ in range(60):
        f = sd.compile(y, backend="cuda-cpu")
        assert f.cache_hit and f._lib is first._lib
        f(x=np.ones((8, 16), np.float32))
        del f
    gc.collect()
    assert rss_mb() - before < 2.0
