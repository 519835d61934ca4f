"""Derivative transforms beyond ``sd.grad``: ``vjp``, ``jvp`` (forward mode), ``hvp``, ``jacobian`` and
``hessian``. Each returns ordinary graph nodes: they compose, simplify, compile on every backend and
differentiate again.

- ``vjp(outputs, wrt, cotangents)``: reverse mode seeded with a cotangent per output (any shapes);
  ``sd.grad(y, x)`` is ``vjp(y, x, 1)``.
- ``jvp(outputs, wrt, tangents)``: forward mode as a graph-to-graph walk in topological order. The
  tangent of a node is built from its inputs' tangents by the op's rule:

  * elementwise ops: ``sum_i (d op / d x_i) * t_i`` with the partials from ``sympy.diff`` (the same
    ``sympy_bridge.partial`` reverse mode uses);
  * linear ops (reshape, transpose, sum, slices, gathers, windows, ...): the op applied to the tangent;
  * bilinear ops (matmul, the convolutions): ``op(dA, B) + op(A, dB)``;
  * any other op: the transpose of its VJP rule (the VJP is linear in the cotangent ``u``, so the
    reverse pass of ``<vjp(u), t>`` with respect to ``u`` is ``J t``): every op with a VJP has a JVP.

- ``hvp(y, x, v)``: forward-over-reverse, ``jvp(grad(y, x), x, v)``: about 4x the cost of ``y``.
- ``jacobian(y, x, mode)``: a batch of basis tangents (``fwd``: ``n = x.size`` of them through ``jvp``)
  or cotangents (``rev``: ``m = y.size`` through ``vjp``) pushed through the linear derivative graph along
  an extra leading axis by :func:`symdiff.batching.batch` -- one graph, not n copies.
  ``mode="auto"`` picks forward when ``x`` is smaller than ``y``. Result shape ``y.shape + x.shape``.
- ``hessian(y, x)``: ``jacobian(grad(y, x), x, "fwd")`` (forward-over-reverse), ``x.shape * 2``.
"""
from __future__ import annotations

from typing import Optional, Sequence, Union

import numpy as np

from .autodiff import check_wrt, depends_on, reverse
from .autodiff import grad as _grad
from .ir import Node, apply, const, toposort
from .ops_tensor import broadcast_to, cast, reshape, transpose, zeros
from .optable import OPS
from .sympy_bridge import partial

__all__ = ["vjp", "jvp", "hvp", "jacobian", "hessian", "jacobian_columns", "LINEAR_OPS", "BILINEAR_OPS", "JVP_RULES"]

FLOATS = ("float32", "float64")
# ops linear in their first operand (the others are indices or not differentiated): tangent = op(t, rest)
LINEAR_OPS = frozenset({"reshape", "broadcast_to", "transpose", "sum", "cast", "slice", "flip", "window", "fold",
                        "cumsum", "take_along", "scatter_add", "pick"})
BILINEAR_OPS = frozenset({"matmul", "conv", "conv_transpose", "conv_weight"})  # op(dA, B) + op(A, dB)

Structure = Union[Node, Sequence[Node]]


def _listify(v) -> tuple[list, bool]:
    """(items, whether ``v`` was one item rather than a list/tuple)."""
    single = isinstance(v, Node) or not isinstance(v, (list, tuple))
    items = [v] if single else list(v)
    return items, single


def _as_node(v, like: Node, fn: str, what: str) -> Node:
    n = v if isinstance(v, Node) else const(np.asarray(v, dtype=like.dtype), like.dtype)
    if n.shape != like.shape:
        n = broadcast_to(n, like.shape) if n.ndim == 0 else n
    if n.shape != like.shape:
        raise ValueError(f"{fn}: {what} of shape {n.shape} does not match {like.name or like.op!r} of shape "
                         f"{like.shape}")
    return cast(n, like.dtype)


def _add(a: Optional[Node], b: Optional[Node]) -> Optional[Node]:
    return b if a is None else a if b is None else apply("add", [a, b])


# -- vjp ----------------------------------------------------------------------------------------------------

def vjp(outputs: Structure, wrt: Structure, cotangents, simplify: bool = True):
    """Cotangents of ``wrt`` (leaves) for ``cotangents`` of ``outputs``: ``sum_k u_k^T (d y_k / d x)``.

    ``outputs`` a tensor or a list; ``cotangents`` the same structure (tensors, arrays or scalars
    broadcast to each output's shape). Returns one tensor per ``wrt`` entry (a single one for a single
    leaf), shaped like it."""
    outs, _ = _listify(outputs)
    xs, single = _listify(wrt)
    cts, _ = _listify(cotangents)
    if len(cts) != len(outs):
        raise ValueError(f"vjp: {len(cts)} cotangents for {len(outs)} outputs")
    check_wrt("vjp", xs)
    for o in outs:
        if not isinstance(o, Node) or o.dtype not in FLOATS:
            raise TypeError(f"vjp: outputs must be float tensors, got {getattr(o, 'dtype', type(o).__name__)}")
    cts = [_as_node(c, o, "vjp", "cotangent") for c, o in zip(cts, outs)]
    if simplify:
        from .simplify import simplify as _simplify
        outs = _simplify(outs)
    total = reverse(list(zip(outs, cts)), xs)
    res = [cast(broadcast_to(total[x], x.shape), x.dtype) if x in total else zeros(x.shape, x.dtype) for x in xs]
    if simplify:
        res = _simplify(res)
    return res[0] if single else res


