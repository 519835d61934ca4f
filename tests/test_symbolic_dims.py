"""Symbolic dimensions end to end: every op-suite case over a symbolic batch, call-time binding and its errors,
compile counts, and the saved-graph format (symdiff/dim_binding.py, signature.py, compiled.py)."""
from __future__ import annotations

import json

import numpy as np
import pytest

import symdiff as sd
from symdiff.backends import get_backend
from symdiff.batching import batch
from symdiff.dims import dim
from symdiff.interchange import from_json_data, to_json_data

from test_ops import API_CASES, CASES

EVERY = {**CASES, **{f"sd.{k}": c for k, c in API_CASES.items()}}
SIZES = SIZES_COMPILED = (1, 2, 7, 64)


def _symbolic_case(name: str, count: int):
    """The case's graph over a symbolic batch of its first leaf, the unbatched graph, and ``count`` draws."""
    case = EVERY[name]
    draws = [case.gen(np.random.default_rng(10 + b)) for b in range(count)]
    nodes = {k: (sd.param if k == "w" else sd.input)(k, v.shape, v.dtype.name) for k, v in draws[0].items()}
    out = case.build(*nodes.values())
    k0 = next(iter(nodes))
    rep = sd.input(f"{k0}_b", ("batch",) + nodes[k0].shape, nodes[k0].dtype)
    (bout,) = batch([out], {nodes[k0]: rep}, dim("batch"))
    return bout, out, k0, rep.name, draws


@pytest.mark.parametrize("name", sorted(EVERY))
def test_every_op_over_a_symbolic_batch_compiles_once_on_numpy(name):
    """One numpy compile serves batch sizes 1, 2, 7 and 64; example b equals the unbatched graph at draw b."""
    bout, out, k0, bname, draws = _symbolic_case(name, max(SIZES))
    assert bout.shape[0] == dim("batch")
    f = sd.compile(bout, "numpy")
    ref = sd.compile(out, "numpy", simplify_graph=False)
    for size in SIZES:
        vals = {**draws[0], bname: np.stack([d[k0] for d in draws[:size]])}
        got = f(**{k: vals[k] for k in f.input_names})
        assert got.shape == (size,) + out.shape
        for b in range(size):
            v = {**draws[0], k0: draws[b][k0]}
            np.testing.assert_allclose(got[b], ref(**{k: v[k] for k in ref.input_names}), rtol=1e-6, atol=1e-12,
                                       err_msg=f"{name}, batch {size}, example {b}")


@pytest.mark.parametrize("backend", ["llvm", "cuda-cpu"])
def test_all_cases_in_one_symbolic_graph_on_a_compiled_backend(backend):
    """Every case's batched graph as one graph: the compiled backend agrees with numpy at sizes 1, 2, 7 and 64
    and compiles once (runtime sizes), or once per size set on a backend that specialises them."""
    outs, vals_by_size = [], {s: {} for s in SIZES_COMPILED}
    for name in sorted(EVERY):
        bout, out, k0, bname, draws = _symbolic_case(name, max(SIZES_COMPILED))
        if not out.dtype.startswith("float"):
            continue
        renamed = {n: sd.input(f"{name.replace('.', '_')}__{n.name}", n.shape, n.dtype)
                   for n in sd.ir.leaves([bout])}
        (bout,) = sd.ir.rebuild([bout], lambda n, ins: renamed.get(n))
        outs.append(bout)
        for s in vals_by_size:
            full = {**draws[0], bname: np.stack([d[k0] for d in draws[:s]])}
            for old, new in renamed.items():
                vals_by_size[s][new.name] = full[old.name]
    f = sd.compile(outs, backend)
    ref = sd.compile(outs, "numpy")
    for size in SIZES_COMPILED + (2,):
        vals = vals_by_size[size]
        got, want = f(**{k: vals[k] for k in f.input_names}), ref(**{k: vals[k] for k in ref.input_names})
        for g, w, o in zip(got, want, outs):
            np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6, err_msg=f"{backend}: {o}")
    runtime_sizes = get_backend(backend).symbolic_dims
    assert not (runtime_sizes and hasattr(f, "specialized_because")), f.specialized_because  # every op sized at run time
    assert f.compiles == (1 if runtime_sizes else len(SIZES_COMPILED))


def _mlp():
    x, y = sd.input("x", ("batch", 6)), sd.input("y", ("batch",), "int64")
    w = sd.param("w", (6, 3))
    loss = sd.cross_entropy(sd.tanh(x @ w), y)
    return x, y, w, [loss, *sd.grad(loss, [w])]


