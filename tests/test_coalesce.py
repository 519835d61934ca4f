"""codegen/coalesce.py: which adjacent loop axes run as one loop (by the probed offsets), and that the
LLVM kernels built over coalesced nests compute what NumPy does (awkward sizes, broadcasts, transposes,
pads, reductions)."""
from __future__ import annotations

import re

import numpy as np
import pytest

import symdiff as sd
from symdiff.codegen.coalesce import AffineProbe, coalesce, coalesced, merged_shape, reduce_probe


def _groups(out, stored):
    """coalesce() of a loop kernel computing ``out`` from the stored nodes ``stored``."""
    where = {n: f"buf{i}" for i, n in enumerate(stored)}

    def body(ev, point):
        ev(out, point, compute=True)
        ev.store_ref("out", out, point)
    return coalesce(out.shape, body, where)


def test_contiguous_elementwise_is_one_loop():
    x = sd.input("x", (64, 16, 10, 10))
    assert _groups(sd.relu(x) * 2.0, [x]) == [[0, 1, 2, 3]]


def test_a_transpose_keeps_the_axes_it_moves_apart():
    x = sd.input("x", (64, 16, 10, 10))
    assert _groups(sd.transpose(x, (1, 0, 2, 3)) + 1.0, [x]) == [[0], [1], [2, 3]]


def test_a_broadcast_axis_breaks_contiguity():
    x, b, c = sd.input("x", (8, 5, 7)), sd.input("b", (8, 1, 7)), sd.input("c", (7,))
    assert _groups(x + b, [x, b]) is None  # b's offset: 7 * i0 + i2 (axis 1 between them broadcast)
    assert _groups(x + c, [x, c]) == [[0, 1], [2]]  # c's offset is i2: the rows merge, not the columns
    assert _groups(x + sd.input("d", (5, 7)), [x, sd.input("d", (5, 7))]) == [[0], [1, 2]]


def test_unit_axes_join_any_group():
    x = sd.input("x", (6, 1, 5, 1))
    assert _groups(x * 3.0, [x]) == [[0, 1, 2, 3]]


def test_flips_coalesce_with_negative_strides():
    x = sd.input("x", (4, 6))
    assert _groups(sd.flip(x, (0, 1)) * 2.0, [x]) == [[0, 1]]
    assert _groups(sd.flip(x, (1,)) * 2.0, [x]) is None  # -1 and +6: not one affine index


def test_compares_and_pads_pin_their_axes():
    x = sd.input("x", (4, 6))
    assert _groups(sd.pad(x, ((1, 1), (2, 0))) * 2.0, [x]) is None  # the guards compare both indices
    from symdiff.ir import apply
    lab = sd.input("y", (4,), "int64")
    assert _groups(apply("one_hot", [lab], depth=6, dtype="float32") * 1.0, [lab]) is None  # index == label


def test_reductions_coalesce_the_outer_and_the_trailing_axes_apart():
    x = sd.input("x", (64, 16, 10, 10))
    r = sd.sum(x, axis=(0, 2, 3))
    groups = coalesce(x.shape, reduce_probe(r, "out"), {x: "bx"}, cuts=(2,))
    assert groups == [[0], [1], [2, 3]]
    (outer, _), (inner, imap) = coalesced(x.shape, reduce_probe(r, "out"), {x: "bx"}, 0, cut=2)
    assert outer == [64, 16] and inner == [100] and imap([57]) == [0, 57]
    assert merged_shape([[0, 1], [2]], (3, 4, 5)) == [12, 5]


def test_the_probe_records_affine_offsets_and_pins_divisions():
    from symdiff.codegen.coalesce import Affine
    probe = AffineProbe()
    i, j = Affine({0: 1}), Affine({1: 1})
    off = probe.iadd(probe.imul(i, 7), j)
    assert off.coeffs == {0: 7, 1: 1}
    probe.iudiv(j, 2)
    assert probe.pinned == {1}


CASES = {
    "bias-grad sum": (lambda x: sd.sum(sd.relu(x) * x, axis=(0, 2, 3)), (7, 5, 9, 11)),
    "pooled": (lambda x: sd.sum(sd.reshape(x, (7, 5, 3, 3, 11, 9)), axis=(3, 5)), (7, 5, 9, 99)),
    "transpose": (lambda x: sd.transpose(x, (1, 0, 2, 3)) * 2.0 + 1.0, (7, 5, 9, 11)),
    "flip": (lambda x: sd.flip(x, (2, 3)) - x, (7, 5, 9, 11)),
    "pad": (lambda x: sd.pad(x, ((0, 0), (0, 0), (1, 1), (2, 2))) * 3.0, (7, 5, 9, 11)),
    "total": (lambda x: sd.sum(sd.exp(x * 0.1)), (7, 5, 9, 11)),
    "units": (lambda x: sd.sum(sd.reshape(x, (7, 1, 5, 99, 1)) * 2.0, axis=(1, 3)), (7, 5, 9, 11)),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_llvm_kernels_over_coalesced_nests_match_numpy(case):
    pytest.importorskip("llvmlite")
    build, shape = CASES[case]
    x = sd.input("x", shape)
    out = build(x)
    feeds = {"x": np.random.default_rng(1).standard_normal(shape).astype(np.float32)}
    ref = sd.compile(out, "numpy")(**feeds)
    np.testing.assert_allclose(sd.compile(out, "llvm", cache=False)(**feeds), ref, rtol=2e-5, atol=1e-5)


def test_a_bias_gradient_sum_runs_one_inner_loop_over_the_image():
    """sum over (0, 2, 3) of (64, 16, 10, 10): the 10 x 10 nest is one loop of 100 (rendered IR)."""
    pytest.importorskip("llvmlite")
    from symdiff.codegen.llvm.render import Renderer
    x = sd.input("x", (64, 16, 10, 10))
    prog = sd.compile(sd.sum(sd.relu(x) * x, axis=(0, 2, 3)), "llvm", cache=False).program
    text = str(Renderer(prog, "sd_entry").render())
    fn = re.search(r'define[^\n]*@"k\d+_reduce".*?\n}', text, re.S).group(0)
    bounds = set(re.findall(r"icmp slt i64 %\"?[\w.]+\"?, (\d+)", fn))
    assert "100" in bounds and "10" not in bounds, bounds
