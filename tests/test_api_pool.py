"""Pooling (symdiff/api_pool.py): a random property test against the loop references of tests/pool_reference.py,
values and gradients against torch.nn.functional, the compiled backends, and bad input."""
from __future__ import annotations

import numpy as np
import pytest

import symdiff as sd
from symdiff.ir import toposort

from conftest import distinct
from pool_reference import adaptive_ref, out_size, pool_ref

try:
    import torch
    import torch.nn.functional as F
except ImportError:  # pragma: no cover - torch is optional
    torch = F = None

needs_torch = pytest.mark.skipif(torch is None, reason="torch is not installed")

POOLS = {"max": {1: sd.max_pool1d, 2: sd.max_pool2d}, "avg": {1: sd.avg_pool1d, 2: sd.avg_pool2d}}
ADAPTIVE = {"max": {1: sd.adaptive_max_pool1d, 2: sd.adaptive_max_pool2d},
            "avg": {1: sd.adaptive_avg_pool1d, 2: sd.adaptive_avg_pool2d}}


def _value_and_grad(y, x, xv, g, backend="numpy"):
    """y(x) and the gradient of <y, g> with respect to x, on ``backend``."""
    dx = sd.grad(sd.sum(y * sd.const(g, y.dtype)), x)
    return sd.compile([y, dx], backend)(x=xv)


