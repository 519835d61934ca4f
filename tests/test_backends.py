"""The backend registry (symdiff/backends.py) and the compile Target (codegen/target.py).

- every shipped backend is registered (numpy by the core, the others through entry points) with its
  options and a description; unknown backends and options are clear ValueErrors;
- the core does not import a backend module to compile with numpy (no cycle, no backend paths);
- the Target: vector width from the features, SYMDIFF_NUM_THREADS sets the thread count, one thread
  gives serial task counts (and correct results), two threads today's counts, and the target is part
  of the compile-cache key.
"""
from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import symdiff as sd
import symdiff.compiled
from symdiff.backends import Backend, get_backend, register_backend, unregister_backend
from symdiff.codegen.kernel_ir import LoopKernel
from symdiff.codegen.llvm import backend as llvm_backend
from symdiff.codegen.llvm.gemm.plan import plan_matmul
from symdiff.codegen.lower import lower
from symdiff.codegen.target import Target, default_threads, host_target, vector_bytes_of

ROOT = Path(__file__).resolve().parent.parent


def _graph():
    x = sd.input("x", (1 << 16,))
    return sd.sum(sd.tanh(x) * x)


# ---- registry -----------------------------------------------------------------------------------------------

def test_shipped_backends_are_registered():
    listed = sd.list_backends()
    assert {"numpy", "llvm", "cuda", "cuda-cpu"} <= set(listed)
    assert all(isinstance(d, str) and d for d in listed.values())
    assert dict(get_backend("llvm").options) == {"cache": None, "num_threads": None, "isa": None}
    assert set(get_backend("cuda-cpu").options) == {"cache", "compiler", "flags"}
    assert "arch" in get_backend("cuda").options
    assert dict(get_backend("numpy").options) == {}


def test_unknown_backend_lists_the_registered_ones():
    with pytest.raises(ValueError, match=r"unknown backend 'tpu'; registered backends: cuda, cuda-cpu, llvm, numpy"):
        sd.compile(_graph(), "tpu")


def test_unknown_options_name_the_backend_and_its_options():
    x = sd.input("x", (3,))
    with pytest.raises(ValueError, match=r"backend 'numpy' has no option 'cache'; its options are: none"):
        sd.compile(x, "numpy", cache=False)
    with pytest.raises(ValueError, match=r"backend 'llvm' has no option 'chache'; its options are: cache=None, "
                                         r"num_threads=None"):
        sd.compile(x, "llvm", chache=False)
    with pytest.raises(ValueError, match=r"backend 'cuda-cpu' has no options 'arch', 'x'"):
        sd.compile(x, "cuda-cpu", arch="sm_90", x=1)


def test_register_a_backend():
    seen = {}

    def factory(outputs, single, scale=1.0):
        seen["scale"] = scale
        return symdiff.compiled.NumpyFunction(outputs, single)

    register_backend(Backend("test-numpy", factory, {"scale": 1.0}, "numpy under another name"))
    try:
        x = sd.input("x", (3,))
        f = sd.compile(sd.exp(x), "test-numpy")
        assert seen == {"scale": 1.0}  # the defaults reach the factory
        np.testing.assert_allclose(f(x=np.zeros(3, np.float32)), 1.0)
        sd.compile(sd.exp(x), "test-numpy", scale=2.0)
        assert seen == {"scale": 2.0}
        assert "test-numpy" in sd.list_backends()
        with pytest.raises(ValueError, match="already registered"):
            register_backend(Backend("test-numpy", factory))
    finally:
        unregister_backend("test-numpy")
    assert "test-numpy" not in sd.list_backends()