# -- jvp ----------------------------------------------------------------------------------------------------

def _elementwise_jvp(node: Node, tans: list) -> Optional[Node]:
    out = None
    for i, t in enumerate(tans):
        if t is None:
            continue
        term = apply("mul", [partial(node, i), t])
        out = _add(out, term)
    if out is None:
        return None
    return broadcast_to(out, node.shape) if out.shape != node.shape else out


def _transposed_vjp(node: Node, tans: list) -> Optional[Node]:
    """J t from the VJP rule: <vjp(u), t> is linear in u; its gradient with respect to u is J t."""
    u = Node("input", (), {"name": f"__jvp_u_{node.digest[:16]}"}, node.shape, node.dtype)
    needed = [t is not None for t in tans]
    opdef = OPS[node.op]
    if not opdef.differentiable or opdef.vjp is None:
        return None
    parts = opdef.vjp(node, u)
    s = None
    for gi, t in zip(parts, tans):
        if gi is None or t is None:
            continue
        term = apply("sum", [apply("mul", [cast(gi, t.dtype), t])], axes=tuple(range(t.ndim)), keepdims=False) \
            if t.ndim else apply("mul", [cast(gi, t.dtype), t])
        s = _add(s, cast(term, node.dtype))
    if s is None or not any(needed):
        return None
    total = reverse([(s, const(1.0, s.dtype))], [u])
    jt = total.get(u)
    if jt is None:
        return None
    if u in set(toposort([jt])):
        raise NotImplementedError(f"jvp: the VJP rule of {node.op!r} is not linear in its cotangent; add a JVP rule")
    return broadcast_to(jt, node.shape)


def _linear_jvp(node: Node, tans: list) -> Optional[Node]:
    if tans[0] is None:
        return None
    return apply(node.op, [tans[0], *node.inputs[1:]], **node.attrs)


def _bilinear_jvp(node: Node, tans: list) -> Optional[Node]:
    a, b = node.inputs
    out = None
    if tans[0] is not None:
        out = apply(node.op, [cast(tans[0], a.dtype), b], **node.attrs)
    if tans[1] is not None:
        out = _add(out, apply(node.op, [a, cast(tans[1], b.dtype)], **node.attrs))
    return out


def _embed_jvp(node: Node, tans: list) -> Optional[Node]:
    return None if tans[0] is None else apply("embed", [tans[0]], **{**node.attrs, "fill": 0.0})


def _concat_jvp(node: Node, tans: list) -> Optional[Node]:
    if all(t is None for t in tans):
        return None
    parts = [t if t is not None else zeros(x.shape, node.dtype) for t, x in zip(tans, node.inputs)]
    return apply("concatenate", parts, **node.attrs)


JVP_RULES = {**{op: _linear_jvp for op in LINEAR_OPS}, **{op: _bilinear_jvp for op in BILINEAR_OPS},
             "embed": _embed_jvp, "concatenate": _concat_jvp}


def _tangent(node: Node, tans: list) -> Optional[Node]:
    opdef = OPS.get(node.op)
    if opdef is not None and opdef.elementwise:
        return _elementwise_jvp(node, tans)
    rule = JVP_RULES.get(node.op)
    if rule is not None and node.op in OPS:
        return rule(node, tans)
    return _transposed_vjp(node, tans)


def forward(outputs: Sequence[Node], seeds: dict) -> dict:
    """Forward mode: ``{node: tangent}`` for every float node of ``outputs``' graph that depends on a leaf
    of ``seeds`` (``{leaf: its tangent}``)."""
    order = toposort(outputs)
    depends = depends_on(order, set(seeds))
    tan: dict[Node, Node] = {}
    for n in order:
        if n in seeds:
            tan[n] = seeds[n]
            continue
        if n not in depends or n.is_leaf:
            continue
        t = _tangent(n, [tan.get(i) if i.dtype in FLOATS else None for i in n.inputs])
        if t is not None:
            tan[n] = cast(t, n.dtype)
    return tan


def jvp(outputs: Structure, wrt: Structure, tangents, simplify: bool = True):
    """Tangents of ``outputs`` for ``tangents`` of the leaves ``wrt``: ``sum_i (d y / d x_i) t_i`` (the
    directional derivative). Same structure as ``outputs``."""
    outs, single = _listify(outputs)
    xs, _ = _listify(wrt)
    ts, _ = _listify(tangents)
    if len(ts) != len(xs):
        raise ValueError(f"jvp: {len(ts)} tangents for {len(xs)} wrt leaves")
    check_wrt("jvp", xs)
    ts = [_as_node(t, x, "jvp", "tangent") for t, x in zip(ts, xs)]
    if simplify:
        from .simplify import simplify as _simplify
        outs = _simplify(outs)
    tan = forward(outs, dict(zip(xs, ts)))
    res = [tan.get(o, zeros(o.shape, o.dtype)) if o.dtype in FLOATS else zeros(o.shape, "float64") for o in outs]
    res = [broadcast_to(r, o.shape) for r, o in zip(res, outs)]
    if simplify:
        res = _simplify(res)
    return res[0] if single else res


