"""CUDA C rendering of the scatter, scan and sort kernels (``ScatterKernel``, ``ScanKernel``, ``SortKernel``;
symdiff/ops_gather.py).

Each function takes the :class:`~symdiff.codegen.cuda.render.CudaRenderer`, the IR kernel's index and the
kernel, and records its generated kernels through the renderer (``_add``), dispatched from
``cuda/render.py``'s kernel table.

- scatter: two launches: a grid-stride fill of the output with the combine's identity, then a
  grid-stride loop over the updates that combines each into its (wrapped, clamped) position with an
  atomic: ``atomicAdd`` (scatter_add), a compare-and-swap loop ``sd_atomic_mul`` (scatter_mul),
  ``atomicMax`` (scatter_max, integers). Unlike the other kernels, the order in which colliding float
  updates are summed is not fixed on a GPU (rounding may differ between runs; integer results are exact).
- scan: a thread per row (grid-stride over the rows), a sequential loop along the axis carrying the
  running sum / product (``reverse`` walks from the end).
- sort (argsort): rows shorter than ``HEAP_MIN_ROW``: a thread per element (grid-stride): its rank in its
  row is the number of elements that sort before it (``sd_sorts_before``: NaN last, ties by index, i.e.
  the stable order); it writes its index at that rank (O(L) comparisons per element, no
  synchronisation). Longer rows: a thread per row heap-sorts the row's indices in place (``sd_heap_argsort``).
"""
from __future__ import annotations

import numpy as np

from symdiff.dims import Dim
from symdiff.codegen.cost import Cost
from symdiff.codegen.cuda.emitter import cuda_eval
from symdiff.codegen.cuda.ir import (CTYPE, MAX_GRID, Block, KernelCtx, Stmt, block_threads, cdim, flit,
                                     grid_size, node_label, per_thread, prod_shape)
from symdiff.codegen.kernel_ir import ScanKernel, ScatterKernel, SortKernel
from symdiff.codegen.pointeval import strides

__all__ = ["render_scatter", "render_scan", "render_sort", "ATOMIC", "IDENTITY", "HEAP_MIN_ROW"]

HEAP_MIN_ROW = 1024  # argsort rows at least this long: a thread per row heap-sorts it

# op -> the atomic statement combining value v into the lvalue p
ATOMIC = {
    "scatter_add": lambda p, v: f"atomicAdd(&{p}, {v});",
    "scatter_mul": lambda p, v: f"sd_atomic_mul(&{p}, {v});",
    "scatter_max": lambda p, v: f"atomicMax(&{p}, {v});",
}
# op -> identity value (dtype, attrs) -> python number
IDENTITY = {
    "scatter_add": lambda dt, at: 0.0, "scatter_mul": lambda dt, at: 1.0,
    "scatter_max": lambda dt, at: int(at.get("fill", np.iinfo(dt).min)),
    "cumsum": lambda dt, at: 0.0, "cumprod": lambda dt, at: 1.0,
}
SCAN_STEP = {"cumsum": "+", "cumprod": "*"}


def _grid(n) -> tuple:
    """(blocks, threads per block) of a grid-stride loop over n items (blocks: a C expression when n is
    symbolic)."""
    t = block_threads(n)
    return grid_size(n, t, MAX_GRID), t


def _count(n, grid, nt) -> float:
    return per_thread(n, grid * nt if isinstance(grid, int) else grid)


def render_scatter(r, ki: int, k: ScatterKernel) -> None:
    n, out = k.node, k.out
    g, idx = n.inputs
    axis, shape = n.attrs["axis"], n.shape
    ident = flit(IDENTITY[n.op](n.dtype, n.attrs), n.dtype)
    # 1. fill
    kc = KernelCtx(r)
    grid, nt = _grid(out.size)
    loop = Block(r._grid_loop("i", out.size), count=_count(out.size, grid, nt))
    loop.body.append(Stmt(f"{kc.buf(out, write=True)}[i] = {ident};"))
    r._add(kc, f"k{ki}_fill", ki, "scatter_fill",
           [f"fill {r.buf_name(out)} ({node_label(n)}, {list(shape)}) with {ident}, the identity of {n.op}",
            "grid-stride loop"], (grid,), (nt,), [loop], 0, Cost(0, 0, 0, out.nbytes))
    # 2. combine the updates atomically
    kc = KernelCtx(r)
    U = prod_shape(g.shape)
    grid, nt = _grid(U)
    loop = Block(r._grid_loop("i", U), count=_count(U, grid, nt))
    point = r._coords(loop.body, "i", g.shape, [f"d{a}" for a in range(g.ndim)])
    ev = cuda_eval(kc, loop.body, r.idx, flat=("i", g.shape, point))
    v = ev.convert(ev.ev(g, point), g.dtype, n.dtype)
    i = ev.em.to_index(ev.ev(idx, ev.broadcast_point(idx.shape, g.shape, point)), idx.dtype)
    target = ev.broadcast_point(shape, g.shape, point)
    target[axis] = ev.em.iwrap_clamp(i, shape[axis])
    ref = kc.buf(out, write=True) + f"[{ev.offset(shape, target)}]"
    kc.buf(out)  # read too (atomics read-modify-write)
    loop.body.append(Stmt(ATOMIC[n.op](ref, v), flops=1))
    r._add(kc, f"k{ki}_{n.op}", ki, "scatter",
           [f"{n.op} of {node_label(g)} {list(g.shape)} by {node_label(idx)} along axis {axis} -> {r.buf_name(out)}",
            "a thread per update (grid-stride), atomic combine at the wrapped and clamped index"],
           (grid,), (nt,), [loop], 0)  # the IR kernel's cost (the fill above only moves data)


