"""The CUDA C backend, checked without a GPU.

``backend="cuda-cpu"`` compiles the very same generated ``.cu`` source as ``backend="cuda"`` with the host
C++ compiler and ``codegen/cuda/cuda_cpu.h`` (the CUDA thread model emulated on the CPU), so these tests check
the numerics of the generated kernels against the NumPy reference backend:

- (every op of the op table, forward and gradient: tests/test_ops_backends.py)
- broadcasting / reduction / matmul corner cases (size-1 axes, sizes that are not multiples of the block
  or tile, single elements, the two-pass and block-per-row code paths, transposed operands, bias epilogue,
  -inf rows, NaN propagation), the counter-based RNG bit for bit;
- the lecture's MLP (784-256-10, batch 8) with cross-entropy and its gradients;
- finite differences of a few float64 graphs, through the compiled code.

Also: the source's structure, kernel_stats, the .so cache, the error without a GPU, the emulation header
itself (shuffles, barriers, atomics, the divergence check), and ``nvcc --ptx`` of every generated source
for sm_90 and the oldest architecture nvcc supports, without warnings (skipped without nvcc).

Each graph is compiled once (module-level cache, plus the on-disk .so cache across runs).
"""
from __future__ import annotations

import ctypes
import os
import re
import subprocess
import textwrap
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pytest

import symdiff as sd
import symdiff.nn as nn
from symdiff.ir import apply
from symdiff.ops_random import rand_uniform, rand_uniform_np
from symdiff.simplify import simplify

from symdiff.codegen.cuda import backend as cb
from symdiff.codegen.cuda.render import kernel_stats, render_cuda
from symdiff.codegen.lower import lower

HAVE_CXX = cb.host_compiler() is not None
needs_cxx = pytest.mark.skipif(not HAVE_CXX, reason="no host C++ compiler (g++/clang++) for backend='cuda-cpu'")


# ---- the graphs ---------------------------------------------------------------------------------------

@dataclass
class Graph:
    outputs: list
    values: dict
    labels: list  # one per output, for messages
    rtol: float
    atol: float
    extra: dict = field(default_factory=dict)


def _leaf(kind: str, name: str, v: np.ndarray):
    return (sd.param if kind == "param" else sd.input)(name, v.shape, v.dtype.name)


