"""``sd.vmap``: per-example gradients, nested vmap, in_axes/out_axes, errors; a few whole batched graphs on
the compiled backends (ONE compile per backend), each checked against a Python loop over examples."""
from __future__ import annotations

import numpy as np
import pytest

import symdiff as sd
from symdiff.codegen.cuda import backend as cb
from symdiff.ops_random import rand_uniform, rand_uniform_np

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

    def add(name, fn, *leaves, refs=None):
        out = fn(*leaves) if refs is not None else sd.vmap(fn)(*leaves)
        outs = list(out) if isinstance(out, (tuple, list)) else [out]
        cases.append((name, outs, refs if refs is not None else loop(fn, *leaves)))

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
    sv, zv = VALUES["S"], VALUES["Z"]
    add("nested vmap", lambda s: sd.vmap(sd.vmap(lambda r: sd.logsumexp(r) * r[0]))(s), S,
        refs=[np.log(np.exp(sv).sum(-1)) * sv[..., 0]])
    add("in_axes=1, out_axes=1", lambda z: sd.vmap(lambda r: sd.softmax(r @ W1), in_axes=1, out_axes=1)(z), Z,
        refs=[np.moveaxis(_softmax(np.einsum("ibd,dh->bih", zv, VALUES["W1"])), 0, 1)])
    return cases


