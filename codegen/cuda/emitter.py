"""The CUDA C emitter of the point evaluator (``symdiff.codegen.pointeval``): C expressions and statements.

Index values are C expressions (names or literals once bound); each computed scalar is bound to a
fresh ``const`` name by a :class:`~symdiff.codegen.cuda.ir.Stmt` that carries its op count (elementwise
ops and math functions 1 FLOP, transcendental calls also 1 special op), so the statement tree's
dead-code elimination drops what a kernel does not read and ``kernel_stats`` counts what it does.
Loads are commented with the node they read. ``rand_uniform`` calls the ``sd_rand_bits`` device helper.
"""
from __future__ import annotations

from typing import Any, Optional

from symdiff.ir import Node

from symdiff.codegen.kernel_ir import Buffer
from symdiff.codegen.cuda.ir import CTYPE, IDENT, KernelCtx, Stmt, cdim, node_label
from symdiff.codegen.cuda.literals import flit
from symdiff.codegen.cuda.scalar_rules import SPECIAL, scalar_expr
from symdiff.codegen.pointeval import RAND_SCALE, Emitter, PointEval

__all__ = ["CudaEmitter", "cuda_eval"]


def _operand(e: str) -> str:
    """``e`` as the left operand of * / %: a sum needs parentheses (indices are atoms, products or sums)."""
    return f"({e})" if " + " in e else e


class CudaEmitter(Emitter):
    """Point evaluation as C statements appended to ``out`` (a statement list of kernel ``kc``);
    ``idx`` is the C type of index variables ("int" or "long long"). An index constant may be a symbolic
    size (a :class:`symdiff.dims.Dim`): it is written as its polynomial of the kernel's ``sz_<name>``
    parameters (``cuda/ir.py``'s ``cdim``)."""

    def __init__(self, kc: KernelCtx, out: list, idx: str) -> None:
        self.kc, self.out, self.idx = kc, out, idx

    def bind(self, ctype: str, expr: str, flops: int = 0, special: int = 0, comment: str = "") -> str:
        """``const ctype vN = expr;`` (removable when unread); returns the name."""
        name = self.kc.fresh("v")
        tail = f"  // {comment}" if comment else ""
        self.out.append(Stmt(f"const {ctype} {name} = {expr};{tail}", name, flops, special))
        return name

    # -- indices: C expressions --
    def iconst(self, v) -> str:
        return cdim(v)

    def iadd(self, a: str, b: str) -> str:
        return f"{a} + {b}"

    def imul(self, a: str, c) -> str:
        return f"{_operand(a)} * {cdim(c)}"

    def iudiv(self, a: str, c) -> str:
        return f"{_operand(a)} / {cdim(c)}"

    def iurem(self, a: str, c) -> str:
        return f"{_operand(a)} % {cdim(c)}"

    def atom(self, e: str) -> str:
        return e if IDENT.fullmatch(e) else self.bind(self.idx, e)

    # -- memory --
    def load(self, buf: Buffer, offset: str, node: Node) -> str:
        return self.bind(CTYPE[buf.dtype], f"{self.kc.buf(buf)}[{offset}]", comment=node_label(node))

    def store_ref(self, buf: Buffer, offset: str) -> str:
        return f"{self.kc.buf(buf, write=True)}[{offset}]"

    GUARDED_LOADS = True

    def load_if(self, pred: str, buf: Buffer, offset: str, node: Node, fill: str) -> str:
        # C's ?: evaluates only the operand it selects: the read at an out-of-bounds offset never happens
        return self.bind(CTYPE[buf.dtype], f"{pred} ? {self.kc.buf(buf)}[{offset}] : {fill}",
                         comment=node_label(node))

    # -- scalars --
    def const(self, value: Any, dtype: str) -> str:
        return flit(value, dtype)

    def cast(self, v: str, src: str, dst: str) -> str:
        return self.bind(CTYPE[dst], f"({CTYPE[dst]}){v}")

    def scalar(self, op: str, args: list, dtype: str) -> str:
        return self.bind(CTYPE[dtype], scalar_expr(op, args, dtype), flops=1, special=int(op in SPECIAL))

    def to_index(self, v: str, dtype: str) -> str:
        return v  # C integer promotion: a loaded int/long long label indexes directly

    def index_eq(self, a: str, b: str, dtype: str) -> str:
        return self.bind(CTYPE[dtype], f"({a} == {b}) ? {flit(1, dtype)} : {flit(0, dtype)}")

    # -- index selection (slice/embed/concatenate) --
    def isub(self, a: str, b: str) -> str:
        return f"({a} - {b if IDENT.fullmatch(b) or b.isdigit() else '(' + b + ')'})"

    def iult(self, a: str, c) -> str:
        bound = f"{int(c)}ull" if isinstance(c, int) else f"(unsigned long long){cdim(c)}"
        return self.bind("bool", f"(unsigned long long)({a}) < {bound}")

    def ieq(self, a: str, c) -> str:
        return self.bind("bool", f"{_operand(a)} == {cdim(c)}")

    def pand(self, p: str, q: str) -> str:
        return self.bind("bool", f"{p} && {q}")

    def iselect(self, p: str, a: str, b: str) -> str:
        return self.bind(self.idx, f"{p} ? {a} : {b}")

    def vselect(self, p: str, a: str, b: str, dtype: str) -> str:
        return self.bind(CTYPE[dtype], f"{p} ? {a} : {b}")
    # -- dynamic indices (gather/scatter) --
    def iwrap_clamp(self, i: str, n) -> str:
        """``i + n`` when negative, then clamped to ``[0, n - 1]``, in 64 bits (a label may be a long long)."""
        if isinstance(n, int):
            size, top = f"{n}LL", f"{max(n - 1, 0)}LL"
        else:  # a symbolic size (>= 1 at every call)
            size, top = cdim(n), cdim(n - 1)
        w = self.bind("long long", f"(long long){i} < 0 ? (long long){i} + {size} : (long long){i}")
        return self.bind(self.idx, f"({self.idx})({w} < 0 ? 0LL : ({w} > {top} ? {top} : {w}))")

    def rand_uniform(self, index: str, seed: str, seed_dtype: str, step: str, step_dtype: str, stream: int,
                     dtype: str) -> str:
        """(sd_rand_bits(i, seed, step, stream)) * 2**-24: the device helper runs the hash (cuda/ir.py)."""
        flat = self.bind("unsigned int", f"(unsigned int)({index})")
        bits = f"sd_rand_bits({flat}, (unsigned int){seed}, (unsigned int){step}, {stream}u)"
        scale = f"{RAND_SCALE:.17g}" + ("f" if dtype == "float32" else "")
        return self.bind(CTYPE[dtype], f"({CTYPE[dtype]}){bits} * {scale}", flops=1, comment=f"rand_uniform stream {stream}")


def cuda_eval(kc: KernelCtx, out: list, idx: str, flat: Optional[tuple] = None) -> PointEval:
    """A point evaluator writing C statements into ``out``; ``flat = (variable, shape, point)``: offsets of
    ``shape`` at ``point`` are that loop variable (the grid-stride index)."""
    return PointEval(CudaEmitter(kc, out, idx), kc.r.p.where, flat)