def corners(dtype: str) -> Graph:
    """Reductions, softmax family, broadcasting, reshapes and matmuls at awkward shapes."""
    rng = np.random.default_rng(7)
    specs = {
        "a": (7, 1, 33), "b": (1000, 3), "c": (2, 5000), "d": (3, 1500), "e": (300, 70), "s1": (1,),
        "s11": (1, 1), "sc": (), "p": (3, 1), "q": (1, 4), "r": (4,), "t": (2, 3, 4), "ninf": (3, 5),
        "m1": (1, 1), "m2": (1, 1), "m3": (5, 7), "m4": (7, 3), "m5": (65, 33), "m6": (33, 17),
        "m7": (130, 70), "m8": (130, 66), "m9": (66, 40), "m10": (40,), "m11": (40, 9), "bias": (66,),
        "bias2": (1, 9), "m12": (9, 40), "m13": (45, 70), "m14": (66, 70),
    }
    values = {k: rng.standard_normal(s).astype(dtype) for k, s in specs.items()}
    values["ninf"][1, :] = -np.inf  # a row of -inf: logsumexp = -inf, no NaN
    values["nan"] = np.array([1.0, np.nan, -2.0, 3.0], dtype)
    values["seed"] = np.asarray(-7, np.int64)
    values["step"] = np.asarray(2 ** 33 + 5, np.int64)
    L = {k: _leaf("input", k, v) for k, v in values.items()}
    a, b, c, d, e = L["a"], L["b"], L["c"], L["d"], L["e"]
    outs = {
        # reductions: keepdims, size-1 axes, several axes, total (fused accumulators, multi-block partials)
        "sum a axis 0 keepdims": sd.sum(a, 0, keepdims=True),
        "sum a axis 2": sd.sum(a, 2),
        "sum a axes (0,2)": sd.sum(a, (0, 2)),
        "max a axis 1 (size 1)": sd.max(a, 1),
        "max a axes (0,2)": sd.max(a, (0, 2), keepdims=True),
        "mean a": sd.mean(a),
        "sum b axis 0 (two-pass, thread per output)": sd.sum(b, 0),
        "max b axis 0 (two-pass)": sd.max(b, 0),
        "sum c axis 1 (two-pass, block per output)": sd.sum(c, 1),
        "sum e (multi-block partials)": sd.sum(e),
        "max e": sd.max(e),
        "sum e axis 1": sd.sum(sd.exp(e * 0.1), 1),
        # softmax family: rows of 33 (warp per row), 1500 (block per row), along axis 0, length 1
        "logsumexp a axis 2": sd.logsumexp(a, 2),
        "logsumexp a axis 0 keepdims": sd.logsumexp(a, 0, keepdims=True),
        "softmax a axis 0": sd.softmax(a, 0),
        "log_softmax a axis 2": sd.log_softmax(a, 2),
        "softmax d (block per row)": sd.softmax(d, 1),
        "log_softmax d": sd.log_softmax(d, 1),
        "logsumexp d": sd.logsumexp(d, 1),
        "softmax s11 (length 1)": sd.softmax(L["s11"], 1),
        "logsumexp -inf row": sd.logsumexp(L["ninf"], 1),
        # single elements and scalars
        "sum s1": sd.sum(L["s1"]),
        "max s1": sd.max(L["s1"]),
        "exp s11": sd.exp(L["s11"]),
        "scalar": sd.sigmoid(L["sc"]) * 3.0 + L["sc"],
        # broadcasting (3,1) x (1,4) x (4,) x () and a reduction of the result
        "broadcast": L["p"] * L["q"] + L["r"] - L["sc"],
        "broadcast reduced": sd.sum(sd.tanh(L["p"] + L["r"]), 0),
        # shapes: transpose, a reshape that is not a pure squeeze, a reshape of a transpose
        "transpose": sd.transpose(L["t"], (2, 0, 1)) * 2.0,
        "reshape": sd.reshape(L["t"], (3, 8)) + 1.0,
        "reshape of transpose": sd.reshape(sd.transpose(L["t"], (1, 0, 2)), (6, 4)) * L["r"],
        # NaN propagation: maximum / relu / max
        "nan maximum": sd.maximum(L["nan"], 0.5),
        "nan relu": sd.relu(L["nan"]),
        "nan max": sd.max(L["nan"]),
        # matmuls: 1x1x1, tile edges, 64-tiles with edges, transposed operands, bias epilogue, vectors
        "mm 1x1x1": L["m1"] @ L["m2"],
        "mm 5x7x3": L["m3"] @ L["m4"],
        "mm 65x33x17": L["m5"] @ L["m6"],
        "mm A^T B": sd.transpose(L["m7"]) @ L["m8"],
        "mm A B^T + bias": L["m13"] @ sd.transpose(L["m14"]) + L["bias"],
        "mm A^T B^T": sd.transpose(L["m9"]) @ sd.transpose(L["m8"]),
        "mm (66x40) @ (40,)": L["m9"] @ L["m10"],
        "mm (40,) @ (40x9) + (1,9)": L["m10"] @ L["m11"] + L["bias2"],
        "mm (9x40) @ (40x66)^T": L["m12"] @ sd.transpose(L["m9"]),
        # counter-based RNG: large flat indices (the index multiplier wraps), negative seed, step > 2**32
        "rand": rand_uniform(L["seed"], L["step"], (3, 70000), dtype, stream=5),
        "rand masked": L["e"] * apply("step", [rand_uniform(L["seed"], L["step"], (300, 70), dtype, stream=1) - 0.3]),
        "dropout": nn.functional.dropout(L["e"] + 1.0, 0.25, seed=L["seed"], step=L["step"], stream=2),
    }
    tol = (1e-10, 1e-11) if dtype == "float64" else (3e-5, 1e-5)
    return Graph(list(outs.values()), values, list(outs), *tol)


