"""Indexing and the shape / joining functions against NumPy itself: random keys and shapes (seeded), on the
numpy backend, a sample compiled on llvm and cuda-cpu (one graph per backend, with gradients), the
bad-input errors, and a Rosenbrock gradient written with slices."""
from __future__ import annotations

import numpy as np
import pytest

import symdiff as sd
from symdiff.ir import toposort

from conftest import assert_grad_ok

COMPILED = ["llvm", "cuda-cpu"]


def _random_slice(rng, n):
    pick = lambda: None if rng.random() < 0.3 else int(rng.integers(-n - 2, n + 3))  # noqa: E731
    step = None if rng.random() < 0.3 else int(rng.choice([-3, -2, -1, 1, 2, 3]))
    return slice(pick(), pick(), step)


def random_key(rng, shape) -> tuple:
    """A random basic index of ``shape``: ints (negative too), slices, None, at most one Ellipsis."""
    key, d = [], 0
    ellipsis = rng.random() < 0.3
    while d < len(shape):
        r = rng.random()
        if r < 0.15:
            key.append(None)
            continue
        if ellipsis and r < 0.3:
            key.append(Ellipsis)
            ellipsis = False
            d = max(d, len(shape) - int(rng.integers(0, len(shape) - d + 1)))
            continue
        n = shape[d]
        key.append(int(rng.integers(-n, n)) if r < 0.5 else _random_slice(rng, n))
        d += 1
        if rng.random() < 0.15:
            break  # fewer indices than axes
    return tuple(key)


def random_cases(seed: int, count: int):
    rng = np.random.default_rng(seed)
    out = []
    while len(out) < count:
        shape = tuple(int(s) for s in rng.integers(1, 6, int(rng.integers(1, 5))))
        key = random_key(rng, shape)
        if 0 in np.empty(shape)[key].shape:
            continue  # zero-size results are another test's business
        out.append((shape, key))
    return out


def _graph(cases, dtype="float64"):
    xs, outs, values, refs = [], [], {}, []
    rng = np.random.default_rng(1)
    for k, (shape, key) in enumerate(cases):
        x = sd.input(f"x{k}", shape, dtype)
        values[x.name] = rng.standard_normal(shape).astype(dtype)
        xs.append(x)
        outs.append(x[key])
        refs.append(values[x.name][key])
    return xs, outs, values, refs


def test_random_basic_indexing_matches_numpy():
    cases = random_cases(0, 100)
    xs, outs, values, refs = _graph(cases)
    got = sd.compile(outs, "numpy")(**values)
    for (shape, key), g, r in zip(cases, got, refs):
        assert g.shape == r.shape, (shape, key)
        np.testing.assert_array_equal(g, r, err_msg=f"x{list(shape)}[{key}]")


