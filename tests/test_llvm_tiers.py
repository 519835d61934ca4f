"""codegen/llvm/tiers.py: which kernels compile at the light tier, where the renderer puts them, how
emit_object compiles them, and that a graph with light kernels computes what the full tier does."""
from __future__ import annotations

import numpy as np
import pytest

import symdiff as sd
from symdiff.codegen.cost import Cost
from symdiff.codegen.llvm import backend, jit, tiers
from symdiff.codegen.llvm.render import Renderer
from symdiff.codegen.llvm.tiers import light_kernels, work
from symdiff.dims import dim


def _mlp(rows=13, sizes=(37, 53, 11)):
    x, y = sd.input("x", (rows, sizes[0])), sd.input("y", (rows,), "int64")
    ws = [sd.param(f"w{i}", (a, b)) for i, (a, b) in enumerate(zip(sizes, sizes[1:]))]
    bs = [sd.param(f"b{i}", (b,)) for i, b in enumerate(sizes[1:])]
    h = x
    for i, (w, b) in enumerate(zip(ws, bs)):
        h = h @ w + b
        h = sd.relu(h) if i < len(ws) - 1 else h
    loss = sd.cross_entropy(h, y)
    return [loss, *sd.grad(loss, ws + bs)], x, y, ws + bs


def _feeds(x, y, params, rows=13, seed=0):
    rng = np.random.default_rng(seed)
    feeds = {x.name: rng.standard_normal(x.shape).astype(np.float32),
             y.name: rng.integers(0, params[len(params) // 2 - 1].shape[1], rows).astype(np.int64)}
    feeds.update({p.name: (0.3 * rng.standard_normal(p.shape)).astype(np.float32) for p in params})
    return feeds


@pytest.fixture(scope="module")
def program():
    outs, *_ = _mlp()
    return sd.compile(outs, "llvm", cache=False).program


def test_work_weighs_flops_special_calls_and_bytes():
    c = Cost(flops=1000, special=10, bytes_read=400, bytes_written=100, matmul_flops=600)
    # 600 GEMM FLOPs + 2 x 400 other FLOPs + 20 x 10 library calls + 4 x 500 bytes
    assert work(c) == 600 + tiers.ELEMENTWISE_WEIGHT * 400 + tiers.SPECIAL_WEIGHT * 10 + tiers.BYTE_WEIGHT * 500
    assert work(Cost(flops=dim("n"), bytes_read=8)) is None


def test_light_kernels_are_the_smallest_within_the_share(program):
    works = [work(c) for c in program.costs()]
    total = sum(works)
    light = light_kernels(program)
    assert light, "an MLP's graph has small loop kernels"
    assert all(works[i] <= tiers.LIGHT_MAX for i in light)
    assert sum(works[i] for i in light if works[i] > tiers.LIGHT_FLOOR) <= tiers.LIGHT_SHARE * total
    heavy = set(range(len(works))) - light
    assert heavy and min(works[i] for i in heavy) >= max(works[i] for i in light)  # smallest first
    # every matrix product of this graph is far above the share: none is light
    from symdiff.codegen.kernel_ir import MatmulKernel
    assert not any(isinstance(program.kernels[i], MatmulKernel) for i in light)


def test_light_kernels_floor_share_and_cap(program):
    works = [work(c) for c in program.costs()]
    assert light_kernels(program, share=0.0, floor=0) == frozenset()
    floor = sorted(works)[len(works) // 2]
    assert light_kernels(program, share=0.0, floor=floor) == {i for i, w in enumerate(works) if w <= floor}
    assert light_kernels(program, share=1.0, cap=max(works)) == set(range(len(works)))
    cap = sorted(works)[2]
    assert light_kernels(program, share=1.0, cap=cap) == {i for i, w in enumerate(works) if w <= cap}


def test_a_symbolic_program_has_no_light_kernels():
    outs, *_ = _mlp(rows="batch")
    prog = sd.compile(outs, "llvm", cache=False).program
    assert prog.symbolic
    assert light_kernels(prog) == frozenset()


def test_renderer_puts_light_kernels_in_light_modules(program):
    light = light_kernels(program)
    r = Renderer(program, "sd_entry", modules=1, light=light, light_modules=1)
    r.render()
    assert [m.sd_light for m in r.modules] == [False, True]

    def tasks(m):  # the kernels' task functions each module defines (shared GEMM functions excluded)
        return {f.name for f in m.functions if not f.is_declaration and f.name[0] == "k" and "_" in f.name}
    full, lite = tasks(r.modules[0]), tasks(r.modules[1])
    assert len(lite) == len(light) and not full & lite
    one = Renderer(program, "sd_entry")
    one.render()
    assert [m.sd_light for m in one.modules] == [False]
    assert len(tasks(one.modules[0])) == len(full) + len(lite)


def test_entry_module_holds_the_dispatch_and_the_product_stubs(program):
    from symdiff.codegen.kernel_ir import MatmulKernel
    light = light_kernels(program)
    r = Renderer(program, "sd_entry", modules=1, light=light, light_modules=1, entry_module=True)
    r.render()
    assert [m.sd_light for m in r.modules] == [True, False, True]
    defined = [{f.name for f in m.functions if not f.is_declaration} for m in r.modules]
    assert "sd_entry" in defined[0]
    for i, k in enumerate(program.kernels):
        where = [j for j, names in enumerate(defined) if any(n.startswith(f"k{i}_") for n in names)]
        want = 2 if i in light else 0 if isinstance(k, MatmulKernel) else 1
        assert where == [want], (i, type(k).__name__, where)


def test_compile_queue_starts_the_texts_marked_last_after_the_others():
    from symdiff.codegen.llvm.split import CompileQueue
    order = []
    with CompileQueue(order.append, workers=1) as q:
        q.submit_all(["a" * 50, "b" * 10, "c" * 30], last=frozenset({0}))
    assert [t[0] for t in order] == ["c", "b", "a"]


def test_emit_object_light_uses_the_light_settings(monkeypatch):
    seen = []
    real_opt, real_tm = jit.optimize, jit.target_machine

    def optimize(mod, tm, speed_level=3, unlocked=False, tuning=None):
        seen.append((speed_level, tuning))
        real_opt(mod, tm, speed_level, unlocked, tuning)

    def target_machine(*a, **k):
        seen.append(("codegen", k.get("opt", 3)))
        return real_tm(*a, **k)
    monkeypatch.setattr(jit, "optimize", optimize)
    monkeypatch.setattr(jit, "target_machine", target_machine)
    src = 'define float @"twice"(float %x) {\n  %y = fadd float %x, %x\n  ret float %y\n}\n'
    obj, text = jit.emit_object(src, light=True)
    assert obj and "fadd" in text
    assert seen == [("codegen", tiers.LIGHT_CODEGEN_LEVEL), (tiers.LIGHT_SPEED_LEVEL, tiers.LIGHT_TUNING)]
    seen.clear()
    jit.emit_object(src)
    assert seen == [("codegen", 3), (jit.EMIT_SPEED_LEVEL, jit.EMIT_TUNING)]


@pytest.mark.parametrize("mode", ["default", "all light", "off"])
def test_light_graphs_compute_what_the_full_tier_does(monkeypatch, mode):
    outs, x, y, params = _mlp()
    feeds = _feeds(x, y, params)
    ref = sd.compile(outs, "numpy")(**feeds)
    if mode == "all light":
        monkeypatch.setattr(backend, "light_kernels", lambda p: frozenset(range(len(p.kernels))))
    monkeypatch.setattr(backend, "LIGHT_TIER", mode != "off")
    with jit.record_compile_times() as mods:
        f = sd.compile(outs, "llvm", cache=False)
    got = f(**feeds)
    for a, b in zip(got, ref):
        np.testing.assert_allclose(a, b, rtol=2e-4, atol=1e-5)
    own = [m for m in mods if not m["module"].startswith("sdgemm.")]
    lights = [m["light"] for m in own]
    if mode == "off":
        assert not any(lights)
    else:
        assert any(lights)
        if mode == "all light":
            assert all(lights)  # the entry's module too: every kernel is light


def test_graph_modules_count_the_full_tier_loops_not_the_product_stubs():
    """With an entry module, the full tier's products are stubs in it: the loops alone decide the split."""
    from symdiff.codegen.kernel_ir import MatmulKernel
    from symdiff.codegen.llvm.backend import GRAPH_PART_KERNELS, graph_modules
    from symdiff.codegen.llvm.split import compile_threads
    from symdiff.codegen.llvm.tiers import light_kernels
    from benchmarks import compile_time, workloads
    loss, wrt, _ = workloads.build_symdiff(compile_time.workload("odd"), sd)
    prog = sd.compile([loss, *sd.grad(loss, wrt)], backend="llvm", cache=False).program
    light = light_kernels(prog)
    loops = sum(1 for i, k in enumerate(prog.kernels) if i not in light and not isinstance(k, MatmulKernel))
    n_mod, n_light = graph_modules(prog, light, True)
    assert n_mod == max(1, min(compile_threads(), loops // GRAPH_PART_KERNELS))
    assert graph_modules(prog, light, False)[0] == max(1, min(compile_threads(), (len(prog.kernels) - len(light))
                                                              // GRAPH_PART_KERNELS))
    assert n_light == max(1, min(compile_threads(), len(light) // GRAPH_PART_KERNELS))
    assert loops < len(prog.kernels) - len(light)  # (its products are full-tier kernels too: not counted)