def mlp(dtype: str = "float32", batch: int = 8, sizes=(784, 256, 10), seed: int = 3) -> Graph:
    """The lecture's MLP: relu hidden layer, cross-entropy loss, gradients of every parameter."""
    rng = np.random.default_rng(seed)
    n_in, n_hid, n_out = sizes
    values = {
        "x": rng.standard_normal((batch, n_in)).astype(dtype),
        "y": rng.integers(0, n_out, batch).astype(np.int64),
        "W1": (rng.standard_normal((n_hid, n_in)) / np.sqrt(n_in)).astype(dtype),
        "b1": (0.1 * rng.standard_normal(n_hid)).astype(dtype),
        "W2": (rng.standard_normal((n_out, n_hid)) / np.sqrt(n_hid)).astype(dtype),
        "b2": (0.1 * rng.standard_normal(n_out)).astype(dtype),
    }
    x, y = sd.input("x", (batch, n_in), dtype), sd.input("y", (batch,), "int64")
    W1, b1 = sd.param("W1", (n_hid, n_in), dtype), sd.param("b1", (n_hid,), dtype)
    W2, b2 = sd.param("W2", (n_out, n_hid), dtype), sd.param("b2", (n_out,), dtype)
    logits = sd.relu(x @ W1.T + b1) @ W2.T + b2
    loss = sd.cross_entropy(logits, y)
    grads = sd.grad(loss, [W1, b1, W2, b2])
    tol = (1e-10, 1e-12) if dtype == "float64" else (2e-4, 2e-6)
    return Graph([loss, *grads, sd.softmax(logits)], values, ["loss", "dW1", "db1", "dW2", "db2", "probs"], *tol,
                 extra={"wrt": ["W1", "b1", "W2", "b2"]})


def fd_graphs() -> Graph:
    """Three float64 scalar functions (with their gradients) for finite-difference checks."""
    rng = np.random.default_rng(11)
    values = {
        "x": rng.standard_normal((5, 6)), "y": rng.integers(0, 3, 5).astype(np.int64),
        "W1": 0.5 * rng.standard_normal((4, 6)), "b1": 0.1 * rng.standard_normal(4),
        "W2": 0.5 * rng.standard_normal((3, 4)), "b2": 0.1 * rng.standard_normal(3),
        "u": rng.standard_normal((4, 7)), "v": rng.standard_normal((7,)),
        "z": rng.uniform(0.5, 2.0, (3, 9)),
    }
    L = {k: _leaf("param" if k in ("W1", "b1", "W2", "b2") else "input", k, v) for k, v in values.items()}
    h = sd.tanh(L["x"] @ L["W1"].T + L["b1"])
    y1 = sd.cross_entropy(h @ L["W2"].T + L["b2"], L["y"])
    y2 = sd.sum(sd.softmax(L["u"] * L["v"], 0) * sd.sigmoid(L["u"])) + sd.mean(sd.logsumexp(L["u"], 1)) \
        + sd.sum(sd.softplus(L["u"] - L["v"]) * 0.3)
    y3 = sd.max(sd.sum(sd.log(L["z"]) * sd.sqrt(L["z"]), 1)) + sd.sum(L["z"] ** 1.5) / sd.sum(sd.square(L["z"]))
    fns = {"y1": (y1, ["x", "W1", "b1", "W2", "b2"]), "y2": (y2, ["u", "v"]), "y3": (y3, ["z"])}
    outs, labels, index = [], [], {}
    for nm, (y, wrt) in fns.items():
        index[nm] = len(outs)
        outs.append(y)
        labels.append(nm)
        for w, g in zip(wrt, sd.grad(y, [L[k] for k in wrt])):
            outs.append(g)
            labels.append(f"d{nm}/d{w}")
    return Graph(outs, values, labels, 1e-10, 1e-12, extra={"fns": {k: (index[k], w) for k, (_, w) in fns.items()}})


GRAPHS: dict[str, Callable[[], Graph]] = {
    "corners_float64": lambda: corners("float64"),
    "corners_float32": lambda: corners("float32"),
    "mlp_float32": lambda: mlp("float32"),
    "fd_float64": fd_graphs,
}

_GRAPH_CACHE: dict = {}
_COMPILED: dict = {}


