"""symdiff.nn convolutional modules: values and gradients vs torch.nn with copied weights (or a direct NumPy
loop), BatchNorm2d modes and running statistics, Dropout2d channel masks, conv fan-in/fan-out, Flatten, and
the Trainer on image batches. Several modules share one compiled graph (compiling dominates the time)."""
import numpy as np
import pytest

import symdiff as sd
import symdiff.nn as nn

torch = pytest.importorskip("torch")
RNG = np.random.default_rng(7)

# (module constructor, torch constructor, input shape): PyTorch's argument lists, passed to both
CONV_CASES = [
    ("Conv2d", (3, 4, 3), {}, (2, 3, 6, 5)),
    ("Conv2d", (4, 6, (3, 2)), dict(stride=(2, 1), padding=(1, 2), dilation=(1, 2), groups=2), (2, 4, 7, 6)),
    ("Conv2d", (4, 4, 3), dict(padding="same", groups=4, bias=False), (1, 4, 5, 5)),  # depthwise
    ("Conv2d", (2, 3, 2), dict(padding="valid", dilation=2), (2, 2, 5, 5)),
    ("Conv1d", (3, 4, 3), dict(stride=2, padding=1), (2, 3, 9)),
    ("Conv1d", (4, 2, 2), dict(groups=2, dilation=3), (1, 4, 8)),
    ("ConvTranspose2d", (3, 2, 3), dict(stride=2, padding=1, output_padding=1), (2, 3, 4, 3)),
    ("ConvTranspose2d", (4, 6, (2, 3)), dict(stride=(1, 2), groups=2, dilation=(2, 1)), (1, 4, 3, 4)),
]


def _copy_weights(mod, tmod, vals):
    with torch.no_grad():
        tmod.weight.copy_(torch.tensor(vals[mod.W.name]))
        if mod.b is not None:
            tmod.bias.copy_(torch.tensor(vals[mod.b.name]))


@pytest.mark.parametrize("backend,cases", [("numpy", range(len(CONV_CASES))), ("llvm", (1, 2, 5, 6)),
                                           ("cuda-cpu", (1, 6))])
def test_conv_modules_match_torch(backend, cases):
    """Outputs and the gradients of sum(out * r) in the input, weight and bias, the cases in one graph (llvm:
    a grouped strided dilated conv2d, a depthwise 'same' one, a dilated grouped conv1d, a transposed conv)."""
    outs, feeds, refs = [], {}, []
    for i in cases:
        kind, args, kw, xshape = CONV_CASES[i]
        mod = getattr(nn, kind)(*args, **kw, dtype="float64", name=f"m{i}")
        tmod = getattr(torch.nn, kind)(*args, **kw).double()
        x = sd.input(f"x{i}", xshape, "float64")
        xv = RNG.standard_normal(xshape)
        vals = mod.init_values(i)
        if mod.b is not None:
            vals[mod.b.name] = RNG.standard_normal(mod.b.shape)
        _copy_weights(mod, tmod, vals)
        tx = torch.tensor(xv, requires_grad=True)
        ty = tmod(tx)
        r = RNG.standard_normal(tuple(ty.shape))
        (ty * torch.tensor(r)).sum().backward()
        y = mod(x)
        assert y.shape == tuple(ty.shape), (kind, kw)
        wrt = [x, mod.W] + ([mod.b] if mod.b is not None else [])
        outs += [y, *sd.grad(sd.sum(y * sd.const(r, "float64")), wrt)]
        refs += [ty.detach().numpy(), tx.grad.numpy(), tmod.weight.grad.numpy()]
        refs += [tmod.bias.grad.numpy()] if mod.b is not None else []
        feeds.update(vals)
        feeds[x.name] = xv
    fn = sd.compile(outs, backend)
    res = fn(**{k: feeds[k] for k in fn.input_names})
    for got, want in zip(res, refs):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)


