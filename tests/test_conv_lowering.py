"""The compiled lowering of the convolution ops (im2col into the workspace + one GEMM per group, the fold
of the input gradient, the regrouping reshapes of codegen/pointeval.py and codegen/lower.py) against the
numpy backend: strided, dilated, padded, grouped, depthwise, 1-D and a configuration large enough for
multi-task loops and packed GEMMs, on llvm and cuda-cpu, in one graph per backend (one compile each)."""
from __future__ import annotations

import numpy as np
import pytest

import symdiff as sd
from symdiff import ops_conv

# (name, x shape, w shape, stride, padding pairs, dilation, groups)
CONFIGS = [
    ("plain", (2, 3, 7, 6), (4, 3, 3, 2), (1, 1), ((0, 0), (0, 0)), (1, 1), 1),
    ("strided_padded", (2, 3, 9, 8), (5, 3, 3, 3), (2, 3), ((1, 2), (0, 1)), (1, 1), 1),
    ("dilated", (1, 2, 9, 9), (3, 2, 2, 3), (1, 1), ((1, 1), (2, 2)), (2, 1), 1),
    ("grouped", (2, 4, 6, 6), (6, 2, 3, 3), (1, 1), ((0, 0), (0, 0)), (1, 1), 2),
    ("depthwise", (2, 3, 6, 5), (3, 1, 3, 3), (1, 1), ((1, 1), (1, 1)), (1, 1), 3),
    ("conv1d", (2, 3, 10), (4, 3, 3), (2,), ((1, 1),), (1,), 1),
    ("medium", (4, 8, 16, 16), (8, 8, 3, 3), (1, 1), ((1, 1), (1, 1)), (1, 1), 1),
]
# conv_transpose on its own, with an output longer than the minimum (PyTorch's output_padding)
TRANSPOSE = ("transpose_s2", (2, 4, 4, 5), (4, 3, 3, 3), (2, 2), ((1, 1), (0, 1)), (1, 1), 1, (8, 10))


def _graph(dtype: str):
    """Outputs (forward, loss gradients w.r.t. x and w, and the transposed conv with its gradients) and
    the seeded feeds."""
    rng = np.random.default_rng(7)
    outs, feeds = [], {}
    for name, xs, ws, s, p, r, g in CONFIGS:
        x = sd.input(f"{name}_x", xs, dtype)
        w = sd.input(f"{name}_w", ws, dtype)
        y = ops_conv.conv(x, w, s, p, r, g)
        weights = sd.input(f"{name}_r", y.shape, dtype)
        loss = sd.sum(y * weights)
        outs += [y, *sd.grad(loss, [x, w])]
        feeds.update({f"{name}_x": rng.standard_normal(xs), f"{name}_w": rng.standard_normal(ws),
                      f"{name}_r": rng.standard_normal(y.shape)})
    name, gs, ws, s, p, r, grp, shape = TRANSPOSE
    g = sd.input(f"{name}_g", gs, dtype)
    w = sd.input(f"{name}_w", ws, dtype)
    y = ops_conv.conv_transpose(g, w, s, p, r, grp, shape)
    loss = sd.sum(y * y)
    outs += [y, *sd.grad(loss, [g, w])]
    feeds.update({f"{name}_g": rng.standard_normal(gs), f"{name}_w": rng.standard_normal(ws)})
    return outs, {k: v.astype(dtype) for k, v in feeds.items()}


def _direct_conv(x, w, stride, padding, dilation):
    """A direct loop over output positions (groups = 1): the anchor the numpy backend is checked against."""
    xp = np.pad(x, ((0, 0), (0, 0)) + tuple(padding))
    n, _, ph, pw = xp.shape
    o, _, kh, kw = w.shape
    oh = (ph - dilation[0] * (kh - 1) - 1) // stride[0] + 1
    ow = (pw - dilation[1] * (kw - 1) - 1) // stride[1] + 1
    y = np.zeros((n, o, oh, ow))
    for i in range(oh):
        for j in range(ow):
            patch = xp[:, :, i * stride[0]:i * stride[0] + dilation[0] * (kh - 1) + 1:dilation[0],
                       j * stride[1]:j * stride[1] + dilation[1] * (kw - 1) + 1:dilation[1]]
            y[:, :, i, j] = np.tensordot(patch, w, axes=([1, 2, 3], [1, 2, 3]))
    return y


@pytest.fixture(scope="module")
def reference():
    outs, feeds = _graph("float64")
    return feeds, sd.compile(outs, backend="numpy")(**feeds)


def test_numpy_backend_matches_a_direct_convolution(reference):
    feeds, ref = reference
    name, _, _, s, p, r, _ = CONFIGS[1]
    want = _direct_conv(feeds[f"{name}_x"], feeds[f"{name}_w"], s, p, r)
    np.testing.assert_allclose(ref[3], want, rtol=1e-12, atol=1e-12)


