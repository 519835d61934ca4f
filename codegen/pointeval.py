"""One point evaluator for every renderer: a graph node *at a point* -> a backend value.

A kernel evaluates graph nodes at a point: one index per axis of the node's shape. Nodes that live in
a buffer (``program.where``) are loaded from it at their row-major flat offset; every other node is
computed in place from its inputs, each at the point that op maps it to:

- elementwise ops / ``eq`` / ``broadcast_to``: right-aligned broadcasting, size-1 axes read index 0;
- ``transpose`` (perm): ``inner[perm[i]] = point[i]``;
- ``reshape``: the input's coordinates of the output's flat offset (row-major order is preserved;
  when only size-1 axes differ, the non-unit indices carry over unchanged);
- ``pick(x, lab)``: ``x[point..., lab[point]]``; ``one_hot(lab)``: ``lab[point[:-1]] == point[-1]``;
- ``slice`` / ``flip`` / ``embed`` / ``concatenate`` (``symdiff/ops_index.py``): affine index maps, and
  selects whose every branch reads in bounds (a clamped index), see ``INDEX_RULES``;
- ``window`` (``symdiff/ops_conv.py``): ``x[lead, o * stride + k * dilation]`` per spatial axis;
- ``take_along(x, idx)`` (axis a): ``x[point with point[a] -> clamp(wrap(idx[point]))]``, the other axes
  broadcast (size-1 axes read index 0); the index rule is :func:`symdiff.ops_gather.wrap_clamp`'s;
- ``cast``; scalar ``const``; ``rand_uniform``: the counter-based hash of ``symdiff/ops_random.py``
  at the flat offset.

The mapping is written once here, over an :class:`Emitter`; each backend supplies only the emitter.
Values are memoised per (node, point, compute) for one evaluator (one loop body).

What an emitter must implement (a third backend gets the evaluator for free):

- index values: ``iconst(v)``, ``iadd(a, b)``, ``imul(a, c)``, ``iudiv(a, c)``, ``iurem(a, c)`` (``c`` a
  Python int > 0; indices are non-negative), ``atom(e)`` (an index expression as a reusable value; a
  no-op for SSA backends), ``key(i)`` (a hashable identity of an index value, for memoisation);
- ``load(buf, offset, node)``: element ``offset`` of buffer ``buf`` (``node`` names it, for comments);
  ``store_ref(buf, offset)``: what a renderer stores into (a pointer, an lvalue);
- ``const(value, dtype)``, ``cast(v, src, dst)`` (between any two of bool/int32/int64/float32/float64:
  numpy's astype), ``scalar(op, args, dtype)`` (the backend's scalar rule of an elementwise op; ``dtype`` is the
  operands' compute dtype from ``symdiff/dtypes.py``, a comparison's result is a bool), ``to_index(v, dtype)`` (a loaded integer label as an
  index), ``index_eq(a, b, dtype)`` (1.0 where two indices are equal, else 0.0, in float ``dtype``);
- for the index selections: ``isub(a, b)``, predicates ``iult(a, c)`` (unsigned ``a < c``), ``ieq(a, c)``,
  ``pand(p, q)``, and ``iselect(p, a, b)`` (indices) / ``vselect(p, a, b, dtype)`` (values);
- for ``take_along``: ``iwrap_clamp(i, n)`` (a signed index value -> ``i + n`` when negative, then clamped
  to ``[0, n - 1]``);
- for ``rand_uniform`` either the uint32 operations ``u32(v, dtype)`` (an int or index value mod 2**32),
  ``u32const(c)``, ``u32mul(a, b)``, ``u32xor(a, b)``, ``u32shr(a, k)``, ``u32_to_float(v, dtype)``, which
  the default :meth:`Emitter.rand_uniform` runs the hash with (:func:`rand_hash`), or an override of
  ``rand_uniform`` itself (CUDA calls a device function).
"""
from __future__ import annotations

import itertools

from abc import ABC, abstractmethod
from typing import Any, Optional, Sequence

