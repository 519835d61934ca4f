"""Matmul operands through offset tables (codegen/gather.py): which im2col views the lowering gathers, the
tables by value, the stride-1 input gradient as a convolution (ops_conv.transpose_as_conv), and the values
of gathered convolutions on every compiled backend against the numpy interpreter."""
from __future__ import annotations

import ctypes
import shutil

import numpy as np
import pytest

import symdiff as sd
from symdiff.codegen import gather
from symdiff.codegen.kernel_ir import MatmulKernel
from symdiff.ops_conv import conv_transpose, transpose_as_conv

BACKENDS = ["llvm", "cuda-cpu"]


def _model(n, cin, cout, hw, k, pad=1, stride=1, dil=1):
    x = sd.input("x", (n, cin, hw, hw))
    w = sd.param("w", (cout, cin, k, k))
    y = sd.conv2d(x, w, stride=stride, padding=pad, dilation=dil)
    loss = sd.sum(y * y) * 0.5
    return x, w, [loss, *sd.grad(loss, [x, w])]


def _feeds(n, cin, cout, hw, k, seed=0):
    rng = np.random.default_rng(seed)
    return dict(x=rng.standard_normal((n, cin, hw, hw)).astype(np.float32),
                w=rng.standard_normal((cout, cin, k, k)).astype(np.float32))


def _gathered(f) -> list:
    return [k for k in f.program.kernels if isinstance(k, MatmulKernel) and k.b_offsets is not None]


def test_im2col_tables_by_value():
    """The forward product's tables address exactly numpy's im2col of the padded input."""
    n, cin, cout, hw, k = 2, 5, 40, 7, 3
    _x, _w, outs = _model(n, cin, cout, hw, k)
    f = sd.compile(outs, backend="llvm", cache=False)
    fwd = [g for g in _gathered(f) if g.M == cout and g.K == cin * k * k]
    assert fwd, [kk.describe() for kk in f.program.kernels]
    rk, cj = (np.asarray(t) for t in fwd[0].b_offsets)
    xp = np.arange(n * cin * (hw + 2) ** 2).reshape(n, cin, hw + 2, hw + 2)
    # rows ordered (kernel offset, channel), columns (image, output position)
    cols = np.stack([xp[:, c, a:a + hw, b:b + hw].reshape(-1) for a in range(k) for b in range(k) for c in range(cin)])
    np.testing.assert_array_equal(xp.reshape(-1)[rk[:, None] + cj[None, :]], cols)
    assert "gathered_b=yes" in fwd[0].describe()


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", [
    (2, 32, 40, 9, 3, 1, 1, 1, 3),    # same padding: forward, weight and input gradient all gathered
    (2, 8, 33, 7, 3, 2, 1, 2, 2),     # dilation 2; 8 input channels: the input gradient stays a fold
    (1, 36, 36, 8, 5, 2, 1, 1, 3),    # 5x5
    (2, 34, 32, 11, 3, 1, 2, 1, 0),   # stride 2: no unit runs, the materialised im2col
])
def test_gathered_convolutions_match_numpy(backend, case):
    n, cin, cout, hw, k, pad, stride, dil, n_gathered = case
    _x, _w, outs = _model(n, cin, cout, hw, k, pad, stride, dil)
    feeds = _feeds(n, cin, cout, hw, k)
    ref = sd.compile(outs, backend="numpy")(**feeds)
    f = sd.compile(outs, backend=backend, cache=False)
    assert len(_gathered(f)) == n_gathered
    for got, want in zip(f(**feeds), ref):
        np.testing.assert_allclose(np.asarray(got), want, rtol=2e-4, atol=2e-4 * float(np.abs(want).max()))


def test_which_products_gather(monkeypatch):
    # few output channels (M < MIN_ROWS): the copy and the usual product
    f = sd.compile(_model(2, 6, 16, 10, 5, 0)[2], backend="llvm", cache=False)
    assert not _gathered(f)
    # many: three gathered products for a stride-1 'same' convolution (forward, weight, input gradient)
    outs = _model(2, 32, 32, 8, 3)[2]
    assert len(_gathered(sd.compile(outs, backend="llvm", cache=False))) == 3
    monkeypatch.setattr(gather, "ENABLED", False)
    assert not _gathered(sd.compile(outs, backend="llvm", cache=False))


def test_mostly_gathering_views_are_refused(monkeypatch):
    """Output rows of 2 points: every vector would gather; the rule wants mostly contiguous runs."""
    f = sd.compile(_model(4, 32, 32, 2, 3)[2], backend="llvm", cache=False)
    assert not _gathered(f)
    monkeypatch.setattr(gather, "MIN_RUN_SHARE", 0.0)
    assert _gathered(sd.compile(_model(4, 32, 32, 2, 3)[2], backend="llvm", cache=False))


@pytest.mark.parametrize("groups,pad,dil", [(1, ((1, 1), (1, 1)), (1, 1)), (2, ((2, 1), (0, 2)), (1, 2)),
                                            (4, ((0, 0), (0, 0)), (1, 1))])