def render_scan(r, ki: int, k: ScanKernel) -> None:
    n, out, axis = k.node, k.out, k.axis
    (x,) = n.inputs
    T, I = CTYPE[n.dtype], r.idx
    L = n.shape[axis]
    reverse = bool(n.attrs.get("reverse", False))
    odims = [d for d in range(n.ndim) if d != axis]
    oshape = tuple(n.shape[d] for d in odims)
    ROWS = prod_shape(oshape)
    kc = KernelCtx(r)
    grid, nt = _grid(ROWS)
    loop = Block(r._grid_loop("row", ROWS), count=_count(ROWS, grid, nt))
    opoint = r._coords(loop.body, "row", oshape, [f"o{d}" for d in odims])
    loop.body.append(Stmt(f"{T} acc = {flit(IDENTITY[n.op](n.dtype, n.attrs), n.dtype)};"))
    head = (f"for ({I} jr = 0; jr < {cdim(L)}; ++jr) {{" if not reverse
            else f"for ({I} jr = {cdim(L - 1)}; jr >= 0; --jr) {{")
    inner = Block(head, count=per_thread(L, 1))
    loop.body.append(inner)
    pt = list(opoint)
    pt.insert(axis, "jr")
    ev = cuda_eval(kc, inner.body, I)
    v = ev.convert(ev.ev(x, pt), x.dtype, n.dtype)
    inner.body.append(Stmt(f"acc = acc {SCAN_STEP[n.op]} {v};", flops=1))
    inner.body.append(Stmt(f"{kc.buf(out, write=True)}[{ev.offset(n.shape, pt)}] = acc;"))
    way = "from the end " if reverse else ""
    r._add(kc, f"k{ki}_{n.op}", ki, "scan",
           [f"{n.op} along axis {axis} {way}of {node_label(x)} {list(x.shape)} -> {r.buf_name(out)} "
            f"({ROWS} rows of {L})", "a thread per row (grid-stride), sequential along the axis"],
           (grid,), (nt,), [loop], 0)


def render_sort(r, ki: int, k: SortKernel) -> None:
    n, out, axis = k.node, k.out, k.axis
    (x,) = n.inputs
    I = r.idx
    L = n.shape[axis]
    kc = KernelCtx(r)
    if isinstance(L, Dim) or L >= HEAP_MIN_ROW:  # (a symbolic row: heap sort, right for any length)
        return _heap_sort(r, ki, k, kc)
    N = prod_shape(n.shape)
    grid, nt = _grid(N)
    loop = Block(r._grid_loop("i", N), count=_count(N, grid, nt))
    point = r._coords(loop.body, "i", n.shape, [f"d{a}" for a in range(n.ndim)])
    ev = cuda_eval(kc, loop.body, I, flat=("i", n.shape, point))
    j = point[axis]
    xj = ev.ev(x, point)
    loop.body.append(Stmt(f"{I} rank = 0;"))
    inner = Block(f"for ({I} kk = 0; kk < {L}; ++kk) {{", count=L)
    loop.body.append(inner)
    pk = list(point)
    pk[axis] = "kk"
    evk = cuda_eval(kc, inner.body, I)
    inner.body.append(Stmt(f"rank += sd_sorts_before({evk.ev(x, pk)}, kk, {xj}, ({I}){j});", flops=1))
    pr = list(point)
    pr[axis] = "rank"
    loop.body.append(Stmt(f"{kc.buf(out, write=True)}[{ev.offset(n.shape, pr)}] = ({CTYPE[n.dtype]}){j};"))
    r._add(kc, f"k{ki}_{n.op}", ki, "sort",
           [f"{n.op} along axis {axis} of {node_label(x)} {list(x.shape)} -> {r.buf_name(out)} (rows of {L})",
            "a thread per element: its rank (elements sorting before it) is where its index goes"],
           (grid,), (nt,), [loop], 0)


def _heap_sort(r, ki: int, k: SortKernel, kc: KernelCtx) -> None:
    n, out, axis = k.node, k.out, k.axis
    (x,) = n.inputs
    I = r.idx
    L = n.shape[axis]
    odims = [d for d in range(n.ndim) if d != axis]
    oshape = tuple(n.shape[d] for d in odims)
    ROWS = prod_shape(oshape)
    grid, nt = _grid(ROWS)
    loop = Block(r._grid_loop("row", ROWS), count=_count(ROWS, grid, nt))
    opoint = list(r._coords(loop.body, "row", oshape, [f"o{d}" for d in odims]))
    opoint.insert(axis, "0")
    ev = cuda_eval(kc, loop.body, I)
    st = strides(n.shape)[axis]
    xb, ob = kc.buf(r.p.where[x]), kc.buf(out, write=True)
    flops = int(2 * L * max(1, int(np.log2(L)))) if isinstance(L, int) else 0  # (symbolic: the cost model's)
    loop.body.append(Stmt(f"sd_heap_argsort({xb}, {ob}, ({I})({ev.offset(n.shape, opoint)}), ({I}){cdim(st)}, "
                          f"({I}){cdim(L)});", flops=flops))
    r._add(kc, f"k{ki}_{n.op}", ki, "sort",
           [f"{n.op} along axis {axis} of {node_label(x)} {list(x.shape)} -> {r.buf_name(out)} ({ROWS} rows of {L})",
            "a thread per row: heap sort of the row's indices in place (O(L log L))"], (grid,), (nt,), [loop], 0)
