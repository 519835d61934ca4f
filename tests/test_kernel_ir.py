"""The kernel IR (codegen/kernel_ir.py) and its cost model (codegen/cost.py).

- kernels, buffers and programs are immutable; lowering's fusion builds new kernels; no renderer
  writes into the IR (the LLVM renderer keeps its GemmInfo records itself);
- kernels state what they read and write;
- the cost model's FLOPs are exact for known shapes (2MNK per matmul, one per cheap elementwise op
  per point, ...), and Program.stats(), the per-kernel costs and the CUDA kernel table agree.
"""
from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import numpy as np
import pytest

import symdiff as sd
from symdiff.codegen import cost
from symdiff.codegen.cuda.render import kernel_stats
from symdiff.codegen.kernel_ir import Buffer, LoopKernel, MatmulKernel, ReduceKernel, RowKernel
from symdiff.codegen.llvm.render import Renderer
from symdiff.codegen.lower import lower
from symdiff.codegen.target import host_target

TWO = host_target(2)  # fixed task counts, whatever the machine


def _program(outs):
    return lower(sd.simplify(list(outs)), TWO)


def _only(program, kind):
    ks = [k for k in program.kernels if isinstance(k, kind)]
    assert len(ks) == 1, program.describe()
    return ks[0]


def _mlp_layer():
    x = sd.input("x", (8, 5))
    w = sd.param("w", (5, 3))
    b = sd.param("b", (3,))
    return x, w, b, sd.relu(x @ w + b)


# ---- immutability ----------------------------------------------------------------------------------------

def test_kernels_buffers_and_programs_are_frozen():
    x, w, b, y = _mlp_layer()
    p = _program([sd.sum(y)])
    for k in p.kernels:
        field = dataclasses.fields(k)[0].name
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(k, field, None)
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.inputs[0].offset = 128
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.kernels = ()
    with pytest.raises(TypeError):
        p.where[x] = p.inputs[0]  # a read-only mapping
    assert isinstance(p.kernels, tuple) and all(isinstance(k.stores, tuple) for k in p.kernels
                                                if isinstance(k, LoopKernel))


def test_fusion_builds_new_kernels():
    x = sd.input("x", (4, 4))
    a = LoopKernel((4, 4), ((sd.exp(x), None),))
    c = LoopKernel((4, 4), ((sd.sin(x), None),))
    m = a.merged(c)
    assert m is not a and len(m.stores) == 2 and len(a.stores) == 1 and len(c.stores) == 1
    # a lowered program: a loss and its gradient fuse into one pass, the kernel is a fresh object
    p = _program([sd.sum(sd.tanh(x)), *sd.grad(sd.sum(sd.tanh(x)), [x])])
    (k,) = p.kernels
    assert isinstance(k, LoopKernel) and len(k.stores) == 1 and len(k.accums) == 1


def test_renderer_does_not_write_into_the_ir():
    x, w, b, y = _mlp_layer()
    p = _program([sd.sum(y), *sd.grad(sd.sum(y), [w, b])])
    before = [vars(k).copy() for k in p.kernels]
    r = Renderer(p, "t_entry")
    r.render()
    assert [vars(k) for k in p.kernels] == before
    mms = [i for i, k in enumerate(p.kernels) if isinstance(k, MatmulKernel)]
    assert sorted(r.gemm_info) == mms and all(r.gemm_info[i].M == p.kernels[i].M for i in mms)
    assert not hasattr(p.kernels[mms[0]], "info")


def test_temps_carry_their_workspace_offsets():
    x, w, b, y = _mlp_layer()
    p = _program([sd.sum(y * y), *sd.grad(sd.sum(y * y), [w])])
    for t in p.temps:
        assert t.offset % 64 == 0 and t.offset + t.nbytes <= p.workspace_bytes
        assert any(b is t for b in p.where.values())  # the placed buffer is the one `where` maps to


