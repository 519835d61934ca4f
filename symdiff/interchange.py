"""Graph interchange: a networkx DAG -> symdiff nodes (:func:`from_networkx`), and JSON files (:func:`save`,
:func:`load`).

A graph is declared node by node: each networkx node carries ``op`` (an op-table name, or a DSL name such as
``"subtract"``), ``attrs`` (the op's attributes), and for leaves ``name``/``shape``/``dtype`` (inputs, params),
``value`` (constants) or ``init`` (params); an edge ``u -> v`` carries ``args``, the argument positions of
``u`` in ``v``. Shapes and dtypes of op nodes are *inferred* by the op table (``symdiff.ir.apply``); a stored
one is only checked. The schema is documented in docs/dsl.md ("Graph interchange").

Files are networkx node-link data (``{"directed", "multigraph", "graph", "nodes", "edges"}``) with
``graph = {"format": "symdiff.graph", "version": 1, "outputs": [...], "single": bool}``. Attribute values are
JSON where JSON is lossless; other values are tagged objects ``{"$tuple": [...]}``, ``{"$float": "nan"}``,
``{"$array": "<f8", "shape": [...], "data": base64}``, ``{"$scalar": "float32", "v": ...}``,
``{"$dtype": "int64"}``, ``{"$dict": [[k, v], ...]}``, ``{"$slice": [start, stop, step]}``, ``{"$ellipsis": true}``,
``{"$function": "symdiff.nn.init:zeros"}``.
Loading rebuilds through the interning constructor, so a loaded graph *is* the saved one while that is alive.
"""
from __future__ import annotations

import base64
import importlib
import json
import math
import numbers
import os
import warnings
from typing import TYPE_CHECKING, Any, Hashable, Iterable, Optional, Sequence, Union

import numpy as np

from . import dims as _dims
from . import dtypes as _dt
from .inspection import to_networkx
from .ir import Node, apply, const
from .optable import OPS

if TYPE_CHECKING:  # networkx is imported when a graph is read or built (~0.13 s of `import symdiff`)
    import networkx as nx

FORMAT = "symdiff.graph"
VERSION = 1
LEAF_OPS = ("input", "param", "const")

Outputs = Union[Node, Sequence[Node]]


# -- values <-> JSON ------------------------------------------------------------------------------------------

_NONFINITE = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}


def _function_ref(f: Any) -> Optional[str]:
    """``module:qualname`` of a symdiff function (an initialiser), when importing it gives ``f`` back."""
    mod, qual = getattr(f, "__module__", None), getattr(f, "__qualname__", "")
    if not mod or not (mod == "symdiff" or mod.startswith("symdiff.")) or "<" in qual:
        return None
    try:
        return f"{mod}:{qual}" if _resolve_function(f"{mod}:{qual}") is f else None
    except ValueError:
        return None


def _resolve_function(ref: str) -> Any:
    mod, _, qual = ref.partition(":")
    if not (mod == "symdiff" or mod.startswith("symdiff.")):
        raise ValueError(f"function reference {ref!r} is outside symdiff; only symdiff functions are loaded")
    try:
        obj: Any = importlib.import_module(mod)
        for part in qual.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError):
        raise ValueError(f"function reference {ref!r} does not name a symdiff function") from None
    return obj


