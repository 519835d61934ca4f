"""The graph IR: interned nodes (identity is structure), weak cleanup, thread-safe creation, `==` elementwise,
pickling/copying return the interned node."""
from __future__ import annotations

import copy
import gc
import pickle
import threading
import uuid
import weakref

import numpy as np
import pytest

import symdiff as sd
from symdiff.ir import Node, interned, interned_count, leaves, toposort
from symdiff.nn import init_values

from conftest import evaluate


def _fresh(prefix: str = "x") -> str:
    """A leaf name no other test uses (so the nodes built from it are new to the intern table)."""
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


def _graph(name: str):
    x = sd.input(name, (3, 4), "float64")
    W = sd.param(name + "_W", (4, 2), "float64")
    return sd.sum(sd.tanh(x @ W) * 2.0 + sd.exp(-(x @ W)), axis=1)


# -- structural identity -----------------------------------------------------------------------------------------

def test_equal_structure_is_the_same_object():
    nm = _fresh()
    a, b = _graph(nm), _graph(nm)
    assert a is b and hash(a) == hash(b) and a.digest == b.digest
    for p, q in zip(toposort([a]), toposort([b])):
        assert p is q
    assert sd.const(2.0, "float32") is sd.const(np.float32(2.0), "float32")
    assert interned(a.digest) is a


def test_different_structure_is_a_different_object():
    x = sd.input(_fresh(), (3,), "float64")
    assert (x * 2.0) is not (2.0 * x)  # operand order is structure
    assert sd.const(2.0, "float32") is not sd.const(2.0, "float64")
    assert sd.input("same", (3,), "float32") is not sd.input("same", (4,), "float32")
    assert len({x * 2.0, x * 2.0, x * 3.0}) == 2


def test_direct_construction_is_interned():
    x = sd.input(_fresh(), (2,), "float64")
    n = Node("neg", (x,), {}, (2,), "float64")
    assert n is -x


# -- weak references: the table does not keep graphs alive ------------------------------------------------------

def test_unreferenced_nodes_leave_the_table():
    nm = _fresh()
    out = _graph(nm)
    digests = [n.digest for n in toposort([out]) if n.op != "const"]  # constants may be shared with other graphs
    ref = weakref.ref(out)
    assert all(interned(d) is not None for d in digests)
    before = interned_count()
    del out
    gc.collect()
    assert ref() is None
    assert all(interned(d) is None for d in digests)
    assert interned_count() <= before - len(digests)


def test_a_live_input_keeps_only_itself_and_its_inputs():
    x = sd.input(_fresh(), (3,), "float64")
    y = sd.exp(x)
    dy = y.digest
    del y
    gc.collect()
    assert interned(dy) is None and interned(x.digest) is x  # users do not stay alive through their inputs


# -- thread-safe creation ---------------------------------------------------------------------------------------

def test_threads_building_the_same_graph_get_the_same_objects():
    nm = _fresh("t")
    n_threads = 16
    barrier = threading.Barrier(n_threads)
    results: list = [None] * n_threads
    errors: list = []

    def build(k: int) -> None:
        try:
            barrier.wait()
            outs = [_graph(nm) for _ in range(20)]
            results[k] = (outs[0], toposort([outs[0]]), outs)
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=build, args=(k,)) for k in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    first, order, _ = results[0]
    for out, nodes, outs in results:
        assert out is first and all(o is first for o in outs)
        assert len(nodes) == len(order) and all(p is q for p, q in zip(nodes, order))


# -- == / != are elementwise comparisons (bool nodes), not structural equality --------------------------------------

@pytest.mark.parametrize("compare, op", [(lambda a, b: a == b, "equal"), (lambda a, b: a != b, "not_equal"),
                                         (lambda a, b: a == 1.0, "equal"), (lambda a, b: 1.0 == a, "equal"),
                                         (lambda a, b: a != 0, "not_equal")])
