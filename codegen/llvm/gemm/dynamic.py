"""GEMMs whose row count M or depth K is known only at call time (symbolic dimensions, issue 15).

The plan (kernel family, register tile, packing, cache blocks, the axis the tasks split) is chosen once, at
compile time, for a nominal problem in which every named size is ``NOMINAL``; everything that depends on
the actual M and K is computed at run time from the same formulas the static planner uses
(``codegen/llvm/gemm/plan.py``): the K block ``kc`` and block count, the M-edge tile kernel (a table with one
kernel per possible remainder ``M % MR``), the number of tasks, and the operand strides. The loop nest is
the shared driver of the static GEMMs (``SharedKernels.driver``), fed a parameter block built on the stack
instead of a constant one, so a dynamic product runs the same micro-kernels at the same speed.

N (the columns of C) must be fixed: it sets the vector tiles and their masks.

Emitted: ``void name(ptr A, ptr B, ptr C, ptr bias, i64 task_begin, i64 task_end, i64 M, i64 K)``; the
caller computes the task count with :meth:`DynamicGemm.tasks` (the same formula the function uses).
"""
from __future__ import annotations

from typing import Optional

from llvmlite import ir

from symdiff import dims as _dims
from symdiff.dim_binding import SymbolicUnsupported

from symdiff.codegen.llvm.gemm.ir import PRM, I32, I64, PTR, c64, Kit, prm_type, PtrRef
from symdiff.codegen.llvm.gemm.kernels import SharedKernels
from symdiff.codegen.llvm.gemm.plan import (UK_BIAS_COL, UK_EPI, GemmInfo, Plan, Problem, abuf_elems, ceil_div,
                                            TASK_RULE, cfg_of, elem_size, make_plan, norm_dtype)

__all__ = ["DynamicGemm", "NOMINAL", "DynamicGemmUnsupported"]

NOMINAL = 256  # the value of every named size in the problem the plan is chosen for


class DynamicGemmUnsupported(SymbolicUnsupported):
    """A product this module cannot compile with runtime sizes (a symbolic N, a batched product)."""


def _nominal(v) -> int:
    return _dims.evaluate(v, {n: NOMINAL for n in _dims.free_names([v])}) if isinstance(v, _dims.Dim) else int(v)