def encode_value(v: Any, where: str = "value") -> Any:
    """A Python/NumPy attribute value as JSON data, losslessly (see the module docstring)."""
    if v is None or isinstance(v, (bool, str)):
        return v
    if isinstance(v, np.generic):
        if v.dtype.kind not in "biuf":
            raise TypeError(f"{where}: cannot store a NumPy scalar of dtype {v.dtype}")
        return {"$scalar": v.dtype.name, "v": encode_value(v.item(), where)}
    if isinstance(v, _dims.Dim):
        return {"$dim": str(v)}
    if isinstance(v, numbers.Integral):
        return int(v)
    if isinstance(v, float):
        return v if math.isfinite(v) else {"$float": "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf")}
    if isinstance(v, tuple):
        return {"$tuple": [encode_value(x, where) for x in v]}
    if isinstance(v, list):
        return [encode_value(x, where) for x in v]
    if isinstance(v, dict):
        return {"$dict": [[encode_value(k, where), encode_value(x, where)] for k, x in v.items()]}
    if isinstance(v, np.ndarray):
        if v.dtype.kind not in "biuf":
            raise TypeError(f"{where}: cannot store an array of dtype {v.dtype}")
        data = base64.b64encode(np.ascontiguousarray(v).tobytes()).decode("ascii")
        return {"$array": v.dtype.str, "shape": list(v.shape), "data": data}
    if isinstance(v, slice):
        return {"$slice": [encode_value(x, where) for x in (v.start, v.stop, v.step)]}
    if v is Ellipsis:
        return {"$ellipsis": True}
    if isinstance(v, np.dtype):
        return {"$dtype": v.str if v.kind not in "biuf" else v.name}
    if callable(v):
        ref = _function_ref(v)
        if ref is None:
            raise TypeError(f"{where}: cannot store the function {v!r} (only functions of symdiff are stored by name)")
        return {"$function": ref}
    raise TypeError(f"{where}: cannot store a value of type {type(v).__name__} ({v!r})")


def decode_value(d: Any, where: str = "value") -> Any:
    """The inverse of :func:`encode_value`; raises ValueError on malformed data."""
    if d is None or isinstance(d, (bool, str, int, float)):
        return d
    if isinstance(d, list):
        return [decode_value(x, where) for x in d]
    if not isinstance(d, dict) or len(d) == 0:
        raise ValueError(f"{where}: malformed value {d!r}")
    try:
        if "$tuple" in d:
            return tuple(decode_value(x, where) for x in d["$tuple"])
        if "$float" in d:
            return _NONFINITE[d["$float"]]
        if "$scalar" in d:
            return np.dtype(d["$scalar"]).type(decode_value(d["v"], where))
        if "$dict" in d:
            return {_hashable(decode_value(k, where)): decode_value(x, where) for k, x in d["$dict"]}
        if "$array" in d:
            dt = np.dtype(d["$array"])
            shape = tuple(int(s) for s in d["shape"])
            arr = np.frombuffer(base64.b64decode(d["data"], validate=True), dtype=dt)
            return arr.reshape(shape).copy()
        if "$dim" in d:
            return _dims.dim(d["$dim"])
        if "$slice" in d:
            return slice(*(decode_value(x, where) for x in d["$slice"]))
        if "$ellipsis" in d:
            return Ellipsis
        if "$dtype" in d:
            return np.dtype(d["$dtype"])
        if "$function" in d:
            return _resolve_function(d["$function"])
    except ValueError as e:
        raise ValueError(f"{where}: malformed value {_short(d)}: {e}") from None
    except (KeyError, TypeError, AttributeError) as e:
        raise ValueError(f"{where}: malformed value {_short(d)}: {type(e).__name__}: {e}") from None
    raise ValueError(f"{where}: unknown value tag in {_short(d)}")


def _hashable(k: Any) -> Hashable:
    return tuple(_hashable(x) for x in k) if isinstance(k, list) else k


def _short(d: Any) -> str:
    s = repr(d)
    return s if len(s) <= 80 else s[:77] + "..."


# -- networkx -> nodes ------------------------------------------------------------------------------------------

def _tuples(v: Any) -> Any:
    """Attribute lists as the tuples the DSL builds (axes=[0, 1] -> (0, 1)) and NumPy scalar types as dtype
    names (np.float32 -> "float32"); arrays and scalars as they are."""
    if isinstance(v, (list, tuple)):
        return tuple(_tuples(x) for x in v)
    if isinstance(v, type) and issubclass(v, np.generic):
        return np.dtype(v).name
    return v


def _op_name(nid, op: Any) -> str:
    if not isinstance(op, str):
        raise ValueError(f"node {nid!r}: missing or invalid 'op' ({op!r}); every node needs an op name")
    if op in OPS:
        return op
    by_api = {d.api: d.name for d in OPS.values() if d.api}
    if op in by_api:
        return by_api[op]
    raise ValueError(f"node {nid!r}: unknown op {op!r}")


