"""Differential fuzzing: random well-typed graphs on every backend against the NumPy reference.

The random graphs come from ``tests/fuzz_graphs.py`` (``build_case``, ``case_from_seed``). Every case
is checked (``check_case``):

1. the outputs, a weighted scalar loss and its gradients with respect to every float leaf, compiled on
   each backend (llvm, cuda-cpu), agree with the numpy backend (``assert_agree``), both on the simplified
   graph and with the *unsimplified* graph on numpy (``assert_agree_unsimplified``: what sees a
   simplifier rewrite that changes values, which every backend would otherwise compile alike);
2. the gradients agree with central finite differences (``sd.check_grad``), unless the values put a
   kink (relu/abs/sign/maximum/max ties...) within ``KINK_MARGIN`` of a non-differentiable point.

The same generator and checks drive ``benchmarks/fuzz_long.py`` (thousands of graphs, seeds reported);
the default run keeps a bounded, derandomized number of examples so CI is deterministic. Failures found
by fuzzing are pinned in ``tests/test_regressions.py``.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import pytest

import symdiff as sd
from symdiff.check import to_float64
from symdiff.compiled import NumpyFunction
from symdiff.ir import Node, apply, toposort
from symdiff.optable import OPS

from fuzz_graphs import DIMS, FuzzCase, HypChooser, RngChooser, build_case, case_from_seed  # noqa: F401

try:  # the checks are also imported by benchmarks/fuzz_long.py, which does not need hypothesis
    from hypothesis import HealthCheck, given, settings, strategies as st
except ImportError:  # pragma: no cover
    given = None

KINK_MARGIN = 1e-3  # values closer than this to a kink: skip the finite-difference check


# ---- checking ------------------------------------------------------------------------------------------------

class Rejected(Exception):
    """The values sit too close to a kink for a meaningful comparison (not a failure)."""


def loss_of(case: FuzzCase) -> Node:
    """A scalar that depends on every output through random weights (so every gradient entry matters)."""
    rng = np.random.default_rng(len(case.values) * 7919 + len(case.ops))
    terms = []
    for o in case.outputs:
        w = rng.uniform(0.5, 1.5, o.shape) * rng.choice([-1.0, 1.0], o.shape)
        terms.append(sd.sum(o * sd.const(w, o.dtype)))
    loss = terms[0]
    for t in terms[1:]:
        loss = loss + t
    return loss


def float_leaves(outputs) -> list:
    return [n for n in toposort(outputs) if n.is_leaf and n.dtype.startswith("float")]


def kink_margin(outputs, values) -> tuple[float, bool]:
    """(smallest non-zero distance of any value to a kink, whether some value sits exactly on one).

    Kinks: the argument of abs/relu/sign/step/heaviside, the difference of maximum/minimum operands,
    the gap between the largest and the other entries of a max reduction (eq masks come from those).
    Evaluated in float64 on the float64 version of the graph (what check_grad differentiates)."""
    g64 = to_float64(list(outputs))
    probes = []
    for n in toposort(g64):
        if n.op in ("abs", "relu", "sign", "step", "heaviside"):
            probes.append(("arg", n.inputs[0]))
        elif n.op in ("maximum", "minimum"):
            probes.append(("arg", apply("sub", list(n.inputs))))
        elif n.op == "max":
            probes.append(("max", n))
    if not probes:
        return math.inf, False
    nodes = []
    for kind, n in probes:
        nodes += [n] if kind == "arg" else [n.inputs[0], n]
    f = NumpyFunction(nodes, single=False)
    vals = f(**{k: np.asarray(v, np.float64) if v.dtype.kind == "f" else v for k, v in values.items()
                if k in f.input_names})
    margin, exact = math.inf, False
    i = 0
    for kind, n in probes:
        if kind == "arg":
            d = np.abs(vals[i])
            i += 1
        else:
            x, m = vals[i], vals[i + 1]
            i += 2
            with np.errstate(invalid="ignore"):
                d = np.abs(x - np.reshape(m, [1 if a in n.attrs["axes"] else s for a, s in enumerate(x.shape)]))
        if d.size:
            exact |= bool(np.any(d == 0))
            nz = d[d > 0]
            if nz.size:
                margin = min(margin, float(nz.min()))
    return margin, exact


def _tol(dtype: str) -> tuple[float, float]:
    return (2e-4, 1e-5) if dtype == "float32" else (1e-9, 1e-12)


def assert_agree(got, ref, what: str, scale: float = 1.0, precision: str = "float64") -> None:
    """Same shape and dtype; NaN/inf at the same places; finite values close (relative to the output's scale).

    ``precision``: the least precise float dtype the value went through (a float64 output computed
    from float32 intermediates gets the float32 tolerance)."""
    got, ref = np.asarray(got), np.asarray(ref)
    assert got.shape == ref.shape, f"{what}: shape {got.shape} != reference {ref.shape}"
    assert got.dtype == ref.dtype, f"{what}: dtype {got.dtype} != reference {ref.dtype}"
    rtol, atol = _tol("float32" if "float32" in (precision, ref.dtype.name) else "float64")
    fin = np.isfinite(ref)
    assert np.array_equal(np.isnan(got), np.isnan(ref)), f"{what}: NaN at different places\n{got}\n{ref}"
    assert np.array_equal(got[~fin & ~np.isnan(ref)], ref[~fin & ~np.isnan(ref)]), f"{what}: inf differs"
    mag = float(np.max(np.abs(ref[fin]), initial=0.0))
    err = np.abs(got[fin].astype(np.float64) - ref[fin])
    lim = atol * max(1.0, mag) * scale + rtol * np.abs(ref[fin]) + rtol * mag * 1e-2 * scale
    if err.size and not np.all(err <= lim):
        k = int(np.argmax(err - lim))
        raise AssertionError(f"{what}: max error {err.max():.3e} (at flat {k}: got {got[fin][k]!r}, reference "
                             f"{ref[fin][k]!r}, limit {lim[k]:.3e}); output magnitude {mag:.3e}")


def assert_agree_unsimplified(got, raw, what: str, scale: float = 1.0, precision: str = "float64",
                              special: bool = False) -> None:
    """``got`` (the compiled simplified graph) against ``raw`` (the unsimplified graph on numpy), as
    :func:`assert_agree`. With special leaf values only the entries where ``raw`` is finite are compared:
    the simplifier drops inf/NaN on purpose (``x * 0 -> 0``, ``x - x -> 0``), never a finite value."""
    got, raw = np.asarray(got), np.asarray(raw)
    assert got.shape == raw.shape, f"{what}: shape {got.shape} != unsimplified {raw.shape}"
    if special and raw.dtype.kind == "f":
        keep = np.isfinite(raw)
        got, raw = got[keep], raw[keep]
    assert_agree(got, raw, what, scale, precision)


def hvp_loss(case: FuzzCase) -> Node:
    """sum_i <d loss / d x_i, v_i> for fixed random v_i: its gradient is a Hessian-vector product."""
    wrt = float_leaves(case.outputs)
    rng = np.random.default_rng(17)
    y2 = None
    for w, g in zip(wrt, sd.grad(loss_of(case), wrt)):
        t = sd.sum(g * sd.const(rng.uniform(-1.0, 1.0, g.shape), g.dtype))
        y2 = t if y2 is None else y2 + t
    return y2


def graph_of(case: FuzzCase, with_grad: bool = True, order: int = 1) -> tuple[list, list]:
    """(nodes, names): the outputs, then the loss and its gradient with respect to every float leaf
    (order 2: also the Hessian-vector-product scalar and its gradients)."""
    outs = list(case.outputs)
    names = [f"out{i}" for i in range(len(outs))]
    wrt = float_leaves(case.outputs)
    if with_grad:
        loss = loss_of(case)
        outs += [loss] + list(sd.grad(loss, wrt))
        names += ["loss"] + [f"d_{w.name}" for w in wrt]
    if order >= 2 and wrt:
        y2 = hvp_loss(case)
        outs += [y2] + list(sd.grad(y2, wrt))
        names += ["hvp_loss"] + [f"hvp_{w.name}" for w in wrt]
    return outs, names


def precision(node: Node) -> str:
    """float32 if the value passes through any float32 node, else float64."""
    return "float32" if any(n.dtype == "float32" for n in toposort([node])) else "float64"


def run(f, case: FuzzCase):
    return f(**{k: case.values[k] for k in f.input_names})


def check_case(case: FuzzCase, backends: Sequence[str] = ("llvm",), fd: bool = True, order: int = 1,
               simplify_graph: bool = True, **options) -> dict:
    """Run every check on one case; raises AssertionError with a description on a disagreement.

    Each backend's result is compared with the numpy backend on the same (simplified) graph, and, when
    ``simplify_graph``, with the *unsimplified* graph on numpy too: a simplifier bug that changes values
    is seen there (the simplified graphs of all backends would agree with each other).

    Returns {"fd": checked?, "margin": kink margin, "exact_kink": bool}. Raises Rejected when a value
    sits within ``KINK_MARGIN`` of a kink without being exactly on it (the backends' rounding could
    legitimately put it on different sides). Values exactly on a kink (x - x, maximum(x, x)) are
    compared across backends (their derivative conventions must agree) but not with finite differences."""
    margin, exact = kink_margin(case.outputs, case.values)
    if margin < KINK_MARGIN:
        raise Rejected(f"kink margin {margin:.2e}")
    fd = fd and not case.special
    nodes, names = graph_of(case, order=order)
    before = {k: v.copy() for k, v in case.values.items()}
    with np.errstate(all="ignore"):  # the same simplification as the backend: x*0 -> 0 ignores inf/NaN in x (by design)
        ref = run(sd.compile(nodes, backend="numpy", simplify_graph=simplify_graph), case)
        raw = run(sd.compile(nodes, backend="numpy", simplify_graph=False), case) if simplify_graph else None
    info = {"fd": False, "margin": margin, "exact_kink": exact, "unsimplified": raw is not None}
    for be in backends:
        got = run(sd.compile(nodes, backend=be, simplify_graph=simplify_graph, **options), case)
        assert len(got) == len(ref)
        for nm, g, r, node in zip(names, got, ref, nodes):
            scale = 1.0 if nm.startswith("out") else 10.0
            assert_agree(g, r, f"[{be}] {nm} of {case.describe()}", scale=scale, precision=precision(node))
        if raw is not None:
            assert len(raw) == len(got)
            for nm, g, r, node in zip(names, got, raw, nodes):
                scale = 1.0 if nm.startswith("out") else 10.0
                assert_agree_unsimplified(g, r, f"[{be} vs unsimplified numpy] {nm} of {case.describe()}",
                                          scale=scale, precision=precision(node), special=case.special)
        # outputs are fresh arrays: no two share memory, none is an input
        for i, g in enumerate(got):
            for j in range(i):
                assert not np.shares_memory(g, got[j]), f"[{be}] outputs {names[i]} and {names[j]} alias"
            for k, v in case.values.items():
                assert not np.shares_memory(g, v), f"[{be}] output {names[i]} aliases input {k}"
    for k, v in case.values.items():
        assert v.tobytes() == before[k].tobytes(), f"input {k} was modified"
    wrt = float_leaves(case.outputs)
    if fd and not exact and wrt:
        loss_value = abs(float(ref[len(case.outputs)]))
        rep = sd.check_grad(loss_of(case), wrt, case.values, rtol=1e-4, atol=1e-6 * max(1.0, loss_value))
        assert rep.passed, f"finite differences disagree for {case.describe()}\n{rep}"
        if order >= 2:
            y2 = hvp_loss(case)
            scale = max(1.0, abs(float(ref[names.index("hvp_loss")])))
            rep = sd.check_grad(y2, wrt, case.values, rtol=1e-4, atol=1e-6 * scale)
            assert rep.passed, f"finite differences disagree (second order) for {case.describe()}\n{rep}"
        info["fd"] = True
    return info


# ---- the default run (bounded, deterministic) --------------------------------------------------------------------

def test_generator_covers_the_op_table():
    """Every op in the op table shows up in some generated graph (simplified, as compiled)."""
    seen = set()
    for seed in range(600):
        case = case_from_seed(seed)
        loss = loss_of(case)
        outs = sd.simplify(case.outputs + sd.grad(loss, float_leaves(case.outputs)))
        seen |= {n.op for n in toposort(outs)}
        if seen >= set(OPS):
            break
    assert set(OPS) - seen == set(), f"ops never generated: {sorted(set(OPS) - seen)}"


def test_fuzz_sees_a_simplifier_bug_that_changes_values(monkeypatch):
    """The comparison with the unsimplified graph is what catches a value-changing rewrite: with a
    simplifier that scales its first output by 1.01, the backends still agree with each other (they all
    compile the same wrong graph), and only the unsimplified numpy reference disagrees."""
    import symdiff.compiled as compiled
    real = compiled.simplify

    def buggy(outs):
        outs = list(real(outs))
        return [outs[0] * 1.01] + outs[1:]

    def usable(c: FuzzCase) -> bool:  # away from kinks, and an output 1% of which is well above the tolerance
        out0 = run(sd.compile(c.outputs[:1], backend="numpy", simplify_graph=False), c)[0]
        return kink_margin(c.outputs, c.values)[0] >= KINK_MARGIN and float(np.max(np.abs(out0), initial=0)) > 0.1

    case = next(c for c in map(case_from_seed, range(100)) if usable(c))
    assert check_case(case, ("llvm",), fd=False)["unsimplified"]  # the real simplifier passes
    monkeypatch.setattr(compiled, "simplify", buggy)
    nodes, names = graph_of(case)
    same = zip(run(sd.compile(nodes, backend="llvm"), case), run(sd.compile(nodes, backend="numpy"), case), nodes)
    for g, r, node in same:  # simplified against simplified: blind to the bug
        assert_agree(g, r, "llvm vs numpy, both simplified", scale=10.0, precision=precision(node))
    with pytest.raises(AssertionError, match=r"\[llvm vs unsimplified numpy\] out0"):
        check_case(case, ("llvm",), fd=False)


if given is not None:
    FUZZ = settings(max_examples=25, deadline=None, derandomize=True, database=None, print_blob=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much])

    @FUZZ
    @given(st.data())
    def test_fuzz_llvm_matches_numpy_and_finite_differences(data):
        from hypothesis import assume
        case = build_case(HypChooser(data))
        try:
            check_case(case, ("llvm",))
        except Rejected:
            assume(False)

    @settings(FUZZ, max_examples=12)
    @given(st.data())
    def test_fuzz_special_values_llvm_matches_numpy(data):
        """Leaves with inf/nan/+-0/denormal/huge entries: NaN and inf in the same places, the rest close."""
        from hypothesis import assume
        case = build_case(HypChooser(data), special=0.25)
        try:
            check_case(case, ("llvm",))
        except Rejected:
            assume(False)

    @settings(FUZZ, max_examples=5)
    @given(st.data())
    def test_fuzz_cuda_cpu_matches_numpy(data):
        from hypothesis import assume
        case = build_case(HypChooser(data))
        try:
            check_case(case, ("cuda-cpu",), fd=False)
        except Rejected:
            assume(False)
