"""Every op in the op table: forward values against NumPy, first and second derivatives by check_grad.

The test is parametrized over ``symdiff.optable.OPS``: a newly registered op is tested by being added,
and ``test_every_op_has_a_case`` fails until it gets an entry in ``CASES`` (input generator, graph
builder and an independent NumPy reference).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import pytest

import symdiff as sd
from symdiff.ir import apply
from symdiff.optable import OPS

from conftest import assert_grad_ok, distinct, evaluate, hash_uniform_reference, separated, signed_away

A_SHAPE, B_SHAPE = (3, 1), (2, 1, 4)  # broadcast to (2, 3, 4): size-1 axes and an added leading axis
U_SHAPE = (2, 3)


@dataclass(frozen=True)
class Case:
    gen: Callable  # rng -> {leaf name: array}; float leaves are float64, labels int64
    build: Callable  # (**leaf nodes) -> node using the op
    ref: Callable  # (**arrays) -> expected forward value (direct NumPy)
    gen_grad: Callable | None = None  # inputs for the gradient checks, when they differ from gen


def unary(op, ref, gen=lambda r: {"x": r.standard_normal(U_SHAPE)}):
    return Case(gen, lambda x: apply(op, [x]), ref)


def binary(op, ref, gen=lambda r: {"a": r.standard_normal(A_SHAPE), "b": r.standard_normal(B_SHAPE)}):
    return Case(gen, lambda a, b: apply(op, [a, b]), ref)


def _pos(r, shape, lo=0.5, hi=2.0):
    return r.uniform(lo, hi, shape)


def _sep(r):
    a, b = separated(r, [A_SHAPE, B_SHAPE], margin=0.1)
    return {"a": a, "b": b}


def _labels(r, n=3, depth=4):
    return r.integers(0, depth, n).astype(np.int64)


def _eq_ties(r):  # forward: many exact ties so both outcomes appear
    return {"a": r.integers(0, 3, A_SHAPE).astype(np.float64), "b": r.integers(0, 3, B_SHAPE).astype(np.float64)}


def _np_softmax(x, axis):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


CASES: dict[str, Case] = {
    # leaves (a graph whose output is the leaf itself / uses a constant)
    "input": Case(lambda r: {"x": r.standard_normal(U_SHAPE)}, lambda x: x, lambda x: x),
    "param": Case(lambda r: {"w": r.standard_normal(U_SHAPE)}, lambda w: w, lambda w: w),
    "const": Case(lambda r: {"x": r.standard_normal(U_SHAPE)},
                  lambda x: x * sd.const(np.arange(6.0).reshape(U_SHAPE) - 2.5, "float64"),
                  lambda x: x * (np.arange(6.0).reshape(U_SHAPE) - 2.5)),
    # elementwise binary, broadcasting (3,1) with (2,1,4)
    "add": binary("add", np.add),
    "sub": binary("sub", np.subtract),
    "mul": binary("mul", np.multiply),
    "div": binary("div", np.divide, lambda r: {"a": r.standard_normal(A_SHAPE), "b": signed_away(r, B_SHAPE, 0.5)}),
    "pow": binary("pow", lambda a, b: np.exp(b * np.log(a)),
                  lambda r: {"a": _pos(r, A_SHAPE), "b": r.uniform(-1.5, 2.5, B_SHAPE)}),
    "maximum": binary("maximum", lambda a, b: np.where(a > b, a, b), _sep),
    "minimum": binary("minimum", lambda a, b: np.where(a < b, a, b), _sep),
    # elementwise unary
    "neg": unary("neg", lambda x: -x),
    "square": unary("square", lambda x: x * x),
    "sqrt": unary("sqrt", lambda x: x ** 0.5, lambda r: {"x": _pos(r, U_SHAPE)}),
    "exp": unary("exp", lambda x: np.e ** x),
    "log": unary("log", np.log, lambda r: {"x": _pos(r, U_SHAPE)}),
    "log1p": unary("log1p", lambda x: np.log(1 + x), lambda r: {"x": r.uniform(-0.5, 2.0, U_SHAPE)}),
    "expm1": unary("expm1", lambda x: np.exp(x) - 1),
    "sin": unary("sin", np.sin),
    "cos": unary("cos", np.cos),
    "tanh": unary("tanh", lambda x: (np.exp(2 * x) - 1) / (np.exp(2 * x) + 1)),
    "abs": unary("abs", lambda x: np.where(x < 0, -x, x), lambda r: {"x": signed_away(r, U_SHAPE)}),
    "sign": unary("sign", lambda x: (x > 0) * 1.0 - (x < 0) * 1.0, lambda r: {"x": signed_away(r, U_SHAPE)}),
    "sigmoid": unary("sigmoid", lambda x: 1 / (1 + np.exp(-x)), lambda r: {"x": 3 * r.standard_normal(U_SHAPE)}),
    "softplus": unary("softplus", lambda x: np.log(1 + np.exp(x)), lambda r: {"x": 3 * r.standard_normal(U_SHAPE)}),
    "relu": unary("relu", lambda x: x * (x > 0), lambda r: {"x": signed_away(r, U_SHAPE)}),
    "heaviside": unary("heaviside", lambda x: (x > 0) * 1.0, lambda r: {"x": signed_away(r, U_SHAPE)}),
    "step": unary("step", lambda x: (x > 0) * 1.0, lambda r: {"x": signed_away(r, U_SHAPE)}),
    # tensor ops
    "sum": Case(lambda r: {"x": r.standard_normal((2, 3, 4))},
                lambda x: apply("sum", [x], axes=(0, 2), keepdims=True), lambda x: x.sum(axis=(0, 2), keepdims=True)),
    "max": Case(lambda r: {"x": distinct(r, (2, 3, 4))},
                lambda x: apply("max", [x], axes=(1,), keepdims=False), lambda x: x.max(axis=1)),
    "reshape": Case(lambda r: {"x": r.standard_normal((2, 3, 4))},
                    lambda x: apply("reshape", [x], shape=(4, 6)), lambda x: x.reshape(4, 6)),
    "broadcast_to": Case(lambda r: {"x": r.standard_normal(A_SHAPE)},
                         lambda x: apply("broadcast_to", [x], shape=(2, 3, 4)),
                         lambda x: x + np.zeros((2, 3, 4))),
    "transpose": Case(lambda r: {"x": r.standard_normal((2, 3, 4))},
                      lambda x: apply("transpose", [x], perm=(2, 0, 1)), lambda x: np.moveaxis(x, 2, 0)),
    "matmul": Case(lambda r: {"a": r.standard_normal((3, 4)), "b": r.standard_normal((4, 2))},
                   lambda a, b: apply("matmul", [a, b]),
                   lambda a, b: np.einsum("ik,kj->ij", a, b)),
    "cast": Case(lambda r: {"x": r.standard_normal(U_SHAPE)},
                 lambda x: apply("cast", [x], dtype="float32"), lambda x: x.astype(np.float32)),
    "softmax": Case(lambda r: {"x": r.standard_normal((3, 4))},
                    lambda x: apply("softmax", [x], axis=0), lambda x: _np_softmax(x, 0)),
    "log_softmax": Case(lambda r: {"x": r.standard_normal((3, 4))},
                        lambda x: apply("log_softmax", [x], axis=1), lambda x: np.log(_np_softmax(x, 1))),
    "logsumexp": Case(lambda r: {"x": r.standard_normal((3, 4))},
                      lambda x: apply("logsumexp", [x], axes=(0,), keepdims=True),
                      lambda x: np.log(np.exp(x).sum(axis=0, keepdims=True))),
    "pick": Case(lambda r: {"x": r.standard_normal((3, 4)), "lab": _labels(r)},
                 lambda x, lab: apply("pick", [x, lab]), lambda x, lab: np.array([x[i, lab[i]] for i in range(3)])),
    # non-differentiable ops (composed with a float leaf so the gradient checks have something to check)
    "one_hot": Case(lambda r: {"x": r.standard_normal((3, 4)), "lab": _labels(r)},
                    lambda x, lab: apply("one_hot", [lab], depth=4, dtype="float64") * x,
                    lambda x, lab: np.eye(4)[lab] * x),
    "axis_size": Case(lambda r: {"x": r.standard_normal((3, 4))},
                      lambda x: apply("axis_size", [x], axes=(0, 1), dtype="float64") * x, lambda x: 12.0 * x),
    "rand_uniform": Case(lambda r: {"x": r.standard_normal(U_SHAPE), "seed": np.asarray(-7, np.int64),
                                    "step": np.asarray(2**33 + 5, np.int64)},
                         lambda x, seed, step: apply("rand_uniform", [seed, step], shape=U_SHAPE, dtype="float64",
                                                     stream=11) * x,
                         lambda x, seed, step: hash_uniform_reference(int(seed), int(step), x.size, 11).reshape(U_SHAPE) * x),
    "eq": Case(_eq_ties, lambda a, b: apply("eq", [a, b]), lambda a, b: (a == b) * 1.0, gen_grad=_sep),
}

# DSL functions that are not op-table entries (built from ops: sd.stack, sd.var, ...): name -> Case.
# They run in the backend op suite (tests/test_ops_backends.py) next to the op cases.
API_CASES: dict[str, Case] = {}

# each op family keeps its cases in its own module (tests/cases_<family>.py, importing Case from here)
import cases_index, cases_dtypes, cases_math, cases_reduce, cases_gather, cases_conv  # noqa: E402,E401
import cases_pool  # noqa: E402

for _family in (cases_index, cases_dtypes, cases_math, cases_reduce, cases_gather, cases_conv, cases_pool):
    assert not set(_family.CASES) & set(CASES), f"{_family.__name__}: op case defined twice"
    CASES.update(_family.CASES)
    API_CASES.update(getattr(_family, "API_CASES", {}))


def _leaf_nodes(values: dict) -> dict:
    """Leaves for the generated values: ``w`` is an sd.param, everything else an sd.input."""
    return {k: (sd.param if k == "w" else sd.input)(k, v.shape, v.dtype.name) for k, v in values.items()}


def _float_leaves(nodes: dict) -> list:
    return [n for n in nodes.values() if n.dtype.startswith("float")]


def test_every_op_has_a_case():
    missing = sorted(set(OPS) - set(CASES))
    assert not missing, f"ops without a test case in tests/test_ops.py CASES: {missing}"
    assert not set(CASES) - set(OPS), "CASES names ops that are not in the op table"


@pytest.mark.parametrize("op", sorted(OPS))
def test_forward_matches_numpy(op):
    case = CASES[op]
    values = case.gen(np.random.default_rng(0))
    nodes = _leaf_nodes(values)
    out = case.build(*nodes.values())
    assert op in {d["op"] for _, d in sd.to_networkx(out, simplify=False).nodes(data=True)}
    expected = np.asarray(case.ref(*values.values()))
    for simplify in (False, True):
        got = evaluate(out, simplify=simplify, **values)
        assert got.shape == expected.shape == out.shape
        assert got.dtype == np.dtype(out.dtype)
        np.testing.assert_allclose(got, expected, rtol=1e-6 if out.dtype == "float32" else 1e-12, atol=1e-14)


def _weighted_sum(out, rng):
    w = sd.const(rng.standard_normal(out.shape) if out.shape else rng.standard_normal(), "float64")
    return sd.sum(out * w)


@pytest.mark.parametrize("op", sorted(OPS))
def test_gradients_first_and_second_order(op):
    case = CASES[op]
    rng = np.random.default_rng(1)
    values = (case.gen_grad or case.gen)(rng)
    nodes = _leaf_nodes(values)
    wrt = _float_leaves(nodes)
    y = _weighted_sum(case.build(*nodes.values()), rng)
    # order 1
    assert_grad_ok(sd.check_grad(y, wrt, values))
    # order 2: y2 = sum_i <grad(y, x_i), v_i>  ->  its gradient is a Hessian-vector product
    grads = sd.grad(y, wrt)
    y2 = None
    for g, x in zip(grads, wrt):
        assert (g.shape, g.dtype) == (x.shape, x.dtype)
        term = sd.sum(g * sd.const(rng.standard_normal(g.shape), "float64"))
        y2 = term if y2 is None else y2 + term
    assert_grad_ok(sd.check_grad(y2, wrt, values))


def test_nondifferentiable_ops_have_zero_gradient():
    x = sd.input("x", U_SHAPE, "float64")
    vals = {"x": signed_away(np.random.default_rng(2), U_SHAPE)}
    for op in ("sign", "heaviside", "step"):
        g = sd.grad(sd.sum(apply(op, [x]) * 3.0), x)
        assert sd.compile(g).input_names == ()  # a symbolic zero: the gradient does not depend on x
        np.testing.assert_array_equal(evaluate(g), np.zeros(U_SHAPE))
    a, b = sd.input("a", (3,), "float64"), sd.input("b", (3,), "float64")
    ga, gb = sd.grad(sd.sum(apply("eq", [a, b])), [a, b])
    assert OPS["eq"].differentiable is False and OPS["one_hot"].differentiable is False
    np.testing.assert_array_equal(evaluate([ga, gb])[0], np.zeros(3))


def test_relu_and_abs_derivative_at_zero():
    x = sd.input("x", (3,), "float64")
    xs = np.array([-1.0, 0.0, 2.0])
    np.testing.assert_array_equal(evaluate(sd.grad(sd.sum(sd.relu(x)), x), x=xs), [0.0, 0.0, 1.0])
    np.testing.assert_array_equal(evaluate(sd.grad(sd.sum(sd.abs(x)), x), x=xs), [-1.0, 0.0, 1.0])
    # maximum at a tie: the gradient is split (Heaviside(0) = 1/2)
    a, b = sd.input("a", (3,), "float64"), sd.input("b", (3,), "float64")
    ga, gb = sd.grad(sd.sum(sd.maximum(a, b)), [a, b])
    out = evaluate([ga, gb], a=np.array([1.0, 2.0, 3.0]), b=np.array([0.0, 2.0, 5.0]))
    np.testing.assert_array_equal(out[0], [1.0, 0.5, 0.0])
    np.testing.assert_array_equal(out[1], [0.0, 0.5, 1.0])