from symdiff import dtypes as _dt
from symdiff import ops_random as R
from symdiff import dims as _dims
from symdiff.dims import SymbolicDimError
from symdiff.ir import Node
from symdiff.optable import OPS

__all__ = ["Emitter", "PointEval", "strides", "rand_hash", "RAND_SCALE", "reshape_groups"]

RAND_SCALE = 2.0 ** -24  # rand_uniform = (hash >> 8) * 2**-24: exact in float32 and float64


def strides(shape: Sequence[int]) -> list[int]:
    """Row-major (C-order) element strides of ``shape``."""
    out, acc = [], 1
    for s in reversed(shape):
        out.append(acc)
        acc *= s
    return list(reversed(out))


class Emitter(ABC):
    """The backend half of point evaluation: index arithmetic, loads, constants, scalar ops, casts.
    ``GUARDED_LOADS``: the emitter has :meth:`load_if` (a load made only where a predicate holds)."""

    GUARDED_LOADS = False

    def load_if(self, pred: Any, buf: Any, offset: Any, node: Node, fill: Any) -> Any:
        """``buf[offset]`` where ``pred`` holds, else ``fill``; the offset may be out of bounds elsewhere."""
        raise NotImplementedError(f"{type(self).__name__} has no guarded loads")

    # -- index values --
    @abstractmethod
    def iconst(self, v: int) -> Any: ...

    @abstractmethod
    def iadd(self, a: Any, b: Any) -> Any: ...

    @abstractmethod
    def imul(self, a: Any, c: int) -> Any: ...

    @abstractmethod
    def iudiv(self, a: Any, c: int) -> Any: ...

    @abstractmethod
    def iurem(self, a: Any, c: int) -> Any: ...

    def atom(self, e: Any) -> Any:
        """An index expression as a value that can be used several times (SSA backends: itself)."""
        return e

    def key(self, i: Any) -> Any:
        """A hashable identity of an index value (memo keys)."""
        return i

    # -- memory --
    @abstractmethod
    def load(self, buf: Any, offset: Any, node: Node) -> Any: ...

    @abstractmethod
    def store_ref(self, buf: Any, offset: Any) -> Any: ...

    # -- scalar values --
    @abstractmethod
    def const(self, value: Any, dtype: str) -> Any: ...

    @abstractmethod
    def cast(self, v: Any, src: str, dst: str) -> Any: ...

    @abstractmethod
    def scalar(self, op: str, args: list, dtype: str) -> Any: ...

    @abstractmethod
    def to_index(self, v: Any, dtype: str) -> Any: ...

    @abstractmethod
    def index_eq(self, a: Any, b: Any, dtype: str) -> Any: ...

    # -- index selection (slice/embed/concatenate) --
    @abstractmethod
    def isub(self, a: Any, b: Any) -> Any:
        """``a - b`` (may be negative: only used under a predicate that rejects it, or when known >= 0)."""

    @abstractmethod
    def iult(self, a: Any, c: int) -> Any:
        """The predicate ``0 <= a < c`` (an unsigned compare: a negative ``a`` wraps above ``c``)."""

    @abstractmethod
    def ieq(self, a: Any, c: int) -> Any:
        """The predicate ``a == c``."""

    @abstractmethod
    def pand(self, p: Any, q: Any) -> Any:
        """The predicate ``p and q``."""

    @abstractmethod
    def iselect(self, p: Any, a: Any, b: Any) -> Any:
        """The index ``a`` where ``p`` holds, else ``b`` (both evaluated)."""

    @abstractmethod
    def vselect(self, p: Any, a: Any, b: Any, dtype: str) -> Any:
        """The value ``a`` where ``p`` holds, else ``b`` (both evaluated: loads must be in bounds)."""
    # -- dynamic indices (gather/scatter) --
    def iwrap_clamp(self, i: Any, n: int) -> Any:
        """A loaded (signed) index into an axis of length ``n``: ``i + n`` when negative, then clamped to
        ``[0, n - 1]`` (symdiff/ops_gather.py's rule: never an out-of-bounds access)."""
        raise NotImplementedError(f"{type(self).__name__}: no dynamic-index clamp for take_along")

    # -- rand_uniform: uint32 arithmetic (modulo 2**32) --
    def u32(self, v: Any, dtype: str) -> Any:
        raise NotImplementedError(f"{type(self).__name__}: no uint32 arithmetic for rand_uniform")

    def u32const(self, c: int) -> Any:
        raise NotImplementedError(f"{type(self).__name__}: no uint32 arithmetic for rand_uniform")

    def u32mul(self, a: Any, b: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__}: no uint32 arithmetic for rand_uniform")

    def u32xor(self, a: Any, b: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__}: no uint32 arithmetic for rand_uniform")

    def u32shr(self, a: Any, k: int) -> Any:
        raise NotImplementedError(f"{type(self).__name__}: no uint32 arithmetic for rand_uniform")

    def u32_to_float(self, v: Any, dtype: str) -> Any:
        raise NotImplementedError(f"{type(self).__name__}: no uint32 arithmetic for rand_uniform")

    def rand_uniform(self, index: Any, seed: Any, seed_dtype: str, step: Any, step_dtype: str, stream: int,
                     dtype: str) -> Any:
        """rand_uniform at flat index ``index``: (hash >> 8) * 2**-24 (see symdiff/ops_random.py)."""
        bits = rand_hash(self, self.u32(index, "int64"), self.u32(seed, seed_dtype), self.u32(step, step_dtype), stream)
        return self.scalar("mul", [self.u32_to_float(bits, dtype), self.const(RAND_SCALE, dtype)], dtype)


