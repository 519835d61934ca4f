"""The graph as one self-contained HTML page (``symdiff graph --format html``): pan and zoom, search by %id,
name or op, forward and backward as collapsible groups, and a click on a node shows its op, shape, dtype,
inputs, users, the forward node it differentiates and, for an elementwise derivative node, the SymPy formula
it came from (what ``symdiff explain`` prints).

Layout: Graphviz ``dot -Tsvg`` of :func:`symdiff.to_dot` when ``dot`` is on PATH, else a built-in layered
layout (rows by depth, computed here); the page says which. Everything (SVG, CSS, script, node records as
JSON) is inlined: viewing it needs no network access."""
from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
from typing import Mapping, Optional

from .formulas import explain_lines, is_elementwise
from .inspection import attr_text, const_text, differentiates, forward_nodes, node_label, numbered, part_of, role, to_dot
from .inspection_page import CSS, SCRIPT, TEMPLATE
from .ir import PROVENANCE, Node, interned
from .simplify import simplify as _simplify

FILL = {"input": "#dddddd", "param": "#ffe08a", "const": "#ffffff", "forward": "#cfe2ff", "backward": "#fbe3e3",
        "grad": "#f28b82"}  # the colours of symdiff.to_dot, by role
LAYOUTS = {"dot": "Graphviz dot", "layered": "built-in layered layout"}


def graph_data(outputs, simplify: bool = True, names: Optional[Mapping[Node, str]] = None) -> dict:
    """The page's node records: ``{"nodes": [{id, op, name, role, group, shape, dtype, attrs, value, label,
    inputs, users, output, d_of, d_of_text, formula, derivative}], "outputs": [ids]}``.

    ``d_of``: the id of the forward node a backward node differentiates (``d_of_text`` when that node is not in
    the graph); ``formula``: :func:`symdiff.formulas.explain_lines` of an elementwise node; ``derivative``: the
    same for the elementwise forward node whose SymPy derivative a backward node was built from."""
    outs = [outputs] if isinstance(outputs, Node) else list(outputs)
    if simplify:
        outs = _simplify(outs)
    order, ids = numbered(outs)
    fwd = forward_nodes(outs)
    roles = {n: role(n, fwd) for n in order}
    groups = part_of(order, roles)
    users: dict[int, list[int]] = {ids[n]: [] for n in order}
    for n in order:
        for i in dict.fromkeys(n.inputs):
            users[ids[i]].append(ids[n])
    formulas: dict[Node, list[str]] = {}

    def formula(n: Node) -> list[str]:
        if n not in formulas:
            formulas[n] = explain_lines(n, ids)
        return formulas[n]

    out_ids = [ids[o] for o in outs]
    records = []
    for n in order:
        i, r = ids[n], roles[n]
        of = interned(n.meta[PROVENANCE]) if r in ("backward", "grad") and PROVENANCE in n.meta else None
        of_in = of is not None and of in ids
        records.append({
            "id": i, "op": n.op, "name": n.name, "role": r, "group": groups[n] or "leaves", "shape": list(n.shape),
            "dtype": n.dtype, "attrs": "" if n.op == "const" else attr_text(n),
            "value": const_text(n) if n.op == "const" else None, "label": node_label(n, i, r, names or {}, ids),
            "inputs": [ids[x] for x in n.inputs], "users": users[i], "output": i in out_ids,
            "d_of": ids[of] if of_in else None,
            "d_of_text": (differentiates(n, ids) if r in ("backward", "grad") and not of_in else None),
            "formula": formula(n) if is_elementwise(n) and r == "forward" else None,
            "derivative": formula(of) if of_in and is_elementwise(of) else None})
    return {"nodes": records, "outputs": out_ids}


def dot_svg(dot_text: str) -> Optional[str]:
    """Graphviz's SVG of ``dot_text`` (the ``<svg>`` element only), or None when ``dot`` is not on PATH."""
    dot = shutil.which("dot")
    if dot is None:
        return None
    r = subprocess.run([dot, "-Tsvg"], input=dot_text, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"dot -Tsvg failed: {r.stderr.strip()}")
    return r.stdout[r.stdout.index("<svg"):]


