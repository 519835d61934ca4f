"""Compiled kernels called from several threads at once.

The C runtime releases the GIL around the kernel, each concurrent call gets its own workspace and
the thread pool serves one dispatch at a time (a call that finds it busy runs its loops serially), so
threads must get exactly the results of sequential calls -- bit for bit, including the parallel
reductions, whose chunking depends only on the task count, not on which thread runs a chunk.
"""
from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import symdiff as sd

N_THREADS = 4
CALLS = 12


def _mlp_graph(batch=256, d_in=64, hidden=128, classes=10, dtype="float32"):
    """Forward + backward of a 2-layer MLP: matmuls, a bias epilogue, relu, softmax, a cross-entropy
    (row kernels), reductions and elementwise gradients; the hidden layer is 32768 elements, large
    enough for the parallel loops."""
    x = sd.input("x", (batch, d_in), dtype)
    lab = sd.input("lab", (batch,), "int64")
    w1, b1 = sd.param("w1", (d_in, hidden), dtype), sd.param("b1", (hidden,), dtype)
    w2, b2 = sd.param("w2", (hidden, classes), dtype), sd.param("b2", (classes,), dtype)
    h = sd.relu(x @ w1 + b1)
    logits = h @ w2 + b2
    loss = sd.cross_entropy(logits, lab)
    return [loss, sd.softmax(logits), sd.sum(h * h, axis=0), sd.max(logits, axis=1)] + sd.grad(loss, [w1, b1, w2, b2])


def _inputs(seed, batch=256, d_in=64, hidden=128, classes=10, dtype=np.float32):
    r = np.random.default_rng(seed)
    return {"x": r.standard_normal((batch, d_in)).astype(dtype), "lab": r.integers(0, classes, batch),
            "w1": (r.standard_normal((d_in, hidden)) * 0.1).astype(dtype), "b1": r.standard_normal(hidden).astype(dtype),
            "w2": (r.standard_normal((hidden, classes)) * 0.1).astype(dtype), "b2": r.standard_normal(classes).astype(dtype)}


CONFIGS = {
    "llvm-serial": dict(backend="llvm", num_threads=1),
    "llvm-pool2": dict(backend="llvm", num_threads=2),
    "llvm-pool4": dict(backend="llvm", num_threads=4),
    "cuda-cpu": dict(backend="cuda-cpu"),
    "numpy": dict(backend="numpy"),
}


@pytest.mark.parametrize("config", sorted(CONFIGS))
def test_threads_get_the_results_of_sequential_calls(config):
    f = sd.compile(_mlp_graph(), **CONFIGS[config])
    inputs = [_inputs(seed) for seed in range(N_THREADS * 3)]
    expected = [f(**kw) for kw in inputs]
    again = [f(**kw) for kw in inputs]
    for e, a in zip(expected, again):  # sequential calls are deterministic
        for x, y in zip(e, a):
            np.testing.assert_array_equal(x, y)
    snapshots = [{k: v.copy() for k, v in kw.items()} for kw in inputs]
    start = threading.Barrier(N_THREADS)

    def worker(t):
        start.wait()
        mismatches = 0
        for c in range(CALLS):
            i = (t + c * N_THREADS) % len(inputs)  # threads interleave over the same inputs
            out = f(**inputs[i])
            mismatches += not all(np.array_equal(o, e) for o, e in zip(out, expected[i]))
        return mismatches

    with ThreadPoolExecutor(N_THREADS) as ex:
        bad = sum(ex.map(worker, range(N_THREADS)))
    assert bad == 0, f"{bad} concurrent calls differed from the sequential results"
    for kw, snap in zip(inputs, snapshots):  # shared inputs are read, never written
        for k in kw:
            np.testing.assert_array_equal(kw[k], snap[k])


def test_concurrent_calls_of_different_functions():
    """Several compiled functions (own pools, own workspaces) running at the same time."""
    fs = [sd.compile(_mlp_graph(hidden=h), num_threads=n) for h, n in ((128, 2), (96, 1), (64, None))]
    data = [_inputs(7, hidden=h) for h in (128, 96, 64)]
    expected = [f(**d) for f, d in zip(fs, data)]

    def worker(k):
        ok = True
        for _ in range(CALLS):
            out = fs[k % 3](**data[k % 3])
            ok &= all(np.array_equal(o, e) for o, e in zip(out, expected[k % 3]))
        return ok

    with ThreadPoolExecutor(6) as ex:
        assert all(ex.map(worker, range(6)))


def test_errors_in_one_thread_do_not_disturb_others():
    f = sd.compile(_mlp_graph(), num_threads=2)
    good = _inputs(3)
    expected = f(**good)
    bad_calls = [{**good, "lab": np.full(256, 99)}, {**good, "x": good["x"][:, :3]}, {**good, "x": None},
                 {k: v for k, v in good.items() if k != "w1"}]

    def worker(t):
        errors = 0
        for c in range(CALLS):
            if (t + c) % 2:
                try:
                    f(**bad_calls[(t + c) % len(bad_calls)])
                except (TypeError, ValueError):
                    errors += 1
            else:
                out = f(**good)
                assert all(np.array_equal(o, e) for o, e in zip(out, expected))
        return errors

    with ThreadPoolExecutor(N_THREADS) as ex:
        assert sum(ex.map(worker, range(N_THREADS))) == N_THREADS * CALLS // 2


def _max_stall_during(fn, repeats=3):
    """Run fn() while a Python thread spins; returns [(longest gap between two spinner iterations
    while fn ran, fn's duration)]. A call that holds the GIL stalls the spinner for its whole length."""
    stop, running = threading.Event(), threading.Event()
    gaps = [0.0]

    def spin():
        last = time.perf_counter()
        while not stop.is_set():
            t = time.perf_counter()
            if running.is_set() and t - last > gaps[0]:
                gaps[0] = t - last
            last = t

    th = threading.Thread(target=spin)
    th.start()
    out = []
    try:
        time.sleep(0.01)
        for _ in range(repeats):
            gaps[0] = 0.0
            running.set()
            t0 = time.perf_counter()
            fn()
            dt = time.perf_counter() - t0
            running.clear()
            out.append((gaps[0], dt))
    finally:
        stop.set()
        th.join()
    return out


def _long_kernel(release_gil=True):
    x = sd.input("x", (1 << 21,), "float64")
    y = x
    for _ in range(40):
        y = sd.sin(y) * 1.0001 + sd.cos(y)  # ~80 transcendental calls per element, one fused loop
    f = sd.compile(sd.sum(y), num_threads=1)
    xv = np.linspace(-1, 1, 1 << 21)
    if release_gil:
        return lambda: f(x=xv)
    from symdiff.codegen.runtime.kernel import Kernel
    k = Kernel(f.entry_address, f.pool, [("x", (1 << 21,), "float64")], [("o", (), "float64")], returns="single",
               release_gil=False, owner=f.jit, workspace_bytes=f.program.workspace_bytes)
    return lambda: k(xv)


def test_the_gil_is_released_during_a_call():
    """While one thread runs a long kernel (~0.1 s), another thread keeps running Python code: it is
    never stalled for most of the call (it would be for all of it if the GIL were held)."""
    runs = _max_stall_during(_long_kernel())
    assert min(gap / dt for gap, dt in runs) < 0.5, f"spinner stalled during the calls: {runs}"


def test_the_stall_probe_detects_a_held_gil():
    """The probe above is meaningful: the same kernel called with release_gil=False stalls the spinner."""
    runs = _max_stall_during(_long_kernel(release_gil=False), repeats=2)
    assert max(gap / dt for gap, dt in runs) > 0.8, runs
