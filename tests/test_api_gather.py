"""Gathers, scatters and scans through the DSL: NumPy advanced indexing (random keys, static and dynamic),
the documented wrap-then-clamp rule of dynamic indices on every backend, ``x.at[...]`` against NumPy's
``np.add.at`` / ``np.multiply.at`` / assignment, gradients, the kernels they lower to, and bad input."""
from __future__ import annotations

import numpy as np
import pytest

import symdiff as sd
from symdiff.codegen.lower import lower
from symdiff.ir import apply
from symdiff.ops_gather import wrap_clamp

from conftest import assert_grad_ok

BACKENDS = ["numpy", "llvm", "cuda-cpu"]
SHAPE = (3, 4, 5)


# ---- one graph per backend: every group below adds outputs (leaf names prefixed by the group) and the NumPy
# values they must equal; the module compiles the union once per backend (compiles dominate the test time) --

GROUPS: dict = {}


def group(fn):
    GROUPS[fn.__name__] = fn
    return fn


@pytest.fixture(scope="module")
def results():
    outs, values, spans = [], {}, {}
    for name, build in GROUPS.items():
        o, v, want = build(name)
        spans[name] = (len(outs), want)
        outs += o
        values.update(v)
    got = {}
    for be in BACKENDS:
        f = sd.compile(outs, be)
        got[be] = f(**{k: values[k] for k in f.input_names})
    return lambda name: [(be, got[be][spans[name][0]:spans[name][0] + len(spans[name][1])], spans[name][1])
                         for be in BACKENDS]


def _check(results, name: str, exact: bool = True) -> None:
    for be, got, want in results(name):
        for k, (g, w) in enumerate(zip(got, want)):
            if exact:
                np.testing.assert_array_equal(g, w, err_msg=f"{be}: {name} output {k}")
            else:
                np.testing.assert_allclose(g, w, rtol=1e-13, atol=1e-15, err_msg=f"{be}: {name} output {k}")


def _random_key(rng, dynamic: bool, values: dict, prefix: str):
    """A random NumPy key for SHAPE: per axis an int, a slice (any step), an integer array or a full slice,
    with None and Ellipsis sprinkled in; with ``dynamic``, integer arrays become int64 input tensors."""
    key, nkey, axis = [], [], 0
    while axis < len(SHAPE):
        n = SHAPE[axis]
        kind = rng.choice(["int", "slice", "array", "array", "none", "ellipsis"])
        if kind == "none":
            key.append(None)
            nkey.append(None)
            continue
        if kind == "ellipsis" and axis == len(SHAPE) - 1:
            key.append(Ellipsis)
            nkey.append(Ellipsis)
            break
        if kind == "int":
            v = int(rng.integers(-n, n))
            key.append(v)
            nkey.append(v)
        elif kind == "slice":
            s = slice(int(rng.integers(-n, n)), None if rng.random() < 0.5 else int(rng.integers(-n, n + 1)),
                      int(rng.choice([-2, -1, 1, 2, 3])))
            if len(range(*s.indices(n))) == 0:
                s = slice(None, None, -1)
            key.append(s)
            nkey.append(s)
        else:
            a = rng.integers(-n, n, size=tuple(rng.integers(1, 3, size=int(rng.integers(1, 3)))))
            a = a.reshape((1,) * int(rng.integers(0, 2)) + a.shape)  # broadcast between the arrays
            if dynamic:
                nm = f"{prefix}_{axis}"
                values[nm] = a
                key.append(sd.input(nm, a.shape, "int64"))
            else:
                key.append(a)
            nkey.append(a)
        axis += 1
    return tuple(key), tuple(nkey)


def _broadcastable(nkey) -> bool:
    try:
        np.broadcast_shapes(*(k.shape for k in nkey if isinstance(k, np.ndarray)))
        return True
    except ValueError:
        return False


