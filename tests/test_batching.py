"""``batch`` (symdiff/batching.py) over the whole op suite, and ``sd.vmap``.

The property test builds every op-suite case (tests/test_ops.py CASES and API_CASES), batches its leaves
with B = 3 random replacements and compares the batched graph with a loop over the examples, on the
NumPy backend: per-op coverage of the batching rules at the cost of the interpreter.
"""
from __future__ import annotations

import numpy as np
import pytest

import symdiff as sd
from symdiff.batching import batch, batch_with_flags
from symdiff.batching_rules import BATCH_RULES, FALLBACK_OPS, LEAF_OPS, rule_for, unstack_rule
from symdiff.ir import toposort
from symdiff.optable import OPS

from test_ops import API_CASES, CASES

B = 3
EVERY = {**CASES, **{f"sd.{k}": c for k, c in API_CASES.items()}}


def _leaf(k, v):
    return (sd.param if k == "w" else sd.input)(k, v.shape, v.dtype.name)


def _draws(case, seed):
    return [case.gen(np.random.default_rng(seed + b)) for b in range(B)]


def test_every_op_has_a_rule_or_is_a_known_fallback():
    for op, opdef in OPS.items():
        if op in LEAF_OPS:
            continue
        rule = rule_for(op)
        assert (rule is unstack_rule) == (op in FALLBACK_OPS), f"{op}: falls back without being in FALLBACK_OPS"
        assert opdef.elementwise or op in BATCH_RULES, f"{op}: a tensor op without a batching rule"
    assert FALLBACK_OPS == {"rand_uniform"}  # keep it short: docs/batching.md lists it


@pytest.mark.parametrize("which", ["all", "first"])
@pytest.mark.parametrize("name", sorted(EVERY))
def test_batch_matches_a_loop_over_examples(name, which):
    """out[b] == the case's graph with its leaves set to example b (all leaves batched, or only the first)."""
    case = EVERY[name]
    draws = _draws(case, 10)
    nodes = {k: _leaf(k, v) for k, v in draws[0].items()}
    out = case.build(*nodes.values())
    keys = list(nodes) if which == "all" else list(nodes)[:1]
    subst, bvals = {}, {}
    for k in keys:
        rep = sd.input(f"{k}_batched", (B,) + nodes[k].shape, nodes[k].dtype)
        subst[nodes[k]] = rep
        bvals[rep.name] = np.stack([d[k] for d in draws])
    (bout,) = batch([out], subst, B)
    assert bout.shape == (B,) + out.shape and bout.dtype == out.dtype
    assert not set(subst) & set(toposort([bout])), "a substituted leaf is still in the batched graph"
    rest = {k: draws[0][k] for k in nodes if k not in keys}
    f = sd.compile(bout, "numpy", simplify_graph=False)
    got = f(**{k: {**bvals, **rest}[k] for k in f.input_names})
    ref = sd.compile(out, "numpy", simplify_graph=False)
    for b in range(B):
        vals = {**draws[0], **{k: draws[b][k] for k in keys}}
        want = ref(**{k: vals[k] for k in ref.input_names})
        np.testing.assert_allclose(got[b], want, rtol=1e-6 if out.dtype == "float32" else 1e-12, atol=1e-13,
                                   err_msg=f"{name} ({which}), example {b}")


