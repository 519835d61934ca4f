"""``symdiff explain MODEL.py[:NAME] --node N``: the value and the symbolic derivatives SymPy computed for
elementwise node %N (ids as ``symdiff graph`` lists them with the same flags), as SymPy text and LaTeX."""
from __future__ import annotations

import argparse

from .common import EXIT_OK, UsageError, add_graph_choice, add_model_argument, chosen_graph


def run(a: argparse.Namespace) -> int:
    """The ``explain`` subcommand."""
    import sympy as sp
    from ..inspection import format_graph, numbered
    from ..ir import is_const_scalar
    from ..optable import OPS
    from ..sympy_bridge import const_subs, derivative_expr, value_expr
    m, outs, _ = chosen_graph(a)
    order, ids = numbered(outs)
    listing = format_graph(outs, simplify=False).splitlines()
    elementwise = [ids[n] for n in order if n.op in OPS and OPS[n.op].elementwise]
    flags = " ".join(f for f, on in (("--backward", a.backward), ("--raw", a.raw)) if on)
    see = f"(see: symdiff graph {a.model}{' ' + flags if flags else ''})"
    ew_text = ", ".join(f"%{i}" for i in elementwise[:40]) + (" ..." if len(elementwise) > 40 else "")
    if not 0 <= a.node < len(order):
        raise UsageError(f"no node %{a.node}: the listing has %0 .. %{len(order) - 1} {see}")
    n = order[a.node]
    if n.op not in OPS or not OPS[n.op].elementwise:
        kind = "a leaf" if n.is_leaf else ("a constant" if n.op == "const" else f"a {n.op} node (a tensor op whose "
                                                                                 f"vector-Jacobian product is a hand-written rule)")
        raise UsageError(f"%{a.node} is {kind}, not an elementwise op; elementwise nodes: {ew_text or 'none'} {see}")

    def sym(inp):
        nm = inp.name if inp.is_leaf else f"v{ids[inp]}"
        return sp.Symbol(nm, real=True)

    from ..optable import X
    sub = {X[j]: sym(inp) for j, inp in enumerate(n.inputs)}
    print(listing[a.node])
    for j, inp in enumerate(n.inputs):
        desc = f"{inp.op} {inp.name!r}" if inp.is_leaf else (f"constant {float(inp.value.reshape(-1)[0]):g}"
                                                              if is_const_scalar(inp) else f"{inp.op} node")
        print(f"  operand {j}: %{ids[inp]} = {desc}, {inp.dtype}{list(inp.shape)}" +
              (f"  ->  symbol {sym(inp)}" if not is_const_scalar(inp) else "  (substituted)"))
    value = value_expr(n).xreplace(sub)
    print(f"\nvalue:  v{a.node} = {sp.sstr(value)}")
    print(f"        LaTeX: {sp.latex(value)}")
    for i, inp in enumerate(n.inputs):
        if is_const_scalar(inp):
            continue
        d = derivative_expr(n.op, i, const_subs(n, i)).xreplace(sub)
        print(f"\nd v{a.node} / d {sym(inp)}  (operand {i}, %{ids[inp]}):")
        print(f"        {sp.sstr(d)}")
        print(f"        LaTeX: {sp.latex(d)}")
        own = sp.Symbol(f"v{a.node}", real=True)
        d_own = d.subs(value, own) if not value.is_Symbol else d
        if d_own != d and own in d_own.free_symbols:
            print(f"        = {sp.sstr(d_own)}   (equivalently, in terms of the node's own value v{a.node})")
        if tuple(inp.shape) != tuple(n.shape):
            print(f"        (operand shape {list(inp.shape)} broadcasts to {list(n.shape)}: the backward pass "
                  f"multiplies by the incoming gradient and sums over the broadcast axes)")
    return EXIT_OK


def add_parser(sub, common: argparse.ArgumentParser) -> None:
    """Register ``explain`` and its options."""
    e = sub.add_parser("explain", parents=[common], help="SymPy derivative formulas of an elementwise node",
                       description="Print d node / d operand for each operand of elementwise node %N "
                                   "(ids as `symdiff graph` lists them with the same flags), as SymPy text and LaTeX.")
    add_model_argument(e)
    e.add_argument("--node", "-n", type=int, required=True, metavar="N", help="node id (%%N in the listing)")
    add_graph_choice(e, "number nodes in the forward+backward graph")
    e.set_defaults(func=run)
