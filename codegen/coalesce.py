"""Coalescing of a loop nest's adjacent axes (NumPy's nditer coalescing, for fused kernels).

A kernel loops over its domain's axes and evaluates a fused expression at each point; every memory
access it makes is at an offset computed from the point. Two adjacent axes ``a, a + 1`` can run as one
loop of ``n_a * n_{a+1}`` iterations when every such offset is affine in the point with

    coeff[a] == coeff[a + 1] * n_{a+1}

(the two indices only ever appear as ``i_a * n_{a+1} + i_{a+1}``, times a stride) and neither index is
used otherwise (a comparison, a division, a value, a hash). The coalesced loop then evaluates the same
expression at the point whose ``a`` index is 0 and whose ``a + 1`` index is the merged index ``m``:
every offset is the same as at ``(m // n_{a+1}, m % n_{a+1})``. Size-1 axes always read index 0 and join
any group.

Why: a loop kernel over ``[64, 16, 10, 10]`` vectorises its innermost loop of 10 only (a conv net's
bias-gradient sum over ``(0, 2, 3)`` ran at ~3 GFLOP/s); coalesced, the sum's inner loop is 100 long and an
elementwise kernel over the same domain is one loop of 102400.

The offsets are found by running the point evaluator (codegen/pointeval.py) once over symbolic indices
with :class:`AffineProbe`, an emitter whose index values are affine forms of the loop indices.
"""
from __future__ import annotations

import itertools
import math
from typing import Any, Callable, Optional, Sequence

from symdiff.codegen.pointeval import Emitter, PointEval
from symdiff.dims import SymbolicDimError

__all__ = ["AffineProbe", "coalesce", "coalesced", "expand_point", "merged_shape", "loop_probe", "reduce_probe"]

_FRESH = itertools.count()


class Affine:
    """``sum(coeff * i_axis) + const (+ data-dependent terms, tagged)``: an index value of the probe."""
    __slots__ = ("coeffs", "const", "tags")

    def __init__(self, coeffs: dict, const: int = 0, tags: frozenset = frozenset()) -> None:
        self.coeffs = {a: c for a, c in coeffs.items() if c}
        self.const, self.tags = const, tags

    def _key(self) -> tuple:
        return tuple(sorted(self.coeffs.items())), self.const, self.tags

    def __hash__(self) -> int:
        return hash(self._key())

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Affine) and self._key() == other._key()

    def plus(self, other: "Affine", sign: int = 1) -> "Affine":
        co = dict(self.coeffs)
        for a, c in other.coeffs.items():
            co[a] = co.get(a, 0) + sign * c
        return Affine(co, self.const + sign * other.const, self.tags | other.tags)

    def times(self, c: int) -> "Affine":
        return Affine({a: v * c for a, v in self.coeffs.items()}, self.const * c, self.tags)


class AffineProbe(Emitter):
    """Records the affine offset of every load and store; an index used any other way pins its axes
    (they are never coalesced). Values (loaded or computed) are opaque."""

    def __init__(self, guarded_loads: bool = False) -> None:
        self.GUARDED_LOADS = guarded_loads  # (the same path through embed's rule as the real emitter)
        self.offsets: list[Affine] = []
        self.pinned: set[int] = set()

    def _pin(self, *vals: Any) -> Affine:
        """Pin the axes ``vals`` depend on; a fresh data-like index (its own tag) stands for the result."""
        for v in vals:
            if isinstance(v, Affine):
                self.pinned.update(v.coeffs)
        return Affine({}, 0, frozenset({next(_FRESH)}))

    def _record(self, offset: Any) -> None:
        self.offsets.append(offset if isinstance(offset, Affine) else self._pin(offset))

    # -- index values: affine arithmetic; anything else pins --
    def iconst(self, v) -> Affine:  # (a symbolic size: a constant of its own)
        return Affine({}, v) if isinstance(v, int) else Affine({}, 0, frozenset({("size", str(v))}))

    def iadd(self, a: Affine, b: Affine) -> Affine:
        return a.plus(b)

    def isub(self, a: Affine, b: Affine) -> Affine:
        return a.plus(b, -1)

    def imul(self, a: Affine, c: int) -> Affine:
        return a.times(int(c)) if isinstance(c, int) else self._pin(a)

    def iudiv(self, a, c):
        return self._pin(a)

    def iurem(self, a, c):
        return self._pin(a)

    def iult(self, a, c):
        return self._pin(a)

    def ieq(self, a, c):
        return self._pin(a)

    def pand(self, p, q):
        return self._pin(p, q)

    def iselect(self, p, a, b):
        return self._pin(p, a, b)

    def iwrap_clamp(self, i, n):
        return self._pin(i)

    def to_index(self, v, dtype):
        return self._pin(v)

    # -- memory --
    def load(self, buf, offset, node):
        self._record(offset)
        return object()

    def load_if(self, pred, buf, offset, node, fill):
        self._pin(pred)
        self._record(offset)
        return object()

    def store_ref(self, buf, offset):
        self._record(offset)
        return object()

    # -- values: opaque (an index turned into a value pins) --
    def const(self, value, dtype):
        return object()

    def cast(self, v, src, dst):
        self._pin(v)
        return object()

    def scalar(self, op, args, dtype):
        self._pin(*args)
        return object()

    def index_eq(self, a, b, dtype):
        self._pin(a, b)
        return object()

    def vselect(self, p, a, b, dtype):
        self._pin(p, a, b)
        return object()

    def u32(self, v, dtype):
        return self._pin(v)

    def u32const(self, c):
        return self._pin()

    def u32mul(self, a, b):
        return self._pin(a, b)

    def u32xor(self, a, b):
        return self._pin(a, b)

    def u32shr(self, a, k):
        return self._pin(a)

    def u32_to_float(self, v, dtype):
        self._pin(v)
        return object()


