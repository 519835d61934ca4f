"""The LLVM backend against the NumPy oracle (every op of the op table: tests/test_ops_backends.py): fusion
and corner cases (size-1 axes, odd sizes, single elements), the lecture's MLP, bad input, threads, cache."""
from __future__ import annotations

import threading

import numpy as np
import pytest

import symdiff as sd
from symdiff.codegen.lower import lower



def both(outputs, **values):
    """(llvm result, numpy result) of the same graph."""
    f = sd.compile(outputs, backend="llvm")
    g = sd.compile(outputs, backend="numpy")
    values = {k: v for k, v in values.items() if k in f.input_names}
    return f(**values), g(**values)


def assert_close(got, want, dtype="float64"):
    got = got if isinstance(got, tuple) else (got,)
    want = want if isinstance(want, tuple) else (want,)
    assert len(got) == len(want)
    tol = 2e-5 if dtype == "float32" else 1e-11
    for a, b in zip(got, want):
        assert a.shape == b.shape and a.dtype == b.dtype
        np.testing.assert_allclose(a, b, rtol=tol, atol=tol)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_lecture_mlp_matches_numpy(dtype):
    rng = np.random.default_rng(0)
    x = sd.input("x", (33, 50), dtype)
    y = sd.input("y", (33,), "int64")
    W1, b1 = sd.param("W1", (50, 37), dtype), sd.param("b1", (37,), dtype)
    W2, b2 = sd.param("W2", (37, 10), dtype), sd.param("b2", (10,), dtype)
    loss = sd.cross_entropy(sd.relu(x @ W1 + b1) @ W2 + b2, y)
    grads = sd.grad(loss, [W1, b1, W2, b2])
    vals = dict(x=rng.standard_normal((33, 50)).astype(dtype), y=rng.integers(0, 10, 33),
                W1=(rng.standard_normal((50, 37)) * 0.2).astype(dtype), b1=rng.standard_normal(37).astype(dtype) * 0.1,
                W2=(rng.standard_normal((37, 10)) * 0.2).astype(dtype), b2=np.zeros(10, dtype))
    assert_close(*both([loss, *grads], **vals), dtype=dtype)


@pytest.mark.parametrize("shape,axis", [((1, 1), 0), ((1, 7), 1), ((5, 1), None), ((3, 1, 4), (0, 2)), ((257,), 0),
                                        ((3, 5, 2), 1), ((40000,), None), ((300, 200), 0), ((2, 3, 40000), 2)])
def test_reductions_and_broadcasting_corner_cases(shape, axis):
    rng = np.random.default_rng(3)
    x = sd.input("x", shape, "float64")
    b = sd.input("b", shape[-1:], "float64")
    z = sd.tanh(x * b + 1.0)
    outs = [sd.sum(z, axis=axis), sd.max(z, axis=axis, keepdims=True), sd.mean(sd.exp(z), axis=axis)]
    vals = dict(x=rng.standard_normal(shape), b=rng.standard_normal(shape[-1:]))
    assert_close(*both(outs, **vals))
    y = sd.sum(outs[0] * 2.0) + sd.sum(outs[2])
    assert_close(*both([y, *sd.grad(y, [x, b])], **vals))


@pytest.mark.parametrize("n", [1, 7, 16, 1000, 65537])
def test_fused_elementwise_loss_and_gradients(n):
    """The W4 workload shape: one fused pass computes the loss and both gradients."""
    rng = np.random.default_rng(4)
    a, c = sd.input("a", (n,)), sd.input("c", (n,))
    loss = sd.sum(sd.log(1 + sd.exp(sd.sin(a) * sd.cos(c))) + sd.tanh(a * c) ** 2)
    outs = [loss, *sd.grad(loss, [a, c])]
    prog = lower(sd.simplify(outs))
    assert len(prog.kernels) == 1 or n == 1, prog.describe()
    vals = dict(a=rng.standard_normal(n).astype(np.float32), c=rng.standard_normal(n).astype(np.float32))
    got, want = both(outs, **vals)
    np.testing.assert_allclose(got[0], want[0], rtol=1e-5)
    for g, w in zip(got[1:], want[1:]):  # float32 sums of O(1) terms that can cancel: absolute tolerance
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=2e-5)