def _random_shape_ops(seed: int):
    """(label, build(x), numpy reference(x), shape of x) for the shape and joining functions."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(6):
        shape = tuple(int(s) for s in rng.integers(2, 5, int(rng.integers(2, 4))))
        nd = len(shape)
        ax = int(rng.integers(-nd, nd))
        ax2 = (ax + 1) % nd
        pw = [(int(rng.integers(0, 3)), int(rng.integers(0, 3))) for _ in range(nd)]
        mode = str(rng.choice(["constant", "edge", "reflect", "symmetric", "wrap"]))
        sh = int(rng.integers(-7, 8))
        reps = [int(r) for r in rng.integers(0, 3, shape[ax])]
        tiles = tuple(int(t) for t in rng.integers(1, 3, int(rng.integers(1, 4))))
        k, off = int(rng.integers(-3, 4)), int(rng.integers(-1, 2))
        n = int(rng.integers(1, 3))
        sec = int(rng.integers(1, shape[ax] + 2))
        batch = [
            (f"concatenate ax={ax}", lambda x, ax=ax: sd.concatenate([x, x * 2.0, x], ax),
             lambda x, ax=ax: np.concatenate([x, x * 2.0, x], ax)),
            (f"stack ax={ax}", lambda x, ax=ax: sd.stack([x, -x], ax), lambda x, ax=ax: np.stack([x, -x], ax)),
            (f"array_split {sec} ax={ax}", lambda x, ax=ax, s=sec: sd.array_split(x, s, ax)[-1],
             lambda x, ax=ax, s=sec: np.array_split(x, s, ax)[-1]),
            (f"pad {pw} {mode}", lambda x, p=pw, m=mode: sd.pad(x, p, m), lambda x, p=pw, m=mode: np.pad(x, p, m)),
            (f"roll {sh} ax={ax}", lambda x, s=sh, ax=ax: sd.roll(x, s, ax), lambda x, s=sh, ax=ax: np.roll(x, s, ax)),
            (f"roll {sh}", lambda x, s=sh: sd.roll(x, s), lambda x, s=sh: np.roll(x, s)),
            (f"repeat {reps} ax={ax}", lambda x, r=reps, ax=ax: sd.repeat(x, r, ax),
             lambda x, r=reps, ax=ax: np.repeat(x, r, ax)),
            (f"repeat {n}", lambda x, n=n, ax=ax: sd.repeat(x, n, ax), lambda x, n=n, ax=ax: np.repeat(x, n, ax)),
            (f"tile {tiles}", lambda x, t=tiles: sd.tile(x, t), lambda x, t=tiles: np.tile(x, t)),
            (f"flip ax={ax}", lambda x, ax=ax: sd.flip(x, ax), lambda x, ax=ax: np.flip(x, ax)),
            (f"moveaxis {ax}->{ax2}", lambda x, a=ax, b=ax2: sd.moveaxis(x, a, b), lambda x, a=ax, b=ax2: np.moveaxis(x, a, b)),
            (f"swapaxes {ax},{ax2}", lambda x, a=ax, b=ax2: sd.swapaxes(x, a, b), lambda x, a=ax, b=ax2: np.swapaxes(x, a, b)),
            (f"rollaxis {ax},{ax2}", lambda x, a=ax, b=ax2: sd.rollaxis(x, a, b), lambda x, a=ax, b=ax2: np.rollaxis(x, a, b)),
            (f"expand_dims {ax}", lambda x, ax=ax: sd.expand_dims(x, ax), lambda x, ax=ax: np.expand_dims(x, ax)),
            (f"diagonal {off} {ax},{ax2}", lambda x, o=off, a=ax, b=ax2: sd.diagonal(x, o, a, b),
             lambda x, o=off, a=ax, b=ax2: np.diagonal(x, o, a, b)),
            (f"trace {off}", lambda x, o=off, a=ax, b=ax2: sd.trace(x, o, a, b),
             lambda x, o=off, a=ax, b=ax2: np.trace(x, o, a, b)),
            (f"triu {k}", lambda x, k=k: sd.triu(x, k), lambda x, k=k: np.triu(x, k)),
            (f"tril {k}", lambda x, k=k: sd.tril(x, k), lambda x, k=k: np.tril(x, k)),
            (f"rot90 {k}", lambda x, k=k, a=ax, b=ax2: sd.rot90(x, k, (a, b)), lambda x, k=k, a=ax, b=ax2: np.rot90(x, k, (a, b))),
            (f"diff {n} ax={ax}", lambda x, n=n, ax=ax: sd.diff(x, n, ax), lambda x, n=n, ax=ax: np.diff(x, n, ax)),
            ("ravel", lambda x: x.ravel(), lambda x: x.ravel()),
            ("hstack", lambda x: sd.hstack([x, x]), lambda x: np.hstack([x, x])),
            ("vstack", lambda x: sd.vstack([x, x]), lambda x: np.vstack([x, x])),
            ("dstack", lambda x: sd.dstack([x, x]), lambda x: np.dstack([x, x])),
            ("append", lambda x, ax=ax: sd.append(x, x, ax), lambda x, ax=ax: np.append(x, x, ax)),
        ]
        out += [(lab, b, r, shape) for lab, b, r in batch]
    return out


def _run(f, values):
    return f(**{k: values[k] for k in f.input_names})  # an output may not depend on its input (triu of k > n)


def _shape_graph(ops, dtype="float64"):
    rng = np.random.default_rng(3)
    xs, outs, values = [], [], {}
    for k, (_, build, _, shape) in enumerate(ops):
        x = sd.input(f"x{k}", shape, dtype)
        values[x.name] = rng.standard_normal(shape).astype(dtype)
        xs.append(x)
        outs.append(build(x))
    return xs, outs, values


def test_random_shape_functions_match_numpy():
    ops = _random_shape_ops(0)
    xs, outs, values = _shape_graph(ops)
    got = _run(sd.compile(outs, "numpy"), values)
    for k, ((label, _, ref, shape), g) in enumerate(zip(ops, got)):
        want = ref(values[f"x{k}"])
        assert g.shape == want.shape, (label, shape)
        np.testing.assert_allclose(g, want, rtol=1e-12, atol=1e-14, err_msg=f"{label} of {shape}")


def test_gradients_and_hessians_of_index_ops_by_finite_differences():
    x = sd.input("x", (3, 4), "float64")
    vals = {"x": np.random.default_rng(5).standard_normal((3, 4))}
    y = sd.sum(sd.pad(x, 1, "reflect")[::-1, 1:] ** 3) + sd.sum(sd.roll(x, 1, 0)[:, ::2] * x[::-1, 1::2])
    assert_grad_ok(sd.check_grad(y, [x], vals))
    g = sd.grad(y, x)
    assert_grad_ok(sd.check_grad(sd.sum(g * sd.const(np.arange(12.0).reshape(3, 4))), [x], vals))


def test_rosenbrock_gradient():
    """f(x) = sum(100 (x[1:] - x[:-1]^2)^2 + (1 - x[:-1])^2): symdiff's gradient against the closed form."""
    n = 7
    x = sd.input("x", (n,), "float64")
    f = sd.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)
    xs = np.random.default_rng(6).uniform(-1.5, 1.5, n)
    d = np.zeros(n)
    d[:-1] += -400 * xs[:-1] * (xs[1:] - xs[:-1] ** 2) - 2 * (1 - xs[:-1])
    d[1:] += 200 * (xs[1:] - xs[:-1] ** 2)
    for backend in ("numpy", "llvm"):  # (cuda-cpu: the same slices in test_compiled_backends_index_like_numpy)
        val, grad = sd.compile([f, sd.grad(f, x)], backend)(x=xs)
        np.testing.assert_allclose(grad, d, rtol=1e-12)
    assert_grad_ok(sd.check_grad(f, [x], {"x": xs}))


