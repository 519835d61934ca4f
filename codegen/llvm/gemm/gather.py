"""Packing a gathered op(B): implicit GEMM for convolutions.

An im2col matrix is a view of the (padded) input: its element (k, j) -- k a (kernel offset, channel), j an
(image, output position) -- sits at ``x + rk[k] + cj[j]`` for two offset tables, whatever the stride,
dilation and padding. A product whose op(B) is such a view reads it through the tables while packing its
KC x NC blocks into the usual zero-padded NR-wide panels, instead of reading a materialised copy: the
copy (a full write and read of K x N elements, 58 MB for a 3x3 64-channel layer on 8 56x56 images) is gone.

* ``packgrows<NV>`` (the columns have unit runs: an image row of output positions): per k, each VL-vector of
  the panel row is one contiguous load where ``cj[j0 + VL - 1] - cj[j0] == VL - 1`` and one gather where
  it crosses a row boundary.
* ``packgcols<NV>`` (the rows have unit runs: op(B) = im2col^T, a weight gradient): VL columns at a time,
  VL consecutive k of each read the same way, then transposed in registers like ``packtrans``.

Signature ``void pack(ptr src, ptr rk, ptr cj, ptr dst, i64 kc, i64 nc)``: ``rk`` points at the block's
first row offset, ``cj`` at its first column offset. The table holds K row offsets, N column offsets and
NR + VL zeros, so the vector loads of offsets past a block's end stay inside it (their lanes are masked).
"""
from __future__ import annotations

from llvmlite import ir

from symdiff.codegen.llvm.gemm.ir import GATHER_PACK_ARGS, I32, I64, c64
from symdiff.codegen.llvm.gemm.kernels import SharedKernels


def table_pad(nv: int, VL: int) -> int:
    """Zeros after the column offsets (see the module docstring)."""
    return nv * VL + VL


