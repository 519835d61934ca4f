"""Looking at graphs: a networkx.DiGraph view, a jaxpr-like text listing, and Graphviz DOT."""
from __future__ import annotations


from typing import TYPE_CHECKING, Mapping, Optional

import numpy as np

from .ir import PROVENANCE, Node, interned, toposort
from .simplify import simplify as _simplify

if TYPE_CHECKING:  # networkx is imported when a graph is built (it costs ~0.13 s of `import symdiff`)
    import networkx as nx


def _outs(outputs) -> list[Node]:
    return [outputs] if isinstance(outputs, Node) else list(outputs)


LEAF_ROLES = ("input", "param", "const")


def role(n: Node, forward: Optional[set] = None) -> str:
    """input | param | const | forward | backward | grad (a gradient output).

    ``forward``: the nodes the graph's non-gradient outputs depend on (:func:`forward_nodes`); an op
    node outside it is ``backward``. Without it every op node that is not a gradient is ``forward``."""
    if n.op in LEAF_ROLES:
        return n.op
    if forward is not None and n in forward:
        return "forward"  # a forward value returned as a gradient (d sum(exp x)/dx = exp x) stays forward
    if "grad_of" in n.meta:
        return "grad"
    return "forward" if forward is None else "backward"


def forward_nodes(outputs) -> Optional[set]:
    """The nodes the non-gradient outputs depend on, or None when every output is a gradient (then
    the forward and backward parts cannot be told apart)."""
    fwd = [o for o in _outs(outputs) if "grad_of" not in o.meta]
    return set(toposort(fwd)) if fwd else None


def attr_text(n: Node) -> str:
    if n.op == "const":
        v = n.value
        return f"{v.reshape(()).item():g}" if v.size == 1 else f"array{list(v.shape)}"
    items = [f"{k}={v}" for k, v in n.attrs.items() if k != "name"]
    return ", ".join(items)


def const_text(n: Node, max_entries: int = 6) -> str:
    """A constant for a picture: its values (rounded, up to ``max_entries``) or, when larger, its dtype, shape
    and range (``float32[64, 324] in [-0.5, 0.5]``)."""
    v = n.value
    if v.size == 1:
        return f"{v.reshape(()).item():.4g}"
    if v.size <= max_entries:
        flat = np.asarray(v).reshape(-1)
        body = ", ".join(f"{x:.3g}" if np.issubdtype(flat.dtype, np.floating) else str(x) for x in flat.tolist())
        return f"[{body}]" + (f" as {list(v.shape)}" if v.ndim > 1 else "")
    lo, hi = (v.min(), v.max()) if v.size else (0, 0)
    rng = f" in [{lo:.3g}, {hi:.3g}]" if v.dtype.kind in "fiu" else ""
    return f"{n.dtype}{list(v.shape)}{rng}"


def differentiates(n: Node, ids: Mapping[Node, int]) -> Optional[str]:
    """``%k`` for the forward node that backward node ``n`` differentiates (``autodiff.grad``'s provenance
    record), its op when that node is not in this graph (simplified away), None when nothing is recorded."""
    d = n.meta.get(PROVENANCE)
    if d is None:
        return None
    f = interned(d)
    if f is None:
        return "?"
    return f"%{ids[f]}" if f in ids else f"{f.op} (not in this graph)"


def _forward_id(n: Node, ids: Mapping[Node, int]) -> Optional[int]:
    """The id of the forward node whose backward step built ``n``, when it is in this graph."""
    f = interned(n.meta[PROVENANCE]) if PROVENANCE in n.meta else None
    return ids[f] if f is not None and f in ids and f is not n else None


def numbered(outputs) -> tuple[list[Node], dict[Node, int]]:
    order = toposort(_outs(outputs))
    return order, {n: i for i, n in enumerate(order)}


