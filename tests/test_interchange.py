"""Graph interchange: sd.from_networkx (inverse of sd.to_networkx), sd.save / sd.load (JSON node-link data)."""
from __future__ import annotations

import gc
import json
import math

import networkx as nx
import numpy as np
import pytest

import symdiff as sd
from symdiff.interchange import FORMAT, VERSION, decode_value, encode_value, from_json_data, to_json_data
from symdiff.ir import toposort

from test_ops import API_CASES, CASES


def mlp():
    X = sd.input("X", (4, 6))
    y = sd.input("y", (4,), "int64")
    W1 = sd.param("W1", (6, 5), init="kaiming")
    b1 = sd.param("b1", (5,), init=np.arange(5.0))
    W2 = sd.param("W2", (5, 3), init=sd.nn.init.xavier_uniform)
    b2 = sd.param("b2", (3,))
    loss = sd.cross_entropy(sd.relu(X @ W1 + b1) @ W2 + b2 * 0.5, y)
    return [loss, *sd.grad(loss, [W1, b1, W2, b2])]


def test_to_networkx_from_networkx_round_trip_is_identity():
    outs = mlp()
    back = sd.from_networkx(sd.to_networkx(outs, simplify=False))
    assert all(a is b for a, b in zip(back, outs)) and len(back) == len(outs)
    simp = sd.simplify(outs)
    assert all(a is b for a, b in zip(sd.from_networkx(sd.to_networkx(outs)), simp))


def test_save_load_same_nodes_and_metadata(tmp_path):
    outs = mlp()
    p = tmp_path / "g.json"
    sd.save(outs, p)
    data = json.loads(p.read_text())
    assert data["graph"]["format"] == FORMAT and data["graph"]["version"] == VERSION
    assert nx.node_link_graph(data, edges="edges").number_of_nodes() == len(toposort(outs))  # plain node-link data
    loaded = sd.load(p)
    assert isinstance(loaded, list) and all(a is b for a, b in zip(loaded, outs))
    sd.save(outs[0], p)
    assert sd.load(p) is outs[0]  # a single tensor saved comes back as one


def test_load_after_the_original_is_gone_rebuilds_equal_graph(tmp_path):
    outs = mlp()
    digests = [o.digest for o in outs]
    vals = {"X": np.random.default_rng(0).standard_normal((4, 6)).astype(np.float32), "y": np.array([0, 2, 1, 2]),
            "W1": np.full((6, 5), 0.1, np.float32), "b1": np.zeros(5, np.float32),
            "W2": np.full((5, 3), -0.2, np.float32), "b2": np.ones(3, np.float32)}
    expected = sd.compile(outs, "numpy")(**vals)
    p = tmp_path / "g.json"
    sd.save(outs, p)
    del outs
    gc.collect()
    assert all(sd.ir.interned(d) is None for d in digests)
    loaded = sd.load(p)
    assert [o.digest for o in loaded] == digests
    for a, b in zip(sd.compile(loaded, "numpy")(**vals), expected):
        np.testing.assert_array_equal(a, b)
    params = {n.name: n for n in toposort(loaded) if n.op == "param"}
    assert params["W1"].meta["init"] == "kaiming"
    np.testing.assert_array_equal(params["b1"].meta["init"], np.arange(5.0))
    assert params["W2"].meta["init"] is sd.nn.init.xavier_uniform
    assert "grad_of" in loaded[1].meta  # gradient outputs keep their labels


def test_unstorable_init_is_dropped_with_a_warning(tmp_path):
    w = sd.param("w", (3,), init=lambda shape, rng: np.ones(shape))
    with pytest.warns(UserWarning, match="param 'w': init is not stored"):
        sd.save(sd.sum(w * w), tmp_path / "g.json")
    assert sd.load(tmp_path / "g.json") is sd.sum(w * w)
    assert callable(w.meta["init"])  # loading does not clobber the live node's metadata


