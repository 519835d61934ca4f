"""Op-suite cases for comparisons, bool/int dtypes, where/clip (merged into tests/test_ops.py CASES / API_CASES).

Every case's output is a float tensor that depends on float leaves (the suite differentiates it): comparisons and
logical ops select with ``where``; integer ops multiply a float leaf. Bool leaves (``m``) and integer leaves
(``i``, ``j``) keep their dtype on every backend; the division cases include negative operands, a zero and a -1
divisor and the most negative integer.
"""
from __future__ import annotations

import numpy as np

import symdiff as sd
from symdiff.ir import apply

from conftest import separated, signed_away
from test_ops import Case

A_SHAPE, B_SHAPE = (3, 1), (2, 1, 4)
U = (2, 3)


def _sep(r):
    a, b = separated(r, [A_SHAPE, B_SHAPE], margin=0.1)
    return {"a": a, "b": b}


def _ties(r):  # forward: many exact ties so equal / not_equal / <= see both outcomes
    return {"a": r.integers(0, 3, A_SHAPE).astype(np.float64), "b": r.integers(0, 3, B_SHAPE).astype(np.float64)}


def _compare(op, ref):
    return Case(_ties, lambda a, b: sd.where(apply(op, [a, b]), a, b * 2.0), lambda a, b: np.where(ref(a, b), a, b * 2.0),
                gen_grad=_sep)


def _special(r):  # NaN, +-inf, finite values
    return {"x": np.array([[np.nan, np.inf, -np.inf], [0.5, -2.0, 0.0]])}


def _finite(r):
    return {"x": signed_away(r, U)}


def _masked(r):
    return {"a": r.standard_normal(U), "m": r.random(U) < 0.5}


def _divisible(r):
    """x, y of shape U with x / y at least 0.2 away from an integer (floor/trunc are locally constant there)."""
    y = signed_away(r, U, 0.5, 2.0)
    q = (r.integers(-3, 4, U) + r.uniform(0.2, 0.8, U)) * r.choice([-1.0, 1.0], U)
    return {"x": q * y, "y": y}


def _int_pairs(r):
    i = np.array([[7, -7, 7], [-7, 5, np.iinfo(np.int64).min]], np.int64)
    j = np.array([[2, 2, -2], [-2, 0, -1]], np.int64)
    return {"x": r.standard_normal(U), "i": i, "j": j}


def _floor_np(a, b):
    with np.errstate(all="ignore"):
        return np.floor_divide(a, b)


CASES: dict = {
    "less": _compare("less", np.less),
    "less_equal": _compare("less_equal", np.less_equal),
    "greater": _compare("greater", np.greater),
    "greater_equal": _compare("greater_equal", np.greater_equal),
    "equal": _compare("equal", np.equal),
    "not_equal": _compare("not_equal", np.not_equal),
    "isnan": Case(_special, lambda x: sd.where(apply("isnan", [x]), 0.5, x), lambda x: np.where(np.isnan(x), 0.5, x),
                  gen_grad=_finite),
    "isinf": Case(_special, lambda x: sd.where(apply("isinf", [x]), 1.5, x), lambda x: np.where(np.isinf(x), 1.5, x),
                  gen_grad=_finite),
    "isfinite": Case(_special, lambda x: sd.where(apply("isfinite", [x]), x * 3.0, -1.0),
                     lambda x: np.where(np.isfinite(x), x * 3.0, -1.0), gen_grad=_finite),
    "logical_and": Case(_masked, lambda a, m: sd.where(apply("logical_and", [m, a > 0]), a, a * -3.0),
                        lambda a, m: np.where(m & (a > 0), a, a * -3.0)),
    "logical_or": Case(_masked, lambda a, m: sd.where(apply("logical_or", [m, a > 0]), a, a * -3.0),
                       lambda a, m: np.where(m | (a > 0), a, a * -3.0)),
    "logical_xor": Case(_masked, lambda a, m: sd.where(apply("logical_xor", [m, a > 0]), a, a * -3.0),
                        lambda a, m: np.where(m ^ (a > 0), a, a * -3.0)),
    "logical_not": Case(_masked, lambda a, m: sd.where(apply("logical_not", [m]), a, a * 2.0),
                        lambda a, m: np.where(~m, a, a * 2.0)),
    # where broadcasts all three operands: (3, 1) condition, (2, 1, 4) and (4,) values
    "where": Case(lambda r: {"m": r.random(A_SHAPE) < 0.5, "a": r.standard_normal(B_SHAPE), "b": r.standard_normal(4)},
                  lambda m, a, b: apply("where", [m, a, b]), lambda m, a, b: np.where(m, a, b)),
    "stop_gradient": Case(lambda r: {"x": r.standard_normal(U), "i": r.integers(-3, 4, U)},
                          lambda x, i: x * apply("stop_gradient", [i]) + apply("stop_gradient", [x]) * 0.0,
                          lambda x, i: x * i),
    "floor_divide": Case(_divisible, lambda x, y: apply("floor_divide", [x, y]) * x + y,
                         lambda x, y: np.floor(x / y) * x + y),
    "remainder": Case(_divisible, lambda x, y: apply("remainder", [x, y]), lambda x, y: x - np.floor(x / y) * y),
    "fmod": Case(_divisible, lambda x, y: apply("fmod", [x, y]), lambda x, y: x - np.trunc(x / y) * y),
}