def _random_config(rng):
    """(mode, k, x shape, kwargs) with every PyTorch parameter drawn; may not fit (then it must raise)."""
    mode, k = rng.choice(["max", "avg"]), int(rng.integers(1, 3))
    kernel = tuple(int(v) for v in rng.integers(1, 5, k))
    if rng.random() < 0.3:  # an int kernel_size
        kernel = (kernel[0],) * k
    kw = {"kernel_size": kernel if len(set(kernel)) > 1 or rng.random() < 0.5 else kernel[0],
          "padding": tuple(int(rng.integers(0, kk // 2 + 1)) for kk in kernel),
          "ceil_mode": bool(rng.random() < 0.5)}
    if rng.random() < 0.7:
        kw["stride"] = tuple(int(v) for v in rng.integers(1, 4, k))
    if mode == "max" and rng.random() < 0.5:
        kw["dilation"] = tuple(int(v) for v in rng.integers(1, 3, k))
    if mode == "avg":
        kw["count_include_pad"] = bool(rng.random() < 0.5)
        if rng.random() < 0.25:
            kw["divisor_override"] = int(rng.integers(1, 7))
    batch = (int(rng.integers(1, 3)),) if rng.random() < 0.7 else ()
    shape = batch + (int(rng.integers(1, 4)),) + tuple(int(v) for v in rng.integers(1, 9, k))
    return str(mode), k, shape, kw


def _fits(shape, k, kw) -> bool:
    def per(v, d):
        return v if isinstance(v, int) else v[d]
    ker = kw["kernel_size"]
    stride = kw.get("stride", ker)
    return all(out_size(shape[-k + d], per(ker, d), per(stride, d), per(kw["padding"], d),
                        per(kw.get("dilation", 1), d), kw["ceil_mode"]) >= 1 for d in range(k))


def _empty_window(shape, k, kw) -> bool:
    """Whether a (dilated) window reads padding only: its value is -inf, its gradient 0 (PyTorch's CPU kernel
    then writes the cotangent one entry past the row, into the next plane: not compared)."""
    def per(v, d):
        return v if isinstance(v, int) else v[d]
    ker = kw["kernel_size"]
    for d in range(k):
        kk, p, r = per(ker, d), per(kw["padding"], d), per(kw.get("dilation", 1), d)
        s, size = per(kw.get("stride", ker), d), shape[-k + d]
        for o in range(out_size(size, kk, s, p, r, kw["ceil_mode"])):
            if not any(0 <= o * s - p + j * r < size for j in range(kk)):
                return True
    return False


def _inputs(rng, shape, ties: bool):
    return rng.integers(0, 3, shape).astype(np.float64) if ties else rng.standard_normal(shape)


def test_random_pools_against_loop_reference():
    rng = np.random.default_rng(12)
    checked = 0
    for trial in range(40):
        mode, k, shape, kw = _random_config(rng)
        x = sd.input("x", shape, "float64")
        if not _fits(shape, k, kw):
            with pytest.raises(ValueError, match="larger than the padded input"):
                POOLS[mode][k](x, **kw)
            continue
        xv = _inputs(rng, shape, ties=trial % 3 == 0)  # every third input has many ties
        y = POOLS[mode][k](x, **kw)
        g = rng.standard_normal(y.shape)
        got, dx = _value_and_grad(y, x, xv, g)
        batched = len(shape) == k + 2
        args = {a: kw[a] for a in kw if a != "kernel_size"}
        ref, dref = pool_ref(xv if batched else xv[None], mode, kw["kernel_size"],
                             g=g if batched else g[None], **args)
        ref, dref = (ref, dref) if batched else (ref[0], dref[0])
        np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-12, err_msg=f"{mode}_pool{k}d {shape} {kw}")
        np.testing.assert_allclose(dx, dref, rtol=1e-12, atol=1e-12, err_msg=f"d {mode}_pool{k}d {shape} {kw}")
        checked += 1
    assert checked >= 25


def test_random_adaptive_pools_against_loop_reference():
    rng = np.random.default_rng(13)
    for trial in range(16):
        mode, k = str(rng.choice(["max", "avg"])), int(rng.integers(1, 3))
        shape = (int(rng.integers(1, 3)), 2) + tuple(int(v) for v in rng.integers(1, 10, k))
        size = tuple(None if rng.random() < 0.2 else int(v) for v in rng.integers(1, 8, k))
        size = size[0] if k == 1 and size[0] is not None else size
        x = sd.input("x", shape, "float64")
        xv = _inputs(rng, shape, ties=trial % 3 == 0)
        y = ADAPTIVE[mode][k](x, size)
        g = rng.standard_normal(y.shape)
        got, dx = _value_and_grad(y, x, xv, g)
        ref, dref = adaptive_ref(xv, mode, size, g=g)
        np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-12, err_msg=f"adaptive {mode} {shape} {size}")
        np.testing.assert_allclose(dx, dref, rtol=1e-12, atol=1e-12, err_msg=f"d adaptive {mode} {shape} {size}")


# -- against PyTorch ------------------------------------------------------------------------------------------

TORCH_CASES = [  # (function name, x shape, kwargs)
    ("max_pool2d", (2, 3, 7, 6), dict(kernel_size=3, stride=2, padding=1, ceil_mode=True)),
    ("max_pool2d", (2, 2, 8, 9), dict(kernel_size=(2, 3), stride=(2, 1), dilation=(2, 1))),
    ("max_pool2d", (3, 5, 5), dict(kernel_size=2, ceil_mode=True)),
    ("max_pool2d", (1, 2, 9, 9), dict(kernel_size=3, stride=3, padding=1, dilation=2, ceil_mode=True)),
    ("max_pool1d", (2, 3, 11), dict(kernel_size=4, stride=3, padding=2, ceil_mode=True)),
    ("max_pool1d", (3, 10), dict(kernel_size=3, dilation=3, padding=1)),
    ("avg_pool2d", (2, 3, 7, 6), dict(kernel_size=3, stride=2, padding=1, ceil_mode=True)),
    ("avg_pool2d", (2, 3, 7, 6), dict(kernel_size=3, stride=2, padding=1, ceil_mode=True, count_include_pad=False)),
    ("avg_pool2d", (2, 2, 6, 5), dict(kernel_size=(2, 3), stride=(1, 2), padding=(1, 1), divisor_override=4)),
    ("avg_pool2d", (3, 8, 8), dict(kernel_size=4, stride=3, padding=2, ceil_mode=True, count_include_pad=True)),
    ("avg_pool1d", (2, 3, 10), dict(kernel_size=3, stride=2, padding=1, ceil_mode=True, count_include_pad=False)),
    ("avg_pool1d", (3, 9), dict(kernel_size=2)),
    ("adaptive_avg_pool2d", (2, 3, 7, 6), dict(output_size=(4, None))),
    ("adaptive_avg_pool2d", (2, 3, 5, 7), dict(output_size=3)),
    ("adaptive_avg_pool2d", (3, 4, 6), dict(output_size=(6, 4))),
    ("adaptive_avg_pool2d", (1, 2, 3, 2), dict(output_size=(5, 4))),  # more outputs than inputs
    ("adaptive_avg_pool1d", (2, 3, 10), dict(output_size=4)),
    ("adaptive_max_pool2d", (2, 3, 7, 6), dict(output_size=(4, 5))),
    ("adaptive_max_pool2d", (3, 9, 4), dict(output_size=(2, None))),
    ("adaptive_max_pool1d", (2, 3, 11), dict(output_size=3)),
]


@needs_torch
@pytest.mark.parametrize("name,shape,kw", TORCH_CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(TORCH_CASES)])
def test_against_torch_values_and_gradients(name, shape, kw):
    rng = np.random.default_rng(hash(name) % 1000)
    xv = distinct(rng, shape, gap=0.05)  # no ties: PyTorch's and symdiff's max gradients agree
    x = sd.input("x", shape, "float64")
    y = getattr(sd, name)(x, **kw)
    xt = torch.tensor(xv, requires_grad=True)
    yt = getattr(F, name)(xt, **kw)
    assert y.shape == tuple(yt.shape)
    g = rng.standard_normal(y.shape)
    (yt * torch.tensor(g)).sum().backward()
    got, dx = _value_and_grad(y, x, xv, g)
    np.testing.assert_allclose(got, yt.detach().numpy(), rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-12, atol=1e-13)