def _shape(nid, op: str, shape: Any) -> tuple:
    if isinstance(shape, numbers.Integral) and not isinstance(shape, bool):
        shape = (shape,)
    if not isinstance(shape, (list, tuple)) or not all(
            isinstance(s, str) or (isinstance(s, numbers.Integral) and not isinstance(s, bool) and s >= 0) for s in shape):
        raise ValueError(f"node {nid!r} ({op}): shape must be a tuple of non-negative ints or dimension names, "
                         f"got {shape!r}")
    try:
        return tuple(_dims.as_dim(s) for s in shape)
    except (ValueError, TypeError) as e:
        raise ValueError(f"node {nid!r} ({op}): {e}") from None


def _dtype(nid, op: str, dtype: Any) -> str:
    try:
        return _dt.normalize(dtype)
    except TypeError as e:
        raise ValueError(f"node {nid!r} ({op}): {e}") from None


def _leaf(nid, op: str, data: dict) -> Node:
    attrs = dict(data.get("attrs") or {})
    meta = dict(data.get("meta") or {})
    if op == "const":
        value = data.get("value", attrs.get("value"))
        if value is None:
            raise ValueError(f"node {nid!r} (const): a constant needs a 'value'")
        dt = data.get("dtype")
        try:
            if isinstance(value, np.ndarray) and (dt is None or _dt.normalize(dt) == _dt.normalize(value.dtype)):
                arr = value.copy()
                arr.setflags(write=False)
                node = Node("const", (), {"value": arr}, arr.shape, _dt.normalize(value.dtype), meta or None)
            else:
                node = const(value, None if dt is None else _dt.normalize(dt))
                if meta:
                    node.meta.update(meta)
        except (TypeError, ValueError) as e:
            raise ValueError(f"node {nid!r} (const): bad value {_short(value)}: {e}") from None
        if "shape" in data and data["shape"] is not None and _shape(nid, op, data["shape"]) != node.shape:
            raise ValueError(f"node {nid!r} (const): stored shape {tuple(data['shape'])} does not match the "
                             f"value's shape {node.shape}")
        return node
    name = attrs.get("name", data.get("name"))
    if name is None and isinstance(nid, str):
        name = nid
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"node {nid!r} ({op}): a leaf needs a 'name' that is a Python identifier, got {name!r}")
    if "shape" not in data:
        raise ValueError(f"node {nid!r} ({op} {name!r}): a leaf needs a 'shape'")
    shape = _shape(nid, op, data["shape"])
    dt = _dtype(nid, op, data.get("dtype") or "float32")
    if op == "param" and not _dt.is_float(dt):
        raise ValueError(f"node {nid!r} (param {name!r}): parameters must be float32/float64, got {dt}")
    if op == "param" and "init" in data:
        meta["init"] = data["init"]
    return Node(op, (), {"name": name}, shape, dt, meta or None)


def _ordered_inputs(G: nx.DiGraph, nid, op: str, built: dict) -> list:
    """The inputs of node ``nid`` in argument order, from the edges' ``args`` (or ``arg``) positions."""
    slots: dict[int, Hashable] = {}
    in_edges = list(G.in_edges(nid, data=True))
    for u, _, e in in_edges:
        pos = e.get("args", e.get("arg"))
        if pos is None:
            if len(in_edges) != 1:
                raise ValueError(f"node {nid!r} ({op}): edge {u!r} -> {nid!r} has no 'args' (argument positions); "
                                 f"required when a node has several inputs")
            pos = [0]
        pos = [pos] if isinstance(pos, numbers.Integral) else list(pos)
        for p in pos:
            if not isinstance(p, numbers.Integral) or isinstance(p, bool) or p < 0:
                raise ValueError(f"node {nid!r} ({op}): bad argument position {p!r} on edge {u!r} -> {nid!r}")
            if p in slots:
                raise ValueError(f"node {nid!r} ({op}): argument {p} is given twice (edges from {slots[p]!r} and {u!r})")
            slots[int(p)] = u
    if sorted(slots) != list(range(len(slots))):
        raise ValueError(f"node {nid!r} ({op}): argument positions {sorted(slots)} are not 0..{len(slots) - 1}")
    return [built[slots[p]] for p in range(len(slots))]