def _direct_conv2d(x, w, b, stride, padding):
    """y[n, o, i, j] = b[o] + sum_{c, p, q} w[o, c, p, q] * xpad[n, c, i*s + p, j*s + q] (a plain loop)."""
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    n, _, hp, wp = xp.shape
    o, _, kh, kw = w.shape
    oh, ow = (hp - kh) // stride + 1, (wp - kw) // stride + 1
    y = np.zeros((n, o, oh, ow))
    for i in range(oh):
        for j in range(ow):
            patch = xp[:, :, i * stride:i * stride + kh, j * stride:j * stride + kw]
            y[:, :, i, j] = np.einsum("ncpq,ocpq->no", patch, w) + b
    return y


def test_conv2d_float32_against_direct_loop():
    mod = nn.Conv2d(2, 3, 3, stride=2, padding=1, name="c")
    x = sd.input("x", (2, 2, 7, 7), "float32")
    vals = mod.init_values(0)
    vals["c_b"] = RNG.standard_normal(3).astype(np.float32)
    xv = RNG.standard_normal((2, 2, 7, 7)).astype(np.float32)
    y = sd.compile(mod(x))(x=xv, **vals)
    assert y.dtype == np.float32 and y.shape == (2, 3, 4, 4)
    np.testing.assert_allclose(y, _direct_conv2d(xv, vals["c_W"], vals["c_b"], 2, 1), rtol=1e-5, atol=1e-5)


def test_pool_modules_match_torch():
    cases = [
        (nn.MaxPool2d(2), torch.nn.MaxPool2d(2), (2, 3, 6, 6)),
        (nn.MaxPool2d(3, stride=2, padding=1), torch.nn.MaxPool2d(3, stride=2, padding=1), (1, 2, 7, 6)),
        (nn.AvgPool2d(2), torch.nn.AvgPool2d(2), (2, 2, 6, 4)),
        (nn.AvgPool2d((3, 2), stride=1, padding=1), torch.nn.AvgPool2d((3, 2), stride=1, padding=1), (1, 2, 5, 4)),
        (nn.AdaptiveAvgPool2d(1), torch.nn.AdaptiveAvgPool2d(1), (2, 3, 4, 5)),
        (nn.AdaptiveAvgPool2d((2, 3)), torch.nn.AdaptiveAvgPool2d((2, 3)), (1, 2, 4, 6)),
    ]
    outs, feeds, refs = [], {}, []
    for i, (mod, tmod, shape) in enumerate(cases):
        xv = RNG.permutation(np.arange(np.prod(shape), dtype=np.float64)).reshape(shape) / 10  # no ties
        tx = torch.tensor(xv, requires_grad=True)
        ty = tmod(tx)
        r = RNG.standard_normal(tuple(ty.shape))
        (ty * torch.tensor(r)).sum().backward()
        x = sd.input(f"x{i}", shape, "float64")
        y = mod(x)
        assert y.shape == tuple(ty.shape), mod
        outs += [y, sd.grad(sd.sum(y * sd.const(r, "float64")), x)]
        refs += [ty.detach().numpy(), tx.grad.numpy()]
        feeds[x.name] = xv
        assert mod.params() == []
    res = sd.compile(outs)(**feeds)
    for got, want in zip(res, refs):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("kind,shape", [("BatchNorm2d", (4, 3, 5, 2)), ("BatchNorm1d", (5, 3, 4))])
