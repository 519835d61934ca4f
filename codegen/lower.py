"""Lowering: a simplified graph -> a kernel Program (fusion decisions and the buffer plan).

1. Decide which nodes live in memory ("materialised"): leaves, outputs, matmul/reduction/softmax
   results, matmul operands (one that reshapes a stored node aliases that node's buffer: no copy);
   elementwise nodes are computed inline by the kernels that read them, except an expensive one shared
   by kernels of different loop domains.
2. One kernel per materialised node; a matmul followed by a bias add stores the add (bias epilogue);
   a total reduction becomes an accumulator of a loop kernel over its input.
3. Horizontal fusion: loop kernels over the same domain with no dependency between them merge into
   one pass (a loss and its elementwise gradients computed together).
4. Buffer plan: an output that is a reshape of a stored node is that node's buffer (its kernel writes
   the output; no copy kernel); temporaries get offsets in one workspace, reused once their last reader has run.
"""
from __future__ import annotations

from dataclasses import replace
from types import MappingProxyType
from typing import Callable, Optional, Sequence

import numpy as np

from symdiff import dims as _dims
from symdiff.ir import Node, apply, rebuild, toposort
from symdiff.ops_gather import SCAN_OPS, SCATTER_OPS, SORT_OPS
from symdiff.ops_tensor import reshape as _reshape
from symdiff.ops_tensor import transpose as _transpose
from symdiff.optable import OPS
from symdiff.signature import Signature

from symdiff.codegen.expand import expand_composites
from symdiff.codegen.gather import matmul_b_tables
from symdiff.codegen.kernel_ir import (Buffer, LoopKernel, MatmulKernel, Program, ReduceKernel, RowKernel,
                                       ScanKernel, ScatterKernel, SortKernel)
from symdiff.codegen.target import Target, host_target

# a relu right after a product is applied in the product's epilogue (the GEMM stores relu(A B + b))
RELU_EPILOGUE = True

BUFFER_OPS = {"matmul", "sum", "max", "prod", "softmax", "log_softmax", "logsumexp"} | set(SCATTER_OPS) \
    | set(SCAN_OPS) | set(SORT_OPS)
REDUCE_OPS = ("sum", "max", "prod")  # ReduceKernel / LoopKernel accumulators
ROW_OPS = {"softmax", "log_softmax", "logsumexp"}
PAR_MIN_ELEMS = 1 << 15  # below this, a parallel dispatch costs more than it saves (measured: ~2-4 us)
ALIGN = 64


def _inline_cost(n: Node, memo: dict) -> int:
    if n in memo:
        return memo[n]
    c = 0
    if OPS[n.op].elementwise:
        c = (4 if OPS[n.op].cost_class == "expensive" else 1) + sum(_inline_cost(i, memo) for i in n.inputs)
    memo[n] = c
    return c


SELECT_OPS = ("concatenate", "embed")  # every point reads every operand (selects evaluate both sides)


def _chain_cost(n: Node, memo: dict) -> int:
    """Inline cost of ``n`` seen through the index ops (reshape, slice, ...) that a kernel computes inline."""
    if n.is_leaf or n.op == "const" or n.op in BUFFER_OPS or OPS[n.op].elementwise:
        return _inline_cost(n, memo)
    return sum(_chain_cost(i, memo) for i in n.inputs)


def _domain(n: Node) -> tuple:
    """The loop domain of the kernel that produces materialised node n."""
    if n.op in REDUCE_OPS or n.op == "logsumexp" or n.op in ROW_OPS or n.op in SCATTER_OPS:
        return n.inputs[0].shape
    return n.shape


def _regroups(x: Node) -> bool:
    """A reshape that changes the non-unit axes (its point map divides) of a computed value."""
    src = x.inputs[0]
    return (not src.is_leaf and src.op != "const" and src.size > 0
            and [s for s in src.shape if s != 1] != [s for s in x.shape if s != 1])


