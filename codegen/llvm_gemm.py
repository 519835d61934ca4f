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
  loads NV vectors of a row of op(B), broadcasts MR scalars of op(A) and issues ``llvm.fma``
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
  ``x @ W^T``): MR x NR dot products accumulate as vectors along k and are reduced by a
  transposing shuffle tree.
* ``outer<acc><bias><relu>``: K == 1 products (C (+)= a b^T, batch-1 weight gradients): row by
  row, a broadcast times b, epilogue fused; store-bound, split over rows in 2 tasks when large.
* ``driver``: the loop nest (tasks, NC / KC / MC blocks, panels, tiles) calling the above
  through the function pointers of the parameter block.  A product that is a single tile
  calls its kernel directly from the entry function.

A product with N == 1 and a contiguous C column is computed as its transpose
(C^T = op(B)^T op(A)^T), which turns a matrix-vector product into a 1-row one.
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Optional, Sequence

from llvmlite import ir
from llvmlite.ir.values import FunctionAttributes

__all__ = ["GemmInfo", "emit_matmul", "plan_matmul"]

I1 = ir.IntType(1)
I32 = ir.IntType(32)
I64 = ir.IntType(64)
PTR = ir.PointerType()
VOID = ir.VoidType()
_ARG_TYPES = {"ptr": PTR, "i64": I64, "i32": I32}  # argument types of the shared functions

# ----------------------------------------------------------------------------- tuning
# Measured on the development machine (x86-64 AVX-512, 48 KiB L1d, 2 MiB L2 per core).
# At most 2 tasks: the pool has 2 threads, and each task of an N split packs all of op(A)
# again (4 tasks spent ~16% of (64,784,256) in A packing).
#   tiles: candidate register tiles (rows MR x vectors NV), in order of preference; products
#   with fewer rows than MR use one row-tile (_SMALL_NV); KC/NC/MC: cache blocking;
#   U: k unroll of the micro-kernel.
_CFG = {
    "float32": dict(MR=8, KC=256, NC=512, MC=256, U=2, tiles=[(8, 3), (12, 2), (6, 4)]),
    "float64": dict(MR=8, KC=256, NC=256, MC=256, U=2, tiles=[(8, 3), (12, 2), (6, 4)]),
}
_PACK_MIN_M = 16           # pack op(B) (when its rows are contiguous) from this many rows on
_SMALL_NV = {1: 16, 2: 8, 3: 6, 4: 5, 5: 4, 6: 4, 7: 3}   # vectors per tile row when M < MR
_DOT_MAX_M = 8             # dot kernel (k-contiguous A and B) up to this many rows
_SERIAL_FLOPS = 2_000_000  # below this the product is one task
_TASK_FLOPS = 1_000_000    # minimum flops per task when splitting
_MAX_TASKS = 2            # the pool has 2 threads; more tasks repeat the op(A) packing per task
_MAX_STACK = 1 << 20       # bytes of packing buffer per call, at most
_PACK_A = True             # pack op(A) into MR-row panels when B is packed (constant-stride kernels)
_PACK_A_BYTES = 256 << 10  # its buffer, at most
_OUTER_TASK_BYTES = 256 << 10   # K == 1 products: two tasks from this much of C on
_PF_A_DIST = 16            # micro-kernel: prefetch op(A) this many k steps ahead (0: off)

# micro-kernel flags
UK_LOAD_C, UK_EPI, UK_BIAS_COL, UK_BIAS_ROW, UK_RELU = 1, 2, 4, 8, 16


@dataclass(frozen=True)
class GemmInfo:
    name: str            # the emitted function's name
    n_tasks: int         # independent tasks (>= 1)
    flops: int           # 2*M*N*K
    dtype: str = "float32"
    M: int = 0
    N: int = 0
    K: int = 0
    kernel: str = "row"  # "row" | "dot" | "outer" | "empty"
    mr: int = 0          # register tile rows
    nr: int = 0          # register tile columns
    packed_b: bool = False
    transposed: bool = False   # computed as C^T = op(B)^T op(A)^T
    split: str = "n"           # axis the tasks split: "n" (columns) or "m" (rows)
    stack_bytes: int = 0       # alloca'd packing buffer


class _FnAttrs(FunctionAttributes):
    """llvmlite's FunctionAttributes plus string attributes ('"key"="value"')."""

    def add(self, name):
        if name.startswith('"'):
            return set.add(self, name)
        return super().add(name)


def _c64(v: int) -> ir.Constant:
    return ir.Constant(I64, int(v))