# float64 on llvm is covered by the op suite's conv cases (tests/cases_conv.py); this graph is the big one
@pytest.mark.parametrize("backend,dtype", [("llvm", "float32"), ("cuda-cpu", "float32")])
def test_compiled_conv_matches_numpy(backend, dtype, reference):
    reference = reference[1]
    outs, feeds = _graph(dtype)
    got = sd.compile(outs, backend=backend)(**feeds)
    tol = 1e-12 if dtype == "float64" else 2e-5
    labels = [f"{c[0]}/{what}" for c in CONFIGS for what in ("y", "dx", "dw")] + \
             [f"{TRANSPOSE[0]}/{what}" for what in ("y", "dg", "dw")]
    assert len(got) == len(reference) == len(labels)
    for label, a, b in zip(labels, got, reference):
        assert a.shape == b.shape, f"{backend} {dtype} {label}: shape {a.shape}, expected {b.shape}"
        err = float(np.abs(a.astype(np.float64) - b).max()) / max(1.0, float(np.abs(b).max()))
        assert err <= tol, f"{backend} {dtype} {label}: normalised max error {err:.2e} > {tol:.0e}"


def test_regrouped_gemm_operand_is_stored_over_its_own_domain():
    """im2col's (K*C, N*L) operand is a reshape of a (*K, C, N, *L) transpose: the lowering stores the
    transpose (a loop over its own axes) and the GEMM reads that buffer through the reshape (no copy)."""
    from symdiff.codegen.kernel_ir import LoopKernel, MatmulKernel
    from symdiff.codegen.lower import lower
    x = sd.input("x", (2, 3, 8, 8))
    w = sd.input("w", (4, 3, 3, 3))
    prog = lower(sd.simplify([ops_conv.conv(x, w, (1, 1), ((1, 1), (1, 1)), (1, 1), 1)]))
    loops = [k for k in prog.kernels if isinstance(k, LoopKernel)]
    mm = [k for k in prog.kernels if isinstance(k, MatmulKernel)]
    assert len(mm) == 1
    cols = mm[0].b
    assert cols.op == "reshape" and cols.shape == (27, 128)
    assert any(k.domain == (3, 3, 3, 2, 8, 8) for k in loops), [k.domain for k in loops]
    assert not any(k.domain == (27, 128) for k in loops)
    assert prog.where[cols] is prog.where[cols.inputs[0]]


def test_reshape_groups():
    from symdiff.codegen.pointeval import reshape_groups
    assert reshape_groups((5, 5, 1, 64, 28, 28), (25, 50176)) == [([0, 1], [0]), ([3, 4, 5], [1])]
    assert reshape_groups((16, 6400), (16, 64, 10, 10)) == [([0], [0]), ([1], [1, 2, 3])]
    assert reshape_groups((6, 4), (4, 6)) == [([0, 1], [0, 1])]
    assert reshape_groups((2, 0), (0, 3)) is None


def test_padded_window_input_is_stored_once():
    """A window reads each padded input point up to prod(kernel) times: the padding (an embed) is stored
    by one loop, and im2col reads it at affine offsets."""
    from symdiff.codegen.kernel_ir import LoopKernel
    from symdiff.codegen.lower import lower
    x = sd.input("x", (2, 3, 8, 8))
    w = sd.input("w", (4, 3, 3, 3))
    prog = lower(sd.simplify([ops_conv.conv(x, w, (1, 1), ((1, 1), (1, 1)), (1, 1), 1)]))
    stored = [n for k in prog.kernels if isinstance(k, LoopKernel) for n, _ in k.stores]
    assert any(n.op == "embed" and n.shape == (2, 3, 10, 10) for n in stored), [n.op for n in stored]


def test_shared_sum_of_placements_stores_the_sum_only():
    """The input gradient of a 5x5 conv is a sum of 25 placements (fold); read by kernels of two loop
    domains, the sum is stored once -- not each of its 24 partial sums."""
    from symdiff.codegen.lower import Lowering
    x = sd.input("x", (2, 3, 8, 8))
    w = sd.input("w", (4, 3, 5, 5))
    r = sd.input("r", (2, 4, 4, 4))
    dx = sd.grad(sd.sum(ops_conv.conv(x, w, (1, 1), ((0, 0), (0, 0)), (1, 1), 1) * r), [x])[0]
    outs = sd.simplify([sd.sum(dx * dx), sd.max(sd.reshape(dx, (2, 3, 4, 2, 4, 2)), axis=(3, 5))])
    low = Lowering(outs)
    adds = [n for n in low.mat if n.op == "add" and n.shape == (2, 3, 8, 8)]
    assert len(adds) == 1, f"{len(adds)} partial sums stored"
