"""Op-suite cases for reductions and products (merged into tests/test_ops.py CASES / API_CASES)."""
from __future__ import annotations

import numpy as np

import symdiff as sd
from symdiff.ir import apply

from conftest import distinct
from test_ops import Case

X3 = (2, 3, 4)


def _x(r, shape=X3):
    return {"x": r.standard_normal(shape)}


def _away(r, shape=X3, lo=0.5, hi=1.5):  # |x| in [lo, hi], random sign: products stay O(1), no kinks
    return {"x": r.uniform(lo, hi, shape) * r.choice([-1.0, 1.0], shape)}


def _arg_case(op, fn):
    # a non-differentiable int64 result, used as a float factor so the gradient checks see the float leaf
    return Case(lambda r: {"w": r.standard_normal((2, 4)), "x": distinct(r, X3)},
                lambda w, x: w * sd.astype(apply(op, [x], axes=(1,), keepdims=False), w.dtype),
                lambda w, x: w * fn(x, axis=1).astype(w.dtype))


CASES: dict = {  # op name -> Case
    "prod": Case(_away, lambda x: apply("prod", [x], axes=(0, 2), keepdims=True),
                 lambda x: np.prod(x, axis=(0, 2), keepdims=True)),
    "argmax": _arg_case("argmax", np.argmax),
    "argmin": _arg_case("argmin", np.argmin),
}

API_CASES: dict = {  # DSL function name -> Case (functions built from other ops)
    "min": Case(lambda r: {"x": distinct(r, X3)}, lambda x: sd.min(x, axis=(0, 2)), lambda x: np.min(x, axis=(0, 2))),
    "amax_keepdims": Case(lambda r: {"x": distinct(r, X3)}, lambda x: sd.amax(x, axis=-1, keepdims=True),
                          lambda x: np.amax(x, axis=-1, keepdims=True)),
    "prod_all": Case(_away, lambda x: sd.prod(x), lambda x: np.prod(x)),
    "prod_method": Case(lambda r: _away(r, (3, 4)), lambda x: x.prod(axis=1), lambda x: x.prod(axis=1)),
    "var": Case(_x, lambda x: sd.var(x, axis=1), lambda x: np.var(x, axis=1)),
    "var_ddof": Case(_x, lambda x: x.var(axis=(0, 2), ddof=1, keepdims=True),
                     lambda x: np.var(x, axis=(0, 2), ddof=1, keepdims=True)),
    "std": Case(_x, lambda x: sd.std(x, axis=2, ddof=1), lambda x: np.std(x, axis=2, ddof=1)),
    "std_all": Case(_x, lambda x: x.std(), lambda x: np.std(x)),
    "argmax_flat": Case(lambda r: {"w": r.standard_normal(()), "x": distinct(r, X3)},
                        lambda w, x: w * sd.astype(x.argmax(), w.dtype), lambda w, x: w * np.argmax(x)),
    "argmin_keepdims": Case(lambda r: {"w": r.standard_normal((2, 3, 1)), "x": distinct(r, X3)},
                            lambda w, x: w * sd.astype(sd.argmin(x, axis=-1, keepdims=True), w.dtype),
                            lambda w, x: w * np.argmin(x, axis=-1, keepdims=True)),
    "norm": Case(_x, lambda x: sd.norm(x), lambda x: np.linalg.norm(x)),
    "norm_vec_ord": Case(lambda r: _away(r, (3, 4)),
                         lambda x: sd.linalg.norm(x, 1, axis=1) + sd.linalg.norm(x, np.inf, axis=1)
                         + sd.linalg.norm(x, -np.inf, axis=1) + sd.linalg.norm(x, 3, axis=1),
                         lambda x: np.linalg.norm(x, 1, axis=1) + np.linalg.norm(x, np.inf, axis=1)
                         + np.linalg.norm(x, -np.inf, axis=1) + np.linalg.norm(x, 3, axis=1)),
    "norm_matrix": Case(lambda r: _away(r, (2, 3, 4)),
                        lambda x: sd.linalg.norm(x, "fro", axis=(1, 2)) + sd.linalg.norm(x, 1, axis=(1, 2))
                        + sd.linalg.norm(x, np.inf, axis=(2, 1), keepdims=True).reshape(2),
                        lambda x: np.linalg.norm(x, "fro", axis=(1, 2)) + np.linalg.norm(x, 1, axis=(1, 2))
                        + np.linalg.norm(x, np.inf, axis=(2, 1), keepdims=True).reshape(2)),
    "average": Case(lambda r: {"x": r.standard_normal(X3), "w": r.uniform(0.5, 1.5, (3,))},
                    lambda x, w: sd.average(x, axis=1, weights=w),
                    lambda x, w: np.average(x, axis=1, weights=w)),
}

# batched products: rank 3/4 with broadcast batch dims, 1-D operands, a batched x 2-D fold, transposed operands
API_CASES.update({
    "matmul_batched_broadcast": Case(lambda r: {"a": r.standard_normal((2, 1, 3, 2)), "b": r.standard_normal((3, 2, 2))},
                                     lambda a, b: a @ b, lambda a, b: np.matmul(a, b)),
    "matmul_batched_transposed": Case(lambda r: {"a": r.standard_normal((2, 2, 3)), "b": r.standard_normal((1, 4, 2))},
                                      lambda a, b: sd.matmul(sd.transpose(a, (0, 2, 1)), sd.transpose(b, (0, 2, 1))),
                                      lambda a, b: np.matmul(a.transpose(0, 2, 1), b.transpose(0, 2, 1))),
    "matmul_batched_2d": Case(lambda r: {"a": r.standard_normal((2, 3, 4)), "b": r.standard_normal((4, 2))},
                              lambda a, b: a @ b, lambda a, b: np.matmul(a, b)),
    "matmul_2d_batched": Case(lambda r: {"a": r.standard_normal((3, 4)), "b": r.standard_normal((2, 4, 2))},
                              lambda a, b: a @ b, lambda a, b: np.matmul(a, b)),
    "matmul_vectors": Case(lambda r: {"a": r.standard_normal((4,)), "b": r.standard_normal((2, 4, 3)),
                                      "c": r.standard_normal((3,))},
                           lambda a, b, c: (a @ b) @ c, lambda a, b, c: np.matmul(np.matmul(a, b), c)),
})
