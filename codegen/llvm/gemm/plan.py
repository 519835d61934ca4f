"""GEMM planning (pure Python, no IR): tuning constants, the problem and plan records, the choice of
kernel family, register tile, cache blocking and task split for a static product shape.
See ``codegen/llvm/gemm/emit.py`` for what the plans drive."""
from __future__ import annotations

import contextlib
import contextvars

from dataclasses import dataclass
from typing import Optional

from symdiff.codegen.target import default_threads

# ----------------------------------------------------------------------------- tuning
# Measured on the development machine (x86-64 AVX-512, 48 KiB L1d, 2 MiB L2 per core).
# At most one task per thread (Target.gemm_tasks): each task of an N split packs all of op(A)
# again (4 tasks on 2 threads spent ~16% of (64,784,256) in A packing).
#   tiles: candidate register tiles (rows MR x vectors NV), in order of preference; products
#   with fewer rows than MR use one row-tile (_SMALL_NV); KC/NC/MC: cache blocking;
#   U: k unroll of the micro-kernel.
_CFG = {
    "float32": dict(MR=8, KC=256, NC=512, MC=256, U=2, tiles=[(8, 3), (12, 2), (6, 4)]),
    "float64": dict(MR=8, KC=256, NC=256, MC=256, U=2, tiles=[(8, 3), (12, 2), (6, 4)]),
}
# 256-bit vectors (AVX2: 16 ymm registers): tiles whose accumulators, B vectors and the broadcast fit in
# 16 registers (6 x 2: 12 + 2 + 1, the BLIS Haswell shape; 4 x 3: 12 + 3 + 1)
_CFG_256 = {
    "float32": dict(MR=6, KC=256, NC=512, MC=192, U=2, tiles=[(6, 2), (4, 3)], small_nv={1: 7, 2: 5, 3: 3, 4: 3, 5: 2}),
    "float64": dict(MR=6, KC=256, NC=256, MC=192, U=2, tiles=[(6, 2), (4, 3)], small_nv={1: 7, 2: 5, 3: 3, 4: 3, 5: 2}),
}
_PACK_MIN_M = 16           # pack op(B) (when its rows are contiguous) from this many rows on
_SMALL_NV = {1: 16, 2: 8, 3: 6, 4: 5, 5: 4, 6: 4, 7: 3}   # vectors per tile row when M < MR
_DOT_MAX_M = 8             # dot kernel (k-contiguous A and B) up to this many rows ...
# ... and up to _DOT_DEEP_M rows when K >= _DOT_DEEP_K * M: the row kernel packs op(B) (N x K, transposed)
# for M uses of each element, the dot kernel reduces each C tile once per K. Measured (Zen 4, 2 threads,
# GFLOP/s row -> dot): 16x6400x150 (LeNet's conv-weight gradient) 112 -> 202, 32x6400x150 133 -> 187,
# 32x25088x576 133 -> 150, 24x512x512 166 -> 188, 16x256x1024 141 -> 151; 32x256x256 174 vs 170 and
# 64x25088x576 163 vs 152 stay row kernels. Only with 16-lane vectors (float32 on AVX-512): with 8 lanes
# the dot tiles are 4 x 2 and float64 lost (24x512x512 80 -> 65, 32x25088x576 73 -> 52)
_DOT_DEEP_M, _DOT_DEEP_K = 32, 16
_SERIAL_FLOPS = 2_000_000  # below this the product is one task
_TASK_FLOPS = 1_000_000    # minimum flops per task when splitting
_MAX_STACK = 1 << 20       # bytes of packing buffer per call, at most
_PACK_A = True             # pack op(A) into MR-row panels when B is packed (constant-stride kernels)
_PACK_A_BYTES = 256 << 10  # its buffer, at most
_OUTER_TASK_BYTES = 256 << 10   # K == 1 products: two tasks from this much of C on
PF_A_DIST = 16            # micro-kernel: prefetch op(A) this many k steps ahead (0: off)
PF_C = True               # micro-kernel: prefetch its C tile before the k loop

# the task-split thresholds, for planners that apply them at run time (gemm/dynamic.py)
TASK_RULE = {"serial_flops": _SERIAL_FLOPS, "task_flops": _TASK_FLOPS, "outer_task_bytes": _OUTER_TASK_BYTES}

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
    gathered: str = ""         # op(B) read through offset tables: "rows" | "cols" (gemm/gather.py)


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def vec_len(dtype: str) -> int:
    """Lanes of the GEMM's vectors: one register of the host (``Target.vector_bytes``: 16 floats / 8
    doubles with AVX-512, 8 / 4 with AVX2; 512-bit vectors where neither is detected)."""
    return vector_bytes() // elem_size(dtype)


