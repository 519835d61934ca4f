"""Products of the DSL with NumPy semantics: dot, vdot, inner, outer, tensordot, einsum, kron, matrix_transpose.

``einsum`` parses NumPy's subscripts (explicit ``->`` or implicit output, ``...`` broadcasting, any number of
operands; an index repeated within one operand, NumPy's diagonal, is rejected) and contracts the operands
pairwise from left to right: indices no later operand or the output needs are summed first; each pair
becomes one (batched) matmul over transposed/reshaped operands -- shared indices still needed are batch
dimensions, the others are contracted -- or an elementwise multiply (+ sum) when one side has no free
index. Everything is ordinary graph nodes: differentiable, and a GEMM in the generated code, never a Python
loop at run time. ``dot``, ``inner`` and ``tensordot`` are einsums with generated subscripts.
"""
from __future__ import annotations

import numbers
import string
from typing import Sequence


from . import api as _api
from . import dims as _dims
from .api import TensorLike, as_tensor
from .ir import Node
from .optable import dsl_function
from .ops_tensor import broadcast_to as _broadcast_to
from .ops_tensor import reduce_sum as _reduce_sum
from .ops_tensor import reshape as _reshape
from .ops_tensor import swap_last
from .ops_tensor import transpose as _transpose

__all__ = ["dot", "vdot", "inner", "outer", "tensordot", "einsum", "kron", "matrix_transpose"]

LETTERS = string.ascii_letters
_ELL = [chr(0x100 + k) for k in range(64)]  # internal labels of the dimensions an ellipsis stands for


def _size(shape: Sequence[int]) -> _dims.DimLike:
    return _dims.prod(shape)


# -- subscripts ---------------------------------------------------------------------------------------------

class _Spec:
    """Parsed subscripts: per operand its labels (ellipsis dims as internal labels), the output labels,
    and every label's size (broadcast over operands)."""

    def __init__(self, subscripts: str, shapes: list) -> None:
        self.text, self.shapes = subscripts, shapes
        s = subscripts.replace(" ", "")
        if not s:
            self.fail("empty subscripts")
        if s.count("->") > 1:
            self.fail("more than one '->'")
        lhs, arrow, rhs = s.partition("->")
        terms = lhs.split(",")
        if len(terms) != len(shapes):
            self.fail(f"{len(terms)} input term(s) for {len(shapes)} operand(s)")
        ell_rank = 0
        parsed = []
        for k, (t, shape) in enumerate(zip(terms, shapes)):
            letters, has_ell = self.term(t, f"operand {k}")
            if has_ell:
                n = len(shape) - (len(letters) - 1)
                if n < 0:
                    self.fail(f"operand {k} has {len(shape)} dimension(s), fewer than the {len(letters) - 1} "
                              f"indices of term {t!r}")
                ell_rank = max(ell_rank, n)
            elif len(letters) != len(shape):
                self.fail(f"term {t!r} has {len(letters)} index(es) but operand {k} has {len(shape)} dimension(s)")
            parsed.append((letters, has_ell))
        ell = _ELL[:ell_rank]
        self.inputs = []
        for (letters, has_ell), shape in zip(parsed, shapes):
            if has_ell:
                n = len(shape) - (len(letters) - 1)
                i = letters.index("...")
                labels = letters[:i] + ell[ell_rank - n:] + letters[i + 1:]
            else:
                labels = letters
            if len(set(labels)) != len(labels):
                rep = next(c for c in labels if labels.count(c) > 1)
                self.fail(f"index {rep!r} is repeated within one operand (diagonals are not supported; "
                          f"use sd.diagonal)")
            self.inputs.append(labels)
        self.sizes: dict = {}
        for labels, shape in zip(self.inputs, shapes):
            for c, n in zip(labels, shape):
                old = self.sizes.get(c, 1)
                if n != old and 1 not in (n, old):
                    what = "the ellipsis dimensions" if c in _ELL else f"index {c!r}"
                    self.fail(f"{what} have sizes {old} and {n}")
                self.sizes[c] = old if n == 1 else n  # the size that is not a broadcast 1 (symbolic sizes too)
        used = [c for labels in self.inputs for c in labels]
        if arrow:
            out, has_ell = self.term(rhs, "the output")
            if has_ell:
                i = out.index("...")
                out = out[:i] + ell + out[i + 1:]
            elif ell:
                self.fail("the output has no '...' but the inputs' ellipsis stands for dimensions (NumPy does "
                          "not sum them implicitly)")
            for c in out:
                if c not in used:
                    self.fail(f"output index {c!r} does not appear in the inputs")
            if len(set(out)) != len(out):
                self.fail("an output index is repeated")
        else:
            out = ell + sorted(c for c in set(used) if c not in ell and used.count(c) == 1)
        self.output = list(out)

    def term(self, t: str, what: str) -> tuple:
        if t.count("...") > 1 or "." in t.replace("...", ""):
            self.fail(f"{what} has a misplaced '.' (an ellipsis is exactly '...', at most once per term)")
        parts = t.split("...")
        for ch in "".join(parts):
            if ch not in LETTERS:
                self.fail(f"invalid character {ch!r} in {what} (indices are ASCII letters)")
        letters = list(parts[0]) + (["..."] + list(parts[1]) if len(parts) == 2 else [])
        return letters, len(parts) == 2

    def fail(self, why: str):
        shapes = ", ".join(str(tuple(s)) for s in self.shapes)
        raise ValueError(f"einsum: invalid subscripts {self.text!r} for operand shapes {shapes}: {why}")