def layered_svg(data: dict) -> str:
    """A layered layout without Graphviz: leaves in the top row, then the forward group by depth, then the
    backward group by depth (depth counted within the group); in a row, nodes are ordered by the mean position
    of their inputs. Same SVG structure as Graphviz's (``g.node``/``g.edge``/``g.cluster`` with titles)."""
    nodes = {r["id"]: r for r in data["nodes"]}
    depth: dict[int, int] = {}
    for i, r in nodes.items():  # ids are topological
        same = [depth[j] for j in r["inputs"] if nodes[j]["group"] == r["group"]]
        depth[i] = 1 + max(same) if same else 0
    base = {"leaves": 0}
    top_fwd = max((depth[i] for i, r in nodes.items() if r["group"] == "forward"), default=-1)
    base["forward"], base["backward"] = 1, 2 + top_fwd
    rows: dict[int, list[int]] = {}
    for i, r in nodes.items():
        rows.setdefault(base[r["group"]] + depth[i], []).append(i)
    size = {i: (max(len(s) for s in r["label"]) * 6.6 + 18, 15 * len(r["label"]) + 10) for i, r in nodes.items()}
    pos: dict[int, tuple[float, float]] = {}
    y, width = 20.0, 0.0
    for k in sorted(rows):
        row = sorted(rows[k], key=lambda i: (sum(pos[j][0] for j in nodes[i]["inputs"] if j in pos) /
                                             max(1, sum(j in pos for j in nodes[i]["inputs"])), i))
        x = 20.0
        for i in row:
            w, h = size[i]
            pos[i] = (x + w / 2, y + h / 2)
            x += w + 24
        width = max(width, x)
        y += max(size[i][1] for i in row) + 46
    parts = ['<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" '
             'orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="#555"/></marker></defs>']
    for g in ("forward", "backward"):
        members = [i for i in nodes if nodes[i]["group"] == g]
        if members and {r["group"] for r in nodes.values()} >= {"forward", "backward"}:
            x0 = min(pos[i][0] - size[i][0] / 2 for i in members) - 12
            y0 = min(pos[i][1] - size[i][1] / 2 for i in members) - 22
            x1 = max(pos[i][0] + size[i][0] / 2 for i in members) + 12
            y1 = max(pos[i][1] + size[i][1] / 2 for i in members) + 10
            color = "#4a78c2" if g == "forward" else "#c24a4a"
            parts.append(f'<g class="cluster"><title>cluster_{g}</title><rect x="{x0:.1f}" y="{y0:.1f}" '
                         f'width="{x1 - x0:.1f}" height="{y1 - y0:.1f}" rx="8" fill="none" stroke="{color}" '
                         f'stroke-dasharray="5,3"/><text x="{x0 + 8:.1f}" y="{y0 + 16:.1f}" font-size="14" '
                         f'fill="{color}">{g}</text></g>')
    for i, r in nodes.items():
        for j in dict.fromkeys(r["inputs"]):
            (ax, ay), (bx, by) = pos[j], pos[i]
            ay, by = ay + size[j][1] / 2, by - size[i][1] / 2
            parts.append(f'<g class="edge"><title>n{j}-&gt;n{i}</title><path d="M{ax:.1f},{ay:.1f} C{ax:.1f},'
                         f'{ay + 30:.1f} {bx:.1f},{by - 30:.1f} {bx:.1f},{by:.1f}" fill="none" stroke="#555" '
                         f'marker-end="url(#arrow)"/></g>')
    for i, r in nodes.items():
        (cx, cy), (w, h) = pos[i], size[i]
        rx = 6 if r["role"] in ("input", "param", "const") else h / 2
        stroke = ' stroke-width="3"' if r["output"] else ""
        dash = ' stroke-dasharray="4,2"' if r["role"] == "input" and r["dtype"].startswith("int") else ""
        text = "".join(f'<tspan x="{cx:.1f}" dy="{15 if k else 0}">{html.escape(s)}</tspan>'
                       for k, s in enumerate(r["label"]))
        parts.append(f'<g class="node"><title>n{i}</title><rect x="{cx - w / 2:.1f}" y="{cy - h / 2:.1f}" '
                     f'width="{w:.1f}" height="{h:.1f}" rx="{rx:.1f}" fill="{FILL[r["role"]]}" stroke="#333"'
                     f'{stroke}{dash}/><text text-anchor="middle" font-size="11" font-family="Helvetica" '
                     f'y="{cy - h / 2 + 17:.1f}">{text}</text></g>')
    return (f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width:.0f} {y:.0f}"><g class="graph">'
            + "\n".join(parts) + "</g></svg>")


def render_html(outputs, simplify: bool = True, title: str = "", *, names: Optional[Mapping[Node, str]] = None,
                layout: str = "auto") -> tuple[str, str]:
    """(page, layout used: ``"dot"`` or ``"layered"``). ``layout``: ``"auto"`` (Graphviz when installed),
    ``"dot"`` (an error without it) or ``"layered"``."""
    if layout not in ("auto", *LAYOUTS):
        raise ValueError(f"render_html: layout must be 'auto', 'dot' or 'layered', got {layout!r}")
    outs = [outputs] if isinstance(outputs, Node) else list(outputs)
    if simplify:
        outs = _simplify(outs)
    data = graph_data(outs, simplify=False, names=names)
    svg = None if layout == "layered" else dot_svg(to_dot(outs, simplify=False, names=names))
    if svg is None and layout == "dot":
        raise RuntimeError("render_html: layout='dot' needs Graphviz 'dot' on PATH (apt-get install graphviz)")
    used = "layered" if svg is None else "dot"
    svg = svg if svg is not None else layered_svg(data)
    groups = [g for g in ("forward", "backward") if any(r["group"] == g for r in data["nodes"])]
    checks = " ".join(f'<label><input type="checkbox" class="group" data-group="{g}" checked> {g}</label>'
                      for g in groups)
    legend = "".join(f'<span style="background:{FILL[r]}">{t}</span>' for r, t in
                     (("input", "input"), ("param", "param"), ("forward", "forward"), ("backward", "backward"),
                      ("grad", "gradient")) if r in {n["role"] for n in data["nodes"]})
    payload = json.dumps(data).replace("</", "<\\/")  # never ends the <script> element early
    values = {"CSS": CSS, "SCRIPT": SCRIPT, "GROUPS": checks, "LEGEND": legend, "NODES": str(len(data["nodes"])),
              "LAYOUT_TEXT": LAYOUTS[used], "LAYOUT": used, "TITLE": html.escape(title or "symdiff graph"),
              "SVG": svg, "DATA": payload}
    page = re.sub(r"__([A-Z_]+)__", lambda m: values[m.group(1)], TEMPLATE)  # one pass: values are not rescanned
    return page, used


def to_html(outputs, simplify: bool = True, title: str = "", *, names: Optional[Mapping[Node, str]] = None,
            layout: str = "auto") -> str:
    """One self-contained HTML page of the graph of ``outputs`` (see the module docstring)."""
    return render_html(outputs, simplify, title, names=names, layout=layout)[0]


__all__ = ["graph_data", "dot_svg", "layered_svg", "render_html", "to_html", "FILL", "LAYOUTS"]
