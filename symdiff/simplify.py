"""The simplifier: rewrite rules as data, in named phases, each run to a fixed point.

Phases (PyTensor's canonicalize / stabilize / specialize):

- ``canonicalize``: constant folding, algebraic identities (x*1, x+0, x*0, double negation,
  transpose of transpose, reshape chains, casts), symbolic zeros;
- ``stabilize``: numerically stable forms (log(softmax) -> log_softmax, log(sigmoid(x)) ->
  -softplus(-x), log(1+exp(x)) -> softplus(x), log(sum(exp)) -> logsumexp, log(1+x) -> log1p, ...);
- ``specialize``: cheaper equivalents (x**2 -> square, x**0.5 -> sqrt, x*x -> square).

Common-subexpression elimination is free (nodes are hash-consed by structure) and dead nodes vanish
because a graph is only what is reachable from its outputs. ``RULES`` lists (phase, name, function); a
function takes a node whose inputs are already rewritten and returns a replacement or ``None``.
"""
from __future__ import annotations

from typing import Callable, Optional, Sequence

import numpy as np

from .ir import Node, apply, const, toposort
from .ops_tensor import broadcast_to, cast, reshape
from .optable import OPS

FOLD_LIMIT = 4096  # fold constants up to this many elements


def uniform(n: Node) -> Optional[float]:
    """The value of a constant whose entries are all equal (possibly broadcast), else None."""
    if n.op == "broadcast_to":
        n = n.inputs[0]
    if n.op != "const" or n.value.size == 0:
        return None
    v = n.value.reshape(-1)
    return float(v[0]) if np.all(v == v[0]) else None


def _like(x: Node, node: Node) -> Node:
    """x, broadcast and cast to the shape and dtype of ``node`` (for identities like x + 0 -> x)."""
    return broadcast_to(cast(x, node.dtype), node.shape)


def _fill(node: Node, v: float) -> Node:
    return broadcast_to(const(v, node.dtype), node.shape)


# -- canonicalize ---------------------------------------------------------------------------------------------

def fold_constants(n: Node) -> Optional[Node]:
    opdef = OPS[n.op]
    if not n.inputs or n.op == "broadcast_to":
        return None
    if opdef.elementwise and all(uniform(i) is not None for i in n.inputs):
        vals = [np.asarray(uniform(i), dtype=i.dtype) for i in n.inputs]
        with np.errstate(all="ignore"):
            v = np.asarray(opdef.impl(*vals), dtype=n.dtype)
        return _fill(n, float(v))
    if all(i.op == "const" for i in n.inputs) and n.size <= FOLD_LIMIT:
        with np.errstate(all="ignore"):
            v = opdef.impl(*(i.value for i in n.inputs), **n.attrs)
        return const(np.asarray(v, dtype=n.dtype), n.dtype)
    return None


