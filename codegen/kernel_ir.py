"""The loop/kernel IR shared by the LLVM and CUDA renderers ("lower once, render twice").

A :class:`Program` is a list of kernels over buffers. Scalar work inside a kernel is expressed with
the graph's own nodes: a kernel evaluates nodes *at a point* (one index per axis of the node's
shape). Nodes that live in a buffer are loaded (contiguous row-major strides); the others are
computed inline (elementwise ops, broadcasts, transposes, reshapes, pick, one_hot), which is how
whole chains of forward and backward elementwise ops fuse into one pass over memory.

Kernels (immutable; each states what it reads, writes and costs):

- :class:`LoopKernel`: a loop nest over ``domain``; stores each of ``stores`` (a node of that
  shape) to its buffer, and accumulates each of ``accums`` (total reductions ``sum``/``max`` of a
  node of that shape) into a scalar: horizontal fusion of a loss and its gradients.
- :class:`ReduceKernel`: ``sum``/``max`` over some axes of its (inlined) input.
- :class:`RowKernel`: softmax / log_softmax / logsumexp along one axis (max pass, sum-of-exp pass,
  write pass).
- :class:`MatmulKernel`: C = op(A) @ op(B) (+ bias), transposed operands read in place.
- :class:`ScatterKernel`: ``scatter_add``/``scatter_mul``/``scatter_max``: fill the output with the
  identity, then combine each update into the position its (wrapped, clamped) index names.
- :class:`ScanKernel`: ``cumsum``/``cumprod`` along one axis (a loop along it per row).
- :class:`MatmulKernel`: C = op(A) @ op(B) (+ bias), transposed operands read in place; batched
  (a loop over the batch entries around the GEMM, broadcast operands read with batch stride 0).
- :class:`SortKernel`: ``argsort`` along one axis (stable, NaN last): short rows rank each element by
  counting (O(L^2)), long rows are heap-sorted in place (O(L log L)); see the renderers' ``render_extra``.

Renderers dispatch on the kernel's type and keep what they learn (GEMM plans, launch configurations)
in their own records: nothing writes into a Program once lowering has built it.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable, ClassVar, Optional

import numpy as np

from symdiff import dims as _dims
from symdiff.dims import DimLike
from symdiff.ir import Node

from symdiff.codegen import cost as _cost
from symdiff.codegen.target import Target

BufferMap = Callable[["Buffer"], "Buffer"]


@dataclass(frozen=True, eq=False)
class Buffer:
    """One array of a Program (equality is identity: two buffers of the same shape are different memory)."""
    id: int
    kind: str  # "input" | "output" | "temp" | "const"
    shape: tuple
    dtype: str
    slot: int = -1  # index in the entry's argument array (inputs, outputs) or constant table
    offset: int = 0  # byte offset in the workspace (temps)
    value: Optional[np.ndarray] = None  # constants

    @property
    def size(self) -> DimLike:
        """Elements: an int, or a Dim polynomial of the named sizes (symbolic shapes)."""
        return _dims.prod(self.shape)

    @property
    def nbytes(self) -> int:
        return self.size * np.dtype(self.dtype).itemsize


def _label(n: Node) -> str:
    return n.name or n.meta.get("name") or f"{n.op}{list(n.shape)}"


def loaded_nodes(roots, where: dict) -> frozenset:
    """The materialised nodes (keys of ``where``) that evaluating ``roots`` inline loads."""
    found, stack, seen = set(), list(roots), set()
    while stack:
        n = stack.pop()
        if n in seen:
            continue
        seen.add(n)
        if n in where:
            found.add(n)
            continue
        stack.extend(n.inputs)
    return frozenset(found)


class Kernel:
    """Interface of every kernel: ``reads(where)``, ``writes``, ``written_buffers``, ``cost(where)``,
    ``with_buffers(f)`` (a copy with every buffer replaced by ``f(buffer)``) and ``describe()``."""

    kind: ClassVar[str] = "abstract"  # a short display name ("loop", "matmul", ...)
    tasks: int

    def reads(self, where: dict) -> frozenset:
        """Materialised nodes this kernel loads."""
        raise NotImplementedError

    @property
    def writes(self) -> frozenset:
        """Nodes this kernel stores."""
        raise NotImplementedError

    @property
    def written_buffers(self) -> tuple:
        raise NotImplementedError

    def cost(self, where: dict) -> "_cost.Cost":
        """FLOPs, special-function calls and compulsory bytes of one run (see ``codegen/cost.py``)."""
        raise NotImplementedError

    def with_buffers(self, f: BufferMap) -> "Kernel":
        raise NotImplementedError

    def describe(self) -> str:
        raise NotImplementedError


@dataclass(frozen=True, eq=False)
class LoopKernel(Kernel):
    domain: tuple
    stores: tuple  # ((node, Buffer), ...)
    accums: tuple = ()  # ((reduce node, input node, Buffer), ...): total sum/max
    tasks: int = 1  # the outermost axis is split into this many tasks

    kind: ClassVar[str] = "loop"

    def roots(self, where: dict) -> list:
        """(node, compute) pairs evaluated at each point: a node stored into its own buffer is
        computed from its inputs; one stored elsewhere (an output copy) and the accumulated inputs
        are loaded or computed inline."""
        return [(n, where.get(n) is b) for n, b in self.stores] + [(x, False) for _, x, _ in self.accums]

    def reads(self, where: dict) -> frozenset:
        roots: list = []
        for n, compute in self.roots(where):
            roots += list(n.inputs) if compute else [n]
        return loaded_nodes(roots, where)

    @property
    def writes(self) -> frozenset:
        return frozenset([n for n, _ in self.stores] + [r for r, _, _ in self.accums])

    @property
    def written_buffers(self) -> tuple:
        return tuple(b for _, b in self.stores) + tuple(b for _, _, b in self.accums)

    def cost(self, where: dict) -> "_cost.Cost":
        return _cost.loop_cost(self, where)

    def merged(self, other: "LoopKernel") -> "LoopKernel":
        """One pass over the common domain doing the work of both (horizontal fusion)."""
        assert other.domain == self.domain
        return replace(self, stores=self.stores + other.stores, accums=self.accums + other.accums)

    def with_buffers(self, f: BufferMap) -> "LoopKernel":
        return replace(self, stores=tuple((n, f(b)) for n, b in self.stores),
                       accums=tuple((r, x, f(b)) for r, x, b in self.accums))

    def describe(self) -> str:
        outs = [f"store {_label(n)} -> buf{b.id}" for n, b in self.stores] + \
               [f"{r.op} {_label(r)} -> buf{b.id}" for r, _, b in self.accums]
        return f"loop over {list(self.domain)} tasks={self.tasks}: " + "; ".join(outs)


class NodeKernel(Kernel):
    """A kernel that computes one node (``self.node``) into ``self.out``, reading its inlined inputs
    (a matrix product overrides ``reads``: its operands are materialised)."""

    def reads(self, where: dict) -> frozenset:
        return loaded_nodes(self.node.inputs, where)

    @property
    def writes(self) -> frozenset:
        return frozenset([self.node])

    @property
    def written_buffers(self) -> tuple:
        return (self.out,)

    def with_buffers(self, f: BufferMap) -> "NodeKernel":
        return replace(self, out=f(self.out))


@dataclass(frozen=True, eq=False)
class ReduceKernel(NodeKernel):
    node: Node  # the sum/max node
    out: Buffer
    tasks: int = 1

    kind: ClassVar[str] = "reduce"

    def cost(self, where: dict) -> "_cost.Cost":
        return _cost.reduce_cost(self, where)

    def describe(self) -> str:
        n = self.node
        return (f"{n.op} over axes {n.attrs['axes']} of {list(n.inputs[0].shape)} -> buf{self.out.id} "
                f"({_label(n)})")


@dataclass(frozen=True, eq=False)
class AlongAxisKernel(NodeKernel):
    """A kernel that computes ``node`` by a loop along ``axis`` per row (the other axes), rows split
    between ``tasks``: the base of the row, scan and sort kernels."""
    node: Node
    out: Buffer
    axis: int
    tasks: int = 1


@dataclass(frozen=True, eq=False)
class RowKernel(AlongAxisKernel):
    """softmax / log_softmax / logsumexp."""

    kind: ClassVar[str] = "row"

    def cost(self, where: dict) -> "_cost.Cost":
        return _cost.row_cost(self, where)

    def describe(self) -> str:
        return f"{self.node.op} along axis {self.axis} of {list(self.node.shape)} -> buf{self.out.id}"


@dataclass(frozen=True, eq=False)
class MatmulKernel(NodeKernel):
    node: Node  # the node stored: matmul, or add(matmul, bias) when the bias is fused
    a: Node  # materialised operand (the transpose's input when trans_a)
    b: Node
    trans_a: bool
    trans_b: bool
    bias: Optional[Node]
    out: Buffer
    M: int
    N: int
    K: int
    # batched products: the output's batch shape and, per batch axis, the element stride of that axis in
    # A's and B's buffers (0 where the operand is broadcast: read once, never copied); C is contiguous
    batch: tuple = ()
    a_batch_strides: tuple = ()
    b_batch_strides: tuple = ()
    # an implicit-GEMM operand: (rk, cj) with op(B)[k, j] = b.flat[rk[k] + cj[j]] (codegen/gather.py), b the
    # stored array an im2col view reads (trans_b False, no batch)
    b_offsets: Optional[tuple] = None
    relu: bool = False  # max(., 0) in the epilogue (after the bias): node is relu(product)

    kind: ClassVar[str] = "matmul"

    @property
    def batch_count(self) -> DimLike:
        return _dims.prod(self.batch)

    def batch_offsets(self, index: int) -> tuple[int, int, int]:
        """Element offsets (A, B, C) of batch entry ``index`` (row-major over ``batch``)."""
        oa = ob = 0
        for size, sa, sb in zip(reversed(self.batch), reversed(self.a_batch_strides), reversed(self.b_batch_strides)):
            index, i = divmod(index, size)
            oa, ob = oa + i * sa, ob + i * sb
        return oa, ob, 0
    tasks: ClassVar[int] = 1  # the GEMM planner splits it (GemmInfo.n_tasks), not the lowering

    def reads(self, where: dict) -> frozenset:  # its operands are materialised: read as they are
        return frozenset(x for x in (self.a, self.b, self.bias) if x is not None)

    def cost(self, where: dict) -> "_cost.Cost":
        return _cost.matmul_cost(self, where)

    def describe(self) -> str:
        return (f"matmul {'batch ' + 'x'.join(map(str, self.batch)) + ' of ' if self.batch else ''}"
                f"{self.M}x{self.K} @ {self.K}x{self.N} trans_a={self.trans_a} trans_b={self.trans_b} "
                + ("gathered_b=yes " if self.b_offsets is not None else "")
                + f"bias={'yes' if self.bias is not None else 'no'} " + ("relu=yes " if self.relu else "")
                + f"-> buf{self.out.id} ({_label(self.node)})")


@dataclass(frozen=True, eq=False)
class ScatterKernel(NodeKernel):
    node: Node  # scatter_add / scatter_mul / scatter_max (updates g, indices idx)
    out: Buffer
    tasks: int = 1  # LLVM: tasks split ``par_axis`` (updates of different rows never collide); CUDA: atomics
    par_axis: Optional[int] = None  # an axis (not the scattered one) the output and the updates share

    kind: ClassVar[str] = "scatter"

    def cost(self, where: dict) -> "_cost.Cost":
        return _cost.scatter_cost(self, where)

    def describe(self) -> str:
        n = self.node
        g, idx = n.inputs
        return (f"{n.op} of {list(g.shape)} updates by {_label(idx)} along axis {n.attrs['axis']} "
                f"into {list(n.shape)} tasks={self.tasks} -> buf{self.out.id}")


@dataclass(frozen=True, eq=False)
class ScanKernel(AlongAxisKernel):
    """cumsum / cumprod."""

    kind: ClassVar[str] = "scan"

    def cost(self, where: dict) -> "_cost.Cost":
        return _cost.scan_cost(self, where)

    def describe(self) -> str:
        n = self.node
        way = "reversed " if n.attrs.get("reverse") else ""
        return f"{way}{n.op} along axis {self.axis} of {list(n.shape)} tasks={self.tasks} -> buf{self.out.id}"


@dataclass(frozen=True, eq=False)
class SortKernel(AlongAxisKernel):
    """argsort (its input is materialised: read at every pair of a row)."""

    kind: ClassVar[str] = "sort"

    def cost(self, where: dict) -> "_cost.Cost":
        return _cost.sort_cost(self, where)

    def describe(self) -> str:
        return (f"argsort along axis {self.axis} of {list(self.node.shape)} (rank by counting) tasks={self.tasks} "
                f"-> buf{self.out.id}")


KERNEL_TYPES = (LoopKernel, ReduceKernel, RowKernel, MatmulKernel, ScatterKernel, ScanKernel, SortKernel)


@dataclass(frozen=True, eq=False)
class Program:
    """Everything a renderer needs: buffers, where each materialised node lives, and kernels in order.
    ``target`` is the :class:`symdiff.codegen.target.Target` the task splits were planned for."""
    inputs: tuple  # (Buffer, ...) in signature order
    outputs: tuple  # (Buffer, ...) in output order
    temps: tuple
    consts: tuple
    kernels: tuple
    where: dict  # Node -> Buffer for every materialised node (built by lowering, never changed after)
    workspace_bytes: int
    output_nodes: tuple
    target: Optional[Target] = None

    @property
    def size_names(self) -> tuple:
        """The named sizes the buffers' shapes use, sorted: the order of the entry's ``sizes`` argument
        (empty for fixed shapes; see codegen/llvm/render.py's ABI)."""
        return tuple(sorted(_dims.free_names(s for b in self.inputs + self.outputs + self.temps for s in b.shape)))

    @property
    def symbolic(self) -> bool:
        return bool(self.size_names)

    def costs(self) -> list:
        """The cost of each kernel, in order (:class:`symdiff.codegen.cost.Cost`)."""
        return [k.cost(self.where) for k in self.kernels]

    def stats(self) -> dict:
        """Kernel counts and the cost model's totals (``codegen/cost.py``): ``flops`` (all arithmetic:
        ``matmul_flops`` = 2MNK (+MN for a fused bias) per matmul, ``elementwise_flops`` the rest),
        ``special_ops`` (expensive elementwise calls), compulsory ``bytes_read``/``bytes_written``
        summed over kernels, input+output bytes and workspace bytes."""
        total = _cost.program_cost(self)
        return {"kernels": len(self.kernels), "flops": total.flops, "matmul_flops": total.matmul_flops,
                "elementwise_flops": total.flops - total.matmul_flops, "special_ops": total.special,
                "bytes_read": total.bytes_read, "bytes_written": total.bytes_written,
                "io_bytes": sum(b.nbytes for b in self.inputs + self.outputs),
                "workspace_bytes": self.workspace_bytes,
                "by_kind": {t.kind: sum(1 for k in self.kernels if type(k) is t) for t in KERNEL_TYPES}}

    def describe(self) -> str:
        """A readable listing of the kernels (for `symdiff compile --target ir` and debugging)."""
        lines = [f"program: {len(self.kernels)} kernels, workspace {self.workspace_bytes} bytes"]
        lines += [f"k{i}: {k.describe()}" for i, k in enumerate(self.kernels)]
        if self.target is not None:
            from symdiff.codegen.schedule import concurrent_runs  # (it imports this module)
            runs = concurrent_runs(self, self.target.gemm_tasks)
            if runs:
                lines.append("run concurrently, one dispatch each (codegen/schedule.py): "
                             + ", ".join(f"k{r[0]}-k{r[-1]}" for r in runs))
        return "\n".join(lines)
