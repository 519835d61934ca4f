"""Matrix-product kernels emitted as LLVM IR with llvmlite's IRBuilder (no external BLAS).

``emit_matmul`` adds to a module one external function

    void name(ptr A, ptr B, ptr C, ptr bias, i64 task_begin, i64 task_end)

computing ``C (+)= op(A) @ op(B)`` (then optionally ``+ bias[j]`` and ``max(., 0)``) for the
tasks ``[task_begin, task_end)`` of an ``n_tasks``-way split of the product.  Tasks write
disjoint parts of C and share no written memory (packing buffers are allocas in the entry
function), so disjoint task ranges may run concurrently on different threads.

A product is described by element strides

    op(A)[i, k] = A[i*sai + k*sak]     op(B)[k, j] = B[k*sbk + j*sbj]     C[i, j] = C[i*ldc + j]

and planned at emit time from its static shape: kernel family, register tile, cache blocking
(KC, NC, MC), packing, task split.  The plan (sizes, strides, blocking, the chosen kernels) is
baked into the product's entry function and an internal constant parameter block
``name.prm``; the code that does the work is shared by all products of a module and of a
dtype, taking those values as arguments, so that a model with many GEMMs compiles its few
kernels once (functions ``sdgemm.<f32|f64>.*``, internal):

* ``uk<MR>x<NV>``: register-blocked micro-kernel (GotoBLAS style).  An MR x NV*VL tile of C
  lives in MR*NV vector accumulators (VL = 16 floats / 8 doubles: one zmm register); per k it
  loads NV vectors of a row of op(B), broadcasts MR scalars of op(A) and issues ``llvm.fmuladd`` (FMA)
  on <VL x T>; k unrolled by 2.  The last vector is masked (``llvm.masked.load/store``) for
  the N edge; edge tiles use smaller MR/NV variants.  A branch-free epilogue adds the old C
  (later K blocks / accumulate), the bias and applies relu.  When op(B) is packed, op(A) is
  packed too (``packa<MR>`` copy for A stored K x M, ``packar<MR>`` VL x VL transposes for A
  stored M x K) into MR-row panels (element (r, k) at k*MR + r) and the kernel variant ``pa``
  reads it with constant strides: one pointer and constant displacements (the runtime-stride
  form made LLVM chain an add per row and k, ~15% of the FMA rate).  Otherwise op(A) is read
  in place (with a software prefetch for the far-strided trans_a case).  Variant ``pb``: B
  loads unmasked (packed zero-padded panels, or tiles without an N edge).
* ``packcopy<NV>`` / ``packtrans<NV>``: op(B) packed per (KC x NC) block into NV*VL-wide,
  64-byte aligned panels: a copy when op(B) rows are contiguous, in-register VL x VL
  transposes (shufflevector butterflies) when B is stored k-contiguous (``trans_b``).  Small
  M reads op(B) in place instead (GEMV-like shapes, with wide 1 x 16-vector tiles).
* ``dk<MR>x<NR>``: for small M with k-contiguous op(A) rows and op(B) columns (batch-1
  ``x @ W^T``; with 16-lane vectors up to 32 rows when K >= 16 M: a conv-weight gradient): MR x NR dot
  products accumulate as vectors along k and are reduced by a transposing shuffle tree.
* ``outer<acc><bias><relu>``: K == 1 products (C (+)= a b^T, batch-1 weight gradients): row by
  row, a broadcast times b, epilogue fused; store-bound, split over rows in 2 tasks when large.
* ``driver``: the loop nest (tasks, NC / KC / MC blocks, panels, tiles) calling the above
  through the function pointers of the parameter block.  A product that is a single tile
  calls its kernel directly from the entry function.

A product with N == 1 and a contiguous C column is computed as its transpose
(C^T = op(B)^T op(A)^T), which turns a matrix-vector product into a 1-row one.

Files: ``gemm/plan.py`` (tuning constants and the planner, pure Python), ``gemm/ir.py`` (IR helpers),
``gemm/kernels.py`` (the shared functions above), this file (the per-product entry and ``emit_matmul``).
"""
from __future__ import annotations

from typing import Optional

import numpy as np
from llvmlite import ir