def identities(n: Node) -> Optional[Node]:
    op, ins = n.op, n.inputs
    u = [uniform(i) for i in ins]
    if op == "add":
        if u[1] == 0:
            return _like(ins[0], n)
        if u[0] == 0:
            return _like(ins[1], n)
        if ins[1].op == "neg":
            return apply("sub", [ins[0], ins[1].inputs[0]])
        if ins[0].op == "neg":
            return apply("sub", [ins[1], ins[0].inputs[0]])
    elif op == "sub":
        if u[1] == 0:
            return _like(ins[0], n)
        if u[0] == 0:
            return _like(apply("neg", [ins[1]]), n)
        if ins[1].op == "neg":
            return apply("add", [ins[0], ins[1].inputs[0]])
        if ins[0] is ins[1]:
            return _fill(n, 0.0)
    elif op == "mul":
        for a, b in ((0, 1), (1, 0)):
            if u[b] == 1:
                return _like(ins[a], n)
            if u[b] == 0:  # symbolic zero (as JAX's zeros: 0 * x = 0 even for non-finite x)
                return _fill(n, 0.0)
            if u[b] == -1:
                return _like(apply("neg", [ins[a]]), n)
        if ins[0].op == "neg" and ins[1].op == "neg":
            return apply("mul", [ins[0].inputs[0], ins[1].inputs[0]])
    elif op == "div":
        if u[1] == 1:
            return _like(ins[0], n)
        if u[0] == 0:
            return _fill(n, 0.0)
        if u[1] is not None and u[1] != 0 and ins[0].op != "const":
            return apply("mul", [ins[0], const(1.0 / u[1], n.dtype)]) if ins[1].shape == () else None
    elif op == "neg":
        if ins[0].op == "neg":
            return _like(ins[0].inputs[0], n)
    elif op == "pow":
        if u[1] == 1:
            return _like(ins[0], n)
        if u[1] == 0:
            return _fill(n, 1.0)
    elif op == "transpose":
        if ins[0].op == "transpose":
            inner = ins[0].attrs["perm"]
            perm = tuple(inner[p] for p in n.attrs["perm"])
            x = ins[0].inputs[0]
            return x if perm == tuple(range(x.ndim)) else apply("transpose", [x], perm=perm)
        if ins[0].ndim <= 1 or all(ins[0].shape[p] == 1 or p == i for i, p in enumerate(n.attrs["perm"])):
            return reshape(ins[0], n.shape)  # moves only size-1 axes
    elif op == "reshape":
        if ins[0].op == "reshape":
            return reshape(ins[0].inputs[0], n.shape)
        if ins[0].shape == n.shape:
            return ins[0]
        if ins[0].op == "broadcast_to" and ins[0].inputs[0].size == 1:  # a reshaped fill is a fill
            return broadcast_to(reshape(ins[0].inputs[0], ()), n.shape)
    elif op == "broadcast_to":
        x = ins[0]
        if x.shape == n.shape:
            return x
        if x.op == "broadcast_to":
            return broadcast_to(x.inputs[0], n.shape)
        if x.op == "const" and x.size == 1 and x.ndim > 0:
            return broadcast_to(const(x.value.reshape(()), x.dtype), n.shape)
        if x.op == "reshape" and x.inputs[0].size == 1:
            return broadcast_to(reshape(x.inputs[0], ()), n.shape)
    elif op == "sum":
        x, axes = ins[0], n.attrs["axes"]
        if all(x.shape[a] == 1 for a in axes):
            return reshape(x, n.shape)
        if x.op == "broadcast_to" and x.inputs[0].size == 1:  # sum of a broadcast scalar = count * scalar
            count = int(np.prod([x.shape[a] for a in axes]))
            return broadcast_to(apply("mul", [reshape(x.inputs[0], ()), const(float(count), n.dtype)]), n.shape)
    elif op == "cast":
        if ins[0].dtype == n.dtype:
            return ins[0]
        if (ins[0].op == "cast" and ins[0].inputs[0].dtype == n.dtype
                and np.dtype(ins[0].dtype).itemsize >= np.dtype(n.dtype).itemsize):
            return ins[0].inputs[0]  # only a widening round trip is exact (f32 -> f64 -> f32)
    return None


# -- stabilize -------------------------------------------------------------------------------------------

def _is_one_plus(n: Node) -> Optional[Node]:
    """x when n is 1 + x or x + 1."""
    if n.op == "add":
        a, b = n.inputs
        if uniform(a) == 1:
            return b
        if uniform(b) == 1:
            return a
    return None


def stable_log(n: Node) -> Optional[Node]:
    if n.op != "log":
        return None
    (x,) = n.inputs
    if x.op == "softmax":  # log(softmax(z)) -> log_softmax(z)
        return apply("log_softmax", x.inputs, **x.attrs)
    if x.op == "sigmoid":  # log(sigmoid(z)) = -softplus(-z): never saturates
        return apply("neg", [apply("softplus", [apply("neg", [x.inputs[0]])])])
    if x.op == "exp":  # log(exp(z)) = z
        return x.inputs[0]
    if x.op == "sum" and x.inputs[0].op == "exp":  # log(sum(exp(z))) -> logsumexp(z)
        return apply("logsumexp", [x.inputs[0].inputs[0]], **x.attrs)
    y = _is_one_plus(x)
    if y is not None and y.shape == x.shape and y.dtype == x.dtype:
        if y.op == "exp":  # log(1 + exp(z)) -> softplus(z)
            return apply("softplus", [y.inputs[0]])
        return apply("log1p", [y])  # log(1 + z) -> log1p(z)
    return None