# -- contraction -----------------------------------------------------------------------------------------------

def _permute(x: Node, labels: list, order: list) -> Node:
    return _transpose(x, tuple(labels.index(c) for c in order))


def _sum_out(x: Node, labels: list, keep: set) -> tuple:
    drop = tuple(i for i, c in enumerate(labels) if c not in keep)
    return _reduce_sum(x, drop), [c for c in labels if c in keep]


def _expand(x: Node, labels: list, sizes: dict, which: set) -> Node:
    """Broadcast the size-1 dims of ``x`` whose labels are in ``which`` to their full size."""
    shape = tuple(sizes[c] if c in which else n for c, n in zip(labels, x.shape))
    return _broadcast_to(x, shape)


def _pair(a: Node, la: list, b: Node, lb: list, needed: set, sizes: dict) -> tuple:
    """Contract two operands: labels in both that ``needed`` lists are batch dims, the other shared ones are
    summed, the rest are free. Returns (node, labels)."""
    batch = [c for c in la if c in lb and c in needed]
    con = [c for c in la if c in lb and c not in needed]
    fa = [c for c in la if c not in lb]
    fb = [c for c in lb if c not in la]
    if con:  # a contracted label of size 1 in one operand only: broadcast that operand first
        a, b = _expand(a, la, sizes, set(con)), _expand(b, lb, sizes, set(con))
    dims = lambda x, lab, cs: tuple(x.shape[lab.index(c)] for c in cs)  # noqa: E731
    if not fa or not fb or not con:
        # elementwise: align both to batch + fa + fb (+ con) and multiply (then sum the contracted labels)
        out_l = batch + fa + fb + con
        sa = _reshape(_permute(a, la, batch + fa + con), dims(a, la, batch) + dims(a, la, fa)
                      + (1,) * len(fb) + dims(a, la, con))
        sb = _reshape(_permute(b, lb, batch + fb + con), dims(b, lb, batch) + (1,) * len(fa)
                      + dims(b, lb, fb) + dims(b, lb, con))
        prod = _api.multiply(sa, sb)
        return _sum_out(prod, out_l, set(batch + fa + fb))
    ka, kb = _size(dims(a, la, con)), _size(dims(b, lb, con))
    ma, nb = _size(dims(a, la, fa)), _size(dims(b, lb, fb))
    a2 = _reshape(_permute(a, la, batch + fa + con), dims(a, la, batch) + (ma, ka))
    b2 = _reshape(_permute(b, lb, batch + con + fb), dims(b, lb, batch) + (kb, nb))
    prod = _api.matmul(a2, b2)
    bshape = prod.shape[:len(batch)]
    out = _reshape(prod, bshape + dims(a, la, fa) + dims(b, lb, fb))
    return out, batch + fa + fb