@needs_torch
def test_random_configs_against_torch():
    rng = np.random.default_rng(14)
    checked = 0
    for _ in range(30):
        mode, k, shape, kw = _random_config(rng)
        if not _fits(shape, k, kw) or _empty_window(shape, k, kw):
            continue
        name = f"{mode}_pool{k}d"
        if k == 1 and "divisor_override" in kw:
            kw.pop("divisor_override")  # PyTorch's avg_pool1d has no divisor_override
        xv = distinct(rng, shape, gap=0.05)
        x = sd.input("x", shape, "float64")
        y = getattr(sd, name)(x, **kw)
        xt = torch.tensor(xv, requires_grad=True)
        yt = getattr(F, name)(xt, **kw)
        assert y.shape == tuple(yt.shape), (name, shape, kw)
        g = rng.standard_normal(y.shape)
        (yt * torch.tensor(g)).sum().backward()
        got, dx = _value_and_grad(y, x, xv, g)
        np.testing.assert_allclose(got, yt.detach().numpy(), rtol=1e-12, atol=1e-13, err_msg=f"{name} {shape} {kw}")
        np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-12, atol=1e-13, err_msg=f"d {name} {shape} {kw}")
        checked += 1
    assert checked >= 15


@needs_torch
def test_max_pool_ties_share_the_gradient_where_torch_picks_one():
    xv = np.array([[[[1.0, 1.0, 0.0, 2.0], [1.0, 0.0, 1.0, 2.0]]]])  # window 0: three tied 1s; window 1: two 2s
    x = sd.input("x", xv.shape, "float64")
    _, dx = _value_and_grad(sd.max_pool2d(x, 2), x, xv, np.ones((1, 1, 1, 2)))
    np.testing.assert_allclose(dx[0, 0], [[1 / 3, 1 / 3, 0.0, 0.5], [1 / 3, 0.0, 0.0, 0.5]])
    xt = torch.tensor(xv, requires_grad=True)
    F.max_pool2d(xt, 2).sum().backward()
    tg = xt.grad.numpy()
    assert sorted(tg[0, 0].ravel().tolist()) == [0.0] * 6 + [1.0, 1.0]  # PyTorch: all to one of the ties
    np.testing.assert_allclose(dx.reshape(2, 2, 2).sum(axis=(0, 2)), tg.reshape(2, 2, 2).sum(axis=(0, 2)))


