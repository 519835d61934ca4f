"""The DSL on symbolic sizes (docs/symbolic_dims.md): each case is built once on leaves with a named size
``n`` and compiled once; at n = 1, 2, 7 its values and gradients must equal a fixed-shape compile of the
same function. Every case runs on numpy; a combined graph of representative cases runs on llvm (one compile
per size). What needs a fixed size raises a SymbolicDimError naming the function, the axis and the size."""
from __future__ import annotations

import numpy as np
import pytest

import symdiff as sd
from symdiff.dims import SymbolicDimError
from symdiff.ops_random import rand_uniform

F, I = "float64", "int64"
SIZES = (1, 2, 7)

# name: ({leaf: (shape with "n", dtype)}, fn[, sizes]); sizes default to SIZES
CASES = {
    "var_ddof": ({"x": (("n", 3), F)}, lambda x: sd.var(x, 0, ddof=1), (2, 7)),  # n = 1: the fixed build refuses
    "var_ddof_nan": ({"x": (("n", 3), F)}, lambda x: sd.var(x, 0, ddof=2), (3, 7)),
    "std": ({"x": (("n", 3), F)}, lambda x: sd.std(x, axis=0), (2, 7)),  # n = 1: d sqrt(0) (fixed folds it away)
    "average": ({"x": (("n", 3), F)}, lambda x: sd.average(x, 0, returned=True)[1] * sd.average(x, 0)),
    "all_any": ({"x": (("n", 3), F)}, lambda x: sd.where(sd.all(x > -1, 0) & sd.any(x > 0, 0), 1.0, 2.0)),
    "concat0": ({"x": (("n", 3), F)}, lambda x: sd.concatenate([x, 2 * x], axis=0)),
    "concat1": ({"x": (("n", 3), F)}, lambda x: sd.concatenate([x, 2 * x], axis=1)),
    "concat_fixed": ({"x": (("n", 3), F), "b": ((2, 3), F)}, lambda x, b: sd.concatenate([b, x, b * x[:1]])),
    "stack": ({"x": (("n", 3), F)}, lambda x: sd.stack([x, x * x], axis=1)),
    "vstack_hstack": ({"x": (("n", 3), F)}, lambda x: sd.hstack([sd.vstack([x, x]), sd.vstack([x, -x])])),
    "append": ({"x": (("n", 3), F)}, lambda x: sd.append(x, x[-1:], axis=0)),
    "slice_tail": ({"x": (("n", 3), F)}, lambda x: x[1:]),
    "slice_head": ({"x": (("n", 3), F)}, lambda x: x[:, 1:] * x[:-1, :2].sum()),
    "slice_keys": ({"x": (("n", 3), F)}, lambda x: sd.concatenate([x[::-1], x[-1::-1], x[:0], x[-1:], x[:1],
                                                                    x[:-1:], x[::1], x[:None:-1]])),
    "slice_stride_even": ({"x": (("n", 2, 3), F)}, lambda x: x.reshape(-1, 3)[::2] + x.reshape(-1, 3)[1::2]),
    "index0": ({"x": (("n", 3), F)}, lambda x: x[0]),
    "index_last": ({"x": (("n", 3), F)}, lambda x: x[-1] * x[..., -1, None]),
    "flip": ({"x": (("n", 3), F)}, lambda x: sd.flip(x, 0) * sd.flipud(x) + sd.fliplr(x)),
    "einsum": ({"x": (("n", 3), F)}, lambda x: sd.einsum("ij,ik->jk", x, x)),
    "einsum_batch": ({"x": (("n", 2, 3), F)}, lambda x: sd.einsum("bij,bkj->bik", x, x)),
    "tensordot": ({"x": (("n", 3), F)}, lambda x: sd.tensordot(x, x, axes=([0], [0]))),
    "dot_inner": ({"x": (("n", 3), F), "w": ((3,), F)}, lambda x, w: sd.dot(x, w) + sd.inner(x, w)),
    "gather_rows": ({"x": ((5, 3), F), "i": (("n",), I)}, lambda x, i: x[i]),
    "gather_cols": ({"x": (("n", 4), F)}, lambda x: x[:, [0, 2, 2]]),
    "gather_2d": ({"x": (("n", 4), F), "i": (("n",), I)}, lambda x, i: x[:, i] + x[i, 1:2]),
    "take": ({"x": (("n", 3), F), "i": ((4,), I)}, lambda x, i: sd.take(x, i, axis=1)),
    "take_along": ({"x": (("n", 3), F)}, lambda x: sd.take_along_axis(x, sd.argsort(x, 0), 0)),
    "sort": ({"x": (("n", 3), F)}, lambda x: sd.sort(x, 0) * sd.sort(x, None)[:1]),
    "cumsum": ({"x": (("n", 3), F)}, lambda x: sd.cumsum(x, 0) + sd.cumprod(x, 1)),
    "scatter_add": ({"x": ((5, 3), F), "i": (("n",), I), "v": (("n", 3), F)}, lambda x, i, v: x.at[i].add(v)),
    "scatter_set": ({"x": ((5, 3), F), "i": (("n",), I), "v": (("n", 3), F)}, lambda x, i, v: x.at[i].set(v)),
    "at_symbolic": ({"x": (("n", 3), F)}, lambda x: x.at[:, [0, 2]].multiply(2.0).at[:, 1].set(x[:, 0])),
    "pad": ({"x": (("n", 3), F)}, lambda x: sd.pad(x, ((1, 2), (0, 1)))),
    "pad_edge": ({"x": (("n", 3), F)}, lambda x: sd.pad(x, ((0, 0), (2, 1)), mode="reflect")),
    "zeros_like": ({"x": (("n", 3), F)}, lambda x: sd.zeros_like(x) + sd.full(x.shape, 2.0) * x),
    "ones": ({"x": (("n", 3), F)}, lambda x: sd.ones((x.shape[0], 1)) * x + sd.ones_like(x)),
    "trace_diag": ({"x": (("n", "n"), F)}, lambda x: sd.trace(x) * sd.diagonal(x) + sd.diagonal(x, 1).sum()),
    "triu": ({"x": ((4, 4), F), "y": (("n", 4, 4), F)}, lambda x, y: sd.triu(y) + sd.tril(x)),
    "repeat_tile": ({"x": (("n", 3), F)}, lambda x: sd.repeat(x, 2, axis=0)[:x.shape[0]] + sd.tile(x, (1, 2))[:, :3]),
    "roll": ({"x": (("n", 3), F)}, lambda x: sd.roll(x, 1, axis=1) + sd.roll(x, 1, axis=0) * sd.roll(x, -1, axis=0)),
    "split_n": ({"x": (("n", 2, 3), F)}, lambda x: sd.split(x.reshape(-1, 3), 2)[1] * sd.array_split(x, [1])[1].sum()),
    "pad_edge_n": ({"x": (("n", 3), F)}, lambda x: sd.pad(x, ((2, 1), (1, 0)), mode="edge")),
    "triu_n": ({"x": (("n", "n"), F)}, lambda x: sd.triu(x, 1) - sd.tril(x)),
    "eye_arange": ({"x": (("n", 3), F)}, lambda x: sd.eye(x.shape[0]) @ x * sd.arange(1, x.shape[0] + 1)[:, None]
                   + sd.eye(3, x.shape[0], 1, dtype=F).T),
    "split": ({"x": (("n", 4), F)}, lambda x: sd.split(x, 2, axis=1)[0] * sd.split(x, [1], axis=1)[1][:, :2]),
    "clip_where": ({"x": (("n", 3), F)}, lambda x: sd.clip(x, -0.5, 0.5) + sd.where(x > 0, x, 0.1 * x)),
    "transposes": ({"x": (("n", 3, 2), F)}, lambda x: sd.transpose(sd.moveaxis(sd.swapaxes(x, 0, 2), 0, 1), (2, 0, 1))),
    "squeeze_expand": ({"x": (("n", 1, 3), F)}, lambda x: sd.expand_dims(sd.squeeze(x, 1), 0) * sd.squeeze(x)),
    "ravel": ({"x": (("n", 3), F)}, lambda x: x.ravel() * sd.atleast_2d(x.ravel())),
    "norm": ({"x": (("n", 3), F)}, lambda x: sd.linalg.norm(x, axis=0) + sd.linalg.norm(x, 1, axis=(0, 1))),
    "diff": ({"x": (("n", 3), F)}, lambda x: sd.diff(x, axis=0)),
    "kron_outer": ({"x": (("n",), F)}, lambda x: sd.outer(x, x) + sd.kron(x, sd.ones(1))[:, None]),
    "rand_mask": ({"x": (("n", 3), F)}, lambda x: x * rand_uniform(0, 1, x.shape, F) * sd.nn.functional.dropout(
        x, 0.5, 3, 4)),
    "maxpool": ({"x": (("n", 2, 6, 6), F)}, lambda x: sd.max_pool2d(x, 2) + sd.avg_pool2d(x, 2)),
    "adaptive": ({"x": (("n", 2, 6, 6), F)}, lambda x: sd.adaptive_avg_pool2d(x, 2) + sd.adaptive_max_pool2d(x, 2)),
    "conv1d": ({"x": (("n", 2, 7), F), "w": ((3, 2, 3), F)}, lambda x, w: sd.conv1d(x, w, padding=1, stride=2)),
    "conv_t": ({"x": (("n", 2, 4, 4), F), "w": ((2, 3, 3, 3), F)}, lambda x, w: sd.conv_transpose2d(x, w, stride=2)),
}


