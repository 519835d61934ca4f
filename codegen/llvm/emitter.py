"""The LLVM emitter of the point evaluator (``symdiff.codegen.pointeval``): llvmlite instructions.

Indices are i64 values; buffer elements are read through ``inbounds`` GEPs from base pointers that
are loaded once per evaluator in the function's entry block (hoisted out of every loop). Scalar ops
go through the renderer's scalar rule; no fast-math flags (results match NumPy up to the math
library's ulp bounds).
"""
from __future__ import annotations

from typing import Any, Callable, Optional

from llvmlite import ir

from symdiff import ops_random as R
from symdiff.ir import Node

from symdiff.codegen.kernel_ir import Buffer
from symdiff.codegen.llvm import dtype_rules
from symdiff.codegen.llvm.types import I32, I64, PTR, lltype
from symdiff.codegen.pointeval import Emitter

__all__ = ["LLVMEmitter"]

def _c(v: int) -> ir.Constant:
    return ir.Constant(I64, int(v))


class LLVMEmitter(Emitter):
    """Point evaluation into the current block of ``b``; ``ctx`` is the kernel's array of buffer pointers
    (slot = buffer id); ``scalar(b, op, args, dtype)`` is the renderer's scalar rule."""

    def __init__(self, b: ir.IRBuilder, ctx: ir.Value, scalar: Callable, alias: Optional[dict] = None,
                 dim: Optional[Callable] = None) -> None:
        self.b, self.ctx, self.scalar_rule = b, ctx, scalar
        self.bases: dict = {}
        self.alias = alias or {}  # buffer id -> (alias.scope, noalias) metadata (Renderer._alias_scopes)
        self.dim = dim  # a symbolic size (symdiff.dims.Dim) -> its i64 value (Renderer.dim)

    def _i(self, c) -> ir.Value:
        """An index constant: an int, or a symbolic size's runtime value."""
        if isinstance(c, int):
            return _c(c)
        if self.dim is None:
            raise NotImplementedError(f"a symbolic size {c} in a kernel rendered without runtime sizes")
        return self.dim(c)

    def tag(self, instr: ir.Instruction, buf: Buffer) -> ir.Instruction:
        """Attach the kernel's scoped-alias metadata of ``buf`` to a load or store."""
        md = self.alias.get(buf.id)
        if md is not None:
            instr.set_metadata("alias.scope", md[0])
            instr.set_metadata("noalias", md[1])
        return instr

    def base(self, buf: Buffer) -> ir.Value:
        """The buffer's data pointer, loaded from ``ctx`` once, in the entry block."""
        if buf.id not in self.bases:
            b = self.b
            with b.goto_entry_block():
                self.bases[buf.id] = b.load(b.gep(self.ctx, [_c(buf.id)], source_etype=PTR), typ=PTR)
        return self.bases[buf.id]

    # -- indices (i64) --
    def iconst(self, v) -> ir.Value:
        return self._i(v)

    def iadd(self, a, b) -> ir.Value:
        return self.b.add(a, b)

    def imul(self, a, c: int) -> ir.Value:
        return self.b.mul(a, self._i(c))

    def iudiv(self, a, c: int) -> ir.Value:
        return self.b.udiv(a, self._i(c))

    def iurem(self, a, c: int) -> ir.Value:
        return self.b.urem(a, self._i(c))

    def key(self, i) -> int:
        return id(i)  # llvmlite values: identity (the evaluator keeps them alive)

    # -- memory --
    def store_ref(self, buf: Buffer, offset) -> ir.Value:
        return self.b.gep(self.base(buf), [offset], source_etype=lltype(buf.dtype), inbounds=True)

    def load(self, buf: Buffer, offset, node: Node) -> ir.Value:
        return self.tag(self.b.load(self.store_ref(buf, offset), typ=lltype(buf.dtype)), buf)

    # -- scalars --
    def const(self, value: Any, dtype: str) -> ir.Constant:
        return ir.Constant(lltype(dtype), int(value) if dtype == "bool" else value)

    def cast(self, v, src: str, dst: str) -> ir.Value:
        return dtype_rules.cast(self.b, v, src, dst)  # bool is an i8 0/1 (llvm/dtype_rules.py)

    def scalar(self, op: str, args: list, dtype: str) -> ir.Value:
        return self.scalar_rule(self.b, op, args, dtype)

    def to_index(self, v, dtype: str) -> ir.Value:
        return self.b.sext(v, I64) if v.type != I64 else v

    def index_eq(self, a, b, dtype: str) -> ir.Value:
        c = self.b.icmp_signed("==", a, b)
        return self.b.uitofp(c, lltype(dtype)) if dtype.startswith("float") else self.b.zext(c, lltype(dtype))

    # -- index selection (slice/embed/concatenate) --
    def isub(self, a, b) -> ir.Value:
        return self.b.sub(a, b)

    def iult(self, a, c: int) -> ir.Value:
        return self.b.icmp_unsigned("<", a, self._i(c))

    def ieq(self, a, c: int) -> ir.Value:
        return self.b.icmp_unsigned("==", a, self._i(c))

    def pand(self, p, q) -> ir.Value:
        return self.b.and_(p, q)

    def iselect(self, p, a, b) -> ir.Value:
        return self.b.select(p, a, b)

    def vselect(self, p, a, b, dtype: str) -> ir.Value:
        return self.b.select(p, a, b)

    GUARDED_LOADS = True

    def load_if(self, pred, buf: Buffer, offset, node: Node, fill) -> ir.Value:
        # if (pred) v = buf[offset]; phi(v, fill): LLVM's vectoriser if-converts it into a masked load
        b = self.b
        before = b.block
        with b.if_then(pred):
            v = self.load(buf, offset, node)
            loaded = b.block
        phi = b.phi(v.type)
        phi.add_incoming(v, loaded)
        phi.add_incoming(fill, before)
        return phi

    # -- dynamic indices (gather/scatter) --
    def iwrap_clamp(self, i, n) -> ir.Value:
        # w = i < 0 ? i + n : i;  clamp(w, 0, n - 1) (selects: vectorisable, no branches)
        b = self.b
        w = b.select(b.icmp_signed("<", i, _c(0)), b.add(i, self._i(n)), i)
        w = b.select(b.icmp_signed("<", w, _c(0)), _c(0), w)
        top = self._i(n - 1) if not isinstance(n, int) else _c(max(n - 1, 0))  # (a named size is >= 1)
        return b.select(b.icmp_signed(">", w, top), top, w)

    # -- uint32 (rand_uniform): i32 with wraparound mul, xor, logical shift --
    def u32(self, v, dtype: str) -> ir.Value:
        w = v.type.width
        return self.b.trunc(v, I32) if w > 32 else (self.b.zext(v, I32) if w < 32 else v)

    def u32const(self, c: int) -> ir.Constant:
        return ir.Constant(I32, c & R.MASK32)

    def u32mul(self, a, b) -> ir.Value:
        return self.b.mul(a, b)

    def u32xor(self, a, b) -> ir.Value:
        return self.b.xor(a, b)

    def u32shr(self, a, k: int) -> ir.Value:
        return self.b.lshr(a, self.u32const(k))

    def u32_to_float(self, v, dtype: str) -> ir.Value:
        return self.b.uitofp(v, lltype(dtype))
