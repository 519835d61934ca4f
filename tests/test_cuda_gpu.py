"""The CUDA backend on a real GPU: the graphs of tests/test_cuda_cpu.py with ``backend="cuda"`` (every op of
the op table: tests/test_ops_backends.py, which adds ``cuda`` to its backends when a GPU is present).

Needs an NVIDIA GPU with its driver and nvcc (on PATH, or ``SYMDIFF_NVCC``); otherwise every GPU test
is skipped with the reason. To run it on such a machine::

    pip install -e . && python -m pytest tests/test_cuda_gpu.py -q

The results are compared with the NumPy backend at tolerances a little looser than cuda-cpu's: nvcc
contracts ``a * b + c`` into fused multiply-adds and CUDA's math functions have their own (documented)
ulp bounds, so GPU results are close to, not bit-identical with, the CPU emulation; the counter-based
RNG is bit-exact everywhere.

Graphs with a symbolic batch run at several sizes from one compile (``test_symbolic_sizes_on_gpu``).

Without a GPU, one test still runs when nvcc is present: it builds a GPU library with nvcc (the real
runtime, host launcher and all), loads it, and checks that it reports the missing device cleanly.
"""
from __future__ import annotations

import ctypes

import numpy as np
import pytest

import symdiff as sd
from symdiff.ops_random import rand_uniform_np

from symdiff.codegen.cuda import backend as cb
from symdiff.codegen.cuda.render import render_cuda
from symdiff.codegen.lower import lower
from symdiff.simplify import simplify

from test_cuda_cpu import GRAPHS, compiled

GPU_OK, GPU_REASON, GPU_CC = cb.gpu_info()
NVCC = cb.find_nvcc()
needs_gpu = pytest.mark.skipif(not GPU_OK or NVCC is None,
                               reason=f"backend='cuda' needs an NVIDIA GPU and nvcc: "
                                      f"{GPU_REASON if not GPU_OK else 'nvcc not found'}")


def _tol(dtype: str) -> dict:
    return {"rtol": 1e-9, "atol": 1e-11} if dtype == "float64" else {"rtol": 2e-4, "atol": 2e-5}


def _close(got, ref, label: str) -> None:
    got, ref = np.asarray(got), np.asarray(ref)
    assert got.shape == ref.shape and got.dtype == ref.dtype, label
    np.testing.assert_allclose(got, ref, err_msg=label, **_tol(ref.dtype.name if ref.dtype.kind == "f" else "float64"))


@needs_gpu
@pytest.mark.parametrize("name", list(GRAPHS))
def test_graphs_on_gpu(name):
    f, g, got, ref = compiled(name, "cuda")
    assert f.backend == "cuda" and len(got) == len(ref) == len(g.outputs) > 0
    for i in range(len(g.outputs)):
        _close(got[i], ref[i], g.labels[i])
    again = f(**g.values)  # device buffers are reused; reductions are deterministic
    for a, b in zip(got, again):
        np.testing.assert_array_equal(a, b)


@needs_gpu
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_rand_uniform_bit_exact_on_gpu(dtype):
    f, g, got, ref = compiled(f"corners_{dtype}", "cuda")
    i = g.labels.index("rand")
    np.testing.assert_array_equal(got[i], rand_uniform_np(-7, 2 ** 33 + 5, (3, 70000), dtype, 5))


@needs_gpu
def test_gpu_and_cpu_emulation_agree_on_the_mlp():
    _, g, gpu, _ = compiled("mlp_float32", "cuda")
    _, _, cpu, _ = compiled("mlp_float32", "cuda-cpu")
    assert len(gpu) == len(cpu) == len(g.labels) > 0
    for a, b, label in zip(gpu, cpu, g.labels):
        np.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-6, err_msg=label)


@needs_gpu
@pytest.mark.parametrize("graph", ["mlp", "conv", "kernel-kinds"])
def test_symbolic_sizes_on_gpu(graph):
    """One GPU library serves batch sizes 1, 2, 7, 64 and 1000 (grids computed at launch; split reductions,
    partial tiles, grown device buffers): NumPy's values, one compile (tests/test_cuda_symbolic.py's graphs)."""
    from test_cuda_symbolic import _conv, _kernel_kinds, _mlp, _values
    outs = {"mlp": _mlp, "conv": _conv, "kernel-kinds": _kernel_kinds}[graph]()
    f, ref = sd.compile(outs, "cuda"), sd.compile(outs, "numpy")
    assert f.backend == "cuda" and not hasattr(f, "specialized_because")
    rng = np.random.default_rng(1)
    for size in (1, 2, 7, 64, 1000, 2):
        vals = _values(f, size, rng)
        for i, (a, b) in enumerate(zip(f(**vals), ref(**vals))):
            _close(a, b, f"{graph} output {i}, size {size}")
    assert f.compiles == 1


@pytest.mark.skipif(NVCC is None, reason="nvcc not found")
@pytest.mark.skipif(GPU_OK, reason="a GPU is present: the tests above run the real thing")
def test_gpu_library_builds_and_reports_the_missing_device():
    x = sd.input("x", (4, 3), "float32")
    src, _ = render_cuda(lower(simplify([sd.softmax(x) @ sd.transpose(x)])), "sd_entry")
    path, _, tmp = cb.build_library(src, "cuda", arch="sm_90")
    lib = ctypes.CDLL(str(path))
    lib.sd_entry_device_count.restype = ctypes.c_int
    lib.sd_entry_last_error.restype = ctypes.c_char_p
    assert lib.sd_entry_device_count() == -1
    msg = lib.sd_entry_last_error().decode()
    assert "cudaGetDeviceCount" in msg and ("driver" in msg or "device" in msg), msg
    del tmp
