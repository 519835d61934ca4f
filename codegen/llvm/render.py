"""LLVM renderer: a kernel Program -> one llvmlite module with one entry function.

Entry ABI (also what the exported C header declares)::

    void <name>(void **args, void *pool)

``args`` = input data pointers (signature order), output pointers, then a workspace pointer of
``program.workspace_bytes`` bytes (may be NULL when that is 0). A program with symbolic sizes
(``program.size_names``, sorted) takes one more: a pointer to their ``int64_t`` values in that order; its
workspace size is then a polynomial of them (a :class:`symdiff.dims.Dim`), and every loop bound, task
split, offset and GEMM parameter that depends on them is computed from them at run time. ``pool`` is an ``sd_pool*`` or NULL
(serial). Every kernel is an internal function ``void k(ctx, i64 begin, i64 end)`` over a range of
tasks, run directly or through ``sd_parallel_for(pool, k, ctx, tasks)``; ``ctx`` is an array of buffer
pointers built by the entry. No Python runs between kernels.

Floating-point: no fast-math flags on elementwise code (results match NumPy up to the math library's
ulp bounds); only the accumulating adds of reductions carry ``reassoc`` so LLVM can vectorise them
(summation order changes rounding, nothing else).
"""
from __future__ import annotations

from typing import Callable, Collection, Optional

import numpy as np
from llvmlite import ir

from symdiff import dims as _dims

from symdiff.codegen.kernel_ir import (Buffer, Kernel, LoopKernel, MatmulKernel, Program, ReduceKernel, RowKernel,
                                       ScanKernel, ScatterKernel, SortKernel)
from symdiff.codegen.llvm.emitter import LLVMEmitter
from symdiff.codegen.llvm.gemm.ir import Loops
from symdiff.codegen.llvm.gemm.dynamic import emit_dynamic_matmul
from symdiff.codegen.llvm.gemm.emit import GemmInfo, emit_matmul
from symdiff.codegen.llvm.gemm.plan import planned_for
from symdiff.codegen.llvm.jit import new_module
from symdiff.codegen.llvm import scalar_rules
from symdiff.codegen.llvm.mathlib import MathLib
from symdiff.codegen.llvm.render_extra import render_group, render_scan, render_scatter, render_sort
from symdiff.codegen.llvm.split import SHARED_PREFIX, make_external, shared_part
from symdiff.codegen.llvm.tiers import module_choices
from symdiff.codegen.llvm.types import FTYPE, I8, I64, PTR, alloca, constant_array, lltype
from symdiff.codegen.coalesce import coalesced, loop_probe, reduce_probe
from symdiff.codegen.cost import point_cost
from symdiff.codegen.lower import PAR_MIN_ELEMS, par_worthwhile
from symdiff.codegen.pointeval import PointEval
from symdiff.codegen.schedule import concurrent_runs
from symdiff.codegen.target import ISA_LEVELS, Target, host_target

TASK_FN = ir.FunctionType(ir.VoidType(), [PTR, I64, I64])
REDUCE_IDENT = {"sum": 0.0, "max": -np.inf, "prod": 1.0}  # the identity each accumulation starts from
HEAVY_SPECIAL = 2  # math-library calls per point from which an innermost loop is interleaved ...
HEAVY_INTERLEAVE = 2  # ... this many vectors at a time (Renderer._inner_hints)


def _c(v: int) -> ir.Constant:
    return ir.Constant(I64, int(v))


def _fconst(dtype: str, v: float) -> ir.Constant:
    return ir.Constant(FTYPE[dtype], float(v))


FORCED_CPUS = frozenset(cpu for cpu, _, _ in ISA_LEVELS.values())  # isa= targets: GEMMs follow their width