def graph(name: str) -> Graph:
    if name not in _GRAPH_CACHE:
        _GRAPH_CACHE[name] = GRAPHS[name]()
    return _GRAPH_CACHE[name]


def compiled(name: str, backend: str = "cuda-cpu"):
    """(compiled function, graph, cuda results, numpy results), once per graph and backend."""
    key = (name, backend)
    if key not in _COMPILED:
        g = graph(name)
        f = sd.compile(g.outputs, backend=backend)
        g.values = {k: v for k, v in g.values.items() if k in f.input_names}  # gradients may drop leaves
        got = f(**g.values)
        ref = sd.compile(g.outputs, backend="numpy")(**g.values)
        _COMPILED[key] = (f, g, got, ref)
    return _COMPILED[key]


def assert_close(got, ref, g: Graph, i: int) -> None:
    got, ref = np.asarray(got), np.asarray(ref)
    assert got.shape == ref.shape, f"{g.labels[i]}: shape {got.shape} != {ref.shape}"
    assert got.dtype == ref.dtype, f"{g.labels[i]}: dtype {got.dtype} != {ref.dtype}"
    np.testing.assert_allclose(got, ref, rtol=g.rtol, atol=g.atol, err_msg=g.labels[i])


# ---- numerics --------------------------------------------------------------------------------------------

@needs_cxx
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_corner_cases(dtype):
    f, g, got, ref = compiled(f"corners_{dtype}")
    for i in range(len(g.outputs)):
        assert_close(got[i], ref[i], g, i)
    # the code paths these shapes are meant to reach were generated
    kinds = {k["kind"] for k in f.kernel_stats}
    assert {"loop", "loop_total", "reduce", "reduce_total", "row", "matmul"} <= kinds, kinds
    names = {k["name"].split("_", 1)[1] for k in f.kernel_stats}
    assert {"sum_total", "max_total", "softmax", "log_softmax", "logsumexp"} <= names, names
    whats = " ".join(k["what"] + k["kind"] for k in f.kernel_stats)
    assert "rows of 1500" in whats and "rows of 33" in whats


@needs_cxx
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_rand_uniform_is_bit_exact(dtype):
    f, g, got, ref = compiled(f"corners_{dtype}")
    i = g.labels.index("rand")
    np.testing.assert_array_equal(got[i], rand_uniform_np(-7, 2 ** 33 + 5, (3, 70000), dtype, 5))
    np.testing.assert_array_equal(got[i], ref[i])
    for label in ("rand masked", "dropout"):
        j = g.labels.index(label)
        np.testing.assert_array_equal(got[j], ref[j])


@needs_cxx
def test_mlp_cross_entropy_and_gradients():
    f, g, got, ref = compiled("mlp_float32")
    for i in range(len(g.outputs)):
        assert_close(got[i], ref[i], g, i)
    assert np.isfinite(got[0]) and got[0] > 0
    # a second call reuses the device buffers and gives the same numbers (deterministic reductions)
    again = f(**g.values)
    for a, b in zip(got, again):
        np.testing.assert_array_equal(a, b)
    mm = [k for k in f.kernel_stats if k["kind"] == "matmul"]
    assert any(k["flops"] == 2 * 8 * 784 * 256 + 2 * 8 * 256 for k in mm)  # relu(x @ W1^T + b1): epilogue


@needs_cxx
@pytest.mark.parametrize("fn", ["y1", "y2", "y3"])
def test_finite_differences_float64(fn):
    f, g, got, ref = compiled("fd_float64")
    pos, wrt = g.extra["fns"][fn]
    for i in range(pos, pos + 1 + len(wrt)):
        assert_close(got[i], ref[i], g, i)
    rng = np.random.default_rng(5)
    eps = 1e-6
    for k, name in enumerate(wrt):
        grad = got[pos + 1 + k]
        x0 = g.values[name]
        for _ in range(3):
            v = rng.standard_normal(x0.shape)
            v /= np.linalg.norm(v)
            plus = f(**{**g.values, name: x0 + eps * v})[pos]
            minus = f(**{**g.values, name: x0 - eps * v})[pos]
            numeric = (plus - minus) / (2 * eps)
            analytic = float(np.sum(grad * v))
            assert abs(numeric - analytic) <= 1e-6 + 1e-5 * max(abs(numeric), abs(analytic)), \
                f"{fn} d/d{name}: analytic {analytic} vs finite difference {numeric}"