def test_lists_of_tensors_are_stacked():
    a, b = sd.input("a", (2, 3), "float64"), sd.input("b", (2, 3), "float64")
    av, bv = np.arange(6.0).reshape(2, 3), np.ones((2, 3))
    m, s, arr = sd.compile([sd.mean([a, b], axis=0), sd.sum([a, b]), sd.asarray([[a[0, 0], 1.0], [b[1, 2], a[1, 1]]])],
                           "numpy")(a=av, b=bv)
    np.testing.assert_allclose(m, np.mean([av, bv], axis=0))
    np.testing.assert_allclose(s, np.sum([av, bv]))
    np.testing.assert_allclose(arr, [[0.0, 1.0], [1.0, 4.0]])
    assert [r.shape for r in a] == [(3,), (3,)]  # iteration is over the first axis
    assert sd.array([a, b], dtype="float32").dtype == "float32"
    assert sd.concatenate([sd.input("i", (2,), "int32"), sd.input("j", (2,), "int64")]).dtype == "int64"
    assert sd.concatenate([a, sd.input("f", (2, 1), "float32")], axis=1).dtype == "float64"


def test_index_ops_fuse_into_one_kernel():
    """x[1:] - x[:-1] ** 2 and its reversal are computed inline: one loop kernel, no temporaries."""
    from symdiff.codegen.lower import lower
    x = sd.input("x", (9,), "float64")
    prog = lower([sd.flip(x[1:] - x[:-1] ** 2, 0)])
    assert len(prog.kernels) == 1 and not prog.temps
    f = sd.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)
    prog = lower(sd.simplify([f, sd.grad(f, x)]))  # the loss pass, and one pass for the gradient's two embeds
    assert len(prog.kernels) == 2 and not prog.temps


def test_expensive_concatenate_operands_are_materialised():
    from symdiff.codegen.lower import Lowering
    x = sd.input("x", (4,), "float64")
    e = sd.exp(x)
    low = Lowering([sd.concatenate([e, x * 2.0, x])])
    assert e in low.mat and not any(n.op == "mul" for n in low.mat)


