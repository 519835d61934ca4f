"""Concurrent independent kernels: which consecutive kernels of a Program may run at the same time, and a
static schedule of their tasks over the threads (backend-neutral; the LLVM renderer dispatches each run
as one parallel call).

Why: a step of a model has products and reductions that do not depend on each other (the weight and
bias gradients of every layer at the end of the backward pass). Run one after another, each small one
(a single task below the GEMM split threshold, a reduction of a few thousand elements) leaves the other
threads idle, and every kernel pays a pool hand-off. Run as one group, the tasks of all of them are
spread over the threads by a longest-task-first schedule, with one hand-off for the group.

Independence is by memory: no member reads or writes memory an earlier member of the run writes, and
none writes memory an earlier member reads. Inputs, outputs and constants are their own arrays; temps
are byte ranges of the workspace, which the plan reuses once a temp is dead in program order, so two
temps of different ids may overlap and are compared by range.
"""
from __future__ import annotations

from typing import Callable, Sequence

from symdiff import dims as _dims
from symdiff.codegen.cost import Cost
from symdiff.codegen.kernel_ir import LoopKernel, MatmulKernel, Program, ReduceKernel, RowKernel

# Rough machine model for balancing (seconds); only ratios between tasks matter.
GEMM_FLOPS = 60e9        # GEMM FLOP/s of one thread
OTHER_FLOPS = 8e9        # elementwise / reduction FLOP/s of one thread
BYTES = 15e9             # bytes/s of one thread
TASK_OVERHEAD = 1e-6     # seconds per task call


def _static(shape) -> bool:
    return not any(isinstance(s, _dims.Dim) for s in shape)


def groupable(k) -> bool:
    """Kernels whose launch is one plain parallel call over static tasks and nothing else in the entry after
    it: 2-D static products, reductions, row kernels, loop kernels without fused total reductions (those
    combine partial results in the entry after their tasks)."""
    if isinstance(k, MatmulKernel):
        return not k.batch and all(not isinstance(v, _dims.Dim) for v in (k.M, k.N, k.K))
    if isinstance(k, LoopKernel):
        return not k.accums and _static(k.domain)
    if isinstance(k, (ReduceKernel, RowKernel)):
        return _static(k.node.inputs[0].shape)
    return False


def _region(b) -> tuple:
    """The memory of a buffer: ("ws", begin, end) for a workspace temp, ("own", id) otherwise."""
    return ("ws", int(b.offset), int(b.offset + b.nbytes)) if b.kind == "temp" else ("own", b.id)


def _reads(k, where: dict) -> list:
    return [_region(where[n]) for n in k.reads(where) if n in where]


def _writes(k) -> list:
    return [_region(b) for b in k.written_buffers]


def _overlap(xs: list, ys: list) -> bool:
    for x in xs:
        for y in ys:
            if x[0] != y[0]:
                continue
            if x[0] == "own" and x[1] == y[1]:
                return True
            if x[0] == "ws" and x[1] < y[2] and y[1] < x[2]:
                return True
    return False


def independent_runs(program: Program, ok: Callable = groupable, min_len: int = 2) -> list[list[int]]:
    """Maximal runs of consecutive kernel indices, each kernel ``ok`` and independent of the earlier ones of
    its run (see the module docstring); runs shorter than ``min_len`` are left out."""
    where = program.where
    runs: list[list[int]] = []
    cur: list[int] = []
    cur_r: list = []
    cur_w: list = []

    def close() -> None:
        if len(cur) >= min_len:
            runs.append(list(cur))

    for i, k in enumerate(program.kernels):
        if not ok(k):
            close()
            cur, cur_r, cur_w = [], [], []
            continue
        r, w = _reads(k, where), _writes(k)
        if cur and not _overlap(r, cur_w) and not _overlap(w, cur_r + cur_w):
            cur.append(i)
            cur_r += r
            cur_w += w
        else:
            close()
            cur, cur_r, cur_w = [i], list(r), list(w)
    close()
    return runs


def concurrent_runs(program: Program, threads: int) -> list[list[int]]:
    """The runs a renderer dispatches as one group on ``threads`` threads: none for serial code or for a
    program with symbolic sizes (its task counts and splits are decided at run time)."""
    return independent_runs(program) if threads > 1 and not program.size_names else []


def task_seconds(cost: Cost, tasks: int) -> float:
    """Modelled seconds of one task of a kernel of that cost split into ``tasks`` equal tasks."""
    t = (cost.matmul_flops / GEMM_FLOPS + (cost.flops - cost.matmul_flops) / OTHER_FLOPS + cost.bytes / BYTES)
    return t / max(tasks, 1) + TASK_OVERHEAD


def lpt_schedule(members: Sequence[tuple[int, float]], threads: int) -> list[list[tuple[int, int, int]]]:
    """Longest task first: ``members`` = (tasks, seconds per task) per member; returns per thread the
    (member, begin, end) task ranges it runs, in member order (consecutive tasks of a member merged).
    Every task of every member appears exactly once."""
    threads = max(1, threads)
    items = sorted(((sec, m, t) for m, (n, sec) in enumerate(members) for t in range(n)),
                   key=lambda x: (-x[0], x[1], x[2]))
    load = [0.0] * threads
    mine: list[list[tuple[int, int]]] = [[] for _ in range(threads)]
    for sec, m, t in items:
        j = min(range(threads), key=lambda q: (load[q], q))
        load[j] += sec
        mine[j].append((m, t))
    plan = []
    for lst in mine:
        ranges: list[tuple[int, int, int]] = []
        for m, t in sorted(lst):
            if ranges and ranges[-1][0] == m and ranges[-1][2] == t:
                ranges[-1] = (m, ranges[-1][1], t + 1)
            else:
                ranges.append((m, t, t + 1))
        plan.append(ranges)
    return plan


__all__ = ["groupable", "independent_runs", "concurrent_runs", "task_seconds", "lpt_schedule"]