def _tasks(domain: tuple, max_tasks: int) -> int:
    """Tasks a loop over ``domain`` splits its outermost axis into (at most ``Target.loop_tasks``). A symbolic
    domain gets the most tasks: the renderer runs them serially when the call's size is below
    ``PAR_MIN_ELEMS`` (:func:`par_worthwhile`)."""
    if not domain:
        return 1
    if _dims.is_symbolic(domain):
        d0 = domain[0]
        return max_tasks if isinstance(d0, _dims.Dim) else int(min(d0, max_tasks)) if d0 >= 2 else 1
    size = int(np.prod(domain, dtype=np.int64))
    if size < PAR_MIN_ELEMS or domain[0] < 2:
        return 1
    return int(min(domain[0], max_tasks))


def par_worthwhile(domain: tuple) -> Optional[_dims.DimLike]:
    """For a symbolic domain, the element count whose runtime value decides between a parallel dispatch
    (``>= PAR_MIN_ELEMS``) and a serial run; None for a fixed domain (decided at lowering)."""
    return _dims.prod(domain) if _dims.is_symbolic(domain) else None


def surely(test: Callable[[], bool]) -> bool:
    """``test()``, or False when it compares symbolic sizes that only the call decides."""
    try:
        return bool(test())
    except _dims.SymbolicDimError:
        return False


def _one_axis_logsumexp(outputs: Sequence[Node]) -> list[Node]:
    """Rewrite logsumexp over zero or several axes into what a RowKernel computes: no axes is the
    identity; several axes are moved last (transpose), merged into one (reshape) and reduced as one."""
    order = toposort(outputs)
    if not any(n.op == "logsumexp" and len(n.attrs["axes"]) != 1 for n in order):
        return list(outputs)

    def one_axis(n: Node, ins: list) -> Optional[Node]:
        if n.op != "logsumexp" or len(n.attrs["axes"]) == 1:
            return None
        x, axes = ins[0], tuple(n.attrs["axes"])
        if axes:
            rest = tuple(i for i in range(x.ndim) if i not in axes)
            inner = _dims.prod([x.shape[a] for a in axes])
            merged = _reshape(_transpose(x, rest + axes), tuple(x.shape[i] for i in rest) + (inner,))
            x = apply("logsumexp", [merged], axes=(len(rest),), keepdims=False)
        return _reshape(x, n.shape)
    return rebuild(outputs, one_axis)


CONCAT_FANIN = 4  # a concatenation of more parts becomes a tree of materialised groups of this many


def _concat_tree(outputs: Sequence[Node]) -> tuple[list[Node], set]:
    """Rewrite concatenations of more than ``2 * CONCAT_FANIN`` parts into a tree of concatenations of at
    most ``CONCAT_FANIN`` parts (every point of a concatenation reads every part: k parts cost k reads
    per element; the tree costs CONCAT_FANIN per element and level). Returns the graph and the inner
    groups, which are materialised."""
    order = toposort(outputs)
    if not any(n.op == "concatenate" and len(n.inputs) > 2 * CONCAT_FANIN for n in order):
        return list(outputs), set()
    groups: set = set()

    def tree(n: Node, ins: list) -> Optional[Node]:
        if n.op != "concatenate" or len(ins) <= 2 * CONCAT_FANIN:
            return None
        axis = n.attrs["axis"]
        while len(ins) > CONCAT_FANIN:
            ins = [apply("concatenate", ins[k:k + CONCAT_FANIN], axis=axis) if len(ins[k:k + CONCAT_FANIN]) > 1
                   else ins[k] for k in range(0, len(ins), CONCAT_FANIN)]
            groups.update(g for g in ins if g.op == "concatenate")
        return apply("concatenate", ins, axis=axis)
    return rebuild(outputs, tree), groups