# -- bad input ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("build,err,match", [
    (lambda x: x[3], IndexError, r"index 3 is out of bounds for axis 0 with size 3"),
    (lambda x: x[:, -5], IndexError, r"index -5 is out of bounds for axis 1 with size 4"),
    (lambda x: x[0, 0, 0], IndexError, r"too many indices for array: array is 2-dimensional, but 3 were indexed"),
    (lambda x: x[..., 0, ...], IndexError, r"single ellipsis"),
    (lambda x: x["a"], IndexError, r"only integers, slices"),
    (lambda x: x[1.5], IndexError, r"only integers, slices"),
    (lambda x: sd.concatenate([x, sd.input("z", (2, 5))]), ValueError,
     r"concatenate: the input shapes must match except along axis 0; input 0 has shape \(3, 4\) and input 1 has shape \(2, 5\)"),
    (lambda x: sd.concatenate([x, sd.input("z", (4,))]), ValueError, r"concatenate: all the input arrays must have "
                                                                     r"the same number of dimensions"),
    (lambda x: sd.concatenate([x, x], axis=2), ValueError, r"concatenate: axis 2 is out of bounds for array of dimension 2"),
    (lambda x: sd.concatenate([]), ValueError, r"concatenate: need at least one array"),
    (lambda x: sd.stack([x, x[1:]]), ValueError, r"stack: all input arrays must have the same shape"),
    (lambda x: sd.split(x, 3, axis=1), ValueError, r"split: array split does not result in an equal division"),
    (lambda x: sd.array_split(x, 0), ValueError, r"number sections must be larger than 0"),
    (lambda x: sd.vsplit(x[0], 2), ValueError, r"vsplit only works on arrays of 2 or more dimensions"),
    (lambda x: sd.squeeze(x, 0), ValueError, r"squeeze: cannot select an axis to squeeze out which has size not equal to one"),
    (lambda x: sd.swapaxes(x, 0, 2), ValueError, r"swapaxes: axis 2 is out of bounds for array of dimension 2"),
    (lambda x: sd.moveaxis(x, (0, 1), 0), ValueError, r"moveaxis: `source` and `destination`"),
    (lambda x: sd.flip(x, (0, 0)), ValueError, r"flip: repeated axis"),
    (lambda x: sd.pad(x, -1), ValueError, r"pad: pad_width must be non-negative"),
    (lambda x: sd.pad(x, ((1, 2), (3, 4), (5, 6))), ValueError, r"pad: pad_width .* cannot be broadcast to \(2, 2\)"),
    (lambda x: sd.pad(x, 1, "median"), ValueError, r"pad: mode 'median' is not supported"),
    (lambda x: sd.repeat(x, [1, 2], axis=0), ValueError, r"repeat: operands could not be broadcast together"),
    (lambda x: sd.diagonal(x, 0, 1, 1), ValueError, r"diagonal: axis1 and axis2 cannot be the same"),
    (lambda x: sd.cross(x, x), ValueError, r"cross: incompatible dimensions for cross product"),
    (lambda x: sd.triu(x[0]), ValueError, r"triu: input must be at least 2-d"),
    (lambda x: sd.diff(x, -1), ValueError, r"diff: order must be non-negative"),
])
def test_bad_input_errors(build, err, match):
    x = sd.input("x", (3, 4))
    with pytest.raises(err, match=match):
        build(x)


def test_advanced_keys_go_to_the_gather_module(monkeypatch):
    """Integer/boolean arrays and tensors in a key are advanced indexing (symdiff.api_gather)."""
    import sys
    import types
    seen = []
    fake = types.ModuleType("symdiff.api_gather")
    fake.advanced_index = lambda x, key: seen.append(key) or x
    monkeypatch.setitem(sys.modules, "symdiff.api_gather", fake)
    monkeypatch.setattr(sd, "api_gather", fake, raising=False)
    x = sd.input("x", (3, 4))
    i = sd.input("i", (2,), "int64")
    for key in ([0, 2], np.array([1, 0]), i, (slice(None), [1, 2]), np.array([True, False, True])):
        assert x[key] is x
    assert len(seen) == 5
    assert all(n.op != "slice" for n in toposort([x[0:3, 0:4]]))  # a full slice is the tensor itself


