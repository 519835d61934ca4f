"""benchmarks/workloads.py's data: seeded, and the ReLU MLPs' examples stay clear of the kink, so a float32
contender's gradient cannot differ from the float64 reference by a flipped mask entry."""
from __future__ import annotations

import numpy as np
import pytest

from benchmarks import reference, workloads


@pytest.mark.parametrize("name", ["W1", "W2", "W5"])
def test_relu_mlp_data_is_seeded_and_clear_of_the_kink(name):
    wl = workloads.get(name)[0]
    a, b = workloads.make_data(wl), workloads.make_data(wl)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert workloads.near_kink_rows(wl, a).size == 0


def test_w5_in_float32_numpy_matches_the_float64_reference():
    # the hand-written numpy contender's arithmetic: float32 throughout (OpenBLAS's float32 product once
    # rounded a pre-activation of 2e-7 standard deviations to the other sign: dW1 off by 5e-3)
    wl = workloads.get("W5")[0]
    d = workloads.make_data(wl)
    got = reference.mlp_fwd_bwd(wl, d)
    truth = reference.fwd_bwd(wl, workloads.as_float64(d))
    res = reference.compare(wl, got, truth)
    assert res["ok"], res["problems"]
