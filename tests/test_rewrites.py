"""The rewrite registry: registration by phase and op, dispatch by op, names in the simplifier's log.
(Each rewrite's own cases, checked by name and by value, are in test_simplify.py.)"""
from __future__ import annotations

import pytest

import symdiff as sd
from symdiff.optable import OPS
from symdiff.rewrites import PHASE_NAMES, REWRITES, Rewrite, in_phase, rewrite, rewrites_for
from symdiff.simplify import PHASES, run_phase, run_rules


def test_every_rewrite_is_named_documented_and_matches_known_ops():
    assert len(REWRITES) >= 40
    for name, rw in REWRITES.items():
        assert isinstance(rw, Rewrite) and rw.name == name and rw.phase in PHASE_NAMES
        assert rw.doc, f"rewrite {name} has no docstring"
        assert rw.ops is None or all(op in OPS for op in rw.ops), (name, rw.ops)
    assert set(PHASES) == set(PHASE_NAMES) and all(in_phase(p) for p in PHASE_NAMES)


def test_dispatch_by_op_keeps_registration_order():
    mul = rewrites_for("canonicalize", "mul")
    assert [r.name for r in mul] == [r.name for r in in_phase("canonicalize") if r.matches("mul")]
    assert mul[0].name == "fold_constants"  # the wildcard is registered first
    assert {r.name for r in mul} >= {"mul_one", "mul_zero", "mul_minus_one", "mul_neg_neg"}
    assert all(r.ops is None or "mul" in r.ops for r in mul)
    assert not any(r.name == "add_zero" for r in mul)
    assert [r.name for r in rewrites_for("stabilize", "tanh")] == []
    assert rewrites_for("canonicalize", "mul") is mul  # memoised


def test_registration_errors():
    with pytest.raises(ValueError, match="unknown simplifier phase"):
        rewrite("optimize", ops=("add",))
    with pytest.raises(ValueError, match="already registered"):
        rewrite("canonicalize", ops=("add",), name="add_zero")(lambda n: None)
    assert REWRITES["add_zero"].fn.__name__ == "add_zero"  # the original is kept
    with pytest.raises(ValueError, match="unknown simplifier phase"):
        run_phase([sd.input("x", (2,))], "optimize")


def test_run_rules_with_an_explicit_list_logs_the_rewrite_names():
    x = sd.input("x", (3,), "float64")
    only = [REWRITES["mul_one"]]
    log: list = []
    (out,) = run_rules([(x + 0.0) * 1.0], only, log=log)
    assert out.op == "add" and log == [("mul_one", "mul", "add")]  # add_zero was not in the list
    log2: list = []
    assert sd.simplify((x + 0.0) * 1.0, log=log2) is x
    assert [e[0] for e in log2] == ["add_zero", "mul_one"]