_VECTOR_BYTES: list = []
_TARGET_WIDTH: contextvars.ContextVar = contextvars.ContextVar("gemm_vector_bytes", default=None)


def width_for(target_vector_bytes: int) -> int:
    """The GEMM vector width for a target's register width: 64 with AVX-512, else 32 (SSE targets get
    256-bit vectors, which LLVM splits into two 128-bit halves)."""
    return 64 if target_vector_bytes >= 64 else 32


@contextlib.contextmanager
def planned_for(target_vector_bytes: int):
    """Plan the GEMM kernels rendered inside this block for a target of that register width (a forced
    ``isa``) instead of the host's."""
    token = _TARGET_WIDTH.set(width_for(target_vector_bytes))
    try:
        yield
    finally:
        _TARGET_WIDTH.reset(token)


def vector_bytes() -> int:
    """The vector register width in bytes for the GEMM kernels: the target's inside :func:`planned_for`,
    else the host's (32 with AVX2 only, else 64); ``SYMDIFF_GEMM_VECTOR_BYTES`` overrides the host's."""
    forced = _TARGET_WIDTH.get()
    if forced is not None:
        return forced
    if not _VECTOR_BYTES:
        import os
        env = os.environ.get("SYMDIFF_GEMM_VECTOR_BYTES", "").strip()
        if env in ("32", "64"):
            _VECTOR_BYTES.append(int(env))
        else:
            from symdiff.codegen.target import host_target
            _VECTOR_BYTES.append(32 if host_target().vector_bytes == 32 else 64)
    return _VECTOR_BYTES[0]


def gemm_tag(dtype: str) -> str:
    """The dtype tag of the shared GEMM function names: f32 / f64 (512-bit vectors), f32v8 / f64v4 (256-bit)."""
    base = "f32" if dtype == "float32" else "f64"
    return base if vector_bytes() == 64 else f"{base}v{vec_len(dtype)}"


def cfg_of(dtype: str) -> dict:
    """The tuning constants for ``dtype`` on the host's vector width."""
    return (_CFG if vector_bytes() == 64 else _CFG_256)[dtype]


def elem_size(dtype: str) -> int:
    return 4 if dtype == "float32" else 8


# ----------------------------------------------------------------------------- plan
@dataclass(frozen=True)
class Problem:
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
    gather: str = ""   # "" | "rows" | "cols": op(B)[k, j] = B[rk[k] + cj[j]], packed by gemm/gather.py along
    #                    the table with unit runs (the columns' or the rows')


@dataclass(frozen=True)
class Plan:
    kernel: str        # "row" | "dot" | "empty"
    mr: int = 1
    nv: int = 1        # vectors per tile row (row kernel) / tile columns (dot kernel)
    ks: int = 1        # independent accumulator sets along k
    unroll: int = 1    # k unroll of the micro-kernel main loop (multiple of ks)
    kc: int = 0
    nc: int = 0
    mc: int = 0
    pack: str = ""     # "" | "copy" | "trans" | "grows" | "gcols"   (op(B) packing)
    pack_a: bool = False   # copy op(A) (stored K x M) into MR-row panels per (MC x KC) block
    split: str = "n"
    units: int = 1     # number of split units (NR panels / MR row blocks)
    n_tasks: int = 1


def make_problem(dtype, M, N, K, trans_a, trans_b, accumulate, lda, ldb, ldc, bias, relu, gather: str = "") -> Problem:
    """The strides and epilogue of a product; ``gather``: op(B) is read through offset tables (its
    strides are then 0: the packer adds the offsets)."""
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
    if gather:
        if trans_b:
            raise ValueError("a gathered op(B) has its offset tables, not trans_b")
        sbk = sbj = 0
    elif N == 1 and M > 1 and ldc == 1 and K > 0:
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
    return Problem(dtype, M, N, K, sai, sak, sbk, sbj, ldc, bool(accumulate), bmode, bool(relu),
                   transposed, gather)


