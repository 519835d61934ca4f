"""Jacobian sparsity, computed symbolically, and sparse Jacobians by column compression.

``jacobian_sparsity(y, x)`` propagates a boolean dependency matrix ``D[n]`` (``n.size x x.size``: which
entries of ``x`` each entry of node ``n`` depends on) through the graph in topological order, with one
local pattern ``P`` per op (``D[out] = OR_i P_i @ D[in_i]``):

- elementwise ops: the broadcast index map (an operand whose partial derivative is identically zero,
  such as the condition of ``where``, contributes nothing);
- data movement (reshape, transpose, broadcast, slice, flip, embed, window, concatenate): the NumPy
  implementation applied to the *entry ids* of its input tells where every output entry comes from;
- reductions over axes: each output depends on its reduced slice; ops along one axis whose pattern
  depends on values or on every entry of the axis (softmax, cumsum, take_along, pick, sorting):
  the whole slice along that axis (a superset where the data decides, as for dynamic indices);
- matmul: row of A and column of B; ops lowered by expansion (the convolutions, fold, argmax): through
  their expansion graph; any other op: every entry of its inputs (a safe superset).

The pattern is structural: an entry is False only where the derivative is zero for every input value.

``sparse_jacobian(y, x)`` colours the columns of the pattern (two columns conflict when they share a
row; networkx's greedy colouring, largest-first), pushes one tangent per colour through forward mode
(``c`` tangents instead of ``x.size``: a banded Jacobian needs its bandwidth), and scatters the
compressed product back into a ``scipy.sparse.csr_matrix``.
"""
from __future__ import annotations

from typing import Any, Optional

import numpy as np

from .ir import Node, is_zero, toposort
from .optable import OPS
from .ops_reduce import TENSOR_EXPANSIONS
from .sympy_bridge import partial

__all__ = ["jacobian_sparsity", "sparse_jacobian", "SparseJacobian", "MOVEMENT_OPS", "AXIS_OPS"]

MOVEMENT_OPS = ("reshape", "broadcast_to", "transpose", "slice", "flip", "embed", "window", "concatenate")
AXIS_OPS = {"softmax": "axis", "log_softmax": "axis", "cumsum": "axis", "cumprod": "axis", "take_along": "axis",
            "argsort": "axis"}  # the whole slice along one axis
REDUCE_OPS = ("sum", "max", "prod", "logsumexp")


def _sparse():
    try:
        import scipy.sparse as sps
    except ImportError as e:  # pragma: no cover - scipy is in the test/examples extras
        raise ImportError("jacobian sparsity needs SciPy (pip install scipy)") from e
    return sps


def _matrix(rows: np.ndarray, cols: np.ndarray, shape: tuple):
    sps = _sparse()
    return sps.csr_matrix((np.ones(len(rows), bool), (rows, cols)), shape=shape, dtype=bool)


def _ids(shape: tuple) -> np.ndarray:
    return np.arange(int(np.prod(shape, dtype=np.int64)), dtype=np.float64).reshape(shape)


def _broadcast_map(out_shape: tuple, in_shape: tuple):
    src = np.broadcast_to(_ids(in_shape), out_shape).reshape(-1).astype(np.int64)
    return _matrix(np.arange(src.size), src, (src.size, int(np.prod(in_shape, dtype=np.int64))))


def _movement_maps(n: Node) -> list:
    """One map per input: output entry -> the input entry it copies (an embed's fill copies nothing)."""
    sizes = [i.size for i in n.inputs]
    offs = np.cumsum([0] + sizes)
    ids = [_ids(i.shape) + o for i, o in zip(n.inputs, offs)]
    attrs = dict(n.attrs)
    if n.op == "embed":
        attrs["fill"] = -1.0
    src = np.asarray(OPS[n.op].impl(*ids, **attrs)).reshape(-1)
    maps = []
    for k, i in enumerate(n.inputs):
        rows = np.nonzero((src >= offs[k]) & (src < offs[k + 1]))[0]
        maps.append(_matrix(rows, (src[rows] - offs[k]).astype(np.int64), (n.size, i.size)))
    return maps