def stable_other(n: Node) -> Optional[Node]:
    if n.op == "sub":
        a, b = n.inputs
        if a.op == "exp" and uniform(b) == 1 and n.shape == a.shape:  # exp(z) - 1 -> expm1(z)
            return apply("expm1", [a.inputs[0]])
        if (b.op == "logsumexp" and b.inputs[0] is a and len(b.attrs["axes"]) == 1 and b.attrs["keepdims"]):
            return apply("log_softmax", [a], axis=b.attrs["axes"][0])  # z - logsumexp(z) -> log_softmax(z)
    if n.op == "exp" and n.inputs[0].op == "log_softmax":  # exp(log_softmax(z)) -> softmax(z)
        return apply("softmax", n.inputs[0].inputs, **n.inputs[0].attrs)
    if n.op == "div":
        a, b = n.inputs
        if uniform(a) == 1:
            z = _is_one_plus(b)
            if z is not None and z.op == "exp" and z.inputs[0].op == "neg" and z.shape == n.shape:
                return apply("sigmoid", [z.inputs[0].inputs[0]])  # 1 / (1 + exp(-z)) -> sigmoid(z)
        if (a.op == "exp" and b.op == "sum" and b.attrs["keepdims"] and len(b.attrs["axes"]) == 1
                and b.inputs[0] is a):  # exp(z) / sum(exp(z)) -> softmax(z)
            return apply("softmax", [a.inputs[0]], axis=b.attrs["axes"][0])
    return None


# -- specialize ----------------------------------------------------------------------------------------------

def specialize(n: Node) -> Optional[Node]:
    if n.op == "pow":
        e = uniform(n.inputs[1])
        x = n.inputs[0]
        if e is not None and n.inputs[1].shape == () and x.shape == n.shape:
            if e == 2:
                return apply("square", [x])
            if e == 0.5:
                return apply("sqrt", [x])
            if e == -1:
                return apply("div", [const(1.0, n.dtype), x])
    if n.op == "mul" and n.inputs[0] is n.inputs[1]:
        return apply("square", [n.inputs[0]])
    return None


RULES: tuple[tuple[str, str, Callable[[Node], Optional[Node]]], ...] = (
    ("canonicalize", "fold_constants", fold_constants),
    ("canonicalize", "identities", identities),
    ("stabilize", "stable_log", stable_log),
    ("stabilize", "stable_other", stable_other),
    ("specialize", "specialize", specialize),
)
PHASES = ("canonicalize", "stabilize", "canonicalize", "specialize", "canonicalize")


def _rebuild(node: Node, inputs: list[Node]) -> Node:
    if all(a is b for a, b in zip(inputs, node.inputs)):
        return node
    return apply(node.op, inputs, **node.attrs)


def run_rules(outputs: Sequence[Node], rules: Sequence[Callable], max_iter: int = 50,
              log: Optional[list] = None) -> list[Node]:
    """Apply ``rules`` bottom-up over the graph until nothing changes."""
    outputs = list(outputs)
    for _ in range(max_iter):
        memo: dict[Node, Node] = {}
        changed = False
        for node in toposort(outputs):
            new = _rebuild(node, [memo[i] for i in node.inputs])
            for _k in range(16):
                for rule in rules:
                    r = rule(new)
                    if r is not None and (r.shape, r.dtype) != (new.shape, new.dtype):
                        r = _like(r, new)  # a rewrite never changes a node's type (exp(x32) - 1.0f64 stays f64)
                    if r is not None and r is not new:
                        if log is not None:
                            log.append((rule.__name__, new.op, r.op))
                        new = r
                        changed = True
                        break
                else:
                    break
            if new.op == node.op and not new.is_leaf:  # keep names of rebuilt nodes
                for k, v in node.meta.items():
                    new.meta.setdefault(k, v)
            memo[node] = new
        outputs = [memo[o] for o in outputs]
        if not changed:
            break
    return outputs


def simplify(outputs: Sequence[Node] | Node, phases: Sequence[str] = PHASES,
             log: Optional[list] = None) -> list[Node] | Node:
    """Simplify a graph (a tensor or a list of tensors); returns the same structure."""
    single = isinstance(outputs, Node)
    outs = [outputs] if single else list(outputs)
    for phase in phases:
        outs = run_rules(outs, [f for p, _, f in RULES if p == phase], log=log)
    return outs[0] if single else outs