@pytest.mark.parametrize("training", [True, False])
def test_batchnorm2d_matches_torch(training, kind, shape):
    """BatchNorm2d on (N, C, H, W) and BatchNorm1d on (N, C, L): per-channel statistics over all other axes."""
    bn = getattr(nn, kind)(3, eps=1e-3, momentum=0.2, dtype="float64", name="bn")
    tbn = getattr(torch.nn, kind)(3, eps=1e-3, momentum=0.2).double()
    vals = {"bn_gamma": RNG.standard_normal(3), "bn_beta": RNG.standard_normal(3),
            "bn_running_mean": RNG.standard_normal(3), "bn_running_var": RNG.random(3) + 0.5}
    with torch.no_grad():
        tbn.weight.copy_(torch.tensor(vals["bn_gamma"]))
        tbn.bias.copy_(torch.tensor(vals["bn_beta"]))
        tbn.running_mean.copy_(torch.tensor(vals["bn_running_mean"]))
        tbn.running_var.copy_(torch.tensor(vals["bn_running_var"]))
    tbn.train(training)
    bn.train(training)
    xv = RNG.standard_normal(shape) * 2 + 1
    tx = torch.tensor(xv, requires_grad=True)
    ty = tbn(tx)
    r = RNG.standard_normal(shape)
    (ty * torch.tensor(r)).sum().backward()
    x = sd.input("x", shape, "float64")
    y = bn(x)
    ups = bn.state_updates()
    assert set(ups) == ({"bn_running_mean", "bn_running_var"} if training else set())
    fn = sd.compile([y, *sd.grad(sd.sum(y * sd.const(r, "float64")), [x, *bn.params()]), *ups.values()])
    res = fn(**{k: v for k, v in {"x": xv, **vals}.items() if k in fn.input_names})
    want = [ty.detach().numpy(), tx.grad.numpy(), tbn.weight.grad.numpy(), tbn.bias.grad.numpy()]
    if training:
        want += [tbn.running_mean.numpy(), tbn.running_var.numpy()]
    assert len(res) == len(want)
    for got, w in zip(res, want):
        np.testing.assert_allclose(got, w, rtol=1e-10, atol=1e-10)
    if kind == "BatchNorm2d":
        with pytest.raises(ValueError, match=r"BatchNorm2d 'bn': expected \(N, 3, H, W\)"):
            bn(sd.input("x2", (4, 3)))


def test_dropout2d_zeroes_whole_channels():
    p, shape = 0.3, (64, 16, 3, 2)
    drop = nn.Dropout2d(p, name="d2")
    x = sd.input("x", shape, "float32")
    fn = sd.compile(drop(x))
    ones = np.ones(shape, np.float32)
    masks = [fn(x=ones, rng_seed=np.int64(1), rng_step=np.int64(s)) for s in range(3)]
    for m in masks:
        per_channel = m.reshape(shape[0], shape[1], -1)
        assert np.all(per_channel == per_channel[:, :, :1])  # one value per (sample, channel)
        np.testing.assert_allclose(np.unique(m), [0.0, 1 / (1 - p)], rtol=1e-6)
        frac = np.mean(per_channel[:, :, 0] == 0)
        assert abs(frac - p) < 0.06, frac  # 1024 channels: 4.6 standard deviations
    assert not np.array_equal(masks[0], masks[1])  # a new mask every step
    again = fn(x=ones, rng_seed=np.int64(1), rng_step=np.int64(0))
    np.testing.assert_array_equal(again, masks[0])
    drop.eval()
    assert drop(x) is x
    with pytest.raises(ValueError):
        nn.Dropout2d(1.0)


def test_conv_init_fans():
    assert nn.init.fans((8, 3, 5, 5)) == (75, 200)  # PyTorch's _calculate_fan_in_and_fan_out
    assert nn.init.conv_fans((8, 3, 5, 5)) == (75, 200)
    assert nn.init.conv_fans((8, 2, 3, 3), groups=2) == (18, 36)
    assert nn.init.conv_fans((4, 3, 3, 3), groups=2, transposed=True) == (18, 27)
    checks = [  # module, the fan-in of its weight
        (nn.Conv2d(16, 32, 5, name="a"), 16 * 25),
        (nn.Conv2d(16, 32, 3, groups=4, name="b"), 4 * 9),
        (nn.Conv1d(8, 64, 7, name="c"), 8 * 7),
        (nn.ConvTranspose2d(32, 16, 4, groups=2, name="d"), 16 * 16),
    ]
    for mod, fan_in in checks:
        w = mod.init_values(0)[mod.W.name]
        assert w.dtype == np.float32
        assert abs(w.std() / np.sqrt(2 / fan_in) - 1) < 0.05, (mod, w.std())
        np.testing.assert_array_equal(mod.init_values(0)[mod.b.name], 0)  # biases start at zero, as Linear's
    assert nn.Conv2d(16, 32, 5, name="a").W.meta["init"] is nn.init.kaiming_normal  # groups=1: no partial
    xa = nn.Conv2d(6, 12, 3, groups=3, init="xavier", name="xa").init_values(0)["xa_W"]
    a = np.sqrt(6 / (2 * 9 + 4 * 9))
    assert xa.max() <= a and xa.max() > 0.95 * a


