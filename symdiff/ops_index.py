"""Static index-mapping ops: strided slices, flips, embeddings (pad with a constant) and concatenation.

Every op here only remaps indices, so the compiled backends compute it inline in the point evaluator
(``codegen/pointeval.py``) and it fuses with its neighbours; the DSL (``api_shape.py``: indexing, ``pad``,
``roll``, ``split``, ``diagonal``, ...) is built from these four. Per axis ``d`` (``n``: input size,
``N``: output size):

- ``slice(x; start, step, shape)``: ``out[j] = x[start + step * j]`` (``step >= 1``; a negative step is a
  ``flip`` then a slice);
- ``flip(x; axes)``: ``out[j] = x[n - 1 - j]`` on each axis in ``axes``;
- ``embed(x; shape, start, step, fill)``: ``out[start + step * i] = x[i]``, every other entry ``fill``
  (pad-constant; the VJP of ``slice`` with fill 0, and ``slice`` is its VJP);
- ``concatenate(x_0, ..., x_k; axis)``: the parts one after another along ``axis`` (VJP: slices of g).
"""
from __future__ import annotations

from typing import Callable, Optional, Sequence

import numpy as np

from . import dims as _dims
from .ir import Node, apply
from .optable import OpDef, register

__all__ = ["strided_slice", "embed", "flip", "concat", "slice_axis", "index_slices", "decide", "is_fixed_at_most",
           "dim_min", "dim_max", "ceil_div"]


# -- sizes that may be symbolic (symdiff/dims.py) ---------------------------------------------------------------

def decide(test: Callable[[], bool]) -> Optional[bool]:
    """The value of a size comparison, or None when it depends on symbolic sizes at call time."""
    try:
        return bool(test())
    except _dims.SymbolicDimError:
        return None


def is_fixed_at_most(m: _dims.DimLike, k: int) -> bool:
    """True when ``m`` is a fixed size <= k (a symbolic size is never assumed to be small)."""
    return not isinstance(m, _dims.Dim) and m <= k


def dim_min(a: _dims.DimLike, b: _dims.DimLike, what: str) -> _dims.DimLike:
    """min(a, b) of sizes, when the comparison is certain for every size; else SymbolicDimError naming ``what``."""
    if decide(lambda: a <= b):
        return a
    if decide(lambda: b <= a):
        return b
    raise _dims.SymbolicDimError(f"{what}: min({a}, {b}) depends on the sizes at call time")


def dim_max(a: _dims.DimLike, b: _dims.DimLike, what: str) -> _dims.DimLike:
    """max(a, b) of sizes, when the comparison is certain for every size; else SymbolicDimError naming ``what``."""
    if decide(lambda: a >= b):
        return a
    if decide(lambda: b >= a):
        return b
    raise _dims.SymbolicDimError(f"{what}: max({a}, {b}) depends on the sizes at call time")