def rand_hash(em: Emitter, i: Any, seed: Any, step: Any, stream: int) -> Any:
    """The top 24 bits of the lowbias32 hash of (index, seed, step, stream), as uint32 (ops_random.py)::

        x = (i * GOLDEN) ^ (seed * SEED_MUL) ^ (step * STEP_MUL) ^ (stream * STREAM_MUL)
        ROUNDS times: x ^= x >> 16; x *= MIX1; x ^= x >> 15; x *= MIX2; x ^= x >> 16
        return x >> 8
    """
    k = em.u32const
    base = em.u32xor(em.u32xor(em.u32mul(seed, k(R.SEED_MUL)), em.u32mul(step, k(R.STEP_MUL))),
                     k(((int(stream) & R.MASK32) * R.STREAM_MUL) & R.MASK32))
    x = em.u32xor(em.u32mul(i, k(R.GOLDEN)), base)
    for _ in range(R.ROUNDS):
        x = em.u32xor(x, em.u32shr(x, 16))
        x = em.u32mul(x, k(R.MIX1))
        x = em.u32xor(x, em.u32shr(x, 15))
        x = em.u32mul(x, k(R.MIX2))
        x = em.u32xor(x, em.u32shr(x, 16))
    return em.u32shr(x, 8)


class PointEval:
    """Evaluates graph nodes at points through an emitter, memoised per (node, point, compute).

    ``where``: node -> buffer of the materialised nodes. ``flat``: optional ``(index, shape, point)``
    meaning "offsets of ``shape`` at ``point`` are the index value ``index``" (a flat loop variable).
    Call it (``ev(node, point)``) or use :meth:`ev`; ``compute=True`` computes a materialised node instead
    of loading it (the kernel that stores it).
    """

    def __init__(self, em: Emitter, where: dict, flat: Optional[tuple] = None) -> None:
        self.em = em
        self.where = where
        self.memo: dict = {}
        self.guard: Optional[tuple] = None  # (predicate, fill, id): stored reads are guarded loads (embed)
        self.flat = None
        if flat is not None:
            var, shape, point = flat
            self.flat = (var, tuple(shape), tuple(em.key(p) for p in point))

    def __call__(self, node: Node, point, compute: bool = False) -> Any:
        return self.ev(node, point, compute)

    # -- index mapping --
    def offset(self, shape: Sequence[int], point) -> Any:
        """Row-major flat offset of ``point`` in ``shape``: sum of index * stride over non-unit axes."""
        em = self.em
        if self.flat is not None and tuple(shape) == self.flat[1] and tuple(em.key(p) for p in point) == self.flat[2]:
            return self.flat[0]
        off = None
        for s, st, i in zip(shape, strides(shape), point):
            if s == 1:
                continue
            t = em.imul(i, st) if st != 1 else i
            off = t if off is None else em.iadd(off, t)
        return off if off is not None else em.iconst(0)

    def broadcast_point(self, src_shape: tuple, dst_shape: tuple, point) -> list:
        """Index into a right-aligned broadcast operand: size-1 axes read index 0."""
        lead = len(dst_shape) - len(src_shape)
        return [self.em.iconst(0) if s == 1 else point[lead + i] for i, s in enumerate(src_shape)]

    def reshape_point(self, src_shape: tuple, dst_shape: tuple, point) -> list:
        """Index of a reshape's input for an index of its output (row-major order is preserved):
        coordinate k of flat offset f is (f / stride_k) % size_k (the outermost needs no %)."""
        em = self.em
        if [s for s in src_shape if s != 1] == [s for s in dst_shape if s != 1]:
            nz = iter([p for p, s in zip(point, dst_shape) if s != 1])
            return [em.iconst(0) if s == 1 else next(nz) for s in src_shape]
        groups = reshape_groups(src_shape, dst_shape)
        if groups is not None and len(groups) > 1:
            return self._grouped_reshape_point(src_shape, dst_shape, groups, point)
        flat = em.atom(self.offset(dst_shape, point))
        out, first = [], True
        for s, st in zip(src_shape, strides(src_shape)):
            if s == 1:
                out.append(em.iconst(0))
                continue
            e = em.iudiv(flat, st) if st != 1 else flat
            if not first:
                e = em.iurem(e, s)
            first = False
            out.append(e if e is flat else em.atom(e))
        return out

    def _grouped_reshape_point(self, src_shape: tuple, dst_shape: tuple, groups: list, point) -> list:
        """A reshape whose axes split into groups of equal size (see :func:`reshape_groups`): per group,
        the output indices combine linearly (a merge of several output axes needs no division) and only
        that group's offset is split into the input's axes (a split of one axis divides that index only)."""
        em = self.em
        out = [em.iconst(0)] * len(src_shape)
        for src_axes, dst_axes in groups:
            dshape = [dst_shape[d] for d in dst_axes]
            flat = None
            for d, st in zip(dst_axes, strides(dshape)):
                t = em.imul(point[d], st) if st != 1 else point[d]
                flat = t if flat is None else em.iadd(flat, t)
            if len(src_axes) == 1:
                out[src_axes[0]] = flat if len(dst_axes) == 1 else em.atom(flat)
                continue
            flat = em.atom(flat) if len(dst_axes) > 1 else flat
            sshape = [src_shape[a] for a in src_axes]
            for j, (a, st) in enumerate(zip(src_axes, strides(sshape))):
                e = em.iudiv(flat, st) if st != 1 else flat
                if j:
                    e = em.iurem(e, sshape[j])
                out[a] = e if e is flat else em.atom(e)
        return out


    # -- values --
    def convert(self, v: Any, src: str, dst: str) -> Any:
        return v if src == dst else self.em.cast(v, src, dst)

    def store_ref(self, buf: Any, node: Node, point) -> Any:
        """Where a renderer stores ``node``'s value at ``point`` in ``buf``."""
        return self.em.store_ref(buf, self.offset(node.shape, point))

    def ev(self, node: Node, point, compute: bool = False) -> Any:
        em = self.em
        key = (node, tuple(em.key(i) for i in point), compute, self.guard and self.guard[2])
        hit = self.memo.get(key)
        if hit is not None:
            return hit[0]
        if not compute and node in self.where:
            v = self.read(node, self.offset(node.shape, point))
        else:
            v = self.compute(node, point)
        self.memo[key] = (v, point)  # the point stays alive: keys may be object identities
        return v

    def read(self, node: Node, offset: Any) -> Any:
        """A stored node's element at ``offset``: a load, or under :meth:`guarded` a guarded load."""
        if self.guard is not None:
            return self.em.load_if(self.guard[0], self.where[node], offset, node, self.guard[1])
        return self.em.load(self.where[node], offset, node)

    def guarded(self, node: Node, point, pred: Any, fill: Any) -> Any:
        """``node`` (an index view of stored nodes, :func:`is_view`, or float math over such: :func:`guardable`)
        at ``point``, which may lie out of bounds where ``pred`` is false: every read is a guarded load
        (``fill`` there; memoised apart)."""
        outer, self.guard = self.guard, (pred, fill, next(_GUARDS))
        try:
            return self.ev(node, point)
        finally:
            self.guard = outer

    def compute(self, n: Node, point) -> Any:
        em, op = self.em, n.op
        if op == "const":
            return em.const(n.value.reshape(-1)[0].item(), n.dtype)
        if op == "broadcast_to" or op == "eq" or OPS[op].elementwise:
            # operands in the op's compute dtypes (symdiff/dtypes.py: a comparison of int32 and float32
            # compares in float64, where(c, a, b) reads c as bool); the rule gets the last operand's dtype
            cdts = ([n.dtype] * len(n.inputs) if op in ("broadcast_to", "eq")
                    else _dt.signature(op, [i.dtype for i in n.inputs])[0])
            args = [self.convert(self.ev(i, self.broadcast_point(i.shape, n.shape, point)), i.dtype, c)
                    for i, c in zip(n.inputs, cdts)]
            return args[0] if op == "broadcast_to" else em.scalar(op, args, cdts[-1] if cdts else n.dtype)
        if op == "cast":
            (x,) = n.inputs
            return self.convert(self.ev(x, point), x.dtype, n.dtype)
        if op == "transpose":
            perm = n.attrs["perm"]
            inner = [None] * len(perm)
            for i, p in enumerate(perm):
                inner[p] = point[i]
            return self.ev(n.inputs[0], inner)
        if op == "reshape":
            x = n.inputs[0]
            if x in self.where:  # stored: the same element is at the reshape's own row-major offset (no / or %)
                return self.read(x, self.offset(n.shape, point))
            return self.ev(x, self.reshape_point(x.shape, n.shape, point))
        if op == "pick":
            x, lab = n.inputs
            return self.ev(x, list(point) + [em.to_index(self.ev(lab, point), lab.dtype)])
        if op == "take_along":
            x, idx = n.inputs
            ax = n.attrs["axis"]
            i = em.to_index(self.ev(idx, self.broadcast_point(idx.shape, n.shape, point)), idx.dtype)
            inner = self.broadcast_point(x.shape, n.shape, point)
            inner[ax] = em.iwrap_clamp(i, x.shape[ax])
            return self.ev(x, inner)
        if op == "one_hot":
            (lab,) = n.inputs
            return em.index_eq(em.to_index(self.ev(lab, point[:-1]), lab.dtype), point[-1], n.dtype)
        if op == "rand_uniform":
            s, t = n.inputs
            seed, step = self.ev(s, []), self.ev(t, [])
            return em.rand_uniform(self.offset(n.shape, point), seed, s.dtype, step, t.dtype,
                                   int(n.attrs.get("stream", 0)) & R.MASK32, n.dtype)
        if op == "axis_size":  # a symbolic element count: the call's size, as a value (mean's divisor)
            size = _dims.prod(n.inputs[0].shape[a] for a in n.attrs["axes"])
            return em.cast(em.iconst(size), "int64", n.dtype)
        if op in INDEX_RULES:
            return INDEX_RULES[op](self, n, point)
        raise NotImplementedError(f"{type(em).__name__}: op {op!r} cannot be evaluated inside a kernel")