# ---- the generated source ----------------------------------------------------------------------------------

def _program(outputs):
    return lower(simplify(list(outputs)))


def test_source_structure():
    g = mlp("float32", batch=4, sizes=(12, 8, 3))
    p = _program(g.outputs)
    src, header = render_cuda(p, "mlp_demo")
    n_global = src.count("__global__ void")
    assert n_global == len(kernel_stats(p)) >= len(p.kernels)
    assert len(re.findall(r"SD_LAUNCH\(k\d+_", src)) == n_global
    assert src.count("SD_CHECK(cudaGetLastError());") == n_global  # every launch is checked
    assert 'extern "C" int mlp_demo_launch(void* const* args, void* stream_arg)' in src
    assert 'extern "C" int mlp_demo_run(void* const* host_args)' in src
    assert "#include <cuda_cpu.h>" in src and "#ifdef __CUDACC__" in src
    kernels = re.sub(r"//[^\n]*", "", src.split("// ---- kernels")[1].split("// ---- host side")[0])
    assert "expf(" in kernels and "logf(" in kernels and not re.search(r"\b(exp|log)\(", kernels)  # float32 math
    assert "__shfl_xor_sync" in src and "__syncthreads()" in src and "__shared__" in kernels
    # each kernel is preceded by a comment naming the graph nodes it computes and its launch shape
    lines = src.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("__global__"):
            assert lines[i - 1].startswith("//   launch: grid (") and "__launch_bounds__(" in line
            name = line.split("__launch_bounds__(")[1].split(") ")[1].split("(")[0]
            assert any(l.startswith(f"// {name}: ") for l in lines[i - 4:i]), name
    assert "// k0_matmul: matmul" in src and "x @ W1^T + b1" in src
    assert "int mlp_demo_launch(void* const* args, void* stream);" in header
    assert "MLP_DEMO_WORKSPACE_BYTES" in header and "[0] x: float32[4, 12] (input)" in header
    g64 = mlp("float64", batch=2, sizes=(5, 4, 3))
    src64 = re.sub(r"//[^\n]*", "", render_cuda(_program(g64.outputs), "m64")[0])
    assert "expf(" not in src64 and "exp(" in src64 and "log(" in src64


def test_source_is_deterministic_and_entry_names_are_c_identifiers():
    g = mlp("float32", batch=2, sizes=(6, 5, 3))
    p = _program(g.outputs)
    assert render_cuda(p, "a")[0] == render_cuda(_program(g.outputs), "a")[0]
    src, header = render_cuda(p, "my-model 2")
    assert 'extern "C" int my_model_2_launch(' in src and "int my_model_2_run(" in header
    assert 'extern "C" int sd_3d_launch(' in render_cuda(p, "3d")[0]


def long_index_graph() -> list:
    """More than 2**31 elements: rendered (and checked by nvcc) with 64-bit indices, never run."""
    x = sd.input("x", (1 << 16, 1 << 16), "float32")
    w = sd.input("w", (1 << 16, 8), "float32")
    return [sd.sum(sd.exp(x), 1), sd.softmax(x, 0), x @ w, sd.sum(x * 2.0)]


def test_long_indices_for_huge_shapes():
    src = render_cuda(_program(long_index_graph()), "big")[0]
    assert "for (long long i = (long long)blockIdx.x" in src and "for (int i =" not in src


def test_kernel_stats():
    g = mlp("float32")
    stats = kernel_stats(_program(g.outputs))
    keys = {"name", "kind", "grid", "block", "shared_bytes", "flops", "bytes_read", "bytes_written", "intensity"}
    assert all(keys <= set(s) for s in stats)
    assert len({s["name"] for s in stats}) == len(stats)
    for s in stats:
        assert s["block"][0] % 32 == 0 and 32 <= s["block"][0] <= 1024
        assert all(x >= 1 for x in s["grid"])
        assert s["bytes_written"] > 0
    mm = [s for s in stats if s["kind"] == "matmul"]
    assert {s["flops"] for s in mm} >= {2 * 8 * 784 * 256 + 2 * 8 * 256, 2 * 784 * 8 * 256}  # (bias and relu)
    x_bytes, w1_bytes = 8 * 784 * 4, 256 * 784 * 4
    first = next(s for s in mm if "x @ W1^T" in s["what"])
    assert first["bytes_read"] == x_bytes + w1_bytes + 256 * 4 and first["bytes_written"] == 8 * 256 * 4