# -- compiled backends ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("backend", ["llvm", "cuda-cpu"])
@pytest.mark.parametrize("dtype", ["float32"])
def test_compiled_backends_match_numpy(backend, dtype):
    """One graph of several pools (values, gradients and a Hessian-vector product), compiled once."""
    rng = np.random.default_rng(15)
    x = sd.input("x", (2, 3, 7, 6), dtype)
    xv = distinct(rng, x.shape, gap=0.01).astype(dtype)
    xv[0, 0, :2, :2] = 0.5  # a tied window
    ys = [sd.max_pool2d(x, 3, 2, 1, ceil_mode=True), sd.max_pool2d(sd.exp(x), 2, dilation=2),
          sd.avg_pool2d(x * x, 3, 2, 1, ceil_mode=True, count_include_pad=False),
          sd.avg_pool1d(x[0], 2, 1, 1, divisor_override=3), sd.max_pool1d(x[:, 1], 3, 2, ceil_mode=True),
          sd.adaptive_avg_pool2d(x * x, (4, None)), sd.adaptive_max_pool2d(sd.sin(x), (4, 5)),
          sd.adaptive_avg_pool1d(x[1], 4),
          # disjoint windows (stride == kernel): a crop and a reshape, not the window op
          sd.max_pool2d(sd.exp(x), 2), sd.max_pool2d(x, 2, ceil_mode=True), sd.max_pool2d(x, (2, 3), padding=1),
          sd.avg_pool2d(x * x, (3, 2)), sd.avg_pool2d(x, 2, padding=1, ceil_mode=True, count_include_pad=False)]
    loss = None
    for y in ys:
        term = sd.sum(y * sd.const(rng.standard_normal(y.shape), dtype))
        loss = term if loss is None else loss + term
    dx = sd.grad(loss, x)
    hv = sd.grad(sd.sum(dx * sd.const(rng.standard_normal(x.shape), dtype)), x)
    outs = ys + [dx, hv]
    want = sd.compile(outs, "numpy")(x=xv)
    got = sd.compile(outs, backend)(x=xv)
    for i, (a, b) in enumerate(zip(got, want)):
        assert a.dtype == b.dtype == np.dtype(dtype)
        np.testing.assert_allclose(a, b, rtol=3e-5, atol=3e-6, err_msg=f"output {i} on {backend}")


def test_disjoint_windows_are_a_reshape():
    """stride == kernel (the default) and dilation 1: the windows tile the (cropped or padded) input, so the graph
    is embed / slice / reshape and a reduction over the interleaved kernel axes, with no window or fold op."""
    x = sd.input("x", (2, 3, 7, 6), "float32")
    for y in (sd.max_pool2d(x, 2), sd.avg_pool2d(x, (2, 3), ceil_mode=True), sd.max_pool1d(x[0], 3)):
        ops = {n.op for n in toposort([y, sd.grad(sd.sum(y * y), x)])}
        assert not ops & {"window", "fold"}, ops
        assert "reshape" in ops
    assert "window" in {n.op for n in toposort([sd.max_pool2d(x, 2, stride=1)])}  # overlapping: the window op


# -- bad input --------------------------------------------------------------------------------------------------