class Lowering:
    def __init__(self, outputs: Sequence[Node], target: Optional[Target] = None,
                 signature: Optional[Signature] = None) -> None:
        self.target = target or host_target()
        # the call signature is the caller's graph's: an expansion may drop a leaf the op ignores
        self.signature = signature or Signature(list(outputs))
        self.outputs, self.concat_groups = _concat_tree(_one_axis_logsumexp(expand_composites(outputs)))
        self.order = toposort(self.outputs)
        self.users: dict[Node, list[Node]] = {n: [] for n in self.order}
        for n in self.order:
            for i in n.inputs:
                self.users[i].append(n)
        self.fused_bias: dict[Node, Node] = {}  # add node -> matmul node whose epilogue adds the bias
        self.fused_relu: dict[Node, Node] = {}  # relu node -> the product (matmul or fused add) it clamps
        self.aliases: dict[Node, Node] = {}  # matmul operand reshape -> the stored node whose buffer it reads
        self.gathers: dict[Node, tuple] = {}  # matmul -> (stored node, rk, cj): op(B)[k, j] = node.flat[rk[k] + cj[j]]
        self.mat = self._materialise()

    # -- 1. what lives in memory ------------------------------------------------------------------------
    def _materialise(self) -> set:
        mat: set[Node] = set(self.outputs)
        mat_outputs = set(self.outputs)
        for n in self.order:
            if n.is_leaf or (n.op == "const" and n.size != 1) or n.op in BUFFER_OPS:
                mat.add(n)
            if n.op == "matmul":
                tables = matmul_b_tables(n, mat, self._is_t)
                if tables is not None:  # op(B) read through offset tables (im2col views: codegen/gather.py)
                    self.gathers[n] = tables
                    mat.add(tables[0])
                for opnd in n.inputs[:1] if tables is not None else n.inputs:
                    x = opnd.inputs[0] if self._is_t(opnd) else opnd
                    src = x.inputs[0] if x.op == "reshape" else None
                    if src is not None and (src in mat or src.is_leaf or src.op in BUFFER_OPS
                                            or (src.op == "const" and src.size > 1) or _regroups(x)):
                        # a reshape of a stored row-major array: the same memory. A reshape that regroups
                        # axes (im2col's (K*C, N*L) of a (*K, C, N, *L) transpose) stores its input over
                        # the input's domain: the loop indices are the input's, no div/mod per element
                        self.aliases[x] = src
                        mat.add(src)
                    mat.add(x)
            if n.op == "pick" or n.op in SORT_OPS:
                mat.add(n.inputs[0])
            if n.op == "window" and n.inputs[0].op != "const":
                # every input point is read by up to prod(kernel) windows: compute it (the padding's select,
                # a ReLU) once; the windows then read a stored array at affine offsets, a vectorisable copy
                mat.add(n.inputs[0])
        mat.update(self.concat_groups)
        cost_memo: dict = {}
        for n in self.order:  # an expensive operand of a select is computed at points that discard it:
            if n.op in SELECT_OPS:  # at every point of a concatenation, at the fill of an embed
                waste = n.op == "concatenate" or surely(lambda: n.size >= 2 * n.inputs[0].size)
                mat.update(x for x in n.inputs if waste and not x.is_leaf and _chain_cost(x, cost_memo) >= 4)
        for n in self.order:  # bias epilogue: add(matmul, b) with a single use of the matmul
            if n.op == "matmul" and n.ndim == 2 and len(self.users[n]) == 1 and n not in mat_outputs:
                u = self.users[n][0]
                if u.op == "add" and u.shape == n.shape and u.dtype == n.dtype:
                    other = u.inputs[1] if u.inputs[0] is n else u.inputs[0]
                    if other is not n and other.shape in ((n.shape[1],), (1, n.shape[1])) and other.dtype == n.dtype:
                        mat.discard(n)
                        mat.add(u)
                        mat.add(other)
                        self.fused_bias[u] = n
        for r in self.order if RELU_EPILOGUE else ():  # relu epilogue: relu(p) of a 2-D static product p (bias fused or not) read only by it
            p = r.inputs[0] if r.op == "relu" else None
            mm = self.fused_bias.get(p, p)
            if (mm is not None and mm.op == "matmul" and mm.ndim == 2 and p in mat and len(self.users[p]) == 1
                    and p not in mat_outputs and p.dtype == r.dtype and p.shape == r.shape
                    and not _dims.is_symbolic(mm.shape + (mm.inputs[0].shape[-1],))):
                mat.discard(p)
                mat.add(r)
                self.fused_relu[r] = p
        # expensive elementwise values read by kernels of different loop domains are stored once
        memo: dict = {}
        changed = True
        while changed:
            changed = False
            domains: dict[Node, set] = {}
            for root in self.order:
                if root not in mat or root.is_leaf or root.op == "const":
                    continue
                dom = _domain(root)
                for n in self._inlined(root, mat):
                    domains.setdefault(n, set()).add(dom)
            cand = {n for n, doms in domains.items() if len(doms) > 1 and _inline_cost(n, memo) >= 4 and n not in mat}
            # the outermost first: once a candidate is stored, the chain below it may be read by one domain only
            # (a sum of 25 placements read by two loops stores the sum, not its 24 partial sums)
            for n in cand:
                if not any(u in cand for u in self.users[n]):
                    mat.add(n)
                    changed = True
        return mat

    @staticmethod
    def _is_t(n: Node) -> bool:
        """A transpose of the last two axes (a matrix transpose of every batch entry): read in place."""
        nd = n.ndim
        return n.op == "transpose" and nd >= 2 and n.attrs["perm"] == tuple(range(nd - 2)) + (nd - 1, nd - 2)

    def _inlined(self, root: Node, mat: set) -> list[Node]:
        """Nodes a kernel producing ``root`` computes inline (not loaded from a buffer)."""
        out, stack, seen = [], list(self._kernel_inputs(root)), set()
        while stack:
            n = stack.pop()
            if n in seen or n in mat or n.is_leaf or n.op == "const":
                continue
            seen.add(n)
            out.append(n)
            stack.extend(n.inputs)
        return out

    def _kernel_inputs(self, root: Node) -> tuple:
        if root in self.fused_bias or root in self.fused_relu:
            return ()
        if root.op == "matmul":
            return ()
        if root.op in BUFFER_OPS:
            return root.inputs
        return root.inputs if not root.is_leaf else ()

    # -- 2-4. kernels and buffers ---------------------------------------------------------------------------
    def build(self) -> Program:
        sig = self.signature
        where: dict[Node, Buffer] = {}
        bufs: list[Buffer] = []
        tasks = lambda domain: _tasks(domain, self.target.loop_tasks)  # noqa: E731

        def new_buffer(kind: str, node_shape: tuple, dtype: str, **fields) -> Buffer:
            b = Buffer(len(bufs), kind, tuple(node_shape), dtype, **fields)
            bufs.append(b)
            return b

        leaves = {n.name: n for n in self.order if n.is_leaf}
        inputs = []
        for slot, spec in enumerate(sig.leaves):
            b = new_buffer("input", spec.shape, spec.dtype, slot=slot)
            inputs.append(b)
            if spec.name in leaves:  # an input the graph no longer reads keeps its slot, unread
                where[leaves[spec.name]] = b
        consts = []
        for n in self.order:
            if n in self.mat and n.op == "const":
                b = new_buffer("const", n.shape, n.dtype, slot=len(consts), value=n.value)
                consts.append(b)
                where[n] = b
        outputs, copies = [], []
        output_set = set(self.outputs)
        in_place: set = set()  # outputs that are a reshape of a node stored straight into their buffer
        for k, o in enumerate(self.outputs):
            b = new_buffer("output", o.shape, o.dtype, slot=len(inputs) + k)
            outputs.append(b)
            if o in where or o in in_place:  # a leaf, a constant, or an output listed twice: copy it
                copies.append((o, b))
                continue
            x = o.inputs[0] if o.op == "reshape" else None
            if (x is not None and x in self.mat and not x.is_leaf and x.op != "const" and x not in where
                    and x not in output_set):
                # the output is its input, reshaped: the input's kernel writes the output buffer (no copy
                # kernel); readers of the output see it through the reshape, so they depend on that kernel
                where[x] = b
                in_place.add(o)
            else:
                where[o] = b

        kernels: list = []
        for n in self.order:
            if n not in self.mat or n.is_leaf or n.op == "const" or n in in_place:
                continue
            if n in self.aliases and n not in where and self.aliases[n] in where:
                where[n] = where[self.aliases[n]]  # no copy: GEMMs read the reshape in place
                continue
            if n not in where:
                where[n] = new_buffer("temp", n.shape, n.dtype)
            out = where[n]
            if n.op == "matmul" or n in self.fused_bias or n in self.fused_relu:
                p = self.fused_relu.get(n, n)   # (the stored node may be relu(p))
                mm = self.fused_bias.get(p, p)
                bias = None
                if p in self.fused_bias:
                    bias = p.inputs[1] if p.inputs[0] is mm else p.inputs[0]
                a, b = mm.inputs
                ta, tb = self._is_t(a) and a.inputs[0] in self.mat, self._is_t(b) and b.inputs[0] in self.mat
                batch, sa, sb = _batch_strides(mm)
                g = self.gathers.get(mm)
                if g is not None:
                    b, tb = g[0], False
                kernels.append(MatmulKernel(n, a.inputs[0] if ta else a, b.inputs[0] if tb else b, ta, tb, bias, out,
                                            mm.shape[-2], mm.shape[-1], a.shape[-1], batch, sa, sb,
                                            b_offsets=None if g is None else g[1:], relu=n in self.fused_relu))
            elif n.op in REDUCE_OPS and n.size == 1:
                x = n.inputs[0]
                kernels.append(LoopKernel(x.shape, (), ((n, x, out),), tasks(x.shape)))
            elif n.op in REDUCE_OPS:
                axes = n.attrs["axes"]
                kernels.append(ReduceKernel(n, out, tasks(n.inputs[0].shape) if 0 not in axes else 1))
            elif n.op in ROW_OPS:
                axes = n.attrs.get("axes")
                axis = n.attrs["axis"] if axes is None else axes[0]
                if axes is not None and len(axes) != 1:
                    raise NotImplementedError("logsumexp over several axes is not lowered yet; reshape first")
                kernels.append(RowKernel(n, out, axis, tasks(n.inputs[0].shape) if axis != 0 else 1))
            elif n.op in SCATTER_OPS:  # fill, then combine the updates in order (CUDA: atomics)
                kernels.append(_scatter_kernel(n, out, self.target.loop_tasks))
            elif n.op in SCAN_OPS:  # a loop along the axis per row; rows split over tasks
                axis = n.attrs["axis"]
                kernels.append(ScanKernel(n, out, axis, tasks(n.shape) if axis != 0 else 1))
            elif n.op in SORT_OPS:
                axis = n.attrs["axis"]
                kernels.append(SortKernel(n, out, axis, tasks(n.shape) if axis != 0 else 1))
            else:
                kernels.append(LoopKernel(n.shape, ((n, out),), (), tasks(n.shape)))
        for o, b in copies:
            kernels.append(LoopKernel(o.shape, ((o, b),), (), tasks(o.shape)))
        kernels = _fuse(kernels, where)
        offsets, ws = _plan(kernels, [b for b in bufs if b.kind == "temp"], where)
        # the plan's offsets go into new (immutable) temp buffers; kernels and `where` follow
        placed = {i: replace(bufs[i], offset=off) for i, off in offsets.items()}
        move = lambda b: placed.get(b.id, b)  # noqa: E731
        kernels = [k.with_buffers(move) for k in kernels]
        where = {n: move(b) for n, b in where.items()}
        temps = tuple(move(b) for b in bufs if b.kind == "temp")
        return Program(tuple(inputs), tuple(outputs), temps, tuple(consts), tuple(kernels), MappingProxyType(where),
                       ws, tuple(self.outputs), self.target)


