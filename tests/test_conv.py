"""Convolutions: a random property test of the three conv ops against direct loops, sd.conv* against
PyTorch (values and gradients), a Hessian-vector product through a small conv net, and bad input."""
from __future__ import annotations

import numpy as np
import pytest

import conv_reference as R
import symdiff as sd
from symdiff.ops_conv import conv, conv_transpose, conv_weight

from conftest import assert_grad_ok, evaluate


def _random_config(r: np.random.Generator) -> dict:
    k = int(r.integers(1, 3))  # 1-D or 2-D
    groups = int(r.choice([1, 1, 2, 3]))
    cg, og = int(r.integers(1, 3)), int(r.integers(1, 3))
    kernel = tuple(int(v) for v in r.integers(1, 4, k))
    stride = tuple(int(v) for v in r.integers(1, 4, k))
    dil = tuple(int(v) for v in r.integers(1, 3, k))
    pads = tuple((int(a), int(b)) for a, b in r.integers(0, 3, (k, 2)))
    spatial = tuple(d * (kk - 1) + 1 + int(r.integers(0, 5)) for d, kk in zip(dil, kernel))
    return dict(x=(int(r.integers(1, 3)), cg * groups) + spatial, w=(og * groups, cg) + kernel,
                stride=stride, pads=pads, dil=dil, groups=groups)


@pytest.mark.parametrize("seed", range(40))
def test_conv_ops_match_direct_loops(seed):
    r = np.random.default_rng(seed)
    c = _random_config(r)
    xv, wv = r.standard_normal(c["x"]), r.standard_normal(c["w"])
    p = (c["stride"], c["pads"], c["dil"], c["groups"])
    x, w = sd.input("x", c["x"], "float64"), sd.input("w", c["w"], "float64")
    y = conv(x, w, *p)
    want = R.conv(xv, wv, *p)
    np.testing.assert_allclose(evaluate(y, x=xv, w=wv), want, rtol=1e-12, atol=1e-12)
    gv = r.standard_normal(y.shape)
    g = sd.input("g", y.shape, "float64")
    xt = conv_transpose(g, w, *p, c["x"][2:])
    np.testing.assert_allclose(evaluate(xt, g=gv, w=wv), R.conv_transpose(gv, wv, *p, c["x"][2:]), rtol=1e-12, atol=1e-12)
    dw = conv_weight(x, g, *p, c["w"][2:])
    np.testing.assert_allclose(evaluate(dw, x=xv, g=gv), R.conv_weight(xv, gv, *p, c["w"][2:]), rtol=1e-12, atol=1e-12)
    # the adjoint identity <conv(x, w), g> = <x, conv^T(g, w)> = <w, conv_weight(x, g)>
    ip = float(np.sum(want * gv))
    assert np.isclose(ip, float(np.sum(xv * R.conv_transpose(gv, wv, *p, c["x"][2:]))))
    assert np.isclose(ip, float(np.sum(wv * R.conv_weight(xv, gv, *p, c["w"][2:]))))


def _torch():
    try:
        import torch as t
        import torch.nn.functional as F
    except ImportError:  # pragma: no cover - torch is optional
        pytest.skip("torch is not installed")
    return t, F


TORCH_CASES = [
    ("conv2d", (2, 4, 7, 6), (6, 2, 3, 2), dict(stride=(2, 1), padding=1, dilation=(1, 2), groups=2)),
    ("conv2d", (1, 3, 6, 6), (3, 1, 3, 3), dict(padding="same", groups=3)),  # depthwise
    ("conv2d", (2, 2, 5, 5), (3, 2, 1, 1), dict(stride=2)),  # 1x1, strided
    ("conv1d", (2, 3, 9), (4, 3, 3), dict(padding="valid", dilation=2)),
    ("conv3d", (1, 2, 4, 3, 3), (2, 1, 2, 2, 2), dict(padding=(1, 0, 1), groups=2)),
    ("conv_transpose2d", (2, 4, 3, 3), (4, 3, 3, 3), dict(stride=2, padding=1, output_padding=1)),
    ("conv_transpose2d", (1, 4, 3, 2), (4, 1, 2, 3), dict(stride=(2, 3), groups=4, dilation=(2, 1))),
    ("conv_transpose1d", (2, 2, 4), (2, 3, 3), dict(stride=3, output_padding=2, dilation=3)),
]


