"""LLVM rendering of the scatter, scan and sort kernels (``ScatterKernel``, ``ScanKernel``, ``SortKernel``;
symdiff/ops_gather.py), and of the group dispatch of a run of independent kernels (codegen/schedule.py).

Both are loops in the generated code, dispatched by ``llvm/render.py``'s kernel table; each function
takes the :class:`~symdiff.codegen.llvm.render.Renderer` and the kernel.

- scatter: fill the output with the combine's identity, then walk the updates in row-major order and
  combine each into the position its index names (wrap once, clamp: ``iwrap_clamp``); the updates are
  evaluated inline. Tasks split ``par_axis``, an axis whose updates never collide (lowering picks it), so
  repeated indices always combine in the same order (deterministic).
- scan: per row (the other axes; rows split over tasks), a loop along the axis carrying the running
  sum / product in a stack slot (``reverse`` walks from the end); each prefix is stored as it is formed.
- sort (argsort): the order is ``x_k < x_j``, NaN last, ties by index (so the result is the stable
  permutation). Rows of up to ``HEAP_MIN_ROW - 1`` elements: element j's rank is the number of elements
  that sort before it, and ``j`` is stored at that rank (branch-free O(L^2) comparisons). Longer rows: an
  in-place heap sort of the row's indices in the output (O(L log L)). Rows are split over tasks.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
from llvmlite import ir

from symdiff.codegen.kernel_ir import ScanKernel, ScatterKernel, SortKernel
from symdiff.codegen.llvm.gemm.ir import counted_loop
from symdiff.codegen.llvm.types import I64, alloca, lltype
from symdiff.codegen.schedule import lpt_schedule, task_seconds

__all__ = ["render_scatter", "render_scan", "render_sort", "render_group", "COMBINE", "HEAP_MIN_ROW"]

HEAP_MIN_ROW = 33  # argsort rows at least this long are heap-sorted; shorter ones ranked by counting


def _c(v: int) -> ir.Constant:
    return ir.Constant(I64, int(v))


def _smax(b: ir.IRBuilder, a, v):
    return b.select(b.icmp_signed(">", v, a), v, a)


# op -> (combine(builder, accumulated, value), identity(dtype, attrs))
COMBINE: dict[str, tuple[Callable, Callable]] = {
    "scatter_add": (lambda b, a, v: b.fadd(a, v), lambda dt, at: 0.0),
    "scatter_mul": (lambda b, a, v: b.fmul(a, v), lambda dt, at: 1.0),
    "scatter_max": (_smax, lambda dt, at: int(at.get("fill", np.iinfo(dt).min))),
    "cumsum": (lambda b, a, v: b.fadd(a, v), lambda dt, at: 0.0),
    "cumprod": (lambda b, a, v: b.fmul(a, v), lambda dt, at: 1.0),
}


def _nest(b: ir.IRBuilder, bounds: list, body: Callable[[list], None], name: str) -> None:
    """Counted loops over [lo, hi) per axis, outermost first; ``body`` gets the index list."""
    def rec(k: int, idx: list) -> None:
        if k == len(bounds):
            body(idx)
            return
        with counted_loop(b, bounds[k][0], bounds[k][1], 1, f"{name}{k}") as i:
            rec(k + 1, idx + [i])
    rec(0, [])


def _slot(b: ir.IRBuilder, ty: ir.Type) -> ir.Value:
    """A stack slot in the function's entry block."""
    with b.goto_entry_block():
        return alloca(b, ty)


def render_scatter(r, k: ScatterKernel) -> None:
    n, out = k.node, k.out
    g, idx = n.inputs
    axis, shape = n.attrs["axis"], n.shape
    ty = lltype(n.dtype)
    combine, ident = COMBINE[n.op]
    fn, b = r._task_fn(n.op)
    ctx, begin, end = fn.args
    p = k.par_axis  # this task's share of axis p (in its row-major place), or everything
    lo_hi = r._task_bounds(b, begin, end, shape[p], k.tasks) if p is not None else None

    def nest(dims: tuple, body: Callable[[list], None], name: str) -> None:
        _nest(b, [lo_hi if d == p else (_c(0), r.dim(b, s)) for d, s in enumerate(dims)], body, name)

    def fill(point: list) -> None:
        b.store(ir.Constant(ty, ident(n.dtype, n.attrs)), r.make_eval(fn, b, ctx).store_ref(out, n, point))

    def update(point: list) -> None:
        ev = r.make_eval(fn, b, ctx)
        v = ev.convert(ev(g, point), g.dtype, n.dtype)
        i = ev.em.to_index(ev(idx, ev.broadcast_point(idx.shape, g.shape, point)), idx.dtype)
        target = ev.broadcast_point(shape, g.shape, point)
        target[axis] = ev.em.iwrap_clamp(i, shape[axis])
        ptr = ev.store_ref(out, n, target)
        b.store(combine(b, b.load(ptr, typ=ty), v), ptr)
    if p is None:  # one task: a flat fill
        optr = r._ptr(b, ctx, out.id)
        with counted_loop(b, _c(0), r.dim(b, out.size), 1, "fill") as i:
            b.store(ir.Constant(ty, ident(n.dtype, n.attrs)), b.gep(optr, [i], source_etype=ty, inbounds=True))
    else:
        nest(shape, fill, "f")
    nest(g.shape, update, "u")
    b.ret_void()
    r._dispatch(fn, k.tasks)