def test_math_heavy_innermost_loops_are_interleaved():
    """A loop whose point makes several math-library calls gets an interleave hint on its innermost
    loop (one per loop, its own loop ID); a light loop is left to LLVM's own choice."""
    from symdiff.codegen.llvm.render import HEAVY_INTERLEAVE, render
    hint = f'!"llvm.loop.interleave.count", i32 {HEAVY_INTERLEAVE}'
    a, c = sd.input("a", (64, 50)), sd.input("c", (64, 50))
    heavy = sd.sum(sd.log(1 + sd.exp(sd.sin(a) * sd.cos(c))) + sd.tanh(a * c) ** 2)
    cases = {"heavy loop": ([heavy, *sd.grad(heavy, [a, c])], 1),
             "heavy row sums": ([sd.sum(sd.exp(sd.sin(a)) * sd.cos(c), axis=1)], 1),
             "light loop": ([a * c + 1.0, sd.sum(a * c, axis=1)], 0)}
    for name, (outs, want) in cases.items():
        text = str(render(lower(sd.simplify(outs))))
        assert text.count(hint) == want, name
        loop_ids = [ln for ln in text.splitlines() if ln.startswith("!") and "= !{ !" in ln
                    and ln.split(" = ")[0] == ln.split("!{ ")[1].split(",")[0]]
        assert len(loop_ids) == want, (name, loop_ids)  # self-referencing loop IDs, one per hinted loop


def test_softmax_family_along_both_axes_and_stability():
    rng = np.random.default_rng(5)
    x = sd.input("x", (6, 9), "float64")
    outs = [sd.softmax(x, axis=0), sd.log_softmax(x, axis=1), sd.logsumexp(x, axis=1), sd.logsumexp(x, axis=0, keepdims=True)]
    vals = dict(x=rng.standard_normal((6, 9)) * 300)
    assert_close(*both(outs, **vals))
    got, _ = both(outs, **vals)
    assert all(np.all(np.isfinite(g)) for g in got)


def test_transposed_and_reshaped_views_fuse_without_copies():
    rng = np.random.default_rng(6)
    a = sd.input("a", (4, 6), "float64")
    b = sd.input("b", (6, 4), "float64")
    out = sd.reshape(sd.transpose(a) * b, (3, 8)) + sd.reshape(b, (3, 8))
    assert_close(*both(out, a=rng.standard_normal((4, 6)), b=rng.standard_normal((6, 4))))


def test_matmul_with_transposed_operands_and_1d():
    rng = np.random.default_rng(7)
    A, B = sd.input("A", (5, 3), "float64"), sd.input("B", (4, 3), "float64")
    v = sd.input("v", (3,), "float64")
    outs = [A @ B.T, A.T @ A, B @ v, v @ B.T]
    assert_close(*both(outs, A=rng.standard_normal((5, 3)), B=rng.standard_normal((4, 3)), v=rng.standard_normal(3)))


def test_outputs_never_alias_and_leaves_can_be_outputs():
    x = sd.input("x", (3,), "float64")
    f = sd.compile([x, x, x * 2.0], backend="llvm")
    xv = np.arange(3.0)
    a, b, c = f(x=xv)
    assert not np.shares_memory(a, xv) and not np.shares_memory(a, b)
    a[0] = 99
    assert xv[0] == 0 and b[0] == 0 and c[1] == 2


def test_bad_inputs_raise_clear_errors():
    x = sd.input("x", (2, 3))
    y = sd.input("y", (2,), "int64")
    f = sd.compile(sd.cross_entropy(x, y), backend="llvm")
    good = dict(x=np.zeros((2, 3), np.float32), y=np.array([0, 2]))
    assert np.isfinite(f(**good))
    with pytest.raises(TypeError, match="missing"):
        f(x=good["x"])
    with pytest.raises(TypeError, match="unexpected"):
        f(**good, z=1)
    with pytest.raises(ValueError, match="shape"):
        f(x=np.zeros((3, 2), np.float32), y=good["y"])
    with pytest.raises(TypeError):
        f(x=np.zeros((2, 3), np.complex64), y=good["y"])
    with pytest.raises(TypeError):
        f(x=good["x"], y=np.array([0.0, 1.0]))
    with pytest.raises(ValueError, match="out of range"):
        f(x=good["x"], y=np.array([0, 3]))
    with pytest.raises(ValueError, match="out of range"):
        f(x=good["x"], y=np.array([-1, 0]))
    with pytest.raises(TypeError):
        f(x=None, y=good["y"])


