"""Looking at graphs: a networkx.DiGraph view, a jaxpr-like text listing, and Graphviz DOT."""
from __future__ import annotations

import networkx as nx

from .ir import Node, toposort
from .simplify import simplify as _simplify


def _outs(outputs) -> list[Node]:
    return [outputs] if isinstance(outputs, Node) else list(outputs)


def role(n: Node) -> str:
    """input | param | const | grad | forward."""
    if n.op in ("input", "param", "const"):
        return n.op
    return "grad" if "grad_of" in n.meta else "forward"


def attr_text(n: Node) -> str:
    if n.op == "const":
        v = n.value
        return f"{v.reshape(()).item():g}" if v.size == 1 else f"array{list(v.shape)}"
    items = [f"{k}={v}" for k, v in n.attrs.items() if k != "name"]
    return ", ".join(items)


def numbered(outputs) -> tuple[list[Node], dict[Node, int]]:
    order = toposort(_outs(outputs))
    return order, {n: i for i, n in enumerate(order)}


def to_networkx(outputs, simplify: bool = True) -> nx.DiGraph:
    """The graph of ``outputs`` as a ``networkx.DiGraph``.

    Nodes are integers in topological order with attributes ``op, shape, dtype, attrs, name, role,
    label, node`` (the symdiff tensor); an edge u -> v has ``args``: the argument positions of u in v.
    The graph attribute ``outputs`` lists the output node ids.
    """
    outs = _outs(outputs)
    if simplify:
        outs = _simplify(outs)
    order, ids = numbered(outs)
    G = nx.DiGraph(outputs=[ids[o] for o in outs])
    for n in order:
        G.add_node(ids[n], op=n.op, shape=n.shape, dtype=n.dtype, attrs={k: v for k, v in n.attrs.items() if k != "value"},
                   name=n.name, role=role(n), grad_of=n.meta.get("grad_of"), label=attr_text(n), node=n)
    for n in order:
        for pos, i in enumerate(n.inputs):
            if G.has_edge(ids[i], ids[n]):
                G.edges[ids[i], ids[n]]["args"].append(pos)
            else:
                G.add_edge(ids[i], ids[n], args=[pos])
    return G


def format_graph(outputs, simplify: bool = True) -> str:
    """A readable SSA listing, one line per node: ``%id = op[attrs] %in... : dtype[shape]``."""
    outs = _outs(outputs)
    if simplify:
        outs = _simplify(outs)
    order, ids = numbered(outs)
    lines = []
    for n in order:
        attrs = attr_text(n)
        if n.is_leaf:
            text = f"{n.op} {n.name!r}"
        else:
            text = n.op + (f"[{attrs}]" if attrs else "") + "".join(f" %{ids[i]}" for i in n.inputs)
        note = f"   # {n.meta['name']}" if "name" in n.meta and not n.is_leaf else ""
        lines.append(f"%{ids[n]:<3} = {text} : {n.dtype}{list(n.shape)}{note}")
    lines.append("return " + ", ".join(f"%{ids[o]}" for o in outs))
    return "\n".join(lines)


_STYLE = {
    "input": 'shape=box, style="rounded,filled", fillcolor="#dddddd"',
    "param": 'shape=box, style="rounded,filled", fillcolor="#ffe08a"',
    "const": 'shape=plaintext, fontcolor="#555555"',
    "forward": 'shape=ellipse, style=filled, fillcolor="#cfe2ff"',
    "grad": 'shape=ellipse, style=filled, fillcolor="#f8c9c9"',
}


def to_dot(outputs, simplify: bool = True, title: str = "") -> str:
    """Graphviz DOT text: leaves grey, parameters yellow, forward blue, gradient nodes red."""
    outs = _outs(outputs)
    if simplify:
        outs = _simplify(outs)
    order, ids = numbered(outs)
    out_ids = {ids[o] for o in outs}
    lines = ["digraph symdiff {", "  rankdir=TB;", '  node [fontname="Helvetica", fontsize=10];']
    if title:
        esc = title.replace("\\", "\\\\").replace('"', '\\"')  # a quote would end the DOT string
        lines.append(f'  label="{esc}"; labelloc=t;')
    for n in order:
        r = role(n)
        head = n.name if n.is_leaf else n.op
        if "grad_of" in n.meta:
            head = f"{n.op}\\nd/d{n.meta['grad_of']}"
        extra = attr_text(n) if not n.is_leaf else ""
        label = f"{head}\\n{extra + chr(92) + 'n' if extra and n.op != 'const' else ''}{n.dtype}{list(n.shape)}"
        if n.op == "const":
            label = f"{extra}\\n{n.dtype}{list(n.shape)}"
        periph = ", peripheries=2" if ids[n] in out_ids else ""
        lines.append(f'  n{ids[n]} [label="{label}", {_STYLE[r]}{periph}];')
    for n in order:
        for pos, i in enumerate(n.inputs):
            lines.append(f"  n{ids[i]} -> n{ids[n]}" + (f' [label="{pos}", fontsize=8]' if len(n.inputs) > 1 else "") + ";")
    lines.append("}")
    return "\n".join(lines)


def count_nodes(outputs) -> int:
    return len(toposort(_outs(outputs)))


__all__ = ["to_networkx", "format_graph", "to_dot", "count_nodes", "role"]