def _build(G: nx.DiGraph, nid, built: dict) -> Node:
    data = G.nodes[nid]
    op = _op_name(nid, data.get("op"))
    if op in LEAF_OPS:
        if G.in_degree(nid):
            raise ValueError(f"node {nid!r} ({op}): a leaf has no inputs, but {G.in_degree(nid)} edge(s) point to it")
        return _leaf(nid, op, data)
    inputs = _ordered_inputs(G, nid, op, built)
    attrs = data.get("attrs") or {}
    if not isinstance(attrs, dict):
        raise ValueError(f"node {nid!r} ({op}): 'attrs' must be a dict, got {attrs!r}")
    try:
        node = apply(op, inputs, **{k: _tuples(v) for k, v in attrs.items()})
    except Exception as e:  # the op's own shape rule says what is wrong
        shapes = ", ".join(f"{i.dtype}{list(i.shape)}" for i in inputs)
        raise ValueError(f"node {nid!r} ({op} of {shapes or 'no inputs'}): {type(e).__name__}: {e}") from e
    if data.get("shape") is not None and _shape(nid, op, data["shape"]) != node.shape:
        raise ValueError(f"node {nid!r} ({op}): stored shape {tuple(data['shape'])} does not match the inferred "
                         f"shape {node.shape}")
    if data.get("dtype") is not None and _dtype(nid, op, data["dtype"]) != node.dtype:
        raise ValueError(f"node {nid!r} ({op}): stored dtype {data['dtype']} does not match the inferred "
                         f"dtype {node.dtype}")
    meta = dict(data.get("meta") or {})
    for key in ("name", "grad_of"):
        if data.get(key) is not None:
            meta.setdefault(key, data[key])
    if meta:
        node.meta.update(meta)
    return node


def _output_ids(G: nx.DiGraph, outputs) -> list:
    if outputs is None:
        outputs = G.graph.get("outputs")
    if outputs is None:
        outputs = [v for v, d in G.nodes(data=True) if d.get("output")]
    if not outputs:
        outputs = [v for v in G.nodes if G.out_degree(v) == 0]
    if not isinstance(outputs, (list, tuple)):
        outputs = [outputs]
    for o in outputs:
        if o not in G:
            raise ValueError(f"output {o!r} is not a node of the graph")
    return list(outputs)


def from_networkx(G: nx.DiGraph, outputs: Optional[Iterable[Hashable]] = None) -> list[Node]:
    """The symdiff tensors of the outputs of a networkx DAG (the inverse of :func:`symdiff.to_networkx`).

    Outputs: ``outputs`` (node ids), else the graph attribute ``G.graph["outputs"]``, else the nodes with
    ``output=True``, else the sinks; returns a list of tensors in that order. Node/edge schema: docs/dsl.md.
    Raises ValueError naming the node on an unknown op, a cycle, missing fields or inconsistent shapes."""
    import networkx as nx

    if not isinstance(G, nx.DiGraph):
        raise ValueError(f"from_networkx: expected a networkx.DiGraph, got {type(G).__name__}")
    if not nx.is_directed_acyclic_graph(G):
        cycle = nx.find_cycle(G)
        raise ValueError(f"from_networkx: the graph has a cycle: {' -> '.join(repr(u) for u, _ in cycle)} "
                         f"-> {cycle[0][0]!r}")
    out_ids = _output_ids(G, None if outputs is None else list(outputs))
    needed = set(out_ids)
    for o in out_ids:
        needed |= nx.ancestors(G, o)
    built: dict = {}
    for nid in nx.topological_sort(G):
        if nid in needed:
            built[nid] = _build(G, nid, built)
    return [built[o] for o in out_ids]


# -- files ---------------------------------------------------------------------------------------------------

def _node_record(nid: int, d: dict) -> dict:
    n: Node = d["node"]
    where = f"node {nid} ({n.op})"
    rec = {"id": nid, "op": n.op, "shape": [s if isinstance(s, int) else str(s) for s in n.shape], "dtype": n.dtype,
           "attrs": {k: encode_value(v, f"{where} attribute {k!r}") for k, v in n.attrs.items()}}
    meta = {}
    for k, v in n.meta.items():
        try:
            meta[k] = encode_value(v, f"{where} meta {k!r}")
        except TypeError as e:
            label = f"{n.op} {n.name!r}" if n.is_leaf else where
            warnings.warn(f"save: {label}: {k} is not stored ({e})", stacklevel=3)
    if meta:
        rec["meta"] = meta
    return rec