@pytest.mark.parametrize("fn,sx,sw,kw", TORCH_CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(TORCH_CASES)])
def test_against_torch(fn, sx, sw, kw):
    t, F = _torch()
    r = np.random.default_rng(3)
    xv, wv = r.standard_normal(sx), r.standard_normal(sw)
    nb = sw[1] * kw.get("groups", 1) if "transpose" in fn else sw[0]
    bv = r.standard_normal(nb)
    x, w, b = sd.input("x", sx, "float64"), sd.param("w", sw, "float64"), sd.param("b", (nb,), "float64")
    y = getattr(sd, fn)(x, w, b, **kw)
    gx, gw, gb = sd.grad(sd.sum(sd.sin(y)), [x, w, b])
    tx, tw, tb = (t.tensor(v, requires_grad=True) for v in (xv, wv, bv))
    ty = getattr(F, fn)(tx, tw, tb, **kw)
    t.sin(ty).sum().backward()
    got = sd.compile([y, gx, gw, gb], backend="numpy")(x=xv, w=wv, b=bv)
    for a, e in zip(got, (ty, tx.grad, tw.grad, tb.grad)):
        np.testing.assert_allclose(a, e.detach().numpy(), rtol=1e-10, atol=1e-10)


def _tiny_convnet(x, w1, w2, v):
    h = sd.tanh(sd.conv2d(x, w1, padding=1))  # (2, 3, 5, 5)
    h = sd.conv2d(h, w2, stride=2, groups=3)  # (2, 3, 2, 2)
    return sd.sum(sd.reshape(h, (2, 12)) @ v)


