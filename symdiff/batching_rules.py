"""Batching rules: how each op acts on operands that carry an extra LEADING batch axis.

A rule is ``rule(node, ins, batched) -> Node``: ``node`` is the original (per-example) node, ``ins`` its
rebuilt inputs (a batched input has shape ``(B,) + original shape``, an unbatched one is the original
node itself), ``batched[i]`` says which. The result is ``node`` computed for every example at once, with
the batch axis at 0: ``result[b] == node(inputs with ins[i][b] for each batched i)``.

- Elementwise ops share one rule (:func:`elementwise_rule`): an unbatched operand broadcasts as it is; a
  batched operand of lower rank than the output is reshaped ``(B, 1, ..., 1, *s)`` so right-aligned
  broadcasting still lines its own axes up with the output's.
- Tensor ops have explicit rules in :data:`BATCH_RULES` (their axis attributes shifted by one; matmul's
  batch dimensions broadcast; ``pick`` folds the batch into its rows; the convolutions fold the batch into
  ``N`` or, for a batched weight, into the groups: one convolution with ``B * groups`` groups).
- :data:`FALLBACK_OPS` lists the ops whose rule unstacks the batch (``B`` slices, the op per example,
  a concatenation): correct, but ``B`` copies of the op in the graph. Only ``rand_uniform`` with a batched
  seed or step does this. An op registered later without a rule (and not elementwise) falls back too.
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from . import dims as _dims
from .ir import Node, apply, const
from .ops_index import concat, slice_axis
from .ops_tensor import broadcast_to, reshape, transpose
from .optable import OPS

Rule = Callable[[Node, list, Sequence[bool]], Node]

LEAF_OPS = ("input", "param", "const")  # never batched by a rule: a leaf is replaced through ``subst`` or kept


# -- helpers ---------------------------------------------------------------------------------------------------

def batch_size(ins: Sequence[Node], batched: Sequence[bool]) -> int:
    """The batch size ``B``: the leading axis of any batched input."""
    return next(x.shape[0] for x, b in zip(ins, batched) if b)


def materialize(x: Node, is_batched: bool, size: int) -> Node:
    """``x`` with the batch axis: an unbatched ``x`` broadcast to ``(size,) + x.shape`` (no copy in the kernels)."""
    return x if is_batched else broadcast_to(x, (size,) + x.shape)


def lift_rank(x: Node, rank: int) -> Node:
    """A batched ``x`` of shape ``(B, *s)`` as ``(B, 1, ..., 1, *s)`` with ``rank`` axes after ``B``."""
    s = x.shape[1:]
    return reshape(x, (x.shape[0],) + (1,) * (rank - len(s)) + s)


def _shift(axes: Sequence[int]) -> tuple:
    return tuple(int(a) + 1 for a in axes)


def _reapply(node: Node, ins: Sequence[Node], **changes) -> Node:
    return apply(node.op, list(ins), **{**node.attrs, **changes})


# -- the generic rules --------------------------------------------------------------------------------------------

def elementwise_rule(node: Node, ins: list, batched: Sequence[bool]) -> Node:
    """out[b] = f(x_0[b] or x_0, ...): batched operands lifted to the output's rank, broadcasting does the rest."""
    r = node.ndim
    return _reapply(node, [lift_rank(x, r) if b else x for x, b in zip(ins, batched)])


def leading_rule(node: Node, ins: list, batched: Sequence[bool]) -> Node:
    """Ops that act on trailing axes and keep any leading ones (cast, one_hot, window, fold): re-apply as is."""
    return _reapply(node, ins)


def unstack_rule(node: Node, ins: list, batched: Sequence[bool]) -> Node:
    """The fallback: the op once per example on slices of the batched inputs, the results concatenated."""
    size = batch_size(ins, batched)
    if size == 0:
        return broadcast_to(const(np.zeros((), node.dtype), node.dtype), (0,) + node.shape)
    rows = []
    for k in range(size):
        per = [reshape(slice_axis(x, 0, k, k + 1), orig.shape) if b else x
               for x, b, orig in zip(ins, batched, node.inputs)]
        y = _reapply(node, per)
        rows.append(reshape(y, (1,) + y.shape))
    return concat(rows, 0)


# -- explicit rules for tensor ops --------------------------------------------------------------------------------

def _axes_rule(node, ins, batched):  # sum, max, prod, logsumexp, argmax, argmin: reduce over axes + 1
    return _reapply(node, ins, axes=_shift(node.attrs["axes"]))


def _axis_size_rule(node, ins, batched):  # the per-example count over axes + 1, the same for every example
    (x,) = ins
    return broadcast_to(_reapply(node, ins, axes=_shift(node.attrs["axes"])), (x.shape[0],))