# ---- reads and writes --------------------------------------------------------------------------------------

def test_reads_and_writes():
    x, w, b, y = _mlp_layer()
    p = _program([y])
    mm = _only(p, MatmulKernel)
    assert mm.reads(p.where) == {x, w, b} and mm.bias is b and mm.relu  # bias and relu fused into the epilogue
    assert mm.writes == {mm.node} == {p.output_nodes[0]} and mm.node.op == "relu"
    assert not [k for k in p.kernels if isinstance(k, LoopKernel)]
    # an elementwise consumer other than relu stays a loop reading the product's buffer
    q = _program([sd.tanh(x @ w + b)])
    mm, loop = _only(q, MatmulKernel), _only(q, LoopKernel)
    assert not mm.relu and loop.reads(q.where) == {mm.node}
    assert loop.writes == {q.output_nodes[0]}
    assert loop.written_buffers == (q.outputs[0],)
    # a reduction reads the buffers under its inlined input
    z = sd.input("z", (6, 7))
    q = _program([sd.sum(sd.exp(z) * z, axis=1)])
    red = _only(q, ReduceKernel)
    assert red.reads(q.where) == {z} and red.writes == {q.output_nodes[0]}


# ---- FLOPs -----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("M,K,N", [(8, 5, 3), (64, 784, 256), (1, 256, 10)])
def test_matmul_flops_are_2mnk(M, K, N):
    a = sd.input("a", (M, K))
    w = sd.param("w", (K, N))
    p = _program([a @ w])
    c = _only(p, MatmulKernel).cost(p.where)
    assert c.flops == c.matmul_flops == 2 * M * N * K and c.special == 0
    assert c.bytes_read == 4 * (M * K + K * N) and c.bytes_written == 4 * M * N
    bias = sd.param("b", (N,))
    p = _program([a @ w + bias])
    assert _only(p, MatmulKernel).cost(p.where).flops == 2 * M * N * K + M * N  # bias in the epilogue


def test_elementwise_flops_count_each_op_at_each_point():
    x = sd.input("x", (6, 7))
    p = _program([sd.exp(x) * 2.0 + x])  # exp, mul, add at each of 42 points
    c = _only(p, LoopKernel).cost(p.where)
    assert (c.flops, c.special) == (3 * 42, 42)
    assert (c.bytes_read, c.bytes_written) == (4 * 42, 4 * 42)
    # a smaller operand broadcast into the domain is recomputed at every point, as the code does
    v = sd.input("v", (7,))
    p = _program([x + sd.exp(v)])
    assert _only(p, LoopKernel).cost(p.where).flops == 2 * 42


def test_reduction_and_row_flops():
    x = sd.input("x", (6, 7))
    p = _program([sd.sum(sd.tanh(x))])  # a total reduction: an accumulator of a loop kernel
    c = _only(p, LoopKernel).cost(p.where)
    assert (c.flops, c.special) == (42 * 2, 42)
    p = _program([sd.sum(sd.tanh(x), axis=1)])
    c = _only(p, ReduceKernel).cost(p.where)
    assert (c.flops, c.special) == (42 * 2, 42)
    p = _program([sd.softmax(x, axis=1)])
    c = _only(p, RowKernel).cost(p.where)
    assert (c.flops, c.special) == (42 * 5 + 6, 42)  # max, sub, exp, add, scale; 1/sum per row
    p = _program([sd.log_softmax(sd.exp(x), axis=1)])  # the input exp is evaluated in 3 passes
    c = _only(p, RowKernel).cost(p.where)
    assert (c.flops, c.special) == (42 * (3 + 6) + 6, 42 * (3 + 1) + 6)


def test_cost_classes():
    assert cost.cost_class("add") == "cheap" and cost.op_cost("add") == (1, 0)
    assert cost.cost_class("exp") == "expensive" and cost.op_cost("exp") == (1, 1)
    for op in ("transpose", "reshape", "broadcast_to", "cast", "pick", "one_hot", "const"):
        assert cost.cost_class(op) == "free"