@pytest.mark.parametrize("backend", ["numpy", "llvm"])
def test_mean_divides_by_the_call_size_and_matches_fixed_compiles(backend):
    _, _, w, outs = _mlp()
    f = sd.compile(outs, backend)
    rng = np.random.default_rng(0)
    W = rng.standard_normal((6, 3)).astype("float32")
    for size in (1, 2, 7, 64):
        X, Y = rng.standard_normal((size, 6)).astype("float32"), rng.integers(0, 3, size)
        xf, yf = sd.input("x", (size, 6)), sd.input("y", (size,), "int64")
        lf = sd.cross_entropy(sd.tanh(xf @ w), yf)
        want = sd.compile([lf, *sd.grad(lf, [w])], "numpy")(x=X, y=Y, w=W)
        for g, e in zip(f(x=X, y=Y, w=W), want):
            np.testing.assert_allclose(g, e, rtol=1e-5, atol=1e-7)
    f(x=X[:2], y=Y[:2], w=W)  # a size seen before
    assert f.compiles == 1  # one compile serves every size (the llvm code takes the sizes at run time)


def test_call_time_errors_name_inputs_axes_and_sizes():
    x, y, w, outs = _mlp()
    f = sd.compile(outs, "numpy")
    W = np.zeros((6, 3), np.float32)
    with pytest.raises(ValueError, match=r"input 'y': dimension 'batch' is 5 here .* but 4 in input 'x' \(axis 0\)"):
        f(x=np.zeros((4, 6)), y=np.zeros(5, np.int64), w=W)
    with pytest.raises(ValueError, match=r"input 'x': expected shape \(4, 6\), got \(4,\)"):  # batch from y
        f(x=np.zeros(4), y=np.zeros(4, np.int64), w=W)
    with pytest.raises(ValueError, match=r"input 'x': expected shape \(batch, 6\), got \(4,\)"):
        sd.compile(sd.sum(x), "numpy")(x=np.zeros(4))
    with pytest.raises(ValueError, match="a named size must be at least 1"):
        f(x=np.zeros((0, 6)), y=np.zeros(0, np.int64), w=W)
    with pytest.raises(ValueError, match=r"expected shape \(6, 3\)"):
        f(x=np.zeros((4, 6)), y=np.zeros(4, np.int64), w=np.zeros((3, 6)))


def test_broadcast_against_a_fixed_size_is_checked_at_call_time():
    x, b = sd.input("x", ("n", 3)), sd.input("b", (5, 3))
    f = sd.compile(x + b, "numpy")
    np.testing.assert_array_equal(f(x=np.ones((5, 3)), b=np.ones((5, 3))), 2 * np.ones((5, 3)))
    with pytest.raises(ValueError, match=r"broadcasts the size n against 5.*n = 4"):
        f(x=np.ones((4, 3)), b=np.ones((5, 3)))
    with pytest.raises(ValueError, match="cannot be broadcast"):
        sd.input("u", ("n",)) + sd.input("v", ("m",))


def test_names_the_inputs_do_not_bind_are_refused_at_compile_time():
    x = sd.input("x", ("2*n",))
    with pytest.raises(ValueError, match="dimension name.*'n'.*no input has an axis of exactly that name"):
        sd.compile(x * 2, "numpy")
    # bound by another input, an expression is checked per call
    f = sd.compile([x * 2, sd.input("z", ("n",)) + 0], "numpy")
    assert f(x=np.ones(4), z=np.ones(2))[0].shape == (4,)
    with pytest.raises(ValueError, match=r"input 'x': expected shape \(6,\), got \(4,\)"):
        f(x=np.ones(4), z=np.ones(3))


def test_positional_calls_and_reshape_of_two_names():
    x = sd.input("x", ("batch", "seq", 4))
    y = x.reshape(-1, 4)
    assert y.shape == (dim("batch") * dim("seq"), 4)
    f = sd.compile([y.sum(0), sd.mean(x)], "numpy", inputs=[x])
    X = np.random.default_rng(1).standard_normal((3, 5, 4))
    s, mu = f(X)
    np.testing.assert_allclose(s, X.reshape(-1, 4).sum(0), rtol=1e-5)  # (float32 leaves)
    np.testing.assert_allclose(mu, X.mean(), rtol=1e-5)


def test_a_symbolic_graph_round_trips_through_the_saved_format():
    outs = _mlp()[3]
    back = from_json_data(json.loads(json.dumps(to_json_data(outs))))
    assert all(a is b for a, b in zip(back, outs))