def _axis_rule(node, ins, batched):  # softmax, log_softmax, cumsum, cumprod, argsort: along axis + 1
    return _reapply(node, ins, axis=node.attrs["axis"] + 1)


def _reshape_rule(node, ins, batched):
    (x,) = ins
    return reshape(x, (x.shape[0],) + node.shape)


def _broadcast_rule(node, ins, batched):
    (x,) = ins
    return broadcast_to(lift_rank(x, node.ndim), (x.shape[0],) + node.shape)


def _transpose_rule(node, ins, batched):
    (x,) = ins
    return transpose(x, (0,) + _shift(node.attrs["perm"]))


def _matmul_rule(node, ins, batched):
    # (B, ..., M, K) @ (K, N) folds B and the batch dims into the rows: ONE GEMM (B*...*M, K) @ (K, N);
    # otherwise the batched operands are lifted to the output's rank and matmul's batch dims broadcast.
    a, b = ins
    (ba, bb), size = batched, batch_size(ins, batched)
    k = node.inputs[0].shape[-1]
    if ba and not bb and b.ndim == 2:
        rows = _dims.prod(a.shape[:-1])
        return reshape(apply("matmul", [reshape(a, (rows, k)), b]), (size,) + node.shape)
    r = node.ndim
    return apply("matmul", [lift_rank(a, r) if ba else a, lift_rank(b, r) if bb else b])


def _from_leaf(lab: Node) -> bool:
    """Labels the compiled signature can range-check: a leaf, possibly reshaped (symdiff/signature.py)."""
    while lab.op == "reshape":
        lab = lab.inputs[0]
    return lab.is_leaf


def _one_hot_of(lab: Node, depth: int, dtype: str) -> Node:
    """one_hot(lab), built as [lab[..., None] == iota] when lab is not a (reshaped) leaf."""
    if _from_leaf(lab):
        return apply("one_hot", [lab], depth=depth, dtype=dtype)
    iota = const(np.arange(depth, dtype=lab.dtype), lab.dtype)
    return apply("cast", [apply("eq", [reshape(lab, lab.shape + (1,)), iota])], dtype=dtype)


def _pick_rule(node, ins, batched):
    # pick(x, lab)[b, i] = x[b, i, lab[b, i]]. Batched labels: fold the batch into the rows of one pick.
    # Unbatched labels (the common per-example-gradient case): sum_c x[b, i, c] * one_hot(lab)[i, c].
    size = batch_size(ins, batched)
    x, lab = ins
    rows, classes = node.inputs[0].shape
    if not batched[1]:
        return apply("sum", [apply("mul", [x, _one_hot_of(lab, classes, x.dtype)])], axes=(2,), keepdims=False)
    if not _from_leaf(lab):
        return apply("sum", [apply("mul", [materialize(x, batched[0], size), _one_hot_of(lab, classes, node.dtype)])],
                     axes=(2,), keepdims=False)
    y = apply("pick", [reshape(materialize(x, batched[0], size), (size * rows, classes)), reshape(lab, (size * rows,))])
    return reshape(y, (size, rows))


def _one_hot_rule(node, ins, batched):
    (lab,) = ins
    return _one_hot_of(lab, node.attrs["depth"], node.dtype)


def _take_along_rule(node, ins, batched):
    # an unbatched operand gets a size-1 leading axis: take_along broadcasts it on every axis but `axis`
    x, idx = (t if f else reshape(t, (1,) + t.shape) for t, f in zip(ins, batched))
    return apply("take_along", [x, idx], axis=node.attrs["axis"] + 1)


def _scatter_rule(node, ins, batched):
    # the updates must have the batched output's shape; unbatched indices broadcast over the batch (size 1)
    size = batch_size(ins, batched)
    g, idx = ins
    g = materialize(g, batched[0], size)
    idx = idx if batched[1] else reshape(idx, (1,) + idx.shape)
    return _reapply(node, [g, idx], axis=node.attrs["axis"] + 1, shape=(size,) + tuple(node.attrs["shape"]))


def _slice_rule(node, ins, batched):
    a = node.attrs
    return _reapply(node, ins, start=(0,) + tuple(a["start"]), step=(1,) + tuple(a["step"]),
                    shape=(ins[0].shape[0],) + tuple(a["shape"]))


def _embed_rule(node, ins, batched):
    a = node.attrs
    return _reapply(node, ins, start=(0,) + tuple(a["start"]), step=(1,) + tuple(a["step"]),
                    shape=(ins[0].shape[0],) + tuple(a["shape"]))


def _flip_rule(node, ins, batched):
    return _reapply(node, ins, axes=_shift(node.attrs["axes"]))


