"""The SymPy formulas of an elementwise node: its value and the partial derivative for each operand, as
SymPy text and LaTeX (what ``symdiff explain`` prints and the HTML graph page shows on a click)."""
from __future__ import annotations

from typing import Mapping

from .ir import Node, is_const_scalar
from .optable import OPS


def is_elementwise(n: Node) -> bool:
    """True for an op-table elementwise node (its derivatives come from ``sympy.diff``)."""
    return n.op in OPS and OPS[n.op].elementwise


def explain_lines(n: Node, ids: Mapping[Node, int]) -> list[str]:
    """The operands of elementwise node ``n`` (ids ``%k`` from ``ids``), its value ``v{k}`` and, for each
    non-constant operand, d v / d operand, as SymPy text and LaTeX; the listing line is not included."""
    import sympy as sp
    from .optable import X
    from .sympy_bridge import const_subs, derivative_expr, value_expr
    if not is_elementwise(n):
        raise ValueError(f"explain_lines: {n.op} is not an elementwise op")
    k = ids[n]

    def sym(inp: Node) -> "sp.Symbol":
        return sp.Symbol(inp.name if inp.is_leaf else f"v{ids[inp]}", real=True)

    sub = {X[j]: sym(inp) for j, inp in enumerate(n.inputs)}
    lines = []
    for j, inp in enumerate(n.inputs):
        desc = f"{inp.op} {inp.name!r}" if inp.is_leaf else (f"constant {float(inp.value.reshape(-1)[0]):g}"
                                                              if is_const_scalar(inp) else f"{inp.op} node")
        lines.append(f"  operand {j}: %{ids[inp]} = {desc}, {inp.dtype}{list(inp.shape)}" +
                     (f"  ->  symbol {sym(inp)}" if not is_const_scalar(inp) else "  (substituted)"))
    value = value_expr(n).xreplace(sub)
    lines += ["", f"value:  v{k} = {sp.sstr(value)}", f"        LaTeX: {sp.latex(value)}"]
    for i, inp in enumerate(n.inputs):
        if is_const_scalar(inp):
            continue
        d = derivative_expr(n.op, i, const_subs(n, i)).xreplace(sub)
        lines += ["", f"d v{k} / d {sym(inp)}  (operand {i}, %{ids[inp]}):", f"        {sp.sstr(d)}",
                  f"        LaTeX: {sp.latex(d)}"]
        own = sp.Symbol(f"v{k}", real=True)
        d_own = d.subs(value, own) if not value.is_Symbol else d
        if d_own != d and own in d_own.free_symbols:
            lines.append(f"        = {sp.sstr(d_own)}   (equivalently, in terms of the node's own value v{k})")
        if tuple(inp.shape) != tuple(n.shape):
            lines.append(f"        (operand shape {list(inp.shape)} broadcasts to {list(n.shape)}: the backward pass "
                         f"multiplies by the incoming gradient and sums over the broadcast axes)")
    return lines


__all__ = ["explain_lines", "is_elementwise"]