def reshape_groups(src_shape: Sequence[int], dst_shape: Sequence[int]) -> Optional[list]:
    """The finest split of a reshape into groups ``(input axes, output axes)`` of consecutive non-unit axes
    with equal sizes (row-major order maps each group onto itself); None when a size is 0, or when symbolic
    sizes make the grouping depend on the call (the general flat-offset mapping applies then)."""
    try:
        return _reshape_groups(src_shape, dst_shape)
    except SymbolicDimError:
        return None


def _reshape_groups(src_shape: Sequence[int], dst_shape: Sequence[int]) -> Optional[list]:
    src = [a for a, s in enumerate(src_shape) if s != 1]
    dst = [d for d, s in enumerate(dst_shape) if s != 1]
    if 0 in src_shape or 0 in dst_shape:
        return None
    groups, i, j = [], 0, 0
    while i < len(src) and j < len(dst):
        ga, gd = [src[i]], [dst[j]]
        ps, pd = src_shape[src[i]], dst_shape[dst[j]]
        i, j = i + 1, j + 1
        while ps != pd:
            if ps < pd:
                ps *= src_shape[src[i]]
                ga.append(src[i])
                i += 1
            else:
                pd *= dst_shape[dst[j]]
                gd.append(dst[j])
                j += 1
        groups.append((ga, gd))
    return groups


