"""``symdiff graph MODEL.py[:NAME]``: the forward (or forward+backward) graph as a text listing or
Graphviz DOT (``symdiff.inspection.to_dot``), SVG or PNG, or one self-contained HTML page
(``symdiff.inspection_html``: pan/zoom, search, collapsible groups, node details); without Graphviz ``dot``
an image request writes the DOT source instead and exits 3, a page uses the built-in layered layout."""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

from .common import EXIT_OK, ToolMissing, UsageError, add_graph_choice, add_model_argument, chosen_graph

FORMATS = {".txt": "text", ".dot": "dot", ".gv": "dot", ".svg": "svg", ".png": "png",  # by -o suffix
           ".html": "html", ".htm": "html"}


def render_image(text: str, fmt: str, out: Path) -> None:
    """``dot -T<fmt> -o out``, or the DOT source next to ``out`` and :class:`ToolMissing`."""
    dot = shutil.which("dot")
    if dot is None:
        dot_file = out.with_suffix(".dot")
        dot_file.write_text(text)
        raise ToolMissing(f"Graphviz 'dot' not found on PATH: cannot render {fmt}; wrote the DOT source to "
                          f"{dot_file} instead (install Graphviz, e.g. apt-get install graphviz, then: "
                          f"dot -T{fmt} {dot_file} -o {out})")
    r = subprocess.run([dot, f"-T{fmt}", "-o", str(out)], input=text, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"dot -T{fmt} failed: {r.stderr.strip()}")


def run(a: argparse.Namespace) -> int:
    """The ``graph`` subcommand."""
    from ..inspection import count_nodes, format_graph, to_dot
    fmt = a.format or (FORMATS.get(Path(a.output).suffix.lower(), "text") if a.output else "text")
    m, outs, fwd = chosen_graph(a)
    if fmt in ("svg", "png", "html") and not a.output:  # an image or page goes to a file: MODEL.svg, MODEL.html
        a.output = f"{m.path.stem}.{fmt}"
    what = ("forward+backward" if a.backward else "forward") + (", raw" if a.raw else ", simplified")
    title = f"{m.path.name}:{m.name} ({what})"
    if fmt == "html":
        from ..inspection_html import LAYOUTS, render_html
        page, used = render_html(outs, simplify=False, title=title, names={fwd[0]: m.name})
        Path(a.output).write_text(page)
        how = LAYOUTS[used] + ("" if used == "dot" else " (Graphviz dot not found)")
        print(f"wrote {a.output} (html, {what}, {count_nodes(outs)} nodes, layout: {how})", file=sys.stderr)
        return EXIT_OK
    if fmt == "text":
        text = f"# {title}: {count_nodes(outs)} nodes\n" + format_graph(outs, simplify=False) + "\n"
    else:
        text = to_dot(outs, simplify=False, title=title, names={fwd[0]: m.name}, legend=True) + "\n"
    if fmt in ("text", "dot"):
        if a.output:
            Path(a.output).write_text(text)
            print(f"wrote {a.output} ({fmt}, {what})", file=sys.stderr)
        else:
            sys.stdout.write(text)
        return EXIT_OK
    render_image(text, fmt, Path(a.output))
    print(f"wrote {a.output} ({fmt}, {what})", file=sys.stderr)
    return EXIT_OK


def add_parser(sub, common: argparse.ArgumentParser) -> None:
    """Register ``graph`` and its options."""
    g = sub.add_parser("graph", parents=[common], help="print or draw the forward (and backward) graph",
                       description="The graph of NAME as a text listing (SSA, ids %k as used by `explain`) "
                                   "or Graphviz DOT/SVG/PNG, or one self-contained HTML page to explore big graphs "
                                   "(pan/zoom, search, collapsible forward/backward groups, node details "
                                   "with SymPy formulas).")
    add_model_argument(g)
    add_graph_choice(g, "include the gradients (forward+backward graph)")
    g.add_argument("--format", choices=("text", "dot", "svg", "png", "html"),
                   help="default: from the -o suffix (.txt .dot .svg .png .html), else text")
    g.add_argument("-o", "--output", metavar="FILE",
                   help="output file (default: stdout for text/dot, MODEL.svg / MODEL.png / MODEL.html)")
    g.set_defaults(func=run)