def _batch_strides(mm: Node) -> tuple:
    """(batch shape, A's and B's element strides per batch axis) of a matmul: contiguous operands (a
    transposed one has the batch strides of its input, which has the same batch dims), 0 where an operand
    broadcasts (a size-1 or missing batch axis)."""
    batch = mm.shape[:-2]
    out = []
    for x in mm.inputs:
        lead = len(batch) - (x.ndim - 2)
        st = [0] * len(batch)
        acc = x.shape[-1] * x.shape[-2]
        for d in range(x.ndim - 3, -1, -1):
            if x.shape[d] != 1:
                st[lead + d] = acc
            acc *= x.shape[d]
        out.append(tuple(st))
    return batch, out[0], out[1]


def _scatter_kernel(n: Node, out: Buffer, max_tasks: int) -> ScatterKernel:
    """Updates at different coordinates of an axis the output shares with them (not the scattered axis,
    not broadcast) never collide: the longest such axis is split over tasks; none: one serial task."""
    g = n.inputs[0]
    shared = [d for d in range(n.ndim) if d != n.attrs["axis"] and n.shape[d] == g.shape[d]
              and isinstance(n.shape[d], int) and n.shape[d] > 1]  # (a symbolic axis: serial, for now)
    if not shared or surely(lambda: g.size < PAR_MIN_ELEMS) or _dims.is_symbolic(g.shape):
        return ScatterKernel(n, out)
    p = max(shared, key=lambda d: n.shape[d])
    return ScatterKernel(n, out, int(min(n.shape[p], max_tasks)), p)