BAD = [
    (lambda x: sd.max_pool2d(x, 5), ValueError, r"max_pool2d: kernel_size 5 .* larger than the padded input size 4"),
    (lambda x: sd.avg_pool2d(x, 3, padding=2), ValueError, r"avg_pool2d: padding 2 .* at most half the kernel"),
    (lambda x: sd.max_pool2d(x, 2, stride=0), ValueError, r"max_pool2d: stride must be positive"),
    (lambda x: sd.max_pool2d(x, 2, dilation=(1, -1)), ValueError, r"max_pool2d: dilation must be positive"),
    (lambda x: sd.max_pool2d(x, 0), ValueError, r"max_pool2d: kernel_size must be positive"),
    (lambda x: sd.max_pool2d(x, (2, 2, 2)), TypeError, r"max_pool2d: kernel_size must be an int or a tuple of 2"),
    (lambda x: sd.max_pool2d(x, 2.0), TypeError, r"max_pool2d: kernel_size must be an int"),
    (lambda x: sd.max_pool2d(x, True), TypeError, r"max_pool2d: kernel_size must be an int"),
    (lambda x: sd.max_pool1d(x, 2), ValueError, r"max_pool1d: expected a 2-D .* got shape \(2, 3, 4, 5\)"),
    (lambda x: sd.avg_pool2d(x[0, 0], 2), ValueError, r"avg_pool2d: expected a 3-D .* got shape \(4, 5\)"),
    (lambda x: sd.max_pool2d(sd.astype(x, "int64"), 2), TypeError, r"max_pool2d: input must be a float"),
    (lambda x: sd.avg_pool2d(sd.astype(x, "bool"), 2), TypeError, r"avg_pool2d: input must be a float"),
    (lambda x: sd.avg_pool2d(x, 2, divisor_override=0), ValueError, r"avg_pool2d: divisor_override must be"),
    (lambda x: sd.max_pool2d(x, 2, ceil_mode="yes"), TypeError, r"max_pool2d: ceil_mode must be a bool"),
    (lambda x: sd.max_pool2d(x, 2, return_indices=True), NotImplementedError, r"max_pool2d: return_indices"),
    (lambda x: sd.adaptive_avg_pool2d(x, 0), ValueError, r"adaptive_avg_pool2d: output_size must be positive"),
    (lambda x: sd.adaptive_max_pool2d(x, (2, 2, 2)), TypeError, r"adaptive_max_pool2d: output_size must be"),
    (lambda x: sd.adaptive_avg_pool1d(x[0], 2.5), TypeError, r"adaptive_avg_pool1d: output_size must be"),
]


@pytest.mark.parametrize("i", range(len(BAD)))
def test_bad_input_errors_name_the_function_and_parameter(i):
    build, exc, pattern = BAD[i]
    x = sd.input("x", (2, 3, 4, 5), "float32")
    with pytest.raises(exc, match=pattern):
        build(x)


def test_pool_shapes_unbatched_and_defaults():
    x = sd.input("x", (3, 7, 6), "float32")
    assert sd.max_pool2d(x, 2).shape == (3, 3, 3)  # stride defaults to the kernel size
    assert sd.max_pool2d(x, 2, ceil_mode=True).shape == (3, 4, 3)
    assert sd.avg_pool2d(x, (3, 2), stride=[]).shape == (3, 2, 3)  # an empty stride: PyTorch's default too
    assert sd.adaptive_avg_pool2d(x, (None, 2)).shape == (3, 7, 2)
    assert sd.max_pool2d(x, 2).dtype == "float32"


def test_op_suite_cases_match_their_loop_references():
    """The op suite (tests/test_ops_backends.py) compares backends with numpy; here numpy meets the references."""
    import test_ops  # noqa: PLC0415,F401  (first: it imports cases_pool, which imports it back)
    import cases_pool  # noqa: PLC0415
    for name, case in cases_pool.API_CASES.items():
        values = case.gen(np.random.default_rng(0))
        nodes = [sd.input(k, v.shape, v.dtype.name) for k, v in values.items()]
        got = sd.compile(case.build(*nodes), "numpy")(**values)
        np.testing.assert_allclose(got, case.ref(*values.values()), rtol=1e-12, atol=1e-13, err_msg=name)