def _random_keys(name: str, dynamic: bool, count: int):
    rng = np.random.default_rng(7 + dynamic)
    xv = rng.standard_normal(SHAPE)
    x = sd.input(f"{name}_x", SHAPE, "float64")
    values, outs, want = {x.name: xv}, [], []
    while len(outs) < count:
        key, nkey = _random_key(rng, dynamic, values, f"{name}_i{len(outs)}")
        if not _broadcastable(nkey):
            continue
        outs.append(sd.advanced_index(x, key))
        want.append(xv[nkey])
        assert outs[-1].shape == want[-1].shape, (nkey, outs[-1].shape, want[-1].shape)
    return outs, values, want


@group
def static_keys(name):
    return _random_keys(name, False, 16)


@group
def dynamic_keys(name):
    return _random_keys(name, True, 16)


@pytest.mark.parametrize("name", ["static_keys", "dynamic_keys"])
def test_advanced_indexing_matches_numpy_on_random_keys(results, name):
    _check(results, name)


@group
def masks(name):
    xv = np.arange(12.0).reshape(3, 4)
    x = sd.input(f"{name}_x", (3, 4), "float64")
    mask = xv % 3 == 1
    outs = [sd.advanced_index(x, mask), sd.advanced_index(x, (mask[:, 0], slice(1, 3))),
            sd.advanced_index(x, ([True, False, True],))]
    return outs, {x.name: xv}, [xv[mask], xv[mask[:, 0], 1:3], xv[[True, False, True]]]


def test_boolean_masks_constant_only(results):
    _check(results, "masks")
    x = sd.input("x", (3, 4), "float64")
    with pytest.raises(IndexError, match="boolean index did not match"):
        sd.advanced_index(x, np.ones(3, bool)[:2])
    with pytest.raises(IndexError, match="int32/int64"):
        sd.advanced_index(x, sd.input("m", (3,), "float64"))


@group
def wrap_clamp_rule(name):
    n = 5
    iv = np.arange(-2 * n - 3, 2 * n + 4, dtype=np.int64)  # far below, negative, in range, far above
    xv, gv = np.arange(10.0, 10.0 + n), np.arange(1.0, 1.0 + iv.size)
    x, i = sd.input(f"{name}_x", (n,), "float64"), sd.input(f"{name}_i", iv.shape, "int64")
    j, g = sd.input(f"{name}_j", iv.shape, "int32"), sd.input(f"{name}_g", iv.shape, "float64")
    outs = [sd.take(x, i), sd.take_along_axis(x, j, 0), apply("scatter_add", [g, i], axis=0, shape=(n,)),
            x.at[i].set(g), x.at[i].add(g)]
    idx = wrap_clamp(iv, n)
    np.testing.assert_array_equal(idx, np.clip(np.where(iv < 0, iv + n, iv), 0, n - 1))
    assert list(idx[:4]) == [0, 0, 0, 0] and list(idx[-4:]) == [4, 4, 4, 4]
    scat = np.zeros(n)
    np.add.at(scat, idx, gv)
    setv = xv.copy()
    setv[idx] = gv  # NumPy assignment: the last of repeated indices wins
    values = {x.name: xv, i.name: iv, j.name: iv.astype(np.int32), g.name: gv}
    return outs, values, [xv[idx], xv[idx], scat, setv, xv + scat]


def test_dynamic_indices_wrap_once_then_clamp_identically_on_every_backend(results):
    _check(results, "wrap_clamp_rule")