def _values(specs: dict, n: int) -> dict:
    rng = np.random.default_rng(n)
    out = {}
    for k, (shape, dt) in specs.items():
        shape = tuple(n if s == "n" else s for s in shape)
        out[k] = rng.integers(0, 5, shape) if dt == I else rng.standard_normal(shape)
    return out


def _graph(specs: dict, fn, n=None) -> tuple:
    """The leaves (fixed shapes at ``n``, or symbolic), the outputs: the value and the gradients of
    sum(value**2) with respect to the float leaves."""
    leaves = {k: sd.input(k, tuple(n if (s == "n" and n is not None) else s for s in shape), dt)
              for k, (shape, dt) in specs.items()}
    out = fn(*leaves.values())
    outs = [out]
    if out.dtype.startswith("float"):
        outs += sd.grad(sd.sum(out * out), [v for v in leaves.values() if v.dtype.startswith("float")])
    return list(leaves.values()), outs


def _check(name: str, backend: str) -> None:
    specs, fn, *rest = CASES[name]
    leaves, outs = _graph(specs, fn)
    f = sd.compile(outs, backend, inputs=leaves)
    for n in (rest[0] if rest else SIZES):
        vals = _values(specs, n)
        fl, fouts = _graph(specs, fn, n)
        want = sd.compile(fouts, "numpy", inputs=fl)(**vals)
        got = f(**vals)
        for k, (a, b) in enumerate(zip(got, want)):
            assert a.shape == b.shape, (name, n, k)
            np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12, err_msg=f"{name} at n={n}, output {k}")