def test_shapes_flatten_and_errors():
    x = sd.input("x", (2, 3, 4, 5))
    assert nn.Flatten()(x).shape == (2, 60)
    assert nn.Flatten(start_dim=2)(x).shape == (2, 3, 20)
    assert nn.Flatten(0, 1)(x).shape == (6, 4, 5)
    assert nn.ConvTranspose2d(3, 2, 3, stride=2, padding=1, output_padding=1)(x).shape == (2, 2, 8, 10)
    assert nn.Conv2d(3, 8, 3, padding="same")(x).shape == (2, 8, 4, 5)
    assert nn.MaxPool2d(2)(x).shape == (2, 3, 2, 2)
    assert nn.AdaptiveAvgPool2d((None, 1))(x).shape == (2, 3, 4, 1)
    conv = nn.Conv2d(3, 2, 3, name="cu")
    assert conv.weight is conv.W and conv.bias is conv.b  # PyTorch's names
    assert conv(sd.input("x3", (3, 4, 5))).shape == (2, 2, 3)  # unbatched (C, H, W), as PyTorch
    assert nn.MaxPool2d(2)(sd.input("x3", (3, 4, 5))).shape == (3, 2, 2)
    with pytest.raises(ValueError, match="expected an input .* C=4"):
        nn.Conv2d(4, 2, 3, name="c")(x)
    with pytest.raises(ValueError, match="groups=2 must divide in_channels=3"):
        nn.Conv2d(3, 4, 3, groups=2)
    with pytest.raises(ValueError, match="padding_mode"):
        nn.Conv2d(3, 4, 3, padding_mode="reflect")
    with pytest.raises(ValueError, match="strided"):
        nn.Conv2d(3, 4, 3, stride=2, padding="same")
    with pytest.raises(ValueError, match="output_padding"):
        nn.ConvTranspose2d(3, 4, 3, stride=2, output_padding=2)
    with pytest.raises(ValueError, match="kernel_size"):
        nn.Conv2d(3, 4, (3, 3, 3))


def test_trainer_on_image_batches():
    """A small conv net learns which half of a 1x8x8 image is brighter; the Trainer takes (n, 1, 8, 8)."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((96, 1, 8, 8)).astype(np.float32)
    y = (X[:, 0, :4].sum((1, 2)) > X[:, 0, 4:].sum((1, 2))).astype(np.int64)
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Dropout2d(0.1),
                          nn.MaxPool2d(2), nn.Conv2d(4, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                          nn.Linear(4, 2), name="net")
    tr = nn.Trainer(model, input_shape=(1, 8, 8), batch_size=16, lr=0.1, momentum=0.9, progress=False,
                    compile_options={"backend": "numpy"})  # llvm: examples/lenet_digits.py
    assert tr.input_shape == (1, 8, 8)
    before = tr.evaluate(X, y)
    hist = tr.fit(X, y, epochs=8)
    after = tr.evaluate(X, y)
    assert hist.loss[-1] < hist.loss[0] and after["loss"] < before["loss"]
    assert after["acc"] >= 0.8, after
    assert tr.predict(X[:5]).shape == (5, 2)
    assert set(tr.state) >= {"net_1_running_mean", "net_1_running_var", "net_0_W"}
    assert not np.allclose(tr.state["net_1_running_mean"], 0)  # the running statistics were updated