@pytest.mark.parametrize("name", sorted(EVERY))
def test_a_batched_graph_differentiates(name):
    """The batched graph is ordinary nodes: the gradient of <batched output, c> with respect to the batched
    leaf is the stack of the per-example gradients, and with respect to an unbatched leaf their sum."""
    case = EVERY[name]
    draws = [(case.gen_grad or case.gen)(np.random.default_rng(20 + b)) for b in range(B)]
    nodes = {k: _leaf(k, v) for k, v in draws[0].items()}
    out = case.build(*nodes.values())
    floats = [k for k, n in nodes.items() if n.dtype.startswith("float")]
    if not out.dtype.startswith("float") or not floats:
        pytest.skip("no float output or no float leaf: nothing to differentiate")
    first, rest = floats[0], [nodes[k] for k in floats[1:]]
    rep = sd.input(f"{first}_batched", (B,) + nodes[first].shape, nodes[first].dtype)
    (bout,) = batch([out], {nodes[first]: rep}, B)
    c = np.random.default_rng(5).standard_normal(bout.shape)
    g = sd.compile(sd.grad(sd.sum(bout * sd.const(c, bout.dtype)), [rep, *rest]), "numpy", simplify_graph=False)
    vals = {**draws[0], rep.name: np.stack([d[first] for d in draws])}
    got = g(**{k: vals[k] for k in g.input_names})
    per = sd.grad(sd.sum(out * sd.input("cot", out.shape, out.dtype)), [nodes[first], *rest])
    f = sd.compile(per, "numpy", simplify_graph=False)
    want = [f(**{k: {**draws[0], first: draws[b][first], "cot": c[b]}[k] for k in f.input_names}) for b in range(B)]
    np.testing.assert_allclose(got[0], np.stack([w[0] for w in want]), rtol=1e-10, atol=1e-12, err_msg=name)
    for k in range(1, len(got)):
        np.testing.assert_allclose(got[k], sum(w[k] for w in want), rtol=1e-10, atol=1e-12, err_msg=name)


def test_unbatched_nodes_are_shared_not_copied():
    x = sd.input("sx", (3,), "float64")
    w = sd.param("sw", (3,), "float64")
    shared = sd.exp(w) * 2.0  # independent of x
    out = x * shared
    xb = sd.input("sxb", (B, 3), "float64")
    (bout, bshared), flags = batch_with_flags([out, shared], {x: xb}, B)
    assert flags == [True, False] and bshared is shared
    assert shared in set(toposort([bout]))  # the batched graph reads the one unbatched node
    assert batch([shared], {x: xb}, B)[0].shape == (B, 3)  # batch() broadcasts an unbatched output


@pytest.mark.parametrize("chunk", range(4))
def test_batch_of_random_graphs(chunk):
    """The fuzzer's random graphs (tests/fuzz_graphs.py: ~120 ops, fan-out, several outputs): float leaves
    batched with B perturbed copies, integer index/label leaves batched by replication on odd seeds."""
    from fuzz_graphs import case_from_seed
    for seed in range(chunk * 60, chunk * 60 + 60):
        case = case_from_seed(seed)
        rng = np.random.default_rng(seed)
        subst, bvals, per = {}, {}, [dict(case.values) for _ in range(B)]
        for leaf in sd.ir.leaves(case.outputs):
            v, isf = case.values[leaf.name], leaf.dtype.startswith("float")
            if not isf and seed % 2 == 0:
                continue
            rep = sd.input(f"{leaf.name}_batched", (B,) + leaf.shape, leaf.dtype)
            arr = np.stack([v * (1 + 0.01 * b * rng.standard_normal(v.shape)) if isf else v
                            for b in range(B)]).astype(v.dtype)
            subst[leaf], bvals[rep.name] = rep, arr
            for b in range(B):
                per[b][leaf.name] = arr[b]
        f = sd.compile(batch(case.outputs, subst, B), "numpy", simplify_graph=False)
        got = f(**{k: {**case.values, **bvals}[k] for k in f.input_names})
        ref = sd.compile(case.outputs, "numpy", simplify_graph=False)
        for b in range(B):
            for k, (g, w) in enumerate(zip(got, ref(**{n: per[b][n] for n in ref.input_names}))):
                np.testing.assert_allclose(g[b], w, rtol=1e-5 if w.dtype == np.float32 else 1e-10, atol=1e-12,
                                           equal_nan=True, err_msg=f"seed {seed} output {k} example {b}: "
                                                                   f"{case.describe()}")