@group
def at_updates(name):
    rng = np.random.default_rng(3)
    xv, iv, vv = rng.standard_normal((4, 3)), np.array([2, 0, 2, 2]), rng.standard_normal((4, 2))
    x, i = sd.input(f"{name}_x", (4, 3), "float64"), sd.input(f"{name}_i", (4,), "int64")
    v = sd.input(f"{name}_v", (4, 2), "float64")
    outs, want = [], []
    for key, nkey in [((i, slice(1, None)), (iv, slice(1, None))),
                      (([2, 0, 2, 2], slice(None, 2)), ([2, 0, 2, 2], slice(None, 2)))]:
        for how in ("set", "add", "multiply"):
            outs.append(getattr(x.at[key], how)(v))
            y = xv.copy()
            if how == "set":
                y[nkey] = vv
            else:
                (np.add if how == "add" else np.multiply).at(y, nkey, vv)
            want.append(y)
    outs += [x.at[1].set(0.5), x.at[..., -1].multiply(2.0), x.at[None, 1:, ::2].add(1.0), x.at[i, 0].get()]
    want += [np.where(np.arange(4)[:, None] == 1, 0.5, xv), xv * [1, 1, 2],
             xv + (np.arange(4) > 0)[:, None] * [1, 0, 1], xv[iv, 0]]
    return outs, {x.name: xv, i.name: iv, v.name: vv}, want


def test_at_updates_match_numpy(results):
    _check(results, "at_updates", exact=False)


@group
def sorts(name):
    xv = np.array([[3.0, 1.0, 2.0, 1.0, np.nan, 0.0], [5.0, 4.0, 3.0, 2.0, 1.0, 0.0],
                   [1.0, 1.0, np.nan, -1.0, 1.0, 2.0]])
    x = sd.input(f"{name}_x", xv.shape, "float64")
    # long rows take the heap-sort paths (llvm from 33 elements, cuda from 1024): ties and NaNs there too
    lv = np.round(np.random.default_rng(8).standard_normal((2, 1030)), 1)
    lv[:, ::97] = np.nan
    long_rows = sd.input(f"{name}_long", lv.shape, "float64")
    outs = [sd.sort(x), sd.argsort(x, axis=0), sd.sort(x, axis=None), sd.argsort(x), sd.partition(x, [1, 4]),
            sd.argpartition(x, 2, axis=0), sd.argsort(long_rows),
            sd.argsort(sd.advanced_index(long_rows, (slice(None), slice(0, 40))))]
    want = [np.sort(xv), np.argsort(xv, axis=0, kind="stable"), np.sort(xv, axis=None),
            np.argsort(xv, kind="stable"), np.sort(xv), np.argsort(xv, axis=0, kind="stable"),
            np.argsort(lv, kind="stable"), np.argsort(lv[:, :40], kind="stable")]
    return outs, {x.name: xv, long_rows.name: lv}, want


def test_sort_argsort_partition(results):
    """Stable order (ties keep their order), NaN last, on every backend; partition satisfies NumPy's contract."""
    _check(results, "sorts")
    xv = np.array([[3.0, 1.0, 2.0, 1.0, np.nan, 0.0]])
    part = np.partition(xv, [1, 4])
    got = results("sorts")[0][1][4][:1]
    np.testing.assert_array_equal(got[:, [1, 4]], part[:, [1, 4]])


def test_gradients_of_gathers_updates_and_scans():
    rng = np.random.default_rng(4)
    x, v = sd.input("x", (4, 3), "float64"), sd.input("v", (3,), "float64")
    i = sd.input("i", (3,), "int64")
    vals = {"x": rng.uniform(0.5, 1.5, (4, 3)), "v": rng.uniform(0.5, 1.5, 3), "i": np.array([3, -1, 0])}
    w = sd.const(rng.standard_normal((4, 3)), "float64")
    for y in (x.at[i, 1].set(v), x.at[[0, 0, 2], 1].multiply(v), x.at[i, 2].multiply(v),
              sd.cumprod(x, axis=0) + sd.cumsum(x, axis=1), sd.advanced_index(x, (i, slice(None, None, -1))) ** 2):
        loss = sd.sum(y * y * (w if y.shape == (4, 3) else 1.0))
        assert_grad_ok(sd.check_grad(loss, [x, v] if any(n is v for n in _leaves(loss)) else [x], vals))


def _leaves(y):
    from symdiff.ir import leaves
    return leaves([y])


