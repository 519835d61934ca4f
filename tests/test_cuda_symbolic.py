"""The CUDA backends with symbolic dimensions: one compile serves every size (codegen/cuda/host.py, render.py).

``backend="cuda-cpu"`` runs the generated source, so these check the runtime-sized kernels' numbers against
NumPy at batch sizes 1, 2, 7 and 64 (grids of one block and of many, partial tiles, split reductions):
an MLP's loss and gradients and a conv net's, with the compile count staying at one; the source's sizes ABI;
fixed-shape sources keep no trace of it; and nvcc accepts a symbolic source (PTX, no warnings; skipped
without nvcc). The whole op suite in one symbolic graph: tests/test_symbolic_dims.py (SYMDIFF_SLOW_TESTS=1).
"""
from __future__ import annotations

import ctypes

import numpy as np
import pytest

import symdiff as sd
from symdiff.codegen.cuda import backend as cb
from symdiff.codegen.cuda.render import render_cuda
from symdiff.codegen.lower import lower

needs_cxx = pytest.mark.skipif(cb.host_compiler() is None, reason="no host C++ compiler for backend='cuda-cpu'")
SIZES = (1, 2, 7, 64)


def _mlp():
    x, y = sd.input("x", ("batch", 12)), sd.input("y", ("batch",), "int64")
    w1, b1, w2 = sd.param("w1", (12, 40)), sd.param("b1", (40,)), sd.param("w2", (40, 5))
    loss = sd.cross_entropy(sd.tanh(x @ w1 + b1) @ w2, y)
    return [loss, *sd.grad(loss, [w1, b1, w2, x])]


def _conv():
    x = sd.input("img", ("batch", 2, 6, 6), "float64")  # (float64: sums of many products, compared tightly)
    w, v = sd.param("k", (3, 2, 3, 3), "float64"), sd.param("v", (3 * 4 * 4, 4), "float64")
    h = sd.relu(sd.conv2d(x, w, padding=0))
    out = sd.reshape(h, (-1, 3 * 4 * 4)) @ v
    loss = sd.mean(sd.sum(out * out, axis=1))
    return [loss, *sd.grad(loss, [w, v, x])]


def _kernel_kinds():
    """Every kind of CUDA kernel with a symbolic axis where its launch or its loops depend on it: reductions
    along it (a block per row) and across it (split in chunks), reductions split in chunks over a symbolic
    number of blocks (both modes), softmaxes along it, scans and argsorts along
    it, a concatenation along it, products with a symbolic batch and a symbolic M = K, scatters (the
    gradients of takes) into it and from it (float64)."""
    D = "float64"
    x, y, z = sd.input("u", (3, "n"), D), sd.input("p", ("n", 4), D), sd.input("q", ("n", 4), D)
    a, b, c = sd.input("a", ("n", 5, 3), D), sd.input("b", ("n", 3, 4), D), sd.input("c", (2, "n", "n"), D)
    tab, w = sd.input("tab", ("n", 3), D), sd.input("w", (4, 3), D)
    idx, idx_n = sd.input("idx", (5,), "int64"), sd.input("idx_n", ("n",), "int64")
    t1, t2 = sd.take(tab, idx, axis=0), sd.take(w, idx_n, axis=0)
    cols, rows = sd.input("cols", (300, "n"), D), sd.input("rows", ("n", 5000), D)  # chunks over a symbolic grid x
    return [sd.sum(sd.exp(x), axis=1), sd.max(x, axis=1), sd.sum(y * z, axis=0), sd.sum(x),
            sd.sum(cols, axis=0), sd.max(rows, axis=1),
            sd.softmax(x, axis=1), sd.log_softmax(x, axis=1), sd.logsumexp(x, axis=1),
            sd.cumsum(x, axis=1), sd.cumprod(x, axis=0), sd.argsort(x, axis=1),
            sd.concatenate([y, z, y], axis=0) * 2.0, a @ b, c @ c,
            *sd.grad(sd.sum(t1 * t1) + sd.sum(t2 * t2) + sd.sum(a @ b), [tab, w, a])]


def _values(f, size: int, rng) -> dict:
    vals = {}
    for s in f.signature.leaves:
        shape = tuple(size if not isinstance(d, int) else d for d in s.shape)
        vals[s.name] = (rng.integers(0, 5, shape) if s.dtype == "int64"
                        else rng.standard_normal(shape).astype(s.dtype))
    return vals