def render_scan(r, k: ScanKernel) -> None:
    n, out, axis = k.node, k.out, k.axis
    (x,) = n.inputs
    ty = lltype(n.dtype)
    L = n.shape[axis]
    reverse = bool(n.attrs.get("reverse", False))
    combine, ident = COMBINE[n.op]
    fn, b = r._task_fn(n.op)
    ctx, begin, end = fn.args
    acc = _slot(b, ty)

    def row(opoint: list) -> None:
        b.store(ir.Constant(ty, ident(n.dtype, n.attrs)), acc)
        with counted_loop(b, _c(0), r.dim(b, L), 1, "j") as j:
            pt = list(opoint)
            pt.insert(axis, b.sub(r.dim(b, L - 1), j) if reverse else j)
            ev = r.make_eval(fn, b, ctx)
            a = combine(b, b.load(acc, typ=ty), ev.convert(ev(x, pt), x.dtype, n.dtype))
            b.store(a, acc)
            b.store(a, ev.store_ref(out, n, pt))

    _rows(r, b, k, begin, end, n.shape, axis, row)
    b.ret_void()
    r._dispatch(fn, k.tasks, n.shape)


def _rows(r, b: ir.IRBuilder, k, begin, end, shape: tuple, axis: int, row: Callable[[list], None]) -> None:
    """``row(point without the axis)`` for each row of this task's share (the outermost other axis split)."""
    rows = [s for d, s in enumerate(shape) if d != axis]
    if rows:
        lo, hi = r._task_bounds(b, begin, end, rows[0], k.tasks)
        _nest(b, [(lo, hi)] + [(_c(0), r.dim(b, s)) for s in rows[1:]], row, "o")
    else:
        row([])


def _sorts_before(b: ir.IRBuilder, xk, xj, k, j) -> ir.Value:
    """(x_k, k) precedes (x_j, j): x_k < x_j with NaN greatest, ties (equal, or both NaN) by index."""
    nan_k, nan_j = b.fcmp_unordered("uno", xk, xk), b.fcmp_unordered("uno", xj, xj)
    lt = b.or_(b.fcmp_ordered("<", xk, xj), b.and_(nan_j, b.not_(nan_k)))
    gt = b.or_(b.fcmp_ordered(">", xk, xj), b.and_(nan_k, b.not_(nan_j)))
    return b.or_(lt, b.and_(b.not_(gt), b.icmp_signed("<", k, j)))


def _heap_sort_row(r, fn, b: ir.IRBuilder, ctx, k: SortKernel, opoint: list, slots: tuple) -> None:
    """Heap sort of one row's indices, in place in the output (a max-heap under ``_sorts_before``)."""
    n, out, axis = k.node, k.out, k.axis
    (x,) = n.inputs
    L = n.shape[axis]
    root_s, = slots

    def at(i) -> list:
        pt = list(opoint)
        pt.insert(axis, i)
        return pt

    def ref(pos):
        return r.make_eval(fn, b, ctx).store_ref(out, n, at(pos))

    def get(pos):
        return b.load(ref(pos), typ=I64)

    def before(a, c):  # row entries a, c (indices along the axis): a sorts before c
        ev = r.make_eval(fn, b, ctx)
        return _sorts_before(b, ev(x, at(a)), ev(x, at(c)), a, c)

    def sift(root, end) -> None:  # sift entry `root` down the heap of entries [0, end)
        b.store(root, root_s)
        hdr, body, swap, done = (fn.append_basic_block(f"sift.{t}") for t in ("hdr", "body", "swap", "done"))
        b.branch(hdr)
        b.position_at_end(hdr)
        child = b.add(b.mul(b.load(root_s, typ=I64), _c(2)), _c(1))
        b.cbranch(b.icmp_signed("<", child, end), body, done)
        b.position_at_end(body)
        rt = b.load(root_s, typ=I64)
        right = b.add(child, _c(1))
        has_r = b.icmp_signed("<", right, end)
        rpos = b.select(has_r, right, child)  # never read past the heap
        ic, ir_ = get(child), get(rpos)
        take_r = b.and_(has_r, before(ic, ir_))
        big, ib = b.select(take_r, rpos, child), b.select(take_r, ir_, ic)
        iroot = get(rt)
        b.cbranch(before(iroot, ib), swap, done)
        b.position_at_end(swap)
        b.store(ib, ref(rt))
        b.store(iroot, ref(big))
        b.store(big, root_s)
        b.branch(hdr)
        b.position_at_end(done)

    Lv = r.dim(b, L)  # (a symbolic row length: its value at this call)
    half = b.udiv(Lv, _c(2))
    with counted_loop(b, _c(0), Lv, 1, "h") as j:
        b.store(j, ref(j))
    with counted_loop(b, _c(0), half, 1, "hb") as t:  # heapify: roots L/2-1 .. 0
        sift(b.sub(b.sub(half, _c(1)), t), Lv)
    with counted_loop(b, _c(0), b.sub(Lv, _c(1)), 1, "he") as t:  # move the largest behind the heap, L-1 .. 1
        end = b.sub(b.sub(Lv, _c(1)), t)
        i0, ie = get(_c(0)), get(end)
        b.store(ie, ref(_c(0)))
        b.store(i0, ref(end))
        sift(_c(0), end)


