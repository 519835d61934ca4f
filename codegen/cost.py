"""The cost model of a kernel Program: FLOPs, special-function calls and compulsory bytes per kernel.

One model serves ``Program.stats()``, the CLI's summary and the CUDA kernel table
(``symdiff.codegen.cuda.render.kernel_stats``), so the three always agree.

Counting rules (one run of a kernel):

- an elementwise op evaluated at one point costs by its ``OpDef.cost_class``: ``"free"`` 0 FLOPs,
  ``"cheap"`` 1, ``"expensive"`` 1 FLOP and 1 special call (exp, log, tanh, pow, div, ...). Index
  ops (broadcast, transpose, reshape, cast, pick, one_hot, constants) are free: they move data.
- a node computed inline is evaluated once per point of the kernel's domain (the renderers memoise
  per point), so a LoopKernel over P points with w FLOPs of inline work per point and a total
  reductions costs P * (w + a); a node of smaller shape broadcast into the domain is recomputed at
  every point, as the generated code does.
- a ReduceKernel over an input of n elements: n * (w + 1) (one accumulate per element).
- a RowKernel over rows of L elements: its input is evaluated in each pass (softmax and logsumexp:
  2 passes, max and sum of exp; log_softmax: 3, the last writes x - max - log(sum)); per element
  the row arithmetic adds max 1, x - max 1, exp 1 (special), sum 1, then softmax's scale 1 or
  log_softmax's two subtractions; per row 1/sum (softmax), log (log_softmax) or max + log (logsumexp).
- a MatmulKernel: 2*M*N*K, plus M*N for a fused bias.
- a ScatterKernel over u updates into an output of m elements: u * (w + 1) (one combine per
  update; the identity fill of the output is data movement).
- a ScanKernel over an input of n elements: n * (w + 1) (one combine per element).
- a SortKernel over rows of L elements (n in all; its input is materialised): short rows n * L
  comparisons (the counting rank), long rows (heap sort) about 2 n log2(L).
- bytes: every buffer a kernel loads (or stores) counted once, its whole size: the compulsory
  traffic, a lower bound on what reaches DRAM.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import numpy as np

from symdiff import dims as _dims
from symdiff.ir import Node
from symdiff.optable import OPS

# index ops: a renderer turns them into address arithmetic, never into FLOPs
INDEX_OPS = frozenset({"const", "broadcast_to", "transpose", "reshape", "cast", "pick", "one_hot"})
CLASS_COST = {"free": (0, 0), "cheap": (1, 0), "expensive": (1, 1)}  # cost class -> (FLOPs, special calls)

# RowKernel: op -> (passes evaluating the input, FLOPs per element, special per element, FLOPs per row,
# special per row)
ROW_WORK = {
    "softmax": (2, 5, 1, 1, 0),  # max; sub, exp, add; scale by 1/sum (computed once per row)
    "log_softmax": (3, 6, 1, 1, 1),  # max; sub, exp, add; sub, sub; log(sum) per row
    "logsumexp": (2, 4, 1, 2, 1),  # max; sub, exp, add; max + log(sum) per row
}


@dataclass(frozen=True)
class Cost:
    """What one run of a kernel (or a sum of kernels) costs."""
    flops: int = 0
    special: int = 0  # expensive elementwise calls (math-library functions, divisions), included in flops
    bytes_read: int = 0
    bytes_written: int = 0
    matmul_flops: int = 0  # the part of flops done by matrix products

    def __add__(self, other: "Cost") -> "Cost":
        return Cost(self.flops + other.flops, self.special + other.special, self.bytes_read + other.bytes_read,
                    self.bytes_written + other.bytes_written, self.matmul_flops + other.matmul_flops)

    @property
    def bytes(self) -> int:
        return self.bytes_read + self.bytes_written

    @property
    def intensity(self) -> float:
        """FLOPs per compulsory byte (roofline)."""
        return self.flops / self.bytes if self.bytes else 0.0


def cost_class(op: str) -> str:
    """``"free" | "cheap" | "expensive"``: the op's own ``OpDef.cost_class``; index ops are free."""
    if op in INDEX_OPS:
        return "free"
    return OPS[op].cost_class