class Renderer:
    """Renders a Program into one llvmlite module (``modules=n``: the entry in the first and the kernel
    functions spread over n modules, balanced by instruction count, so that n threads can compile them:
    ``llvm/split.py``'s ``split_graph``). ``light``: indexes of kernels rendered into ``light_modules`` more
    modules, marked ``sd_light`` (compiled at the light tier, ``llvm/tiers.py``); ``entry_module``: the entry
    and the products' call stubs in a light module 0 of their own. ``gemm_info`` records, per matmul kernel
    index, the GemmInfo of the product the GEMM planner chose (task split, tile, packing)."""

    def __init__(self, program: Program, name: str = "sd_entry", shared_available=None,
                 target: Optional[Target] = None, modules: int = 1,
                 on_shared: Optional[Callable[[str, list, str], None]] = None, light: Collection[int] = (),
                 light_modules: int = 0, entry_module: bool = False) -> None:
        self.p = program
        self.name = name
        self.target: Target = target or program.target or host_target()
        tiers = [True] * entry_module + [False] * max(0, modules) + [True] * max(0, light_modules) or [False]
        self.entry_module = entry_module
        self.modules = [new_module(name if i == 0 else f"{name}.part{i}", self.target) for i in range(len(tiers))]
        for m, is_light in zip(self.modules, tiers):
            m.sd_light = is_light
        self.light = frozenset(light)
        self.maths = [MathLib(m, hw_fma=self.target.has_fma) for m in self.modules]
        self.weights = [0] * len(self.modules)  # instructions of the kernels each module holds
        self.gemm_info: dict[int, GemmInfo] = {}
        # on_shared(name, arg types, module text): each shared GEMM function handed over as soon as the
        # kernel that needed it is rendered (the JIT compiles it while the rest renders); later kernels, in
        # any module, then declare it
        self.on_shared = on_shared
        self.handed: dict[str, list] = {}
        if on_shared is not None:
            def available(fname: str, _outer=shared_available):
                if fname in self.handed:
                    return self.handed[fname]
                return _outer(fname) if _outer is not None else None
            shared_available = available
        for m in self.modules:
            if shared_available is not None:  # GEMM library functions compiled elsewhere (llvm/split.py)
                m.sd_shared_available = shared_available
        self.mod, self.math = self.modules[0], self.maths[0]
        self.buf_ids = {id(b): b.id for b in self._all_buffers()}
        self.n_ctx = max(self.buf_ids.values(), default=-1) + 1
        self.partials: dict[int, int] = {}  # id(accum tuple) -> ctx slot of its partial array
        self.kcount = 0
        self.parallel = False  # does any kernel dispatch to the thread pool?
        self.size_names = program.size_names  # symbolic sizes: read from the entry's last argument
        self.size_slot: Optional[int] = None  # the ctx slot holding the pointer to their values
        self.dim_memo: dict = {}  # (function name, Dim) -> its i64 value in that function
        self.groups: list[list[int]] = []  # runs of independent kernels dispatched as one (codegen/schedule.py)
        self.launches: Optional[list] = None  # the (task fn, tasks) of the run being rendered

    def _all_buffers(self) -> list[Buffer]:
        return self.p.inputs + self.p.outputs + self.p.temps + self.p.consts

    # -- entry -------------------------------------------------------------------------------------------------
    def render(self) -> ir.Module:
        """The module: the entry point and its kernels (GEMMs planned for a forced ``isa`` target's width)."""
        if self.target.cpu in FORCED_CPUS:
            with planned_for(self.target.vector_bytes):
                return self.render_entry()
        return self.render_entry()

    def render_entry(self) -> ir.Module:
        par = ir.Function(self.mod, ir.FunctionType(ir.VoidType(), [PTR, PTR, PTR, I64]), "sd_parallel_for")
        self.par = par
        for k in self.p.kernels:  # slots for partial results of fused total reductions
            if isinstance(k, LoopKernel):
                for acc in k.accums:
                    self.partials[id(acc)] = self.n_ctx
                    self.n_ctx += 1
        if self.size_names:
            self.size_slot = self.n_ctx
            self.n_ctx += 1
        entry = ir.Function(self.mod, ir.FunctionType(ir.VoidType(), [PTR, PTR]), self.name)
        self.entry_fn = entry
        args, pool = entry.args
        b = ir.IRBuilder(entry.append_basic_block("entry"))
        ctx = alloca(b, ir.ArrayType(PTR, max(self.n_ctx, 1)), name="ctx")
        self.ctx = ctx
        nargs = len(self.p.inputs) + len(self.p.outputs)
        ws = b.load(b.gep(args, [_c(nargs)], source_etype=PTR), typ=PTR, name="ws")
        if self.size_slot is not None:
            sizes = b.load(b.gep(args, [_c(nargs + 1)], source_etype=PTR), typ=PTR, name="sizes")
            b.store(sizes, self._slot(b, ctx, self.size_slot))
        for buf in self._all_buffers():
            if buf.kind in ("input", "output"):
                ptr = b.load(b.gep(args, [_c(buf.slot)], source_etype=PTR), typ=PTR, name=f"arg{buf.slot}")
            elif buf.kind == "temp":
                ptr = b.gep(ws, [self.dim(b, buf.offset)], source_etype=I8, name=f"tmp{buf.id}")
            else:
                ptr = self._global(buf)
            b.store(ptr, self._slot(b, ctx, buf.id))
        self.entry_b, self.ctx, self.pool = b, ctx, pool
        self.loops = Loops(b)
        runs = concurrent_runs(self.p, self.target.gemm_tasks)
        self.groups = runs
        firsts, lasts = {r[0]: r for r in runs}, {r[-1]: r for r in runs}
        for i, k in enumerate(self.p.kernels):
            self.kernel_index = i
            if i in firsts:  # a run of independent kernels: collect their launches, dispatch them as one
                self.launches = []
            tier = module_choices([m.sd_light for m in self.modules], i in self.light, isinstance(k, MatmulKernel),
                                  self.entry_module)
            part = min(tier, key=self.weights.__getitem__)  # the module of its tier with the fewest instructions
            self.mod, self.math = self.modules[part], self.maths[part]
            self.alias_md = self._alias_scopes(i, k) if isinstance(k, (LoopKernel, ReduceKernel)) else {}
            self.KERNEL_RULES[type(k)](self, k)
            if i in lasts:
                render_group(self, lasts[i], self.p.kernels)
            for j in {0, part}:  # (the entry, in module 0, grows with every kernel's dispatch code)
                self.weights[j] = self._own_instructions(self.modules[j])
            if self.on_shared is not None:
                self._hand_over_shared(self.mod)
        self.mod, self.math = self.modules[0], self.maths[0]
        b.ret_void()
        return self.mod

    def _hand_over_shared(self, module: ir.Module) -> None:
        """Pass every shared function ``module`` defines to ``on_shared`` and keep a declaration of it."""
        for fn in [f for f in module.functions if f.name.startswith(SHARED_PREFIX) and f.blocks]:
            if fn.name not in self.handed:
                name, args, text = shared_part(module, fn)
                self.handed[name] = args
                self.on_shared(name, args, text)
            make_external(fn)

    @staticmethod
    def _own_instructions(module: ir.Module) -> int:
        """Instructions of the functions a graph module compiles itself: the shared GEMM library functions
        (``sdgemm.*``, compiled as modules of their own) are not counted."""
        return sum(len(bb.instructions) for g in module.globals.values()
                   if isinstance(g, ir.Function) and not g.name.startswith(SHARED_PREFIX) for bb in g.blocks)

    def _alias_scopes(self, i: int, k: Kernel) -> dict:
        """Scoped-alias metadata of a loop or reduce kernel, per buffer id: (its scope, the other buffers' scopes).
        The buffers a kernel touches are disjoint memory (the workspace plan keeps a kernel's reads live
        while it writes; buffers that share memory share their Buffer), so accesses to different buffers
        never alias: LLVM may vectorise a copy like im2col's without runtime checks."""
        where = self.p.where
        ids = {where[n].id for n in k.reads(where) if n in where} | {b.id for b in k.written_buffers}
        if len(ids) < 2:
            return {}
        mod = self.mod
        dom = mod.add_metadata([ir.MetaDataString(mod, f"sd.{self.name}.k{i}")])
        scope = {j: mod.add_metadata([ir.MetaDataString(mod, f"sd.{self.name}.k{i}.b{j}"), dom]) for j in sorted(ids)}
        return {j: (mod.add_metadata([sc]), mod.add_metadata([o for c, o in scope.items() if c != j]))
                for j, sc in scope.items()}

    def _slot(self, b: ir.IRBuilder, ctx, i: int):
        return b.gep(ctx, [_c(i)], source_etype=PTR)

    def dim(self, b: ir.IRBuilder, d) -> ir.Value:
        """A size as an i64: a constant, or a symbolic size's polynomial of the call's sizes, computed once
        per function in its entry block (loop-invariant; the loads read the entry's ``sizes`` argument)."""
        if not isinstance(d, _dims.Dim):
            return _c(d)
        fn = b.function
        key = (fn.name, d)
        if key in self.dim_memo:
            return self.dim_memo[key]
        with b.goto_entry_block():
            ctx = self.ctx if fn is self.entry_fn else fn.args[0]
            vals = {}
            for name in sorted(d.names):
                nkey = (fn.name, name)
                if nkey not in self.dim_memo:
                    sizes = b.load(self._slot(b, ctx, self.size_slot), typ=PTR)
                    self.dim_memo[nkey] = b.load(b.gep(sizes, [_c(self.size_names.index(name))], source_etype=I64),
                                                 typ=I64, name=f"size_{name}")
                vals[name] = self.dim_memo[nkey]
            total = None
            for mono, coef in d.terms:  # sum of coef * prod(names)
                t = None if (mono and coef == 1) else _c(coef)
                for name in mono:
                    t = vals[name] if t is None else b.mul(t, vals[name])
                total = t if total is None else b.add(total, t)
        self.dim_memo[key] = total
        return total

    def _global(self, buf: Buffer) -> ir.GlobalVariable:
        return constant_array(self.mod, f"const{buf.id}", np.ascontiguousarray(buf.value.reshape(-1)), buf.dtype)

    def _dispatch(self, fn: ir.Function, tasks: int, domain: Optional[tuple] = None) -> None:
        """Run ``fn``'s tasks: through the pool, or serially (one call over all tasks) when the kernel's
        symbolic ``domain`` holds fewer than ``PAR_MIN_ELEMS`` points at this call; collected instead while
        a run of independent kernels is rendered (``render_group``: static by construction)."""
        if self.launches is not None:
            self.launches.append((fn, tasks))
            return
        b = self.entry_b
        size = par_worthwhile(domain) if domain is not None and tasks > 1 else None
        if tasks > 1 and size is not None:
            self.parallel = True
            big = b.icmp_signed(">=", self.dim(b, size), _c(PAR_MIN_ELEMS))
            with b.if_else(big) as (par, serial):
                with par:
                    b.call(self.par, [self.pool, fn, self.ctx, _c(tasks)])
                with serial:
                    b.call(fn, [self.ctx, _c(0), _c(tasks)])
        elif tasks > 1:
            self.parallel = True
            b.call(self.par, [self.pool, fn, self.ctx, _c(tasks)])
        else:
            b.call(fn, [self.ctx, _c(0), _c(1)])

    def _task_fn(self, label: str) -> tuple[ir.Function, ir.IRBuilder]:
        fn = ir.Function(self.mod, TASK_FN, f"k{self.kcount}_{label}")
        self.kcount += 1
        if self.mod is self.modules[0]:  # (a kernel in another module is called from the entry's: external)
            fn.linkage = "internal"
        b = ir.IRBuilder(fn.append_basic_block("entry"))
        return fn, b

    # -- scalar evaluation of a node at a point -------------------------------------------------------------
    def _ptr(self, b, ctx, buf_id: int) -> ir.Value:
        return b.load(self._slot(b, ctx, buf_id), typ=PTR)

    def make_eval(self, fn, b: ir.IRBuilder, ctx) -> PointEval:
        """An evaluator ``ev(node, point) -> value`` for one loop body (memoised per point): the shared
        point evaluator (codegen/pointeval.py) over llvmlite instructions at ``b``."""
        return PointEval(LLVMEmitter(b, ctx, self.scalar, getattr(self, "alias_md", None),
                                     dim=lambda d: self.dim(b, d)), self.p.where)

    def intrinsic(self, name: str, dtype: str, nargs: int) -> ir.Function:
        ty = lltype(dtype)
        full = f"llvm.{name}.{'f32' if dtype == 'float32' else 'f64'}"
        if full in self.mod.globals:
            return self.mod.globals[full]
        return ir.Function(self.mod, ir.FunctionType(ty, [ty] * nargs), full)

    def scalar(self, b: ir.IRBuilder, op: str, a: list, dtype: str):
        """One elementwise op on scalars: a lookup in the backend's table (llvm/scalar_rules.py)."""
        return scalar_rules.scalar(b, self.math, op, a, dtype)

    def _accum(self, b, op: str, acc, v):
        if op in ("sum", "prod"):  # vectorisable: the order of the sums / products may change (rounding only)
            r = b.fadd(acc, v) if op == "sum" else b.fmul(acc, v)
            r.flags = ["reassoc"]
            return r
        dtype = "float32" if isinstance(v.type, ir.FloatType) else "float64"
        return b.call(self.intrinsic("maximum", dtype, 2), [acc, v])

    # -- kernels ----------------------------------------------------------------------------------------------
    def _task_bounds(self, b, begin, end, extent, tasks: int):
        """Rows [lo, hi) of tasks [begin, end): chunks of ceil(extent / tasks) (extent an int or a Dim)."""
        if isinstance(extent, _dims.Dim):
            ext = self.dim(b, extent)
            chunk = b.udiv(b.add(ext, _c(tasks - 1)), _c(tasks)) if tasks > 1 else ext
        else:
            ext, chunk = _c(extent), _c(-(-extent // tasks))
        lo = b.mul(begin, chunk)
        hi = b.mul(end, chunk)
        hi = b.select(b.icmp_signed("<", hi, ext), hi, ext)
        return lo, hi

    def _kernel_loop(self, k: LoopKernel) -> None:
        fn, b = self._task_fn("loop")
        ctx, begin, end = fn.args
        loops = Loops(b)
        dom = k.domain
        if k.accums:  # one task per call so the partial result has a slot: loop over tasks
            def task_body(t):
                accs = []
                for r, _x, _o in k.accums:
                    with b.goto_entry_block():
                        slot = alloca(b, lltype(r.dtype))
                    b.store(_fconst(r.dtype, REDUCE_IDENT[r.op]), slot)
                    accs.append(slot)
                self._loop_body(fn, b, loops, ctx, k, dom, t, b.add(t, _c(1)), accs)
                for acc, slot in zip(k.accums, accs):
                    ty = lltype(acc[0].dtype)
                    part = self._ptr(b, ctx, self.partials[id(acc)])
                    b.store(b.load(slot, typ=ty), b.gep(part, [t], source_etype=ty))
            loops.range(begin, end, task_body, name="t")
        else:
            self._loop_body(fn, b, loops, ctx, k, dom, begin, end, [])
        b.ret_void()
        # partial arrays live in the entry's frame
        eb = self.entry_b
        for acc in k.accums:
            r = acc[0]
            with eb.goto_entry_block():
                arr = alloca(eb, ir.ArrayType(lltype(r.dtype), k.tasks))
            eb.store(arr, self._slot(eb, self.ctx, self.partials[id(acc)]))
        self._dispatch(fn, k.tasks, k.domain)
        for acc in k.accums:  # combine the partial results in task order (deterministic)
            r, _, out = acc
            ty = lltype(r.dtype)
            part = eb.load(self._slot(eb, self.ctx, self.partials[id(acc)]), typ=PTR)
            total = eb.load(part, typ=ty)
            for t in range(1, k.tasks):
                v = eb.load(eb.gep(part, [_c(t)], source_etype=ty), typ=ty)
                total = (eb.fadd(total, v) if r.op == "sum" else eb.fmul(total, v) if r.op == "prod"
                         else eb.call(self.intrinsic("maximum", r.dtype, 2), [total, v]))
            eb.store(total, eb.load(self._slot(eb, self.ctx, out.id), typ=PTR))

    def _task_nest(self, b, loops: Loops, begin, end, shape, tasks: int, body, inner=None) -> None:
        """Loops over ``shape`` with the outermost axis restricted to the tasks [begin, end)."""
        if not shape:
            body([])
            return
        lo, hi = self._task_bounds(b, begin, end, shape[0], tasks)
        loops.nest([(lo, hi)] + [(_c(0), self.dim(b, s)) for s in shape[1:]], body, name="o", inner=inner)

    def _inner_hints(self, roots) -> Optional[dict]:
        """Loop hints of an innermost loop evaluating ``roots`` ((node, compute) pairs) at each point.

        A point with several math-library calls (W4: sin, cos, exp, log, tanh and their derivatives) is a
        chain of ~60 dependent vector operations; LLVM's register-pressure estimate then picks an
        interleave count of 1 and the loop runs at the chain's latency. Two interleaved vectors fill the
        FMA pipes (W4 on one Zen 3 core: 7.1 -> 5.0 ms; docs/performance.md)."""
        _flops, special = point_cost(roots, self.p.where)
        return {"interleave_count": HEAVY_INTERLEAVE} if special >= HEAVY_SPECIAL else None

    def _loop_body(self, fn, b, loops, ctx, k: LoopKernel, dom, tb, te, accs) -> None:
        [(dom, at)] = coalesced(dom, loop_probe(k, self.p.where), self.p.where, _c(0),
                                guarded_loads=LLVMEmitter.GUARDED_LOADS)  # (codegen/coalesce.py)

        def body(point):
            point = at(point)
            ev = self.make_eval(fn, b, ctx)
            for node, buf in k.stores:
                v = ev(node, point, compute=self.p.where.get(node) is buf)
                ev.em.tag(b.store(v, ev.store_ref(buf, node, point)), buf)
            for (r, x, _), slot in zip(k.accums, accs):
                v = ev.convert(ev(x, point), x.dtype, r.dtype)
                b.store(self._accum(b, r.op, b.load(slot, typ=lltype(r.dtype)), v), slot)
        self._task_nest(b, loops, tb, te, dom, k.tasks, body, self._inner_hints(k.roots(self.p.where)))

    def _kernel_reduce(self, k: ReduceKernel) -> None:
        r, out = k.node, k.out
        x = r.inputs[0]
        axes = set(r.attrs["axes"])
        nd = x.ndim
        trailing = 0
        while trailing < nd and (nd - 1 - trailing) in axes:
            trailing += 1
        ident = REDUCE_IDENT[r.op]
        ty = lltype(r.dtype)
        needs_init = any(a < nd - trailing for a in axes)
        eb = self.entry_b
        if needs_init:  # accumulation into memory across outer reduced axes: start from the identity
            optr = eb.load(self._slot(eb, self.ctx, out.id), typ=PTR)
            self.loops.range(_c(0), self.dim(eb, out.size), lambda i: eb.store(ir.Constant(ty, ident), eb.gep(optr, [i], source_etype=ty)), "init")
        fn, b = self._task_fn("reduce")
        ctx, begin, end = fn.args
        loops = Loops(b)
        acc = alloca(b, ty)
        out_shape = tuple(s for i, s in enumerate(x.shape) if i not in axes)
        nests = coalesced(x.shape, reduce_probe(r, out), self.p.where, _c(0), nd - trailing,  # (outer apart
                          LLVMEmitter.GUARDED_LOADS)  # from the trailing axes: two loop nests)
        (outer, omap), (inner, imap) = nests if trailing else (nests[0], ([], None))

        def out_ptr(ev, point):  # (the output's base pointer loaded once, its accesses alias-tagged)
            return ev.em.store_ref(out, ev.offset(out_shape, [p for i, p in enumerate(point) if i not in axes]))

        def accum_out(ev, ptr, v):  # out[...] (op)= v, or out[...] = v
            if needs_init:
                v = self._accum(b, r.op, ev.em.tag(b.load(ptr, typ=ty), out), v)
            ev.em.tag(b.store(v, ptr), out)

        def outer_body(opoint):
            ev = self.make_eval(fn, b, ctx)
            opoint = omap(opoint)
            if trailing:
                b.store(ir.Constant(ty, ident), acc)

                def inner_body(ipoint):
                    v = ev.convert(ev(x, opoint + imap(ipoint)), x.dtype, r.dtype)
                    b.store(self._accum(b, r.op, b.load(acc, typ=ty), v), acc)
                loops.nest([(_c(0), self.dim(b, s)) for s in inner], inner_body, name="r",
                           inner=self._inner_hints([(x, False)]))
                accum_out(ev, out_ptr(ev, opoint + [_c(0)] * trailing), b.load(acc, typ=ty))
            else:
                accum_out(ev, out_ptr(ev, opoint), ev.convert(ev(x, opoint), x.dtype, r.dtype))

        self._task_nest(b, loops, begin, end, outer, k.tasks, outer_body)
        b.ret_void()
        self._dispatch(fn, k.tasks, x.shape)

    def _kernel_row(self, k: RowKernel) -> None:
        n, out, axis = k.node, k.out, k.axis
        x = n.inputs[0]
        ty = lltype(n.dtype)
        fn, b = self._task_fn(n.op)
        ctx, begin, end = fn.args
        loops = Loops(b)
        m_slot, s_slot = alloca(b, ty), alloca(b, ty)
        L = self.dim(b, x.shape[axis])
        outer_dims = [d for d in range(x.ndim) if d != axis]
        outer_shape = [x.shape[d] for d in outer_dims]
        mx = self.intrinsic("maximum", n.dtype, 2)

        def row(opoint):
            ev_outer = self.make_eval(fn, b, ctx)

            def at(j):
                pt = list(opoint)
                pt.insert(axis, j)
                return pt
            b.store(ir.Constant(ty, -np.inf), m_slot)
            loops.range(_c(0), L, lambda j: b.store(b.call(mx, [b.load(m_slot, typ=ty), self.make_eval(fn, b, ctx)(x, at(j))]), m_slot), "j")
            m = b.load(m_slot, typ=ty)
            fin = b.fcmp_ordered("<", self.math.call(b, "abs", [m], n.dtype), ir.Constant(ty, np.inf))
            m = b.select(fin, m, ir.Constant(ty, 0.0))  # all -inf / +inf rows: no shift
            b.store(ir.Constant(ty, 0.0), s_slot)

            def acc_exp(j):
                e = self.math.call(b, "exp", [b.fsub(self.make_eval(fn, b, ctx)(x, at(j)), m)], n.dtype)
                if n.op == "softmax":
                    b.store(e, self.make_eval(fn, b, ctx).store_ref(out, n, at(j)))
                b.store(self._accum(b, "sum", b.load(s_slot, typ=ty), e), s_slot)
            loops.range(_c(0), L, acc_exp, "j")
            s = b.load(s_slot, typ=ty)
            if n.op == "softmax":
                inv = b.fdiv(ir.Constant(ty, 1.0), s)

                def scale(j):
                    p = self.make_eval(fn, b, ctx).store_ref(out, n, at(j))
                    b.store(b.fmul(b.load(p, typ=ty), inv), p)
                loops.range(_c(0), L, scale, "j")
            elif n.op == "log_softmax":
                # (x - max) - log(s), as numpy: x - (max + log(s)) would lose log(s) next to a large max
                ls = self.math.call(b, "log", [s], n.dtype)

                def write(j):
                    evj = self.make_eval(fn, b, ctx)
                    b.store(b.fsub(b.fsub(evj(x, at(j)), m), ls), evj.store_ref(out, n, at(j)))
                loops.range(_c(0), L, write, "j")
            else:  # logsumexp
                ls = b.fadd(m, self.math.call(b, "log", [s], n.dtype))
                opt = at(_c(0)) if n.attrs["keepdims"] else list(opoint)
                b.store(ls, ev_outer.store_ref(out, n, opt))

        self._task_nest(b, loops, begin, end, outer_shape, k.tasks, row)
        b.ret_void()
        self._dispatch(fn, k.tasks, x.shape)

    def _kernel_matmul(self, k: MatmulKernel) -> None:
        if k.batch:
            return self._kernel_batched_matmul(k)
        if any(isinstance(v, _dims.Dim) for v in (k.M, k.N, k.K)):
            return self._kernel_dynamic_matmul(k)
        info = emit_matmul(self.mod, f"gemm{self.kcount}", k.node.dtype, k.M, k.N, k.K, trans_a=k.trans_a,
                           trans_b=k.trans_b, bias=k.bias is not None, relu=k.relu,
                           threads=self.target.gemm_tasks, b_offsets=k.b_offsets)
        self.gemm_info[self.kernel_index] = info
        fn = self._matmul_task(k, self.mod.globals[info.name], lambda b: [])
        self._dispatch(fn, info.n_tasks)

    def _matmul_task(self, k: MatmulKernel, gemm: ir.Function, sizes: Callable) -> ir.Function:
        """The task function of a 2-D product: ``gemm(A, B, C, bias, begin, end, *sizes(builder))``."""
        fn, b = self._task_fn("matmul")
        ctx, begin, end = fn.args
        gemm.linkage = "internal"  # (called only here: inlined, one function less to compile)
        gemm.attributes.add("alwaysinline")
        where = self.p.where
        ptrs = [self._ptr(b, ctx, where[k.a].id), self._ptr(b, ctx, where[k.b].id), self._ptr(b, ctx, k.out.id),
                self._ptr(b, ctx, where[k.bias].id) if k.bias is not None else ir.Constant(PTR, None)]
        b.call(gemm, ptrs + [begin, end] + sizes(b))
        b.ret_void()
        return fn

    def _kernel_dynamic_matmul(self, k: MatmulKernel) -> None:
        """A product whose M or K is symbolic: planned once, sized at run time (llvm/gemm/dynamic.py)."""
        g = emit_dynamic_matmul(self.mod, f"gemm{self.kcount}", k.node.dtype, k.M, k.N, k.K, trans_a=k.trans_a,
                                trans_b=k.trans_b, bias=k.bias is not None, threads=self.target.gemm_tasks)
        self.gemm_info[self.kernel_index] = g.info()
        fn = self._matmul_task(k, self.mod.globals[g.name], lambda b: [self.dim(b, v) for v in (k.M, k.K, k.N)])
        eb = self.entry_b
        tasks = g.tasks(eb, self.dim(eb, k.M), self.dim(eb, k.K), self.dim(eb, k.N))
        if self.target.gemm_tasks > 1:
            self.parallel = True
            eb.call(self.par, [self.pool, fn, self.ctx, tasks])  # (one task runs inline, without the pool)
        else:
            eb.call(fn, [self.ctx, _c(0), tasks])

    def _kernel_batched_matmul(self, k: MatmulKernel) -> None:
        """A loop over the batch entries around one planned GEMM: task t is split task t % T of batch entry
        t // T (T = the GEMM's own split, planned for the threads the batch leaves), with the operands'
        batch offsets (stride 0 for a broadcast operand) computed from the entry's index."""
        nb = k.batch_count
        dynamic = any(isinstance(v, _dims.Dim) for v in (k.M, k.N, k.K))
        sym_batch = isinstance(nb, _dims.Dim)  # a symbolic batch: its entries are the tasks, one GEMM task each
        threads = 1 if (sym_batch or dynamic) else max(1, self.target.gemm_tasks // max(nb, 1))  # nb == 0: none
        if dynamic:  # matrices sized at run time: one task per batch entry (llvm/gemm/dynamic.py)
            g = emit_dynamic_matmul(self.mod, f"gemm{self.kcount}", k.node.dtype, k.M, k.N, k.K, trans_a=k.trans_a,
                                    trans_b=k.trans_b, bias=False, threads=1)
            info = g.info()
        else:
            info = emit_matmul(self.mod, f"gemm{self.kcount}", k.node.dtype, k.M, k.N, k.K, trans_a=k.trans_a,
                               trans_b=k.trans_b, bias=False, threads=threads)
        self.gemm_info[self.kernel_index] = info
        gemm = self.mod.globals[info.name]
        T = 1 if dynamic else info.n_tasks
        fn, b = self._task_fn("bmatmul")
        ctx, begin, end = fn.args
        where, ety = self.p.where, lltype(k.node.dtype)
        base = [self._ptr(b, ctx, where[k.a].id), self._ptr(b, ctx, where[k.b].id), self._ptr(b, ctx, k.out.id)]

        def task(t):
            bi, sub = b.udiv(t, _c(T)), b.urem(t, _c(T))
            oa = ob = _c(0)
            rest = bi
            for size, sa, sb in zip(reversed(k.batch), reversed(k.a_batch_strides), reversed(k.b_batch_strides)):
                i = b.urem(rest, self.dim(b, size))
                rest = b.udiv(rest, self.dim(b, size))
                oa = b.add(oa, b.mul(i, self.dim(b, sa))) if sa else oa
                ob = b.add(ob, b.mul(i, self.dim(b, sb))) if sb else ob
            oc = b.mul(bi, self.dim(b, k.M * k.N))
            ptrs = [b.gep(p, [o], source_etype=ety) for p, o in zip(base, (oa, ob, oc))]
            sizes = [self.dim(b, k.M), self.dim(b, k.K), self.dim(b, k.N)] if dynamic else []
            b.call(gemm, ptrs + [ir.Constant(PTR, None), sub, b.add(sub, _c(1))] + sizes)
        Loops(b).range(begin, end, task, name="bt")
        b.ret_void()
        if sym_batch:
            self.parallel = True
            self.entry_b.call(self.par, [self.pool, fn, self.ctx, self.dim(self.entry_b, nb * T)])
        elif nb:  # an empty batch (a vmap over 0 examples) has no entry to compute
            self._dispatch(fn, nb * T)

    # one rule per kernel type (renderers dispatch on the kernel's type, not on a name)
    KERNEL_RULES = {LoopKernel: _kernel_loop, ReduceKernel: _kernel_reduce, RowKernel: _kernel_row,
                    MatmulKernel: _kernel_matmul, ScatterKernel: render_scatter, ScanKernel: render_scan,
                    SortKernel: render_sort}  # llvm/render_extra.py


def render(program: Program, name: str = "sd_entry", target: Optional[Target] = None) -> ir.Module:
    return Renderer(program, name, target=target).render()