def test_hand_built_digraph_declares_a_model():
    G = nx.DiGraph()
    G.add_node("x", op="input", shape=(2, 3), dtype="float64")
    G.add_node("W", op="param", shape=(3, 4), dtype="float64", init="zeros")
    G.add_node("b", op="const", value=np.arange(4.0))
    G.add_node("h", op="matmul")
    G.add_node("z", op="add")
    G.add_node("y", op="tanh", output=True)
    G.add_node("s", op="sum", attrs={"axes": [0, 1], "keepdims": False}, output=True)
    G.add_edges_from([("x", "h", {"args": [0]}), ("W", "h", {"args": [1]}), ("h", "z", {"args": [0]}),
                      ("b", "z", {"args": [1]}), ("z", "y"), ("y", "s")])
    y, s = sd.from_networkx(G)
    assert [n.meta["init"] for n in toposort([y]) if n.op == "param"] == ["zeros"]
    x, W = sd.input("x", (2, 3), "float64"), sd.param("W", (3, 4), "float64")
    ref = sd.tanh(x @ W + sd.const(np.arange(4.0)))
    assert y is ref and s is sd.sum(ref)
    xv, Wv = np.ones((2, 3)), np.full((3, 4), 0.1)
    got = sd.compile([y, s], "numpy")(x=xv, W=Wv)
    np.testing.assert_allclose(got[0], np.tanh(xv @ Wv + np.arange(4.0)))
    # DSL names work as op names; outputs may be given explicitly
    G.nodes["z"]["op"] = "subtract"
    (z,) = sd.from_networkx(G, outputs=["z"])
    assert z is x @ W - sd.const(np.arange(4.0))
    G.add_node("c32", op="cast", attrs={"dtype": np.float32})  # a NumPy type is read as its dtype name
    G.add_edge("z", "c32")
    (c32,) = sd.from_networkx(G, outputs=["c32"])
    assert c32 is sd.astype(z, "float32")


@pytest.mark.parametrize("value", [
    None, True, False, 0, -7, 2**70, 1.5, -0.0, math.inf, -math.inf, "s", (1, 2), (), ((0, 1), (2,)), [1, (2, 3)],
    {"a": 1, 3: (4,)}, np.float32(0.1), np.int64(5), np.bool_(True), np.dtype("float32"), np.dtype("int64"),
    np.arange(6, dtype=np.float32).reshape(2, 3), np.array([np.nan, -np.inf, 1e-310]), np.array([True, False]),
    np.zeros((0, 3)), np.array(3, np.int32), slice(1, None, -2), (Ellipsis, None, slice(None))])
def test_values_encode_losslessly(value):
    text = json.dumps(encode_value(value), allow_nan=False)
    back = decode_value(json.loads(text))
    assert type(back) is type(value)
    if isinstance(value, np.ndarray):
        assert back.dtype == value.dtype and back.shape == value.shape
        np.testing.assert_array_equal(back, value)
    else:
        assert back == value or (isinstance(value, float) and math.copysign(1, back) == math.copysign(1, value))


def test_nan_float_encodes():
    assert math.isnan(decode_value(json.loads(json.dumps(encode_value(math.nan)))))


def _leaves_for(values):
    return [(sd.param if k == "w" else sd.input)(k, v.shape, v.dtype.name) for k, v in values.items()]


@pytest.mark.parametrize("name", sorted(CASES) + [f"api:{k}" for k in sorted(API_CASES)])
def test_every_op_round_trips_through_json(name):
    """Every op-table entry (and DSL function) survives save/load, by its generic attributes."""
    case = API_CASES[name[4:]] if name.startswith("api:") else CASES[name]
    out = case.build(*_leaves_for(case.gen(np.random.default_rng(0))))
    text = json.dumps(to_json_data(out), allow_nan=False)
    assert from_json_data(json.loads(text)) is out
    (back,) = sd.from_networkx(sd.to_networkx(out, simplify=False))
    assert back is out


def _saved(tmp_path):
    x = sd.input("x", (2, 3), "float64")
    p = tmp_path / "g.json"
    sd.save(sd.sum(sd.exp(x) * 2.0, axis=1), p)
    return p, json.loads(p.read_text())


def _write(tmp_path, data):
    p = tmp_path / "bad.json"
    p.write_text(data if isinstance(data, str) else json.dumps(data))
    return p