class GatherPackers(SharedKernels):
    """The two gathered-op(B) packers (shared functions like the others, named by their static parameters)."""

    def _packer(self, kind: str, nv: int) -> tuple:
        """(the packer ``sdgemm.<dtype>.pack<kind><nv>``, None) when the module has it, else (a new function
        with the packers' signature, a builder at its entry)."""
        name = f"sdgemm.{self.tag}.pack{kind}{nv}"
        fn = self.existing(name)
        if fn is not None:
            return fn, None
        fn = self.new_fn(name, GATHER_PACK_ARGS)
        for i in (0, 1, 2, 3):
            fn.args[i].add_attribute("noalias")
        return fn, ir.IRBuilder(fn.append_basic_block("entry"))

    def _offsets(self, b, table, at):
        """<VL x i32> of table[at .. at + VL) (in bounds: the table is padded)."""
        vt = ir.VectorType(I32, self.VL)
        return b.load(b.gep(table, [at], inbounds=True, source_etype=I32), typ=vt, align=4)

    def _unit_run(self, b, table, at):
        """table[at + VL - 1] - table[at] == VL - 1: the VL offsets from ``at`` are consecutive (whenever
        they are increasing with no repeats, which offsets of distinct view elements are)."""
        first = b.load(b.gep(table, [at], inbounds=True, source_etype=I32), typ=I32, align=4)
        last = b.load(b.gep(table, [b.add(at, c64(self.VL - 1))], inbounds=True, source_etype=I32), typ=I32, align=4)
        return first, b.icmp_signed("==", b.sub(last, first), ir.Constant(I32, self.VL - 1))

    def pack_gather_rows(self, nv: int) -> ir.Function:
        """op(B)[k, j] = src[rk[k] + cj[j]] for k < kc, j < nc -> panels of kc x NR (panel stride kc * NR),
        zero padded; k outer so every source row is read front to back."""
        fn, b = self._packer("grows", nv)
        if b is None:
            return fn
        VL, NR = self.VL, nv * self.VL
        src, rk, cj, dst, kc, nc = fn.args
        npan = b.udiv(b.add(nc, c64(NR - 1)), c64(NR))
        pstride = b.mul(kc, c64(NR))
        with self.loop(b, 0, kc, 1, "gk") as k:
            roff = b.load(b.gep(rk, [k], inbounds=True, source_etype=I32), typ=I32, align=4)
            srow = b.gep(src, [b.sext(roff, I64)], inbounds=True, source_etype=self.ety)
            drow = self.gep(b, dst, b.mul(k, c64(NR)))
            with self.loop(b, 0, npan, 1, "gp") as pi:
                dp = self.gep(b, drow, b.mul(pi, pstride))
                for v in range(nv):
                    j0 = b.add(b.mul(pi, c64(NR)), c64(v * VL))
                    lanes = b.sub(nc, j0)
                    first, run = self._unit_run(b, cj, j0)
                    whole = b.and_(run, b.icmp_signed(">=", lanes, c64(VL)))
                    slot = self.gep(b, dp, v * VL)
                    with b.if_else(whole) as (plain, edge):
                        with plain:
                            x = self.vload(b, b.gep(srow, [b.sext(first, I64)], inbounds=True, source_etype=self.ety))
                            b.store(x, slot, align=64)
                        with edge:
                            x = self.gather(b, srow, self._offsets(b, cj, j0), self.runtime_mask(b, lanes))
                            b.store(x, slot, align=64)
        b.ret_void()
        return fn

    def pack_gather_cols(self, nv: int) -> ir.Function:
        """The same panels from VL columns at a time: column j's k run starts at src + cj[j]; VL consecutive
        k of VL columns are loaded (contiguous, or gathered across a row boundary) and transposed in
        registers. Writes up to VL - 1 rows past kc in a panel (the buffer's slack, as ``packtrans``)."""
        fn, b = self._packer("gcols", nv)
        if b is None:
            return fn
        VL, NR = self.VL, nv * self.VL
        src, rk, cj, dst, kc, nc = fn.args
        ngrp = b.udiv(b.add(nc, c64(VL - 1)), c64(VL))
        ones = ir.Constant(self.mty, [1] * VL)
        zeros = ir.Constant(self.mty, [0] * VL)
        with self.loop(b, 0, ngrp, 1, "gg") as g:
            jv, dbase = self.column_group(b, dst, g, nv, kc)
            colp, rmask = [], []
            for r in range(VL):
                jr = b.add(jv, c64(r))
                off = b.load(b.gep(cj, [jr], inbounds=True, source_etype=I32), typ=I32, align=4)
                colp.append(b.gep(src, [b.sext(off, I64)], inbounds=True, source_etype=self.ety))
                rmask.append(b.select(b.icmp_signed("<", jr, nc), ones, zeros))
            with self.loop(b, 0, kc, VL, "gk") as k0:
                kmask = self.runtime_mask(b, b.sub(kc, k0))
                first, run = self._unit_run(b, rk, k0)
                whole = b.and_(run, b.icmp_signed("<=", b.add(k0, c64(VL)), kc))
                dk = self.gep(b, dbase, b.mul(k0, c64(NR)))
                with b.if_else(whole) as (plain, edge):
                    with plain:
                        start = b.sext(first, I64)
                        rows = [self.mload(b, b.gep(colp[r], [start], inbounds=False, source_etype=self.ety), rmask[r])
                                for r in range(VL)]
                        for t, col in enumerate(self.transpose(b, rows)):
                            b.store(col, self.gep(b, dk, t * NR), align=64)
                    with edge:
                        idx = self._offsets(b, rk, k0)
                        rows = [self.gather(b, colp[r], idx, b.and_(kmask, rmask[r])) for r in range(VL)]
                        for t, col in enumerate(self.transpose(b, rows)):
                            b.store(col, self.gep(b, dk, t * NR), align=64)
        b.ret_void()
        return fn