def _small_leaves():
    return sd.input("x", (8, 16)), sd.input("W", (16, 4)), sd.input("b", (4,))


FLOP_CASES = {  # graph on x[8, 16], W[16, 4], b[4] -> [(kernel kind, FLOPs)] in program order
    "matmul": (lambda x, W, b: [x @ W], [("matmul", 2 * 8 * 16 * 4)]),
    "matmul+bias, tanh, mul": (lambda x, W, b: [sd.tanh(x @ W + b) * 2.0],
                               [("matmul", 2 * 8 * 16 * 4 + 8 * 4), ("loop", 2 * 8 * 4)]),
    "relu of a matmul": (lambda x, W, b: [sd.relu(x @ W)], [("matmul", 2 * 8 * 16 * 4 + 8 * 4)]),  # (epilogue)
    "three elementwise ops": (lambda x, W, b: [sd.exp(x) * x + 1.0], [("loop", 3 * 8 * 16)]),
    "square, summed to a scalar": (lambda x, W, b: [sd.sum(x * x)], [("loop", 2 * 8 * 16)]),
    "square, summed over rows": (lambda x, W, b: [sd.sum(x * x, 1)], [("reduce", 2 * 8 * 16)]),
}


@pytest.mark.parametrize("case", list(FLOP_CASES))
def test_kernel_stats_flops_are_exact(case):
    """2MNK per matrix product (+MN for a fused bias), one FLOP per element per elementwise op, and one
    per element added into a sum: the exact count for small known graphs."""
    build, expected = FLOP_CASES[case]
    stats = kernel_stats(_program(build(*_small_leaves())))
    assert [(s["kind"], s["flops"]) for s in stats] == expected


# ---- backend behaviour --------------------------------------------------------------------------------------