@pytest.mark.parametrize("name", sorted(CASES))
def test_symbolic_matches_fixed_numpy(name):
    _check(name, "numpy")


def test_nn_modules_on_a_symbolic_batch():
    """Conv2d -> BatchNorm2d (training: batch statistics, running updates with the unbiased count) ->
    Dropout2d -> MaxPool2d -> Flatten -> BatchNorm1d -> Linear, on a symbolic batch, against fixed batches."""
    nn = sd.nn
    model = nn.Sequential(nn.Conv2d(2, 3, 3, padding=1, dtype=F), nn.BatchNorm2d(3, dtype=F), nn.Dropout2d(0.5),
                          nn.MaxPool2d(2), nn.Flatten(), nn.BatchNorm1d(12, dtype=F), nn.Linear(12, 2, dtype=F),
                          name="m")

    def build(n):
        x = sd.input("x", (n, 2, 4, 4), F)
        y = model(x)
        params = [l for l in sd.ir.toposort([y]) if l.op == "param"]
        outs = [y, *model.state_updates().values(), *sd.grad(sd.sum(y * y), params)]
        return outs, sorted({l for l in sd.ir.toposort(outs) if l.is_leaf and l.op != "const"}, key=lambda l: l.name)

    outs, leaves = build("n")
    f = sd.compile(outs, "numpy", inputs=leaves)
    values = model.init_values(seed=1)
    for n in (1, 2, 5):
        vals = {**values, "x": np.random.default_rng(n).standard_normal((n, 2, 4, 4)), "rng_seed": np.int64(3),
                "rng_step": np.int64(n)}
        fouts, fleaves = build(n)
        want = sd.compile(fouts, "numpy", inputs=fleaves)(**{l.name: vals[l.name] for l in fleaves})
        got = f(**{l.name: vals[l.name] for l in leaves})
        for a, b in zip(got, want):
            np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)


