"""Zero-size tensors (a dimension of 0): build, compile and run on every backend with NumPy's results.

One graph per backend holds every case (elementwise, broadcasting, reshape, transpose, reductions over an
empty axis, mean -> nan, matmul with K = 0 / M = 0 / N = 0, softmax of empty rows, empty constants,
gradients), compared with NumPy computing the same thing directly."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

import symdiff as sd

from symdiff.codegen.cuda import backend as cb

BACKENDS = ["numpy", "llvm", "cuda-cpu"] + (["cuda"] if cb.gpu_info()[0] else [])


def _leaves():
    return dict(
        x=sd.input("x", (0, 3), "float64"),  # no rows
        e=sd.input("e", (2, 0), "float64"),  # rows of length 0
        b=sd.input("b", (3,), "float64"),
        k=sd.input("k", (3, 0), "float64"),  # K = 0 operand
        w=sd.param("w", (0, 4), "float64"),
        c=sd.input("c", (4,), "float64"),
        h=sd.input("h", (0, 3), "float32"),
    )


def _values():
    r = np.random.default_rng(0)
    return dict(x=np.zeros((0, 3)), e=np.zeros((2, 0)), b=r.standard_normal(3), k=np.zeros((3, 0)),
                w=np.zeros((0, 4)), c=r.standard_normal(4), h=np.zeros((0, 3), np.float32))


def _graph():
    """name -> (tensor, NumPy reference as a function of the values)."""
    L = _leaves()
    x, e, b, k, w, c, h = (L[n] for n in "xebkwch")
    loss = sd.sum(sd.tanh(x) * b) + sd.sum(sd.exp(k @ w + c)) + sd.sum(b * b)
    gx, gb, gk, gw, gc = sd.grad(loss, [x, b, k, w, c])
    t = lambda v: np.tanh(v)  # noqa: E731
    cases = {
        "elementwise": (sd.exp(x) * 2.0 - x, lambda v: np.exp(v["x"]) * 2 - v["x"]),
        "broadcast": (x + b, lambda v: v["x"] + v["b"]),
        "broadcast_const": (sd.const(np.zeros((0, 1))) + b, lambda v: np.zeros((0, 1)) + v["b"]),
        "const_empty": (x * sd.const(np.ones((0, 3))), lambda v: v["x"]),
        "reshape": (sd.reshape(x, (3, 0, 1)), lambda v: v["x"].reshape(3, 0, 1)),
        "reshape_infer": (sd.reshape(e, (-1, 4)), lambda v: v["e"].reshape(-1, 4)),
        "transpose": (sd.transpose(x), lambda v: v["x"].T),
        "broadcast_to": (sd.broadcast_to(b, (0, 3)), lambda v: np.broadcast_to(v["b"], (0, 3))),
        "sum_empty_axis": (sd.sum(x, axis=0), lambda v: v["x"].sum(0)),
        "sum_keepdims": (sd.sum(sd.exp(x), axis=0, keepdims=True) + b, lambda v: np.exp(v["x"]).sum(0, keepdims=True) + v["b"]),
        "sum_of_empty_rows": (sd.sum(e, axis=1), lambda v: v["e"].sum(1)),
        "sum_nonempty_axis": (sd.sum(x, axis=1), lambda v: v["x"].sum(1)),
        "sum_all": (sd.sum(sd.tanh(x)), lambda v: np.tanh(v["x"]).sum()),
        "mean_empty_axis": (sd.mean(x, axis=0), lambda v: np.full(3, np.nan)),
        "mean_all": (sd.mean(e), lambda v: np.float64(np.nan)),
        "matmul_k0": (k @ w, lambda v: v["k"] @ v["w"]),
        "matmul_k0_bias": (k @ w + c, lambda v: v["k"] @ v["w"] + v["c"]),
        "matmul_m0": (x @ sd.transpose(x), lambda v: v["x"] @ v["x"].T),
        "matmul_n0": (b @ sd.transpose(x), lambda v: v["b"] @ v["x"].T),
        "softmax_rows_of_0": (sd.softmax(e, axis=-1), lambda v: v["e"]),
        "softmax_no_rows": (sd.softmax(x, axis=0), lambda v: v["x"]),
        "log_softmax": (sd.log_softmax(e), lambda v: v["e"]),
        "logsumexp_empty": (sd.logsumexp(e, axis=-1), lambda v: np.full(2, -np.inf)),
        "float32": (sd.sum(sd.sigmoid(h), axis=0), lambda v: np.zeros(3, np.float32)),
        # ops of the tensor language on empty operands / with empty results
        "slice_to_empty": (b[3:], lambda v: v["b"][3:]),
        "sum_of_empty_slice": (sd.sum(sd.reshape(b, (1, 3))[1:], axis=0), lambda v: np.zeros(3)),
        "concatenate_empty": (sd.concatenate([x, sd.reshape(b, (1, 3))], 0), lambda v: v["b"][None]),
        "prod_empty_axis": (sd.prod(x, axis=0), lambda v: np.ones(3)),
        "cumsum_empty": (sd.cumsum(x, axis=0), lambda v: v["x"]),
        "batched_matmul_batch_0": (sd.reshape(x, (0, 1, 3)) @ sd.reshape(b, (3, 1)), lambda v: np.zeros((0, 1, 1))),
        "take_no_indices": (sd.take(b, np.zeros(0, np.int64)), lambda v: np.zeros(0)),
        "pad_empty": (sd.pad(x, ((1, 0), (0, 0))), lambda v: np.zeros((1, 3))),
        "loss": (loss, lambda v: np.sum(np.exp(v["c"])) * 3 + np.sum(v["b"] ** 2)),
        "grad_x": (gx, lambda v: np.zeros((0, 3))),
        "grad_b": (gb, lambda v: 2 * v["b"] + np.sum(t(v["x"]), 0)),
        "grad_k": (gk, lambda v: np.zeros((3, 0))),
        "grad_w": (gw, lambda v: np.zeros((0, 4))),
        "grad_c": (gc, lambda v: 3 * np.exp(v["c"])),
    }
    return cases


@pytest.fixture(scope="module")
def cases():
    return _graph()


@pytest.mark.parametrize("backend", BACKENDS)
def test_zero_size_graph_matches_numpy(backend, cases):
    names = list(cases)
    f = sd.compile([cases[n][0] for n in names], backend)
    vals = _values()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no RuntimeWarning from the backend either
        got = f(**vals)
    for name, g in zip(names, got):
        node, ref = cases[name]
        want = np.asarray(ref(vals), dtype=node.dtype)
        assert g.shape == want.shape == node.shape, f"{backend} {name}: shape {g.shape}, expected {want.shape}"
        assert g.dtype == np.dtype(node.dtype), f"{backend} {name}: dtype {g.dtype}"
        np.testing.assert_allclose(g, want, rtol=1e-9 if backend == "cuda" else 1e-12, atol=1e-12, equal_nan=True, err_msg=f"{backend} {name}")


def test_zero_size_leaves_and_errors():
    x = sd.input("x", (0, 3))
    assert x.shape == (0, 3) and x.size == 0
    assert sd.param("p", 0).shape == (0,)
    with pytest.raises(ValueError, match="non-negative integers"):
        sd.input("y", (2, -1))
    with pytest.raises(ValueError, match="max: zero-size reduction has no identity"):
        sd.max(x, axis=0)
    assert sd.max(x, axis=1).shape == (0,)  # the reduced axis is not empty: fine, as NumPy
    with pytest.raises(ValueError, match="reshape"):
        sd.reshape(x, (-1, 0))


def test_zero_size_gradient_check():
    x = sd.input("x", (0, 3), "float64")
    b = sd.input("b", (3,), "float64")
    y = sd.sum(sd.tanh(x) * b) + sd.sum(b * b)
    rep = sd.check_grad(y, [x, b], {"x": np.zeros((0, 3)), "b": np.arange(3.0)})
    assert rep.passed and rep["x"].worst == "(empty)"