# -- index selection (slice/embed/concatenate) ------------------------------------------------------------------

def _slice_point(ev: PointEval, n: Node, point) -> Any:
    """slice: in[d] = start[d] + step[d] * out[d]."""
    em, out = ev.em, []
    for p, s, st in zip(point, n.attrs["start"], n.attrs["step"]):
        i = em.imul(p, st) if st != 1 else p
        out.append(em.atom(em.iadd(i, em.iconst(s))) if s else i)
    return ev.ev(n.inputs[0], out)


def _flip_point(ev: PointEval, n: Node, point) -> Any:
    """flip: in[d] = n[d] - 1 - out[d] on the flipped axes."""
    em, (x,) = ev.em, n.inputs
    axes = set(n.attrs["axes"])
    return ev.ev(x, [em.atom(em.isub(em.iconst(x.shape[d] - 1), p)) if d in axes else p for d, p in enumerate(point)])


VIEW_OPS = frozenset({"reshape", "transpose", "slice", "flip", "window"})  # index maps without arithmetic
_GUARDS = itertools.count()


def is_view(x: Node, where: dict) -> bool:
    """Whether ``x`` is a stored node or index maps (``VIEW_OPS``) of one: evaluated anywhere, it only reads."""
    while x not in where:
        if x.op not in VIEW_OPS:
            return False
        x = x.inputs[0]
    return True


