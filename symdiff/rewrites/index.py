"""canonicalize: the index-selection ops of ``ops_index.py`` (slice, flip, embed, concatenate).

Gradients of indexing are embeds and slices of cotangents, so these identities keep derivative graphs
(and Hessian-vector products) small: fills pass through index maps, a slice of a slice is one slice,
a slice of what an embed placed is the embedded tensor, a slice inside one part of a concatenation
reads that part, and flips cancel.
"""
from __future__ import annotations

from typing import Optional

from ..ir import Node
from ..ops_index import embed, flip, strided_slice
from ..ops_tensor import broadcast_to, reshape
from .patterns import fill, uniform
from .registry import rewrite


@rewrite("canonicalize", ops=("slice", "flip", "embed", "concatenate"))
def index_of_fill(n: Node) -> Optional[Node]:
    """slice/flip of a fill, embed of a fill v with fill v, concatenation of equal fills -> a fill;
    slice/flip of a broadcast scalar -> that scalar broadcast to the result."""
    vals = [uniform(i) for i in n.inputs]
    if n.op == "embed":
        vals.append(n.attrs["fill"])
    if vals[0] is not None and all(v == vals[0] for v in vals):
        return fill(n, vals[0])
    x = n.inputs[0]
    if n.op in ("slice", "flip") and x.op == "broadcast_to" and x.inputs[0].size == 1:
        return broadcast_to(reshape(x.inputs[0], ()), n.shape)
    return None


@rewrite("canonicalize", ops=("slice",))
def slice_slice(n: Node) -> Optional[Node]:
    """slice(slice(x, s1, t1), s2, t2) -> slice(x, s1 + t1*s2, t1*t2)."""
    x = n.inputs[0]
    if x.op != "slice":
        return None
    (s1, t1), (s2, t2) = (x.attrs["start"], x.attrs["step"]), (n.attrs["start"], n.attrs["step"])
    return strided_slice(x.inputs[0], [a + b * c for a, b, c in zip(s1, t1, s2)], [b * d for b, d in zip(t1, t2)],
                         n.shape)


@rewrite("canonicalize", ops=("embed",))
def embed_embed(n: Node) -> Optional[Node]:
    """embed(embed(x, s1, t1, f), s2, t2, f) -> embed(x, s2 + t2*s1, t2*t1, f) (equal fills)."""
    x = n.inputs[0]
    if x.op != "embed" or x.attrs["fill"] != n.attrs["fill"]:
        return None
    (s1, t1), (s2, t2) = (x.attrs["start"], x.attrs["step"]), (n.attrs["start"], n.attrs["step"])
    return embed(x.inputs[0], n.shape, [a + b * c for a, b, c in zip(s2, t2, s1)], [b * d for b, d in zip(t2, t1)],
                 n.attrs["fill"])


def _axis_positions(start: int, step: int, size: int) -> range:
    return range(start, start + step * size, step) if size else range(0)


@rewrite("canonicalize", ops=("slice",))
def slice_of_embed(n: Node) -> Optional[Node]:
    """slice(embed(x)) reading exactly the placed entries -> x; reading none of them -> the fill."""
    e = n.inputs[0]
    if e.op != "embed":
        return None
    x = e.inputs[0]
    read = [_axis_positions(s, t, m) for s, t, m in zip(n.attrs["start"], n.attrs["step"], n.shape)]
    placed = [_axis_positions(s, t, m) for s, t, m in zip(e.attrs["start"], e.attrs["step"], x.shape)]
    if all(r == p or (len(r) == len(p) == 1 and r[0] == p[0]) for r, p in zip(read, placed)):
        return x
    if any(not set(r) & set(p) for r, p in zip(read, placed)):
        return fill(n, e.attrs["fill"])
    return None


@rewrite("canonicalize", ops=("slice",))
def slice_of_concatenate(n: Node) -> Optional[Node]:
    """slice(concatenate(..., x_k, ...)) whose range along the axis lies inside part k -> slice(x_k)."""
    c = n.inputs[0]
    if c.op != "concatenate":
        return None
    axis = c.attrs["axis"]
    start, step, size = n.attrs["start"][axis], n.attrs["step"][axis], n.shape[axis]
    last = start + step * (size - 1) if size else start
    off = 0
    for x in c.inputs:
        m = x.shape[axis]
        if off <= start and last < off + m:
            st = list(n.attrs["start"])
            st[axis] = start - off
            return strided_slice(x, st, n.attrs["step"], n.shape)
        off += m
    return None


@rewrite("canonicalize", ops=("flip",))
def flip_flip(n: Node) -> Optional[Node]:
    """flip(flip(x, A), B) -> flip(x, A xor B) (x itself when they cancel)."""
    x = n.inputs[0]
    if x.op != "flip":
        return None
    return flip(x.inputs[0], tuple(set(x.attrs["axes"]) ^ set(n.attrs["axes"])))