@dsl_function(numpy_name='einsum', differentiable=True,
              ops=('matmul', 'transpose', 'reshape', 'mul', 'sum', 'broadcast_to'))
def einsum(subscripts: str, *operands: TensorLike, optimize=None) -> Node:
    """Einstein summation as ``np.einsum``, lowered to transposes, reshapes, batched matmuls and sums.

    See the module docstring for what is supported; ``optimize`` is accepted for compatibility: the order is
    always left to right."""
    if not isinstance(subscripts, str):
        raise TypeError("einsum: the first argument must be the subscripts string (the interleaved "
                        "operand/sublist form is not supported)")
    if not operands:
        raise ValueError(f"einsum: subscripts {subscripts!r} given without operands")
    ops = [as_tensor(o) for o in operands]
    like = next((o for o in operands if isinstance(o, Node)), None)
    ops = [as_tensor(o, like) for o in operands] if like is not None else ops
    spec = _Spec(subscripts, [o.shape for o in ops])
    out_set = set(spec.output)
    items = list(zip(ops, [list(lab) for lab in spec.inputs]))

    def needed_after(k: int) -> set:
        return out_set | {c for _, lab in items[k:] for c in lab}

    x, lx = _sum_out(*items[0], needed_after(1))
    for k in range(1, len(items)):
        y, ly = items[k]
        later = needed_after(k + 1)
        y, ly = _sum_out(y, ly, later | set(lx))
        x, lx = _sum_out(x, lx, later | set(ly))
        x, lx = _pair(x, lx, y, ly, later, spec.sizes)
    x, lx = _sum_out(x, lx, out_set)
    x = _permute(x, lx, spec.output)
    return _broadcast_to(x, tuple(spec.sizes[c] for c in spec.output))


# -- the NumPy products, as einsums ------------------------------------------------------------------------------

def _labels(n: int, start: int = 0) -> str:
    if start + n > len(LETTERS):
        raise ValueError(f"too many dimensions ({start + n}) for a product")
    return LETTERS[start:start + n]


@dsl_function(numpy_name='tensordot', differentiable=True, ops=('matmul', 'transpose', 'reshape', 'mul', 'sum'))
def tensordot(a: TensorLike, b: TensorLike, axes=2) -> Node:
    """Sum of products over ``axes`` of ``a`` and ``b``, as ``np.tensordot``.

    ``axes``: an int N (the last N of a with the first N of b) or a pair of axis sequences."""
    a, b = as_tensor(a), as_tensor(b)
    if isinstance(axes, numbers.Integral):
        n = int(axes)
        if n < 0 or n > min(a.ndim, b.ndim):
            raise ValueError(f"tensordot: axes={n} is out of range for shapes {a.shape} and {b.shape}")
        ax_a, ax_b = list(range(a.ndim - n, a.ndim)), list(range(n))
    else:
        try:
            ax_a, ax_b = axes
        except (TypeError, ValueError):
            raise ValueError(f"tensordot: axes must be an int or a pair of axis sequences, got {axes!r}") from None
        ax_a = [ax_a] if isinstance(ax_a, numbers.Integral) else list(ax_a)
        ax_b = [ax_b] if isinstance(ax_b, numbers.Integral) else list(ax_b)
        if len(ax_a) != len(ax_b):
            raise ValueError(f"tensordot: axes {axes!r} pair {len(ax_a)} with {len(ax_b)} axes")
        for ax, x in ((ax_a, a), (ax_b, b)):
            for v in ax:
                if not -x.ndim <= v < x.ndim:
                    raise ValueError(f"tensordot: axis {v} is out of bounds for shape {x.shape}")
        ax_a, ax_b = [v % a.ndim for v in ax_a], [v % b.ndim for v in ax_b]
    for i, j in zip(ax_a, ax_b):
        if a.shape[i] != b.shape[j]:
            raise ValueError(f"tensordot: shape mismatch for sum: axis {i} of {a.shape} and axis {j} of {b.shape}")
    la = list(_labels(a.ndim))
    lb = list(_labels(b.ndim, a.ndim))
    for i, j in zip(ax_a, ax_b):
        lb[j] = la[i]
    out = [c for i, c in enumerate(la) if i not in ax_a] + [c for j, c in enumerate(lb) if j not in ax_b]
    return einsum(f"{''.join(la)},{''.join(lb)}->{''.join(out)}", a, b)