from symdiff.codegen.llvm.gemm.ir import PRM, PRM_PTRS, I32, I64, PTR, c64, Kit, prm_type, PtrRef
from symdiff.codegen.gather import increasing, unit_run_share
from symdiff.codegen.llvm.gemm.gather import GatherPackers, table_pad
from symdiff.codegen.llvm.gemm.kernels import SharedKernels
from symdiff.codegen.llvm.types import constant_array
from symdiff.codegen.llvm.gemm.plan import (UK_BIAS_COL, UK_BIAS_ROW, UK_EPI, UK_LOAD_C, UK_RELU, GemmInfo, abuf_elems, ceil_div,
                        elem_size, norm_dtype, Plan, make_plan, Problem, make_problem, vec_len, plan_matmul)

__all__ = ["GemmInfo", "emit_matmul", "gather_mode", "plan_matmul"]


# ----------------------------------------------------------------------------- per-product entry
class _Gemm(Kit):
    def __init__(self, module: ir.Module, name: str, p: Problem, plan: Plan, b_offsets: Optional[tuple] = None):
        super().__init__(module, p.dtype)
        self.name = name
        self.b_offsets = b_offsets
        self.p = p
        self.plan = plan
        self.shared = SharedKernels(module, p.dtype)

    def kernels(self):
        """(full, N-edge, M-edge, corner) tile kernels, and the static tile geometry."""
        p, plan, VL, sh = self.p, self.plan, self.VL, self.shared
        MR = plan.mr
        if plan.kernel == "dot":
            NR = plan.nv
            ntail, mtail = p.N % NR, p.M % MR

            def k(mr, nr):
                return sh.dot_kernel(mr, nr, plan.ks)
            return self._used(NR, (MR, NR), (MR, ntail), (mtail, NR), (mtail, ntail), k), NR, VL
        NR = plan.nv * VL
        ntail, mtail = p.N % NR, p.M % MR
        nv_t = ceil_div(ntail, VL)

        def k(mr, nv, whole):
            # whole: every vector of the tile is full, B loads need no mask (packed B: never)
            return sh.row_ukernel(mr, nv, plan.ks, plan.unroll, pa=plan.pack_a,
                                  pb=bool(plan.pack) or whole)
        kerns = self._used(NR, (MR, plan.nv, True), (MR, nv_t, False), (mtail, plan.nv, True), (mtail, nv_t, False), k)
        return kerns, NR, (ntail % VL or VL)

    def _used(self, NR: int, full: tuple, ntail: tuple, mtail: tuple, corner: tuple, make) -> tuple:
        """The (full, N-edge, M-edge, corner) tile kernels, ``make(*shape)`` called only for the tiles
        the product has (a product narrower than one panel has no full tile, one without an M edge no
        M-edge tile ...): the shared functions a model compiles are the ones it calls. A slot without
        tiles points at a kernel of the product that exists (the driver never calls it)."""
        p, MR = self.p, self.plan.mr
        has_n, has_m = (p.N >= NR, p.N % NR > 0), (p.M >= MR, p.M % MR > 0)   # (whole, edge) along each axis
        shapes = (full, ntail, mtail, corner)
        used = [has_m[m] and has_n[n] for m in (0, 1) for n in (0, 1)]
        made = {i: make(*shapes[i]) for i in range(4) if used[i]}
        some = next(iter(made.values()))
        return tuple(made.get(i, some) for i in range(4))

    def emit(self) -> ir.Function:
        p, plan, VL = self.p, self.plan, self.VL
        fn = self.new_fn(self.name, [PTR, PTR, PTR, PTR, I64, I64], internal=False, small=True)
        A, B, C, bias, tb, te = fn.args
        if p.transposed:
            A, B = B, A
        b = ir.IRBuilder(fn.append_basic_block("entry"))
        if plan.kernel == "empty":
            b.ret_void()
            return fn
        if plan.kernel == "outer":
            T = plan.n_tasks
            m0 = b.udiv(b.mul(tb, c64(p.M)), c64(T))
            m1 = b.udiv(b.mul(te, c64(p.M)), c64(T))
            biasp = bias if p.bias != "none" else C
            b.call(self.shared.outer_kernel(p.accumulate, p.bias, p.relu),
                   [A, c64(p.sai), B, C, c64(p.ldc), biasp, m0, m1, c64(p.N)])
            b.ret_void()
            return fn
        kerns, NR, lanes_tail = self.kernels()
        flags = ((UK_BIAS_COL if p.bias == "col" else 0) | (UK_BIAS_ROW if p.bias == "row" else 0)
                 | (UK_RELU if p.relu else 0) | (UK_LOAD_C if p.accumulate else 0))
        biasp = bias if p.bias != "none" else C          # never read when there is no bias
        dot = plan.kernel == "dot"
        kstride = p.sbj if dot else (NR if plan.pack else p.sbk)
        nkb = 1 if (dot or p.K == 0) else ceil_div(p.K, plan.kc)
        if plan.n_tasks == 1 and p.M <= plan.mr and p.N <= NR and not plan.pack:
            # One tile: call its kernel directly (tiny products: minimal overhead).
            kern = kerns[(0 if p.M == plan.mr else 2) + (0 if p.N == NR else 1)]
            with b.if_then(b.icmp_signed("<", tb, te)):
                b.call(kern, [A, c64(p.sai), c64(p.sak), B, c64(kstride), C, c64(p.ldc), biasp,
                              c64(p.K), c64(VL if p.N == NR else lanes_tail),
                              ir.Constant(I32, flags | UK_EPI)])
            b.ret_void()
            return fn
        if plan.pack:
            fn.attributes.add('"probe-stack"="inline-asm"')
            buf = b.alloca(ir.ArrayType(self.ety, plan.kc * plan.nc + VL * NR), name="bpack")
            buf.align = 64
            buf.type = PTR
            gp = GatherPackers(self.m, p.dtype)
            packfn = {"copy": self.shared.pack_copy, "trans": self.shared.pack_trans, "grows": gp.pack_gather_rows,
                      "gcols": gp.pack_gather_cols}[plan.pack](plan.nv)
        else:
            buf = ir.Constant(PTR, None)
            packfn = ir.Constant(PTR, None)
        if plan.pack_a:
            abuf = b.alloca(ir.ArrayType(self.ety, abuf_elems(plan.mc, plan.kc, plan.mr, VL)),
                            name="apack")
            abuf.align = 64
            abuf.type = PTR
            packafn = (self.shared.pack_a_copy(plan.mr) if p.sai == 1
                       else self.shared.pack_a_rows(plan.mr))
        else:
            abuf = ir.Constant(PTR, None)
            packafn = ir.Constant(PTR, None)
        vals = dict(M=p.M, N=p.N, K=p.K, sai=p.sai, sak=p.sak, sbk=p.sbk, sbj=p.sbj, ldc=p.ldc,
                    MR=plan.mr, NR=NR, KC=plan.kc or max(p.K, 1),
                    # dot plans leave kc/nc/mc at 0: one block each (kc 1 would drop k >= 1, a 0 step
                    # would loop forever in the driver)
                    NC=plan.nc or ceil_div(p.N, NR) * NR, MC=plan.mc or ceil_div(p.M, plan.mr) * plan.mr,
                    T=plan.n_tasks,
                    units=plan.units, split_m=int(plan.split == "m"),
                    pack={"": 0, "copy": 1, "trans": 2, "grows": 3, "gcols": 4}[plan.pack],
                    pstride=p.sbk if plan.pack == "copy" else p.sbj, kstride=kstride, flags=flags,
                    lanes_tail=lanes_tail, bias_mode={"none": 0, "col": 1, "row": 2}[p.bias],
                    nkb=nkb, VL=VL, packa=int(plan.pack_a),
                    pastride=p.sak if p.sai == 1 else p.sai, edge_split=0, gather=int(bool(p.gather)))
        btab = ir.Constant(PTR, None)
        if p.gather:  # the offset tables: K row offsets, N column offsets, then zeros (gemm/gather.py)
            ents = list(self.b_offsets[0]) + list(self.b_offsets[1]) + [0] * table_pad(plan.nv, VL)
            btab = constant_array(self.m, self.name + ".btab", np.asarray(ents, np.int32), "int32")
            btab.type = PTR
        sty = prm_type()
        prm = ir.GlobalVariable(self.m, sty, name=self.name + ".prm")
        prm.linkage = "internal"
        prm.global_constant = True
        prm.align = 8
        prm.type = PTR
        prm.initializer = ir.Constant(sty, [
            ir.Constant(ir.ArrayType(I64, len(PRM)), [vals[f] for f in PRM]),
            ir.Constant(ir.ArrayType(PTR, PRM_PTRS), [PtrRef(f) for f in list(kerns) + [packfn, packafn]]
                        + [ir.Constant(PTR, None)] * (PRM_PTRS - 7) + [btab])])
        b.call(self.shared.driver(), [A, B, C, biasp, tb, te, prm, buf, abuf])
        b.ret_void()
        return fn


