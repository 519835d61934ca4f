"""The CUDA C matrix-product kernel (``MatmulKernel``), 2-D or batched, as text for the CUDA renderer.

One block computes BM x BN output tiles (grid-stride over tiles in x), staging k-steps of BK of op(A) and
op(B) through shared memory, 256 threads with a TM x TN register block each; transposed operands are read
in place. A batched product adds a loop over the batch entries in grid y: entry ``bt`` reads A and B at
their batch offsets (element strides per batch axis, 0 for a broadcast operand: it is read, never copied)
and writes the contiguous C entry ``bt``.

Symbolic sizes (M, N, K, the batch: :class:`symdiff.dims.Dim`) are read from the kernel's ``sz_<name>``
parameters: the tile loop, the bounds and the strides are their expressions, the tiles are the largest
(64 x 64), and the grid is computed at launch.
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from symdiff.dims import Dim
from symdiff.codegen.kernel_ir import MatmulKernel
from symdiff.codegen.cuda.ir import CTYPE, cdim, ceil_div, flit, grid_size, node_label

__all__ = ["matmul_source", "MAX_GRID_Y"]

MAX_GRID_Y = 65535  # CUDA's limit on gridDim.y: more batch entries loop


def _batch_prelude(k: MatmulKernel, I: str, T: str, A: str, B: str, C: str) -> str:
    """Offsets of batch entry ``bt`` (row-major over ``k.batch``) and the entry's base pointers."""
    lines = [f"    {I} rest = bt, oa = 0, ob = 0;"]
    for size, sa, sb in zip(reversed(k.batch), reversed(k.a_batch_strides), reversed(k.b_batch_strides)):
        upd = [f"oa += i * {cdim(sa)};" if sa else "", f"ob += i * {cdim(sb)};" if sb else ""]
        lines.append(f"    {{ const {I} i = rest % {cdim(size)}; rest /= {cdim(size)}; {' '.join(u for u in upd if u)} }}")
    lines.append(f"    const {T}* Ab = {A} + oa;")
    lines.append(f"    const {T}* Bb = {B} + ob;")
    lines.append(f"    {T}* Cb = {C} + ({I})bt * {cdim(k.M * k.N)};")
    lines.append("    (void)rest;")
    return "\n".join(lines)


