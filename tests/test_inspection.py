"""Inspection: networkx view, the text listing, Graphviz DOT."""
from __future__ import annotations

import re

import networkx as nx
import numpy as np
import pytest

import symdiff as sd
from symdiff.ir import const, toposort


def two_layer(n=4, d=6, h=5, c=3):
    """The lecture's two-layer network (784-256-10 in the lecture; small here)."""
    X = sd.input("X", (n, d))
    y = sd.input("y", (n,), "int64")
    W1, b1 = sd.param("W1", (d, h)), sd.param("b1", (h,))
    W2, b2 = sd.param("W2", (h, c)), sd.param("b2", (c,))
    loss = sd.cross_entropy(sd.relu(X @ W1 + b1) @ W2 + b2, y)
    return loss, [W1, b1, W2, b2]


def test_to_networkx_nodes_edges_attributes():
    loss, params = two_layer()
    G = sd.to_networkx(loss)
    assert isinstance(G, nx.DiGraph) and nx.is_directed_acyclic_graph(G)
    nodes = toposort([sd.simplify(loss)])
    assert G.number_of_nodes() == len(nodes)
    assert list(G.nodes) == list(range(len(nodes)))  # ids in topological order
    for u, v in G.edges:
        assert u < v
    by_name = {d["name"]: i for i, d in G.nodes(data=True) if d["name"]}
    assert {"X", "y", "W1", "b1", "W2", "b2"} <= set(by_name)
    w1 = G.nodes[by_name["W1"]]
    assert (w1["op"], w1["shape"], w1["dtype"], w1["role"]) == ("param", (6, 5), "float32", "param")
    assert G.nodes[by_name["y"]]["dtype"] == "int64" and G.nodes[by_name["X"]]["role"] == "input"
    out = G.graph["outputs"]
    assert len(out) == 1 and G.nodes[out[0]]["shape"] == () and G.nodes[out[0]]["op"] == "neg"
    # the first matmul consumes X (argument 0) and W1 (argument 1)
    (mm,) = [v for v in G.successors(by_name["W1"]) if G.nodes[v]["op"] == "matmul"]
    assert G.edges[by_name["X"], mm]["args"] == [0] and G.edges[by_name["W1"], mm]["args"] == [1]
    assert G.nodes[mm]["shape"] == (4, 5)
    # every edge mirrors an input of the symdiff node
    for v, d in G.nodes(data=True):
        assert sorted(u for u in G.predecessors(v)) == sorted({G_id for G_id, dd in G.nodes(data=True)
                                                               if any(dd["node"] is i for i in d["node"].inputs)})
    ops = [d["op"] for _, d in G.nodes(data=True)]
    assert ops.count("matmul") == 2 and "log_softmax" in ops and "pick" in ops


def test_to_networkx_repeated_argument_and_simplify_flag():
    x = sd.input("x", (3,), "float64")
    G = sd.to_networkx(x * x, simplify=False)
    assert G.edges[0, 1]["args"] == [0, 1] and G.nodes[1]["op"] == "mul"
    Gs = sd.to_networkx(x * x)
    assert [d["op"] for _, d in Gs.nodes(data=True)] == ["input", "square"]


LINE = re.compile(r"^%(\d+)\s+= (?:(input|param) '(\w+)'|(\w+)(?:\[([^\]]*)\])?((?: %\d+)*)) : "
                  r"(float32|float64|int32|int64)\[([\d, ]*)\](?:   # (.+))?$")


def _parse_listing(text):
    lines = text.splitlines()
    assert lines[-1].startswith("return ")
    rows = []
    for ln in lines[:-1]:
        m = LINE.match(ln)
        assert m, f"bad listing line: {ln!r}"
        ident, leaf_op, leaf_name, op, attrs, ins, dtype, shape, note = m.groups()
        rows.append({"id": int(ident), "op": leaf_op or op, "name": leaf_name, "attrs": attrs,
                     "inputs": [int(i) for i in ins.split(" %")[1:]] if ins else [],
                     "dtype": dtype, "shape": tuple(int(s) for s in shape.split(",") if s.strip()), "note": note})
    returns = [int(r) for r in re.findall(r"%(\d+)", lines[-1])]
    return rows, returns