def _concat_rule(node, ins, batched):
    size = batch_size(ins, batched)
    return _reapply(node, [materialize(x, f, size) for x, f in zip(ins, batched)], axis=node.attrs["axis"] + 1)


# -- convolutions: the batch folded into N (batched data) or into the groups (batched weight) ---------------------

def _into_n(x: Node) -> Node:
    """(B, N, C, *S) -> (B*N, C, *S)."""
    return reshape(x, (x.shape[0] * x.shape[1],) + x.shape[2:])


def _from_n(y: Node, size: int) -> Node:
    """(B*N, C, *S) -> (B, N, C, *S)."""
    return reshape(y, (size, y.shape[0] // size) + y.shape[1:])


def _into_channels(x: Node, is_batched: bool, size: int) -> Node:
    """Per-example (N, C, *S) data as (N, B*C, *S): example b's channels are block b (channel b*C + c)."""
    if not is_batched:
        x = broadcast_to(reshape(x, (1,) + x.shape), (size,) + x.shape)
    t = transpose(x, (1, 0) + tuple(range(2, x.ndim)))  # (N, B, C, *S)
    return reshape(t, (t.shape[0], t.shape[1] * t.shape[2]) + t.shape[3:])


def _from_channels(y: Node, size: int) -> Node:
    """(N, B*O, *S) -> (B, N, O, *S)."""
    t = reshape(y, (y.shape[0], size, y.shape[1] // size) + y.shape[2:])
    return transpose(t, (1, 0) + tuple(range(2, t.ndim)))


def _into_rows(w: Node, is_batched: bool, size: int) -> Node:
    """A per-example weight (O, C/G, *K) as (B*O, C/G, *K): example b's filters are block b."""
    w = materialize(w, is_batched, size)
    return reshape(w, (w.shape[0] * w.shape[1],) + w.shape[2:])


def _conv_rule(node, ins, batched):
    # conv / conv_transpose (data, weight). Batched data only: B folds into N (one conv over B*N images).
    # Batched weight: groups G -> B*G with the examples' channels side by side: channel block b of the data
    # meets filter block b only, which is exactly the per-example convolution.
    size = batch_size(ins, batched)
    x, w = ins
    bx, bw = batched
    if not bw:
        return _from_n(_reapply(node, [_into_n(x), w]), size)
    y = _reapply(node, [_into_channels(x, bx, size), _into_rows(w, True, size)], groups=node.attrs["groups"] * size)
    return _from_channels(y, size)


def _conv_weight_rule(node, ins, batched):
    # dw[b] = corr(x[b], g[b]): both operands' channels in B blocks, groups B*G -> (B*O, C/G, *K)
    size = batch_size(ins, batched)
    x, g = ins
    dw = _reapply(node, [_into_channels(x, batched[0], size), _into_channels(g, batched[1], size)],
                  groups=node.attrs["groups"] * size)
    return reshape(dw, (size,) + node.shape)


BATCH_RULES: dict[str, Rule] = {
    **{op: _axes_rule for op in ("sum", "max", "prod", "logsumexp", "argmax", "argmin")},
    **{op: _axis_rule for op in ("softmax", "log_softmax", "cumsum", "cumprod", "argsort")},
    **{op: leading_rule for op in ("cast", "window", "fold")},
    "one_hot": _one_hot_rule,
    "axis_size": _axis_size_rule,
    **{op: _scatter_rule for op in ("scatter_add", "scatter_mul", "scatter_max")},
    "eq": elementwise_rule,
    "reshape": _reshape_rule,
    "broadcast_to": _broadcast_rule,
    "transpose": _transpose_rule,
    "matmul": _matmul_rule,
    "pick": _pick_rule,
    "take_along": _take_along_rule,
    "slice": _slice_rule,
    "embed": _embed_rule,
    "flip": _flip_rule,
    "concatenate": _concat_rule,
    "conv": _conv_rule,
    "conv_transpose": _conv_rule,
    "conv_weight": _conv_weight_rule,
    # rand_uniform's value is a pure function of (seed, step): an unbatched one is shared by every example
    # (never reached: it has no batched input); a batched seed or step gives each example its own numbers
    "rand_uniform": unstack_rule,
}

# the ops whose rule makes B copies (docs/batching.md "Cost"); tests/test_batching.py keeps this exact
FALLBACK_OPS = frozenset(op for op, r in BATCH_RULES.items() if r is unstack_rule)


def rule_for(op: str) -> Rule:
    """The batching rule of ``op``: its entry in BATCH_RULES, the elementwise rule, else the unstack fallback."""
    rule = BATCH_RULES.get(op)
    if rule is not None:
        return rule
    return elementwise_rule if OPS[op].elementwise else unstack_rule
