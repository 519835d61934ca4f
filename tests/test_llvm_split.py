"""codegen/llvm/split.py: compile_parallel keeps the order of its inputs whatever the thread count,
and starts the largest modules first."""
from __future__ import annotations

import threading

import pytest

from symdiff.codegen.llvm.split import compile_parallel

TEXTS = ["a" * n for n in (3, 40, 7, 100, 1, 55)]


@pytest.mark.parametrize("workers", [1, 2, 3, None, 50])
def test_results_in_input_order(workers):
    out = compile_parallel(TEXTS, lambda t: len(t).to_bytes(2, "little"), workers=workers)
    assert [int.from_bytes(o, "little") for o in out] == [len(t) for t in TEXTS]


def test_largest_first_on_threads():
    started, lock = [], threading.Lock()
    gate = threading.Barrier(2)

    def compile_text(t: str) -> bytes:
        with lock:
            started.append(len(t))
            first_two = len(started) <= 2
        if first_two:
            gate.wait(timeout=10)  # both threads busy before any third job can start
        return t.encode()

    out = compile_parallel(TEXTS, compile_text, workers=2)
    assert out == [t.encode() for t in TEXTS]
    assert sorted(started[:2]) == [55, 100]
    assert sorted(started) == sorted(len(t) for t in TEXTS)


def test_one_and_none():
    assert compile_parallel([], lambda t: b"") == []
    assert compile_parallel(["x"], lambda t: b"y") == [b"y"]


def test_a_graph_renders_into_one_module_per_compile_thread_and_links():
    """Renderer(modules=2) spreads the kernels over two modules, split_graph declares across them, and the
    JIT-compiled function (which splits graphs of 16+ kernels on 2+ CPUs) equals numpy."""
    import numpy as np

    import symdiff as sd
    from symdiff.codegen.llvm.render import Renderer
    from symdiff.codegen.llvm.split import split_graph

    x, y = sd.input("x", (9, 12)), sd.input("y", (9,), "int64")
    ws = [sd.param(f"w{i}", (12, 12)) for i in range(4)]
    h = x
    for w in ws:
        h = sd.tanh(h @ w)
    loss = sd.cross_entropy(h, y)
    outs = [loss, *sd.grad(loss, ws)]
    f = sd.compile(outs, "llvm", num_threads=2)
    assert len(f.program.kernels) >= 16
    r = Renderer(f.program, "entry", target=f.target, modules=2)
    r.render()
    texts, _ = split_graph(r.modules)
    import re
    assert len(texts) == 2 and all(re.search(r'^define [^@]*@"?k\d+_', t, re.M) for t in texts)
    assert re.search(r'^declare [^@]*@"?k\d+_', texts[0], re.M)  # the entry's module calls the other's kernels
    rng = np.random.default_rng(0)
    vals = {"x": rng.standard_normal((9, 12)).astype("f4"), "y": rng.integers(0, 12, 9),
            **{w.name: rng.standard_normal((12, 12)).astype("f4") * .4 for w in ws}}
    for got, want in zip(f(**vals), sd.compile(outs, "numpy")(**vals)):
        np.testing.assert_allclose(got, want, rtol=2e-5, atol=1e-6)


def test_graph_modules_are_balanced_by_their_own_instructions():
    """The renderer spreads kernels by the instructions each module compiles itself: the entry's dispatch
    code counts, the shared GEMM functions (compiled as modules of their own) do not. W1-like MLP: the two
    modules differ by less than the largest kernel."""
    import symdiff as sd
    from symdiff.codegen.llvm.render import Renderer

    x, y = sd.input("x", (64, 784)), sd.input("y", (64,), "int64")
    sizes = (784, 256, 256, 10)
    ws = [sd.param(f"w{i}", (a, b)) for i, (a, b) in enumerate(zip(sizes, sizes[1:]))]
    h = x
    for i, w in enumerate(ws):
        h = h @ w
        h = sd.relu(h) if i < len(ws) - 1 else h
    loss = sd.cross_entropy(h, y)
    from symdiff.codegen.lower import lower
    r = Renderer(lower(sd.simplify([loss, *sd.grad(loss, ws)])), "entry", modules=2)
    r.render()

    def own(m):
        return {g.name: sum(len(bb.instructions) for bb in g.blocks) for g in m.functions
                if g.blocks and not g.name.startswith("sdgemm.")}
    sizes_ = [own(m) for m in r.modules]
    totals = [sum(s.values()) for s in sizes_]  # (the entry's closing ret comes after the last kernel)
    assert r.weights == [totals[0] - 1, totals[1]], (r.weights, totals)
    largest = max(n for s in sizes_ for name, n in s.items() if name != "entry")
    assert abs(r.weights[0] - r.weights[1]) <= largest, (r.weights, largest)


def test_short_gil_switches_nest_and_restore():
    """The switch interval is shortened while any use is active (nested or from two threads) and the
    original value comes back when the last one ends."""
    import sys

    from symdiff.codegen.llvm.split import RENDER_SWITCH_INTERVAL, short_gil_switches

    before = sys.getswitchinterval()
    inside = threading.Event()
    release = threading.Event()

    def other():
        with short_gil_switches():
            inside.set()
            release.wait(10)
    t = threading.Thread(target=other)
    with short_gil_switches():
        assert sys.getswitchinterval() == min(RENDER_SWITCH_INTERVAL, before)
        t.start()
        inside.wait(10)
    assert sys.getswitchinterval() == min(RENDER_SWITCH_INTERVAL, before)  # the other thread still inside
    release.set()
    t.join()
    assert sys.getswitchinterval() == before