def _reduce_map(in_shape: tuple, axes: tuple):
    """(reduced size x in size): entry j of the input -> its reduced position."""
    keep = tuple(1 if a in axes else s for a, s in enumerate(in_shape))
    coords = np.indices(in_shape).reshape(len(in_shape), -1)
    kept = np.where(np.array([a in axes for a in range(len(in_shape))])[:, None], 0, coords)
    dst = np.ravel_multi_index(tuple(kept), keep) if in_shape else np.zeros(1, np.int64)
    size = int(np.prod(in_shape, dtype=np.int64))
    return _matrix(dst, np.arange(size), (int(np.prod(keep, dtype=np.int64)), size))


def _matmul_maps(n: Node) -> list:
    a, b = n.inputs
    out = n.shape
    m, k, nn = a.shape[-2], a.shape[-1], b.shape[-1]
    batch = out[:-2]
    idx = np.indices(out).reshape(len(out), -1)  # (rank, out.size)
    rows_a, cols_a, rows_b, cols_b = [], [], [], []
    flat = np.arange(n.size)
    for kk in range(k):
        ca = [np.zeros_like(flat) if s == 1 else idx[len(batch) - (a.ndim - 2) + d]
              for d, s in enumerate(a.shape[:-2])] + [idx[-2], np.full_like(flat, kk)]
        cb = [np.zeros_like(flat) if s == 1 else idx[len(batch) - (b.ndim - 2) + d]
              for d, s in enumerate(b.shape[:-2])] + [np.full_like(flat, kk), idx[-1]]
        rows_a.append(flat)
        cols_a.append(np.ravel_multi_index(tuple(ca), a.shape))
        rows_b.append(flat)
        cols_b.append(np.ravel_multi_index(tuple(cb), b.shape))
    del m, nn
    return [_matrix(np.concatenate(rows_a), np.concatenate(cols_a), (n.size, a.size)),
            _matrix(np.concatenate(rows_b), np.concatenate(cols_b), (n.size, b.size))]


def _local(n: Node, D: dict, width: int):
    """D[n] from its inputs' patterns."""
    sps = _sparse()
    ins = [i for i in n.inputs if i in D]
    if not ins:
        return None
    opdef = OPS[n.op]
    out = sps.csr_matrix((n.size, width), dtype=bool)
    if opdef.elementwise:
        for k, i in enumerate(n.inputs):
            if i in D and not is_zero(partial(n, k)):
                out = out + _broadcast_map(n.shape, i.shape) @ D[i]
        return out
    if n.op in MOVEMENT_OPS:
        for i, P in zip(n.inputs, _movement_maps(n)):
            if i in D:
                out = out + P @ D[i]
        return out
    if n.op == "cast":
        return D[n.inputs[0]]
    if n.op in REDUCE_OPS:
        x = n.inputs[0]
        return _reduce_map(x.shape, tuple(n.attrs["axes"])) @ D[x]
    if n.op in AXIS_OPS or n.op == "pick":
        x = n.inputs[0]
        axis = x.ndim - 1 if n.op == "pick" else n.attrs[AXIS_OPS[n.op]]
        rows = _reduce_map(x.shape, (axis,)) @ D[x]  # every entry of each slice along the axis
        if n.op == "pick":  # the output is the reduced shape itself
            return rows
        return _reduce_map(n.shape, (axis,)).T @ rows
    if n.op == "matmul":
        for i, P in zip(n.inputs, _matmul_maps(n)):
            if i in D:
                out = out + P @ D[i]
        return out
    if n.op in TENSOR_EXPANSIONS:
        sub = TENSOR_EXPANSIONS[n.op](n, list(n.inputs))
        return _propagate([sub], D, width)[sub]
    if not opdef.differentiable:
        return None
    union = None  # any other op: every entry of its inputs (a safe superset)
    for i in ins:
        r = D[i].max(axis=0) if D[i].shape[0] else sps.csr_matrix((1, width), dtype=bool)
        union = r if union is None else union.maximum(r)
    return sps.csr_matrix(np.ones((n.size, 1), bool)) @ sps.csr_matrix(union)