# what needs a fixed size (or a size the call decides) on x: (n, 3): a SymbolicDimError naming what and where
UNSUPPORTED = [
    (lambda x: x[::2], r"x\[::2\]: a strided slice of the symbolic axis 0 \(size n\)"),
    (lambda x: x[1], r"x\[1\]: the index 1 of the symbolic axis 0 \(size n\)"),
    (lambda x: x[2:], r"x\[2:\]: a slice bound of the symbolic axis 0 \(size n\)"),
    (lambda x: x[1:-1], r"x\[1:-1\]: the slice of the symbolic axis 0 \(size n\) has n - 2 entries"),
    (lambda x: x[:, ::2][:2], r"x\[:2\]: a slice bound of the symbolic axis 0"),
    (lambda x: x[[0, 1]], r"advanced_index: the constant index 1 into the symbolic axis 0 \(size n\)"),
    (lambda x: x[1:, [0, 1]], r"advanced_index: the slice .* of the symbolic axis 0 \(size n\)"),
    (lambda x: sd.split(x, 3), r"array_split: the symbolic axis 0 \(size n\) into 3 sections"),
    (lambda x: sd.roll(x, 2, 0), r"roll: a shift by 2 of the symbolic axis 0 \(size n\)"),
    (lambda x: sd.pad(x, 1, mode="reflect"), r"pad: mode 'reflect' on the symbolic axis 0 \(size n\)"),
    (lambda x: sd.repeat(x, [1, 2], axis=0), r"repeat: one count per element of the symbolic axis 0 \(size n\)"),
    (lambda x: sd.diagonal(x, 1), r"diagonal \(offset 1\) of axes of sizes n and 3: min\(n, 2\)"),
    (lambda x: sd.arange(0, x.shape[0], 2), r"arange\(0, n, 2\): a symbolic range needs step 1"),
]


SPATIAL = [  # on (2, 2, h, 6): only the batch of a convolution or a pooling may be symbolic
    (lambda x: sd.conv2d(x, sd.ones((3, 2, 3, 3))), r"conv2d: a symbolic spatial axis \(size h\) of the input"),
    (lambda x: sd.max_pool2d(x, 2), r"max_pool2d: the symbolic spatial axis 0 \(size h\)"),
    (lambda x: sd.adaptive_avg_pool2d(x, 1), r"adaptive_avg_pool2d: the symbolic spatial axis 0 \(size h\)"),
]


@pytest.mark.parametrize("k", range(len(SPATIAL)))
def test_symbolic_spatial_axes_raise_clearly(k):
    fn, match = SPATIAL[k]
    with pytest.raises(SymbolicDimError, match=match):
        fn(sd.input("x", (2, 2, "h", 6), F))


@pytest.mark.parametrize("k", range(len(UNSUPPORTED)))
def test_what_needs_a_fixed_size_raises_clearly(k):
    fn, match = UNSUPPORTED[k]
    with pytest.raises(SymbolicDimError, match=match):
        fn(sd.input("x", ("n", 3), F))


def test_fixed_sizes_keep_their_errors():
    x = sd.input("x", (4, 3), F)
    with pytest.raises(IndexError, match="index 4 is out of bounds for axis 0 with size 4"):
        x[4]
    with pytest.raises(ValueError, match="ddof=4 leaves no degrees of freedom"):
        sd.var(x, 0, ddof=4)