# -- second order and Jacobians -------------------------------------------------------------------------------

def hvp(y: Node, wrt: Structure, v, simplify: bool = True):
    """The Hessian of scalar ``y`` times ``v`` (forward-over-reverse: ``jvp(grad(y, x), x, v)``)."""
    g = _grad(y, wrt, simplify=simplify)
    return jvp(g, wrt, v, simplify=simplify)


def _placeholder(tag: str, like: Node, shape: tuple) -> Node:
    return Node("input", (), {"name": f"__{tag}_{like.digest[:16]}"}, tuple(shape), like.dtype)


def _basis(n: int, shape: tuple, dtype: str) -> Node:
    """The ``n`` unit vectors of ``shape`` as ``(n, *shape)``: ``eq(i, j)`` of two index vectors, computed
    where it is read (not an ``n x n`` constant: a large constant costs compile time and memory)."""
    if n <= 64:
        return const(np.eye(max(n, 1), dtype=dtype)[:n].reshape((n,) + tuple(shape)), dtype)
    ids = const(np.arange(n, dtype=dtype), dtype)
    eye = apply("eq", [reshape(ids, (n, 1)), reshape(ids, (1, n))])
    return reshape(eye, (n,) + tuple(shape))


def _batched(lin: Node, placeholder: Node, basis: Node, n: int) -> Node:
    """``lin`` (linear in ``placeholder``) for each of the ``n`` rows of ``basis``, stacked on a new axis 0."""
    try:
        from .batching import batch
    except ImportError:  # no batching transform: n substituted copies (same values, n times the graph)
        from .ir import rebuild
        rows = []
        for k in range(n):
            row = reshape(apply("slice", [basis], start=(k,) + (0,) * placeholder.ndim,
                                step=(1,) * basis.ndim, shape=(1,) + placeholder.shape), placeholder.shape)
            rows.append(reshape(rebuild([lin], lambda nd, ins, r=row: r if nd is placeholder else None)[0],
                                (1,) + lin.shape))
        return rows[0] if n == 1 else apply("concatenate", rows, axis=0)
    return batch([lin], {placeholder: basis}, n)[0]


def jacobian_columns(y: Node, x: Node, tangents, simplify: bool = True) -> Node:
    """``J t_k`` for a batch of tangents ``(c, *x.shape)`` (a node or an array): ``(c, *y.shape)``, one
    batched forward-mode graph."""
    tangents = tangents if isinstance(tangents, Node) else const(np.asarray(tangents, x.dtype), x.dtype)
    t = _placeholder("jac_t", x, x.shape)
    ty = jvp(y, x, t, simplify=simplify)
    return _batched(ty, t, tangents, tangents.shape[0])


def _jacobian_one(y: Node, x: Node, mode: str, simplify: bool) -> Node:
    m, n = y.size, x.size
    if mode == "auto":
        mode = "fwd" if n < m else "rev"
    if mode == "fwd":  # J[:, j] = J e_j: n tangents
        cols = jacobian_columns(y, x, _basis(n, x.shape, x.dtype), simplify)  # (n, *y.shape)
        return reshape(transpose(reshape(cols, (n, m)), (1, 0)), y.shape + x.shape)
    if mode == "rev":  # J[i, :] = e_i^T J: m cotangents
        u = _placeholder("jac_u", y, y.shape)
        gx = vjp(y, x, u, simplify=simplify)
        rows = _batched(gx, u, _basis(m, y.shape, y.dtype), m)  # (m, *x.shape)
        return reshape(rows, y.shape + x.shape)
    raise ValueError(f"jacobian: mode must be 'auto', 'fwd' or 'rev', got {mode!r}")


def jacobian(y: Node, wrt: Structure, mode: str = "auto", simplify: bool = True):
    """The Jacobian of ``y`` with respect to each leaf of ``wrt``: shape ``y.shape + x.shape``."""
    xs, single = _listify(wrt)
    if not isinstance(y, Node) or y.dtype not in FLOATS:
        raise TypeError(f"jacobian: y must be a float tensor, got {getattr(y, 'dtype', type(y).__name__)}")
    check_wrt("jacobian", xs)
    if simplify:
        from .simplify import simplify as _simplify
        y = _simplify(y)
    res = [_jacobian_one(y, x, mode, simplify) for x in xs]
    if simplify:
        res = _simplify(res)
    return res[0] if single else res


def hessian(y: Node, wrt: Node, simplify: bool = True) -> Node:
    """The Hessian of scalar ``y`` with respect to leaf ``wrt``: ``wrt.shape * 2`` (forward-over-reverse)."""
    if not isinstance(wrt, Node):
        raise TypeError("hessian: wrt must be one leaf tensor")
    g = _grad(y, wrt, simplify=simplify)
    return jacobian(g, wrt, mode="fwd", simplify=simplify)
