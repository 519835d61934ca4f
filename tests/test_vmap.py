"""``sd.vmap``: per-example gradients, nested vmap, in_axes/out_axes, errors; a few whole batched graphs on
the compiled backends (ONE compile per backend), each checked against a Python loop over examples."""
from __future__ import annotations

import numpy as np
import pytest

import symdiff as sd
from symdiff.codegen.cuda import backend as cb

N, D, H, C = 4, 3, 5, 4  # examples, features, hidden units, classes
RNG = np.random.default_rng(7)
VALUES = {"X": RNG.standard_normal((N, D)), "Y": RNG.integers(0, C, N).astype(np.int64),
          "W1": RNG.standard_normal((D, H)), "b1": RNG.standard_normal(H), "W2": RNG.standard_normal((H, C)),
          "S": RNG.standard_normal((N, 2, D)), "M": RNG.standard_normal((N, D, 2)),
          "CX": RNG.standard_normal((N, 2, 2, 7)), "CW": RNG.standard_normal((N, 3, 2, 3)),
          "Z": RNG.standard_normal((2, N, D))}
X = sd.input("X", (N, D), "float64")
Y = sd.input("Y", (N,), "int64")
W1 = sd.param("W1", (D, H), "float64")
b1 = sd.param("b1", (H,), "float64")
W2 = sd.param("W2", (H, C), "float64")
S = sd.input("S", (N, 2, D), "float64")
M = sd.input("M", (N, D, 2), "float64")
CX = sd.input("CX", (N, 2, 2, 7), "float64")  # per example: 2 signals (C=2, L=7)
CW = sd.input("CW", (N, 3, 2, 3), "float64")  # per example: a conv weight (O=3, C=2, K=3)
Z = sd.input("Z", (2, N, D), "float64")  # mapped along axis 1
PARAMS = [W1, b1, W2]


def loss(x, y):
    """Softmax cross-entropy of a one-hidden-layer MLP on one example (x: (D,), y: a scalar label)."""
    h = sd.tanh(x @ W1 + b1)
    return sd.cross_entropy(h @ W2, y)


def run(outputs, backend="numpy", **extra):
    f = sd.compile(outputs, backend)
    vals = {**VALUES, **extra}
    return f(**{k: vals[k] for k in f.input_names})


def example_fn(fn, *leaves):
    """fn on per-example leaves and a NumPy evaluator of it for one example's values."""
    ph = [sd.input(f"ex{i}", leaf.shape[1:], leaf.dtype) for i, leaf in enumerate(leaves)]
    out = fn(*ph)
    outs = list(out) if isinstance(out, (tuple, list)) else [out]
    f = sd.compile(outs, "numpy")

    def at(b):
        vals = {**VALUES, **{p.name: VALUES[leaf.name][b] for p, leaf in zip(ph, leaves)}}
        return f(**{k: vals[k] for k in f.input_names})
    return at


def loop(fn, *leaves):
    """The reference: fn per example, stacked on axis 0 (one array per output)."""
    at = example_fn(fn, *leaves)
    per = [at(b) for b in range(N)]
    return [np.stack([p[k] for p in per]) for k in range(len(per[0]))]


# -- per-example gradients -----------------------------------------------------------------------------------------

def per_example_grads(x, y):
    return tuple(sd.grad(loss(x, y), PARAMS))


def test_per_example_gradients_numpy():
    got = sd.vmap(per_example_grads)(X, Y)
    assert [g.shape for g in got] == [(N, D, H), (N, H), (N, H, C)]
    for g, want in zip(run(list(got)), loop(per_example_grads, X, Y)):
        np.testing.assert_allclose(g, want, rtol=1e-12, atol=1e-14)
    # the parameters stay unbatched: the batched graph reads W1, b1, W2 themselves, not B copies
    seen = {n.name for n in sd.ir.toposort(list(got)) if n.is_leaf}
    assert seen == {"X", "Y", "W1", "b1", "W2"}


def test_per_example_gradients_sum_to_the_batch_gradient():
    got = sd.vmap(per_example_grads)(X, Y)
    batch_loss = sd.cross_entropy(sd.tanh(X @ W1 + b1) @ W2, Y) * float(N)  # the mean over examples, times N
    for g, full in zip(run([sd.sum(g, axis=0) for g in got]), run(sd.grad(batch_loss, PARAMS))):
        np.testing.assert_allclose(g, full, rtol=1e-12, atol=1e-14)


# -- whole graphs on every backend, one compile each -----------------------------------------------------------

def _graphs():
    """(name, batched outputs, reference per output)."""
    cases = []

    def add(name, fn, *leaves, in_axes=0):
        out = sd.vmap(fn, in_axes=in_axes)(*leaves)
        outs = list(out) if isinstance(out, (tuple, list)) else [out]
        cases.append((name, outs, loop(fn, *leaves) if in_axes == 0 else None))

    add("per-example grads", per_example_grads, X, Y)
    add("reduction + softmax", lambda x: (sd.sum(sd.softmax(x) * x), sd.max(x), sd.logsumexp(x)), X)
    add("batched matmul", lambda s, m: sd.matmul(s, m) @ s, S, M)
    add("matmul with a param", lambda s: sd.sum(s @ W1, axis=0), S)
    add("gather / scan / sort", lambda x: (sd.take_along_axis(sd.cumsum(x), sd.argsort(x), 0), sd.sort(x),
                                           x.at[1].add(2.0), sd.argmax(x)), X)
    add("conv, batched data", lambda x: sd.conv1d(x, CW[0], padding=1), CX)
    add("conv, batched weight", lambda w: sd.conv1d(CX[0], w, stride=2), CW)
    add("conv, both batched + grads", lambda x, w: (sd.conv1d(x, w, padding=((1, 0),)),
                                                    *sd.grad(sd.sum(sd.tanh(sd.conv1d(x, w, padding=((1, 0),)))), [x, w])),
        CX, CW)
    return cases


CASES = _graphs()
BACKENDS = ["numpy", "llvm", "cuda-cpu"]


@pytest.fixture(scope="module")
def whole_results():
    outs = [o for _, os_, _ in CASES for o in os_]
    return {be: run(outs, be) for be in BACKENDS if be != "cuda-cpu" or cb.host_compiler() is not None}


@pytest.mark.parametrize("backend", BACKENDS)
def test_whole_batched_graphs(backend, whole_results):
    if backend not in whole_results:
        pytest.skip("no host C++ compiler for cuda-cpu")
    got = iter(whole_results[backend])
    for name, outs, refs in CASES:
        for k, ref in enumerate(refs):
            np.testing.assert_allclose(next(got), ref, rtol=1e-11, atol=1e-12, err_msg=f"{backend}: {name} [{k}]")
