"""``symdiff explain MODEL.py[:NAME] --node N``: the value and the symbolic derivatives SymPy computed for
elementwise node %N (ids as ``symdiff graph`` lists them with the same flags), as SymPy text and LaTeX."""
from __future__ import annotations

import argparse

from .common import EXIT_OK, UsageError, add_graph_choice, add_model_argument, chosen_graph


def run(a: argparse.Namespace) -> int:
    """The ``explain`` subcommand."""
    from ..formulas import explain_lines, is_elementwise
    from ..inspection import format_graph, numbered
    m, outs, _ = chosen_graph(a)
    order, ids = numbered(outs)
    listing = format_graph(outs, simplify=False).splitlines()
    elementwise = [ids[n] for n in order if is_elementwise(n)]
    flags = " ".join(f for f, on in (("--backward", a.backward), ("--raw", a.raw)) if on)
    see = f"(see: symdiff graph {a.model}{' ' + flags if flags else ''})"
    ew_text = ", ".join(f"%{i}" for i in elementwise[:40]) + (" ..." if len(elementwise) > 40 else "")
    if not 0 <= a.node < len(order):
        raise UsageError(f"no node %{a.node}: the listing has %0 .. %{len(order) - 1} {see}")
    n = order[a.node]
    if not is_elementwise(n):
        kind = "a leaf" if n.is_leaf else ("a constant" if n.op == "const" else f"a {n.op} node (a tensor op whose "
                                                                                 f"vector-Jacobian product is a hand-written rule)")
        raise UsageError(f"%{a.node} is {kind}, not an elementwise op; elementwise nodes: {ew_text or 'none'} {see}")
    print(listing[a.node])
    print("\n".join(explain_lines(n, ids)))
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
