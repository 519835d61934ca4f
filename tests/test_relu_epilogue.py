"""The relu epilogue (codegen/lower.py): relu(A B (+ b)) is stored by the product itself when nothing else
reads the product, on llvm and cuda-cpu; relu's derivative is stated on its output (H(relu(x)) = H(x)), so
training graphs qualify. Values against the numpy oracle, NaN included; the fusion rules by kernel."""
from __future__ import annotations

import numpy as np
import pytest

import symdiff as sd
from symdiff.codegen.kernel_ir import LoopKernel, MatmulKernel
from symdiff.codegen.lower import lower
from symdiff.codegen.target import host_target
from symdiff.ir import toposort

BACKENDS = ["llvm", "cuda-cpu"]


def _kernels(outs):
    return lower(sd.simplify(list(outs)), host_target(2)).kernels


def _mlp(dtype, M=33, K=70, N=45, H=20):
    x, W, b = sd.input("x", (M, K), dtype), sd.input("W", (K, N), dtype), sd.input("b", (N,), dtype)
    V = sd.input("V", (H, N), dtype)
    h = sd.relu(x @ W + b)                    # bias and relu
    h2 = sd.relu(h @ sd.transpose(V))         # relu alone, op(B) transposed
    loss = sd.sum(h2 * h2)
    return [h, h2, loss, *sd.grad(loss, [W, b, x, V])]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_values_and_gradients_match_numpy(backend, dtype):
    rng = np.random.default_rng(4)
    outs = _mlp(dtype)
    feeds = {"x": rng.standard_normal((33, 70)), "W": rng.standard_normal((70, 45)),
             "b": rng.standard_normal(45), "V": rng.standard_normal((20, 45))}
    feeds = {k: v.astype(dtype) for k, v in feeds.items()}
    feeds["x"][0, 0] = np.nan  # relu keeps NaN (a whole row of h, then of h2)
    feeds["b"][3] = -1e4       # a column clamped to 0 everywhere
    want = sd.compile(outs, "numpy")(**feeds)
    f = sd.compile(outs, backend)
    assert sum(isinstance(k, MatmulKernel) and k.relu for k in f.program.kernels) == 2
    for i, (got, ref) in enumerate(zip(f(**feeds), want)):
        scale = np.nanmax(np.abs(ref)) if np.isfinite(ref).any() else 1.0
        np.testing.assert_allclose(got, ref, rtol=1e-4 if dtype == "float32" else 1e-10,
                                   atol=(1e-5 if dtype == "float32" else 1e-12) * scale, equal_nan=True,
                                   err_msg=f"output {i} on {backend}")
    assert np.isnan(want[0][0]).all() and (want[0][1:, 3] == 0).all()


def test_relu_derivative_reads_the_output():
    x = sd.input("x", (4, 3))
    y = sd.relu(x)
    steps = [n for n in toposort([sd.grad(sd.sum(y * y), x)]) if n.op == "step"]
    assert steps and all(s.inputs[0] is y for s in steps)


def test_not_fused_where_the_product_is_read_elsewhere():
    x, W = sd.input("x", (16, 8)), sd.input("W", (8, 12))
    p = x @ W
    cases = {
        "the product is an output": [sd.relu(p), p],
        "the product has another reader": [sd.relu(p) + sd.tanh(p)],
        "a batched product": [sd.relu(sd.input("a", (3, 16, 8)) @ sd.input("c", (3, 8, 12)))],
    }
    for name, outs in cases.items():
        ks = _kernels(outs)
        assert not any(isinstance(k, MatmulKernel) and k.relu for k in ks), name
        assert any(isinstance(k, LoopKernel) for k in ks), name
    fused = _kernels([sd.relu(p) * 2.0])
    assert [k.relu for k in fused if isinstance(k, MatmulKernel)] == [True]


def test_symbolic_batch_keeps_the_loop():
    x, W = sd.input("x", ("n", 8)), sd.input("W", (8, 12))
    ks = _kernels([sd.relu(x @ W)])
    assert not any(isinstance(k, MatmulKernel) and k.relu for k in ks)
    f = sd.compile([sd.relu(x @ W)], "llvm")
    rng = np.random.default_rng(0)
    xv, wv = rng.standard_normal((5, 8)).astype("float32"), rng.standard_normal((8, 12)).astype("float32")
    np.testing.assert_allclose(f(x=xv, W=wv)[0], np.maximum(xv @ wv, 0), rtol=1e-5, atol=1e-6)