def _choose_tasks(flops: int, units: int, threads: int) -> int:
    """Tasks of a product: one per thread at most, none under _TASK_FLOPS each."""
    if flops < _SERIAL_FLOPS or units < 2:
        return 1
    t = min(threads, units, max(1, flops // _TASK_FLOPS))
    if t > 2 and t % 2:
        t -= 1
    return max(1, t)


def make_plan(p: Problem, existing: frozenset = frozenset(), threads: Optional[int] = None,
              allow_dot: bool = True) -> Plan:
    """Kernel, register tile, cache blocking and task split for a problem.  existing: names
    of functions already in the module (kernels shared with earlier products); threads: the
    thread count the product runs on (at most one task each; default
    :func:`symdiff.codegen.target.default_threads`); allow_dot=False keeps to the row and outer kernels
    (whose edge tiles can be chosen at run time: gemm/dynamic.py)."""
    threads = default_threads() if threads is None else threads
    M, N, K = p.M, p.N, p.K
    if M == 0 or N == 0:
        return Plan("empty")
    VL = vec_len(p.dtype)
    cfg = cfg_of(p.dtype)
    flops = 2 * M * N * K
    if K == 1 and (p.sbj == 1 or N == 1) and not p.gather:
        # Outer product: C (+)= a b^T, row by row (store-bound; no tiles, no packing).
        T = min(2, M, threads) if M * N * elem_size(p.dtype) >= _OUTER_TASK_BYTES else 1
        return Plan("outer", mr=1, nv=N, split="m", units=M, n_tasks=T)
    b_rows = p.sbj in (0, 1)                        # op(B) rows contiguous
    a_kcont = p.sak in (0, 1)
    b_kcont = p.sbk in (0, 1)
    deep = M <= _DOT_DEEP_M and K >= _DOT_DEEP_K * M and VL >= 16  # (4 x 4 dot tiles: 16-lane vectors)
    if allow_dot and K > 0 and not p.gather and not b_rows and a_kcont and b_kcont and (M <= _DOT_MAX_M or deep):
        # Dot-product kernel: vectors along k.
        mr = min(M, 4)
        nr = max(1, min(N, VL // mr))
        ks = 2 if mr * nr < 8 and K >= 2 * VL else 1
        if N >= 2 * nr:
            split, units = "n", ceil_div(N, nr)
        else:
            split, units = "m", ceil_div(M, mr)
        return Plan("dot", mr=mr, nv=nr, ks=ks, unroll=ks, split=split, units=units,
                     n_tasks=_choose_tasks(flops, units, threads))
    # Row kernel: try the candidate register tiles, keep the one with the shortest modelled
    # time on the target's threads (edge tiles and the task split included).
    if M >= cfg["MR"]:
        tiles = cfg["tiles"]
    else:
        tiles = [(M, cfg.get("small_nv", _SMALL_NV).get(M, 2))]
    best = None
    for mr, nv in tiles:
        plan = _row_plan(p, mr, nv, threads)
        cost = _row_cost(p, plan, threads)
        # Compile time: a tile whose kernels the module already has wins within 5%.
        new = len(_row_kernel_names(p, plan) - existing)
        cost *= 1.0 + 0.05 * (new > 0)
        if best is None or cost < best[0] * 0.97:     # ties: earlier (preferred) tile
            best = (cost, plan)
    return best[1]


def _row_kernel_names(p: Problem, plan: Plan) -> set:
    """Names of the shared functions a row plan uses (see SharedKernels)."""
    VL = vec_len(p.dtype)
    tag = gemm_tag(p.dtype)
    NR = plan.nv * VL
    mrs = ({plan.mr} if p.M >= plan.mr else set()) | ({p.M % plan.mr} if p.M % plan.mr else set())
    sfx = "pa" if plan.pack_a else ""
    pre = f"sdgemm.{tag}.uk"
    names = {f"{pre}{m}x{plan.nv}.k{plan.ks}u{plan.unroll}{sfx}pb" for m in mrs} if p.N >= NR else set()  # whole
    if p.N % NR:                                                                   # N edge
        tail = "pb" if plan.pack else ""
        names |= {f"{pre}{m}x{ceil_div(p.N % NR, VL)}.k{plan.ks}u{plan.unroll}{sfx}{tail}" for m in mrs}
    if plan.pack:
        names.add(f"sdgemm.{tag}.pack{plan.pack}{plan.nv}")
    return names


def _tile_cycles(mr: int, nv: int) -> float:
    """Modelled cycles per k step of an mr x nv tile: FMA throughput (2 per cycle), or the FMA
    latency (4 cycles) over too few independent accumulators."""
    return max(mr * nv / 2.0, 4.0) + 0.5


def _row_cost(p: Problem, plan: Plan, threads: int) -> float:
    """Modelled makespan on ``threads`` threads taking equal shares of the task range (cycles per k)."""
    VL = vec_len(p.dtype)
    NR = plan.nv * VL
    ntail, mtail = p.N % NR, p.M % plan.mr
    nv_t = ceil_div(ntail, VL)
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
    share = -(-T // max(1, min(threads, T)))    # tasks per thread (2 threads: halves of the range)
    return max(sum(task[i:i + share]) for i in range(0, T, share))


def abuf_elems(mc: int, kc: int, mr: int, VL: int) -> int:
    """Elements of the op(A) packing buffer (slack for pack_a_rows' spilling stores)."""
    return mc * max(kc, 1) + VL * (mr + 1)


def _row_plan(p: Problem, mr: int, nv: int, threads: int) -> Plan:
    M, N, K = p.M, p.N, p.K
    VL = vec_len(p.dtype)
    cfg = cfg_of(p.dtype)
    nv = max(1, min(nv, ceil_div(N, VL)))
    NR = nv * VL
    chains = mr * nv
    ks = 1 if chains >= 8 else (2 if chains >= 4 else 4)
    ks = max(1, min(ks, K))
    unroll = max(ks, cfg["U"])
    if K == 0:
        pack = ""
    elif p.gather:
        pack = "g" + p.gather
    elif p.sbj not in (0, 1):
        pack = "trans"
    elif M >= _PACK_MIN_M and N > NR:
        pack = "copy"
    else:
        pack = ""
    if pack and K > cfg["KC"] * 5 // 4:
        nb = ceil_div(K, cfg["KC"])
        kc = ceil_div(ceil_div(K, nb), unroll) * unroll
    else:
        kc = K
    # op(A) stored K x M: each k step of a tile reads a far-strided line; copy it into panels.
    pack_a = (bool(pack) and M >= _PACK_MIN_M and _PACK_A and K > 1
              and (p.sai == 1 or (mr <= VL and p.sak == 1)))
    esz = elem_size(p.dtype)
    mc = cfg["MC"] if not pack_a else min(cfg["MC"], _PACK_A_BYTES // (esz * max(kc, 1)))
    mc = max(mr, mc // mr * mr)
    mc = min(mc, ceil_div(M, mr) * mr)
    abytes = abuf_elems(mc, kc, mr, VL) * esz if pack_a else 0
    if pack:
        nc = cfg["NC"] // NR * NR
        ncmax = ((_MAX_STACK - abytes) // (esz * max(kc, 1)) - VL) // NR * NR
        nc = max(NR, min(nc, ncmax, ceil_div(N, NR) * NR))
    else:
        nc = ceil_div(N, NR) * NR
    panels = ceil_div(N, NR)
    rowblocks = ceil_div(M, mr)
    if panels >= 2 and (panels >= rowblocks or pack):
        split, units = "n", panels
    elif rowblocks >= 2:
        split, units = "m", rowblocks
    else:
        split, units = "n", panels
    return Plan("row", mr=mr, nv=nv, ks=ks, unroll=unroll, kc=kc, nc=nc, mc=mc, pack=pack,
                 pack_a=pack_a, split=split, units=units, n_tasks=_choose_tasks(2 * M * N * K, units, threads))


def plan_matmul(dtype: str, M: int, N: int, K: int, trans_a: bool = False, trans_b: bool = False,
                lda: Optional[int] = None, ldb: Optional[int] = None, ldc: Optional[int] = None,
                accumulate: bool = False, bias: bool = False, relu: bool = False, threads: Optional[int] = None):
    """The (problem, plan) emit_matmul would use; for inspection and tests.  threads: default
    :func:`symdiff.codegen.target.default_threads`."""
    p = make_problem(norm_dtype(dtype), M, N, K, trans_a, trans_b, accumulate, lda, ldb, ldc, bias, relu)
    return p, make_plan(p, threads=threads)



def norm_dtype(dtype) -> str:
    d = str(getattr(dtype, "name", dtype))
    d = {"f32": "float32", "float": "float32", "f64": "float64", "double": "float64"}.get(d, d)
    if d not in ("float32", "float64"):
        raise ValueError(f"unsupported dtype {dtype!r}")
    return d
