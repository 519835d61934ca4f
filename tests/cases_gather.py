"""Op-suite cases for gathers, scatters and cumulative ops (merged into tests/test_ops.py CASES / API_CASES).

Index leaves include negative and out-of-range values, so every backend is checked against the documented
rule (wrap once, then clamp) in the one op graph of tests/test_ops_backends.py; the scatters repeat indices.
"""
from __future__ import annotations

import numpy as np

import symdiff as sd
from symdiff.ir import apply

from conftest import distinct
from test_ops import Case


def _wc(i, n):  # the documented dynamic-index rule, written out independently of symdiff.ops_gather
    i = np.where(i < 0, i + n, i)
    return np.minimum(np.maximum(i, 0), n - 1)


def _away(r, shape, lo=0.5, hi=1.5):  # values away from zero (products and their gradients)
    return r.uniform(lo, hi, shape) * r.choice([-1.0, 1.0], shape)


SC_IDX = np.array([[0, 2, 2, -1, 7]])  # into an axis of 3: 0, 2, 2, 2 (wrapped), 2 (clamped)


def _scatter_ref(ufunc, ident):
    def ref(g, i):
        out = np.full((2, 3), ident, g.dtype)
        for a in range(2):
            for b in range(5):
                out[a, _wc(i[0, b], 3)] = ufunc(out[a, _wc(i[0, b], 3)], g[a, b])
        return out
    return ref


def _take_along_ref(x, i):  # x (3, 4), i (1, 5) broadcast along axis 0, gathered along axis 1
    return np.array([[x[a, _wc(i[0, b], 4)] for b in range(5)] for a in range(3)])


CASES: dict = {
    "take_along": Case(lambda r: {"x": r.standard_normal((3, 4)), "i": np.array([[0, 3, -1, -7, 9]])},
                       lambda x, i: apply("take_along", [x, i], axis=1), _take_along_ref),
    "scatter_add": Case(lambda r: {"g": r.standard_normal((2, 5)), "i": SC_IDX},
                        lambda g, i: apply("scatter_add", [g, i], axis=1, shape=(2, 3)),
                        _scatter_ref(np.add, 0.0)),
    "scatter_mul": Case(lambda r: {"g": _away(r, (2, 5)), "i": SC_IDX},
                        lambda g, i: apply("scatter_mul", [g, i], axis=1, shape=(2, 3)),
                        _scatter_ref(np.multiply, 1.0)),
    # integer-valued (not differentiable): its result indexes a float leaf, so the gradient checks have work
    "scatter_max": Case(lambda r: {"x": r.standard_normal((1, 6)), "p": np.array([[4, -3, 9, 1, 2]]), "i": SC_IDX},
                        lambda x, p, i: apply("take_along", [x, apply("scatter_max", [p, i], axis=1, shape=(1, 3),
                                                                        fill=-5)], axis=1),
                        lambda x, p, i: x[:, [4, 1, 5]]),  # maxima [4, -5 (fill), 9] wrapped/clamped into 6
    # sorted values through the permutation: the gradient is the scatter of the cotangent by argsort
    "argsort": Case(lambda r: {"x": distinct(r, (3, 4))},
                    lambda x: apply("take_along", [x, apply("argsort", [x], axis=0)], axis=0),
                    lambda x: np.sort(x, axis=0)),
    "cumsum": Case(lambda r: {"x": r.standard_normal((3, 4))},
                   lambda x: apply("cumsum", [x], axis=0, reverse=True),
                   lambda x: np.stack([x[k:].sum(axis=0) for k in range(3)])),
    "cumprod": Case(lambda r: {"x": _away(r, (3, 4))}, lambda x: apply("cumprod", [x], axis=1, reverse=False),
                    lambda x: np.stack([x[:, :k + 1].prod(axis=1) for k in range(4)], axis=1)),
}


def _at_ref(how):
    def ref(x, v, i):  # x (4, 3); rows i (repeated), column 2; v (3,)
        y = x.copy()
        for k in range(3):
            t = _wc(i[k], 4)
            y[t, 2] = v[k] if how == "set" else (y[t, 2] + v[k] if how == "add" else y[t, 2] * v[k])
        return y
    return ref


def _at_gen(r):
    return {"x": r.standard_normal((4, 3)), "v": _away(r, (3,)), "i": np.array([1, -1, 1])}


# run on every backend by the op suite (forward, gradient, Hessian-vector product); each compiles into the shared
# op graph, so only functions whose graphs differ in kind are here -- the rest are API_NUMPY_CASES
API_CASES: dict = {
    # integer tensor + slice + constant list: the indexed axes are not adjacent, so their dims go first
    "advanced_index": Case(lambda r: {"x": r.standard_normal((3, 4, 2)), "i": np.array([2, 0, 2])},
                           lambda x, i: sd.advanced_index(x, (i, slice(None, None, -2), [1, 0, 1])),
                           lambda x, i: x[i, ::-2, [1, 0, 1]]),
    "at_set": Case(_at_gen, lambda x, v, i: x.at[i, 2].set(v), _at_ref("set")),
}

# checked against their reference on the numpy backend (tests/test_api_gather.py); the ops they build on are
# in CASES above, and tests/test_api_gather.py runs the functions themselves on every backend
API_NUMPY_CASES: dict = {
    "sort": Case(lambda r: {"x": distinct(r, (2, 5))}, lambda x: sd.sort(x), lambda x: np.sort(x)),
    "at_multiply": Case(_at_gen, lambda x, v, i: x.at[i, 2].multiply(v), _at_ref("mul")),
    "take": Case(lambda r: {"x": r.standard_normal((3, 4)), "i": np.array([[2, 0], [-1, 1]])},
                 lambda x, i: sd.take(x, i, axis=1), lambda x, i: np.take(x, i, axis=1)),
    "take_along_axis": Case(lambda r: {"x": r.standard_normal((3, 4)), "i": np.array([[2, 0, 1, 1], [0, 0, 2, 1]])},
                            lambda x, i: sd.take_along_axis(x, i, axis=0),
                            lambda x, i: np.take_along_axis(x, i, axis=0)),
    "at_add": Case(_at_gen, lambda x, v, i: x.at[i, 2].add(v), _at_ref("add")),
    "at_static": Case(lambda r: {"x": r.standard_normal((4, 3)), "v": r.standard_normal((2, 3))},
                      lambda x, v: x.at[[3, 0, 3], :].add(sd.advanced_index(v, [0, 1, 1])).at[1:3].set(v),
                      lambda x, v: _static_at_ref(x, v)),
    "partition": Case(lambda r: {"x": distinct(r, (5, 2))}, lambda x: sd.partition(x, 1, axis=0),
                      lambda x: np.sort(x, axis=0)),  # a valid partition (see sd.partition)
    "cumsum": Case(lambda r: {"x": r.standard_normal((2, 3))}, lambda x: sd.cumsum(x), lambda x: np.cumsum(x)),
    "cumprod": Case(lambda r: {"x": _away(r, (2, 3))}, lambda x: x.cumprod(axis=-1),
                    lambda x: np.cumprod(x, axis=-1)),
}


def _static_at_ref(x, v):
    y = x.copy()
    np.add.at(y, [3, 0, 3], v[[0, 1, 1]])
    y[1:3] = v
    return y
