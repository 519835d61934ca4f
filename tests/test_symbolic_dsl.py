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
    "roll": ({"x": (("n", 3), F)}, lambda x: sd.roll(x, 1, axis=1)),
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
