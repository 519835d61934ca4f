"""Matmul operands read through offset tables (implicit GEMM).

A convolution's im2col matrix is ``reshape(transpose(window(padded x)))``: an index view of one stored array
regrouped into (kernel offset x channel, image x output position). Every element of such a view is one
element of the stored array, at an offset affine in the view's indices; split at the regrouping's cut, the
offset is ``rk[row] + cj[col]`` -- two tables instead of a materialised K x N copy. The lowering gives such a
matmul operand to the GEMM as (stored node, rk, cj); the LLVM GEMM gathers while packing (llvm/gemm/gather.py),
the CUDA product reads its tile through the tables.

The offsets are found by evaluating the view once over symbolic indices with the affine probe
(codegen/coalesce.py): exactly one load, affine in every index, or no tables.

A stride-1 convolution's input gradient is itself a convolution (of the output gradient with the flipped
weight): :func:`conv_transpose_expansion` expands it so, where that product gathers too.
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from symdiff.codegen.coalesce import Affine, AffineProbe
from symdiff.codegen.pointeval import VIEW_OPS, PointEval
from symdiff.dims import SymbolicDimError
from symdiff.ir import Node
from symdiff.ops_conv import transpose_as_conv

ENABLED = True  # tests and A/B measurements switch it off
# When gathering pays (Zen 4, 2 threads; the copy's kernel + the product vs the gathered product): a packed
# element serves 2 M flops, so few rows leave the packing's gathers exposed -- LeNet's products (M = 6 and 16,
# output rows of 28 and 10) went 147 -> 200, 237 -> 336, 145 -> 425 and 107 -> 501 us; W7's (M = 64, rows
# of 56) 11.3 + 2.0 -> 10.2 ms. Gathered only from MIN_ROWS rows, with mostly contiguous runs.
MIN_ROWS = 32
MIN_RUN_SHARE = 0.75


def increasing(t) -> bool:
    """Whether the offsets ``t`` strictly increase (a packer may then read a run ``t[i] .. t[i] + n - 1`` as
    contiguous when ``t[i + n - 1] - t[i] == n - 1``)."""
    return bool(np.all(np.diff(np.asarray(t)) > 0))


def unit_run_share(t) -> float:
    """The share of consecutive offsets one apart (contiguous memory); 1 for fewer than two."""
    d = np.diff(np.asarray(t))
    return float(np.mean(d == 1)) if d.size else 1.0


def view_tables(x: Node, stored) -> Optional[tuple[Node, tuple, tuple]]:
    """``(P, rk, cj)`` with ``x[r, c] == P.flat[rk[r] + cj[c]]`` for a 2-D regrouping reshape ``x`` of an index
    view (``VIEW_OPS``) of a node ``P`` in ``stored``; None when ``x`` is not one, or its tables do not suit
    the GEMMs (offsets outside [0, 2**31), neither table strictly increasing)."""
    if not ENABLED or x.op != "reshape" or x.ndim != 2 or min(x.shape) < 2:
        return None
    src = x.inputs[0]
    if not all(isinstance(s, int) for s in src.shape + x.shape):
        return None
    p = src
    while p not in stored:
        if p.op not in VIEW_OPS or p.is_leaf:
            return None
        p = p.inputs[0]
    if p is src:
        return None
    # the cut: src's leading axes make x's rows, the rest its columns
    cut, rows = 0, 1
    while cut < src.ndim and rows < x.shape[0]:
        rows *= src.shape[cut]
        cut += 1
    while cut < src.ndim and src.shape[cut] == 1:
        cut += 1
    if rows != x.shape[0]:
        return None
    probe = AffineProbe()
    try:
        PointEval(probe, {p: p})(src, [Affine({a: 1}) for a in range(src.ndim)])
    except (NotImplementedError, SymbolicDimError):
        return None
    if len(probe.offsets) != 1 or probe.pinned or probe.offsets[0].tags:
        return None
    off = probe.offsets[0]

    def table(axes: range) -> np.ndarray:
        t = np.zeros([src.shape[a] for a in axes] or [1], dtype=np.int64)
        for j, a in enumerate(axes):
            shape = [1] * len(axes)
            shape[j] = src.shape[a]
            t = t + off.coeffs.get(a, 0) * np.arange(src.shape[a]).reshape(shape)
        return t.reshape(-1)
    rk = table(range(cut)) + off.const
    cj = table(range(cut, src.ndim))
    lo, hi = rk.min() + cj.min(), rk.max() + cj.max()
    if lo < 0 or hi >= min(p.size, 2 ** 31) or not (increasing(rk) or increasing(cj)):
        return None
    return p, tuple(rk.tolist()), tuple(cj.tolist())


def conv_transpose_expansion(n: Node, ins: list) -> Optional[Node]:
    """The input gradient of a stride-1 convolution as a convolution (``transpose_as_conv``) when that
    convolution's product would gather: one group, at least MIN_ROWS input channels (its M), and no more
    output points than the forward convolution has (its FLOPs: 'same' padding, not 'valid'). Instead of a
    (C K) x (N L) product and a fold (col2im) of its 58 MB result on W7: one gathered product. None: the
    usual expansion."""
    g, w = ins
    if not ENABLED or n.attrs["groups"] != 1 or n.shape[1] < MIN_ROWS:
        return None
    if not all(isinstance(v, int) for v in n.shape + g.shape):
        return None
    if int(np.prod(n.shape[2:])) > int(np.prod(g.shape[2:])) * 1.1:
        return None
    return transpose_as_conv(n, ins)


def matmul_b_tables(mm: Node, stored, is_t) -> Optional[tuple[Node, tuple, tuple]]:
    """Offset tables of a 2-D product's op(B) (``is_t(n)``: n is a matrix transpose read in place), as
    ``(P, rk, cj)`` with ``op(B)[k, j] = P.flat[rk[k] + cj[j]]``; None when op(B) is not such a view."""
    if mm.ndim != 2 or not isinstance(mm.shape[0], int) or mm.shape[0] < MIN_ROWS:
        return None
    b = mm.inputs[1]
    t = is_t(b)
    got = view_tables(b.inputs[0] if t else b, stored)
    if got is None:
        return None
    p, r, c = got
    if max(unit_run_share(t) for t in (r, c) if increasing(t)) < MIN_RUN_SHARE:
        return None
    return (p, c, r) if t else (p, r, c)