def test_transpose_as_conv_by_value(groups, pad, dil):
    """conv_transpose(g, w) == conv(g, w with channels swapped and kernel flipped, padding (K-1) r - p)."""
    rng = np.random.default_rng(3)
    n, cin, cout, k, hw = 2, 8, 12, 3, 9
    x = sd.input("x", (n, cin, hw, hw))
    w = sd.param("w", (cout, cin // groups, k, k))
    y = sd.conv2d(x, w, padding=pad, dilation=dil, groups=groups)
    g = sd.input("g", y.shape)
    ct = conv_transpose(g, w, (1, 1), pad, dil, groups, (hw, hw))
    alt = transpose_as_conv(ct, [g, w])
    assert alt is not None and alt.op == "conv" and alt.shape == ct.shape
    feeds = dict(g=rng.standard_normal(y.shape).astype(np.float64), w=rng.standard_normal(w.shape).astype(np.float64))
    want, got = sd.compile([ct, alt], backend="numpy")(**feeds)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * float(np.abs(want).max()))  # (float32 graphs)


def test_transpose_as_conv_declines():
    x = sd.input("x", (1, 4, 9, 9))
    w = sd.param("w", (4, 4, 3, 3))
    y2 = sd.conv2d(x, w, stride=2, padding=1)
    ct = conv_transpose(sd.input("g", y2.shape), w, (2, 2), ((1, 1), (1, 1)), (1, 1), 1, (9, 9))
    assert transpose_as_conv(ct, list(ct.inputs)) is None              # stride 2
    y = sd.conv2d(x, w, padding=3)                                     # padding beyond the kernel: a crop
    ct = conv_transpose(sd.input("g", y.shape), w, (1, 1), ((3, 3), (3, 3)), (1, 1), 1, (9, 9))
    assert transpose_as_conv(ct, list(ct.inputs)) is None
    # the codegen rule: a 'valid' convolution's input gradient has more points than its output: not preferred
    xv = sd.input("x", (1, 40, 9, 9))
    wv = sd.param("w", (40, 40, 5, 5))
    yv = sd.conv2d(xv, wv)
    ctv = conv_transpose(sd.input("g", yv.shape), wv, (1, 1), ((0, 0), (0, 0)), (1, 1), 1, (9, 9))
    assert gather.conv_transpose_expansion(ctv, list(ctv.inputs)) is None
    assert transpose_as_conv(ctv, list(ctv.inputs)) is not None


@pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc is needed to link the library")
def test_exported_library_with_gathered_products(tmp_path):
    """The offset tables are constants of the generated code: the runtime-free library computes the same."""
    from symdiff.codegen.runtime.export import export_c
    n, cin, cout, hw, k = 2, 32, 32, 8, 3
    _x, _w, outs = _model(n, cin, cout, hw, k)
    res = export_c(outs, "cv", tmp_path, output_names=["loss", "dx", "dw"])
    assert len([kk for kk in res.program.kernels if isinstance(kk, MatmulKernel) and kk.b_offsets]) == 3
    feeds = _feeds(n, cin, cout, hw, k)
    ref = sd.compile(outs, backend="numpy")(**feeds)
    lib = ctypes.CDLL(str(res.shared_library))
    ins = [feeds[a.name] for a in res.args if a.role != "output"]
    got = [np.empty(a.shape, dtype=a.dtype) for a in res.args if a.role == "output"]
    run = lib.cv_run
    ptrs = [arr.ctypes.data_as(ctypes.c_void_p) for arr in ins + got]
    run.argtypes = [ctypes.c_void_p] * (len(ptrs) + 2)
    assert run(*ptrs, None, None) == 0
    for g, want in zip(got, ref):
        np.testing.assert_allclose(g, want, rtol=2e-4, atol=2e-4 * float(np.abs(want).max()))


@pytest.mark.parametrize("isa", ["sse4.2", "avx2", "avx512"])
def test_gathered_products_on_every_x86_level(isa):
    """8-lane (AVX2) and 4-lane (SSE4.2: scalar gathers) packers give the same values as AVX-512's."""
    from symdiff.codegen.target import host_supports
    if not host_supports(isa):
        pytest.skip(f"this CPU cannot run {isa} code")
    n, cin, cout, hw, k = 2, 32, 36, 7, 3
    outs = _model(n, cin, cout, hw, k)[2]
    feeds = _feeds(n, cin, cout, hw, k, seed=2)
    ref = sd.compile(outs, backend="numpy")(**feeds)
    f = sd.compile(outs, isa=isa, cache=False)
    assert len(_gathered(f)) == 3
    for got, want in zip(f(**feeds), ref):
        np.testing.assert_allclose(np.asarray(got), want, rtol=2e-4, atol=2e-4 * float(np.abs(want).max()))


def test_table_helpers():
    assert gather.increasing([0, 2, 3]) and not gather.increasing([0, 2, 2]) and not gather.increasing([3, 1])
    assert gather.unit_run_share([0, 1, 2, 5]) == pytest.approx(2 / 3) and gather.unit_run_share([7]) == 1.0