def test_combined_graph_on_llvm():
    """Representative cases in one graph, compiled once on llvm (specialised per size): equal to numpy."""
    names = ["concat_fixed", "slice_keys", "index_last", "var_ddof", "einsum", "gather_2d", "scatter_set", "pad",
             "trace_diag", "triu", "maxpool", "rand_mask", "eye_arange", "split_n"]
    specs, outs, fixed = {}, [], []
    for name in names:
        leaves, fn, *_ = CASES[name]
        pre = {f"{name}_{k}": v for k, v in leaves.items()}
        specs.update(pre)
        outs.append(lambda *a, fn=fn: fn(*a))
        fixed.append(list(pre))

    def build(n):
        leaves = {k: sd.input(k, tuple(n if s == "n" else s for s in shape), dt) for k, (shape, dt) in specs.items()}
        res = []
        for fn, keys in zip(outs, fixed):
            o = fn(*(leaves[k] for k in keys))
            fl = [leaves[k] for k in keys if leaves[k].dtype == F]
            res += [o, *sd.grad(sd.sum(o * o), fl)]
        return list(leaves.values()), res

    leaves, res = build("n")
    f = sd.compile(res, "llvm", inputs=leaves)
    for n in (2, 7):
        vals = _values(specs, n)
        want = sd.compile(res, "numpy", inputs=leaves)(**vals)
        for k, (a, b) in enumerate(zip(f(**vals), want)):
            np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12, err_msg=f"output {k} at n={n}")
    assert f.compiles == 1 and not hasattr(f, "specialized_because")  # one compile, sized at run time


def test_batching_the_dsl_over_a_symbolic_size():
    """batch() with the size "b": slices, concatenation, flips, scans, gathers, pads, var, triu per example."""
    from symdiff.batching import batch
    x, i = sd.input("x", (5, 3), F), sd.input("i", (2,), I)
    outs = [sd.concatenate([x[1:], x[:1]]), sd.flip(x, 0) * x[-1], sd.cumsum(x, 0), x[i], sd.pad(x, 1),
            sd.var(x, 0, ddof=1), sd.triu(x)]
    xb, ib = sd.input("xb", ("b", 5, 3), F), sd.input("ib", ("b", 2), I)
    f = sd.compile(batch(outs, {x: xb, i: ib}, "b"), "numpy", inputs=[xb, ib])
    one = sd.compile(outs, "numpy", inputs=[x, i])
    rng = np.random.default_rng(0)
    for b in (1, 3):
        v, iv = rng.standard_normal((b, 5, 3)), rng.integers(0, 5, (b, 2))
        got = f(v, iv)
        for j in range(b):
            for k, want in enumerate(one(v[j], iv[j])):
                np.testing.assert_allclose(got[k][j], want, rtol=1e-12, atol=1e-14)


def test_basic_indexing_of_a_symbolic_axis_matches_numpy():
    """Every key of ints {0, -1} and slices with bounds {None, 0, 1, -1, 2, -2} and steps {None, 1, -1, 2} on
    the symbolic axis of x: (n, 4): NumPy's result at n = 1, 2, 7, or a SymbolicDimError when the size decides."""
    bounds = (None, 0, 1, -1, 2, -2)
    keys = [0, -1] + [slice(a, b, s) for a in bounds for b in bounds for s in (None, 1, -1, 2)]
    x = sd.input("x", ("n", 4), F)
    outs, kept = [], []
    for k in keys:
        try:
            outs.append(x[k, 1:])
        except SymbolicDimError:
            continue
        kept.append(k)
    assert len(kept) >= 50  # the keys whose bounds hold for every size (None, 0, 1, -1 and their mixes)
    f = sd.compile(outs + sd.grad(sd.sum(sd.concatenate([sd.ravel(o) for o in outs]) ** 2), [x]), "numpy",
                   inputs=[x])
    for n in SIZES:
        v = np.random.default_rng(n).standard_normal((n, 4))
        got = f(v)
        g = np.zeros_like(v)
        for k, r in zip(kept, got):
            np.testing.assert_array_equal(r, v[k, 1:], err_msg=f"x[{k}, 1:] at n={n}")
            np.add.at(g, (np.arange(n)[k], slice(1, None)), 2 * v[k, 1:])
        np.testing.assert_allclose(got[-1], g, rtol=1e-12)
