"""Op-suite cases for pooling (``symdiff/api_pool.py``; merged into tests/test_ops.py API_CASES), checked
against the loop references of tests/pool_reference.py."""
from __future__ import annotations

import numpy as np

import symdiff as sd

from conftest import distinct
from pool_reference import adaptive_ref, pool_ref
from test_ops import Case


def _unbatched(ref):
    return lambda x, *a, **kw: ref(x[None], *a, **kw)[0]


def _dist(shape):
    return lambda r: {"x": distinct(r, shape)}


def _x(shape):
    return lambda r: {"x": r.standard_normal(shape)}


CASES: dict = {}  # pooling adds no op-table entries

API_CASES: dict = {  # DSL function name -> Case; inputs are tiny, and a non-linearity (monotonic for max: no new ties) keeps the HVP non-zero
    "max_pool2d": Case(_dist((1, 2, 3, 4)),
                       lambda x: sd.max_pool2d(sd.exp(x), (2, 3), stride=(1, 2), padding=1, ceil_mode=True),
                       lambda x: pool_ref(np.exp(x), "max", (2, 3), (1, 2), 1, ceil_mode=True)),
    "max_pool1d": Case(_dist((2, 10)),
                       lambda x: sd.max_pool1d(sd.sin(x), 3, stride=2, padding=1, dilation=2),
                       lambda x: _unbatched(pool_ref)(np.sin(x), "max", 3, 2, 1, 2)),
    "avg_pool2d": Case(_x((1, 2, 3, 4)),
                       lambda x: sd.avg_pool2d(x * x, 3, 2, 1, ceil_mode=True, count_include_pad=False)
                       + sd.avg_pool2d(x, 3, 2, 1, ceil_mode=True),
                       lambda x: pool_ref(x * x, "avg", 3, 2, 1, ceil_mode=True, count_include_pad=False)
                       + pool_ref(x, "avg", 3, 2, 1, ceil_mode=True)),
    "avg_pool1d": Case(_x((2, 3, 4)),
                       lambda x: sd.avg_pool1d(x * x, 2, stride=1, padding=1, divisor_override=3),
                       lambda x: pool_ref(x * x, "avg", 2, 1, 1, divisor_override=3)),
    "adaptive_avg_pool2d": Case(_x((1, 1, 5, 4)), lambda x: sd.adaptive_avg_pool2d(x * x, (3, 2)),
                                lambda x: adaptive_ref(x * x, "avg", (3, 2))),
    "adaptive_avg_pool1d": Case(_x((2, 5)), lambda x: sd.adaptive_avg_pool1d(sd.sin(x), 3),
                                lambda x: _unbatched(adaptive_ref)(np.sin(x), "avg", 3)),
    "adaptive_max_pool2d": Case(_dist((1, 1, 5, 4)), lambda x: sd.adaptive_max_pool2d(sd.exp(x), (3, None)),
                                lambda x: adaptive_ref(np.exp(x), "max", (3, None))),
    "adaptive_max_pool1d": Case(_dist((2, 7)), lambda x: sd.adaptive_max_pool1d(sd.sin(x), 4),
                                lambda x: _unbatched(adaptive_ref)(np.sin(x), "max", 4)),
}
