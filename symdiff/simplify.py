"""The simplifier: named rewrites (``symdiff.rewrites``), in named phases, each run to a fixed point.

Phases (PyTensor's canonicalize / stabilize / specialize):

- ``canonicalize``: constant folding, algebraic identities (x*1, x+0, x*0, double negation,
  transpose of transpose, reshape chains, casts), symbolic zeros;
- ``stabilize``: numerically stable forms (log(softmax) -> log_softmax, log(sigmoid(x)) ->
  -softplus(-x), log(1+exp(x)) -> softplus(x), log(sum(exp)) -> logsumexp, log(1+x) -> log1p, ...);
- ``specialize``: cheaper equivalents (x**2 -> square, x**0.5 -> sqrt, x*x -> square).

Each rewrite is a function registered with ``@rewrite(phase, ops=(...))``; the driver looks up the
rewrites of a node's op in a dict and logs the name of the one that fired. Common-subexpression
elimination is free (nodes are interned by structure) and dead nodes vanish because a graph is only
what is reachable from its outputs.
"""
from __future__ import annotations

from typing import Callable, Optional, Sequence

from .dims import SymbolicDimError
from .ir import PROVENANCE, Node, apply, toposort
from .rewrites import FOLD_LIMIT, REWRITES, Rewrite, dispatch, in_phase, like, rewrites_for, uniform

PHASES = ("canonicalize", "stabilize", "canonicalize", "specialize", "canonicalize")

__all__ = ["FOLD_LIMIT", "PHASES", "REWRITES", "Rewrite", "run_phase", "run_rules", "simplify", "uniform"]


def _rebuild(node: Node, inputs: list[Node]) -> Node:
    if all(a is b for a, b in zip(inputs, node.inputs)):
        return node
    return apply(node.op, inputs, **node.attrs)


def _fixed_point(outputs: Sequence[Node], for_op: Callable[[str], tuple], max_iter: int,
                 log: Optional[list]) -> list[Node]:
    """Apply the rewrites ``for_op(node.op)`` bottom-up over the graph until nothing changes."""
    outputs = list(outputs)
    for _ in range(max_iter):
        memo: dict[Node, Node] = {}
        changed = False
        for node in toposort(outputs):
            new = _rebuild(node, [memo[i] for i in node.inputs])
            for _k in range(16):
                for rw in for_op(new.op):
                    try:
                        r = rw.fn(new)
                    except SymbolicDimError:  # the identity depends on symbolic sizes: it does not apply
                        r = None
                    if r is not None and (r.shape, r.dtype) != (new.shape, new.dtype):
                        r = like(r, new)  # a rewrite never changes a node's type (exp(x32) - 1.0f64 stays f64)
                    if r is not None and r is not new:
                        if log is not None:
                            log.append((rw.name, new.op, r.op))
                        new = r
                        changed = True
                        break
                else:
                    break
            if new.op == node.op and not new.is_leaf:  # keep names of rebuilt nodes
                for k, v in node.meta.items():
                    new.meta.setdefault(k, v)
            elif PROVENANCE in node.meta and new.op not in ("input", "param", "const"):
                new.meta.setdefault(PROVENANCE, node.meta[PROVENANCE])  # a rewritten backward node
            memo[node] = new
        outputs = [memo[o] for o in outputs]
        if not changed:
            break
    return outputs


def run_rules(outputs: Sequence[Node], rules: Sequence[Rewrite], max_iter: int = 50,
              log: Optional[list] = None) -> list[Node]:
    """Apply the given rewrites bottom-up over the graph until nothing changes (dispatching by op)."""
    return _fixed_point(outputs, dispatch(rules), max_iter, log)


def run_phase(outputs: Sequence[Node], phase: str, max_iter: int = 50, log: Optional[list] = None) -> list[Node]:
    """Run every registered rewrite of ``phase`` to a fixed point."""
    if not in_phase(phase):
        raise ValueError(f"unknown simplifier phase {phase!r} or no rewrites registered for it")
    return _fixed_point(outputs, lambda op: rewrites_for(phase, op), max_iter, log)


def simplify(outputs: Sequence[Node] | Node, phases: Sequence[str] = PHASES,
             log: Optional[list] = None) -> list[Node] | Node:
    """Simplify a graph (a tensor or a list of tensors); returns the same structure.

    ``log``, when a list, receives ``(rewrite name, old op, new op)`` for every rewrite that fired.
    """
    single = isinstance(outputs, Node)
    outs = [outputs] if single else list(outputs)
    for phase in phases:
        outs = run_phase(outs, phase, log=log)
    return outs[0] if single else outs
