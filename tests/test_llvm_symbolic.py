"""The llvm backend with runtime sizes (codegen/llvm/render.py's sizes argument, backend.py's SizedEntry): one
compile serves every size, calls of every form bind the sizes, errors name the inputs, concurrent calls of
different sizes do not share a workspace, and a graph the backend cannot size at run time falls back to one
compile per size set."""
from __future__ import annotations

import threading

import numpy as np
import pytest

import symdiff as sd
from symdiff.dim_binding import SymbolicUnsupported
from symdiff.dims import Dim


def _mlp(rows="batch"):
    x, y = sd.input("x", (rows, 12)), sd.input("y", (rows,), "int64")
    w1, w2 = sd.param("w1", (12, 20)), sd.param("w2", (20, 5))
    loss = sd.cross_entropy(sd.relu(x @ w1) @ w2, y)
    return [x, y, w1, w2], [loss, *sd.grad(loss, [w1, w2])]


def _values(n: int, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    return {"x": rng.standard_normal((n, 12)).astype("f4"), "y": rng.integers(0, 5, n),
            "w1": rng.standard_normal((12, 20)).astype("f4") * .3, "w2": rng.standard_normal((20, 5)).astype("f4") * .3}


@pytest.fixture(scope="module")
def mlp():
    leaves, outs = _mlp()
    return sd.compile(outs, "llvm", inputs=leaves), sd.compile(outs, "numpy", inputs=leaves)


def test_one_compile_serves_every_size(mlp):
    f, ref = mlp
    assert f.program.symbolic and f.program.size_names == ("batch",)
    assert isinstance(f.program.workspace_bytes, Dim)
    for n in (1, 2, 7, 64, 300, 7):
        vals = _values(n, n)
        for got, want in zip(f(**vals), ref(**vals)):
            np.testing.assert_allclose(got, want, rtol=2e-5, atol=1e-6, err_msg=f"batch {n}")
    assert f.compiles == 1 and not hasattr(f, "specialized_because")


def test_positional_list_and_converted_arguments_bind_the_sizes(mlp):
    f, ref = mlp
    vals = _values(3)
    want = ref(**vals)
    order = [vals[k] for k in ("x", "y", "w1", "w2")]
    for got in (f(*order), f(vals["x"].astype("f8"), vals["y"].tolist(), vals["w1"], w2=vals["w2"]),
                f(**{**vals, "x": np.asfortranarray(vals["x"])})):
        for g, w in zip(got, want):
            np.testing.assert_allclose(g, w, rtol=2e-5, atol=1e-6)


def test_call_errors_name_the_inputs_and_sizes(mlp):
    f, _ = mlp
    vals = _values(4)
    with pytest.raises(ValueError, match=r"input 'y': dimension 'batch' is 3 .* but 4 in input 'x'"):
        f(**{**vals, "y": vals["y"][:3]})
    with pytest.raises(ValueError, match="x"):
        f(**{**vals, "x": np.ones((4, 11), np.float32)})
    with pytest.raises(ValueError, match="labels|range|\\[0, 5\\)"):
        f(**{**vals, "y": np.full(4, 9)})


def test_concurrent_calls_of_different_sizes(mlp):
    f, ref = mlp
    sizes = (5, 33, 5, 70)
    wants = {n: ref(**_values(n, n)) for n in set(sizes)}
    errors: list = []

    def work(n):
        try:
            for _ in range(20):
                for g, w in zip(f(**_values(n, n)), wants[n]):
                    np.testing.assert_allclose(g, w, rtol=2e-5, atol=1e-6)
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)
    threads = [threading.Thread(target=work, args=(n,)) for n in sizes]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[0]


def test_a_graph_the_backend_cannot_size_falls_back_to_per_size_compiles(monkeypatch):
    from symdiff.codegen.llvm import render

    def refuse(self, b, d):
        if isinstance(d, Dim):
            raise SymbolicUnsupported(f"test: no runtime value for {d}")
        return render.Renderer.dim.__wrapped__(self, b, d)
    refuse.__wrapped__ = render.Renderer.dim
    monkeypatch.setattr(render.Renderer, "dim", refuse)
    leaves, outs = _mlp()
    f = sd.compile(outs, "llvm", inputs=leaves, cache=False)
    assert "test: no runtime value" in f.specialized_because
    ref = sd.compile(outs, "numpy", inputs=leaves)
    for n in (2, 9, 2):
        for g, w in zip(f(**_values(n)), ref(**_values(n))):
            np.testing.assert_allclose(g, w, rtol=2e-5, atol=1e-6)
    assert f.compiles == 2