def test_casts_and_strided_inputs():
    rng = np.random.default_rng(8)
    x = sd.input("x", (4, 5))
    f = sd.compile(sd.exp(x) * 2.0, backend="llvm")
    big = rng.standard_normal((8, 10))
    view = big[::2, ::-2]  # non-contiguous, negative stride, float64 into a float32 graph
    want = (np.exp(view.astype(np.float32)) * 2).astype(np.float32)
    np.testing.assert_allclose(f(x=view), want, rtol=1e-6)
    assert np.isnan(f(x=np.full((4, 5), np.nan))).all()


def test_threads_give_sequential_results():
    rng = np.random.default_rng(9)
    x = sd.input("x", (64, 100))
    W = sd.param("W", (100, 50))
    loss = sd.sum(sd.tanh(x @ W))
    f = sd.compile([loss, sd.grad(loss, [W])[0]], backend="llvm")
    inputs = [dict(x=rng.standard_normal((64, 100)).astype(np.float32),
                   W=rng.standard_normal((100, 50)).astype(np.float32)) for _ in range(8)]
    expected = [f(**v) for v in inputs]
    results: list = [None] * len(inputs)

    def work(i):
        for _ in range(20):
            results[i] = f(**inputs[i])
    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(inputs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for r, e in zip(results, expected):
        np.testing.assert_array_equal(r[0], e[0])
        np.testing.assert_array_equal(r[1], e[1])


def test_disk_cache_hit_and_corrupt_entry(tmp_path, monkeypatch):
    from symdiff.codegen import cache
    monkeypatch.setenv("SYMDIFF_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("SYMDIFF_CACHE", "1")
    x = sd.input("x", (3,), "float64")
    out = sd.sin(x) * 3.0
    f1 = sd.compile(out, backend="llvm")
    assert not f1.cache_hit
    f2 = sd.compile(out, backend="llvm")
    assert f2.cache_hit
    np.testing.assert_array_equal(f2(x=np.arange(3.0)), np.sin(np.arange(3.0)) * 3)
    for p in tmp_path.rglob("*.bin"):
        p.write_bytes(p.read_bytes()[:-7])  # truncate every entry
    f3 = sd.compile(out, backend="llvm")
    assert not f3.cache_hit
    np.testing.assert_array_equal(f3(x=np.arange(3.0)), np.sin(np.arange(3.0)) * 3)
    cache.clear()
    assert not list(tmp_path.rglob("*.bin"))


def test_shared_gemm_kernels_are_compiled_once_and_reused(tmp_path, monkeypatch):
    """A second graph with the same matrix products links the cached GEMM kernel objects."""
    monkeypatch.setenv("SYMDIFF_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("SYMDIFF_CACHE", "1")
    rng = np.random.default_rng(10)
    x, W = sd.input("x", (37, 70)), sd.param("W", (70, 45))
    first = sd.compile([sd.sum(sd.tanh(x @ W))])
    assert first.shared_kernels["compiled"] and not first.shared_kernels["reused"]
    loss = sd.sum(sd.sigmoid(x @ W) * 3.0)  # another graph, same products
    second = sd.compile([loss, sd.grad(loss, [W])[0]])
    assert second.shared_kernels["reused"], second.shared_kernels
    assert not set(second.shared_kernels["compiled"]) & set(first.shared_kernels["compiled"])
    vals = dict(x=rng.standard_normal((37, 70)).astype(np.float32), W=rng.standard_normal((70, 45)).astype(np.float32))
    want = sd.compile([loss, sd.grad(loss, [W])[0]], backend="numpy")(**vals)
    for g, w in zip(second(**vals), want):
        np.testing.assert_allclose(g, w, rtol=2e-5, atol=2e-5)