def _mlp_programs():
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from benchmarks.workloads import WORKLOADS, build_symdiff
    for name in ("W1", "W4"):
        wl = WORKLOADS[name]
        loss, wrt, _ = build_symdiff(wl, sd)
        yield wl, _program([loss, *sd.grad(loss, wrt)])


def test_stats_costs_and_cuda_table_agree():
    for wl, p in _mlp_programs():
        st = p.stats()
        costs = p.costs()
        assert st["flops"] == sum(c.flops for c in costs) == cost.program_cost(p).flops
        assert st["matmul_flops"] + st["elementwise_flops"] == st["flops"]
        assert st["special_ops"] == sum(c.special for c in costs)
        table = kernel_stats(p)
        first_pass = [row for row in table if not row["kind"].endswith("_total")]
        assert [row["ir_kernel"] for row in first_pass] == list(range(len(p.kernels)))
        assert [row["flops"] for row in first_pass] == [c.flops for c in costs]
        assert [row["special_ops"] for row in first_pass] == [c.special for c in costs]
        # the benchmark harness counts 2MNK per product independently: the model adds the fused biases and relus
        epilogues = sum(k.M * k.N * ((k.bias is not None) + k.relu) for k in p.kernels if isinstance(k, MatmulKernel))
        assert st["matmul_flops"] - epilogues == wl.flops()


def test_w4_elementwise_cost_is_exact():
    (wl, p), = [(wl, p) for wl, p in _mlp_programs() if wl.name == "W4"]
    st = p.stats()
    assert st["matmul_flops"] == 0 and st["flops"] % wl.n == 0 and st["flops"] > 0
    assert st["bytes_read"] == 2 * 4 * wl.n  # x and y, once each
    assert st["bytes_written"] == 2 * 4 * wl.n + 4  # dx, dy and the scalar loss


def test_buffer_equality_is_identity():
    a = Buffer(0, "temp", (2,), "float32")
    b = Buffer(0, "temp", (2,), "float32")
    assert a != b and len({a, b}) == 2 and a.nbytes == 8
    assert np.dtype(a.dtype).itemsize * a.size == a.nbytes


@pytest.mark.parametrize("backend", ["llvm", "cuda-cpu"])
def test_an_output_that_reshapes_a_stored_node_is_written_in_place(backend):
    """A reshape output (the gradient of an embedding lookup, a flattened sum) is written by its input's
    kernel straight into the output buffer: no copy kernel, and kernels that read it still run after."""
    x = sd.input("x", (4, 6), "float64")
    s = sd.sum(sd.exp(x), axis=1)  # stored (a reduction)
    out = sd.reshape(s, (2, 2))  # an output: the reduction writes it
    after = sd.tanh(out) * 2.0  # reads it: must run after the reduction
    scaled = sd.reshape(s, (4, 1)) * x
    y = sd.input("y", (2, 2), "float64")
    early = sd.sin(y)  # a loop over the same (2, 2) domain before the reduction: `after` must not join it
    outs = [early, out, after, scaled]
    prog = _program(outs)
    assert not any(isinstance(k, LoopKernel) and any(n is out for n, _ in k.stores) for k in prog.kernels)
    assert any(isinstance(k, ReduceKernel) and k.out is prog.outputs[1] for k in prog.kernels)
    xv, yv = np.random.default_rng(0).standard_normal((4, 6)), np.random.default_rng(1).standard_normal((2, 2))
    got = sd.compile(outs, backend)(x=xv, y=yv)
    sv = np.exp(xv).sum(axis=1)
    for g, w in zip(got, [np.sin(yv), sv.reshape(2, 2), np.tanh(sv.reshape(2, 2)) * 2.0, sv.reshape(4, 1) * xv]):
        np.testing.assert_allclose(g, w, rtol=1e-12)