def op_cost(op: str) -> tuple[int, int]:
    """(FLOPs, special calls) of one scalar evaluation of ``op``."""
    return CLASS_COST[cost_class(op)]


def point_cost(roots: Iterable[tuple[Node, bool]], where) -> tuple[int, int]:
    """(FLOPs, special calls) of evaluating ``roots`` at one point: each ``(node, compute)`` is computed
    from its inputs when ``compute`` (a node stored into its own buffer) or loaded when it lives in
    ``where``; nodes not in ``where`` are computed inline, each distinct node once."""
    flops = special = 0
    seen: set = set()
    stack: list = []
    for node, compute in roots:
        if compute:
            if node not in seen:
                seen.add(node)
                f, s = op_cost(node.op)
                flops, special = flops + f, special + s
                stack.extend(node.inputs)
        else:
            stack.append(node)
    while stack:
        n = stack.pop()
        if n in seen or n in where or n.is_leaf:
            continue
        seen.add(n)
        f, s = op_cost(n.op)
        flops, special = flops + f, special + s
        stack.extend(n.inputs)
    return flops, special


def _size(shape: tuple):
    return _dims.prod(shape)  # an int, or a Dim polynomial (symbolic shapes: costs are polynomials too)


def _traffic(k, where) -> tuple[int, int]:
    """Compulsory (bytes read, bytes written): each buffer once."""
    read = {where[n] for n in k.reads(where)}
    written = set(k.written_buffers)
    return sum(b.nbytes for b in read), sum(b.nbytes for b in written)


def loop_cost(k, where) -> Cost:
    f, s = point_cost(k.roots(where), where)
    points = _size(k.domain)
    return Cost(points * (f + len(k.accums)), points * s, *_traffic(k, where))


def reduce_cost(k, where) -> Cost:
    x = k.node.inputs[0]
    f, s = point_cost([(x, False)], where)
    return Cost(x.size * (f + 1), x.size * s, *_traffic(k, where))


def row_cost(k, where) -> Cost:
    x = k.node.inputs[0]
    passes, ef, es, rf, rs = ROW_WORK[k.node.op]
    f, s = point_cost([(x, False)], where)
    rows = x.size // max(x.shape[k.axis], 1) if x.size else 0
    return Cost(x.size * (passes * f + ef) + rows * rf, x.size * (passes * s + es) + rows * rs, *_traffic(k, where))


def matmul_cost(k, where) -> Cost:
    flops = (2 * k.M * k.N * k.K + k.M * k.N * ((k.bias is not None) + k.relu)) * k.batch_count
    return Cost(flops, 0, *_traffic(k, where), matmul_flops=flops)


def scatter_cost(k, where) -> Cost:
    g = k.node.inputs[0]
    f, s = point_cost([(g, False), (k.node.inputs[1], False)], where)
    return Cost(g.size * (f + 1), g.size * s, *_traffic(k, where))


def scan_cost(k, where) -> Cost:
    x = k.node.inputs[0]
    f, s = point_cost([(x, False)], where)
    return Cost(x.size * (f + 1), x.size * s, *_traffic(k, where))


SORT_HEAP_MIN_ROW = 33  # rows at least this long are heap-sorted (codegen/llvm/render_extra.py)


def sort_cost(k, where) -> Cost:
    x = k.node.inputs[0]
    L = x.shape[k.axis]
    if isinstance(L, _dims.Dim):  # a symbolic row: L comparisons per element (a bound on either method's)
        per = L
    else:
        per = L if L < SORT_HEAP_MIN_ROW else 2 * max(1, int(np.log2(L)))
    return Cost(x.size * per, 0, *_traffic(k, where))


def program_cost(program) -> Cost:
    """The sum over a Program's kernels (the numbers ``Program.stats()`` reports)."""
    total = Cost()
    for c in program.costs():
        total = total + c
    return total


__all__ = ["Cost", "cost_class", "op_cost", "point_cost", "program_cost", "loop_cost", "reduce_cost", "row_cost",
           "matmul_cost", "scatter_cost", "scan_cost", "sort_cost", "CLASS_COST", "INDEX_OPS", "ROW_WORK"]