@dsl_function(numpy_name='dot', differentiable=True, ops=('matmul', 'transpose', 'reshape', 'mul', 'sum'))
def dot(a: TensorLike, b: TensorLike) -> Node:
    """``np.dot``: scalar, inner, matrix or tensor product by the operands' ranks.

    Scalars multiply; 1-D . 1-D is the inner product; 2-D . 2-D the matrix product; N-D . 1-D sums over the
    last axis of a; N-D . M-D over the last axis of a and the second-to-last of b."""
    a, b = as_tensor(a), as_tensor(b)
    if a.ndim == 0 or b.ndim == 0:
        return _api.multiply(a, b)
    if a.ndim <= 2 and b.ndim <= 2:
        return _api.matmul(a, b)
    return tensordot(a, b, ([-1], [-1 if b.ndim == 1 else -2]))


@dsl_function(numpy_name='vdot', differentiable=True, ops=('mul', 'sum', 'reshape'))
def vdot(a: TensorLike, b: TensorLike) -> Node:
    """``np.vdot``: the inner product of the flattened operands (same size)."""
    a, b = as_tensor(a), as_tensor(b)
    if a.size != b.size:
        raise ValueError(f"vdot: operands of shapes {a.shape} and {b.shape} have different sizes")
    return _api.sum(_api.multiply(_reshape(a, (a.size,)), _reshape(b, (b.size,))))


@dsl_function(numpy_name='inner', differentiable=True, ops=('matmul', 'transpose', 'reshape', 'mul', 'sum'))
def inner(a: TensorLike, b: TensorLike) -> Node:
    """``np.inner``: sum over the last axes of a and b (scalars multiply)."""
    a, b = as_tensor(a), as_tensor(b)
    if a.ndim == 0 or b.ndim == 0:
        return _api.multiply(a, b)
    if a.shape[-1] != b.shape[-1]:
        raise ValueError(f"inner: last dimensions of shapes {a.shape} and {b.shape} differ")
    return tensordot(a, b, ([-1], [-1]))


@dsl_function(numpy_name='outer', differentiable=True, ops=('mul', 'reshape'))
def outer(a: TensorLike, b: TensorLike) -> Node:
    """``np.outer``: out[i, j] = a.ravel()[i] * b.ravel()[j]."""
    a, b = as_tensor(a), as_tensor(b)
    return _api.multiply(_reshape(a, (a.size, 1)), _reshape(b, (1, b.size)))


@dsl_function(numpy_name='kron', differentiable=True, ops=('mul', 'reshape'))
def kron(a: TensorLike, b: TensorLike) -> Node:
    """``np.kron``: the Kronecker product (the operand of lower rank gets leading size-1 axes)."""
    a, b = as_tensor(a), as_tensor(b)
    nd = max(a.ndim, b.ndim)
    sa = (1,) * (nd - a.ndim) + a.shape
    sb = (1,) * (nd - b.ndim) + b.shape
    # out[(i0, j0), (i1, j1), ...] = a[i0, i1, ...] * b[j0, j1, ...]: interleave the axes, then merge pairs
    ia = tuple(x for s in sa for x in (s, 1))
    ib = tuple(x for s in sb for x in (1, s))
    prod = _api.multiply(_reshape(a, ia), _reshape(b, ib))
    return _reshape(prod, tuple(x * y for x, y in zip(sa, sb)))


@dsl_function(numpy_name='matrix_transpose', differentiable=True, ops=('transpose',))
def matrix_transpose(x: TensorLike) -> Node:
    """``np.matrix_transpose``: swap the last two axes (of a tensor of rank >= 2)."""
    x = as_tensor(x)
    if x.ndim < 2:
        raise ValueError(f"matrix_transpose: expected a tensor of rank >= 2, got shape {x.shape}")
    return swap_last(x)