def _fuse(kernels: list, where) -> list:
    """Horizontal fusion: a loop kernel joins the latest earlier loop kernel over the same domain
    when no kernel in between (nor that one) writes what it reads."""
    out: list = []
    for k in kernels:
        merged = False
        if isinstance(k, LoopKernel):
            reads = k.reads(where)
            written: set = set()
            for j in range(len(out) - 1, -1, -1):
                cand = out[j]
                written |= cand.writes
                if reads & written:
                    break
                if isinstance(cand, LoopKernel) and cand.domain == k.domain:
                    out[j] = cand.merged(k)
                    merged = True
                    break
        if not merged:
            out.append(k)
    return out


def _plan(kernels: list, temps: list, where) -> tuple[dict, int]:
    """First-fit workspace offsets for temporaries by liveness (kernel index of write .. last read):
    ({buffer id: offset}, workspace bytes)."""
    first, last = {}, {}
    for i, k in enumerate(kernels):
        for n in k.writes:
            b = where.get(n)
            if b is not None and b.kind == "temp":
                first.setdefault(b.id, i)
                last[b.id] = max(last.get(b.id, i), i)
        for n in k.reads(where):
            b = where.get(n)
            if b is not None and b.kind == "temp":
                last[b.id] = i
    live: list = []  # (offset, size, last use); offsets and sizes are ints or Dims (symbolic shapes)
    top: _dims.DimLike = 0
    offsets: dict = {}
    for b in sorted(temps, key=lambda b: first.get(b.id, 0)):
        start = first.get(b.id, 0)
        live = [x for x in live if x[2] >= start]
        size = _aligned(b.nbytes)
        off = _first_fit(live, size, top)
        offsets[b.id] = off
        top = _dims_max(top, off + size)
        live.append((off, size, last.get(b.id, start)))
    return offsets, top