def _softmax(a):
    e = np.exp(a - a.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


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


# -- in_axes / out_axes, nesting ---------------------------------------------------------------------------------

def test_in_axes_tuple_none_and_negative():
    # Z is (2, N, D) mapped along axis 1 (and -2); W1 passed through unmapped (None)
    f = lambda z, w: sd.sum(sd.tanh(z @ w), axis=1)  # noqa: E731  per example z: (2, D) -> (2,)
    want = np.stack([np.tanh(VALUES["Z"][:, b] @ VALUES["W1"]).sum(axis=1) for b in range(N)])
    for axes in ((1, None), (-2, None)):
        got = sd.vmap(f, in_axes=axes)(Z, W1)
        assert got.shape == (N, 2)
        np.testing.assert_allclose(run(got), want, rtol=1e-12)


def test_out_axes_moves_the_batch_axis():
    fn = lambda x: (sd.outer(x, x), sd.sum(x))  # noqa: E731
    a, s = sd.vmap(fn, out_axes=(2, 0))(X)
    assert a.shape == (D, D, N) and s.shape == (N,)
    ga, gs = run([a, s])
    xv = VALUES["X"]
    np.testing.assert_allclose(ga, np.einsum("bi,bj->ijb", xv, xv), rtol=1e-12)
    np.testing.assert_allclose(gs, xv.sum(axis=1), rtol=1e-12)
    b = sd.vmap(lambda x: sd.outer(x, x), out_axes=-1)(X)
    np.testing.assert_allclose(run(b), ga, rtol=1e-12)
    # out_axes=None: an output that does not depend on the mapped argument is returned unbatched
    c, w = sd.vmap(lambda x: (x * 2.0, sd.sum(W1)), out_axes=(0, None))(X)
    assert c.shape == (N, D) and w.shape == ()


def test_an_output_independent_of_the_batch_is_broadcast():
    out = sd.vmap(lambda x: sd.sum(W1 * W1))(X)
    assert out.shape == (N,)
    np.testing.assert_allclose(run(out), np.full(N, (VALUES["W1"] ** 2).sum()), rtol=1e-12)


def test_nested_vmap():
    # outer over examples of S (N, 2, D), inner over its 2 rows: a per-row softmax cross-entropy-like score
    inner = lambda r: sd.logsumexp(r * 2.0) - sd.max(r)  # noqa: E731
    got = sd.vmap(sd.vmap(inner))(S)
    assert got.shape == (N, 2)
    sv = VALUES["S"]
    want = np.log(np.exp(2 * sv).sum(axis=-1)) - sv.max(axis=-1)
    np.testing.assert_allclose(run(got), want, rtol=1e-12)
    # the inner function closing over the outer example (a batched tensor the inner vmap does not map)
    pairs = sd.vmap(lambda s: sd.vmap(lambda r: sd.sum(r * s[0]))(s))(S)
    np.testing.assert_allclose(run(pairs), np.einsum("bid,bd->bi", sv, sv[:, 0]), rtol=1e-12)


def test_nested_vmap_of_per_example_gradients_and_arrays():
    # the squared per-example gradient norm of the MLP, for two label sets: vmap over vmap over sd.grad
    labels = np.stack([VALUES["Y"], (VALUES["Y"] + 1) % C])
    ylab = sd.input("YL", labels.shape, "int64")
    sqnorm = lambda x, y: sd.sum(sd.grad(loss(x, y), W2) ** 2)  # noqa: E731
    norms = sd.vmap(lambda y2: sd.vmap(sqnorm)(X, y2))(ylab)
    assert norms.shape == (2, N)
    got = run(norms, YL=labels)
    x1, y1 = sd.input("x1", (D,), "float64"), sd.input("y1", (), "int64")
    f = sd.compile(sqnorm(x1, y1), "numpy")
    want = [[f(**{k: {**VALUES, "x1": VALUES["X"][b], "y1": labels[j, b]}[k] for k in f.input_names})
             for b in range(N)] for j in range(2)]
    np.testing.assert_allclose(got, np.array(want), rtol=1e-12)
    arr = sd.vmap(lambda x: sd.sum(x * x))(VALUES["X"])  # a NumPy array becomes a constant
    np.testing.assert_allclose(run(arr), (VALUES["X"] ** 2).sum(axis=1), rtol=1e-12)


# -- errors ---------------------------------------------------------------------------------------------------------

def _raises(exc, match, fn, *args):
    with pytest.raises(exc, match=match):
        fn(*args)


def test_errors_name_vmap_and_the_argument():
    f = lambda x, y: x + y  # noqa: E731
    _raises(ValueError, r"vmap\(<lambda>\): mapped axes have different sizes: argument 0 has size 4 .* argument 1 "
            r"has size 2", sd.vmap(f), X, sd.input("q", (2, D), "float64"))
    _raises(ValueError, r"vmap: in_axes\[0\]=2 is out of bounds for a tensor of rank 2", sd.vmap(f, in_axes=(2, 0)), X, X)
    _raises(ValueError, r"vmap: in_axes has 3 entries but there are 2 arguments", sd.vmap(f, in_axes=(0, 0, 0)), X, X)
    _raises(TypeError, r"vmap: in_axes\[1\] must be an int, None", sd.vmap(f, in_axes=(0, "a")), X, X)
    _raises(ValueError, r"vmap\(<lambda>\): no argument is mapped", sd.vmap(f, in_axes=None), X, X)
    _raises(ValueError, r"argument 0 is a 0-d tensor", sd.vmap(lambda x: x), sd.input("s0", (), "float64"))
    _raises(TypeError, r"vmap: argument 0 is mapped .* but is a str", sd.vmap(lambda x: x), "text")
    _raises(TypeError, r"vmap\(per_example\): fn must return a symdiff tensor or a tuple/list of them, got float",
            sd.vmap(_per_example_float), X)
    _raises(TypeError, r"got a list holding Node, int", sd.vmap(lambda x: [x, 3]), X)
    _raises(ValueError, r"vmap: out_axes\[0\]=3 is out of bounds for a tensor of rank 2",
            sd.vmap(lambda x: x, out_axes=3), X)
    _raises(ValueError, r"out_axes\[0\] is None but output 0 depends on a mapped argument",
            sd.vmap(lambda x: x, out_axes=None), X)
    _raises(TypeError, r"keyword arguments are not supported", lambda: sd.vmap(f)(x=X, y=X))
    _raises(TypeError, r"vmap: fn must be callable", sd.vmap, 3)


def _per_example_float(x):
    return 1.5


_per_example_float.__name__ = "per_example"


def test_batch_validates_its_substitution():
    from symdiff.batching import batch
    x = sd.input("bx", (3,), "float64")
    _raises(ValueError, r"batch: the replacement of 'bx' \(float64\[3\]\) must be float64\[2, 3\]", batch, [x * 2.0],
            {x: sd.input("bx2", (3, 3), "float64")}, 2)
    _raises(ValueError, r"must be float64\[2, 3\].*got float32\[2, 3\]", batch, [x], {x: sd.input("bx3", (2, 3))}, 2)
    _raises(ValueError, r"batch: size must be a non-negative int", batch, [x], {}, -1)


def test_batch_of_a_linear_graph_with_a_constant_basis():
    """How sd.jacobian uses batch: a tangent leaf replaced by the identity basis gives the Jacobian in ONE graph."""
    from symdiff.batching import batch
    a = sd.const(RNG.standard_normal((2, D)), "float64")
    t = sd.input("tangent", (D,), "float64")
    lin = sd.tanh(a) @ t * 3.0  # linear in t
    (jac,) = batch([lin], {t: sd.const(np.eye(D), "float64")}, D)  # jac[j] = lin(e_j): the Jacobian's columns
    np.testing.assert_allclose(run(jac).T, 3.0 * np.tanh(a.value), rtol=1e-12)


def test_rand_uniform_shared_unless_the_seed_is_mapped():
    seed = sd.input("seed", (), "int64")
    seeds = sd.input("seeds", (N,), "int64")
    draw = lambda x, s: x * rand_uniform(s, 0, (D,), "float64")  # noqa: E731
    shared = sd.vmap(draw, in_axes=(0, None))(X, seed)
    own = sd.vmap(draw)(X, seeds)
    sv = np.array([3, 4, 5, 6])
    got_shared, got_own = run([shared, own], seed=np.asarray(3), seeds=sv)
    u = got_shared / VALUES["X"]
    np.testing.assert_allclose(u, np.broadcast_to(u[0], u.shape), rtol=1e-12)  # one draw for every example
    want = np.stack([rand_uniform_np(s, 0, (D,), "float64") for s in sv]) * VALUES["X"]
    np.testing.assert_allclose(got_own, want, rtol=1e-15)
    np.testing.assert_allclose(got_own[0], got_shared[0], rtol=1e-15)  # example 0 drew with seed 3 in both


def test_per_example_grads_example_matches_the_loop():
    """examples/per_example_grads.py: vmap of sd.grad equals a Python loop over examples."""
    import importlib.util
    from pathlib import Path
    pytest.importorskip("sklearn")
    path = Path(__file__).resolve().parent.parent / "examples" / "per_example_grads.py"
    spec = importlib.util.spec_from_file_location("per_example_grads", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    res = mod.main(["--batch", "32"])
    assert res["vmap"].shape == (32,) and res["max_rel"] < 1e-5


@pytest.mark.parametrize("backend", BACKENDS)
def test_vmap_over_zero_examples(backend):
    """B = 0: per-example gradients of an empty batch are an empty (0, *W.shape) array (the batched matmul
    of an empty batch runs no GEMM task on llvm)."""
    if backend == "cuda-cpu" and cb.host_compiler() is None:
        pytest.skip("no host C++ compiler for cuda-cpu")
    x0 = sd.input("X0", (0, D), "float64")
    y0 = sd.input("Y0", (0,), "int64")
    g = sd.vmap(lambda x, y: sd.grad(loss(x, y), W2))(x0, y0)
    assert g.shape == (0, H, C)
    f = sd.compile(g, backend)
    vals = {**VALUES, "X0": np.zeros((0, D)), "Y0": np.zeros(0, np.int64)}
    assert f(**{k: vals[k] for k in f.input_names}).shape == (0, H, C)