def test_load_errors_name_the_problem(tmp_path):
    p, good = _saved(tmp_path)
    bad = lambda **ch: {**good, **ch}  # noqa: E731
    cases = [
        ("not json at all", "not JSON"),
        ({"nodes": [], "links": []}, "not a symdiff graph file"),
        ([1, 2, 3], "not a symdiff graph file"),
        (bad(graph={**good["graph"], "version": VERSION + 1}), "newer symdiff"),
        (bad(graph={**good["graph"], "version": "1"}), "bad format version"),
        ({k: v for k, v in good.items() if k != "nodes"}, "'nodes', 'edges'"),
        (bad(nodes=[{k: v for k, v in n.items() if k != "op"} for n in good["nodes"]]), "missing or malformed"),
        (bad(nodes=[{**n, "op": "frobnicate"} if n["op"] == "exp" else n for n in good["nodes"]]), "unknown op 'frobnicate'"),
        (bad(nodes=[{**n, "shape": [3, 3]} if n["op"] == "exp" else n for n in good["nodes"]]),
         r"stored shape \(3, 3\) does not match the inferred shape \(2, 3\)"),
        (bad(nodes=[{**n, "shape": [2, 5]} if n["op"] == "input" else n for n in good["nodes"]]),
         r"node 1 \(exp\): stored shape \(2, 3\) does not match the inferred shape \(2, 5\)"),
        (bad(nodes=[{**n, "attrs": {"axes": {"$tuple": [4]}, "keepdims": False}} if n["op"] == "sum" else n
                    for n in good["nodes"]]), r"sum of float64\[2, 3\]\): ValueError: sum: axis 4 is out of bounds"),
        (bad(nodes=[{**n, "shape": [2, -1]} if n["op"] == "input" else n for n in good["nodes"]]), "non-negative ints"),
        (bad(edges=good["edges"] + [{"source": len(good["nodes"]) - 1, "target": 1, "args": [1]}]), "cycle"),
        (bad(edges=good["edges"] + [{"source": 0, "target": 99, "args": [0]}]), "not in the file"),
        (bad(edges=[{**e, "args": [5]} for e in good["edges"]]), "argument positions"),
        (bad(nodes=[{**n, "attrs": {"value": {"$array": "<f8", "shape": [7], "data": "AAAA"}}} if n["op"] == "const"
                    else n for n in good["nodes"]]), "const|malformed"),
        (bad(nodes=[{**n, "attrs": {"axes": {"$bogus": 1}, "keepdims": False}} if n["op"] == "sum" else n
                    for n in good["nodes"]]), "unknown value tag"),
        (bad(nodes=[{**n, "meta": {"init": {"$function": "os:system"}}} if n["op"] == "input" else n
                    for n in good["nodes"]]), "outside symdiff"),
    ]
    for data, msg in cases:
        with pytest.raises(ValueError, match=msg):
            sd.load(_write(tmp_path, data))
    assert sd.load(_write(tmp_path, good)) is sd.load(p)


def test_from_networkx_errors():
    G = nx.DiGraph()
    G.add_node("a", op="input", shape=(3,))
    G.add_node("b", op="input", shape=(3,))
    G.add_node("c", op="add")
    G.add_edges_from([("a", "c"), ("b", "c")])
    with pytest.raises(ValueError, match="has no 'args'"):
        sd.from_networkx(G)
    G.add_node("d", op="input")
    with pytest.raises(ValueError, match="needs a 'shape'"):
        sd.from_networkx(G, outputs=["d"])
    with pytest.raises(ValueError, match="'zz' is not a node"):
        sd.from_networkx(G, outputs=["zz"])
    with pytest.raises(ValueError, match="expected a networkx.DiGraph"):
        sd.from_networkx(nx.Graph())
    H = nx.DiGraph()
    H.add_node(0, op="input", name="x", shape=(2,))
    H.add_node(1, op="exp", dtype="float64")
    H.add_edge(0, 1)
    with pytest.raises(ValueError, match="stored dtype float64 does not match the inferred dtype float32"):
        sd.from_networkx(H)


def test_multidigraph_parallel_edges_are_arguments():
    G = nx.MultiDiGraph()
    G.add_node("x", op="input", shape=(3,), dtype="float64")
    G.add_node("m", op="mul")
    G.add_edge("x", "m", arg=0)
    G.add_edge("x", "m", arg=1)
    x = sd.input("x", (3,), "float64")
    assert sd.from_networkx(G)[0] is x * x
