"""IR-building helpers for the GEMM kernels (llvmlite): types, function attributes, vector loads and
stores with masks, FMA, loops with carried values, in-register transposes and reductions."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Optional, Sequence

from llvmlite import ir
from llvmlite.ir.values import FunctionAttributes

from symdiff.codegen.llvm.gemm.plan import elem_size, gemm_tag, vec_len

I1 = ir.IntType(1)
I32 = ir.IntType(32)
I64 = ir.IntType(64)
PTR = ir.PointerType()
VOID = ir.VoidType()
ARG_TYPES = {"ptr": PTR, "i64": I64, "i32": I32}  # argument types of the shared functions


def loop_hints(module: ir.Module, **hints: int) -> ir.MDValue:
    """A fresh loop ID for the latch of one loop: ``!N = !{!N, !{!"llvm.loop.<key>", i32 v}, ...}``,
    e.g. ``loop_hints(m, interleave_count=2)``. LLVM wants the first operand to be the node itself, and
    each loop its own node (so the node is built directly, not through the module's uniquing cache)."""
    props = [module.add_metadata([ir.MetaDataString(module, "llvm.loop." + k.replace("_", ".")), I32(v)])
             for k, v in hints.items()]
    node = ir.MDValue(module, [], name=str(len(module.metadata)))  # (appends itself to the module)
    node.operands = tuple([node, *props])
    return node


@contextmanager
def counted_loop(b: ir.IRBuilder, start, stop, step=1, name: str = "i", hints: ir.MDValue | None = None):
    """for (i = start; i < stop; i += step): yields the i64 induction variable (a phi); the body is
    what the ``with`` block emits. Shared by the GEMM kernels and the graph renderer. ``hints``: a
    :func:`loop_hints` node put on the back edge."""
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
    latch = b.branch(hdr)
    if hints is not None:
        latch.set_metadata("llvm.loop", hints)
    b.position_at_end(end)


class Loops:
    """Counted loops with an i64 induction variable (phi), the body given as a callback."""

    def __init__(self, b: ir.IRBuilder) -> None:
        self.b = b

    def range(self, lo: ir.Value, hi: ir.Value, body: Callable[[ir.Value], None], name: str = "i",
              hints: Optional[ir.MDValue] = None) -> None:
        with counted_loop(self.b, lo, hi, 1, name, hints) as i:
            body(i)

    def nest(self, bounds: list, body: Callable[[list], None], name: str = "d",
             inner: Optional[dict] = None) -> None:
        """Loops over [lo, hi) per axis, outermost first; body receives the index list. ``inner``: loop
        hints (``loop_hints`` keywords) for the innermost loop."""
        def rec(k: int, idx: list) -> None:
            if k == len(bounds):
                body(idx)
                return
            lo, hi = bounds[k]
            hints = loop_hints(self.b.module, **inner) if inner and k == len(bounds) - 1 else None
            self.range(lo, hi, lambda i: rec(k + 1, idx + [i]), name=f"{name}{k}", hints=hints)
        rec(0, [])


class _FnAttrs(FunctionAttributes):
    """llvmlite's FunctionAttributes plus string attributes ('"key"="value"')."""

    def add(self, name):
        if name.startswith('"'):
            return set.add(self, name)
        return super().add(name)


def c64(v: int) -> ir.Constant:
    return ir.Constant(I64, int(v))


def _ival(v) -> ir.Value:
    return c64(v) if isinstance(v, int) else v


# ----------------------------------------------------------------------------- IR helpers
class Kit:
    """IR building helpers for one module and element type."""

    def __init__(self, module: ir.Module, dtype: str):
        self.m = module
        self.dt = dtype
        self.tag = gemm_tag(dtype)
        self.ety = ir.FloatType() if dtype == "float32" else ir.DoubleType()
        self.VL = vec_len(dtype)
        self.esz = elem_size(dtype)
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
        """x * y + z: ``llvm.fmuladd``, one fused instruction where the target has FMA units and a multiply
        and an add where it has none (SSE4.2): ``llvm.fma`` there is a libm call per element (85x slower)."""
        if isinstance(x.type, ir.VectorType):
            f = self.intrinsic(f"llvm.fmuladd.{self.vsuffix()}", self.vty, [self.vty] * 3)
        else:
            f = self.intrinsic(f"llvm.fmuladd.f{8 * self.esz}", self.ety, [self.ety] * 3)
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

    def gather(self, b, base, idx, mask):
        """<VL x T> of base[idx[l]] for the lanes of ``mask`` (zero elsewhere); idx an <VL x i32> value
        (``llvm.masked.gather``: one vgatherdps/dpd on AVX-512 and AVX2, scalar loads on SSE)."""
        ptrs = b.gep(base, [idx], inbounds=True, source_etype=self.ety)
        ptrs.type = ir.VectorType(PTR, self.VL)
        f = self.intrinsic(f"llvm.masked.gather.{self.vsuffix()}.v{self.VL}p0", self.vty,
                           [ptrs.type, I32, self.mty, self.vty])
        return b.call(f, [ptrs, ir.Constant(I32, self.esz), mask, self.vzero])

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
    def loop(self, b, start, stop, step=1, name: str = "i"):
        """for (i = start; i < stop; i += step) -- yields i (i64)."""
        return counted_loop(b, start, stop, step, name)

    def carried_loop(self, b, n_iter, init: list, body: Callable, name: str = "k") -> list:
        """Run body(b, it, vals) -> new vals for it in [0, n_iter); return the final vals.
        n_iter: an i64 value or a Python int."""
        if isinstance(n_iter, int):
            if n_iter <= 0:
                return list(init)
            n_iter = c64(n_iter)
            guarded = False
        else:
            guarded = True
        pre = b.block
        lp = b.append_basic_block(name + ".loop")
        done = b.append_basic_block(name + ".done")
        if guarded:
            b.cbranch(b.icmp_signed(">", n_iter, c64(0)), lp, done)
        else:
            b.branch(lp)
        b.position_at_end(lp)
        it = b.phi(I64, name=name + ".it")
        it.add_incoming(c64(0), pre)
        phis = []
        for v in init:
            ph = b.phi(v.type)
            ph.add_incoming(v, pre)
            phis.append(ph)
        new = body(b, it, phis)
        nxt = b.add(it, c64(1))
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


class IndirectCallee:
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


class PtrRef(IndirectCallee):
    """A function used as a pointer constant, printed with the opaque `ptr` type."""

    def __init__(self, value: ir.Value):
        super().__init__(value, None)
        self.type = PTR


# Integer fields of a product's parameter block (then PRM_PTRS pointers, below).
PRM = ("M", "N", "K", "sai", "sak", "sbk", "sbj", "ldc", "MR", "NR", "KC", "NC", "MC", "T", "units",
        "split_m", "pack", "pstride", "kstride", "flags", "lanes_tail", "bias_mode", "nkb", "VL",
        "packa", "pastride", "edge_split", "gather")
# Function pointers after them: the tile kernels (full, N-edge, M-edge, corner), op(B) and op(A) packing, then
# (edge_split != 0) the row-part kernels of EDGE_PARTS rows, whole and N-edge: an M edge of r < MR rows runs
# as one call per set bit of r (8 + 2 + 1 for 11), so a product sized at run time needs log2(MR) edge kernels,
# not MR - 1 (codegen/llvm/gemm/dynamic.py). The last pointer: a gathered op(B)'s offset table (``gather`` != 0:
# K row offsets then N column offsets, i32, op(B)[k, j] = B[rk[k] + cj[j]]; codegen/llvm/gemm/gather.py).
EDGE_PARTS = (8, 4, 2, 1)
PRM_PTRS = 7 + 2 * len(EDGE_PARTS)
BTAB = PRM_PTRS - 1
GATHER_PACK_ARGS = [PTR, PTR, PTR, PTR, I64, I64]  # a gathered op(B)'s packer: (src, rk, cj, dst, kc, nc)


def prm_type() -> ir.LiteralStructType:
    return ir.LiteralStructType([ir.ArrayType(I64, len(PRM)), ir.ArrayType(PTR, PRM_PTRS)])
