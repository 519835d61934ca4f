"""Reverse mode as a graph-to-graph transform.

Walk the forward graph in reverse topological order with a ``grads`` dict of cotangent *nodes*. At a
node with several users the contributions are summed (the lecture's Duplicate module: the gradient
of a fan-out is the sum of the branch gradients). Elementwise ops take their partials from
``sympy.diff`` (``sympy_bridge.partial``) and sum over broadcast axes; tensor ops use their explicit
vector-Jacobian rule. Everything emitted is an ordinary node, so the result can be simplified,
compiled, and differentiated again (Hessian-vector products). Each node a backward step creates records
the forward node it differentiates in ``meta[PROVENANCE]`` (its digest; display only, identity unchanged).
"""
from __future__ import annotations

from typing import Sequence

from .ir import PROVENANCE, Node, apply, const, is_zero, toposort
from .ops_tensor import cast, sum_to, zeros
from .optable import OPS
from .sympy_bridge import partial


def _tag(contrib: Node, of: Node, seen: set) -> None:
    """Record on the nodes new in ``contrib`` (not in ``seen``: the forward graph and what is already tagged)
    that the backward step of ``of`` built them. Metadata only: the digest, hence identity, is unchanged."""
    stack = [contrib]
    while stack:
        n = stack.pop()
        if n in seen:
            continue
        seen.add(n)
        if n.op not in ("input", "param", "const"):
            n.meta.setdefault(PROVENANCE, of.digest)
            stack.extend(n.inputs)


def _vjp(node: Node, g: Node, needed: Sequence[bool]) -> list:
    opdef = OPS[node.op]
    if opdef.elementwise:
        out = []
        for i, inp in enumerate(node.inputs):
            if not needed[i]:
                out.append(None)
                continue
            p = partial(node, i)
            contrib = None if is_zero(p) else sum_to(apply("mul", [g, p]), inp.shape)
            out.append(contrib)
        return out
    if not opdef.differentiable or opdef.vjp is None:
        return [None] * len(node.inputs)
    return opdef.vjp(node, g)


def check_wrt(fn: str, wrt: Sequence[Node]) -> None:
    """Every entry of ``wrt`` must be a float sd.input/sd.param leaf."""
    for w in wrt:
        if not isinstance(w, Node):
            raise TypeError(f"{fn}: wrt entries must be symdiff tensors, got {type(w).__name__}")
        if not w.is_leaf:
            raise ValueError(f"{fn}: can only differentiate with respect to sd.input/sd.param leaves, got a {w.op} node")
        if w.dtype not in ("float32", "float64"):
            kind = "bool" if w.dtype == "bool" else "integer"
            raise TypeError(f"{fn}: cannot differentiate with respect to {kind} tensor {w.name!r} ({w.dtype})")


def depends_on(order: Sequence[Node], targets: set) -> set:
    """The float nodes of ``order`` (topological) on a path from a node of ``targets``: derivatives do not
    flow through int/bool values (comparisons, casts to int, labels)."""
    depends: set[Node] = set()
    for n in order:
        if n in targets or (n.dtype in ("float32", "float64") and any(i in depends for i in n.inputs)):
            depends.add(n)
    return depends


def reverse(seeds: Sequence[tuple], wrt: Sequence[Node]) -> dict:
    """Reverse mode from ``seeds`` = [(output node, its cotangent node)]: ``{node: total cotangent}`` for
    every node on a path from ``wrt`` to an output (fan-out and several seeds on one node are summed)."""
    outs = [o for o, _ in seeds]
    order = toposort(outs)
    depends = depends_on(order, set(wrt))
    contribs: dict[Node, list[Node]] = {}
    for o, c in seeds:
        contribs.setdefault(o, []).append(cast(c, o.dtype))
    total: dict[Node, Node] = {}
    seen: set[Node] = set(order)  # provenance: the forward graph is never tagged
    for node in reversed(order):
        parts = contribs.pop(node, None)
        if parts is None or node not in depends:
            continue
        g = parts[0]
        for p in parts[1:]:  # fan-out: sum the branch gradients
            g = apply("add", [g, p])
        if len(parts) > 1:
            _tag(g, node, seen)  # the sum of a fan-out's cotangents: d loss / d node
        total[node] = g
        if not node.inputs:
            continue
        needed = [inp in depends for inp in node.inputs]
        for inp, gi in zip(node.inputs, _vjp(node, g, needed)):
            if gi is None or inp not in depends:
                continue
            gi = cast(gi, inp.dtype)
            _tag(gi, node, seen)
            contribs.setdefault(inp, []).append(gi)
    return total


def _label(n: Node) -> str:
    return n.name or f"{n.op}{list(n.shape)}"


def grad(y: Node, wrt: Sequence[Node] | Node, simplify: bool = True) -> list[Node]:
    """Symbolic gradients of scalar ``y`` with respect to each leaf in ``wrt`` (tensors shaped like them).

    The result is part of the same graph: it can be compiled with ``y`` and differentiated again.
    """
    if not isinstance(y, Node):
        raise TypeError(f"grad: y must be a symdiff tensor, got {type(y).__name__}")
    single = isinstance(wrt, Node)
    wrt = [wrt] if single else list(wrt)
    if y.shape != ():
        raise ValueError(f"grad: y must be a scalar tensor, got shape {y.shape} (reduce it first, e.g. sd.sum)")
    if y.dtype not in ("float32", "float64"):
        kind = "a bool" if y.dtype == "bool" else "an integer"
        raise TypeError(f"grad: output {_label(y)!r} ({y.dtype}{list(y.shape)}) is {kind} tensor; integer and bool "
                        f"results are not differentiable (differentiate the float value before the comparison or "
                        f"cast)")
    if simplify:  # differentiate the stabilized forward graph (log(sigmoid(x)) -> -softplus(-x), ...):
        from .simplify import simplify as _simplify  # its derivative stays finite where the naive one is 0 * inf
        y = _simplify(y)
    order = toposort([y])
    present = set(order)
    check_wrt("grad", wrt)
    total = reverse([(y, const(1.0, y.dtype))], wrt)
    result = []
    for w in wrt:
        g = total.get(w) if w in present else None
        g = zeros(w.shape, w.dtype) if g is None else cast(broadcast(g, w.shape), w.dtype)
        result.append(g)
    if simplify:
        from .simplify import simplify as _simplify
        result = _simplify(result)
    for w, g in zip(wrt, result):
        if g.op in ("input", "param", "const") or g in present:
            continue  # a leaf or a forward value (d sum(exp x)/dx = exp x): do not tag the caller's node as a gradient
        g.meta.setdefault("grad_of", _label(w))
        g.meta.setdefault("name", f"d{y.name or 'loss'}/d{_label(w)}")
    return result[0] if single else result


def broadcast(g: Node, shape: tuple) -> Node:
    from .ops_tensor import broadcast_to
    return broadcast_to(g, shape)
