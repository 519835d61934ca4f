"""GEMMs whose sizes M, N or K are known only at call time (symbolic dimensions, issue 15).

The plan (kernel family, register tile, packing, cache blocks, the axis the tasks split) is chosen once, at
compile time, for a nominal problem in which every named size is ``NOMINAL``; everything that depends on
the actual sizes is computed at run time from the same formulas the static planner uses
(``codegen/llvm/gemm/plan.py``): the K block ``kc`` and block count, the edge tile kernels (tables with one
kernel per possible remainder: ``M % MR`` rows, ``ceil((N % NR) / VL)`` vectors, whose last one is masked to
``N % NR % VL`` lanes), the number of tasks, and the operand strides. The loop nest is
the shared driver of the static GEMMs (``SharedKernels.driver``), fed a parameter block built on the stack
instead of a constant one, so a dynamic product runs the same micro-kernels at the same speed.

Emitted: ``void name(ptr A, ptr B, ptr C, ptr bias, i64 task_begin, i64 task_end, i64 M, i64 K, i64 N)``;
the caller computes the task count with :meth:`DynamicGemm.tasks` (the same formula the function uses).
"""
from __future__ import annotations

from typing import Optional

from llvmlite import ir

from symdiff import dims as _dims

from symdiff.codegen.llvm.gemm.ir import EDGE_PARTS, PRM, I32, I64, PTR, c64, Kit, prm_type, PtrRef
from symdiff.codegen.llvm.gemm.kernels import SharedKernels
from symdiff.codegen.llvm.gemm.plan import (UK_BIAS_COL, GemmInfo, Plan, Problem, abuf_elems, ceil_div, TASK_RULE,
                                            cfg_of, make_plan, norm_dtype)

__all__ = ["DynamicGemm", "NOMINAL"]

NOMINAL = 256  # the value of every named size in the problem the plan is chosen for


def _nominal(v) -> int:
    return _dims.evaluate(v, {n: NOMINAL for n in _dims.free_names([v])}) if isinstance(v, _dims.Dim) else int(v)