GUARDED_EXPR_NODES = 16  # an embed computes at most this many nodes of float math under guarded reads


def guardable(x: Node, where: dict, dtype: str) -> bool:
    """Whether ``x`` is float elementwise math (broadcasts, scalar constants) over index views of stored
    ``dtype`` nodes, at most GUARDED_EXPR_NODES computed nodes: evaluated at a point out of range under
    guarded reads, it reads nothing out of bounds and cannot trap (no integer arithmetic on values)."""
    stack, seen = [x], set()
    while stack:
        n = stack.pop()
        if n in seen:
            continue
        seen.add(n)
        if n in where:
            if n.dtype != dtype:  # (a guarded read's fill has the embed's dtype)
                return False
        elif n.op in VIEW_OPS:
            stack.append(n.inputs[0])
        elif n.op == "const" and n.size == 1:
            continue
        elif (n.op == "broadcast_to" or OPS[n.op].elementwise) and n.dtype.startswith("float") and not n.is_leaf:
            if len(seen) > GUARDED_EXPR_NODES:
                return False
            stack.extend(n.inputs)
        else:
            return False
    return True


def _embed_point(ev: PointEval, n: Node, point) -> Any:
    """embed: per axis t = out - start; inside when 0 <= t < step*(n-1)+1 and t % step == 0, reading
    x[t / step]; the read index is 0 outside (always in bounds), and the value is fill there."""
    em, (x,) = ev.em, n.inputs
    fill = n.attrs["fill"]
    fill = em.const(fill if n.dtype.startswith("float") else int(fill), n.dtype)
    if x.size == 0:
        return fill  # nothing placed
    # a materialised x (or an index view of one: col2im's slices) is read by guarded loads at the unclamped
    # index: affine along the inner axis, so the loop vectorises with masked loads (a clamped index is not
    # affine: gathers)
    guarded = em.GUARDED_LOADS and is_view(x, ev.where)
    # float math over such views (a pad of an activation: every conv layer's padded input) is computed at
    # the unclamped index under guarded reads too, and the fill selected outside
    computed = em.GUARDED_LOADS and not guarded and n.dtype.startswith("float") and guardable(x, ev.where, n.dtype)
    idx, inside = [], None
    for p, m, big, s, st in zip(point, x.shape, n.shape, n.attrs["start"], n.attrs["step"]):
        if m == big:  # the whole axis (start 0, step 1)
            idx.append(p)
            continue
        t = em.atom(em.isub(p, em.iconst(s))) if s else p
        pred = em.iult(t, st * (m - 1) + 1)
        if st != 1:
            pred = em.pand(pred, em.ieq(em.iurem(t, st), 0))
        inside = pred if inside is None else em.pand(inside, pred)
        if m == 1:
            idx.append(em.iconst(0))
        else:
            i = em.atom(em.iudiv(t, st)) if st != 1 else t
            idx.append(i if guarded or computed else em.iselect(pred, i, em.iconst(0)))
    if guarded and inside is not None:
        return ev.guarded(x, idx, inside, fill)
    if computed and inside is not None:
        return em.vselect(inside, ev.guarded(x, idx, inside, fill), fill, n.dtype)
    v = ev.ev(x, idx)
    return v if inside is None else em.vselect(inside, v, fill, n.dtype)