def test_the_core_names_no_backend_module():
    src = (ROOT / "symdiff" / "compiled.py").read_text() + (ROOT / "symdiff" / "backends.py").read_text()
    assert "codegen" not in src
    code = textwrap.dedent("""
        import sys
        import numpy as np
        import symdiff as sd
        x = sd.input("x", (3,))
        f = sd.compile(sd.exp(x), "numpy")
        assert float(f(x=np.zeros(3, np.float32)).sum()) == 3.0
        loaded = sorted(m for m in sys.modules if m.startswith("symdiff.codegen"))
        print(loaded)
        assert not any(".llvm" in m or ".cuda" in m for m in loaded), loaded
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr


# ---- target -------------------------------------------------------------------------------------------------

def test_vector_width_follows_the_features():
    assert vector_bytes_of("+sse2,+avx,+avx2,+avx512f") == 64
    assert vector_bytes_of("+sse2,+avx2,-avx512f") == 32
    assert vector_bytes_of("+neon") == 16
    t = host_target()
    assert t.vector_bytes == vector_bytes_of(t.features) and t.cpu and t.isa


def test_symdiff_num_threads(monkeypatch):
    monkeypatch.setenv("SYMDIFF_NUM_THREADS", "3")
    assert default_threads() == 3 and host_target().threads == 3
    monkeypatch.setenv("SYMDIFF_NUM_THREADS", "zero")
    with pytest.raises(ValueError, match="SYMDIFF_NUM_THREADS"):
        host_target()
    with pytest.raises(ValueError, match="threads must be a positive int"):
        Target("x86_64", "cpu", "", 16, 0)


def test_task_counts_follow_the_thread_count():
    g = sd.simplify([_graph()])
    serial, two = lower(g, host_target(1)), lower(g, host_target(2))
    (k1,), (k2,) = serial.kernels, two.kernels
    assert isinstance(k1, LoopKernel) and k1.tasks == 1
    assert k2.tasks == 8  # today's split on two threads: 4 tasks per thread
    assert plan_matmul("float32", 256, 1024, 1024, threads=1)[1].n_tasks == 1
    assert plan_matmul("float32", 256, 1024, 1024, threads=2)[1].n_tasks == 2
    assert plan_matmul("float32", 256, 1024, 1024, threads=4)[1].n_tasks == 4
    assert plan_matmul("float32", 784, 256, 1, trans_a=True, threads=1)[1].n_tasks == 1


def test_one_thread_compiles_serial_code_with_the_same_results(monkeypatch):
    x = sd.input("x", (256, 300))
    w = sd.param("w", (300, 128))
    loss = sd.sum(sd.tanh(x @ w))
    outs = [loss, *sd.grad(loss, [w])]
    rng = np.random.default_rng(0)
    vals = {"x": rng.standard_normal((256, 300)).astype(np.float32),
            "w": rng.standard_normal((300, 128)).astype(np.float32) * 0.1}
    ref = sd.compile(outs, "numpy")(**vals)
    monkeypatch.setenv("SYMDIFF_NUM_THREADS", "1")
    f1 = sd.compile(outs, cache=False)
    assert f1.target.threads == 1 and not f1.parallel and f1.pool is None
    assert all(k.tasks == 1 for k in f1.program.kernels)
    monkeypatch.delenv("SYMDIFF_NUM_THREADS")
    f2 = sd.compile(outs, cache=False, num_threads=2)
    assert f2.target.threads == 2 and f2.parallel and f2.pool.nthreads == 2
    for f in (f1, f2):
        for got, want in zip(f(**vals), ref):
            np.testing.assert_allclose(got, want, rtol=2e-4, atol=2e-4)


def test_target_is_part_of_the_cache_key(tmp_path, monkeypatch):
    monkeypatch.setenv("SYMDIFF_CACHE_DIR", str(tmp_path))
    g = sd.simplify([_graph()])
    keys = {llvm_backend.graph_key(g, "llvm", target=host_target(n)) for n in (1, 2, 3)}
    assert len(keys) == 3
    f1 = sd.compile(_graph(), num_threads=1)
    f2 = sd.compile(_graph(), num_threads=2)
    assert not f1.cache_hit and not f2.cache_hit  # a serial object is never reused for two threads
    assert sd.compile(_graph(), num_threads=2).cache_hit
    v = np.linspace(-1, 1, 1 << 16, dtype=np.float32)
    np.testing.assert_allclose(f1(x=v), f2(x=v), rtol=1e-5)
    with pytest.raises(ValueError, match="num_threads must be a positive int"):
        sd.compile(_graph(), num_threads=0)


def test_first_lookups_from_several_threads_all_find_the_backend():
    code = textwrap.dedent("""
        import threading
        import symdiff.backends as B
        import symdiff  # registers numpy
        found, barrier = [], threading.Barrier(4)
        def look():
            barrier.wait()
            found.append(B.get_backend("cuda-cpu").name)
        ts = [threading.Thread(target=look) for _ in range(4)]
        [t.start() for t in ts]
        [t.join() for t in ts]
        assert found == ["cuda-cpu"] * 4, found
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