@pytest.mark.parametrize("backend", ["numpy", "llvm"])
def test_hessian_vector_product_through_a_conv_net(backend):
    r = np.random.default_rng(5)
    vals = {"x": r.standard_normal((2, 2, 5, 5)), "w1": 0.5 * r.standard_normal((3, 2, 3, 3)),
            "w2": 0.5 * r.standard_normal((3, 1, 2, 2)), "v": r.standard_normal((12,))}
    x = sd.input("x", (2, 2, 5, 5), "float64")
    w1, w2, v = (sd.param(k, vals[k].shape, "float64") for k in ("w1", "w2", "v"))
    loss = _tiny_convnet(x, w1, w2, v)
    g1, g2 = sd.grad(loss, [w1, w2])
    u1, u2 = r.standard_normal(w1.shape), r.standard_normal(w2.shape)
    gu = sd.sum(g1 * sd.const(u1, "float64")) + sd.sum(g2 * sd.const(u2, "float64"))
    h1, h2 = sd.grad(gu, [w1, w2])  # the Hessian times (u1, u2)
    assert_grad_ok(sd.check_grad(gu, [w1, w2, x], vals))
    f = sd.compile([h1, h2, g1, g2], backend=backend)
    hv1, hv2, _, _ = f(**vals)
    # against central differences of the compiled gradient along (u1, u2)
    eps = 1e-5
    gp = f(**{**vals, "w1": vals["w1"] + eps * u1, "w2": vals["w2"] + eps * u2})
    gm = f(**{**vals, "w1": vals["w1"] - eps * u1, "w2": vals["w2"] - eps * u2})
    np.testing.assert_allclose(hv1, (gp[2] - gm[2]) / (2 * eps), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(hv2, (gp[3] - gm[3]) / (2 * eps), rtol=1e-6, atol=1e-7)


X4 = sd.input("x4", (2, 4, 6, 6))


@pytest.mark.parametrize("call,match", [
    (lambda: sd.conv2d(X4, sd.input("w", (3, 3, 3, 3))), r"conv2d: input \(2, 4, 6, 6\) has 4 channels but weight \(3, 3, 3, 3\) expects 3"),
    (lambda: sd.conv2d(X4, sd.input("w", (3, 2, 3, 3)), groups=2), r"conv2d: groups=2 must divide .* output channels \(3"),
    (lambda: sd.conv2d(X4, sd.input("w", (4, 4, 3, 3)), groups=3), r"groups=3 must divide the input channels \(4"),
    (lambda: sd.conv2d(X4, sd.input("w", (4, 4, 9, 3))), r"kernel size 9 .* larger than the padded input size 6 on spatial axis 0"),
    (lambda: sd.conv2d(X4, sd.input("w", (4, 4, 3, 3)), stride=0), r"conv2d: stride must be positive"),
    (lambda: sd.conv2d(X4, sd.input("w", (4, 4, 3, 3)), dilation=(1, -1)), r"conv2d: dilation must be positive"),
    (lambda: sd.conv2d(X4, sd.input("w", (4, 4, 3, 3)), padding="full"), r"conv2d: padding must be 'valid', 'same'"),
    (lambda: sd.conv2d(X4, sd.input("w", (4, 4, 3, 3)), padding="same", stride=2), r"padding='same' is not supported for strided"),
    (lambda: sd.conv2d(X4, sd.input("w", (4, 4, 3))), r"conv2d: weight must have 4 dimensions"),
    (lambda: sd.conv1d(X4, sd.input("w", (4, 4, 3))), r"conv1d: expected a 3-D \(batched\) or 2-D"),
    (lambda: sd.conv2d(X4, sd.input("w", (4, 4, 3, 3)), sd.input("b", (3,))), r"conv2d: bias must have shape \(4,\)"),
    (lambda: sd.conv_transpose2d(X4, sd.input("w", (4, 2, 3, 3)), stride=2, output_padding=2), r"output_padding 2 must be smaller"),
    (lambda: sd.conv_transpose2d(X4, sd.input("w", (3, 2, 3, 3))), r"conv_transpose2d: input \(2, 4, 6, 6\) has 4 channels but weight"),
])
def test_bad_input_names_the_function_shapes_and_parameter(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_unbatched_input_and_int_promotion():
    x = sd.input("x", (2, 5, 5), "int64")
    w = sd.input("w", (3, 2, 2, 2), "float32")
    y = sd.conv2d(x, w)
    assert y.shape == (3, 4, 4) and y.dtype == "float64"
    xv = np.arange(50).reshape(2, 5, 5)
    wv = np.ones((3, 2, 2, 2), np.float32)
    np.testing.assert_allclose(evaluate(y, x=xv, w=wv), R.conv(xv[None].astype(float), wv.astype(float),
                                                               (1, 1), ((0, 0), (0, 0)), (1, 1), 1)[0])


@pytest.mark.skipif(__import__("symdiff.codegen.cuda.backend", fromlist=["x"]).find_nvcc() is None,
                    reason="nvcc not found")
def test_nvcc_compiles_a_conv_net_forward_and_backward():
    """The CUDA source of a grouped, strided conv, a transposed conv and their gradients is valid CUDA for a
    real GPU (PTX for sm_90, no warnings), float32 and float64."""
    from symdiff.codegen.cuda import backend as cb
    from symdiff.codegen.cuda.render import render_cuda
    from symdiff.codegen.lower import lower
    outs = []
    for dt in ("float32", "float64"):
        x, w = sd.input(f"x_{dt}", (2, 4, 7, 7), dt), sd.param(f"w_{dt}", (4, 2, 3, 3), dt)
        wt = sd.param(f"wt_{dt}", (4, 2, 2, 2), dt)
        y = sd.conv_transpose2d(sd.relu(sd.conv2d(x, w, stride=2, padding=1, groups=2)), wt, stride=2)
        outs += [y, *sd.grad(sd.sum(y * y), [x, w, wt])]
    src = render_cuda(lower(outs), "sd_entry")[0]
    assert cb.nvcc_ptx(src, "sm_90") == (0, "")
