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
    "prod_all": Case(_away, lambda x: sd.prod(x), lambda x: np.prod(x)),
    "var_ddof": Case(_x, lambda x: x.var(axis=(0, 2), ddof=1, keepdims=True),
                     lambda x: np.var(x, axis=(0, 2), ddof=1, keepdims=True)),
    "argmax_flat": Case(lambda r: {"w": r.standard_normal(()), "x": distinct(r, X3)},
                        lambda w, x: w * sd.astype(x.argmax(), w.dtype), lambda w, x: w * np.argmax(x)),
    "norm_ords": Case(lambda r: _away(r, (2, 3, 4)),  # vector -inf (a min) and p = 3, matrix 1 (max of sums)
                      lambda x: sd.sum(sd.linalg.norm(x, -np.inf, axis=2), axis=1)
                      + sd.sum(sd.linalg.norm(x, 3, axis=1), axis=1) + sd.linalg.norm(x, 1, axis=(1, 2)),
                      lambda x: np.sum(np.linalg.norm(x, -np.inf, axis=2), axis=1)
                      + np.sum(np.linalg.norm(x, 3, axis=1), axis=1) + np.linalg.norm(x, 1, axis=(1, 2))),
}

# batched products: rank 3/4 with broadcast batch dims, 1-D operands, a batched x 2-D fold, transposed operands
API_CASES.update({
    "matmul_batched_broadcast": Case(lambda r: {"a": r.standard_normal((2, 1, 3, 2)), "b": r.standard_normal((3, 2, 2))},
                                     lambda a, b: a @ b, lambda a, b: np.matmul(a, b)),
    "matmul_batched_transposed": Case(lambda r: {"a": r.standard_normal((2, 2, 3)), "b": r.standard_normal((1, 4, 2))},
                                      lambda a, b: sd.matmul(sd.transpose(a, (0, 2, 1)), sd.transpose(b, (0, 2, 1))),
                                      lambda a, b: np.matmul(a.transpose(0, 2, 1), b.transpose(0, 2, 1))),
})

# products of symdiff/api_products.py (einsum lowers to batched matmul / multiply + sum)
API_CASES.update({
    "einsum_attention": Case(lambda r: {"q": r.standard_normal((1, 2, 3, 2)), "k": r.standard_normal((1, 2, 2, 2))},
                             lambda q, k: sd.einsum("bhqd,bhkd->bhqk", q, k), lambda q, k: np.einsum("bhqd,bhkd->bhqk", q, k)),
})
