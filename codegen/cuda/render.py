"""CUDA C renderer: a kernel Program -> one ``.cu`` source and a C header ("lower once, render twice").

``render_cuda(program, name)`` returns ``(cu_source, header)``. The source is self-contained CUDA C++:

- a small prelude of device helpers (NaN-propagating max, stable sigmoid/softplus, the counter-based
  RNG, warp/block all-reductions with ``__shfl_xor_sync`` and shared memory), only those it uses;
- constant tables as ``__device__`` arrays;
- one ``__global__`` kernel per fused group of the Program (a fused total reduction or a split
  reduction adds a small second-pass kernel), each preceded by a comment naming the graph nodes it
  computes, with launch bounds and a launch configuration computed from the shapes;
- a host launcher ``<name>_launch(args, stream)`` that launches them in order on device pointers and
  checks every launch (``SD_CHECK``), plus ``extern "C"`` helpers for device memory and a one-shot
  ``<name>_run(host_args)`` (allocate, copy in, launch, copy out, free).

The same text compiles with nvcc for a GPU (``backend="cuda"``) and, unchanged, with a host C++
compiler and ``codegen/cuda/cuda_cpu.h`` (``backend="cuda-cpu"``), which emulates the CUDA thread model on
the CPU: ``#ifdef __CUDACC__`` selects the real runtime; otherwise ``<cuda_cpu.h>`` is included. Kernel
launches go through ``SD_LAUNCH(kernel, grid, block, shmem, stream, args...)``, which is
``kernel<<<grid, block, shmem, stream>>>(args...)`` under nvcc.

Entry ABI (the header declares it): ``args`` = device pointers to the inputs (signature order), the
outputs, then a workspace of ``<name>_workspace_bytes()`` bytes (the Program's temporaries plus the
partial results of multi-block reductions).

Symbolic sizes (``program.size_names``): the entry points also take ``const long long* sizes``; every
shape-derived number (bounds, strides, GEMM sizes, offsets, byte counts) is written as its polynomial of
``sz_<name>`` variables (``cuda/ir.py``'s ``cdim``), grids are C expressions computed at launch
(``sd_grid``, ``sd_split``), kernels take the sizes they read as parameters, and the choices a size would
make at build time take the one right for every size (64-bit indices, full blocks, 64 x 64 GEMM tiles, a
block per row along a symbolic axis); see ``cuda/host.py``. Fixed-shape sources are unchanged.

Kernels evaluate graph nodes *at a point* with the same evaluator as the LLVM renderer: materialised
nodes are loaded from their buffers, the others (elementwise chains, broadcasts, transposes, reshapes,
pick, one_hot, rand_uniform) are computed inline, so forward and backward elementwise chains fuse into
one pass. Every kernel but the scatters (atomics, ``cuda/render_extra.py``) is deterministic: reductions
combine per-block partial results in a fixed order in a second pass instead of using atomics.

Building blocks (statement tree, scalar rules, device helpers) live in ``cuda/ir.py``; the point
evaluator is the shared one (``codegen/pointeval.py``) over the C emitter of ``cuda/emitter.py``.

``kernel_stats(program)`` lists, per generated kernel, its launch configuration, and the cost model's
FLOPs and compulsory bytes read/written (``codegen/cost.py``), for roofline estimates without a GPU.
"""
from __future__ import annotations

import re
from dataclasses import replace
from typing import Optional

import numpy as np

from symdiff.dims import Dim
from symdiff.ir import Node, toposort

from symdiff.codegen.cost import Cost
from symdiff.codegen.kernel_ir import (Buffer, LoopKernel, MatmulKernel, Program, ReduceKernel, RowKernel,
                                       ScanKernel, ScatterKernel, SortKernel)
from symdiff.codegen.cuda.render_extra import render_scan, render_scatter, render_sort
from symdiff.codegen.cuda.host import CudaSourceAssembly
from symdiff.codegen.cuda.emitter import cuda_eval
from symdiff.codegen.cuda.matmul import matmul_source
from symdiff.codegen.cuda.ir import (
    CTYPE, BLOCK, MAX_GRID, MAX_PARTIAL_BLOCKS, WARP_ROW_MAX, prod_shape, ceil_div, block_threads,
    align_up, flit, reduce_ident, reduce_update, REDUCE_FUNCTOR, math_suffix, node_label, Stmt, Block, dce, CudaKernel, KernelCtx,
    cdim, emit, grid_size, per_thread, size_names_in,
)
from symdiff.codegen.pointeval import PointEval, strides