def matmul_source(k: MatmulKernel, A: str, B: str, C: str, bias, I: str, out_name: str,
                  btab: Optional[str] = None) -> tuple:
    """(code, comment lines, grid, shared bytes) of the kernel computing ``k`` from the device pointers
    named ``A``, ``B``, ``C`` (and ``bias`` or None); ``I`` is the C index type; ``btab``: the device table
    of a gathered op(B)'s K row offsets then N column offsets (``k.b_offsets``)."""
    dt = k.node.dtype
    T = CTYPE[dt]
    batched = bool(k.batch)
    src_a, src_b, dst = ("Ab", "Bb", "Cb") if batched else (A, B, C)
    BM, BN = _tile(k.M), _tile(k.N)
    BK = 16
    TM, TN = BM // 16, BN // 16
    if isinstance(k.M, Dim) or isinstance(k.N, Dim):  # tiles counted at run time
        tiles_n = f"(({cdim(k.N)} + {BN - 1}) / {BN})" if isinstance(k.N, Dim) else ceil_div(k.N, BN)
        tiles_m = f"({cdim(k.M)} + {BM - 1}) / {BM}" if isinstance(k.M, Dim) else ceil_div(k.M, BM)
        tiles = f"({tiles_m} * {tiles_n})"
        grid = f"sd_grid({tiles}, 1, 65535)"
    else:
        tiles_n = ceil_div(k.N, BN)
        tiles = ceil_div(k.M, BM) * tiles_n
        grid = max(1, min(tiles, 65535))
    M, N, K = cdim(k.M), cdim(k.N), cdim(k.K)
    z = flit(0, dt)
    # op(A)[i, k]: A is M x K (row-major), or K x M read transposed in place; consecutive threads
    # stage consecutive addresses of the stored operand
    if k.trans_a:
        a_map, a_off = f"const int ii = e % {BM}, kk = e / {BM};", f"gk * {M} + gi"
    else:
        a_map, a_off = f"const int kk = e % {BK}, ii = e / {BK};", f"gi * {K} + gk"
    if btab is not None:  # an im2col view: op(B)[k, j] = B[rk[k] + cj[j]]; consecutive threads, consecutive j
        b_map, b_off = f"const int jj = e % {BN}, kk = e / {BN};", f"{btab}[gk] + {btab}[{K} + gj]"
    elif k.trans_b:
        b_map, b_off = f"const int kk = e % {BK}, jj = e / {BK};", f"gj * {K} + gk"
    else:
        b_map, b_off = f"const int jj = e % {BN}, kk = e / {BN};", f"gk * {N} + gj"
    epi = f"acc[m][n] + {bias}[gj]" if bias is not None else "acc[m][n]"
    if k.relu:  # (the relu scalar rule's NaN-propagating max)
        epi = f"sd_max({epi}, ({T})0)"
    arg_a, arg_b, arg_c = A, B, C
    A, B, C = src_a, src_b, dst  # the template reads the entry's pointers
    code = f"""\
__shared__ {T} As[{BK}][{BM} + 1];  // op(A) tile, k-major
__shared__ {T} Bs[{BK}][{BN} + 1];  // op(B) tile
const int tx = (int)(threadIdx.x % 16u), ty = (int)(threadIdx.x / 16u);
for (int tile = (int)blockIdx.x; tile < {tiles}; tile += (int)gridDim.x) {{
    const int row0 = tile / {tiles_n} * {BM}, col0 = tile % {tiles_n} * {BN};
    {T} acc[{TM}][{TN}];
#pragma unroll
    for (int m = 0; m < {TM}; ++m)
#pragma unroll
        for (int n = 0; n < {TN}; ++n) acc[m][n] = {z};
    for (int k0 = 0; k0 < {K}; k0 += {BK}) {{
        for (int e = (int)threadIdx.x; e < {BM * BK}; e += 256) {{  // stage op(A) (coalesced along its storage)
            {a_map}
            const int gi = row0 + ii, gk = k0 + kk;
            As[kk][ii] = (gi < {M} && gk < {K}) ? {A}[({I}){a_off}] : {z};
        }}
        for (int e = (int)threadIdx.x; e < {BK * BN}; e += 256) {{  // stage op(B)
            {b_map}
            const int gk = k0 + kk, gj = col0 + jj;
            Bs[kk][jj] = (gk < {K} && gj < {N}) ? {B}[({I}){b_off}] : {z};
        }}
        __syncthreads();
#pragma unroll
        for (int kk = 0; kk < {BK}; ++kk) {{
            {T} a[{TM}], b[{TN}];
#pragma unroll
            for (int m = 0; m < {TM}; ++m) a[m] = As[kk][ty + 16 * m];
#pragma unroll
            for (int n = 0; n < {TN}; ++n) b[n] = Bs[kk][tx + 16 * n];
#pragma unroll
            for (int m = 0; m < {TM}; ++m)
#pragma unroll
                for (int n = 0; n < {TN}; ++n) acc[m][n] += a[m] * b[n];
        }}
        __syncthreads();
    }}
#pragma unroll
    for (int m = 0; m < {TM}; ++m)
#pragma unroll
        for (int n = 0; n < {TN}; ++n) {{
            const int gi = row0 + ty + 16 * m, gj = col0 + tx + 16 * n;
            if (gi < {M} && gj < {N}) {C}[({I})gi * {N} + gj] = {epi};
        }}
}}"""
    if batched:
        nb = cdim(k.batch_count)
        head = f"for ({I} bt = ({I})blockIdx.y; bt < {nb}; bt += ({I})gridDim.y) {{\n"
        code = (head + _batch_prelude(k, I, T, arg_a, arg_b, arg_c) + "\n"
                + "\n".join("    " + ln if ln else ln for ln in code.split("\n")) + "\n}")
    opa = f"{node_label(k.a)}{'^T' if k.trans_a else ''}"
    opb = f"{node_label(k.b)}{'^T' if k.trans_b else ''}" + (f" gathered through {btab}" if btab else "")
    bdesc = f"batch {'x'.join(map(str, k.batch))} of " if batched else ""
    comment = [f"matmul {out_name} ({node_label(k.node)}) = {opa} @ {opb}"
               + (f" + {node_label(k.bias)}" if k.bias is not None else "") + f"  {bdesc}[{k.M}x{k.K}] @ [{k.K}x{k.N}]",
               f"{BM}x{BN} output tiles, k-steps of {BK} through shared memory, 256 threads with a {TM}x{TN} "
               f"register block each" + ("; transposed operands read in place" if k.trans_a or k.trans_b else "")
               + ("; bias added in the epilogue" if k.bias is not None else "")
               + ("; relu applied in the epilogue" if k.relu else "")
               + ("; batch entries in grid y (broadcast operands: batch stride 0)" if batched else "")]
    shared = (BK * (BM + 1) + BK * (BN + 1)) * np.dtype(dt).itemsize
    grid_t = (grid, grid_size(k.batch_count, 1, MAX_GRID_Y)) if batched else (grid,)
    return code, comment, grid_t, shared


def _tile(n) -> int:
    """The output tile's side along a matrix size: 64, or 32 / 16 for a small fixed size."""
    if isinstance(n, Dim):
        return 64
    return 64 if n >= 64 else (32 if n >= 32 else 16)
