"""The loop/kernel IR shared by the LLVM and CUDA renderers ("lower once, render twice").

A :class:`Program` is a list of kernels over buffers. Scalar work inside a kernel is expressed with
the graph's own nodes: a kernel evaluates nodes *at a point* (one index per axis of the node's
shape). Nodes that live in a buffer are loaded (contiguous row-major strides); the others are
computed inline (elementwise ops, broadcasts, transposes, reshapes, pick, one_hot), which is how
whole chains of forward and backward elementwise ops fuse into one pass over memory.

Kernels:

- :class:`LoopKernel`: a loop nest over ``domain``; stores each of ``stores`` (a node of that
  shape) to its buffer, and accumulates each of ``accums`` (total reductions ``sum``/``max`` of a
  node of that shape) into a scalar: horizontal fusion of a loss and its gradients.
- :class:`ReduceKernel`: ``sum``/``max`` over some axes of its (inlined) input.
- :class:`RowKernel`: softmax / log_softmax / logsumexp along one axis (max pass, sum-of-exp pass,
  write pass).
- :class:`MatmulKernel`: C = op(A) @ op(B) (+ bias), transposed operands read in place.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from symdiff.ir import Node


@dataclass
class Buffer:
    id: int
    kind: str  # "input" | "output" | "temp" | "const"
    shape: tuple
    dtype: str
    slot: int = -1  # index in the entry's argument array (inputs, outputs) or constant table
    offset: int = 0  # byte offset in the workspace (temps)
    value: Optional[np.ndarray] = None  # constants

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def nbytes(self) -> int:
        return self.size * np.dtype(self.dtype).itemsize


@dataclass
class LoopKernel:
    domain: tuple
    stores: list  # [(node, Buffer)]
    accums: list = field(default_factory=list)  # [(reduce node, input node, Buffer)]: total sum/max
    tasks: int = 1  # the outermost axis is split into this many tasks

    kind = "loop"


@dataclass
class ReduceKernel:
    node: Node  # the sum/max node
    out: Buffer
    tasks: int = 1

    kind = "reduce"


@dataclass
class RowKernel:
    node: Node  # softmax / log_softmax / logsumexp
    out: Buffer
    axis: int
    tasks: int = 1

    kind = "row"


@dataclass
class MatmulKernel:
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
    info: object = None  # GemmInfo from the renderer

    kind = "matmul"


@dataclass
class Program:
    """Everything a renderer needs: buffers, where each materialised node lives, and kernels in order."""
    inputs: list  # [Buffer] in signature order
    outputs: list  # [Buffer] in output order
    temps: list
    consts: list
    kernels: list
    where: dict  # Node -> Buffer for every materialised node
    workspace_bytes: int
    output_nodes: list

    def stats(self) -> dict:
        """Kernel counts, matmul FLOPs (2MNK each), input+output bytes and workspace bytes.
        (Per-kernel FLOPs including elementwise work: ``symdiff.codegen.cuda.render.kernel_stats``.)"""
        flops = 0
        for k in self.kernels:
            if k.kind == "matmul":
                flops += 2 * k.M * k.N * k.K
        nbytes = sum(b.nbytes for b in self.inputs + self.outputs)
        return {"kernels": len(self.kernels), "matmul_flops": flops, "io_bytes": nbytes,
                "workspace_bytes": self.workspace_bytes,
                "by_kind": {kind: sum(1 for k in self.kernels if k.kind == kind) for kind in ("loop", "reduce", "row", "matmul")}}

    def describe(self) -> str:
        """A readable listing of the kernels (for `symdiff compile --target ir` and debugging)."""
        def nm(n: Node) -> str:
            return n.name or n.meta.get("name") or f"{n.op}{list(n.shape)}"
        lines = [f"program: {len(self.kernels)} kernels, workspace {self.workspace_bytes} bytes"]
        for i, k in enumerate(self.kernels):
            if k.kind == "loop":
                outs = [f"store {nm(n)} -> buf{b.id}" for n, b in k.stores] + \
                       [f"{r.op} {nm(r)} -> buf{b.id}" for r, _, b in k.accums]
                lines.append(f"k{i}: loop over {list(k.domain)} tasks={k.tasks}: " + "; ".join(outs))
            elif k.kind == "matmul":
                lines.append(f"k{i}: matmul {k.M}x{k.K} @ {k.K}x{k.N} trans_a={k.trans_a} trans_b={k.trans_b} "
                             f"bias={'yes' if k.bias is not None else 'no'} -> buf{k.out.id} ({nm(k.node)})")
            elif k.kind == "reduce":
                lines.append(f"k{i}: {k.node.op} over axes {k.node.attrs['axes']} of {list(k.node.inputs[0].shape)} "
                             f"-> buf{k.out.id} ({nm(k.node)})")
            else:
                lines.append(f"k{i}: {k.node.op} along axis {k.axis} of {list(k.node.shape)} -> buf{k.out.id}")
        return "\n".join(lines)