def render_sort(r, k: SortKernel) -> None:
    n, out, axis = k.node, k.out, k.axis
    (x,) = n.inputs
    L = n.shape[axis]
    fn, b = r._task_fn(n.op)
    ctx, begin, end = fn.args
    cnt = _slot(b, I64)

    def at(opoint: list, i) -> list:
        pt = list(opoint)
        pt.insert(axis, i)
        return pt

    def rank_row(opoint: list) -> None:
        with counted_loop(b, _c(0), r.dim(b, L), 1, "j") as j:
            ev = r.make_eval(fn, b, ctx)
            xj = ev(x, at(opoint, j))
            b.store(_c(0), cnt)
            with counted_loop(b, _c(0), r.dim(b, L), 1, "k") as kk:
                xk = r.make_eval(fn, b, ctx)(x, at(opoint, kk))
                b.store(b.add(b.load(cnt, typ=I64), b.zext(_sorts_before(b, xk, xj, kk, j), I64)), cnt)
            ptr = ev.store_ref(out, n, at(opoint, b.load(cnt, typ=I64)))
            b.store(j if lltype(n.dtype) == I64 else b.trunc(j, lltype(n.dtype)), ptr)

    # a symbolic row length may be long at run time: heap sort (correct at every length)
    heap = (not isinstance(L, int) or L >= HEAP_MIN_ROW) and lltype(n.dtype) == I64
    _rows(r, b, k, begin, end, n.shape, axis,
          (lambda op: _heap_sort_row(r, fn, b, ctx, k, op, (cnt,))) if heap else rank_row)
    b.ret_void()
    r._dispatch(fn, k.tasks, n.shape)


# A run whose modelled time (codegen/schedule.py's task_seconds, summed over its tasks, 1 us of call overhead
# each) is below this runs its members one after another in the entry, with no pool hand-off: a tiny
# model's whole step is a few microseconds, and waking a worker can take longer than that on a VM.
GROUP_MIN_SECONDS = 10e-6


def render_group(r, run: list, kernels: list) -> None:
    """One parallel call for the collected launches (``r.launches``: (task fn, tasks) per member) of a run of
    independent kernels: task t of the group function is thread t's share of a longest-task-first schedule
    of all their tasks (codegen/schedule.py); it lives beside the entry, which calls it. A run of less
    modelled time than ``GROUP_MIN_SECONDS`` is called member by member from the entry instead."""
    launches, r.launches = r.launches, None
    where = r.p.where
    members = [(tasks, task_seconds(kernels[i].cost(where), tasks)) for i, (_fn, tasks) in zip(run, launches)]
    if sum(n * sec for n, sec in members) < GROUP_MIN_SECONDS:  # less than a hand-off is worth: in the entry
        for fn, tasks in launches:
            r.entry_b.call(fn, [r.ctx, _c(0), _c(tasks)])
        return
    threads = r.target.gemm_tasks
    plan = lpt_schedule(members, threads)
    mod, r.mod = r.mod, r.modules[0]  # (the members' functions may sit in other modules: external there)
    fn, b = r._task_fn("group")
    r.mod = mod
    ctx, begin, end = fn.args

    def thread(t):
        sw = b.switch(t, b.function.append_basic_block("done"))
        after = sw.default
        for q, ranges in enumerate(plan):
            blk = b.function.append_basic_block(f"thread{q}")
            sw.add_case(_c(q), blk)
            b.position_at_end(blk)
            for m, lo, hi in ranges:
                b.call(launches[m][0], [ctx, _c(lo), _c(hi)])
            b.branch(after)
        b.position_at_end(after)
    with counted_loop(b, begin, end, 1, "t") as t:
        thread(t)
    b.ret_void()
    r.parallel = True
    r.entry_b.call(r.par, [r.pool, fn, r.ctx, _c(threads)])