def test_format_graph_forward_and_backward():
    loss, params = two_layer()
    text = sd.format_graph(loss)
    rows, returns = _parse_listing(text)
    G = sd.to_networkx(loss)
    assert len(rows) == G.number_of_nodes()
    assert [r["id"] for r in rows] == list(range(len(rows)))
    for r in rows:
        d = G.nodes[r["id"]]
        assert (r["op"], r["shape"], r["dtype"]) == (d["op"], d["shape"], d["dtype"])
        assert sorted(set(r["inputs"])) == sorted(G.predecessors(r["id"]))
        assert all(i < r["id"] for i in r["inputs"])
    assert returns == [rows[-1]["id"]] and rows[-1]["op"] == "neg"
    assert "%2   = matmul %0 %1 : float32[4, 5]" in text.splitlines()

    grads = sd.grad(loss, params)
    btext = sd.format_graph([loss, *grads])
    brows, breturns = _parse_listing(btext)
    assert len(breturns) == 5 and len(brows) == len(toposort(sd.simplify([loss, *grads])))
    notes = {brows[i]["note"]: brows[i] for i in breturns[1:]}
    assert set(notes) == {"dloss/dW1", "dloss/db1", "dloss/dW2", "dloss/db2"}
    assert notes["dloss/dW1"]["op"] == "matmul" and notes["dloss/dW1"]["shape"] == (6, 5)
    assert notes["dloss/db2"]["shape"] == (3,)
    backward_ops = {r["op"] for r in brows}
    assert {"softmax", "one_hot", "step", "transpose"} <= backward_ops  # d log_softmax, d pick, d relu, d matmul
    assert btext.splitlines()[: len(rows)] == text.splitlines()[:-1]  # the forward listing is a prefix


def test_format_graph_unsimplified_is_longer():
    x = sd.input("x", (2,), "float64")
    e = sd.sum(x * 1.0 + 0.0)
    assert len(sd.format_graph(e, simplify=False).splitlines()) > len(sd.format_graph(e).splitlines())
    assert "const[1]" in sd.format_graph(e, simplify=False)


def _check_dot_syntax(dot):
    lines = dot.splitlines()
    assert lines[0] == "digraph symdiff {" and lines[-1] == "}"
    opens = [ln for ln in lines[1:-1] if ln.endswith("{") or "{ " in ln]
    assert all(re.match(r'^  subgraph cluster_(forward|backward) \{ label="\w+"; fontsize=14; style="rounded,dashed"; '
                        r'color="#\w+";$', ln) for ln in opens), opens
    assert dot.count("{") == dot.count("}") == 1 + len(opens) and lines.count("  }") == len(opens)
    defined = set()
    node_re = re.compile(r'^  (n\d+) \[label="((?:[^"\\]|\\.)*)"(?:, [\w]+=(?:"[^"]*"|[\w#.]+))*\];$')
    edge_re = re.compile(r'^  (n\d+) -> (n\d+)(?: \[label="\d+", fontsize=8\])?;$')
    for ln in lines[1:-1]:
        if m := node_re.match(ln):
            defined.add(m.group(1))
        elif m := edge_re.match(ln):
            assert m.group(1) in defined and m.group(2) in defined
        elif ln not in opens and ln != "  }":
            assert re.match(r'^  (rankdir=TB|(node|edge) \[.*\]|label="(?:[^"\\]|\\.)*"; labelloc=t; fontname="\w+"; '
                            r'fontsize=16);$', ln), ln
    return defined


def test_to_dot_is_valid_and_colored_by_role():
    loss, params = two_layer()
    grads = sd.grad(loss, params)
    dot = sd.to_dot([loss, *grads], title='two-layer "MLP"')
    defined = _check_dot_syntax(dot)
    G = sd.to_networkx([loss, *grads])
    assert len(defined) == G.number_of_nodes()
    assert dot.count(" -> ") == sum(len(d["node"].inputs) for _, d in G.nodes(data=True))
    colors = {"#dddddd": "input", "#eeeeee": "input", "#ffe08a": "param", "#cfe2ff": "forward",
              "#fbe3e3": "backward", "#f28b82": "grad"}
    for i, d in G.nodes(data=True):
        (line,) = [ln for ln in dot.splitlines() if ln.startswith(f"  n{i} [")]
        assert re.search(rf'label="(d\w+/d\w+\\n)?%{i} ', line)  # the id format_graph gives the node
        if d["role"] == "const":
            assert "shape=plaintext" in line
        else:
            assert colors[re.search(r'fillcolor="(#\w+)"', line).group(1)] == d["role"]
    roles = [d["role"] for _, d in G.nodes(data=True)]
    assert roles.count("grad") == 4 and dot.count('fillcolor="#f28b82"') == 4  # the four gradients
    assert roles.count("backward") >= 5  # softmax, one_hot, step, transposes of the backward pass
    assert dot.count('fillcolor="#eeeeee"') == 1  # the integer labels y (dashed box)
    assert dot.count("peripheries=2") == 5  # outputs
    assert "dloss/dW1" in dot and 'label="two-layer \\"MLP\\""' in dot
    assert "legend" not in dot