def to_networkx(outputs, simplify: bool = True) -> nx.DiGraph:
    """The graph of ``outputs`` as a ``networkx.DiGraph``.

    Nodes are integers in topological order with attributes ``op, shape, dtype, attrs, name, role,
    label, node, differentiates`` (``role``: see :func:`role`; ``node``: the symdiff tensor; ``differentiates``:
    the id of the forward node a backward node differentiates, else None), ``meta`` (a copy of the node's
    metadata: a param's ``init``, names) and, for constants, ``value``; an edge u -> v has ``args``: the
    argument positions of u in v. The graph attribute ``outputs`` lists the output node ids.
    :func:`symdiff.from_networkx` is the inverse.
    """
    outs = _outs(outputs)
    if simplify:
        outs = _simplify(outs)
    order, ids = numbered(outs)
    fwd = forward_nodes(outs)
    import networkx as nx

    G = nx.DiGraph(outputs=[ids[o] for o in outs])
    for n in order:
        r = role(n, fwd)
        G.add_node(ids[n], op=n.op, shape=n.shape, dtype=n.dtype, attrs={k: v for k, v in n.attrs.items() if k != "value"},
                   name=n.name, role=r, grad_of=n.meta.get("grad_of"), label=attr_text(n), node=n,
                   meta=dict(n.meta), differentiates=_forward_id(n, ids) if r in ("backward", "grad") else None)
        if n.op == "const":
            G.nodes[ids[n]]["value"] = n.value
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


_STYLE = {  # DOT attributes by role; "labels" is an integer input
    "input": 'shape=box, style="rounded,filled", fillcolor="#dddddd"',
    "labels": 'shape=box, style="rounded,filled,dashed", fillcolor="#eeeeee"',
    "param": 'shape=box, style="rounded,filled", fillcolor="#ffe08a"',
    "const": 'shape=plaintext, fontcolor="#555555"',
    "forward": 'shape=ellipse, style=filled, fillcolor="#cfe2ff"',
    "backward": 'shape=ellipse, style=filled, fillcolor="#fbe3e3"',
    "grad": 'shape=ellipse, style=filled, fillcolor="#f28b82"',
}
_LEGEND = [("input", "input"), ("param", "parameter"), ("forward", "forward op"),
           ("backward", "backward op"), ("grad", "gradient output")]


def _esc(s: str) -> str:
    return s.replace("\\", "\\\\").replace('"', '\\"')  # a quote would end the DOT string


def node_label(n: Node, i: int, r: str, names: Mapping[Node, str], ids: Optional[Mapping[Node, int]] = None) -> list[str]:
    """The lines of node %i's label: id and op (or leaf name), dtype and shape, ``d%k`` (the forward node a
    backward node differentiates); a gradient's name."""
    typ = f"{n.dtype}{list(n.shape)}"
    if n.op in ("input", "param"):
        return [f"%{i} {n.name}", f"{n.op}, {typ}"]
    if n.op == "const":
        return [f"%{i} {const_text(n)}"] + ([] if n.size > 6 else [typ])
    attrs = attr_text(n)
    parts = [f"%{i} {n.op}" + (f"[{attrs}]" if attrs else ""), typ]
    if r in ("backward", "grad") and ids is not None:
        of = differentiates(n, ids)
        if of:
            parts.append(f"d{of}")
    if r == "grad":
        parts.insert(0, n.meta.get("name") or f"d/d{n.meta['grad_of']}")
    elif n in names:
        parts.insert(0, names[n])
    return parts


_CLUSTER_COLOR = {"forward": "#4a78c2", "backward": "#c24a4a"}


def part_of(order: list[Node], roles: Mapping[Node, str]) -> dict[Node, str]:
    """Each node's group: ``forward`` (forward ops), ``backward`` (backward ops and gradients), or ``""`` for
    inputs and parameters; a constant joins the group of its users when they are all in one group."""
    users: dict[Node, set] = {}
    for n in order:
        for i in n.inputs:
            users.setdefault(i, set()).add(n)
    out: dict[Node, str] = {}
    for n in order:
        r = roles[n]
        out[n] = "" if r in ("input", "param", "const") else ("forward" if r == "forward" else "backward")
    for n in order:
        if roles[n] == "const":
            parts = {out[u] for u in users.get(n, ())}
            out[n] = parts.pop() if len(parts) == 1 else ""
    return out