def to_json_data(outputs: Outputs) -> dict:
    """The node-link JSON data of the graph of ``outputs`` (what :func:`save` writes)."""
    single = isinstance(outputs, Node)
    outs = [outputs] if single else list(outputs)
    if not all(isinstance(o, Node) for o in outs):
        raise TypeError("save: outputs must be a symdiff tensor or a list of them")
    G = to_networkx(outs, simplify=False)
    nodes = []
    for nid, d in G.nodes(data=True):
        try:
            nodes.append(_node_record(nid, d))
        except TypeError as e:
            raise ValueError(f"save: {e}") from None
    edges = [{"source": u, "target": v, "args": list(e["args"])} for u, v, e in G.edges(data=True)]
    return {"directed": True, "multigraph": False,
            "graph": {"format": FORMAT, "version": VERSION, "outputs": list(G.graph["outputs"]), "single": single},
            "nodes": nodes, "edges": edges}


def from_json_data(data: Any, source: str = "data") -> Outputs:
    """The tensors stored in node-link JSON ``data`` (the inverse of :func:`to_json_data`)."""
    if not isinstance(data, dict) or not isinstance(data.get("graph"), dict) or data["graph"].get("format") != FORMAT:
        raise ValueError(f"{source}: not a symdiff graph file (expected node-link JSON with graph.format == {FORMAT!r})")
    head = data["graph"]
    version = head.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ValueError(f"{source}: damaged symdiff graph file: bad format version {version!r}")
    if version > VERSION:
        raise ValueError(f"{source}: written by a newer symdiff (format version {version}); this version reads "
                         f"format versions up to {VERSION}")
    edges = data.get("edges", data.get("links"))
    if not isinstance(data.get("nodes"), list) or not isinstance(edges, list) or not isinstance(head.get("outputs"), list):
        raise ValueError(f"{source}: damaged symdiff graph file: 'nodes', 'edges' and graph.outputs must be lists")
    import networkx as nx

    G = nx.DiGraph()
    try:
        for rec in data["nodes"]:
            nid = rec["id"]
            if nid in G:
                raise ValueError(f"node id {nid!r} appears twice")
            where = f"node {nid!r}"
            G.add_node(nid, op=rec["op"], shape=rec["shape"], dtype=rec["dtype"],
                       attrs={k: decode_value(v, f"{where} attribute {k!r}") for k, v in rec["attrs"].items()},
                       meta={k: decode_value(v, f"{where} meta {k!r}") for k, v in rec.get("meta", {}).items()})
        for e in edges:
            u, v = e["source"], e["target"]
            if u not in G or v not in G:
                raise ValueError(f"edge {u!r} -> {v!r} names a node that is not in the file")
            G.add_edge(u, v, args=e["args"])
    except (KeyError, TypeError, AttributeError) as e:
        raise ValueError(f"{source}: damaged symdiff graph file: missing or malformed field "
                         f"({type(e).__name__}: {e})") from None
    except ValueError as e:
        raise ValueError(f"{source}: damaged symdiff graph file: {e}") from None
    try:
        outs = from_networkx(G, head["outputs"])
    except ValueError as e:
        raise ValueError(f"{source}: damaged symdiff graph file: {e}") from None
    return outs[0] if head.get("single") and len(outs) == 1 else outs


def save(outputs: Outputs, path: Union[str, os.PathLike]) -> None:
    """Write the graph of ``outputs`` (a tensor or a list) to ``path`` as JSON (networkx node-link data with a
    format name and version). Param ``init`` arrays, names and symdiff initialisers are kept; an init that
    cannot be stored (a lambda) is dropped with a warning."""
    data = to_json_data(outputs)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(data, f, allow_nan=False, separators=(",", ":"))


def load(path: Union[str, os.PathLike]) -> Outputs:
    """The tensor (or list of tensors) saved at ``path`` by :func:`save`: the same interned nodes, so
    ``sd.load(p) is y`` while ``y`` is alive. Raises ValueError on a foreign, newer or damaged file."""
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{os.fspath(path)}: not a symdiff graph file (not JSON: {e})") from None
    return from_json_data(data, os.fspath(path))


__all__ = ["from_networkx", "save", "load", "to_json_data", "from_json_data", "encode_value", "decode_value",
           "FORMAT", "VERSION"]