@needs_cxx
def test_cache_hit_and_uncached_build(tmp_path, monkeypatch):
    monkeypatch.setenv("SYMDIFF_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("SYMDIFF_CACHE", "1")
    x = sd.input("x", (3, 5), "float64")
    y = sd.sum(sd.exp(x) * 2.0, 1)
    f1 = sd.compile(y, backend="cuda-cpu")
    f2 = sd.compile(y, backend="cuda-cpu")
    assert not f1.cache_hit and f2.cache_hit and f1.library_path == f2.library_path
    assert Path(f1.library_path).parent.parent == tmp_path / "cuda"  # an entry of the compile cache
    f3 = sd.compile(y, backend="cuda-cpu", cache=False)
    assert not f3.cache_hit and not str(f3.library_path).startswith(str(tmp_path))
    v = np.random.default_rng(0).standard_normal((3, 5))
    for f in (f1, f2, f3):
        np.testing.assert_allclose(f(x=v), np.sum(np.exp(v) * 2.0, 1), rtol=1e-13)
    with pytest.raises(ValueError, match="expected shape"):
        f1(x=np.zeros((5, 3)))
    with pytest.raises(TypeError, match="missing input"):
        f1()
    out = f1(x=v)
    out[:] = 0  # outputs are fresh arrays
    assert np.all(f1(x=v) != 0)
    # the one-shot C entry on host pointers (what a C caller of the library would use)
    lib = ctypes.CDLL(str(f3.library_path))  # (a cached library is a cache entry: dlopen the uncached build)
    lib.sd_entry_run.argtypes = [ctypes.POINTER(ctypes.c_void_p)]
    res = np.zeros(3)
    assert lib.sd_entry_run((ctypes.c_void_p * 2)(v.ctypes.data, res.ctypes.data)) == 0
    np.testing.assert_allclose(res, np.sum(np.exp(v) * 2.0, 1), rtol=1e-13)


@pytest.mark.skipif(cb.gpu_info()[0], reason="a GPU is present: backend='cuda' works here (tests/test_cuda_gpu.py)")
def test_cuda_backend_without_gpu_names_cuda_cpu():
    x = sd.input("x", (3,), "float32")
    with pytest.raises(cb.CudaUnavailableError, match="cuda-cpu") as e:
        sd.compile(sd.exp(x), backend="cuda")
    assert "GPU" in str(e.value)
    assert isinstance(e.value, RuntimeError)


# ---- the emulation header -----------------------------------------------------------------------------------

EMULATION_TEST = r"""
#include <cuda_cpu.h>
__global__ void shuffles(int* out) {
    const int t = (int)threadIdx.x;
    out[0 * 64 + t] = __shfl_down_sync(0xffffffffu, t * 10, 3);
    out[1 * 64 + t] = __shfl_up_sync(0xffffffffu, t * 10, 2);
    out[2 * 64 + t] = __shfl_xor_sync(0xffffffffu, t * 10, 5);
    out[3 * 64 + t] = __shfl_sync(0xffffffffu, t * 10, 7);
    out[4 * 64 + t] = __shfl_xor_sync(0xffffffffu, t * 10, 1, 8);
    double d = __shfl_down_sync(0xffffffffu, t + 0.5, 16);
    out[5 * 64 + t] = (int)(d * 2);
}
__global__ void barrier_order(int* out) {  // a block-wide reversal through shared memory
    __shared__ int s[200];
    const int t = (int)threadIdx.x;
    s[t] = t * t;
    __syncthreads();
    const int v = s[(int)blockDim.x - 1 - t];
    __syncthreads();
    s[t] = v + 1;
    __syncthreads();
    out[blockIdx.x * blockDim.x + t] = s[t];
}
__global__ void indices(int* out) {  // 2-D grid of 3-D blocks
    const int b = (int)(blockIdx.y * gridDim.x + blockIdx.x);
    const int t = (int)((threadIdx.z * blockDim.y + threadIdx.y) * blockDim.x + threadIdx.x);
    out[b * 24 + t] = b * 1000 + (int)threadIdx.z * 100 + (int)threadIdx.y * 10 + (int)threadIdx.x;
}
__global__ void atomics(double* acc, unsigned long long* cnt) {
    atomicAdd(acc, 0.5);
    atomicAdd(cnt, 1ull);
}
__global__ void divergent(int* out) {
    if (threadIdx.x > 0) __syncthreads();  // block-divergent barrier: the fast path stops with a message
    out[threadIdx.x] = 1;
}
__global__ void deadlock(int* out) {
    if (threadIdx.x == 0) __syncwarp(); else __syncthreads();  // never completes
    out[threadIdx.x] = 1;
}
int main(int argc, char** argv) {
    int* out = (int*)calloc(4096, sizeof(int));
    SD_LAUNCH(shuffles, dim3(1), dim3(64), 0, 0, out);
    for (int t = 0; t < 64; ++t) {
        int lane = t & 31, base = t - lane;
        int e[6] = {lane + 3 < 32 ? (t + 3) * 10 : t * 10, lane >= 2 ? (t - 2) * 10 : t * 10,
                    (base + (lane ^ 5)) * 10, (base + 7) * 10, (base + (lane ^ 1)) * 10,
                    lane + 16 < 32 ? 2 * (t + 16) + 1 : 2 * t + 1};
        for (int k = 0; k < 6; ++k)
            if (out[k * 64 + t] != e[k]) { printf("shuffle %d lane %d: %d != %d\n", k, t, out[k * 64 + t], e[k]); return 1; }
    }
    SD_LAUNCH(barrier_order, dim3(3), dim3(200), 0, 0, out);
    for (int b = 0; b < 3; ++b)
        for (int t = 0; t < 200; ++t)
            if (out[b * 200 + t] != (199 - t) * (199 - t) + 1) { printf("barrier %d %d\n", b, t); return 1; }
    SD_LAUNCH(indices, dim3(2, 3), dim3(2, 3, 4), 0, 0, out);
    for (int b = 0; b < 6; ++b)
        for (int z = 0; z < 4; ++z) for (int y = 0; y < 3; ++y) for (int x = 0; x < 2; ++x)
            if (out[b * 24 + (z * 3 + y) * 2 + x] != b * 1000 + z * 100 + y * 10 + x) { printf("index\n"); return 1; }
    double acc = 0; unsigned long long cnt = 0;
    SD_LAUNCH(atomics, dim3(37), dim3(96), 0, 0, &acc, &cnt);
    if (acc != 37 * 96 * 0.5 || cnt != 37 * 96) { printf("atomics %f %llu\n", acc, cnt); return 1; }
    SD_LAUNCH(shuffles, dim3(1), dim3(2048), 0, 0, out);
    if (cudaGetLastError() != cudaErrorInvalidConfiguration) { printf("config\n"); return 1; }
    printf("ok\n");
    fflush(stdout);
    if (argc > 1 && argv[1][0] == 'd' && argv[1][1] == 'i') SD_LAUNCH(divergent, dim3(1), dim3(64), 0, 0, out);
    if (argc > 1 && argv[1][0] == 'd' && argv[1][1] == 'e') SD_LAUNCH(deadlock, dim3(1), dim3(64), 0, 0, out);
    return 0;
}
"""


@needs_cxx
def test_emulation_header(tmp_path):
    src = tmp_path / "emu.cu"
    src.write_text(EMULATION_TEST)
    exe = tmp_path / "emu"
    cxx = cb.host_compiler()
    r = subprocess.run([cxx, "-x", "c++", "-std=c++20", "-O2", "-pthread", f"-I{cb.CODEGEN_DIR}", "-o", str(exe), str(src)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    for env in ({}, {"SD_CUDA_CPU_THREADS": "3"}, {"SD_CUDA_CPU_DIRECT": "0"}):
        r = subprocess.run([str(exe)], capture_output=True, text=True, env={**os.environ, **env}, timeout=120)
        assert r.returncode == 0 and r.stdout.strip() == "ok", (env, r.stdout, r.stderr)
    r = subprocess.run([str(exe), "divergent"], capture_output=True, text=True, timeout=120)
    assert r.returncode != 0 and "block-divergent synchronisation" in r.stderr, r.stderr
    r = subprocess.run([str(exe), "deadlock"], capture_output=True, text=True, timeout=120)
    assert r.returncode != 0 and "deadlock: 63 thread(s) wait at __syncthreads, 1 at a warp barrier" in r.stderr, r.stderr


# ---- nvcc -----------------------------------------------------------------------------------------------------

NVCC = cb.find_nvcc()


def _ptx_archs() -> list:
    archs = cb.nvcc_archs(NVCC) if NVCC else ()
    older = [a for a in archs if int(a[3:]) < 90]
    return ["sm_90"] + ([older[0]] if older else [])


@pytest.mark.skipif(NVCC is None, reason="nvcc not found: the generated sources cannot be checked for GPU targets")
def test_nvcc_compiles_every_generated_source_without_warnings():
    sources = {}
    for name in GRAPHS:
        sources[name] = render_cuda(_program(graph(name).outputs), "sd_entry")[0]
    small = mlp("float32", batch=4, sizes=(12, 8, 3))
    sources["source_structure"] = render_cuda(_program(small.outputs), "mlp_demo")[0]
    x = sd.input("x", (3, 5), "float64")
    sources["cache_test"] = render_cuda(_program([sd.sum(sd.exp(x) * 2.0, 1)]), "sd_entry")[0]
    sources["long_index"] = render_cuda(_program(long_index_graph()), "big")[0]
    archs = _ptx_archs()
    assert "sm_90" in archs
    jobs = [(name, arch) for name in sources for arch in archs]
    with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as pool:  # nvcc runs as subprocesses
        results = list(pool.map(lambda j: cb.nvcc_ptx(sources[j[0]], j[1], NVCC), jobs))
    failures = [f"{name} [{arch}] exit {rc}:\n{textwrap.indent(msgs[:3000], '    ')}"
                for (name, arch), (rc, msgs) in zip(jobs, results) if rc != 0 or msgs]
    assert not failures, "\n".join(failures)