def _aligned(nbytes: _dims.DimLike) -> _dims.DimLike:
    """``nbytes`` rounded up to ALIGN; for a polynomial, every coefficient is (a bound that stays a
    multiple of ALIGN at every size, so each temporary's offset is aligned at every call)."""
    if isinstance(nbytes, int):
        return (nbytes + ALIGN - 1) // ALIGN * ALIGN
    return sum((_dims.Dim([(m, -(-c // ALIGN) * ALIGN)]) if m else -(-c // ALIGN) * ALIGN)
               for m, c in nbytes.terms)


def _dims_max(a: _dims.DimLike, b: _dims.DimLike) -> _dims.DimLike:
    """max(a, b), or an upper bound a + b when only the call's sizes would decide (a workspace may be
    larger than the tightest plan, never smaller)."""
    if surely(lambda: a >= b):
        return a
    if surely(lambda: b >= a):
        return b
    return a + b


def _first_fit(live: list, size: _dims.DimLike, top: _dims.DimLike) -> _dims.DimLike:
    """The lowest offset where ``size`` bytes overlap no live block: the first gap between blocks sorted by
    offset (fixed sizes), or, with symbolic sizes, the first of 0 and the blocks' ends that is disjoint from
    every live block at every size (else ``top``, which lies above every block)."""
    if isinstance(size, int) and all(isinstance(lo, int) and isinstance(sz, int) for lo, sz, _ in live):
        off = 0
        for lo, sz, _ in sorted(live):
            if off + size <= lo:
                break
            off = max(off, lo + sz)
        return off
    ends = [lo + sz for lo, sz, _ in live]
    cands = [0] + sorted(e for e in ends if isinstance(e, int)) + [e for e in ends if not isinstance(e, int)]
    for off in cands:
        if all(surely(lambda: off + size <= lo) or surely(lambda: lo + sz <= off) for lo, sz, _ in live):
            return off
    return top


def lower(outputs: Sequence[Node], target: Optional[Target] = None,
          signature: Optional[Signature] = None) -> Program:
    """Lower a (simplified) graph to a kernel Program, its task splits planned for ``target``
    (default: :func:`symdiff.codegen.target.host_target`). Its inputs are ``signature``'s leaves
    (default: the leaves of ``outputs``), in that order, whether or not the graph reads them."""
    return Lowering(outputs, target, signature).build()