def test_scatter_and_scan_are_kernels_not_python():
    x = sd.input("x", (4, 3), "float64")
    i = sd.input("i", (5,), "int64")
    y = sd.sum(sd.take(x, i, axis=0) ** 2) + sd.sum(sd.cumsum(x, axis=1) * sd.cumprod(x, axis=0))
    g = sd.grad(y, x)
    prog = lower([y, g])
    kinds = prog.stats()["by_kind"]
    assert kinds["scatter"] == 1 and kinds["scan"] >= 3, kinds
    text = prog.describe()
    assert "scatter_add of [1, 5, 3] updates" in text and "reversed cumsum along axis 1" in text
    assert all(c.flops > 0 for k, c in zip(prog.kernels, prog.costs()) if k.kind in ("scatter", "scan"))
    from symdiff.codegen.cuda.render import render_cuda
    src, _ = render_cuda(prog)
    assert "atomicAdd(&" in src and "for (int jr = 2; jr >= 0; --jr)" in src


def test_bad_input_errors():
    x = sd.input("x", (3, 4), "float64")
    with pytest.raises(IndexError, match="index 4 is out of bounds for axis 1 with size 4"):
        sd.advanced_index(x, (slice(None), [0, 4]))
    with pytest.raises(IndexError, match="index -4 is out of bounds for axis 0 with size 3"):
        sd.advanced_index(x, ([-4], sd.input("j", (1,), "int64")))
    with pytest.raises(IndexError, match="out of bounds for axis 0 with size 3"):
        sd.take(x, [3], axis=0)
    with pytest.raises(IndexError, match="too many indices for tensor: tensor is 2-dimensional, but 3"):
        sd.advanced_index(x, (0, sd.input("j", (1,), "int64"), 1))
    with pytest.raises(IndexError, match="could not be broadcast together with shapes"):
        sd.advanced_index(x, (sd.input("a", (2,), "int64"), sd.input("b", (3,), "int64")))
    with pytest.raises(IndexError, match="only integers, slices"):
        sd.advanced_index(x, ("a",))
    with pytest.raises(ValueError, match="must have the rank of the tensor"):
        sd.take_along_axis(x, sd.input("k", (3,), "int64"), 1)
    with pytest.raises(TypeError, match="take_along: indices must be an int32/int64 tensor"):
        apply("take_along", [x, sd.input("f", (3, 2), "float64")], axis=1)
    with pytest.raises(ValueError, match="do not broadcast against values of shape"):
        apply("take_along", [x, sd.input("k2", (2, 2), "int64")], axis=1)
    with pytest.raises(ValueError, match=r"scatter_add: updates of shape \(3, 3\) do not match"):
        apply("scatter_add", [sd.input("u", (3, 3), "float64"), sd.input("k3", (3, 2), "int64")], axis=1, shape=(3, 4))
    with pytest.raises(ValueError, match="cumsum: axis 2 is out of bounds"):
        sd.cumsum(x, axis=2)
    with pytest.raises(ValueError, match="cannot be broadcast to the indexed shape"):
        x.at[[0, 1]].set(sd.input("v", (3,), "float64"))
    with pytest.raises(TypeError, match="cumsum: expected a float tensor, got int64"):
        sd.cumsum(sd.input("n", (3,), "int64"))


def test_api_cases_match_their_numpy_reference():
    """The API cases of tests/cases_gather.py (the op suite runs API_CASES on every backend) against their refs."""
    from test_ops import _leaf_nodes  # first: it imports the case modules (cases_gather imports it back)
    import cases_gather
    for name, case in {**cases_gather.API_CASES, **cases_gather.API_NUMPY_CASES}.items():
        values = case.gen(np.random.default_rng(0))
        out = case.build(*_leaf_nodes(values).values())
        got = sd.compile(out, "numpy")(**{k: values[k] for k in sd.compile(out, "numpy").input_names})
        np.testing.assert_allclose(got, case.ref(*values.values()), rtol=1e-12, err_msg=name)