def _cdiv(a: int, b: int) -> int:
    return -(-a // b)


def _ival(v) -> ir.Value:
    return _c64(v) if isinstance(v, int) else v


def _vl(dtype: str) -> int:
    return 16 if dtype == "float32" else 8


def _esize(dtype: str) -> int:
    return 4 if dtype == "float32" else 8


# ----------------------------------------------------------------------------- plan
@dataclass(frozen=True)
class _Prob:
    dtype: str
    M: int
    N: int
    K: int
    sai: int
    sak: int
    sbk: int
    sbj: int
    ldc: int
    accumulate: bool
    bias: str          # "none" | "col" (bias[j]) | "row" (bias[i])
    relu: bool
    transposed: bool


@dataclass(frozen=True)
class _Plan:
    kernel: str        # "row" | "dot" | "empty"
    mr: int = 1
    nv: int = 1        # vectors per tile row (row kernel) / tile columns (dot kernel)
    ks: int = 1        # independent accumulator sets along k
    unroll: int = 1    # k unroll of the micro-kernel main loop (multiple of ks)
    kc: int = 0
    nc: int = 0
    mc: int = 0
    pack: str = ""     # "" | "copy" | "trans"   (op(B) packing)
    pack_a: bool = False   # copy op(A) (stored K x M) into MR-row panels per (MC x KC) block
    split: str = "n"
    units: int = 1     # number of split units (NR panels / MR row blocks)
    n_tasks: int = 1


def _problem(dtype, M, N, K, trans_a, trans_b, accumulate, lda, ldb, ldc, bias, relu) -> _Prob:
    if trans_a:
        lda = M if lda is None else lda
        sai, sak = 1, lda
    else:
        lda = K if lda is None else lda
        sai, sak = lda, 1
    if trans_b:
        ldb = K if ldb is None else ldb
        sbk, sbj = 1, ldb
    else:
        ldb = N if ldb is None else ldb
        sbk, sbj = ldb, 1
    ldc = N if ldc is None else ldc
    for nm, ld, minimum in (("lda", lda, M if trans_a else K), ("ldb", ldb, K if trans_b else N),
                            ("ldc", ldc, N)):
        if ld < minimum:
            raise ValueError(f"{nm}={ld} is smaller than the row length {minimum}")
    bmode = "col" if bias else "none"
    transposed = False
    if N == 1 and M > 1 and ldc == 1 and K > 0:
        # C is a contiguous column: compute C^T (1 x M) = op(B)^T (1 x K) @ op(A)^T (K x M).
        M, N = 1, M
        sai, sak, sbk, sbj = 0, sbk, sak, sai
        ldc = N
        bmode = "row" if bias else "none"   # bias[0] added to every element
        transposed = True
    # Degenerate dimensions: strides along a length-1 axis are never used.
    if M == 1:
        sai = 0
    if N == 1:
        sbj = 0
    if K == 1:
        sak = sbk = 0
    return _Prob(dtype, M, N, K, sai, sak, sbk, sbj, ldc, bool(accumulate), bmode, bool(relu),
                 transposed)


def _choose_tasks(flops: int, units: int) -> int:
    if flops < _SERIAL_FLOPS or units < 2:
        return 1
    t = min(_MAX_TASKS, units, max(1, flops // _TASK_FLOPS))
    if t > 2 and t % 2:
        t -= 1
    return max(1, t)


def _plan(p: _Prob, existing: frozenset = frozenset()) -> _Plan:
    """Kernel, register tile, cache blocking and task split for a problem.  existing: names
    of functions already in the module (kernels shared with earlier products)."""
    M, N, K = p.M, p.N, p.K
    if M == 0 or N == 0:
        return _Plan("empty")
    VL = _vl(p.dtype)
    cfg = _CFG[p.dtype]
    flops = 2 * M * N * K
    if K == 1 and (p.sbj == 1 or N == 1):
        # Outer product: C (+)= a b^T, row by row (store-bound; no tiles, no packing).
        T = 2 if M >= 2 and M * N * _esize(p.dtype) >= _OUTER_TASK_BYTES else 1
        return _Plan("outer", mr=1, nv=N, split="m", units=M, n_tasks=T)
    b_rows = p.sbj in (0, 1)                        # op(B) rows contiguous
    a_kcont = p.sak in (0, 1)
    b_kcont = p.sbk in (0, 1)
    if K > 0 and not b_rows and a_kcont and b_kcont and M <= _DOT_MAX_M:
        # Dot-product kernel: vectors along k.
        mr = min(M, 4)
        nr = max(1, min(N, VL // mr))
        ks = 2 if mr * nr < 8 and K >= 2 * VL else 1
        if N >= 2 * nr:
            split, units = "n", _cdiv(N, nr)
        else:
            split, units = "m", _cdiv(M, mr)
        return _Plan("dot", mr=mr, nv=nr, ks=ks, unroll=ks, split=split, units=units,
                     n_tasks=_choose_tasks(flops, units))
    # Row kernel: try the candidate register tiles, keep the one with the shortest modelled
    # time on two threads (edge tiles and the task split included).
    if M >= cfg["MR"]:
        tiles = cfg["tiles"]
    else:
        tiles = [(M, _SMALL_NV.get(M, 2))]
    best = None
    for mr, nv in tiles:
        plan = _row_plan(p, mr, nv)
        cost = _row_cost(p, plan)
        # Compile time: a tile whose kernels the module already has wins within 5%.
        new = len(_row_kernel_names(p, plan) - existing)
        cost *= 1.0 + 0.05 * (new > 0)
        if best is None or cost < best[0] * 0.97:     # ties: earlier (preferred) tile
            best = (cost, plan)
    return best[1]


def _row_kernel_names(p: _Prob, plan: _Plan) -> set:
    """Names of the shared functions a row plan uses (see _Shared)."""
    VL = _vl(p.dtype)
    tag = "f32" if p.dtype == "float32" else "f64"
    NR = plan.nv * VL
    mrs = {plan.mr} | ({p.M % plan.mr} if p.M % plan.mr else set())
    sfx = "pa" if plan.pack_a else ""
    pre = f"sdgemm.{tag}.uk"
    names = {f"{pre}{m}x{plan.nv}.k{plan.ks}u{plan.unroll}{sfx}pb" for m in mrs}   # whole tiles
    if p.N % NR:                                                                   # N edge
        tail = "pb" if plan.pack else ""
        names |= {f"{pre}{m}x{_cdiv(p.N % NR, VL)}.k{plan.ks}u{plan.unroll}{sfx}{tail}" for m in mrs}
    if plan.pack:
        names.add(f"sdgemm.{tag}.pack{plan.pack}{plan.nv}")
    return names


def _tile_cycles(mr: int, nv: int) -> float:
    """Modelled cycles per k step of an mr x nv tile: FMA throughput (2 per cycle), or the FMA
    latency (4 cycles) over too few independent accumulators."""
    return max(mr * nv / 2.0, 4.0) + 0.5


def _row_cost(p: _Prob, plan: _Plan) -> float:
    """Modelled makespan on two threads taking halves of the task range (cycles per k)."""
    VL = _vl(p.dtype)
    NR = plan.nv * VL
    ntail, mtail = p.N % NR, p.M % plan.mr
    nv_t = _cdiv(ntail, VL)
    full_rows = p.M // plan.mr
    col_cost = [full_rows * _tile_cycles(plan.mr, plan.nv)
                + (_tile_cycles(mtail, plan.nv) if mtail else 0.0)] * (p.N // NR)
    if ntail:
        col_cost.append(full_rows * _tile_cycles(plan.mr, nv_t) + (_tile_cycles(mtail, nv_t) if mtail else 0.0))
    row_cost = [len(col_cost) and sum(col_cost) / max(p.M, 1) * plan.mr] * full_rows
    if mtail:
        row_cost.append(sum(col_cost) / max(p.M, 1) * mtail)
    units = col_cost if plan.split == "n" else row_cost
    T = plan.n_tasks
    if T == 1:
        return sum(units)
    task = [sum(units[t * plan.units // T:(t + 1) * plan.units // T]) for t in range(T)]
    half = (T + 1) // 2
    return max(sum(task[:half]), sum(task[half:]))


def _abuf_elems(mc: int, kc: int, mr: int, VL: int) -> int:
    """Elements of the op(A) packing buffer (slack for pack_a_rows' spilling stores)."""
    return mc * max(kc, 1) + VL * (mr + 1)


def _row_plan(p: _Prob, mr: int, nv: int) -> _Plan:
    M, N, K = p.M, p.N, p.K
    VL = _vl(p.dtype)
    cfg = _CFG[p.dtype]
    nv = max(1, min(nv, _cdiv(N, VL)))
    NR = nv * VL
    chains = mr * nv
    ks = 1 if chains >= 8 else (2 if chains >= 4 else 4)
    ks = max(1, min(ks, K))
    unroll = max(ks, cfg["U"])
    if K == 0:
        pack = ""
    elif p.sbj not in (0, 1):
        pack = "trans"
    elif M >= _PACK_MIN_M and N > NR:
        pack = "copy"
    else:
        pack = ""
    if pack and K > cfg["KC"] * 5 // 4:
        nb = _cdiv(K, cfg["KC"])
        kc = _cdiv(_cdiv(K, nb), unroll) * unroll
    else:
        kc = K
    # op(A) stored K x M: each k step of a tile reads a far-strided line; copy it into panels.
    pack_a = (bool(pack) and M >= _PACK_MIN_M and _PACK_A and K > 1
              and (p.sai == 1 or (mr <= VL and p.sak == 1)))
    esz = _esize(p.dtype)
    mc = cfg["MC"] if not pack_a else min(cfg["MC"], _PACK_A_BYTES // (esz * max(kc, 1)))
    mc = max(mr, mc // mr * mr)
    mc = min(mc, _cdiv(M, mr) * mr)
    abytes = _abuf_elems(mc, kc, mr, VL) * esz if pack_a else 0
    if pack:
        nc = cfg["NC"] // NR * NR
        ncmax = ((_MAX_STACK - abytes) // (esz * max(kc, 1)) - VL) // NR * NR
        nc = max(NR, min(nc, ncmax, _cdiv(N, NR) * NR))
    else:
        nc = _cdiv(N, NR) * NR
    panels = _cdiv(N, NR)
    rowblocks = _cdiv(M, mr)
    if panels >= 2 and (panels >= rowblocks or pack):
        split, units = "n", panels
    elif rowblocks >= 2:
        split, units = "m", rowblocks
    else:
        split, units = "n", panels
    return _Plan("row", mr=mr, nv=nv, ks=ks, unroll=unroll, kc=kc, nc=nc, mc=mc, pack=pack,
                 pack_a=pack_a, split=split, units=units, n_tasks=_choose_tasks(2 * M * N * K, units))


def plan_matmul(dtype: str, M: int, N: int, K: int, trans_a: bool = False, trans_b: bool = False,
                lda: Optional[int] = None, ldb: Optional[int] = None, ldc: Optional[int] = None,
                accumulate: bool = False, bias: bool = False, relu: bool = False):
    """The (problem, plan) emit_matmul would use; for inspection and tests."""
    p = _problem(_norm_dtype(dtype), M, N, K, trans_a, trans_b, accumulate, lda, ldb, ldc, bias, relu)
    return p, _plan(p)


# ----------------------------------------------------------------------------- IR helpers
class _Kit:
    """IR building helpers for one module and element type."""

    def __init__(self, module: ir.Module, dtype: str):
        self.m = module
        self.dt = dtype
        self.tag = "f32" if dtype == "float32" else "f64"
        self.ety = ir.FloatType() if dtype == "float32" else ir.DoubleType()
        self.VL = _vl(dtype)
        self.esz = _esize(dtype)
        self.vty = ir.VectorType(self.ety, self.VL)
        self.mty = ir.VectorType(I1, self.VL)
        self.vzero = ir.Constant(self.vty, None)
        self.fzero = ir.Constant(self.ety, 0.0)

    # -- functions --------------------------------------------------------------------
    def new_fn(self, name: str, argtys: Sequence[ir.Type], internal: bool = True,
               small: bool = False) -> ir.Function:
        fn = ir.Function(self.m, ir.FunctionType(VOID, list(argtys)), name=name)
        attrs = _FnAttrs()
        attrs.add("nounwind")
        attrs.add('"prefer-vector-width"="512"')
        attrs.add('"min-legal-vector-width"="512"')
        if internal:
            attrs.add("noinline")
            fn.linkage = "internal"
        if small:
            # Loop control and calls only: keep LLVM from unrolling/unswitching (compile time).
            attrs.add("minsize")
            attrs.add("optsize")
        fn.attributes = attrs
        return fn

    def intrinsic(self, name: str, ret: ir.Type, args: Sequence[ir.Type]) -> ir.Function:
        fn = self.m.globals.get(name)
        if fn is None:
            fn = ir.Function(self.m, ir.FunctionType(ret, list(args)), name=name)
        return fn

    def vsuffix(self) -> str:
        return f"v{self.VL}f{8 * self.esz}"

    # -- values -----------------------------------------------------------------------
    def fma(self, b, x, y, z):
        if isinstance(x.type, ir.VectorType):
            f = self.intrinsic(f"llvm.fma.{self.vsuffix()}", self.vty, [self.vty] * 3)
        else:
            f = self.intrinsic(f"llvm.fma.f{8 * self.esz}", self.ety, [self.ety] * 3)
        return b.call(f, [x, y, z])

    def splat(self, b, s):
        v = b.insert_element(ir.Constant(self.vty, ir.Undefined), s, ir.Constant(I32, 0))
        return b.shuffle_vector(v, ir.Constant(self.vty, ir.Undefined),
                                ir.Constant(ir.VectorType(I32, self.VL), [0] * self.VL))

    def const_mask(self, lanes: int) -> ir.Constant:
        return ir.Constant(self.mty, [1 if i < lanes else 0 for i in range(self.VL)])

    def runtime_mask(self, b, n):
        """<VL x i1>: lane l < n (n an i64 value; <= 0 gives all false)."""
        vt = ir.VectorType(I64, self.VL)
        nv = b.insert_element(ir.Constant(vt, ir.Undefined), n, ir.Constant(I32, 0))
        nv = b.shuffle_vector(nv, ir.Constant(vt, ir.Undefined),
                              ir.Constant(ir.VectorType(I32, self.VL), [0] * self.VL))
        return b.icmp_signed("<", ir.Constant(vt, list(range(self.VL))), nv)

    # llvm.masked.load/store: declared with the explicit i32 alignment operand (LLVM <= 20
    # form, auto-upgraded by newer LLVM); if the module already declares the newer form
    # (alignment as a parameter attribute), calls follow that declaration.
    def mload(self, b, ptr, mask, align=None):
        f = self.intrinsic(f"llvm.masked.load.{self.vsuffix()}.p0", self.vty,
                           [PTR, I32, self.mty, self.vty])
        if len(f.function_type.args) == 3:
            c = b.call(f, [ptr, mask, self.vzero], arg_attrs={0: ()})
            c.arg_attributes[0].align = align or self.esz
            return c
        return b.call(f, [ptr, ir.Constant(I32, align or self.esz), mask, self.vzero])

    def mstore(self, b, val, ptr, mask, align=None):
        f = self.intrinsic(f"llvm.masked.store.{self.vsuffix()}.p0", VOID,
                           [self.vty, PTR, I32, self.mty])
        if len(f.function_type.args) == 3:
            c = b.call(f, [val, ptr, mask], arg_attrs={1: ()})
            c.arg_attributes[1].align = align or self.esz
            return
        b.call(f, [val, ptr, ir.Constant(I32, align or self.esz), mask])

    def vload(self, b, ptr, mask=None, align=None):
        """Full vector load, or masked (zero-filling) when mask is an <VL x i1> value."""
        if mask is None:
            return b.load(ptr, typ=self.vty, align=align or self.esz)
        return self.mload(b, ptr, mask, align)

    def vstore(self, b, val, ptr, mask=None, align=None):
        if mask is None:
            b.store(val, ptr, align=align or self.esz)
        else:
            self.mstore(b, val, ptr, mask, align)

    def sload(self, b, ptr):
        return b.load(ptr, typ=self.ety, align=self.esz)

    def prefetch(self, b, ptr, write=False):
        f = self.intrinsic("llvm.prefetch.p0", VOID, [PTR, I32, I32, I32])
        b.call(f, [ptr, ir.Constant(I32, int(write)), ir.Constant(I32, 3), ir.Constant(I32, 1)])

    def gep(self, b, ptr, idx):
        idx = _ival(idx)
        if isinstance(idx, ir.Constant) and idx.constant == 0:
            return ptr
        return b.gep(ptr, [idx], inbounds=True, source_etype=self.ety)

    def smin(self, b, x, y):
        x, y = _ival(x), _ival(y)
        return b.select(b.icmp_signed("<", x, y), x, y)

    # -- control flow -------------------------------------------------------------------
    @contextmanager
    def loop(self, b, start, stop, step=1, name: str = "i"):
        """for (i = start; i < stop; i += step) -- yields i (i64)."""
        start, stop = _ival(start), _ival(stop)
        pre = b.block
        hdr = b.append_basic_block(name + ".hdr")
        body = b.append_basic_block(name + ".body")
        end = b.append_basic_block(name + ".end")
        b.branch(hdr)
        b.position_at_end(hdr)
        i = b.phi(I64, name=name)
        i.add_incoming(start, pre)
        b.cbranch(b.icmp_signed("<", i, stop), body, end)
        b.position_at_end(body)
        yield i
        nxt = b.add(i, _ival(step))
        i.add_incoming(nxt, b.block)
        b.branch(hdr)
        b.position_at_end(end)

    def carried_loop(self, b, n_iter, init: list, body: Callable, name: str = "k") -> list:
        """Run body(b, it, vals) -> new vals for it in [0, n_iter); return the final vals.
        n_iter: an i64 value or a Python int."""
        if isinstance(n_iter, int):
            if n_iter <= 0:
                return list(init)
            n_iter = _c64(n_iter)
            guarded = False
        else:
            guarded = True
        pre = b.block
        lp = b.append_basic_block(name + ".loop")
        done = b.append_basic_block(name + ".done")
        if guarded:
            b.cbranch(b.icmp_signed(">", n_iter, _c64(0)), lp, done)
        else:
            b.branch(lp)
        b.position_at_end(lp)
        it = b.phi(I64, name=name + ".it")
        it.add_incoming(_c64(0), pre)
        phis = []
        for v in init:
            ph = b.phi(v.type)
            ph.add_incoming(v, pre)
            phis.append(ph)
        new = body(b, it, phis)
        nxt = b.add(it, _c64(1))
        last = b.block
        it.add_incoming(nxt, last)
        for ph, v in zip(phis, new):
            ph.add_incoming(v, last)
        b.cbranch(b.icmp_signed("<", nxt, n_iter), lp, done)
        b.position_at_end(done)
        if not guarded:
            return list(new)
        out = []
        for v0, v in zip(init, new):
            ph = b.phi(v.type)
            ph.add_incoming(v0, pre)
            ph.add_incoming(v, last)
            out.append(ph)
        return out

    # -- shuffles ---------------------------------------------------------------------
    def transpose(self, b, rows: list) -> list:
        """In-register transpose of VL vectors of VL lanes (log2(VL) butterfly stages)."""
        VL = self.VL
        rows = list(rows)
        bit = 1
        while bit < VL:
            lo_idx, hi_idx = [], []
            for lane in range(VL):
                if lane & bit:
                    lo_idx.append(VL + lane - bit)   # y[lane - bit]
                    hi_idx.append(VL + lane)         # y[lane]
                else:
                    lo_idx.append(lane)              # x[lane]
                    hi_idx.append(lane + bit)        # x[lane + bit]
            lo_m = ir.Constant(ir.VectorType(I32, VL), lo_idx)
            hi_m = ir.Constant(ir.VectorType(I32, VL), hi_idx)
            new = list(rows)
            for i in range(VL):
                if i & bit:
                    continue
                x, y = rows[i], rows[i + bit]
                new[i] = b.shuffle_vector(x, y, lo_m)
                new[i + bit] = b.shuffle_vector(x, y, hi_m)
            rows = new
            bit <<= 1
        return rows

    def reduce_many(self, b, vecs: list):
        """Horizontal sums of n = len(vecs) <= VL vectors: a <VL x T> vector whose lane q is
        the sum of vecs[q] (lanes >= n undefined).  Transposing shuffle tree: about 3 ops per
        pair and level instead of a full reduction per vector."""
        VL = self.VL
        n = len(vecs)
        und_idx = ir.Constant(ir.VectorType(I32, VL), [0] * VL)
        if n == 1:
            f = self.intrinsic(f"llvm.vector.reduce.fadd.{self.vsuffix()}", self.ety,
                               [self.ety, self.vty])
            s = b.call(f, [self.fzero, vecs[0]], fastmath=("reassoc",))
            return b.insert_element(ir.Constant(self.vty, ir.Undefined), s, ir.Constant(I32, 0))
        npad = 1
        while npad < n:
            npad *= 2
        assert npad <= VL
        # items: (vector, width, group size); groups stay in order of the original vectors.
        items = [(v, VL, VL) for v in vecs] + [(self.vzero, VL, VL)] * (npad - n)
        while len(items) > 1:
            nxt = []
            for (xv, W, g), (yv, _, _) in zip(items[0::2], items[1::2]):
                h = g // 2
                lo, hi = [], []
                for base in (0, W):
                    for q in range(W // g):
                        lo += [base + q * g + e for e in range(h)]
                        hi += [base + q * g + h + e for e in range(h)]
                mt = ir.VectorType(I32, W)
                s = b.fadd(b.shuffle_vector(xv, yv, ir.Constant(mt, lo)),
                           b.shuffle_vector(xv, yv, ir.Constant(mt, hi)))
                nxt.append((s, W, h))
            items = nxt
        v, W, g = items[0]
        while g > 1:
            h = g // 2
            lo = [q * g + e for q in range(W // g) for e in range(h)]
            hi = [q * g + h + e for q in range(W // g) for e in range(h)]
            mt = ir.VectorType(I32, W // 2)
            und = ir.Constant(v.type, ir.Undefined)
            v = b.fadd(b.shuffle_vector(v, und, ir.Constant(mt, lo)),
                       b.shuffle_vector(v, und, ir.Constant(mt, hi)))
            W, g = W // 2, h
        if W < VL:   # widen back to VL lanes
            v = b.shuffle_vector(v, ir.Constant(v.type, ir.Undefined),
                                 ir.Constant(ir.VectorType(I32, VL), [q if q < W else 0 for q in range(VL)]))
        return v


# ----------------------------------------------------------------------------- shared kernels
class _Shared(_Kit):
    """Functions shared by every product of one module and dtype (strides at run time).
    Their names encode all their static parameters, so they are found again in the module."""

    def _existing(self, name: str) -> Optional[ir.Function]:
        """The function if the module has it, or a declaration of it when the module says a compiled
        copy is available elsewhere (``module.sd_shared_available(name) -> [arg type] or None``:
        the JIT links cached objects of these functions instead of compiling them again)."""
        fn = self.m.globals.get(name)
        if isinstance(fn, ir.Function) and (fn.blocks or getattr(fn, "sd_external", False)):
            return fn
        available = getattr(self.m, "sd_shared_available", None)
        args = available(name) if available is not None else None
        if args is None:
            return None
        fn = ir.Function(self.m, ir.FunctionType(VOID, [_ARG_TYPES[t] for t in args]), name=name)
        fn.sd_external = True
        return fn

    def row_ukernel(self, mr: int, nv: int, ks: int, U: int, pa: bool = False,
                    pb: bool = False) -> ir.Function:
        """void uk(ptr a, i64 sai, i64 sak, ptr b, i64 sbk, ptr c, i64 ldc, ptr bias, i64 kc,
                   i64 lanes, i32 flags)

        acc[r, :] = sum_{k < kc} a[r*sai + k*sak] * b[k*sbk + 0 : nv*VL] for r < mr; the last
        vector of each row is limited to its first `lanes` lanes (masked loads/stores).
        flags: UK_LOAD_C add the old C; UK_EPI apply the epilogue: + bias[j] (UK_BIAS_COL, bias
        points at bias[j0]), + bias[r] (UK_BIAS_ROW, bias points at bias[i0]), max(., 0)
        (UK_RELU).  Then C[r*ldc + :] = acc.
        pa: op(A) packed (sai = 1, sak = mr as constants; the stride arguments are ignored): one
        pointer with constant displacements, no address chains.  pb: op(B) packed (zero-padded
        panels): B loads unmasked."""
        name = f"sdgemm.{self.tag}.uk{mr}x{nv}.k{ks}u{U}" + ("pa" if pa else "") + ("pb" if pb else "")
        fn = self._existing(name)
        if fn is not None:
            return fn
        VL = self.VL
        fn = self.new_fn(name, [PTR, I64, I64, PTR, I64, PTR, I64, PTR, I64, I64, I32])
        for i in (0, 3, 5, 7):
            fn.args[i].add_attribute("noalias")
        a, sai, sak, bp, sbk, c, ldc, biasp, kc, lanes, flags = fn.args
        b = ir.IRBuilder(fn.append_basic_block("entry"))

        def flag(bit):
            return b.icmp_unsigned("!=", b.and_(flags, ir.Constant(I32, bit)), ir.Constant(I32, 0))

        crow = [c if r == 0 else self.gep(b, c, b.mul(ldc, _c64(r))) for r in range(mr)]
        if pa:
            sai, sak = _c64(1), _c64(mr)
        arow = [a if r == 0 else self.gep(b, a, b.mul(sai, _c64(r))) for r in range(mr)]
        tmask = self.runtime_mask(b, lanes)
        lmask = [tmask if (v == nv - 1 and not pb) else None for v in range(nv)]
        n_set = mr * nv
        init = [self.vzero] * (ks * n_set)

        def step(b, k, accs, s):
            bk = self.gep(b, bp, b.mul(k, sbk))
            bv = [self.vload(b, self.gep(b, bk, v * VL), lmask[v]) for v in range(nv)]
            koff = b.mul(k, sak)
            if _PF_A_DIST and not pa and mr >= 4:
                # Software prefetch of op(A) a few k ahead: with A stored K x M (trans_a) every
                # k step reads a new, far-strided line that the hardware prefetchers miss.
                kpf = b.mul(b.add(k, _c64(_PF_A_DIST)), sak)
                for r in sorted({0, mr - 1}):    # (may point past A: not inbounds)
                    self.prefetch(b, b.gep(arow[r], [kpf], inbounds=False, source_etype=self.ety))
            for r in range(mr):
                av = self.splat(b, self.sload(b, self.gep(b, arow[r], koff)))
                for v in range(nv):
                    idx = s * n_set + r * nv + v
                    accs[idx] = self.fma(b, av, bv[v], accs[idx])

        def main_body(b, it, phis):
            accs = list(phis)
            k0 = b.mul(it, _c64(U))
            for u in range(U):
                step(b, k0 if u == 0 else b.add(k0, _c64(u)), accs, u % ks)
            return accs

        if U > 1:
            nmain = b.udiv(kc, _c64(U))
            accs = self.carried_loop(b, nmain, init, main_body, name="km")
            kstart = b.mul(nmain, _c64(U))

            def rem_body(b, it, phis):
                accs = list(phis)
                step(b, b.add(kstart, it), accs, 0)
                return accs
            accs = (self.carried_loop(b, b.sub(kc, kstart), accs[:n_set], rem_body, name="kr")
                    + accs[n_set:])
        else:
            accs = self.carried_loop(b, kc, init, main_body, name="km")
        for s in range(1, ks):
            for t in range(n_set):
                accs[t] = b.fadd(accs[t], accs[s * n_set + t])
        # Epilogue, branch-free: loads that a flag disables use all-false masks (they read
        # nothing and give zeros), relu is max(x, lo) with lo = 0 or -inf.
        ones = ir.Constant(self.mty, [1] * VL)
        offm = ir.Constant(self.mty, [0] * VL)
        epi = flag(UK_EPI)
        cmask = b.select(flag(UK_LOAD_C), ones, offm)
        cmask_l = b.and_(cmask, tmask)
        bc = b.and_(epi, flag(UK_BIAS_COL))
        bias_v = [self.mload(b, self.gep(b, biasp, v * VL),
                             b.select(bc, tmask if v == nv - 1 else ones, offm)) for v in range(nv)]
        br_on = b.and_(epi, flag(UK_BIAS_ROW))
        bias_r = [self.mload(b, self.gep(b, biasp, q * VL),
                             b.select(br_on, self.const_mask(min(VL, mr - q * VL)), offm))
                  for q in range(_cdiv(mr, VL))]
        lo = self.splat(b, b.select(b.and_(epi, flag(UK_RELU)), self.fzero,
                                    ir.Constant(self.ety, float("-inf"))))
        for r in range(mr):
            br = b.shuffle_vector(bias_r[r // VL], ir.Constant(self.vty, ir.Undefined),
                                  ir.Constant(ir.VectorType(I32, VL), [r % VL] * VL))
            for v in range(nv):
                last = v == nv - 1
                cp = self.gep(b, crow[r], v * VL)
                x = b.fadd(accs[r * nv + v], self.mload(b, cp, cmask_l if last else cmask))
                x = b.fadd(b.fadd(x, bias_v[v]), br)
                x = b.select(b.fcmp_ordered("<", x, lo), lo, x)     # max(x, lo), NaN kept
                self.vstore(b, x, cp, tmask if last else None)
        b.ret_void()
        return fn

    def outer_kernel(self, acc: bool, bias: str, relu: bool) -> ir.Function:
        """void outer(ptr a, i64 sai, ptr b, ptr c, i64 ldc, ptr bias, i64 m0, i64 m1, i64 n):
        C[i, j] (+)= a[i*sai] * b[j] (+ bias[j] | bias[i]) (relu) for m0 <= i < m1, j < n (K == 1
        products; b contiguous, or n == 1)."""
        name = f"sdgemm.{self.tag}.outer{int(acc)}{bias[0]}{int(relu)}"
        fn = self._existing(name)
        if fn is not None:
            return fn
        VL = self.VL
        fn = self.new_fn(name, [PTR, I64, PTR, PTR, I64, PTR, I64, I64, I64])
        for i in (0, 2, 3, 5):
            fn.args[i].add_attribute("noalias")
        a, sai, bp, c, ldc, biasp, m0, m1, n = fn.args
        b = ir.IRBuilder(fn.append_basic_block("entry"))
        U = 4
        nvec = b.udiv(n, _c64(VL))
        ngrp = b.udiv(nvec, _c64(U))
        jt = b.mul(nvec, _c64(VL))
        tmask = self.runtime_mask(b, b.sub(n, jt))
        has_tail = b.icmp_signed("<", jt, n)

        def one(b, av, crow, j, i, mask=None):
            x = b.fmul(av, self.vload(b, self.gep(b, bp, j), mask))
            if acc:
                x = b.fadd(x, self.vload(b, self.gep(b, crow, j), mask))
            if bias == "col":
                x = b.fadd(x, self.vload(b, self.gep(b, biasp, j), mask))
            elif bias == "row":
                x = b.fadd(x, self.splat(b, self.sload(b, self.gep(b, biasp, i))))
            if relu:
                x = b.select(b.fcmp_ordered("<", x, self.vzero), self.vzero, x)
            self.vstore(b, x, self.gep(b, crow, j), mask)

        with self.loop(b, m0, m1, 1, "oi") as i:
            av = self.splat(b, self.sload(b, self.gep(b, a, b.mul(i, sai))))
            crow = self.gep(b, c, b.mul(i, ldc))
            with self.loop(b, 0, ngrp, 1, "og") as g:
                j0 = b.mul(g, _c64(U * VL))
                for u in range(U):
                    one(b, av, crow, b.add(j0, _c64(u * VL)) if u else j0, i)
            with self.loop(b, b.mul(ngrp, _c64(U)), nvec, 1, "ov") as v:
                one(b, av, crow, b.mul(v, _c64(VL)), i)
            with b.if_then(has_tail):
                one(b, av, crow, jt, i, tmask)
        b.ret_void()
        return fn

    def pack_copy(self, nv: int) -> ir.Function:
        """void pack(ptr src, i64 sbk, ptr dst, i64 kc, i64 nc): src[k*sbk + j] for k < kc,
        j < nc -> ceil(nc/NR) panels of kc x NR (panel stride kc*NR), zero padded."""
        name = f"sdgemm.{self.tag}.packcopy{nv}"
        fn = self._existing(name)
        if fn is not None:
            return fn
        VL = self.VL
        NR = nv * VL
        fn = self.new_fn(name, [PTR, I64, PTR, I64, I64])
        fn.args[0].add_attribute("noalias")
        fn.args[2].add_attribute("noalias")
        src, sbk, dst, kc, nc = fn.args
        b = ir.IRBuilder(fn.append_basic_block("entry"))
        # k outer, panels inner: every source row is read front to back (prefetcher-friendly;
        # panel-outer order reads a 4*NR-byte strip per row at a large stride).
        nfull = b.udiv(nc, _c64(NR))
        jt = b.mul(nfull, _c64(NR))
        pstride = b.mul(kc, _c64(NR))
        masks = [self.runtime_mask(b, b.sub(nc, b.add(jt, _c64(v * VL)))) for v in range(nv)]
        has_tail = b.icmp_signed("<", jt, nc)
        dtail = self.gep(b, dst, b.mul(nfull, pstride))
        with self.loop(b, 0, kc, 1, "pk") as k:
            srow = self.gep(b, src, b.mul(k, sbk))
            drow = self.gep(b, dst, b.mul(k, _c64(NR)))
            with self.loop(b, 0, nfull, 1, "pp") as pi:
                sp = self.gep(b, srow, b.mul(pi, _c64(NR)))
                dp = self.gep(b, drow, b.mul(pi, pstride))
                for v in range(nv):
                    x = self.vload(b, self.gep(b, sp, v * VL))
                    b.store(x, self.gep(b, dp, v * VL), align=64)
            with b.if_then(has_tail):
                sp = self.gep(b, srow, jt)
                dp = self.gep(b, dtail, b.mul(k, _c64(NR)))
                for v in range(nv):
                    x = self.mload(b, self.gep(b, sp, v * VL), masks[v])
                    b.store(x, self.gep(b, dp, v * VL), align=64)
        b.ret_void()
        return fn

    def pack_trans(self, nv: int) -> ir.Function:
        """void pack(ptr src, i64 sbj, ptr dst, i64 kc, i64 nc): src[j*sbj + k] (k-contiguous
        rows) for k < kc, j < nc -> the same panels as pack_copy, via VL x VL in-register
        transposes.  Writes up to VL-1 rows past kc in a panel (overwritten by the next panel;
        the buffer has VL*NR elements of slack for the last one)."""
        name = f"sdgemm.{self.tag}.packtrans{nv}"
        fn = self._existing(name)
        if fn is not None:
            return fn
        VL = self.VL
        NR = nv * VL
        fn = self.new_fn(name, [PTR, I64, PTR, I64, I64])
        fn.args[0].add_attribute("noalias")
        fn.args[2].add_attribute("noalias")
        src, sbj, dst, kc, nc = fn.args
        b = ir.IRBuilder(fn.append_basic_block("entry"))
        ngrp = b.udiv(b.add(nc, _c64(VL - 1)), _c64(VL))
        ones = ir.Constant(self.mty, [1] * VL)
        zeros = ir.Constant(self.mty, [0] * VL)
        with self.loop(b, 0, ngrp, 1, "pg") as g:
            jv = b.mul(g, _c64(VL))
            pan = b.udiv(g, _c64(nv))
            v = b.urem(g, _c64(nv))
            dbase = self.gep(b, dst, b.add(b.mul(pan, b.mul(kc, _c64(NR))), b.mul(v, _c64(VL))))
            sbase = self.gep(b, src, b.mul(jv, sbj))
            rowp = [sbase if r == 0 else self.gep(b, sbase, b.mul(sbj, _c64(r))) for r in range(VL)]
            rmask = [b.select(b.icmp_signed("<", b.add(jv, _c64(r)), nc), ones, zeros)
                     for r in range(VL)]
            with self.loop(b, 0, kc, VL, "pk") as k0:
                kmask = self.runtime_mask(b, b.sub(kc, k0))
                rows = [self.mload(b, self.gep(b, rowp[r], k0), b.and_(kmask, rmask[r]))
                        for r in range(VL)]
                cols = self.transpose(b, rows)
                dk = self.gep(b, dbase, b.mul(k0, _c64(NR)))
                for t in range(VL):
                    b.store(cols[t], self.gep(b, dk, t * NR), align=64)
        b.ret_void()
        return fn


    def pack_a_copy(self, mr: int) -> ir.Function:
        """void packa(ptr src, i64 sak, ptr dst, i64 kc, i64 mc): op(A)[i, k] = src[k*sak + i]
        (A stored K x M) for i < mc, k < kc -> ceil(mc/mr) panels, panel q at dst + q*kc*mr
        holding its n = min(mr, mc - q*mr) rows with element (r, k) at k*n + r (the kernels
        for n rows read it with constant strides)."""
        name = f"sdgemm.{self.tag}.packa{mr}"
        fn = self._existing(name)
        if fn is not None:
            return fn
        VL = self.VL
        fn = self.new_fn(name, [PTR, I64, PTR, I64, I64])
        fn.args[0].add_attribute("noalias")
        fn.args[2].add_attribute("noalias")
        src, sak, dst, kc, mc = fn.args
        b = ir.IRBuilder(fn.append_basic_block("entry"))
        npan = b.udiv(b.add(mc, _c64(mr - 1)), _c64(mr))
        with self.loop(b, 0, npan, 1, "aq") as q:
            i0 = b.mul(q, _c64(mr))
            nrow = self.smin(b, b.sub(mc, i0), mr)
            dq = self.gep(b, dst, b.mul(i0, kc))
            sq = self.gep(b, src, i0)
            masks = [self.runtime_mask(b, self.smin(b, b.sub(nrow, _c64(c0)), min(VL, mr - c0)))
                     for c0 in range(0, mr, VL)]
            with self.loop(b, 0, kc, 1, "ak") as k:
                sk = self.gep(b, sq, b.mul(k, sak))
                dk = self.gep(b, dq, b.mul(k, nrow))
                for c, c0 in enumerate(range(0, mr, VL)):
                    self.mstore(b, self.mload(b, self.gep(b, sk, c0), masks[c]), self.gep(b, dk, c0), masks[c])
        b.ret_void()
        return fn

    def pack_a_rows(self, mr: int) -> ir.Function:
        """void packa(ptr src, i64 sai, ptr dst, i64 kc, i64 mc): op(A)[i, k] = src[i*sai + k]
        (A stored M x K) -> the same panels as pack_a_copy, via VL x VL in-register transposes
        (mr <= VL).  Stores run up to VL*(mr+1) elements past the last panel (the buffer has
        that slack); within a panel, later stores overwrite the spill of earlier ones."""
        name = f"sdgemm.{self.tag}.packar{mr}"
        fn = self._existing(name)
        if fn is not None:
            return fn
        VL = self.VL
        assert mr <= VL
        fn = self.new_fn(name, [PTR, I64, PTR, I64, I64])
        fn.args[0].add_attribute("noalias")
        fn.args[2].add_attribute("noalias")
        src, sai, dst, kc, mc = fn.args
        b = ir.IRBuilder(fn.append_basic_block("entry"))
        npan = b.udiv(b.add(mc, _c64(mr - 1)), _c64(mr))
        ones = ir.Constant(self.mty, [1] * VL)
        zeros = ir.Constant(self.mty, [0] * VL)
        with self.loop(b, 0, npan, 1, "aq") as q:
            i0 = b.mul(q, _c64(mr))
            nrow = self.smin(b, b.sub(mc, i0), mr)
            dq = self.gep(b, dst, b.mul(i0, kc))
            sq = self.gep(b, src, b.mul(i0, sai))
            rowp = [sq if r == 0 else self.gep(b, sq, b.mul(sai, _c64(r))) for r in range(mr)]
            rmask = [b.select(b.icmp_signed("<", _c64(r), nrow), ones, zeros) for r in range(mr)]
            with self.loop(b, 0, kc, VL, "ak") as k0:
                kmask = self.runtime_mask(b, b.sub(kc, k0))
                rows = [self.mload(b, self.gep(b, rowp[r], k0), b.and_(kmask, rmask[r]))
                        for r in range(mr)] + [self.vzero] * (VL - mr)
                cols = self.transpose(b, rows)
                dk = self.gep(b, dq, b.mul(k0, nrow))
                for t in range(VL):
                    self.vstore(b, cols[t], dk if t == 0 else self.gep(b, dk, b.mul(nrow, _c64(t))))
        b.ret_void()
        return fn

    def dot_kernel(self, mr: int, nr: int, ks: int) -> ir.Function:
        """Same signature as row_ukernel, for k-contiguous operands: C[r, j] (+)=
        sum_{k < kc} a[r*sai + k] * b[j*sbj + k] for r < mr, j < nr (the b stride argument is
        sbj; sak and lanes are unused).  Vectors along k, reduced by a transposing shuffle tree."""
        name = f"sdgemm.{self.tag}.dk{mr}x{nr}.k{ks}"
        fn = self._existing(name)
        if fn is not None:
            return fn
        VL = self.VL
        fn = self.new_fn(name, [PTR, I64, I64, PTR, I64, PTR, I64, PTR, I64, I64, I32])
        for i in (0, 3, 5, 7):
            fn.args[i].add_attribute("noalias")
        a, sai, _sak, bp, sbj, c, ldc, biasp, kc, _lanes, flags = fn.args
        b = ir.IRBuilder(fn.append_basic_block("entry"))

        def flag(bit):
            return b.icmp_unsigned("!=", b.and_(flags, ir.Constant(I32, bit)), ir.Constant(I32, 0))

        arow = [a if r == 0 else self.gep(b, a, b.mul(sai, _c64(r))) for r in range(mr)]
        bcol = [bp if j == 0 else self.gep(b, bp, b.mul(sbj, _c64(j))) for j in range(nr)]
        n_set = mr * nr
        init = [self.vzero] * (ks * n_set)

        def step(b, k, accs, s, mask):
            av = [self.vload(b, self.gep(b, arow[r], k), mask) for r in range(mr)]
            for j in range(nr):
                bv = self.vload(b, self.gep(b, bcol[j], k), mask)
                for r in range(mr):
                    idx = s * n_set + r * nr + j
                    accs[idx] = self.fma(b, av[r], bv, accs[idx])

        def main_body(b, it, phis):
            accs = list(phis)
            k0 = b.mul(it, _c64(VL * ks))
            for s in range(ks):
                step(b, b.add(k0, _c64(s * VL)) if s else k0, accs, s, None)
            return accs

        nvec = b.udiv(kc, _c64(VL))
        nmain = b.udiv(nvec, _c64(ks)) if ks > 1 else nvec
        accs = self.carried_loop(b, nmain, init, main_body, name="kd")
        if ks > 1:
            kstart = b.mul(nmain, _c64(VL * ks))

            def rem_body(b, it, phis):
                accs = list(phis)
                step(b, b.add(kstart, b.mul(it, _c64(VL))), accs, 0, None)
                return accs
            accs = (self.carried_loop(b, b.sub(nvec, b.mul(nmain, _c64(ks))), accs[:n_set],
                                      rem_body, name="kv") + accs[n_set:])
        # k tail (possibly empty: an all-false mask loads nothing)
        ktail = b.mul(nvec, _c64(VL))
        step(b, ktail, accs, 0, self.runtime_mask(b, b.sub(kc, ktail)))
        for s in range(1, ks):
            for t in range(n_set):
                accs[t] = b.fadd(accs[t], accs[s * n_set + t])
        sums = self.reduce_many(b, accs[:n_set])      # lane r*nr + j
        ones = ir.Constant(self.mty, [1] * VL)
        offm = ir.Constant(self.mty, [0] * VL)
        epi = flag(UK_EPI)
        rmask = self.const_mask(nr)
        cmask = b.select(flag(UK_LOAD_C), rmask, offm)
        bias_c = self.mload(b, biasp, b.select(b.and_(epi, flag(UK_BIAS_COL)), rmask, offm))
        bias_r = self.mload(b, biasp, b.select(b.and_(epi, flag(UK_BIAS_ROW)), self.const_mask(mr), offm))
        lo = self.splat(b, b.select(b.and_(epi, flag(UK_RELU)), self.fzero,
                                    ir.Constant(self.ety, float("-inf"))))
        und = ir.Constant(self.vty, ir.Undefined)
        for r in range(mr):
            cp = c if r == 0 else self.gep(b, c, b.mul(ldc, _c64(r)))
            x = sums if r == 0 else b.shuffle_vector(
                sums, und, ir.Constant(ir.VectorType(I32, VL), [(r * nr + j) % VL for j in range(VL)]))
            br = b.shuffle_vector(bias_r, und, ir.Constant(ir.VectorType(I32, VL), [r] * VL))
            x = b.fadd(x, self.mload(b, cp, cmask))
            x = b.fadd(b.fadd(x, bias_c), br)
            x = b.select(b.fcmp_ordered("<", x, lo), lo, x)     # max(x, lo), NaN kept
            self.mstore(b, x, cp, rmask)
        b.ret_void()
        return fn

    def driver(self) -> ir.Function:
        """void drv(ptr A, ptr B, ptr C, ptr bias, i64 task_begin, i64 task_end, ptr prm, ptr buf)

        The loop nest shared by all products of a module: tasks, NC / KC / MC cache blocks,
        op(B) packing into buf, NR-column panels, MR-row tiles.  prm points at the product's
        constant parameter block: the _PRM integers, then the four tile kernels (full,
        N-edge, M-edge, corner) and the packing function."""
        name = f"sdgemm.{self.tag}.driver"
        fn = self._existing(name)
        if fn is not None:
            return fn
        fn = self.new_fn(name, [PTR, PTR, PTR, PTR, I64, I64, PTR, PTR, PTR], small=True)
        for i in (0, 1, 2, 3, 6, 7, 8):
            fn.args[i].add_attribute("noalias")
        A, B, C, bias, tb, te, prm, buf, abuf = fn.args
        b = ir.IRBuilder(fn.append_basic_block("entry"))
        sty = _prm_type()

        def field(part, i, ty):
            return b.load(b.gep(prm, [ir.Constant(I32, 0), ir.Constant(I32, part), ir.Constant(I32, i)],
                                inbounds=True, source_etype=sty), typ=ty, align=8)

        P = {f: field(0, i, I64) for i, f in enumerate(_PRM)}
        uk_full, uk_ntail, uk_mtail, uk_corner, packfn, packafn = [field(1, i, PTR) for i in range(6)]
        uk_t = ir.FunctionType(VOID, [PTR, I64, I64, PTR, I64, PTR, I64, PTR, I64, I64, I32])
        pk_t = ir.FunctionType(VOID, [PTR, I64, PTR, I64, I64])

        def icall(callee, args, fty):
            return b.call(_IndirectCallee(callee, fty), args)
        one, zero = _c64(1), _c64(0)
        M, N, K = P["M"], P["N"], P["K"]
        MR, NR, KC, NC, MC = P["MR"], P["NR"], P["KC"], P["NC"], P["MC"]
        packed = b.icmp_signed("!=", P["pack"], zero)
        packed_a = b.icmp_signed("!=", P["packa"], zero)
        k_sai = b.select(packed_a, one, P["sai"])      # op(A) strides the kernels see
        k_sak = b.select(packed_a, MR, P["sak"])
        split_m = b.icmp_signed("!=", P["split_m"], zero)
        bias_mode = P["bias_mode"]
        base_flags = b.trunc(P["flags"], I32)
        nkb = P["nkb"]
        with self.loop(b, tb, te, 1, "task") as t:
            u0 = b.udiv(b.mul(t, P["units"]), P["T"])
            u1 = b.udiv(b.mul(b.add(t, one), P["units"]), P["T"])
            unit = b.select(split_m, MR, NR)
            lo = b.mul(u0, unit)
            hi = self.smin(b, b.mul(u1, unit), b.select(split_m, M, N))
            n0, n1 = b.select(split_m, zero, lo), b.select(split_m, N, hi)
            m0, m1 = b.select(split_m, lo, zero), b.select(split_m, hi, M)
            with self.loop(b, n0, n1, NC, "jc") as jc:
                jend = b.add(jc, self.smin(b, b.sub(n1, jc), NC))
                with self.loop(b, 0, nkb, 1, "pc") as pcb:
                    pc = b.mul(pcb, KC)
                    kc = self.smin(b, b.sub(K, pc), KC)
                    later = b.zext(b.icmp_signed(">", pcb, zero), I32)
                    last = b.zext(b.icmp_signed("==", pcb, b.sub(nkb, one)), I32)
                    flags = b.or_(base_flags, b.or_(later, b.shl(last, ir.Constant(I32, 1))))
                    bsrc = self.gep(b, B, b.add(b.mul(pc, P["sbk"]), b.mul(jc, P["sbj"])))
                    with b.if_then(packed):
                        icall(packfn, [bsrc, P["pstride"], buf, kc, b.sub(jend, jc)], pk_t)
                    with self.loop(b, m0, m1, MC, "ic") as ic:
                        iend = self.smin(b, m1, b.add(ic, MC))
                        asrc = self.gep(b, A, b.add(b.mul(ic, P["sai"]), b.mul(pc, P["sak"])))
                        with b.if_then(packed_a):
                            icall(packafn, [asrc, P["pastride"], abuf, kc, b.sub(iend, ic)], pk_t)
                        with self.loop(b, jc, jend, NR, "jr") as j:
                            full_n = b.icmp_signed("<=", b.add(j, NR), jend)
                            bptr = b.select(packed, self.gep(b, buf, b.mul(b.sub(j, jc), kc)),
                                            self.gep(b, bsrc, b.mul(b.sub(j, jc), P["sbj"])))
                            lanes = b.select(full_n, P["VL"], P["lanes_tail"])
                            k_n = b.select(full_n, uk_full, uk_ntail)
                            k_c = b.select(full_n, uk_mtail, uk_corner)
                            with self.loop(b, ic, iend, MR, "ir") as i:
                                kern = b.select(b.icmp_signed("<=", b.add(i, MR), iend), k_n, k_c)
                                aptr = b.select(packed_a, self.gep(b, abuf, b.mul(b.sub(i, ic), kc)),
                                                self.gep(b, asrc, b.mul(b.sub(i, ic), P["sai"])))
                                cptr = self.gep(b, C, b.add(b.mul(i, P["ldc"]), j))
                                bp = b.select(b.icmp_signed("==", bias_mode, one), self.gep(b, bias, j),
                                              b.select(b.icmp_signed("==", bias_mode, _c64(2)),
                                                       self.gep(b, bias, i), cptr))
                                icall(kern, [aptr, k_sai, k_sak, bptr, P["kstride"], cptr,
                                             P["ldc"], bp, kc, lanes, flags], uk_t)
        b.ret_void()
        return fn


class _IndirectCallee:
    """A loaded function pointer (opaque ptr) as a callee for llvmlite's IRBuilder.call, which
    takes the call's function type from the callee."""

    def __init__(self, value: ir.Value, fty: ir.FunctionType):
        self.value = value
        self.function_type = fty
        self.type = value.type

    def get_reference(self) -> str:
        return self.value.get_reference()

    def __str__(self) -> str:
        return self.value.get_reference()


class _PtrRef(_IndirectCallee):
    """A function used as a pointer constant, printed with the opaque `ptr` type."""

    def __init__(self, value: ir.Value):
        super().__init__(value, None)
        self.type = PTR


# Integer fields of a product's parameter block (then 5 function pointers).
_PRM = ("M", "N", "K", "sai", "sak", "sbk", "sbj", "ldc", "MR", "NR", "KC", "NC", "MC", "T", "units",
        "split_m", "pack", "pstride", "kstride", "flags", "lanes_tail", "bias_mode", "nkb", "VL",
        "packa", "pastride")


def _prm_type() -> ir.LiteralStructType:
    return ir.LiteralStructType([ir.ArrayType(I64, len(_PRM)), ir.ArrayType(PTR, 6)])


# ----------------------------------------------------------------------------- per-product entry
class _Gemm(_Kit):
    def __init__(self, module: ir.Module, name: str, p: _Prob, plan: _Plan):
        super().__init__(module, p.dtype)
        self.name = name
        self.p = p
        self.plan = plan
        self.shared = _Shared(module, p.dtype)

    def kernels(self):
        """(full, N-edge, M-edge, corner) tile kernels, and the static tile geometry."""
        p, plan, VL, sh = self.p, self.plan, self.VL, self.shared
        MR = plan.mr
        if plan.kernel == "dot":
            NR = plan.nv
            ntail, mtail = p.N % NR, p.M % MR

            def k(mr, nr):
                return sh.dot_kernel(mr, nr, plan.ks)
            full = k(MR, NR)
            nt = k(MR, ntail) if ntail else full
            mt = k(mtail, NR) if mtail else full
            co = k(mtail, ntail) if (ntail and mtail) else (mt if mtail else nt)
            return (full, nt, mt, co), NR, VL
        NR = plan.nv * VL
        ntail, mtail = p.N % NR, p.M % MR
        nv_t = _cdiv(ntail, VL)

        def k(mr, nv, whole):
            # whole: every vector of the tile is full, B loads need no mask (packed B: never)
            return sh.row_ukernel(mr, nv, plan.ks, plan.unroll, pa=plan.pack_a,
                                  pb=bool(plan.pack) or whole)
        full = k(MR, plan.nv, True)
        nt = k(MR, nv_t, False) if ntail else full
        mt = k(mtail, plan.nv, True) if mtail else full
        co = k(mtail, nv_t, False) if (ntail and mtail) else (mt if mtail else nt)
        return (full, nt, mt, co), NR, (ntail % VL or VL)

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
            m0 = b.udiv(b.mul(tb, _c64(p.M)), _c64(T))
            m1 = b.udiv(b.mul(te, _c64(p.M)), _c64(T))
            biasp = bias if p.bias != "none" else C
            b.call(self.shared.outer_kernel(p.accumulate, p.bias, p.relu),
                   [A, _c64(p.sai), B, C, _c64(p.ldc), biasp, m0, m1, _c64(p.N)])
            b.ret_void()
            return fn
        kerns, NR, lanes_tail = self.kernels()
        flags = ((UK_BIAS_COL if p.bias == "col" else 0) | (UK_BIAS_ROW if p.bias == "row" else 0)
                 | (UK_RELU if p.relu else 0) | (UK_LOAD_C if p.accumulate else 0))
        biasp = bias if p.bias != "none" else C          # never read when there is no bias
        dot = plan.kernel == "dot"
        kstride = p.sbj if dot else (NR if plan.pack else p.sbk)
        nkb = 1 if (dot or p.K == 0) else _cdiv(p.K, plan.kc)
        if plan.n_tasks == 1 and p.M <= plan.mr and p.N <= NR and not plan.pack:
            # One tile: call its kernel directly (tiny products: minimal overhead).
            kern = kerns[(0 if p.M == plan.mr else 2) + (0 if p.N == NR else 1)]
            with b.if_then(b.icmp_signed("<", tb, te)):
                b.call(kern, [A, _c64(p.sai), _c64(p.sak), B, _c64(kstride), C, _c64(p.ldc), biasp,
                              _c64(p.K), _c64(VL if p.N == NR else lanes_tail),
                              ir.Constant(I32, flags | UK_EPI)])
            b.ret_void()
            return fn
        if plan.pack:
            fn.attributes.add('"probe-stack"="inline-asm"')
            buf = b.alloca(ir.ArrayType(self.ety, plan.kc * plan.nc + VL * NR), name="bpack")
            buf.align = 64
            buf.type = PTR
            packfn = (self.shared.pack_copy(plan.nv) if plan.pack == "copy"
                      else self.shared.pack_trans(plan.nv))
        else:
            buf = ir.Constant(PTR, None)
            packfn = ir.Constant(PTR, None)
        if plan.pack_a:
            abuf = b.alloca(ir.ArrayType(self.ety, _abuf_elems(plan.mc, plan.kc, plan.mr, VL)),
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
                    NC=plan.nc or _cdiv(p.N, NR) * NR, MC=plan.mc or _cdiv(p.M, plan.mr) * plan.mr,
                    T=plan.n_tasks,
                    units=plan.units, split_m=int(plan.split == "m"),
                    pack={"": 0, "copy": 1, "trans": 2}[plan.pack],
                    pstride=p.sbk if plan.pack == "copy" else p.sbj, kstride=kstride, flags=flags,
                    lanes_tail=lanes_tail, bias_mode={"none": 0, "col": 1, "row": 2}[p.bias],
                    nkb=nkb, VL=VL, packa=int(plan.pack_a),
                    pastride=p.sak if p.sai == 1 else p.sai)
        sty = _prm_type()
        prm = ir.GlobalVariable(self.m, sty, name=self.name + ".prm")
        prm.linkage = "internal"
        prm.global_constant = True
        prm.align = 8
        prm.type = PTR
        prm.initializer = ir.Constant(sty, [
            ir.Constant(ir.ArrayType(I64, len(_PRM)), [vals[f] for f in _PRM]),
            ir.Constant(ir.ArrayType(PTR, 6), [_PtrRef(f) for f in list(kerns) + [packfn, packafn]])])
        b.call(self.shared.driver(), [A, B, C, biasp, tb, te, prm, buf, abuf])
        b.ret_void()
        return fn


def _norm_dtype(dtype) -> str:
    d = str(getattr(dtype, "name", dtype))
    d = {"f32": "float32", "float": "float32", "f64": "float64", "double": "float64"}.get(d, d)
    if d not in ("float32", "float64"):
        raise ValueError(f"unsupported dtype {dtype!r}")
    return d


def emit_matmul(module: ir.Module, name: str, dtype: str, M: int, N: int, K: int,
                trans_a: bool = False, trans_b: bool = False, accumulate: bool = False,
                lda: Optional[int] = None, ldb: Optional[int] = None, ldc: Optional[int] = None,
                bias: bool = False, relu: bool = False) -> GemmInfo:
    """Add ``void name(ptr A, ptr B, ptr C, ptr bias, i64 task_begin, i64 task_end)`` to
    ``module``: C = op(A) @ op(B) (C += ... with accumulate), then C[i, j] += bias[j] and
    max(., 0) when asked, for tasks [task_begin, task_end) of GemmInfo.n_tasks.

    op(A) is A (M x K, row stride lda, default K) or, with trans_a, A stored K x M (row
    stride lda, default M) read transposed in place; likewise op(B) (K x N, or N x K with
    trans_b; ldb).  C is M x N with row stride ldc (default N).  The bias pointer is ignored
    (may be null) without bias.  Helper functions are internal, named ``sdgemm.*`` and shared
    by all products emitted into the same module; ``name.prm`` is an internal constant."""
    dtype = _norm_dtype(dtype)
    M, N, K = int(M), int(N), int(K)
    if min(M, N, K) < 0:
        raise ValueError("negative dimension")
    if name in module.globals:
        raise ValueError(f"{name!r} already exists in the module")
    p = _problem(dtype, M, N, K, trans_a, trans_b, accumulate, lda, ldb, ldc, bias, relu)
    plan = _plan(p, frozenset(g.name for g in module.functions if g.name.startswith("sdgemm.")))
    _Gemm(module, name, p, plan).emit()
    VL = _vl(dtype)
    nr = plan.nv if plan.kernel in ("dot", "outer") else plan.nv * VL
    stack = (plan.kc * plan.nc + VL * plan.nv * VL) * _esize(dtype) if plan.pack else 0
    stack += _abuf_elems(plan.mc, plan.kc, plan.mr, VL) * _esize(dtype) if plan.pack_a else 0
    return GemmInfo(name=name, n_tasks=plan.n_tasks, flops=2 * M * N * K, dtype=dtype, M=M, N=N, K=K,
                    kernel=plan.kernel, mr=plan.mr, nr=nr, packed_b=bool(plan.pack),
                    transposed=p.transposed, split=plan.split, stack_bytes=stack)