def coalesce(shape: Sequence, body: Callable[[PointEval, list], None], where: dict,
             cuts: Sequence[int] = (), guarded_loads: bool = False) -> Optional[list[list[int]]]:
    """Groups of consecutive axes of a loop nest over ``shape`` that may run as one loop each (every
    axis in one group; groups in order), or None when nothing coalesces (or a size is symbolic).

    ``body(ev, point)`` evaluates what one point of the kernel computes and stores (through ``ev``, a
    :class:`PointEval` over the probe); ``cuts``: axis boundaries no group may cross (``c`` separates axes
    ``c - 1`` and ``c``: a kernel's outer and inner loop nests)."""
    if len(shape) < 2 or not all(isinstance(s, int) for s in shape):
        return None
    probe = AffineProbe(guarded_loads)
    try:
        body(PointEval(probe, where), [Affine({a: 1}) for a in range(len(shape))])
    except (NotImplementedError, SymbolicDimError):  # nothing the probe can follow: the nest as it is
        return None

    def joins(a: int, b: int) -> bool:  # non-unit axes a < b, only unit axes between them
        if a in probe.pinned or b in probe.pinned:
            return False
        return all(o.coeffs.get(a, 0) == o.coeffs.get(b, 0) * shape[b] for o in probe.offsets)

    groups: list[list[int]] = []
    last = None  # the last non-unit axis of the current group (None: only unit axes so far)
    for ax, n in enumerate(shape):
        if groups and ax not in cuts and (n == 1 or last is None or joins(last, ax)):
            groups[-1].append(ax)
        else:
            groups.append([ax])
            last = None
        if n != 1:
            last = ax
    return groups if len(groups) < len(shape) else None


def expand_point(groups: list[list[int]], shape: Sequence[int], merged: list, zero: Any) -> list:
    """The kernel's point for a point ``merged`` of the coalesced nest: per group, ``zero`` on every axis
    but its last non-unit one, which takes the merged index."""
    point = [zero] * len(shape)
    for g, m in zip(groups, merged):
        live = [a for a in g if shape[a] != 1]
        if live:
            point[live[-1]] = m
    return point


def merged_shape(groups: list[list[int]], shape: Sequence[int]) -> list[int]:
    """The extents of the coalesced nest."""
    return [math.prod(shape[a] for a in g) for g in groups]


def coalesced(shape: Sequence, body: Callable[[PointEval, list], None], where: dict, zero: Any,
              cut: Optional[int] = None, guarded_loads: bool = False) -> list[tuple[list, Callable[[list], list]]]:
    """The loop nest(s) to render over ``shape``, as [(extents, point map)]: the point map turns a point
    of the coalesced nest (:func:`coalesce`) into the kernel's (``zero``: the backend's index 0). One
    nest, or with ``cut`` two: the axes before ``cut`` and the ones from it (a kernel's outer and inner
    loops; each map then gives its own part of the point). Nothing coalesces: the axes as they are."""
    groups = coalesce(shape, body, where, () if cut is None else (cut,), guarded_loads)
    cut = len(shape) if cut is None else cut
    parts = [(0, cut), (cut, len(shape))] if cut < len(shape) else [(0, cut)]
    out = []
    for lo, hi in parts:
        sub = list(shape[lo:hi])
        if groups is None:
            out.append((sub, lambda p: list(p)))
            continue
        gs = [[a - lo for a in g] for g in groups if lo <= g[0] < hi]
        out.append((merged_shape(gs, sub), lambda p, gs=gs, sub=sub: expand_point(gs, sub, p, zero)))
    return out


def loop_probe(k, where: dict) -> Callable[[PointEval, list], None]:
    """The probe body of a LoopKernel ``k``: what one point of its domain reads and stores."""
    def body(ev: PointEval, point: list) -> None:
        for node, buf in k.stores:
            ev(node, point, compute=where.get(node) is buf)
            ev.store_ref(buf, node, point)
        for _r, x, _ in k.accums:
            ev(x, point)
    return body


def reduce_probe(r, out) -> Callable[[PointEval, list], None]:
    """The probe body of a reduction node ``r`` stored in ``out``: one input point read, and the output
    element it accumulates into."""
    x, axes = r.inputs[0], set(r.attrs["axes"])
    out_shape = tuple(s for i, s in enumerate(x.shape) if i not in axes)

    def body(ev: PointEval, point: list) -> None:
        ev(x, point)
        ev.em.store_ref(out, ev.offset(out_shape, [p for i, p in enumerate(point) if i not in axes]))
    return body