@needs_cxx
@pytest.mark.parametrize("graph", [_mlp, _conv, _kernel_kinds], ids=["mlp", "conv", "kernel-kinds"])
def test_one_compile_serves_every_batch_size(graph):
    """Loss and gradients over a symbolic batch (or every kernel kind over a symbolic axis) equal NumPy's at
    every size, from a single compile."""
    outs = graph()
    f = sd.compile(outs, "cuda-cpu")
    ref = sd.compile(outs, "numpy")
    assert isinstance(f, cb.CudaFunction) and not hasattr(f, "specialized_because")
    assert len(f.program.size_names) == 1
    rng = np.random.default_rng(0)
    for size in SIZES + (2,):  # a size seen before, after a larger one (reused device buffers)
        vals = _values(f, size, rng)
        got, want = f(**vals), ref(**vals)
        for g, w in zip(got, want):
            assert g.shape == w.shape
            np.testing.assert_allclose(g, w, rtol=2e-5, atol=1e-6, err_msg=f"batch {size}")
    assert f.compiles == 1


def test_symbolic_source_takes_the_sizes_and_fixed_sources_do_not():
    """The entry points of a symbolic program take ``const long long* sizes``; grids are computed from them
    at launch; a fixed-shape program's source has neither."""
    src, hdr = render_cuda(lower(_mlp()), "net")
    assert "int net_launch(void* const* args, const long long* sizes, void* stream_arg)" in src
    assert "const long long sz_batch = sizes[0];" in src
    assert "sd_grid(sz_batch" in src and "size_t net_workspace_bytes(const long long* sizes)" in src
    assert "int net_run(void* const* host_args, const long long* sizes);" in hdr and "NET_NUM_SIZES 1" in hdr
    x = sd.input("x", (8, 12))
    fixed, fixed_hdr = render_cuda(lower([sd.sum(sd.tanh(x))]), "net")
    assert "sizes" not in fixed and "sz_" not in fixed and "sd_grid" not in fixed
    assert "NET_WORKSPACE_BYTES" in fixed_hdr


@needs_cxx
def test_workspace_and_launch_follow_the_sizes():
    """``workspace_bytes`` is a polynomial of the sizes; the library's ``_workspace_bytes(sizes)`` evaluates
    it (a split reduction over the batch: partial results in the workspace); the C entry ``_run(host_args,
    sizes)`` gives the Python call's results at each size."""
    x = sd.input("x", ("batch", 300))
    outs = [sd.sum(sd.exp(x), axis=0), sd.sum(x)]
    f = sd.compile(outs, "cuda-cpu")
    for size in (1, 3, 700):
        vals = (ctypes.c_longlong * 1)(size)
        assert f._ws_bytes(vals) == sd.dims.evaluate(f.workspace_bytes, {"batch": size})
        X = np.random.default_rng(size).standard_normal((size, 300)).astype("float32")
        a, b = f(x=X)
        np.testing.assert_allclose(a, np.exp(X).sum(axis=0), rtol=1e-5)
        np.testing.assert_allclose(b, X.sum(), rtol=1e-4, atol=1e-4)
        # the C one-shot entry on host pointers, as a C program calls it: <name>_run(host_args, sizes)
        run = f._lib.sd_entry_run
        run.restype, run.argtypes = ctypes.c_int, [ctypes.POINTER(ctypes.c_void_p), ctypes.POINTER(ctypes.c_longlong)]
        ca, cb_ = np.zeros(300, np.float32), np.zeros((), np.float32)
        args = (ctypes.c_void_p * 3)(X.ctypes.data, ca.ctypes.data, cb_.ctypes.data)
        assert run(args, vals) == 0
        np.testing.assert_array_equal(ca, a)
        np.testing.assert_array_equal(cb_, b)


@pytest.mark.skipif(cb.find_nvcc() is None, reason="nvcc not found")
def test_nvcc_compiles_a_symbolic_source():
    """The runtime-sized source (an MLP's loss and gradients; every kernel kind over a symbolic
    axis) is valid CUDA: PTX for sm_90, without warnings."""
    src = render_cuda(lower(_mlp() + _kernel_kinds()), "sd_entry")[0]
    assert "sz_batch" in src
    assert cb.nvcc_ptx(src, "sm_90") == (0, "")