def test_comparisons_build_elementwise_nodes(compare, op):
    a = sd.input(_fresh(), (3,), "float64")
    b = sd.exp(a)
    out = compare(a, b)
    assert out.op == op and out.dtype == "bool" and out.shape == (3,)
    with pytest.raises(TypeError, match="no truth value"):
        bool(out)
    assert (a == None) is False and (a != "text") is True  # noqa: E711 - not tensors: plain identity semantics


def test_membership_by_identity_and_dicts_still_work():
    x = sd.input(_fresh(), (3,), "float64")
    y = sd.exp(x)
    assert x in [x] and x in (x,)  # identity comes first in containment
    with pytest.raises(TypeError):
        x in [y, x]  # noqa: B015 - a list scan compares with == and must not pass silently
    d = {x: 1, y: 2}
    assert d[sd.exp(x)] == 2 and sd.exp(x) in d and len({x, y, sd.exp(x)}) == 2


# -- metadata -----------------------------------------------------------------------------------------------------

def test_latest_declaration_of_metadata_wins():
    nm = _fresh("w")
    p1 = sd.param(nm, (2,), "float64", init=np.ones(2))
    p2 = sd.param(nm, (2,), "float64", init=np.full(2, 3.0))
    assert p1 is p2
    np.testing.assert_array_equal(init_values(p1)[nm], [3.0, 3.0])


def test_duplicate_leaf_names_with_different_types_still_raise():
    nm = _fresh()
    a, b = sd.input(nm, (3,), "float64"), sd.input(nm, (3,), "float32")
    with pytest.raises(ValueError, match="used twice"):
        leaves([a + sd.astype(b, "float64")])


# -- pickling and copying ---------------------------------------------------------------------------------------

def test_pickle_round_trip_returns_the_interned_nodes():
    nm = _fresh()
    out = _graph(nm)
    back = pickle.loads(pickle.dumps(out))
    assert back is out
    assert copy.copy(out) is out and copy.deepcopy(out) is out
    assert copy.deepcopy([out, {"k": out}])[1]["k"] is out


def test_pickle_rebuilds_a_dropped_graph_with_its_metadata():
    nm = _fresh("w")
    x = sd.input(nm + "_x", (2, 3), "float64")
    W = sd.param(nm, (3,), "float64", init=np.arange(3.0))
    data = pickle.dumps(sd.sum(x * W))
    digest = sd.sum(x * W).digest
    del x, W
    gc.collect()
    assert interned(digest) is None
    back = pickle.loads(data)
    assert back.digest == digest and interned(digest) is back and pickle.loads(data) is back
    (W2,) = [n for n in toposort([back]) if n.op == "param"]
    np.testing.assert_array_equal(init_values(back)[nm], [0.0, 1.0, 2.0])
    xv = np.arange(6.0).reshape(2, 3)
    np.testing.assert_allclose(evaluate(back, **{nm + "_x": xv, nm: np.arange(3.0)}), np.sum(xv * np.arange(3.0)))
    assert W2.name == nm


def test_rebuild_replaces_bottom_up_and_keeps_untouched_nodes():
    import symdiff as sd
    from symdiff.ir import rebuild
    x = sd.input("rb_x", (3,), "float64")
    a = sd.exp(x)
    b = sd.sum(sd.tanh(x))
    y = a * 2.0
    seen = []

    def rule(n, ins):
        seen.append(n.op)
        return sd.log(ins[0]) if n.op == "exp" else None
    out_y, out_b = rebuild([y, b], rule)
    assert out_b is b  # nothing below it changed: the same interned node
    assert out_y is sd.log(x) * 2.0  # exp replaced, its user re-applied to the new input
    assert seen.count("exp") == 1  # one walk, each node once
    v = np.array([0.5, 1.0, 2.0])
    np.testing.assert_allclose(sd.compile(out_y, "numpy")(rb_x=v), np.log(v) * 2.0)