def _indexing_sample():
    """(outputs, numpy expectations, values): random keys with the gradients of sum(w * x[key]) (w written
    back: basic indexing reads each entry at most once), a sample of the shape functions with gradients
    (expected: the numpy backend's), and int64 tensors through the index ops."""
    cases = random_cases(1, 12)
    xs, outs, values, refs = _graph(cases)
    rng = np.random.default_rng(2)
    ws = [rng.standard_normal(o.shape) for o in outs]
    grads = [sd.grad(sd.sum(o * sd.const(w, "float64")), x) for o, w, x in zip(outs, ws, xs)]
    scattered = []
    for (shape, key), w in zip(cases, ws):
        g = np.zeros(shape)
        g[key] = w
        scattered.append(g)
    ops = _random_shape_ops(1)[::7]
    sxs, souts, svalues = _shape_graph(ops)
    svalues = {f"s{k}": v for k, v in svalues.items()}
    sxs = [sd.input(f"s{x.name}", x.shape, x.dtype) for x in sxs]
    souts = [build(x) for (_, build, _, _), x in zip(ops, sxs)]
    sgrads = [sd.grad(sd.sum(o * sd.const(rng.standard_normal(o.shape), "float64")), x) for o, x in zip(souts, sxs)]
    sref = _run(sd.compile(souts + sgrads, "numpy"), svalues)
    lab = sd.input("lab", (4,), "int64")
    labv = np.array([0, 2, 1, 3])
    iouts = [sd.concatenate([lab[1:], lab[:1], sd.flip(lab)[:2]]), sd.pad(lab, 1, constant_values=2),
             sd.pad(lab, (2, 3), "reflect"), sd.stack([lab, lab])[:, ::2]]
    iref = [np.concatenate([labv[1:], labv[:1], labv[::-1][:2]]), np.pad(labv, 1, constant_values=2),
            np.pad(labv, (2, 3), "reflect"), np.stack([labv, labv])[:, ::2]]
    many = sd.input("many", (3, 2), "float64")
    iouts.append(sd.concatenate([many * float(k) for k in range(13)], axis=1))  # a tree of groups when lowered
    mv = np.arange(6.0).reshape(3, 2)
    iref.append(np.concatenate([mv * k for k in range(13)], axis=1))
    labels = ([f"x{list(s)}[{k}]" for s, k in cases] + [f"grad x{list(s)}[{k}]" for s, k in cases]
              + [op[0] for op in ops] + [f"grad {op[0]}" for op in ops] + [f"int64 {k}" for k in range(4)]
              + ["concatenate of 13"])
    return (outs + grads + souts + sgrads + iouts, refs + scattered + list(sref) + iref, labels,
            {**values, **svalues, "lab": labv, "many": mv})


@pytest.mark.parametrize("backend", COMPILED)
def test_compiled_backends_index_like_numpy(backend):
    """One graph per backend: forward values and gradients of random indexing and shape functions."""
    outs, want, labels, values = _indexing_sample()
    got = _run(sd.compile(outs, backend), values)
    for g, w, lab in zip(got, want, labels):
        assert g.dtype == w.dtype and g.shape == w.shape, lab
        np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-14, err_msg=f"{backend}: {lab}")


def test_many_part_concatenation_is_a_tree_of_groups():
    """A concatenation of k parts reads every part at every point; past 2 * CONCAT_FANIN parts the lowering
    joins groups of CONCAT_FANIN into materialised buffers first (same values on every backend)."""
    from symdiff.codegen.lower import CONCAT_FANIN, Lowering
    x = sd.input("x", (3, 2), "float64")
    parts = [x * float(k) for k in range(3 * CONCAT_FANIN + 1)]
    out = sd.concatenate(parts, axis=1)
    low = Lowering([out])
    assert low.concat_groups and low.concat_groups <= low.mat
    assert all(len(n.inputs) <= CONCAT_FANIN for n in low.order if n.op == "concatenate")
    # its values on the compiled backends: the "concatenate of 13" output of _indexing_sample