API_CASES: dict = {
    # integer arithmetic (int64 leaves; the float leaf x carries the gradient)
    "floor_divide_int": Case(_int_pairs, lambda x, i, j: x * (i // j), lambda x, i, j: x * _floor_np(i, j)),
    "remainder_int": Case(_int_pairs, lambda x, i, j: x * (i % j),
                          lambda x, i, j: x * np.where(j == 0, 0, np.remainder(i, np.where(j == 0, 1, j)))),
    "fmod_int": Case(_int_pairs, lambda x, i, j: x * sd.fmod(i, j),
                     lambda x, i, j: x * np.where(j == 0, 0, np.fmod(i, np.where(j == 0, 1, j)))),
    "int_arith": Case(_int_pairs, lambda x, i, j: x * (sd.maximum(i, j) - sd.minimum(i, 3) * j + abs(j) + sd.sign(i)
                                                       + sd.square(j) - (-i)),
                      lambda x, i, j: x * (np.maximum(i, j) - np.minimum(i, 3) * j + np.abs(j) + np.sign(i)
                                           + j * j + i)),
    "int32_promotion": Case(lambda r: {"x": r.standard_normal(U), "k": r.integers(-5, 6, U).astype(np.int32),
                                       "i": r.integers(-5, 6, U)},
                            lambda x, k, i: x * (k + i) + (k * 2 + 1) / (k + 0.5) + sd.exp(k * 0.1) * x,
                            lambda x, k, i: x * (k + i) + (2 * k + 1) / (k + 0.5) + np.exp(k * 0.1) * x),
    "true_divide": Case(_int_pairs, lambda x, i, j: x * sd.true_divide(i, j + 3), lambda x, i, j: x * (i / (j + 3))),
    "astype": Case(lambda r: {"x": 3 * r.standard_normal(U)},
                   lambda x: x * x.astype("int32") + (x > 0).astype(x.dtype) * x + x.astype("bool").astype("int64"),
                   lambda x: x * np.trunc(x) + (x > 0) * x + 1.0),
    # selection
    "clip": Case(lambda r: {"x": signed_away(r, U, 0.1, 2.0), "hi": np.full(3, 1.0) + 0.05 * r.random(3)},
                 lambda x, hi: sd.clip(x, -0.5, hi) + x.clip(None, 0.75), lambda x, hi: np.clip(x, -0.5, hi) + np.minimum(x, 0.75)),
    "select": Case(lambda r: {"x": signed_away(r, U)},
                   lambda x: sd.select([x > 1.0, x < -1.0], [x * 2.0, x * x], default=x),
                   lambda x: np.select([x > 1.0, x < -1.0], [x * 2.0, x * x], default=x)),
    "nan_to_num": Case(lambda r: {"x": np.array([[np.nan, np.inf, -np.inf], [0.5, -2.0, 3.0]])},
                       lambda x: sd.nan_to_num(x, nan=1.0, posinf=2.0, neginf=-3.0) + sd.nan_to_num(x) * 0.0,
                       lambda x: np.nan_to_num(x, nan=1.0, posinf=2.0, neginf=-3.0), gen_grad=_finite),
    "operators": Case(_masked, lambda a, m: sd.where((m & (a >= -0.5)) | ~(a != a) ^ m, a * 2.0, a) + sd.where(a == 0.5, 1.0, a),
                      lambda a, m: np.where((m & (a >= -0.5)) | ~(a != a) ^ m, a * 2.0, a) + np.where(a == 0.5, 1.0, a)),
    "where_scalars": Case(_masked, lambda a, m: sd.where(m, a, 0) + sd.where(a, 1.0, 2.0) * a + sd.where(m, 1, 2) * a,
                          lambda a, m: np.where(m, a, 0) + np.where(a, 1.0, 2.0) * a + np.where(m, 1, 2) * a),
    "mod": Case(_divisible, lambda x, y: sd.mod(x, y) + x % 1.5 + 2.5 % y + x // 0.75,
                lambda x, y: np.mod(x, y) + np.mod(x, 1.5) + np.mod(2.5, y) + np.floor_divide(x, 0.75)),
}