def to_dot(outputs, simplify: bool = True, title: str = "", *, names: Optional[Mapping[Node, str]] = None,
           legend: bool = False) -> str:
    """Graphviz DOT text of the graph of ``outputs``.

    Each node shows its ``%id`` (as :func:`format_graph` numbers it), op with attributes (or leaf name),
    dtype and shape. Inputs are grey boxes (integer labels dashed), parameters yellow boxes, forward ops
    blue, backward ops light red, gradient outputs red and named after what they differentiate
    (``dloss/dW1``); outputs have a double border; edges of multi-operand ops carry the operand position.
    Constants show their values when small (:func:`const_text`), else dtype, shape and range. When the graph
    has a backward part, forward and backward are two clusters and each backward node names the forward
    node it differentiates (``d%5``, :func:`differentiates`).
    ``names`` labels chosen nodes (e.g. ``{loss: "loss"}``); ``legend`` adds a colour key."""
    outs = _outs(outputs)
    if simplify:
        outs = _simplify(outs)
    order, ids = numbered(outs)
    fwd = forward_nodes(outs)
    roles = {n: role(n, fwd) for n in order}
    out_ids = {ids[o] for o in outs}
    lines = ["digraph symdiff {", "  rankdir=TB;", '  node [fontname="Helvetica", fontsize=11];',
             '  edge [color="#555555", arrowsize=0.6];']
    if title:
        lines.append(f'  label="{_esc(title)}"; labelloc=t; fontname="Helvetica"; fontsize=16;')
    groups = part_of(order, roles)
    for part in ("", "forward", "backward"):
        members = [n for n in order if groups[n] == part]
        if part and len(set(groups.values()) - {""}) > 1:
            lines.append(f'  subgraph cluster_{part} {{ label="{part}"; fontsize=14; style="rounded,dashed"; '
                         f'color="{_CLUSTER_COLOR[part]}";')
        for n in members:
            r = roles[n]
            style = "labels" if r == "input" and n.dtype.startswith("int") else r
            label = "\\n".join(_esc(p) for p in node_label(n, ids[n], r, names or {}, ids))
            periph = ", peripheries=2" if ids[n] in out_ids else ""
            lines.append(f'  n{ids[n]} [label="{label}", {_STYLE[style]}{periph}];')
        if part and len(set(groups.values()) - {""}) > 1:
            lines.append("  }")
    for n in order:
        for pos, i in enumerate(n.inputs):
            lines.append(f"  n{ids[i]} -> n{ids[n]}" + (f' [label="{pos}", fontsize=8]' if len(n.inputs) > 1 else "") + ";")
    if legend:
        has_bwd = bool({"backward", "grad"} & set(roles.values()))
        keys = [(r, t) for r, t in _LEGEND if has_bwd or r not in ("backward", "grad")]
        lines.append('  subgraph cluster_legend { label="legend"; fontsize=16; style=dashed; color="#aaaaaa";')
        for k, (r, text) in enumerate(keys):
            lines.append(f'    legend{k} [label="{text}", {_STYLE[r]}, fontsize=14];')
        lines.append("    " + " -> ".join(f"legend{k}" for k in range(len(keys))) + " [style=invis];")
        lines.append("  }")
    lines.append("}")
    return "\n".join(lines)


def count_nodes(outputs) -> int:
    return len(toposort(_outs(outputs)))


__all__ = ["node_label", "to_networkx", "format_graph", "to_dot", "count_nodes", "role", "forward_nodes", "attr_text", "numbered",
           "const_text", "differentiates", "part_of"]