def emit_matmul(module: ir.Module, name: str, dtype: str, M: int, N: int, K: int,
                trans_a: bool = False, trans_b: bool = False, accumulate: bool = False,
                lda: Optional[int] = None, ldb: Optional[int] = None, ldc: Optional[int] = None,
                bias: bool = False, relu: bool = False, threads: Optional[int] = None,
                b_offsets: Optional[tuple] = None) -> GemmInfo:
    """Add ``void name(ptr A, ptr B, ptr C, ptr bias, i64 task_begin, i64 task_end)`` to
    ``module``: C = op(A) @ op(B) (C += ... with accumulate), then C[i, j] += bias[j] and
    max(., 0) when asked, for tasks [task_begin, task_end) of GemmInfo.n_tasks (at most
    ``threads``, default :func:`symdiff.codegen.target.default_threads`).

    op(A) is A (M x K, row stride lda, default K) or, with trans_a, A stored K x M (row
    stride lda, default M) read transposed in place; likewise op(B) (K x N, or N x K with
    trans_b; ldb).  C is M x N with row stride ldc (default N).  The bias pointer is ignored
    (may be null) without bias.  Helper functions are internal, named ``sdgemm.*`` and shared
    by all products emitted into the same module; ``name.prm`` is an internal constant.

    ``b_offsets = (rk, cj)``: op(B)[k, j] is B[rk[k] + cj[j]] (K and N integer offsets, one of the two
    strictly increasing; ldb and trans_b do not apply): an implicit-GEMM operand such as an im2col view,
    packed by gathering (gemm/gather.py)."""
    dtype = norm_dtype(dtype)
    M, N, K = int(M), int(N), int(K)
    if min(M, N, K) < 0:
        raise ValueError("negative dimension")
    if name in module.globals:
        raise ValueError(f"{name!r} already exists in the module")
    gather = gather_mode(b_offsets, K, N) if b_offsets is not None else ""
    p = make_problem(dtype, M, N, K, trans_a, trans_b, accumulate, lda, ldb, ldc, bias, relu, gather)
    plan = make_plan(p, frozenset(g.name for g in module.functions if g.name.startswith("sdgemm.")), threads)
    _Gemm(module, name, p, plan, b_offsets).emit()
    VL = vec_len(dtype)
    nr = plan.nv if plan.kernel in ("dot", "outer") else plan.nv * VL
    stack = (plan.kc * plan.nc + VL * plan.nv * VL) * elem_size(dtype) if plan.pack else 0
    stack += abuf_elems(plan.mc, plan.kc, plan.mr, VL) * elem_size(dtype) if plan.pack_a else 0
    return GemmInfo(name=name, n_tasks=plan.n_tasks, flops=2 * M * N * K, dtype=dtype, M=M, N=N, K=K,
                    kernel=plan.kernel, mr=plan.mr, nr=nr, packed_b=bool(plan.pack),
                    transposed=p.transposed, split=plan.split, stack_bytes=stack, gathered=gather)


def gather_mode(b_offsets: tuple, K: int, N: int) -> str:
    """"rows" (pack along the column offsets' unit runs) or "cols" (along the row offsets'), for tables
    that fit i32 offsets; ValueError for tables no packer reads correctly."""
    rk, cj = (list(map(int, t)) for t in b_offsets)
    if len(rk) != K or len(cj) != N:
        raise ValueError(f"offset tables of {len(rk)} and {len(cj)} entries for a {K} x {N} op(B)")
    if min(rk + cj, default=0) < 0 or max(rk, default=0) + max(cj, default=0) >= 2 ** 31:
        raise ValueError("gathered op(B) offsets must be in [0, 2**31)")
    ok_rows, ok_cols = increasing(cj), increasing(rk)
    if not (ok_rows or ok_cols):
        raise ValueError("a gathered op(B) needs strictly increasing row or column offsets")
    if ok_rows and (not ok_cols or unit_run_share(cj) >= unit_run_share(rk)):
        return "rows"
    return "cols"