def _concat_point(ev: PointEval, n: Node, point) -> Any:
    """concatenate: a select chain over the parts; part k (at offset o_k, length n_k) is read at
    t = i - o_k, clamped to 0 outside 0 <= t < n_k (every part is read in bounds)."""
    em, axis = ev.em, n.attrs["axis"]
    p, off, reads = point[axis], 0, []
    for x in n.inputs:
        m = x.shape[axis]
        if x.size == 0:  # an empty part holds no point (and has nothing to read)
            off += m
            continue
        t = em.atom(em.isub(p, em.iconst(off))) if off else p
        inside = em.iult(t, m)
        local = list(point)
        local[axis] = em.iselect(inside, t, em.iconst(0)) if (not isinstance(m, int) or m > 1) else em.iconst(0)
        reads.append((inside, ev.ev(x, local)))
        off += m
    v = reads[-1][1]
    for inside, val in reversed(reads[:-1]):
        v = em.vselect(inside, val, v, n.dtype)
    return v


def _window_point(ev: PointEval, n: Node, point) -> Any:
    """window (symdiff/ops_conv.py): out[lead, k, o] = x[lead, o * stride + k * dilation] per spatial axis
    (always in bounds: the shape rule keeps every window inside x)."""
    em, (x,) = ev.em, n.inputs
    kernel, stride, dilation = n.attrs["kernel"], n.attrs["stride"], n.attrs["dilation"]
    k = len(kernel)
    lead = len(point) - 2 * k
    inner = list(point[:lead])
    for d in range(k):
        kk, o = point[lead + d], point[lead + k + d]
        if x.shape[lead + d] == 1:
            inner.append(em.iconst(0))
            continue
        a = em.imul(o, stride[d]) if stride[d] != 1 else o
        b = em.imul(kk, dilation[d]) if dilation[d] != 1 else kk
        if kernel[d] == 1:  # the kernel index is always 0
            inner.append(a)
        elif n.shape[lead + k + d] == 1:  # one window: the output index is always 0
            inner.append(b)
        else:
            inner.append(em.atom(em.iadd(a, b)))
    return ev.ev(x, inner)


INDEX_RULES = {"slice": _slice_point, "flip": _flip_point, "embed": _embed_point, "concatenate": _concat_point,
               "window": _window_point}