def _propagate(outputs: list, D: dict, width: int) -> dict:
    for n in toposort(outputs):
        if n in D or n.is_leaf or n.op == "const" or n.dtype not in ("float32", "float64"):
            continue
        d = _local(n, D, width)
        if d is not None:
            D[n] = d.tocsr()
    return D


def jacobian_sparsity(y: Node, x: Node):
    """The structural nonzero pattern of ``d y / d x``: a boolean ``scipy.sparse.csr_matrix`` of shape
    ``(y.size, x.size)`` (flattened in row-major order)."""
    sps = _sparse()
    if not isinstance(x, Node) or not x.is_leaf:
        raise ValueError("jacobian_sparsity: x must be an sd.input/sd.param leaf")
    D = {x: sps.identity(x.size, dtype=bool, format="csr")}
    D = _propagate([y], D, x.size)
    pat = D.get(y)
    return sps.csr_matrix((y.size, x.size), dtype=bool) if pat is None else pat


def column_colors(pattern) -> np.ndarray:
    """A colour per column such that no two columns of one colour share a row (greedy, largest first)."""
    import networkx as nx
    sps = _sparse()
    p = sps.csc_matrix(pattern, dtype=bool)
    conflict = (p.T.astype(np.int32) @ p.astype(np.int32)).tocoo()
    g = nx.Graph()
    g.add_nodes_from(range(p.shape[1]))
    g.add_edges_from((int(a), int(b)) for a, b in zip(conflict.row, conflict.col) if a < b)
    colors = nx.greedy_color(g, strategy="largest_first")
    return np.array([colors[j] for j in range(p.shape[1])], dtype=np.int64)


class SparseJacobian:
    """``d y / d x`` by column compression: ``pattern`` (bool csr), ``colors`` (per column), ``compressed``
    (the graph node ``J @ seed``, shape ``(y.size, n_colors)``); :meth:`compile` returns a function of the
    graph's inputs that returns the Jacobian as a ``scipy.sparse.csr_matrix``."""

    def __init__(self, y: Node, x: Node) -> None:
        from .ops_tensor import reshape
        from .transforms import jacobian_columns
        self.y, self.x = y, x
        self.pattern = jacobian_sparsity(y, x)
        self.colors = column_colors(self.pattern)
        self.n_colors = int(self.colors.max()) + 1 if self.colors.size else 0
        seed = np.zeros((x.size, max(self.n_colors, 1)), dtype=x.dtype)
        seed[np.arange(x.size), self.colors] = 1.0
        self.seed = seed
        cols = jacobian_columns(y, x, seed.T.reshape((seed.shape[1],) + x.shape))  # (c, *y.shape)
        self.compressed = reshape(cols, (seed.shape[1], y.size))
        coo = self.pattern.tocoo()
        self._rows, self._cols = coo.row, coo.col

    def expand(self, compressed: np.ndarray):
        """The csr Jacobian from the compressed product's value ``(n_colors, y.size)``."""
        sps = _sparse()
        vals = np.asarray(compressed)[self.colors[self._cols], self._rows]
        return sps.csr_matrix((vals, (self._rows, self._cols)), shape=(self.y.size, self.x.size))

    def compile(self, backend: Optional[str] = None, **options: Any):
        from .compiled import compile as _compile
        f = _compile(self.compressed, backend, **options)

        def jac(**values):
            return self.expand(f(**values))
        jac.compiled = f
        return jac


def sparse_jacobian(y: Node, x: Node) -> SparseJacobian:
    """A :class:`SparseJacobian` of ``y`` with respect to leaf ``x`` (see the module docstring)."""
    return SparseJacobian(y, x)