class DynamicGemm(Kit):
    """C = op(A) @ op(B) (+ bias[j]) with any of M, N, K symbolic (ints or Dims)."""

    def __init__(self, module: ir.Module, name: str, dtype: str, M, N, K, trans_a: bool, trans_b: bool,
                 bias: bool, threads: int, nominal_m: Optional[int] = None) -> None:
        dtype = norm_dtype(dtype)
        super().__init__(module, dtype)
        self.name, self.M, self.N, self.K = name, M, N, K
        self.trans_a, self.trans_b, self.bias, self.threads = trans_a, trans_b, bias, threads
        self.cfg = cfg_of(dtype)
        # with K symbolic the plan is made for the largest K block (kc <= KC * 5/4 at every K), so the
        # packing buffers and the N block fit every call
        self.kc_max = max(self.cfg["KC"] * 5 // 4, self.cfg["KC"] + self.cfg["U"])
        Mn, Nn = nominal_m or _nominal(M), _nominal(N)
        Kn = self.kc_max if isinstance(K, _dims.Dim) else int(K)
        sai, sak = (1, Mn) if trans_a else (Kn, 1)
        sbk, sbj = (1, Kn) if trans_b else (Nn, 1)
        self.nominal = Problem(dtype, Mn, Nn, Kn, sai, sak, sbk, sbj, Nn, False,
                               "col" if bias else "none", False, False)
        # dot kernels (small M) need a fixed N: their column tiles are not tabled
        self.plan: Plan = make_plan(self.nominal, frozenset(), threads, allow_dot=not isinstance(N, _dims.Dim))
        self.shared = SharedKernels(module, dtype)
        self.internal = False  # a variant of a DynamicProduct is internal

    # -- what the caller needs ------------------------------------------------------------------------------
    def info(self) -> GemmInfo:
        plan, VL = self.plan, self.VL
        nr = plan.nv if plan.kernel in ("dot", "outer") else plan.nv * VL
        return GemmInfo(name=self.name, n_tasks=plan.n_tasks, flops=0, dtype=self.dt, M=0, N=0, K=0,
                        kernel=plan.kernel, mr=plan.mr, nr=nr, packed_b=bool(plan.pack), transposed=False,
                        split=plan.split, stack_bytes=0)

    def _units(self, b: ir.IRBuilder, M: ir.Value, N: ir.Value) -> ir.Value:
        plan = self.plan
        if plan.kernel == "outer":
            return M
        if plan.split == "m":
            return b.udiv(b.add(M, c64(plan.mr - 1)), c64(plan.mr))
        if isinstance(self.N, _dims.Dim):  # NR-column panels
            NR = plan.nv if plan.kernel == "dot" else plan.nv * self.VL
            return b.udiv(b.add(N, c64(NR - 1)), c64(NR))
        return c64(plan.units)

    def tasks(self, b: ir.IRBuilder, M: ir.Value, K: ir.Value, N: ir.Value) -> ir.Value:
        """The task count at sizes M, K, N (plan.py's ``_choose_tasks`` rule, or the outer product's)."""
        plan = self.plan
        if plan.kernel == "empty":
            return c64(1)
        if plan.kernel == "outer":  # two tasks from _OUTER_TASK_BYTES of C on
            big = b.icmp_signed(">=", b.mul(b.mul(M, N), c64(self.esz)), c64(TASK_RULE["outer_task_bytes"]))
            t = self.smin(b, self.smin(b, c64(2), M), c64(self.threads))
            return b.select(big, t, c64(1))
        units = self._units(b, M, N)
        flops = b.mul(b.mul(M, K), b.mul(N, c64(2)))
        t = self.smin(b, self.smin(b, c64(self.threads), units),
                      self.smax(b, c64(1), b.udiv(flops, c64(TASK_RULE["task_flops"]))))
        odd = b.and_(b.icmp_signed(">", t, c64(2)), b.icmp_signed("==", b.and_(t, c64(1)), c64(1)))
        t = b.select(odd, b.sub(t, c64(1)), t)
        serial = b.or_(b.icmp_signed("<", flops, c64(TASK_RULE["serial_flops"])), b.icmp_signed("<", units, c64(2)))
        return b.select(serial, c64(1), t)

    def smax(self, b, x, y):
        return b.select(b.icmp_signed(">", x, y), x, y)

    # -- the function ------------------------------------------------------------------------------------------
    def _tile_kernels(self) -> tuple:
        """The full tile kernel and, per M remainder r (rows) and N-edge vector count v, the edge kernels:
        ``nt[v]`` (MR rows), ``mt[r]`` (whole vectors), ``co[r, v]`` (corner) -- for a fixed M, whose one
        remainder has its own kernels; a symbolic M's edge runs as row parts (``EDGE_PARTS`` rows: keys
        ``("part", p)`` of mt and ``("part", p, v)`` of co; the driver's ``edge_split``)."""
        plan, VL, sh = self.plan, self.VL, self.shared
        MR = plan.mr
        sym_m, sym_n = isinstance(self.M, _dims.Dim), isinstance(self.N, _dims.Dim)
        rems = [] if sym_m else sorted({int(self.M) % MR} - {0})
        parts = [p for p in EDGE_PARTS if p < MR] if sym_m else []
        if plan.kernel == "dot":  # a fixed N (checked in __init__)
            NR = plan.nv
            ntail = int(self.N) % NR
            k = lambda mr, nr: sh.dot_kernel(mr, nr, plan.ks)  # noqa: E731
            full = k(MR, NR)
            nt = {ntail: k(MR, ntail)} if ntail else {}
            mt = {r: k(r, NR) for r in rems} | {("part", p): k(p, NR) for p in parts}
            co = {(r, ntail): k(r, ntail) for r in rems if ntail} | {("part", p, ntail): k(p, ntail)
                                                                    for p in parts if ntail}
            return full, nt, mt, co, NR
        NR = plan.nv * VL
        vecs = list(range(1, plan.nv + 1)) if sym_n else ([ceil_div(int(self.N) % NR, VL)] if int(self.N) % NR else [])

        def k(mr, nv, whole, pa=plan.pack_a):
            return sh.row_ukernel(mr, nv, plan.ks, plan.unroll, pa=pa, pb=bool(plan.pack) or whole)
        full = k(MR, plan.nv, True)
        nt = {v: k(MR, v, False) for v in vecs}
        # row parts read packed op(A) with run-time strides (a panel of r rows): the unpacked-A kernels
        mt = {r: k(r, plan.nv, True) for r in rems} | {("part", p): k(p, plan.nv, True, False) for p in parts}
        co = {(r, v): k(r, v, False) for r in rems for v in vecs} | {("part", p, v): k(p, v, False, False)
                                                                    for p in parts for v in vecs}
        return full, nt, mt, co, NR

    def _table(self, entries: list, tag: str) -> ir.GlobalVariable:
        ty = ir.ArrayType(PTR, len(entries))
        g = ir.GlobalVariable(self.m, ty, name=f"{self.name}.{tag}")
        g.linkage = "internal"
        g.global_constant = True
        g.initializer = ir.Constant(ty, [PtrRef(f) for f in entries])
        return g

    def _pick(self, b: ir.IRBuilder, entries: list, index: ir.Value, tag: str) -> ir.Value:
        """``entries[index]`` (functions) at run time: a constant table, or the one entry."""
        if len(set(entries)) == 1:
            return PtrRef(entries[0])
        g = self._table(entries, tag)
        return b.load(b.gep(g, [c64(0), index], inbounds=True, source_etype=g.value_type), typ=PTR)

    def emit(self) -> ir.Function:
        plan, VL, N = self.plan, self.VL, self.N
        fn = self.new_fn(self.name, [PTR, PTR, PTR, PTR, I64, I64, I64, I64, I64], internal=self.internal, small=True)
        A, B, C, bias, tb, te, M, K, N = fn.args
        b = ir.IRBuilder(fn.append_basic_block("entry"))
        biasp = bias if self.bias else C
        if plan.kernel == "empty":
            b.ret_void()
            return fn
        T = self.tasks(b, M, K, N)
        if plan.kernel == "outer":  # K == 1: C (+)= a b^T row by row, rows split over the tasks
            m0 = b.udiv(b.mul(tb, M), T)
            m1 = b.udiv(b.mul(te, M), T)
            sai = c64(1) if self.trans_a else K
            b.call(self.shared.outer_kernel(False, "col" if self.bias else "none", False),
                   [A, sai, B, C, N, biasp, m0, m1, N])
            b.ret_void()
            return fn
        full, nt, mt, co, NR = self._tile_kernels()
        MR = plan.mr
        ntail = b.urem(N, c64(NR))  # the last panel's columns, its vectors and the last vector's lanes
        nvec = b.udiv(b.add(ntail, c64(VL - 1)), c64(VL)) if plan.kernel != "dot" else ntail
        lanes_tail = b.urem(ntail, c64(VL))
        lanes_tail = b.select(b.icmp_signed("==", lanes_tail, c64(0)), c64(VL), lanes_tail)
        if plan.kernel == "dot":  # (dot kernels take whole vectors along k)
            lanes_tail = c64(VL)
        flags = UK_BIAS_COL if self.bias else 0
        dot = plan.kernel == "dot"
        sai, sak = (c64(1), M) if self.trans_a else (K, c64(1))
        sbk, sbj = (c64(1), K) if self.trans_b else (N, c64(1))
        kstride = sbj if dot else (c64(NR) if plan.pack else sbk)
        if dot or not plan.pack:
            kc = self.smax(b, K, c64(1))  # one K block
        else:  # plan.py: K > KC * 5/4 splits into ceil(K / KC) blocks of equal size, rounded up to the unroll
            KC, U = self.cfg["KC"], plan.unroll
            nb = b.udiv(b.add(K, c64(KC - 1)), c64(KC))
            per = b.udiv(b.add(K, b.sub(nb, c64(1))), nb)
            split = b.mul(b.udiv(b.add(per, c64(U - 1)), c64(U)), c64(U))
            kc = b.select(b.icmp_signed(">", K, c64(KC * 5 // 4)), split, self.smax(b, K, c64(1)))
        nkb = c64(1) if dot else self.smax(b, c64(1), b.udiv(b.add(K, b.sub(kc, c64(1))), kc))
        if plan.pack:
            fn.attributes.add('"probe-stack"="inline-asm"')
            buf = b.alloca(ir.ArrayType(self.ety, plan.kc * plan.nc + VL * NR), name="bpack")
            buf.align = 64
            buf.type = PTR
            packfn = self.shared.pack_copy(plan.nv) if plan.pack == "copy" else self.shared.pack_trans(plan.nv)
        else:
            buf = ir.Constant(PTR, None)
            packfn = None
        if plan.pack_a:
            abuf = b.alloca(ir.ArrayType(self.ety, abuf_elems(plan.mc, plan.kc, plan.mr, VL)), name="apack")
            abuf.align = 64
            abuf.type = PTR
            packafn = self.shared.pack_a_copy(plan.mr) if self.nominal.sai == 1 else self.shared.pack_a_rows(plan.mr)
        else:
            abuf = ir.Constant(PTR, None)
            packafn = None
        MC = c64(plan.mc or ceil_div(self.nominal.M, plan.mr) * plan.mr)
        if dot:  # dot plans: one M block of the whole M
            MC = b.mul(b.udiv(b.add(M, c64(plan.mr - 1)), c64(plan.mr)), c64(plan.mr))
        vals = dict(M=M, N=N, K=K, sai=sai, sak=sak, sbk=sbk, sbj=sbj, ldc=N, MR=c64(plan.mr),
                    NR=c64(NR), KC=kc, NC=c64(plan.nc or ceil_div(self.nominal.N, NR) * NR), MC=MC, T=T,
                    units=self._units(b, M, N), split_m=c64(int(plan.split == "m")),
                    pack=c64({"": 0, "copy": 1, "trans": 2}[plan.pack]),
                    pstride=sbk if plan.pack == "copy" else sbj, kstride=kstride, flags=c64(flags),
                    lanes_tail=lanes_tail, bias_mode=c64(1 if self.bias else 0), nkb=nkb, VL=c64(VL),
                    packa=c64(int(plan.pack_a)), pastride=sak if self.nominal.sai == 1 else sai,
                    edge_split=c64(int(isinstance(self.M, _dims.Dim))), gather=c64(0))
        sty = prm_type()
        prm = b.alloca(sty, name="prm")
        prm.align = 8
        prm.type = PTR
        for i, f in enumerate(PRM):
            b.store(vals[f], b.gep(prm, [ir.Constant(I32, 0), ir.Constant(I32, 0), ir.Constant(I32, i)],
                                   inbounds=True, source_etype=sty))
        # edge kernels by remainder (index 0: a size with no remainder, whose edge kernel is never called)
        rem = b.urem(M, c64(MR))
        nvs = sorted(nt)
        nv_top = max(nvs, default=0)
        nt_list = [nt.get(v, full) for v in range(nv_top + 1)]
        mt_list = [mt.get(r, full) for r in range(MR)]
        co_list = [co.get((r, v), nt.get(v, full)) for r in range(MR) for v in range(nv_top + 1)]
        nv_index = nvec if len(nvs) > 1 else c64(nvs[0] if nvs else 0)
        edge_n = self._pick(b, nt_list, nv_index, "nt")
        edge_m = self._pick(b, mt_list, rem, "mt")
        corner = self._pick(b, co_list, b.add(b.mul(rem, c64(nv_top + 1)), nv_index), "co")
        null = ir.Constant(PTR, None)
        part_w = [PtrRef(mt[("part", p)]) if ("part", p) in mt else null for p in EDGE_PARTS]
        part_n = [self._pick(b, [co.get(("part", p, v), full) for v in range(nv_top + 1)], nv_index, f"p{p}")
                  if ("part", p) in mt else null for p in EDGE_PARTS]
        ptrs = [PtrRef(full), edge_n, edge_m, corner,
                PtrRef(packfn) if packfn is not None else null,
                PtrRef(packafn) if packafn is not None else null] + part_w + part_n + [null]  # (no offset table)
        for i, v in enumerate(ptrs):
            b.store(v, b.gep(prm, [ir.Constant(I32, 0), ir.Constant(I32, 1), ir.Constant(I32, i)],
                             inbounds=True, source_etype=sty))
        b.call(self.shared.driver(), [A, B, C, biasp, tb, te, prm, buf, abuf])
        b.ret_void()
        return fn


SMALL_M = 16  # a symbolic M below this runs the small-M plan (no op(B) packing, dot kernels): plan.py's _PACK_MIN_M


class DynamicProduct:
    """The emitted product: plans chosen at run time, in order, by the first condition that holds:

    - a symbolic M (or K) of 1 with the other two sizes fixed: the static product for that shape
      (``emit_matmul``: a one-row tile, or the outer product of a one-deep K, exactly as a fixed-shape compile);
    - a symbolic M below ``SMALL_M``: the plan for a nominal M of 8 (op(B) read in place, dot kernels, as the
      static planner does for small M);
    - otherwise the plan for every named size at ``NOMINAL``.
    """

    def __init__(self, module: ir.Module, name: str, dtype: str, M, N, K, trans_a: bool, trans_b: bool,
                 bias: bool, threads: int) -> None:
        from symdiff.codegen.llvm.gemm.emit import emit_matmul
        self.name = name
        args = (dtype, M, N, K, trans_a, trans_b, bias, threads)
        sym = [isinstance(v, _dims.Dim) for v in (M, N, K)]
        self.variants: list = []  # (axis 0 = M / 2 = K, bound, kind, callee, info or DynamicGemm)
        for axis in (0, 2):
            if sym[axis] and sum(sym) == 1:  # one symbolic size, at 1: the fixed-shape product
                shape = [1 if a == axis else int(v) for a, v in enumerate((M, N, K))]
                info = emit_matmul(module, f"{name}.one{'mk'[axis // 2]}", dtype, *shape, trans_a=trans_a,
                                   trans_b=trans_b, bias=bias, threads=threads)
                module.globals[info.name].linkage = "internal"
                self.variants.append((axis, 2, "static", info))
        if sym[0]:
            self.variants.append((0, SMALL_M, "dynamic", DynamicGemm(module, f"{name}.small", *args, nominal_m=8)))
        self.general = DynamicGemm(module, f"{name}.large" if self.variants else name, *args, nominal_m=None)
        self.kit = self.general

    def info(self) -> GemmInfo:
        return self.general.info()

    def tasks(self, b: ir.IRBuilder, M: ir.Value, K: ir.Value, N: ir.Value) -> ir.Value:
        t = self.general.tasks(b, M, K, N)
        for axis, bound, kind, g in reversed(self.variants):
            vt = c64(g.n_tasks) if kind == "static" else g.tasks(b, M, K, N)
            t = b.select(b.icmp_signed("<", (M, None, K)[axis], c64(bound)), vt, t)
        return t

    def emit(self) -> ir.Function:
        if not self.variants:
            return self.general.emit()
        self.general.internal = True
        for _, _, kind, g in self.variants:
            if kind == "dynamic":
                g.internal = True
        general = self.general.emit()
        fns = [(axis, bound, kind, self.kit.m.globals[g.name] if kind == "static" else g.emit())
               for axis, bound, kind, g in self.variants]
        fn = self.kit.new_fn(self.name, [PTR, PTR, PTR, PTR, I64, I64, I64, I64, I64], internal=False, small=True)
        b = ir.IRBuilder(fn.append_basic_block("entry"))
        args = list(fn.args)
        size = {0: args[6], 2: args[7]}
        for axis, bound, kind, callee in fns:  # the first variant whose condition holds, else the general plan
            with b.if_then(b.icmp_signed("<", size[axis], c64(bound))):
                b.call(callee, args[:6] if kind == "static" else args)
                b.ret_void()
        b.call(general, args)
        b.ret_void()
        return fn


def emit_dynamic_matmul(module: ir.Module, name: str, dtype: str, M, N, K, trans_a: bool = False,
                        trans_b: bool = False, bias: bool = False, threads: Optional[int] = None) -> DynamicProduct:
    """Emit the dynamic product into ``module`` (see the module docstring); returns its :class:`DynamicProduct`."""
    from symdiff.codegen.target import default_threads
    g = DynamicProduct(module, name, dtype, M, N, K, trans_a, trans_b, bias,
                       default_threads() if threads is None else threads)
    g.emit()
    return g


__all__ += ["emit_dynamic_matmul", "DynamicProduct", "SMALL_M"]