def ceil_div(span: _dims.DimLike, step: int) -> _dims.DimLike:
    """ceil(span / step) for a size ``span`` >= 0 and an int ``step`` >= 1; symbolic: exact when ``span - r``
    is a multiple of ``step`` for a constant remainder r (``2*n - 1`` in steps of 2 is n), else
    SymbolicDimError."""
    if not isinstance(span, _dims.Dim):
        return -(-span // step)
    for r in range(step):
        q = decide(lambda: (span - r) % step == 0)
        if q:
            return (span - r) // step + (1 if r else 0)
    raise _dims.SymbolicDimError(f"ceil({span} / {step}) is not a polynomial in the sizes")


def strided_slice(x: Node, start: Sequence[int], step: Sequence[int], shape: Sequence[int]) -> Node:
    """``out[j] = x[start + step * j]`` per axis, ``out`` of ``shape`` (start >= 0, step >= 1)."""
    start, step, shape = (tuple(_dims.as_dim(v) for v in t) for t in (start, step, shape))
    step = tuple(1 if is_fixed_at_most(m, 1) else s for s, m in zip(step, shape))  # moot on a 0/1-long axis
    if shape == x.shape and not any(start):
        return x  # a full-size slice from 0 is the identity
    return apply("slice", [x], start=start, step=step, shape=shape)


def slice_axis(x: Node, axis: int, start: int, stop: int, step: int = 1) -> Node:
    """``x`` sliced ``start:stop:step`` (non-negative, in range, ``step >= 1``) along one axis. Symbolic
    bounds: ``stop - start`` is the size (step 1, or an exact multiple of the step)."""
    n = _slice_length(stop - start, step)
    st = [0] * x.ndim
    sp = [1] * x.ndim
    shape = list(x.shape)
    st[axis], sp[axis], shape[axis] = start, step, n
    return strided_slice(x, st, sp, shape)


def _slice_length(span: _dims.DimLike, step: int) -> _dims.DimLike:
    """ceil(span / step), at least 0: for a symbolic span it must be certainly >= 0 and an exact multiple."""
    if not isinstance(span, _dims.Dim):
        return max(0, -(-span // step))
    if decide(lambda: span >= 0) is not True:
        raise _dims.SymbolicDimError(f"slice: the length {span} may be negative for some sizes at call time")
    return ceil_div(span, step)


def embed(x: Node, shape: Sequence[int], start: Sequence[int], step: Sequence[int], fill: float = 0.0) -> Node:
    """A tensor of ``shape`` filled with ``fill`` holding ``x[i]`` at ``start + step * i`` per axis."""
    start, step, shape = (tuple(_dims.as_dim(v) for v in t) for t in (start, step, shape))
    step = tuple(1 if is_fixed_at_most(m, 1) else s for s, m in zip(step, x.shape))
    if shape == x.shape and not any(start):
        return x
    return apply("embed", [x], shape=shape, start=start, step=step, fill=float(fill))


def flip(x: Node, axes: Sequence[int]) -> Node:
    """Reverse ``x`` along ``axes`` (non-negative); fixed axes of size 0 or 1 are dropped (flipping them is the
    identity; a symbolic axis is kept)."""
    axes = tuple(sorted({int(a) for a in axes if not is_fixed_at_most(x.shape[int(a)], 1)}))
    return x if not axes else apply("flip", [x], axes=axes)


def concat(parts: Sequence[Node], axis: int) -> Node:
    """The parts (same dtype and rank, equal shapes off ``axis``) one after another along ``axis``;
    empty parts (a fixed size 0) are dropped and a single part is itself."""
    parts = list(parts)
    kept = [p for p in parts if not is_fixed_at_most(p.shape[axis], 0)] or parts[:1]
    if len(kept) == 1 and len(parts) >= 1:
        apply("concatenate", parts, axis=int(axis))  # still check the parts agree
        return kept[0]
    return apply("concatenate", kept, axis=int(axis))


def index_slices(start: Sequence[int], step: Sequence[int], shape: Sequence[int]) -> tuple:
    """The NumPy basic index of ``slice``/``embed`` with these attributes."""
    return tuple(slice(s, s + st * (m - 1) + 1, st) if m > 0 else slice(0, 0) for s, st, m in zip(start, step, shape))


# -- shape rules --------------------------------------------------------------------------------------------

def _check_rank(op: str, x: Node, **attrs) -> None:
    for k, v in attrs.items():
        if len(v) != x.ndim:
            raise ValueError(f"{op}: attribute {k}={tuple(v)} has {len(v)} entries for a tensor of rank {x.ndim} "
                             f"(shape {x.shape})")


def _fits(m: _dims.DimLike, n: _dims.DimLike, s: _dims.DimLike, st: int) -> Optional[bool]:
    """Whether m entries from s in steps of st lie inside an axis of size n (None: only the call decides).
    A size that may be 0 or more (``n - 1``) must fit both ways: s + st*(m-1) < n when m > 0, s <= n when 0."""
    if st < 1 or decide(lambda: s < 0) is True or decide(lambda: m < 0) is True:
        return False
    if decide(lambda: s >= 0) is not True or decide(lambda: m >= 0) is not True:
        return None
    positive = decide(lambda: m > 0)
    tests = ([lambda: s + st * (m - 1) < n] if positive is not False else []) + \
        ([lambda: s <= n] if positive is not True else [])
    results = [decide(t) for t in tests]
    return False if False in results else None if None in results else True


def _check_placement(op: str, inner: tuple, outer: tuple, start: tuple, step: tuple) -> None:
    """start + step * (inner - 1) must lie inside outer on every axis (start >= 0, step >= 1); with
    symbolic sizes it must do so for every size at call time."""
    for d, (m, n, s, st) in enumerate(zip(inner, outer, start, step)):
        ok = _fits(m, n, s, st)
        if ok is not True:
            err = ValueError if ok is False else _dims.SymbolicDimError
            why = "do not fit" if ok is False else "may not fit (it depends on the sizes at call time)"
            raise err(f"{op}: axis {d}: {m} entries from {s} in steps of {st} {why} in size {n} "
                      f"(inner shape {inner}, outer shape {outer})")


def _slice_infer(inputs, attrs):
    (x,) = inputs
    _check_rank("slice", x, start=attrs["start"], step=attrs["step"], shape=attrs["shape"])
    _check_placement("slice", tuple(attrs["shape"]), x.shape, tuple(attrs["start"]), tuple(attrs["step"]))
    return tuple(attrs["shape"]), x.dtype


def _embed_infer(inputs, attrs):
    (x,) = inputs
    _check_rank("embed", x, start=attrs["start"], step=attrs["step"], shape=attrs["shape"])
    _check_placement("embed", x.shape, tuple(attrs["shape"]), tuple(attrs["start"]), tuple(attrs["step"]))
    return tuple(attrs["shape"]), x.dtype


def _flip_infer(inputs, attrs):
    (x,) = inputs
    axes = tuple(attrs["axes"])
    if any(not 0 <= a < x.ndim for a in axes) or len(set(axes)) != len(axes):
        raise ValueError(f"flip: axes {axes} are not distinct axes of a tensor of shape {x.shape}")
    return x.shape, x.dtype


def _concat_infer(inputs, attrs):
    axis = attrs["axis"]
    if not inputs:
        raise ValueError("concatenate: need at least one array to concatenate")
    first = inputs[0]
    shapes = ", ".join(str(i.shape) for i in inputs)
    if first.ndim == 0:
        raise ValueError("concatenate: zero-dimensional arrays cannot be concatenated")
    if not 0 <= axis < first.ndim:
        raise ValueError(f"concatenate: axis {axis} is out of bounds for arrays of rank {first.ndim} (shapes {shapes})")
    for k, i in enumerate(inputs):
        if i.ndim != first.ndim:
            raise ValueError(f"concatenate: all the input arrays must have the same number of dimensions; "
                             f"input 0 has {first.ndim} and input {k} has {i.ndim} (shapes {shapes})")
        if any(a != b for d, (a, b) in enumerate(zip(i.shape, first.shape)) if d != axis):
            raise ValueError(f"concatenate: the input shapes must match except along axis {axis}; "
                             f"input 0 has shape {first.shape} and input {k} has shape {i.shape}")
        if i.dtype != first.dtype:
            raise TypeError(f"concatenate: input dtypes differ ({first.dtype}, {i.dtype}); cast first "
                            f"(sd.concatenate promotes)")
    shape = list(first.shape)
    shape[axis] = sum(i.shape[axis] for i in inputs)
    return tuple(shape), first.dtype


# -- numpy implementations ----------------------------------------------------------------------------------

def _slice_np(a, start, step, shape):
    return a[index_slices(start, step, shape)]


def _embed_np(a, shape, start, step, fill):
    out = np.full(shape, fill, dtype=a.dtype)
    out[index_slices(start, step, a.shape)] = a
    return out


def _concat_np(*arrays, axis):
    return np.concatenate(arrays, axis=axis)


# -- vector-Jacobian rules -------------------------------------------------------------------------------------

def _slice_vjp(node, g):
    # the slice's cotangent goes back to the entries it read; the rest of x gets 0
    (x,) = node.inputs
    return [embed(g, x.shape, node.attrs["start"], node.attrs["step"], 0.0)]


def _embed_vjp(node, g):
    # only the placed entries depend on x; fill is a constant
    (x,) = node.inputs
    return [strided_slice(g, node.attrs["start"], node.attrs["step"], x.shape)]


def _concat_vjp(node, g):
    # part k is g's entries from the sum of the earlier parts' sizes (a Dim when a size is symbolic)
    axis, off, out = node.attrs["axis"], 0, []
    for x in node.inputs:
        out.append(slice_axis(g, axis, off, off + x.shape[axis]))
        off += x.shape[axis]
    return out


register(OpDef("slice", _slice_infer, _slice_np, _slice_vjp,
               doc="slice(x; start, step, shape)[j] = x[start + step*j] per axis (basic strided indexing)"))
register(OpDef("flip", _flip_infer, lambda a, axes: np.flip(a, axis=axes), lambda n, g: [flip(g, n.attrs["axes"])],
               doc="reverse along axes: out[j] = x[n-1-j]"))
register(OpDef("embed", _embed_infer, _embed_np, _embed_vjp,
               doc="a tensor of shape filled with fill, holding x[i] at start + step*i (pad-constant)"))
register(OpDef("concatenate", _concat_infer, _concat_np, _concat_vjp, arity=-1,
               doc="the inputs one after another along axis (np.concatenate)"))
