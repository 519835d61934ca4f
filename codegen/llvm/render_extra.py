"""LLVM rendering of the scatter and scan kernels (``ScatterKernel``, ``ScanKernel``; symdiff/ops_gather.py).

Both are loops in the generated code, dispatched by ``llvm/render.py``'s kernel table; each function
takes the :class:`~symdiff.codegen.llvm.render.Renderer` and the kernel.

- scatter: one task: fill the output with the combine's identity, then walk the updates in row-major
  order and combine each into the position its index names (wrap once, clamp: ``iwrap_clamp``). Serial,
  so repeated indices combine in a fixed order (deterministic); the updates are evaluated inline.
- scan: per row (the other axes; rows split over tasks), a loop along the axis carrying the running
  sum / product in a stack slot (``reverse`` walks from the end); each prefix is stored as it is formed.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
from llvmlite import ir

from symdiff.codegen.kernel_ir import ScanKernel, ScatterKernel
from symdiff.codegen.llvm.gemm.ir import counted_loop
from symdiff.codegen.llvm.types import I64, PTR, lltype

__all__ = ["render_scatter", "render_scan", "COMBINE"]


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
    with b.goto_entry_block():
        a = b.alloca(ty)
    a.type = PTR  # opaque pointer (llvmlite's alloca is still typed)
    return a


def render_scatter(r, k: ScatterKernel) -> None:
    n, out = k.node, k.out
    g, idx = n.inputs
    axis, shape = n.attrs["axis"], n.shape
    ty = lltype(n.dtype)
    combine, ident = COMBINE[n.op]
    fn, b = r._task_fn(n.op)
    ctx = fn.args[0]
    optr = r._ptr(b, ctx, out.id)
    with counted_loop(b, _c(0), _c(out.size), 1, "fill") as i:
        b.store(ir.Constant(ty, ident(n.dtype, n.attrs)), b.gep(optr, [i], source_etype=ty, inbounds=True))

    def update(point: list) -> None:
        ev = r.make_eval(fn, b, ctx)
        v = ev.convert(ev(g, point), g.dtype, n.dtype)
        i = ev.em.to_index(ev(idx, ev.broadcast_point(idx.shape, g.shape, point)), idx.dtype)
        target = ev.broadcast_point(shape, g.shape, point)
        target[axis] = ev.em.iwrap_clamp(i, shape[axis])
        p = ev.store_ref(out, n, target)
        b.store(combine(b, b.load(p, typ=ty), v), p)
    _nest(b, [(_c(0), _c(s)) for s in g.shape], update, "u")
    b.ret_void()
    r._dispatch(fn, 1)


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
    rows = [s for d, s in enumerate(n.shape) if d != axis]

    def row(opoint: list) -> None:
        b.store(ir.Constant(ty, ident(n.dtype, n.attrs)), acc)
        with counted_loop(b, _c(0), _c(L), 1, "j") as j:
            pt = list(opoint)
            pt.insert(axis, b.sub(_c(L - 1), j) if reverse else j)
            ev = r.make_eval(fn, b, ctx)
            a = combine(b, b.load(acc, typ=ty), ev.convert(ev(x, pt), x.dtype, n.dtype))
            b.store(a, acc)
            b.store(a, ev.store_ref(out, n, pt))

    if rows:
        lo, hi = r._task_bounds(b, begin, end, rows[0], k.tasks)
        _nest(b, [(lo, hi)] + [(_c(0), _c(s)) for s in rows[1:]], row, "o")
    else:
        row([])
    b.ret_void()
    r._dispatch(fn, k.tasks)