class DynamicGemm(Kit):
    """C = op(A) @ op(B) (+ bias[j]) with M and/or K symbolic (ints or Dims; N an int)."""

    def __init__(self, module: ir.Module, name: str, dtype: str, M, N, K, trans_a: bool, trans_b: bool,
                 bias: bool, threads: int) -> None:
        dtype = norm_dtype(dtype)
        super().__init__(module, dtype)
        if isinstance(N, _dims.Dim):
            raise DynamicGemmUnsupported(f"a product with a symbolic column count N = {N}")
        self.name, self.M, self.N, self.K = name, M, int(N), K
        self.trans_a, self.trans_b, self.bias, self.threads = trans_a, trans_b, bias, threads
        self.cfg = cfg_of(dtype)
        # with K symbolic the plan is made for the largest K block (kc <= KC * 5/4 at every K), so the
        # packing buffers and the N block fit every call
        self.kc_max = max(self.cfg["KC"] * 5 // 4, self.cfg["KC"] + self.cfg["U"])
        Mn = _nominal(M)
        Kn = self.kc_max if isinstance(K, _dims.Dim) else int(K)
        sai, sak = (1, Mn) if trans_a else (Kn, 1)
        sbk, sbj = (1, Kn) if trans_b else (self.N, 1)
        self.nominal = Problem(dtype, Mn, self.N, Kn, sai, sak, sbk, sbj, self.N, False,
                               "col" if bias else "none", False, False)
        self.plan: Plan = make_plan(self.nominal, frozenset(), threads)
        if self.plan.kernel == "dot" and isinstance(M, _dims.Dim):
            raise DynamicGemmUnsupported("a dot-kernel plan with a symbolic M")
        self.shared = SharedKernels(module, dtype)

    # -- what the caller needs ------------------------------------------------------------------------------
    def info(self) -> GemmInfo:
        plan, VL = self.plan, self.VL
        nr = plan.nv if plan.kernel in ("dot", "outer") else plan.nv * VL
        return GemmInfo(name=self.name, n_tasks=plan.n_tasks, flops=0, dtype=self.dt, M=0, N=self.N, K=0,
                        kernel=plan.kernel, mr=plan.mr, nr=nr, packed_b=bool(plan.pack), transposed=False,
                        split=plan.split, stack_bytes=0)

    def _units(self, b: ir.IRBuilder, M: ir.Value) -> ir.Value:
        plan = self.plan
        if plan.kernel == "outer":
            return M
        if plan.split == "m":
            return b.udiv(b.add(M, c64(plan.mr - 1)), c64(plan.mr))
        return c64(plan.units)

    def tasks(self, b: ir.IRBuilder, M: ir.Value, K: ir.Value) -> ir.Value:
        """The task count at sizes M, K (plan.py's ``_choose_tasks`` rule, or the outer product's)."""
        plan = self.plan
        if plan.kernel == "empty":
            return c64(1)
        if plan.kernel == "outer":  # two tasks from _OUTER_TASK_BYTES of C on
            big = b.icmp_signed(">=", b.mul(M, c64(self.N * self.esz)), c64(TASK_RULE["outer_task_bytes"]))
            t = self.smin(b, self.smin(b, c64(2), M), c64(self.threads))
            return b.select(big, t, c64(1))
        units = self._units(b, M)
        flops = b.mul(b.mul(M, K), c64(2 * self.N))
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
        """(full, N-edge) kernels and, per M remainder r (index r; r = 0 unused), the M-edge and corner kernels."""
        p, plan, VL, sh = self.nominal, self.plan, self.VL, self.shared
        MR = plan.mr
        if plan.kernel == "dot":
            NR = plan.nv
            ntail = p.N % NR
            k = lambda mr, nr: sh.dot_kernel(mr, nr, plan.ks)  # noqa: E731
            full = k(MR, NR)
            nt = k(MR, ntail) if ntail else full
            rem = {int(self.M) % MR} - {0}  # a dot plan has a fixed M
            mt = {r: k(r, NR) for r in rem}
            co = {r: (k(r, ntail) if ntail else mt[r]) for r in rem}
            return full, nt, mt, co, NR, VL
        NR = plan.nv * VL
        ntail = p.N % NR
        nv_t = ceil_div(ntail, VL)

        def k(mr, nv, whole):
            return sh.row_ukernel(mr, nv, plan.ks, plan.unroll, pa=plan.pack_a, pb=bool(plan.pack) or whole)
        full = k(MR, plan.nv, True)
        nt = k(MR, nv_t, False) if ntail else full
        rem = set(range(1, MR)) if isinstance(self.M, _dims.Dim) else {int(self.M) % MR} - {0}
        mt = {r: k(r, plan.nv, True) for r in sorted(rem)}
        co = {r: (k(r, nv_t, False) if ntail else mt[r]) for r in sorted(rem)}
        return full, nt, mt, co, NR, (ntail % VL or VL)

    def _table(self, kerns: dict, fallback: ir.Function, tag: str) -> ir.GlobalVariable:
        MR = self.plan.mr
        ty = ir.ArrayType(PTR, MR)
        g = ir.GlobalVariable(self.m, ty, name=f"{self.name}.{tag}")
        g.linkage = "internal"
        g.global_constant = True
        g.initializer = ir.Constant(ty, [PtrRef(kerns.get(r, fallback)) for r in range(MR)])
        return g

    def emit(self) -> ir.Function:
        plan, VL, N = self.plan, self.VL, self.N
        fn = self.new_fn(self.name, [PTR, PTR, PTR, PTR, I64, I64, I64, I64], internal=False, small=True)
        A, B, C, bias, tb, te, M, K = fn.args
        b = ir.IRBuilder(fn.append_basic_block("entry"))
        biasp = bias if self.bias else C
        if plan.kernel == "empty":
            b.ret_void()
            return fn
        T = self.tasks(b, M, K)
        if plan.kernel == "outer":  # K == 1: C (+)= a b^T row by row, rows split over the tasks
            m0 = b.udiv(b.mul(tb, M), T)
            m1 = b.udiv(b.mul(te, M), T)
            sai = c64(1) if self.trans_a else K
            b.call(self.shared.outer_kernel(False, "col" if self.bias else "none", False),
                   [A, sai, B, C, c64(N), biasp, m0, m1, c64(N)])
            b.ret_void()
            return fn
        full, nt, mt, co, NR, lanes_tail = self._tile_kernels()
        flags = UK_BIAS_COL if self.bias else 0
        dot = plan.kernel == "dot"
        sai, sak = (c64(1), M) if self.trans_a else (K, c64(1))
        sbk, sbj = (c64(1), K) if self.trans_b else (c64(N), c64(1))
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
        MC = plan.mc or ceil_div(self.nominal.M, plan.mr) * plan.mr
        if dot:  # dot plans: one M block of the whole (fixed) M
            MC = ceil_div(int(self.M), plan.mr) * plan.mr
        vals = dict(M=M, N=c64(N), K=K, sai=sai, sak=sak, sbk=sbk, sbj=sbj, ldc=c64(N), MR=c64(plan.mr),
                    NR=c64(NR), KC=kc, NC=c64(plan.nc or ceil_div(N, NR) * NR), MC=c64(MC), T=T,
                    units=self._units(b, M), split_m=c64(int(plan.split == "m")),
                    pack=c64({"": 0, "copy": 1, "trans": 2}[plan.pack]),
                    pstride=sbk if plan.pack == "copy" else sbj, kstride=kstride, flags=c64(flags),
                    lanes_tail=c64(lanes_tail), bias_mode=c64(1 if self.bias else 0), nkb=nkb, VL=c64(VL),
                    packa=c64(int(plan.pack_a)), pastride=sak if self.nominal.sai == 1 else sai)
        sty = prm_type()
        prm = b.alloca(sty, name="prm")
        prm.align = 8
        prm.type = PTR
        for i, f in enumerate(PRM):
            b.store(vals[f], b.gep(prm, [ir.Constant(I32, 0), ir.Constant(I32, 0), ir.Constant(I32, i)],
                                   inbounds=True, source_etype=sty))
        rem = b.urem(M, c64(plan.mr))
        edge = b.load(b.gep(self._table(mt, full, "mt"), [c64(0), rem], inbounds=True,
                            source_etype=ir.ArrayType(PTR, plan.mr)), typ=PTR)
        corner = b.load(b.gep(self._table(co, nt, "co"), [c64(0), rem], inbounds=True,
                              source_etype=ir.ArrayType(PTR, plan.mr)), typ=PTR)
        ptrs = [PtrRef(full), PtrRef(nt), edge, corner,
                PtrRef(packfn) if packfn is not None else ir.Constant(PTR, None),
                PtrRef(packafn) if packafn is not None else ir.Constant(PTR, None)]
        for i, v in enumerate(ptrs):
            b.store(v, b.gep(prm, [ir.Constant(I32, 0), ir.Constant(I32, 1), ir.Constant(I32, i)],
                             inbounds=True, source_etype=sty))
        b.call(self.shared.driver(), [A, B, C, biasp, tb, te, prm, buf, abuf])
        b.ret_void()
        return fn


def dynamic_stack_bytes(g: DynamicGemm) -> int:
    """Bytes of packing buffers the function allocates on the stack."""
    plan, VL = g.plan, g.VL
    nr = plan.nv * VL
    out = (plan.kc * plan.nc + VL * nr) * elem_size(g.dt) if plan.pack else 0
    return out + (abuf_elems(plan.mc, plan.kc, plan.mr, VL) * elem_size(g.dt) if plan.pack_a else 0)


def emit_dynamic_matmul(module: ir.Module, name: str, dtype: str, M, N, K, trans_a: bool = False,
                        trans_b: bool = False, bias: bool = False, threads: Optional[int] = None) -> DynamicGemm:
    """Emit the dynamic product into ``module`` (see the module docstring); returns its :class:`DynamicGemm`."""
    from symdiff.codegen.target import default_threads
    g = DynamicGemm(module, name, dtype, M, N, K, trans_a, trans_b, bias,
                    default_threads() if threads is None else threads)
    g.emit()
    return g


__all__ += ["emit_dynamic_matmul", "dynamic_stack_bytes"]
