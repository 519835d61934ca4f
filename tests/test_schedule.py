"""Concurrent independent kernels (codegen/schedule.py, the LLVM renderer's group dispatch).

- the longest-task-first schedule runs every task once, in member order per thread, and balances;
- independent_runs groups the weight and bias gradients at the end of an MLP's backward pass, and never
  puts a kernel in a run with one whose memory it reads or writes (workspace temps compared by range);
- the renderer dispatches each run as one group function on two threads and the results match numpy,
  on an MLP and on a convolutional net (whose workspace reuse once made a naive grouping wrong); a run
  of little modelled work is called member by member from the entry instead.
"""
from __future__ import annotations

import re

import numpy as np
import pytest

import symdiff as sd
from symdiff.codegen.kernel_ir import MatmulKernel, ReduceKernel
from symdiff.codegen.llvm import backend as llvm_backend
from symdiff.codegen.llvm import render_extra
from symdiff.codegen.llvm.render import Renderer
from symdiff.codegen.lower import lower
from symdiff.codegen.schedule import concurrent_runs, independent_runs, lpt_schedule
from symdiff.codegen.target import host_target

TWO = host_target(2)


def _mlp(sizes=(12, 20, 20, 3), batch=8):
    x = sd.input("x", (batch, sizes[0]), "float64")
    y = sd.input("y", (batch, sizes[-1]), "float64")
    params, h = [], x
    for i, (m, n) in enumerate(zip(sizes[:-1], sizes[1:])):
        w, b = sd.param(f"W{i}", (m, n), "float64"), sd.param(f"b{i}", (n,), "float64")
        params += [w, b]
        h = h @ w + b
        if i < len(sizes) - 2:
            h = sd.relu(h)
    loss = sd.sum((h - y) * (h - y))
    return [loss, *sd.grad(loss, params)], [x, y, *params]


def _feed(leaves, rng):
    return {v.name: rng.standard_normal(v.shape) for v in leaves}


def test_lpt_schedule_runs_every_task_once_in_member_order_and_balances():
    members = [(2, 10.0), (1, 1.0), (2, 4.0), (1, 0.5), (1, 0.2)]
    plan = lpt_schedule(members, 2)
    seen = sorted((m, t) for ranges in plan for m, lo, hi in ranges for t in range(lo, hi))
    assert seen == sorted((m, t) for m, (n, _) in enumerate(members) for t in range(n))
    loads = [sum((hi - lo) * members[m][1] for m, lo, hi in ranges) for ranges in plan]
    assert abs(loads[0] - loads[1]) <= 1.0   # 14.7 vs 14.0 here; one thread doing the big product: 21 vs 7.7
    for ranges in plan:
        assert [m for m, _, _ in ranges] == sorted(m for m, _, _ in ranges)
    # one thread: everything, consecutive tasks merged into one range per member
    assert lpt_schedule(members, 1) == [[(0, 0, 2), (1, 0, 1), (2, 0, 2), (3, 0, 1), (4, 0, 1)]]


def test_the_weight_and_bias_gradients_of_an_mlp_form_one_run():
    outs, _ = _mlp()
    p = lower(sd.simplify(outs), TWO)
    runs = independent_runs(p)
    grads = [i for i, k in enumerate(p.kernels)
             if isinstance(k, (MatmulKernel, ReduceKernel)) and k.out.kind == "output"]
    assert any(set(grads) <= set(r) for r in runs), (runs, grads)
    for r in runs:
        assert r == list(range(r[0], r[-1] + 1)) and len(r) >= 2
    # the program listing (symdiff compile --target ir) names the runs
    assert ("run concurrently, one dispatch each (codegen/schedule.py): "
            + ", ".join(f"k{r[0]}-k{r[-1]}" for r in runs)) in p.describe()
    assert "run concurrently" not in lower(sd.simplify(outs), host_target(1)).describe()


