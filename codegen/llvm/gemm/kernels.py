"""The shared GEMM functions (``sdgemm.<f32|f64>.*``): micro-kernels, packers, the dot and outer
kernels and the driver loop nest. Their names encode every static parameter, so one compiled copy
serves every product of a dtype (see ``codegen/llvm/split.py`` for how the JIT reuses them)."""
from __future__ import annotations

from typing import Optional

from llvmlite import ir

from symdiff.codegen.llvm.gemm.ir import (ARG_TYPES, BTAB, EDGE_PARTS, GATHER_PACK_ARGS, PRM, I32, I64, PTR, VOID, c64,
                                          IndirectCallee, Kit, prm_type)
from symdiff.codegen.llvm.gemm.plan import UK_BIAS_COL, UK_BIAS_ROW, UK_EPI, UK_LOAD_C, UK_RELU, PF_A_DIST, PF_C, ceil_div

# ----------------------------------------------------------------------------- shared kernels
class SharedKernels(Kit):
    """Functions shared by every product of one module and dtype (strides at run time).
    Their names encode all their static parameters, so they are found again in the module."""

    def existing(self, name: str) -> Optional[ir.Function]:
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
        fn = ir.Function(self.m, ir.FunctionType(VOID, [ARG_TYPES[t] for t in args]), name=name)
        fn.sd_external = True
        return fn

    def _tile_kernel(self, name: str):
        """(fn, builder, flag) for a new tile kernel with the common signature
        (ptr a, i64, i64, ptr b, i64, ptr c, i64 ldc, ptr bias, i64 kc, i64 lanes, i32 flags);
        flag(bit) tests a bit of the flags argument."""
        fn = self.new_fn(name, [PTR, I64, I64, PTR, I64, PTR, I64, PTR, I64, I64, I32])
        for i in (0, 3, 5, 7):
            fn.args[i].add_attribute("noalias")
        b = ir.IRBuilder(fn.append_basic_block("entry"))
        flags = fn.args[10]

        def flag(bit):
            return b.icmp_unsigned("!=", b.and_(flags, ir.Constant(I32, bit)), ir.Constant(I32, 0))
        return fn, b, flag

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
        fn = self.existing(name)
        if fn is not None:
            return fn
        VL = self.VL
        fn, b, flag = self._tile_kernel(name)
        a, sai, sak, bp, sbk, c, ldc, biasp, kc, lanes, flags = fn.args

        crow = [c if r == 0 else self.gep(b, c, b.mul(ldc, c64(r))) for r in range(mr)]
        if PF_C:
            # C's tile is read (UK_LOAD_C) and written after the k loop: its lines are fetched now,
            # under the loop, instead of stalling the epilogue (first and last line of each row)
            for r in range(mr):
                for off in sorted({0, nv * VL - 1}):
                    self.prefetch(b, b.gep(crow[r], [c64(off)], inbounds=False, source_etype=self.ety), write=True)
        if pa:
            sai, sak = c64(1), c64(mr)
        arow = [a if r == 0 else self.gep(b, a, b.mul(sai, c64(r))) for r in range(mr)]
        tmask = self.runtime_mask(b, lanes)
        lmask = [tmask if (v == nv - 1 and not pb) else None for v in range(nv)]
        n_set = mr * nv
        init = [self.vzero] * (ks * n_set)

        def step(b, k, accs, s):
            bk = self.gep(b, bp, b.mul(k, sbk))
            bv = [self.vload(b, self.gep(b, bk, v * VL), lmask[v]) for v in range(nv)]
            koff = b.mul(k, sak)
            if PF_A_DIST and not pa and mr >= 4:
                # Software prefetch of op(A) a few k ahead: with A stored K x M (trans_a) every
                # k step reads a new, far-strided line that the hardware prefetchers miss.
                kpf = b.mul(b.add(k, c64(PF_A_DIST)), sak)
                for r in sorted({0, mr - 1}):    # (may point past A: not inbounds)
                    self.prefetch(b, b.gep(arow[r], [kpf], inbounds=False, source_etype=self.ety))
            for r in range(mr):
                av = self.splat(b, self.sload(b, self.gep(b, arow[r], koff)))
                for v in range(nv):
                    idx = s * n_set + r * nv + v
                    accs[idx] = self.fma(b, av, bv[v], accs[idx])

        def main_body(b, it, phis):
            accs = list(phis)
            k0 = b.mul(it, c64(U))
            for u in range(U):
                step(b, k0 if u == 0 else b.add(k0, c64(u)), accs, u % ks)
            return accs

        if U > 1:
            nmain = b.udiv(kc, c64(U))
            accs = self.carried_loop(b, nmain, init, main_body, name="km")
            kstart = b.mul(nmain, c64(U))

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
        cps = [[self.gep(b, crow[r], v * VL) for v in range(nv)] for r in range(mr)]
        whole = b.icmp_signed("==", lanes, c64(VL))
        epi = flag(UK_EPI)
        extra = b.and_(epi, b.icmp_unsigned("!=", b.and_(flags, ir.Constant(I32, UK_BIAS_COL | UK_BIAS_ROW | UK_RELU)),
                                            ir.Constant(I32, 0)))

        def general(b):
            """C = max(acc + old C + bias, lo), relu as max(x, lo) with lo = 0 or -inf; loads a flag
            disables use all-false masks (they read nothing and give zeros). Only an N-edge tile's last
            vector per row stores masked (a masked store is microcoded on AMD cores: ~40 uops)."""
            ones = ir.Constant(self.mty, [1] * VL)
            offm = ir.Constant(self.mty, [0] * VL)
            cmask = b.select(flag(UK_LOAD_C), ones, offm)
            cmask_l = b.and_(cmask, tmask)
            bc = b.and_(epi, flag(UK_BIAS_COL))
            bias_v = [self.mload(b, self.gep(b, biasp, v * VL),
                                 b.select(bc, tmask if v == nv - 1 else ones, offm)) for v in range(nv)]
            br_on = b.and_(epi, flag(UK_BIAS_ROW))
            bias_r = [self.mload(b, self.gep(b, biasp, q * VL),
                                 b.select(br_on, self.const_mask(min(VL, mr - q * VL)), offm))
                      for q in range(ceil_div(mr, VL))]
            lo = self.splat(b, b.select(b.and_(epi, flag(UK_RELU)), self.fzero,
                                        ir.Constant(self.ety, float("-inf"))))
            xs = []
            for r in range(mr):
                br = b.shuffle_vector(bias_r[r // VL], ir.Constant(self.vty, ir.Undefined),
                                      ir.Constant(ir.VectorType(I32, VL), [r % VL] * VL))
                for v in range(nv):
                    cv = self.mload(b, cps[r][v], cmask_l if v == nv - 1 else cmask)
                    x = b.fadd(b.fadd(b.fadd(accs[r * nv + v], cv), bias_v[v]), br)
                    xs.append(b.select(b.fcmp_ordered("<", x, lo), lo, x))     # max(x, lo), NaN kept
            with b.if_else(whole) as (plain, edge):
                with plain:
                    for q, x in enumerate(xs):
                        self.vstore(b, x, cps[q // nv][q % nv])
                with edge:
                    for q, x in enumerate(xs):
                        self.vstore(b, x, cps[q // nv][q % nv], tmask if q % nv == nv - 1 else None)

        # The common tile (whole vectors, no bias or relu to apply): C = acc, or C += acc with
        # UK_LOAD_C, in plain loads and stores and nothing else (measured on one Zen 3 core: the general
        # epilogue cost W1's products 8-12%; docs/performance.md)
        with b.if_else(b.and_(whole, b.not_(extra))) as (fast, other):
            with fast:
                with b.if_else(flag(UK_LOAD_C)) as (load, store):
                    with load:
                        for r in range(mr):
                            for v in range(nv):
                                self.vstore(b, b.fadd(accs[r * nv + v], self.vload(b, cps[r][v])), cps[r][v])
                    with store:
                        for r in range(mr):
                            for v in range(nv):
                                self.vstore(b, accs[r * nv + v], cps[r][v])
            with other:
                general(b)
        b.ret_void()
        return fn

    def outer_kernel(self, acc: bool, bias: str, relu: bool) -> ir.Function:
        """void outer(ptr a, i64 sai, ptr b, ptr c, i64 ldc, ptr bias, i64 m0, i64 m1, i64 n):
        C[i, j] (+)= a[i*sai] * b[j] (+ bias[j] | bias[i]) (relu) for m0 <= i < m1, j < n (K == 1
        products; b contiguous, or n == 1)."""
        name = f"sdgemm.{self.tag}.outer{int(acc)}{bias[0]}{int(relu)}"
        fn = self.existing(name)
        if fn is not None:
            return fn
        VL = self.VL
        fn = self.new_fn(name, [PTR, I64, PTR, PTR, I64, PTR, I64, I64, I64])
        for i in (0, 2, 3, 5):
            fn.args[i].add_attribute("noalias")
        a, sai, bp, c, ldc, biasp, m0, m1, n = fn.args
        b = ir.IRBuilder(fn.append_basic_block("entry"))
        U = 4
        nvec = b.udiv(n, c64(VL))
        ngrp = b.udiv(nvec, c64(U))
        jt = b.mul(nvec, c64(VL))
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
                j0 = b.mul(g, c64(U * VL))
                for u in range(U):
                    one(b, av, crow, b.add(j0, c64(u * VL)) if u else j0, i)
            with self.loop(b, b.mul(ngrp, c64(U)), nvec, 1, "ov") as v:
                one(b, av, crow, b.mul(v, c64(VL)), i)
            with b.if_then(has_tail):
                one(b, av, crow, jt, i, tmask)
        b.ret_void()
        return fn

    def pack_copy(self, nv: int) -> ir.Function:
        """void pack(ptr src, i64 sbk, ptr dst, i64 kc, i64 nc): src[k*sbk + j] for k < kc,
        j < nc -> ceil(nc/NR) panels of kc x NR (panel stride kc*NR), zero padded."""
        name = f"sdgemm.{self.tag}.packcopy{nv}"
        fn = self.existing(name)
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
        nfull = b.udiv(nc, c64(NR))
        jt = b.mul(nfull, c64(NR))
        pstride = b.mul(kc, c64(NR))
        masks = [self.runtime_mask(b, b.sub(nc, b.add(jt, c64(v * VL)))) for v in range(nv)]
        has_tail = b.icmp_signed("<", jt, nc)
        dtail = self.gep(b, dst, b.mul(nfull, pstride))
        with self.loop(b, 0, kc, 1, "pk") as k:
            srow = self.gep(b, src, b.mul(k, sbk))
            drow = self.gep(b, dst, b.mul(k, c64(NR)))
            with self.loop(b, 0, nfull, 1, "pp") as pi:
                sp = self.gep(b, srow, b.mul(pi, c64(NR)))
                dp = self.gep(b, drow, b.mul(pi, pstride))
                for v in range(nv):
                    x = self.vload(b, self.gep(b, sp, v * VL))
                    b.store(x, self.gep(b, dp, v * VL), align=64)
            with b.if_then(has_tail):
                sp = self.gep(b, srow, jt)
                dp = self.gep(b, dtail, b.mul(k, c64(NR)))
                for v in range(nv):
                    x = self.mload(b, self.gep(b, sp, v * VL), masks[v])
                    b.store(x, self.gep(b, dp, v * VL), align=64)
        b.ret_void()
        return fn

    def column_group(self, b, dst, g, nv: int, kc):
        """(first column, destination of its k = 0 row) of the g-th VL-column group of op(B)'s packed
        panels (NV vectors wide, panel stride kc * NR)."""
        VL = self.VL
        pan, v = b.udiv(g, c64(nv)), b.urem(g, c64(nv))
        return b.mul(g, c64(VL)), self.gep(b, dst, b.add(b.mul(pan, b.mul(kc, c64(nv * VL))), b.mul(v, c64(VL))))

    def pack_trans(self, nv: int) -> ir.Function:
        """void pack(ptr src, i64 sbj, ptr dst, i64 kc, i64 nc): src[j*sbj + k] (k-contiguous
        rows) for k < kc, j < nc -> the same panels as pack_copy, via VL x VL in-register
        transposes.  Writes up to VL-1 rows past kc in a panel (overwritten by the next panel;
        the buffer has VL*NR elements of slack for the last one)."""
        name = f"sdgemm.{self.tag}.packtrans{nv}"
        fn = self.existing(name)
        if fn is not None:
            return fn
        VL = self.VL
        NR = nv * VL
        fn = self.new_fn(name, [PTR, I64, PTR, I64, I64])
        fn.args[0].add_attribute("noalias")
        fn.args[2].add_attribute("noalias")
        src, sbj, dst, kc, nc = fn.args
        b = ir.IRBuilder(fn.append_basic_block("entry"))
        ngrp = b.udiv(b.add(nc, c64(VL - 1)), c64(VL))
        ones = ir.Constant(self.mty, [1] * VL)
        zeros = ir.Constant(self.mty, [0] * VL)
        with self.loop(b, 0, ngrp, 1, "pg") as g:
            jv, dbase = self.column_group(b, dst, g, nv, kc)
            sbase = self.gep(b, src, b.mul(jv, sbj))
            rowp = [sbase if r == 0 else self.gep(b, sbase, b.mul(sbj, c64(r))) for r in range(VL)]
            rmask = [b.select(b.icmp_signed("<", b.add(jv, c64(r)), nc), ones, zeros)
                     for r in range(VL)]
            with self.loop(b, 0, kc, VL, "pk") as k0:
                kmask = self.runtime_mask(b, b.sub(kc, k0))
                rows = [self.mload(b, self.gep(b, rowp[r], k0), b.and_(kmask, rmask[r]))
                        for r in range(VL)]
                cols = self.transpose(b, rows)
                dk = self.gep(b, dbase, b.mul(k0, c64(NR)))
                for t in range(VL):
                    b.store(cols[t], self.gep(b, dk, t * NR), align=64)
        b.ret_void()
        return fn


    def pack_a_copy(self, mr: int) -> ir.Function:
        """void packa(ptr src, i64 sak, ptr dst, i64 kc, i64 mc): op(A)[i, k] = src[k*sak + i]
        (A stored K x M) for i < mc, k < kc -> ceil(mc/mr) panels, panel q at dst + q*kc*mr
        holding its n = min(mr, mc - q*mr) rows with element (r, k) at k*n + r (the kernels
        for n rows read it with constant strides). Stores run up to VL elements past the last panel
        (the buffer has that slack: abuf_elems)."""
        name = f"sdgemm.{self.tag}.packa{mr}"
        fn = self.existing(name)
        if fn is not None:
            return fn
        VL = self.VL
        fn = self.new_fn(name, [PTR, I64, PTR, I64, I64])
        fn.args[0].add_attribute("noalias")
        fn.args[2].add_attribute("noalias")
        src, sak, dst, kc, mc = fn.args
        b = ir.IRBuilder(fn.append_basic_block("entry"))
        npan = b.udiv(b.add(mc, c64(mr - 1)), c64(mr))
        with self.loop(b, 0, npan, 1, "aq") as q:
            i0 = b.mul(q, c64(mr))
            nrow = self.smin(b, b.sub(mc, i0), mr)
            dq = self.gep(b, dst, b.mul(i0, kc))
            sq = self.gep(b, src, i0)
            masks = [self.runtime_mask(b, self.smin(b, b.sub(nrow, c64(c0)), min(VL, mr - c0)))
                     for c0 in range(0, mr, VL)]
            with self.loop(b, 0, kc, 1, "ak") as k:
                sk = self.gep(b, sq, b.mul(k, sak))
                dk = self.gep(b, dq, b.mul(k, nrow))
                for c, c0 in enumerate(range(0, mr, VL)):
                    # whole-vector store: its lanes past the panel's row (zeros) are overwritten by the
                    # next k's (stores run in address order; the buffer has slack after the last panel).
                    # Masked stores are microcoded on AMD cores: they made this packer ~8% of a product.
                    self.vstore(b, self.mload(b, self.gep(b, sk, c0), masks[c]), self.gep(b, dk, c0))
        b.ret_void()
        return fn

    def pack_a_rows(self, mr: int) -> ir.Function:
        """void packa(ptr src, i64 sai, ptr dst, i64 kc, i64 mc): op(A)[i, k] = src[i*sai + k]
        (A stored M x K) -> the same panels as pack_a_copy, via VL x VL in-register transposes
        (mr <= VL).  Stores run up to VL*(mr+1) elements past the last panel (the buffer has
        that slack); within a panel, later stores overwrite the spill of earlier ones."""
        name = f"sdgemm.{self.tag}.packar{mr}"
        fn = self.existing(name)
        if fn is not None:
            return fn
        VL = self.VL
        assert mr <= VL
        fn = self.new_fn(name, [PTR, I64, PTR, I64, I64])
        fn.args[0].add_attribute("noalias")
        fn.args[2].add_attribute("noalias")
        src, sai, dst, kc, mc = fn.args
        b = ir.IRBuilder(fn.append_basic_block("entry"))
        npan = b.udiv(b.add(mc, c64(mr - 1)), c64(mr))
        ones = ir.Constant(self.mty, [1] * VL)
        zeros = ir.Constant(self.mty, [0] * VL)
        with self.loop(b, 0, npan, 1, "aq") as q:
            i0 = b.mul(q, c64(mr))
            nrow = self.smin(b, b.sub(mc, i0), mr)
            dq = self.gep(b, dst, b.mul(i0, kc))
            sq = self.gep(b, src, b.mul(i0, sai))
            rowp = [sq if r == 0 else self.gep(b, sq, b.mul(sai, c64(r))) for r in range(mr)]
            rmask = [b.select(b.icmp_signed("<", c64(r), nrow), ones, zeros) for r in range(mr)]
            with self.loop(b, 0, kc, VL, "ak") as k0:
                kmask = self.runtime_mask(b, b.sub(kc, k0))
                rows = [self.mload(b, self.gep(b, rowp[r], k0), b.and_(kmask, rmask[r]))
                        for r in range(mr)] + [self.vzero] * (VL - mr)
                cols = self.transpose(b, rows)
                dk = self.gep(b, dq, b.mul(k0, nrow))
                for t in range(VL):
                    self.vstore(b, cols[t], dk if t == 0 else self.gep(b, dk, b.mul(nrow, c64(t))))
        b.ret_void()
        return fn

    def dot_kernel(self, mr: int, nr: int, ks: int) -> ir.Function:
        """Same signature as row_ukernel, for k-contiguous operands: C[r, j] (+)=
        sum_{k < kc} a[r*sai + k] * b[j*sbj + k] for r < mr, j < nr (the b stride argument is
        sbj; sak and lanes are unused).  Vectors along k, reduced by a transposing shuffle tree."""
        name = f"sdgemm.{self.tag}.dk{mr}x{nr}.k{ks}"
        fn = self.existing(name)
        if fn is not None:
            return fn
        VL = self.VL
        fn, b, flag = self._tile_kernel(name)
        a, sai, _sak, bp, sbj, c, ldc, biasp, kc, _lanes, flags = fn.args

        arow = [a if r == 0 else self.gep(b, a, b.mul(sai, c64(r))) for r in range(mr)]
        bcol = [bp if j == 0 else self.gep(b, bp, b.mul(sbj, c64(j))) for j in range(nr)]
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
            k0 = b.mul(it, c64(VL * ks))
            for s in range(ks):
                step(b, b.add(k0, c64(s * VL)) if s else k0, accs, s, None)
            return accs

        nvec = b.udiv(kc, c64(VL))
        nmain = b.udiv(nvec, c64(ks)) if ks > 1 else nvec
        accs = self.carried_loop(b, nmain, init, main_body, name="kd")
        if ks > 1:
            kstart = b.mul(nmain, c64(VL * ks))

            def rem_body(b, it, phis):
                accs = list(phis)
                step(b, b.add(kstart, b.mul(it, c64(VL))), accs, 0, None)
                return accs
            accs = (self.carried_loop(b, b.sub(nvec, b.mul(nmain, c64(ks))), accs[:n_set],
                                      rem_body, name="kv") + accs[n_set:])
        # k tail (possibly empty: an all-false mask loads nothing)
        ktail = b.mul(nvec, c64(VL))
        step(b, ktail, accs, 0, self.runtime_mask(b, b.sub(kc, ktail)))
        for s in range(1, ks):
            for t in range(n_set):
                accs[t] = b.fadd(accs[t], accs[s * n_set + t])
        sums = self.reduce_many(b, accs[:n_set])      # lane r*nr + j
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
            cp = c if r == 0 else self.gep(b, c, b.mul(ldc, c64(r)))
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
        constant parameter block: the PRM integers, then the four tile kernels (full,
        N-edge, M-edge, corner) and the packing function."""
        name = f"sdgemm.{self.tag}.driver"
        fn = self.existing(name)
        if fn is not None:
            return fn
        fn = self.new_fn(name, [PTR, PTR, PTR, PTR, I64, I64, PTR, PTR, PTR], small=True)
        for i in (0, 1, 2, 3, 6, 7, 8):
            fn.args[i].add_attribute("noalias")
        A, B, C, bias, tb, te, prm, buf, abuf = fn.args
        b = ir.IRBuilder(fn.append_basic_block("entry"))
        sty = prm_type()

        def field(part, i, ty):
            return b.load(b.gep(prm, [ir.Constant(I32, 0), ir.Constant(I32, part), ir.Constant(I32, i)],
                                inbounds=True, source_etype=sty), typ=ty, align=8)

        P = {f: field(0, i, I64) for i, f in enumerate(PRM)}
        uk_full, uk_ntail, uk_mtail, uk_corner, packfn, packafn = [field(1, i, PTR) for i in range(6)]
        np_ = len(EDGE_PARTS)
        part_w = [field(1, 6 + q, PTR) for q in range(np_)]          # p-row kernels, whole vectors
        part_n = [field(1, 6 + np_ + q, PTR) for q in range(np_)]    # p-row kernels, the N-edge panel
        edge_split = b.icmp_signed("!=", P["edge_split"], c64(0))
        uk_t = ir.FunctionType(VOID, [PTR, I64, I64, PTR, I64, PTR, I64, PTR, I64, I64, I32])
        pk_t = ir.FunctionType(VOID, [PTR, I64, PTR, I64, I64])
        pg_t = ir.FunctionType(VOID, GATHER_PACK_ARGS)
        gathered = b.icmp_signed("!=", P["gather"], c64(0))
        btab = field(1, BTAB, PTR)

        def icall(callee, args, fty):
            return b.call(IndirectCallee(callee, fty), args)
        one, zero = c64(1), c64(0)
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
                        with b.if_else(gathered) as (gath, plain):
                            with gath:  # op(B)[k, j] = B[rk[k] + cj[j]] (gemm/gather.py)
                                icall(packfn, [B, b.gep(btab, [pc], inbounds=True, source_etype=I32),
                                               b.gep(btab, [b.add(K, jc)], inbounds=True, source_etype=I32),
                                               buf, kc, b.sub(jend, jc)], pg_t)
                            with plain:
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
                                whole_m = b.icmp_signed("<=", b.add(i, MR), iend)
                                split = b.and_(edge_split, b.not_(whole_m))
                                with b.if_else(split) as (parts, tile):
                                    with parts:  # the M edge, r = iend - i rows: one call per set bit of r
                                        r = b.sub(iend, i)
                                        off = zero
                                        for q, rows in enumerate(EDGE_PARTS):
                                            has = b.icmp_signed("!=", b.and_(r, c64(rows)), zero)
                                            with b.if_then(has):
                                                # a packed panel of r rows holds (row, k) at k*r + row
                                                aptr = b.select(
                                                    packed_a, self.gep(b, abuf, b.add(b.mul(b.sub(i, ic), kc), off)),
                                                    self.gep(b, asrc, b.mul(b.add(b.sub(i, ic), off), P["sai"])))
                                                ip = b.add(i, off)
                                                cptr = self.gep(b, C, b.add(b.mul(ip, P["ldc"]), j))
                                                bp = b.select(b.icmp_signed("==", bias_mode, one), self.gep(b, bias, j),
                                                              b.select(b.icmp_signed("==", bias_mode, c64(2)),
                                                                       self.gep(b, bias, ip), cptr))
                                                icall(b.select(full_n, part_w[q], part_n[q]),
                                                      [aptr, b.select(packed_a, one, P["sai"]),
                                                       b.select(packed_a, r, P["sak"]), bptr, P["kstride"], cptr,
                                                       P["ldc"], bp, kc, lanes, flags], uk_t)
                                            off = b.add(off, b.select(has, c64(rows), zero))
                                    with tile:
                                        kern = b.select(whole_m, k_n, k_c)
                                        aptr = b.select(packed_a, self.gep(b, abuf, b.mul(b.sub(i, ic), kc)),
                                                        self.gep(b, asrc, b.mul(b.sub(i, ic), P["sai"])))
                                        cptr = self.gep(b, C, b.add(b.mul(i, P["ldc"]), j))
                                        bp = b.select(b.icmp_signed("==", bias_mode, one), self.gep(b, bias, j),
                                                      b.select(b.icmp_signed("==", bias_mode, c64(2)),
                                                               self.gep(b, bias, i), cptr))
                                        icall(kern, [aptr, k_sai, k_sak, bptr, P["kstride"], cptr,
                                                     P["ldc"], bp, kc, lanes, flags], uk_t)
        b.ret_void()
        return fn