def test_sort_gradient_and_errors():
    x = sd.input("x", (3, 6), "float64")
    rng = np.random.default_rng(5)
    w = sd.const(rng.standard_normal((3, 6)), "float64")
    xs = rng.standard_normal((3, 6))
    assert_grad_ok(sd.check_grad(sd.sum(sd.sort(x, axis=0) ** 3 * w), x, {"x": xs}))
    g = sd.compile(sd.grad(sd.sum(sd.sort(x) * w), x), "numpy")(x=xs)  # the cotangent, unsorted back
    np.testing.assert_allclose(np.take_along_axis(g, np.argsort(xs), 1), w.value)
    with pytest.raises(ValueError, match=r"partition: kth\(=6\) out of bounds for axis 1 of length 6"):
        sd.partition(x, 6)
    with pytest.raises(ValueError, match="argsort: axis 2 is out of bounds"):
        sd.argsort(x, axis=2)


def test_parallel_scatter_scan_and_sort_tasks_match_numpy():
    """Domains past the parallel threshold split over tasks: the scatter over an axis its updates never
    collide on (repeated row ids still sum within a task), scans and sorts over rows."""
    rng = np.random.default_rng(6)
    E, ids = sd.input("E", (40, 64), "float64"), sd.input("ids", (520,), "int64")
    x = sd.input("x", (600, 60), "float64")
    y = sd.sum(sd.take(E, ids, axis=0) ** 2)
    outs = [sd.grad(y, E), sd.cumsum(x, axis=1), sd.sort(x, axis=1)]
    f = sd.compile(outs, "llvm", num_threads=2)
    tasks = {k.kind: k.tasks for k in f.program.kernels if k.kind in ("scatter", "scan", "sort")}
    assert tasks["scatter"] > 1 and tasks["scan"] > 1 and tasks["sort"] > 1, tasks
    vals = {"E": rng.standard_normal((40, 64)), "ids": rng.integers(-40, 40, 520), "x": rng.standard_normal((600, 60))}
    grad = np.zeros((40, 64))
    np.add.at(grad, vals["ids"], 2 * vals["E"][vals["ids"]])
    got = f(**vals)
    np.testing.assert_allclose(got[0], grad, rtol=1e-12)
    np.testing.assert_allclose(got[1], np.cumsum(vals["x"], axis=1), rtol=1e-12)
    np.testing.assert_array_equal(got[2], np.sort(vals["x"], axis=1))


@pytest.mark.skipif(__import__("symdiff.codegen.cuda.backend", fromlist=["x"]).find_nvcc() is None,
                    reason="nvcc not found")
def test_nvcc_compiles_the_scatter_scan_and_sort_kernels():
    """The atomics (atomicAdd, the CAS loop of sd_atomic_mul, atomicMax on long long), scans and sorts are
    valid CUDA for a real GPU target, float32 and float64 (PTX for sm_90, no warnings)."""
    from symdiff.codegen.cuda import backend as cb
    from symdiff.codegen.cuda.render import render_cuda
    outs = []
    for dt in ("float32", "float64"):
        x, v = sd.input(f"x_{dt}", (4, 3), dt), sd.input(f"v_{dt}", (3,), dt)
        i = sd.input(f"i_{dt}", (3,), "int64")
        outs += [x.at[i, 1].set(v), x.at[i, 2].multiply(v), sd.cumprod(x, 0), sd.cumsum(x, 1), sd.sort(x),
                 sd.grad(sd.sum(sd.take(x, i, axis=0) ** 2), x), sd.sort(sd.input(f"l_{dt}", (2, 1100), dt))]
    src = render_cuda(lower(outs), "sd_entry")[0]
    assert "atomicMax(&" in src and "sd_atomic_mul(&" in src and "sd_sorts_before(" in src and "sd_heap_argsort(" in src
    assert cb.nvcc_ptx(src, "sm_90") == (0, "")