def test_no_run_holds_a_kernel_that_touches_memory_an_earlier_member_writes():
    x = sd.input("x", (4, 2, 12, 12), "float64")
    w1, w2 = sd.param("w1", (3, 2, 3, 3), "float64"), sd.param("w2", (4, 3, 3, 3), "float64")
    h = sd.max_pool2d(sd.relu(sd.conv2d(x, w1, padding=1)), 2)
    loss = sd.sum(sd.relu(sd.conv2d(h, w2, padding=1)) ** 2)
    p = lower(sd.simplify([loss, *sd.grad(loss, [x, w1, w2])]), TWO)

    def region(b):
        return ("ws", b.offset, b.offset + b.nbytes) if b.kind == "temp" else ("own", b.id, b.id + 1)

    def clash(xs, ys):
        return any(a[0] == c[0] and a[1] < c[2] and c[1] < a[2] for a in xs for c in ys)
    for run in independent_runs(p):
        written: list = []
        for i in run:
            k = p.kernels[i]
            reads = [region(p.where[n]) for n in k.reads(p.where) if n in p.where]
            writes = [region(b) for b in k.written_buffers]
            assert not clash(reads + writes, written), f"kernel {i} of run {run}"
            written += writes


def test_the_renderer_dispatches_each_run_as_one_group(monkeypatch):
    monkeypatch.setattr(render_extra, "GROUP_MIN_SECONDS", 0.0)  # (this MLP's runs are below the default)
    outs, _ = _mlp()
    p = lower(sd.simplify(outs), TWO)
    r = Renderer(p, "t_entry", target=TWO)
    text = str(r.render())
    assert r.groups == independent_runs(p) == concurrent_runs(p, 2) and r.groups
    assert concurrent_runs(p, 1) == []
    assert len(re.findall(r'define internal void @"?k\d+_group"?\(', text)) == len(r.groups)
    one = Renderer(p, "t_entry", target=host_target(1))
    one.render()
    assert one.groups == []          # serial code: nothing to run concurrently


@pytest.mark.parametrize("case", ["mlp", "mlp in 2 modules", "conv"])
def test_grouped_programs_match_numpy_on_two_threads(case, monkeypatch):
    monkeypatch.setattr(render_extra, "GROUP_MIN_SECONDS", 0.0)
    rng = np.random.default_rng(0)
    if case.startswith("mlp"):
        outs, leaves = _mlp()
        if case == "mlp in 2 modules":  # the members of a run spread over the graph's modules
            monkeypatch.setattr(llvm_backend, "GRAPH_PART_KERNELS", 2)
            monkeypatch.setattr(llvm_backend, "compile_threads", lambda: 2)
    else:
        x = sd.input("x", (8, 1, 12, 12), "float64")
        w1, w2 = sd.param("w1", (3, 1, 3, 3), "float64"), sd.param("w2", (4, 3, 3, 3), "float64")
        wd, bd = sd.param("wd", (4 * 2 * 2, 5), "float64"), sd.param("bd", (5,), "float64")
        h = sd.max_pool2d(sd.relu(sd.conv2d(x, w1, padding=1)), 2)
        h = sd.max_pool2d(sd.relu(sd.conv2d(h, w2)), 2)
        z = sd.reshape(h, (8, 4 * 2 * 2)) @ wd + bd
        loss = sd.sum(sd.log_softmax(z, axis=1))
        outs, leaves = [loss, *sd.grad(loss, [w1, w2, wd, bd])], [x, w1, w2, wd, bd]
    f = sd.compile(outs, "llvm", num_threads=2, cache=False)
    ref = sd.compile(outs, "numpy")
    feed = _feed(leaves, rng)
    for got, want in zip(f(**feed), ref(**feed)):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)


def test_a_run_of_little_work_is_called_from_the_entry_without_the_pool():
    """A run whose modelled time is under render_extra.GROUP_MIN_SECONDS: its members are called one after
    another by the entry (no group function); a tiny model then needs no thread pool at all. A run with
    real work keeps its group."""
    rng = np.random.default_rng(1)
    outs, leaves = _mlp()
    p = lower(sd.simplify(outs), TWO)
    r = Renderer(p, "t_entry", target=TWO)
    text = str(r.render())
    assert r.groups and not re.findall(r'define internal void @"?k\d+_group"?\(', text)
    f = sd.compile(outs, "llvm", num_threads=2, cache=False)
    assert not f.parallel and f.pool is None
    feed = _feed(leaves, rng)
    for got, want in zip(f(**feed), sd.compile(outs, "numpy")(**feed)):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)
    big, _ = _mlp(sizes=(256, 256, 256, 10), batch=64)
    rb = Renderer(lower(sd.simplify(big), TWO), "t_entry", target=TWO)
    text = str(rb.render())
    assert rb.groups and len(re.findall(r'define internal void @"?k\d+_group"?\(', text)) == len(rb.groups)
