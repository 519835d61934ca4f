"""Before lowering: composite elementwise ops become primitive nodes, and every op is checked against the backend.

An elementwise op is *primitive* when its SymPy expression is one registered head applied to its operand
symbols (``tanh(x0)``, ``Max(x0, x1)``) or one of the ``+ - * / **`` forms that ``sympy_bridge.to_graph``
turns into a single node of that op (``x0 - x1`` is ``sub``); in short, when converting the expression
back to graph nodes gives the op itself. Any other elementwise op (``x0 / (1 + Abs(x0))``) is a composite:
:func:`expand_composites` replaces its nodes by the nodes of its expression, so a backend needs scalar
rules for primitives only. :func:`require_supported` then names the first op a backend cannot compile.
"""
from __future__ import annotations

import functools
from typing import Collection, Mapping, Optional, Sequence

from symdiff.ir import Node, rebuild, toposort
from symdiff.optable import OPS, X
from symdiff.ops_reduce import TENSOR_EXPANSIONS
from symdiff.ops_tensor import broadcast_to
from symdiff.sympy_bridge import to_graph, value_expr

from symdiff.codegen.gather import conv_transpose_expansion

# non-elementwise ops handled by lowering and the point evaluators of every compiled backend
KERNEL_OPS = frozenset({"input", "param", "const", "sum", "max", "reshape", "broadcast_to", "transpose",
                        "matmul", "cast", "softmax", "log_softmax", "logsumexp", "pick", "one_hot",
                        "rand_uniform", "prod"}) | frozenset(TENSOR_EXPANSIONS) \
    | {"slice", "flip", "embed", "concatenate", "window"} \
    | {"take_along", "scatter_add", "scatter_mul", "scatter_max", "cumsum", "cumprod", "argsort"}  # ops_gather.py
# TENSOR_EXPANSIONS (argmax, argmin, conv, conv_transpose, conv_weight, fold): tensor ops that expand_composites rewrites into the ops above


# expansions the compiled backends prefer where they apply (None: the op's own TENSOR_EXPANSIONS entry)
PREFERRED_EXPANSIONS = {"conv_transpose": conv_transpose_expansion}


class UnsupportedOpError(NotImplementedError):
    """An op the chosen backend neither implements nor expands."""


@functools.lru_cache(maxsize=None)
def is_primitive(op: str) -> bool:
    """True when the op's expression converts back to one node of the op itself (see module docstring)."""
    d = OPS[op]
    if not d.elementwise:
        return True
    env = {X[i]: Node("input", (), {"name": f"x{i}"}, (), "float64") for i in range(d.arity)}
    try:
        out = to_graph(d.expr, env, "float64")
    except NotImplementedError:
        return True  # a head with no inverse mapping: only a scalar rule can compute it
    return out.op == op and len(out.inputs) == d.arity and all(a is env[X[i]] for i, a in enumerate(out.inputs))


def is_composite(op: str) -> bool:
    return OPS[op].elementwise and not is_primitive(op)


def expand_composites(outputs: Sequence[Node]) -> list[Node]:
    """The graph with every composite elementwise node replaced by its primitive nodes (same values)."""
    order = toposort(outputs)
    if not any(is_composite(n.op) or n.op in TENSOR_EXPANSIONS for n in order):
        return list(outputs)

    def expand(n: Node, ins: list) -> Optional[Node]:
        if n.op in TENSOR_EXPANSIONS:
            pref = PREFERRED_EXPANSIONS.get(n.op)
            new = pref(n, ins) if pref is not None else None  # (None: not preferred here)
            if new is None:
                new = TENSOR_EXPANSIONS[n.op](n, ins)  # None: kept (the point evaluator computes it)
            return None if new is None else expand_composites([new])[0]
        if not is_composite(n.op):
            return None
        new = to_graph(value_expr(n), {X[j]: inp for j, inp in enumerate(ins)}, n.dtype)
        new = expand_composites([new])[0]  # an expression may use other composites
        # an operand the expression ignores still broadcasts the result
        return broadcast_to(new, n.shape) if new.shape != n.shape else new
    return rebuild(outputs, expand)


def require_supported(backend: str, outputs: Sequence[Node], rules: Mapping,
                      unsupported: Collection[str]) -> list[Node]:
    """The expanded graph (``expand_composites``), after checking it: raise :class:`UnsupportedOpError`
    naming the op and the backend when a node has an op the backend has neither a scalar rule nor a
    kernel for, or declares unsupported. Callers lower and key the returned graph (one expansion)."""
    expanded = expand_composites(outputs)
    for n in toposort(expanded):
        if n.op in unsupported or (n.op not in KERNEL_OPS and n.op not in rules):
            raise UnsupportedOpError(
                f"op {n.op!r} is not supported by backend {backend!r}"
                + (" (declared unsupported)" if n.op in unsupported else " (no scalar rule)")
                + "; use backend='numpy', or add a rule to that backend's scalar_rules.py")
    return expanded