def test_to_dot_names_and_legend():
    loss, params = two_layer()
    dot = sd.to_dot([loss, *sd.grad(loss, params)], names={sd.simplify(loss): "loss"}, legend=True)
    assert "gradient output" in dot and "backward op" in dot and "subgraph cluster_legend" in dot
    (line,) = [ln for ln in dot.splitlines() if "peripheries=2" in ln and "#cfe2ff" in ln]
    assert line.split('label="')[1].startswith("loss\\n%")  # the forward output, named
    fwd_only = sd.to_dot(loss, legend=True)  # no backward part: no backward entries in the key
    assert "backward op" not in fwd_only and "gradient output" not in fwd_only and "#fbe3e3" not in fwd_only


def test_to_dot_of_gradients_alone_draws_their_inputs_as_forward():
    """With no forward output to tell the parts apart, only the gradients themselves are red."""
    loss, params = two_layer()
    dot = sd.to_dot(sd.grad(loss, params))
    assert dot.count('fillcolor="#f28b82"') == 4 and "#fbe3e3" not in dot


def test_to_dot_parses_with_pydot():
    pydot = pytest.importorskip("pydot")
    loss, params = two_layer()
    (g,) = pydot.graph_from_dot_data(sd.to_dot([loss, *sd.grad(loss, params)], title='a "quoted" title'))
    assert g.get_name() == "symdiff" and len(g.get_edges()) > 20


def test_inspection_does_not_tag_forward_nodes_as_gradients():
    x, y = sd.input("x", (3,), "float64"), sd.input("y", (3,), "float64")
    e = sd.exp(x)
    sd.grad(sd.sum(e), x)  # the gradient is exp(x) itself
    sd.grad(sd.sum(x * y), y)  # the gradient is the leaf x itself
    G = sd.to_networkx(sd.sum(e * y))
    assert {d["role"] for _, d in G.nodes(data=True)} == {"input", "forward"}
    assert "d/d" not in sd.to_dot(sd.sum(e * y))
    assert "#" not in sd.format_graph(sd.sum(e * y))
    np.testing.assert_allclose(sd.compile(sd.grad(sd.sum(e), x))(x=np.zeros(3)), np.ones(3))


def test_backward_nodes_record_the_forward_node_they_differentiate():
    """autodiff tags what each backward step builds (meta only: the digest is unchanged); to_dot says d%k."""
    loss, params = two_layer()
    before = {n.digest for n in toposort(sd.grad(loss, params))}
    outs = sd.simplify([loss, *sd.grad(loss, params)])
    assert {n.digest for n in toposort(outs[1:])} == before  # same structure: identity untouched
    order, ids = sd.inspection.numbered(outs)
    fwd = sd.inspection.forward_nodes(outs)
    back = [n for n in order if sd.inspection.role(n, fwd) in ("backward", "grad")]
    tagged = {n: sd.inspection.differentiates(n, ids) for n in back}
    assert all(tagged[n] for n in back if n.op != "const"), [n for n in back if not tagged[n]]
    assert all(order[int(t[1:])] in fwd for t in tagged.values() if t)  # each names a forward node
    assert len({t for t in tagged.values() if t}) >= 5  # matmuls, adds, relu, log_softmax, pick, ...
    dot = sd.to_dot(outs)
    assert "subgraph cluster_forward" in dot and "subgraph cluster_backward" in dot
    (w1_line,) = [ln for ln in dot.splitlines() if "dloss/dW1" in ln]
    mm = order[int(re.search(r"\\nd%(\d+)", w1_line).group(1))]
    assert mm.op == "matmul" and mm in fwd  # dW1 = X^T @ g differentiates the first matmul
    assert "cluster" not in sd.to_dot(loss)  # forward only: one group, no clusters


def test_to_dot_constants_show_small_values_and_the_type_of_large_ones():
    x = sd.input("x", (3,), "float64")
    small = const(np.array([0.5, 1.0 / 3.0, 2.0]))
    big = const(np.linspace(-1.0, 1.0, 64 * 6).reshape(64, 6))
    dot = sd.to_dot([x * small, sd.sum(big)], simplify=False)
    assert "[0.5, 0.333, 2]" in dot
    assert "float64[64, 6] in [-1, 1]" in dot and "array[64, 6]" not in dot
    assert sd.inspection.const_text(const(np.arange(6).reshape(2, 3))) == "[0, 1, 2, 3, 4, 5] as [2, 3]"