__all__ = ["render_cuda", "kernel_stats", "CudaRenderer", "CTYPE"]


class CudaRenderer(CudaSourceAssembly):
    def __init__(self, program: Program, name: str = "sd_entry") -> None:
        name = re.sub(r"\W", "_", str(name or "").encode("ascii", "replace").decode())  # a C identifier
        if not name or name[0].isdigit():
            name = f"sd_{name}"
        self.p = program
        self.name = name
        self.kernels: list[CudaKernel] = []
        self.launcher: list = []  # statements of the host launcher
        self.ws_bytes = program.workspace_bytes
        self.extra: list = []  # (name, ctype, offset, nbytes): partial-result arrays in the workspace
        self._names: dict[int, str] = {}
        self._used_names: set = set()
        self._consts: dict[int, str] = {}
        self.tables: list[tuple[str, list]] = []  # (name, int offsets): gathered matmul operands' tables
        self.size_names = program.size_names  # symbolic sizes: the sizes argument of the entry points
        if self.size_names:  # sizes known at call time only: 64-bit indices
            self.idx = "long long"
            return
        nodes = toposort(program.output_nodes)
        biggest = max([n.size for n in nodes] + [b.size for b in self._all_buffers()] + [1])
        for k in program.kernels:
            if isinstance(k, MatmulKernel):
                biggest = max(biggest, k.M * k.N, k.M * k.K, k.K * k.N)
        self.idx = "int" if biggest + 4 * MAX_GRID * BLOCK < 2 ** 31 else "long long"

    def _all_buffers(self) -> list[Buffer]:
        return self.p.inputs + self.p.outputs + self.p.temps + self.p.consts

    # -- names ------------------------------------------------------------------------------------------
    def buf_name(self, buf: Buffer) -> str:
        if buf.id in self._names:
            return self._names[buf.id]
        if buf.kind == "input":
            leaf = next((n for n, b in self.p.where.items() if b is buf and n.is_leaf), None)
            base = re.sub(r"\W", "_", (leaf.name if leaf is not None else f"arg{buf.slot}").encode("ascii", "replace").decode())
            nm = f"in_{base}"
            if nm in self._used_names:
                nm = f"in{buf.slot}_{base}"
        elif buf.kind == "output":
            nm = f"out{buf.slot - len(self.p.inputs)}"
        else:
            nm = f"t{buf.id}"
        self._used_names.add(nm)
        self._names[buf.id] = nm
        return nm

    def const_name(self, buf: Buffer) -> str:
        if buf.id not in self._consts:
            self._consts[buf.id] = f"{self.name}_c{buf.id}"
        return self._consts[buf.id]

    def node_of(self, buf: Buffer) -> Optional[Node]:
        for n, b in self.p.where.items():
            if b is buf:
                return n
        return None

    def partial(self, label: str, dtype: str, count: int) -> str:
        """A workspace array of ``count`` values for partial results; returns its name."""
        nm = f"part{len(self.extra)}"
        nbytes = count * np.dtype(dtype).itemsize
        off = align_up(self.ws_bytes)
        self.extra.append((nm, CTYPE[dtype], off, nbytes, label))
        self.ws_bytes = off + nbytes
        return nm

    # -- kernels ------------------------------------------------------------------------------------------
    def render(self) -> tuple[str, str]:
        self.costs = self.p.costs()  # the cost model's numbers, per IR kernel
        for i, k in enumerate(self.p.kernels):
            self.KERNEL_RULES[type(k)](self, i, k)
        return self._source(), self._header()

    def _add(self, kc: KernelCtx, name: str, ir_index: int, kind: str, comment: list, grid, block, body: list,
             shared: int = 0, cost: Optional[Cost] = None) -> CudaKernel:
        """Record one generated kernel and its launch. ``cost``: its FLOPs and bytes (default: the
        cost model's for IR kernel ``ir_index``)."""
        body = dce(body, set())
        cost = self.costs[ir_index] if cost is None else cost
        params = kc.decls()
        if self.size_names:  # the named sizes the kernel reads: by value (the launcher's sz_<name>)
            lines: list = []
            emit(body, 0, lines)
            params += [(f"const long long sz_{s}", f"sz_{s}") for s in size_names_in("\n".join(lines))]
        ck = CudaKernel(name, ir_index, kind, comment, tuple(grid), tuple(block), shared, body, params,
                        cost.flops, cost.special, cost.bytes_read, cost.bytes_written)
        self.kernels.append(ck)
        g = ", ".join(str(x) for x in grid)
        b = ", ".join(str(x) for x in block)
        args = ", ".join(a for _, a in ck.params)
        self.launcher.append(Stmt(f"// {name}: {comment[0]}"))
        self.launcher.append(Stmt(f"SD_LAUNCH({name}, dim3({g}), dim3({b}), 0, stream, {args});\n"
                                  f"SD_CHECK(cudaGetLastError());"))
        return ck

    def _grid_loop(self, var: str, n) -> str:
        I = self.idx
        return (f"for ({I} {var} = ({I})blockIdx.x * ({I})blockDim.x + ({I})threadIdx.x; {var} < {cdim(n)}; "
                f"{var} += ({I})gridDim.x * ({I})blockDim.x) {{")

    def _coords(self, out: list, flat: str, shape: tuple, names: list) -> tuple:
        """Definitions of the coordinates of flat index ``flat`` in ``shape`` (pruned when unused)."""
        point = []
        st = strides(shape)
        first = True
        for ax, (s, t) in enumerate(zip(shape, st)):
            if s == 1:
                point.append("0")
                continue
            nm = names[ax]
            if first:
                e = f"{flat} / {cdim(t)}" if t != 1 else flat
            else:
                e = f"{flat} / {cdim(t)} % {cdim(s)}" if t != 1 else f"{flat} % {cdim(s)}"
            first = False
            if e == flat:
                point.append(flat)
                continue
            out.append(Stmt(f"const {self.idx} {nm} = {e};", nm))
            point.append(nm)
        return tuple(point)

    def _kernel_loop(self, ki: int, k: LoopKernel) -> None:
        dom = tuple(k.domain)
        N = prod_shape(dom)
        nthreads = block_threads(N)
        cap = MAX_PARTIAL_BLOCKS if k.accums else MAX_GRID
        grid = grid_size(N, nthreads, cap)  # (a C expression for a symbolic domain: computed at launch)
        split = isinstance(grid, str) or grid > 1  # more than one block (possibly): partial results
        nblocks = cap if isinstance(grid, str) else grid  # (at most)
        kc = KernelCtx(self)
        body: list = []
        accs = []
        for j, (r, _x, _o) in enumerate(k.accums):
            a = f"acc{j}"
            body.append(Stmt(f"{CTYPE[r.dtype]} {a} = {reduce_ident(r.op, r.dtype)};"))
            accs.append(a)
        loop = Block(self._grid_loop("i", N), count=per_thread(N, nblocks * nthreads))
        body.append(loop)
        point = self._coords(loop.body, "i", dom, [f"d{a}" for a in range(len(dom))])
        ev = cuda_eval(kc, loop.body, self.idx, flat=("i", dom, point))
        for node, buf in k.stores:
            v = ev.ev(node, point, compute=self.p.where.get(node) is buf)
            loop.body.append(Stmt(f"{ev.store_ref(buf, node, point)} = {v};"))
        comment = [f"loop over {list(dom)}: " + "; ".join(
            [f"{node_label(n)} -> {self.buf_name(b)}" for n, b in k.stores] +
            [f"{r.op}({node_label(x)}) -> {self.buf_name(o)}" for r, x, o in k.accums])]
        for (r, x, _o), a in zip(k.accums, accs):
            v = ev.convert(ev.ev(x, point), x.dtype, r.dtype)
            upd = reduce_update(r.op, a, v)
            loop.body.append(Stmt(f"{a} = {upd};", flops=1))
        shared = 0
        if k.accums:
            comment.append("grid-stride loop; each thread accumulates, the block reduces with warp shuffles "
                           "and shared memory" + ("; one partial result per block, combined by the next kernel"
                                                  if split else ""))
            dts = sorted({r.dtype for r, _, _ in k.accums})
            for dt in dts:
                body.append(Stmt(f"__shared__ {CTYPE[dt]} red_{dt}[32];"))
                shared += 32 * np.dtype(dt).itemsize
            finals = []
            for j, ((r, x, o), a) in enumerate(zip(k.accums, accs)):
                body.append(Stmt(f"{a} = sd_block_allreduce({a}, red_{r.dtype}, {REDUCE_FUNCTOR[r.op]}(), "
                                 f"{reduce_ident(r.op, r.dtype)});"))
                if split:
                    part = self.partial(f"partial {r.op}s of {node_label(r)} (one per block of k{ki})", r.dtype, nblocks)
                    tgt = kc.raw(part, CTYPE[r.dtype], nblocks * np.dtype(r.dtype).itemsize, write=True)
                    finals.append((r, o, part))
                    body.append(Stmt(f"if (threadIdx.x == 0) {tgt}[blockIdx.x] = {a};"))
                else:
                    body.append(Stmt(f"if (threadIdx.x == 0) {kc.buf(o, write=True)}[0] = {a};"))
        else:
            comment.append("grid-stride loop, one element per iteration")
        name = f"k{ki}_loop"
        partial_bytes = nblocks * sum(np.dtype(r.dtype).itemsize for r, _, _ in k.accums) if k.accums and split else 0
        self._add(kc, name, ki, "loop", comment, (grid,), (nthreads,), body, shared,
                  self._plus_partials(ki, partial_bytes))
        if k.accums and split:
            self._finish_partials(ki, name, finals, grid, nblocks)

    def _finish_partials(self, ki: int, src: str, finals: list, count, bound: int) -> None:
        """The second pass of a loop kernel's total reductions: ``count`` partial results (an int, or the
        C expression of the first pass's grid), at most ``bound``."""
        kc = KernelCtx(self)
        nthreads = block_threads(bound)
        body: list = []
        for dt in sorted({r.dtype for r, _, _ in finals}):
            body.append(Stmt(f"__shared__ {CTYPE[dt]} red_{dt}[32];"))
        for j, (r, o, part) in enumerate(finals):
            T = CTYPE[r.dtype]
            p = kc.raw(part, T, bound * np.dtype(r.dtype).itemsize)
            body.append(Stmt(f"{T} a{j} = {reduce_ident(r.op, r.dtype)};"))
            upd = reduce_update(r.op, f"a{j}", f"{p}[b]")
            body.append(Block(f"for (int b = (int)threadIdx.x; b < {count}; b += (int)blockDim.x) {{",
                              [Stmt(f"a{j} = {upd};", flops=1)], count=per_thread(count, nthreads)))
            body.append(Stmt(f"a{j} = sd_block_allreduce(a{j}, red_{r.dtype}, {REDUCE_FUNCTOR[r.op]}(), "
                             f"{reduce_ident(r.op, r.dtype)});"))
            body.append(Stmt(f"if (threadIdx.x == 0) {kc.buf(o, write=True)}[0] = a{j};"))
        comment = [f"combine the {count} per-block partial results of {src}: " +
                   "; ".join(f"{r.op} {node_label(r)} -> {self.buf_name(o)}" for r, o, _ in finals),
                   "one block; fixed combination order (deterministic, no atomics)"]
        shared = sum(32 * np.dtype(dt).itemsize for dt in {r.dtype for r, _, _ in finals})
        rd, wr = kc.traffic()
        self._add(kc, f"k{ki}_total", ki, "loop_total", comment, (1,), (nthreads,), body, shared,
                  Cost(bound * len(finals), 0, rd, wr))  # one combine per partial result (at most)

    def _kernel_reduce(self, ki: int, k: ReduceKernel) -> None:
        r, out = k.node, k.out
        x = r.inputs[0]
        axes = set(r.attrs["axes"])
        T, I = CTYPE[r.dtype], self.idx
        kept = [a for a in range(x.ndim) if a not in axes]
        red = [a for a in range(x.ndim) if a in axes]
        kshape = tuple(x.shape[a] for a in kept)
        rshape = tuple(x.shape[a] for a in red)
        M, R = prod_shape(kshape), prod_shape(rshape)
        opname = REDUCE_FUNCTOR[r.op]
        ident = reduce_ident(r.op, r.dtype)
        inner_reduced = x.ndim - 1 in axes
        # contiguous runs: a block per output, threads along the run (a symbolic run too)
        row_mode = inner_reduced and (isinstance(R, Dim) or R >= 32)
        nthreads = block_threads(R) if row_mode else block_threads(M)
        gx = grid_size(M, 1, MAX_GRID) if row_mode else grid_size(M, nthreads, MAX_GRID)
        S, S_max = self._chunks(R, nthreads * 16 if row_mode else 256, gx)
        split = S_max > 1  # the reduced elements in chunks (grid y), combined by a second kernel
        CH = ceil_div(R, S) if isinstance(S, int) and isinstance(R, int) else "r_ch"
        kc = KernelCtx(self)
        body: list = []
        part = None
        if split:
            part = self.partial(f"partial {r.op}s of {node_label(r)} ({S} chunks x {M})", r.dtype, S_max * M)
            dst = kc.raw(part, T, S_max * M * np.dtype(r.dtype).itemsize, write=True)
            target = f"{dst}[({I})blockIdx.y * {cdim(M)} + o]"
        else:
            target = f"{kc.buf(out, write=True)}[o]"
        if split:
            if CH == "r_ch":  # chunks of ceil(R / gridDim.y) (the chunk count is the launch's)
                body.append(Stmt(f"const {I} r_ch = ({cdim(R)} + ({I})gridDim.y - 1) / ({I})gridDim.y;"))
            lo = f"({I})blockIdx.y * {CH}"
            body.append(Stmt(f"const {I} r_lo = {lo};"))
            body.append(Stmt(f"const {I} r_hi = r_lo + {CH} < {cdim(R)} ? r_lo + {CH} : {cdim(R)};"))
            rlo, rhi = "r_lo", "r_hi"
        else:
            rlo, rhi = "0", cdim(R)
        if row_mode:
            body.insert(0, Stmt(f"__shared__ {T} red_{r.dtype}[32];"))
            outer = Block(f"for ({I} o = ({I})blockIdx.x; o < {cdim(M)}; o += ({I})gridDim.x) {{",
                          count=per_thread(M, gx))
        else:
            outer = Block(self._grid_loop("o", M), count=per_thread(M, gx if isinstance(gx, str) else gx * nthreads))
        body.append(outer)
        kpoint = self._coords(outer.body, "o", kshape, [f"o{a}" for a in kept])
        outer.body.append(Stmt(f"{T} acc = {ident};"))
        if row_mode:
            start = f"{rlo} + ({I})threadIdx.x" if rlo != "0" else f"({I})threadIdx.x"
            inner = Block(f"for ({I} r = {start}; r < {rhi}; r += ({I})blockDim.x) {{", count=per_thread(CH, nthreads))
        else:
            inner = Block(f"for ({I} r = {rlo}; r < {rhi}; ++r) {{", count=per_thread(CH, 1))
        outer.body.append(inner)
        rpoint = self._coords(inner.body, "r", rshape, [f"r{a}" for a in red])
        pt = [None] * x.ndim
        for a, p in zip(kept, kpoint):
            pt[a] = p
        for a, p in zip(red, rpoint):
            pt[a] = p
        ev = cuda_eval(kc, inner.body, I)
        v = ev.convert(ev.ev(x, pt), x.dtype, r.dtype)
        inner.body.append(Stmt(f"acc = {reduce_update(r.op, 'acc', v)};", flops=1))
        if row_mode:
            outer.body.append(Stmt(f"acc = sd_block_allreduce(acc, red_{r.dtype}, {opname}(), {ident});"))
            outer.body.append(Stmt(f"if (threadIdx.x == 0) {target} = acc;"))
        else:
            outer.body.append(Stmt(f"{target} = acc;"))
        how = ("a block per output, threads along the reduced elements, block reduction" if row_mode
               else "a thread per output, sequential over the reduced elements")
        comment = [f"{r.op} over axes {sorted(axes)} of {node_label(x)} {list(x.shape)} -> {self.buf_name(out)} "
                   f"({node_label(r)}, {M} outputs x {R} elements)",
                   how + (f"; the reduced elements split in {S} chunks (grid y), combined by the next kernel"
                          if split else "")]
        grid = (gx, S) if split else (gx,)
        self._add(kc, f"k{ki}_{r.op}", ki, "reduce", comment, grid, (nthreads,), body,
                  32 * np.dtype(r.dtype).itemsize if row_mode else 0,
                  self._plus_partials(ki, S_max * M * np.dtype(r.dtype).itemsize if split else 0))
        if split:
            kc2 = KernelCtx(self)
            nt2 = block_threads(M)
            g2 = grid_size(M, nt2, MAX_GRID)
            p = kc2.raw(part, T, S_max * M * np.dtype(r.dtype).itemsize)
            loop = Block(self._grid_loop("o", M), count=per_thread(M, g2 * nt2 if isinstance(g2, int) else g2))
            loop.body.append(Stmt(f"{T} acc = {p}[o];"))
            upd = reduce_update(r.op, "acc", f"{p}[s * {cdim(M)} + o]")
            loop.body.append(Block(f"for (int s = 1; s < {S}; ++s) {{", [Stmt(f"acc = {upd};", flops=1)],
                                   count=per_thread(S_max - 1, 1)))
            loop.body.append(Stmt(f"{kc2.buf(out, write=True)}[o] = acc;"))
            rd, wr = kc2.traffic()
            self._add(kc2, f"k{ki}_{r.op}_total", ki, "reduce_total",
                      [f"combine the {S} chunk results of k{ki}_{r.op} -> {self.buf_name(out)}",
                       "a thread per output, chunks in order (deterministic)"], (g2,), (nt2,), [loop], 0,
                      Cost((S_max - 1) * M, 0, rd, wr))  # S - 1 combines per output (at most)

    @staticmethod
    def _chunks(R, per: int, gx) -> tuple:
        """(S, S_max): the chunks a reduction of ``R`` elements over ``gx`` blocks in x splits into,
        ceil(R / per) in [1, max(1, min(256 // gx, 64))] (an int, or, with symbolic sizes, the C expression
        ``sd_split(...)`` computed at launch), and its largest value (the partial array's length)."""
        top = max(1, min(256 // gx, 64)) if isinstance(gx, int) else 64
        if isinstance(R, int):
            top = min(top, max(1, ceil_div(R, per)))
            if isinstance(gx, int) or top == 1:
                return top, top
        elif top == 1:
            return 1, 1
        return f"sd_split({cdim(R)}, {per}, {gx}, 64)", top

    def _kernel_row(self, ki: int, k: RowKernel) -> None:
        n, out, axis = k.node, k.out, k.axis
        x = n.inputs[0]
        T, I, dt = CTYPE[n.dtype], self.idx, n.dtype
        f = math_suffix(dt)
        L = x.shape[axis]
        odims = [d for d in range(x.ndim) if d != axis]
        oshape = tuple(x.shape[d] for d in odims)
        ROWS = prod_shape(oshape)
        warp_mode = not isinstance(L, Dim) and L <= WARP_ROW_MAX  # (a symbolic row: a block per row)
        kc = KernelCtx(self)
        body: list = []
        if warp_mode:
            rpb = BLOCK // 32 if isinstance(ROWS, Dim) else max(1, min(BLOCK // 32, ROWS))  # rows (warps) per block
            nthreads = 32 * rpb
            grid = grid_size(ROWS, rpb, MAX_GRID)
            body.append(Stmt("const int lane = (int)(threadIdx.x & 31u);"))
            loop = Block(f"for ({I} row = ({I})blockIdx.x * {rpb} + ({I})(threadIdx.x >> 5); row < {cdim(ROWS)}; "
                         f"row += ({I})gridDim.x * {rpb}) {{", count=per_thread(ROWS, grid * rpb if isinstance(grid, int) else grid))
            jstart, jstep, per = "lane", "32", 32
            red = lambda v, op: f"{v} = sd_warp_allreduce({v}, {op}());"  # noqa: E731
            shared = 0
        else:
            nthreads = BLOCK
            grid = grid_size(ROWS, 1, MAX_GRID)
            body.append(Stmt(f"__shared__ {T} red_{dt}[32];"))
            loop = Block(f"for ({I} row = ({I})blockIdx.x; row < {cdim(ROWS)}; row += ({I})gridDim.x) {{",
                         count=per_thread(ROWS, grid))
            jstart, jstep, per = "(int)threadIdx.x", "(int)blockDim.x", nthreads
            red = lambda v, op: (f"{v} = sd_block_allreduce({v}, red_{dt}, {op}(), "  # noqa: E731
                                 f"{reduce_ident('sum' if op == 'SdSum' else 'max', dt)});")
            shared = 32 * np.dtype(dt).itemsize
        body.append(loop)
        opoint = self._coords(loop.body, "row", oshape, [f"o{d}" for d in odims])

        def jloop(label: str) -> tuple[Block, PointEval, tuple]:
            b = Block(f"for ({I} j = {jstart}; j < {cdim(L)}; j += {jstep}) {{  // {label}", count=per_thread(L, per))
            loop.body.append(b)
            pt = list(opoint)
            pt.insert(axis, "j")
            return b, cuda_eval(kc, b.body, I), tuple(pt)

        loop.body.append(Stmt(f"{T} m = {flit(-np.inf, dt)};"))
        b, ev, pt = jloop("pass 1: row maximum")
        b.body.append(Stmt(f"m = sd_max(m, {ev.convert(ev.ev(x, pt), x.dtype, dt)});", flops=1))
        loop.body.append(Stmt(red("m", "SdMax")))
        loop.body.append(Stmt(f"if (!(fabs{f}(m) < {flit(np.inf, dt)})) m = {flit(0, dt)};  "
                              f"// rows of -inf / inf / nan: no shift"))
        loop.body.append(Stmt(f"{T} s = {flit(0, dt)};"))
        b, ev, pt = jloop("pass 2: sum of exp(x - max)")
        v = ev.convert(ev.ev(x, pt), x.dtype, dt)
        e = ev.em.bind(T, f"exp{f}({v} - m)", flops=2, special=1)
        b.body.append(Stmt(f"s = s + {e};", flops=1))
        loop.body.append(Stmt(red("s", "SdSum")))
        oname = kc.buf(out, write=True)
        if n.op == "softmax":
            loop.body.append(Stmt(f"const {T} inv = {flit(1, dt)} / s;", flops=1))
            b, ev, pt = jloop("pass 3: write exp(x - max) / sum")
            v = ev.convert(ev.ev(x, pt), x.dtype, dt)
            e = ev.em.bind(T, f"exp{f}({v} - m)", flops=2, special=1)
            b.body.append(Stmt(f"{oname}[{ev.offset(n.shape, pt)}] = {e} * inv;", flops=1))
        elif n.op == "log_softmax":
            loop.body.append(Stmt(f"const {T} ls = log{f}(s);", special=1))
            b, ev, pt = jloop("pass 3: write (x - max) - log(sum), as numpy (keeps log(sum) next to a large max)")
            v = ev.convert(ev.ev(x, pt), x.dtype, dt)
            b.body.append(Stmt(f"{oname}[{ev.offset(n.shape, pt)}] = ({v} - m) - ls;", flops=2))
        else:  # logsumexp: one value per row; the output's flat index is the row index
            first = "lane == 0" if warp_mode else "threadIdx.x == 0"
            loop.body.append(Stmt(f"if ({first}) {oname}[row] = m + log{f}(s);", flops=1, special=1))
        how = (f"a warp per row ({rpb} rows per block), warp-shuffle reductions" if warp_mode
               else "a block per row, block reductions (warp shuffles + shared memory)")
        comment = [f"{n.op} along axis {axis} of {node_label(x)} {list(x.shape)} -> {self.buf_name(out)} "
                   f"({ROWS} rows of {L})", how + "; passes: max, sum of exp, write"]
        self._add(kc, f"k{ki}_{n.op}", ki, "row", comment, (grid,), (nthreads,), body, shared)

    def _kernel_matmul(self, ki: int, k: MatmulKernel) -> None:
        where = self.p.where
        kc = KernelCtx(self)
        A, B = kc.buf(where[k.a]), kc.buf(where[k.b])
        bias = kc.buf(where[k.bias]) if k.bias is not None else None
        C = kc.buf(k.out, write=True)
        btab = None
        if k.b_offsets is not None:  # op(B)[k, j] = B[rk[k] + cj[j]]: rk then cj in one table (codegen/gather.py)
            btab = f"sd_btab{ki}"
            self.tables.append((btab, list(k.b_offsets[0]) + list(k.b_offsets[1])))
        code, comment, grid, shared = matmul_source(k, A, B, C, bias, self.idx, self.buf_name(k.out), btab)
        self._add(kc, f"k{ki}_matmul", ki, "matmul", comment, grid, (256,), [Stmt(code)], shared)

    def _plus_partials(self, ki: int, nbytes: int) -> Cost:
        """IR kernel ``ki``'s cost, plus the partial-result array its first CUDA pass writes."""
        c = self.costs[ki]
        return replace(c, bytes_written=c.bytes_written + nbytes)

    # one rule per kernel type (renderers dispatch on the kernel's type, not on a name)
    KERNEL_RULES = {LoopKernel: _kernel_loop, ReduceKernel: _kernel_reduce, RowKernel: _kernel_row,
                    MatmulKernel: _kernel_matmul,
                    ScatterKernel: render_scatter, ScanKernel: render_scan,
                    SortKernel: render_sort}  # cuda/render_extra.py

    def stats(self) -> list[dict]:
        out = []
        for ck in self.kernels:
            moved = ck.bytes_read + ck.bytes_written
            fixed = all(isinstance(g, int) for g in ck.grid)
            sym = isinstance(moved, Dim) or isinstance(ck.flops, Dim)
            out.append({
                "name": ck.name,
                "kind": ck.kind,
                "ir_kernel": ck.ir_index,
                "grid": ck.grid,  # ints, or C expressions of the sizes (computed at launch)
                "block": ck.block,
                "threads": int(np.prod(ck.grid)) * int(ck.block[0]) if fixed else None,
                "shared_bytes": int(ck.shared_bytes),
                "flops": _count(ck.flops),  # ints, or Dim polynomials of the named sizes
                "special_ops": _count(ck.special),
                "bytes_read": _count(ck.bytes_read),
                "bytes_written": _count(ck.bytes_written),
                "intensity": None if sym else (ck.flops / moved) if moved else 0.0,  # (None: symbolic)
                "what": ck.comment[0],
            })
        return out


def _count(v):
    """A statistic: an int, or a Dim polynomial of the named sizes (symbolic shapes)."""
    return v if isinstance(v, Dim) else int(round(v))


def render_cuda(program: Program, name: str = "sd_entry") -> tuple[str, str]:
    """The CUDA C source (``.cu``) and C header of a lowered Program."""
    return CudaRenderer(program, name).render()


def kernel_stats(program: Program, name: str = "sd_entry") -> list[dict]:
    """Per generated CUDA kernel: name, kind, grid, block, shared bytes, and the cost model's numbers
    (``codegen/cost.py``) of the IR kernel it renders: FLOPs (elementwise ops by cost class, a matmul
    2MNK), ``special_ops`` (expensive calls among them), the compulsory bytes read / written (every
    buffer counted once: a lower bound on DRAM traffic; plus the partial-result arrays of split
    reductions), and ``intensity`` = FLOPs / bytes for a roofline estimate. The second passes that
    combine partial results (kinds ``loop_total``, ``reduce_total``) count one FLOP per combine."""
    r = CudaRenderer(program, name)
    r.render()
    return r.stats()
