"""symdiff.nn modules, losses, regularisers and initialisers."""
import numpy as np
import pytest

import symdiff as sd
import symdiff.nn as nn

RNG = np.random.default_rng(1234)


def randn(*shape):
    return RNG.standard_normal(shape)


def check(loss, wrt, values):
    rep = sd.check_grad(loss, wrt, values)
    assert rep.passed, str(rep)


def _probe(y):
    """A scalar that depends on every output entry with distinct weights."""
    r = sd.const(np.linspace(-1.0, 1.5, int(np.prod(y.shape))).reshape(y.shape), "float64")
    return sd.sum(sd.tanh(y) * r)


# -- finite-difference checks, one per module ----------------------------------------------------------

def test_linear_grad_and_value():
    x = sd.input("x", (4, 3), "float64")
    lin = nn.Linear(3, 2, name="fc", dtype="float64")
    assert [p.name for p in lin.params()] == ["fc_W", "fc_b"]
    assert lin.W.shape == (3, 2) and lin.b.shape == (2,)
    vals = {"x": randn(4, 3), **lin.init_values(0)}
    vals["fc_b"] = randn(2)
    y = sd.compile(lin(x))(**vals)
    np.testing.assert_allclose(y, vals["x"] @ vals["fc_W"] + vals["fc_b"])
    check(_probe(lin(x)), [x, lin.W, lin.b], vals)
    assert nn.Linear(3, 2, bias=False, name="nb").params()[0].name == "nb_W"


@pytest.mark.parametrize("mod,ref", [
    (nn.ReLU(), lambda a: np.maximum(a, 0)),
    (nn.Sigmoid(), lambda a: 1 / (1 + np.exp(-a))),
    (nn.Tanh(), np.tanh),
    (nn.Softmax(), lambda a: np.exp(a) / np.exp(a).sum(-1, keepdims=True)),
    (nn.LogSoftmax(), lambda a: a - np.log(np.exp(a).sum(-1, keepdims=True))),
    (nn.Softmax(axis=0), lambda a: np.exp(a) / np.exp(a).sum(0, keepdims=True)),
    (nn.Identity(), lambda a: a),
])
def test_activation_modules(mod, ref):
    x = sd.input("x", (3, 5), "float64")
    xv = randn(3, 5) + 0.05  # keep away from the ReLU kink
    np.testing.assert_allclose(sd.compile(mod(x))(x=xv), ref(xv), rtol=1e-12)
    check(_probe(mod(x)), x, {"x": xv})
    assert mod.params() == []


def test_duplicate_add_max_modules():
    x = sd.input("x", (2, 3), "float64")
    w = sd.input("w", (2, 3), "float64")
    a, b = nn.Duplicate()(x)
    assert a is x and b is x
    y = nn.Add()(sd.sin(a), sd.square(b))  # fan-out: the branch gradients are summed
    xv = randn(2, 3)
    g = sd.compile(sd.grad(sd.sum(y), x))(x=xv)
    np.testing.assert_allclose(g, np.cos(xv) + 2 * xv)
    check(_probe(y), x, {"x": xv})
    m = nn.Max()(x, w)
    vals = {"x": xv, "w": xv + np.where(RNG.random((2, 3)) < 0.5, 0.3, -0.3)}  # no ties
    np.testing.assert_array_equal(sd.compile(m)(**vals), np.maximum(vals["x"], vals["w"]))
    check(_probe(m), [x, w], vals)
    # through Sequential: Duplicate feeds both arguments of Add
    twice = nn.Sequential(nn.Duplicate(), nn.Add())
    np.testing.assert_allclose(sd.compile(twice(x))(x=xv), 2 * xv)


def test_flatten_and_sequential_naming():
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Sequential(nn.Linear(8, 8), nn.Tanh()),
                          nn.Linear(8, 3, name="head"), name="mlp")
    names = [p.name for p in model.params()]
    assert names == ["mlp_0_W", "mlp_0_b", "mlp_2_0_W", "mlp_2_0_b", "head_W", "head_b"]
    x = sd.input("x", (5, 4), "float64")
    vals = {"x": randn(5, 4), **model.init_values(3)}
    check(_probe(model(x)), [x, *model.params()], vals)
    assert sd.compile(nn.Flatten()(sd.input("img", (2, 3, 4))))(img=np.ones((2, 3, 4))).shape == (2, 12)
    with pytest.raises(ValueError, match="distinct names"):
        nn.Sequential(nn.Linear(2, 2, name="a"), nn.Linear(2, 2, name="a")).params()
    with pytest.raises(ValueError):
        nn.Linear(2, 2, name="not valid")


def _bn_reference(x, gamma, beta, rm, rv, eps, momentum, training):
    if training:
        mean, var = x.mean(0), x.var(0)
        y = (x - mean) / np.sqrt(var + eps) * gamma + beta
        n = x.shape[0]
        return y, (1 - momentum) * rm + momentum * mean, (1 - momentum) * rv + momentum * var * n / (n - 1)
    return (x - rm) / np.sqrt(rv + eps) * gamma + beta, rm, rv


@pytest.mark.parametrize("training", [True, False])
def test_batchnorm_against_numpy(training):
    x = sd.input("x", (16, 5), "float64")
    bn = nn.BatchNorm1d(5, eps=1e-3, momentum=0.2, dtype="float64", name="bn1")
    bn.train(training)
    y = bn(x)
    ups = bn.state_updates()
    assert set(ups) == ({"bn1_running_mean", "bn1_running_var"} if training else set())
    vals = {"x": randn(16, 5) * 3 + 2, "bn1_gamma": randn(5), "bn1_beta": randn(5),
            "bn1_running_mean": randn(5), "bn1_running_var": RNG.random(5) + 0.5}
    ref_y, ref_m, ref_v = _bn_reference(vals["x"], vals["bn1_gamma"], vals["bn1_beta"], vals["bn1_running_mean"],
                                        vals["bn1_running_var"], 1e-3, 0.2, training)
    outs = sd.compile([y, *ups.values()])
    res = outs(**{k: v for k, v in vals.items() if k in outs.input_names})
    np.testing.assert_allclose(res[0], ref_y, rtol=1e-10, atol=1e-12)
    if training:
        np.testing.assert_allclose(res[1], ref_m, rtol=1e-10)
        np.testing.assert_allclose(res[2], ref_v, rtol=1e-10)
        # normalised output: zero mean, unit variance per feature (before gamma/beta)
        xhat = (res[0] - vals["bn1_beta"]) / vals["bn1_gamma"]
        np.testing.assert_allclose(xhat.mean(0), 0, atol=1e-10)
    # gradient flows through mean and variance in training mode (checked against finite differences)
    check(_probe(y), [x, *bn.params()], vals)


def test_batchnorm_train_gradient_is_not_the_frozen_statistics_gradient():
    x = sd.input("x", (8, 3), "float64")
    bn = nn.BatchNorm1d(3, dtype="float64")
    g = sd.grad(sd.sum(bn(x)), x)  # sum of a normalised batch is constant in x -> zero gradient
    vals = {"x": randn(8, 3), **bn.init_values()}
    np.testing.assert_allclose(sd.compile(g)(**{k: vals[k] for k in ("x", "bn_gamma")}), 0, atol=1e-12)


def test_module_init_values_and_modes():
    model = nn.Sequential(nn.Linear(6, 4), nn.BatchNorm1d(4), nn.ReLU(), nn.Dropout(0.5), name="m")
    v0, v1, v0b = model.init_values(0), model.init_values(1), model.init_values(0)
    assert set(v0) == {"m_0_W", "m_0_b", "m_1_gamma", "m_1_beta", "m_1_running_mean", "m_1_running_var"}
    assert set(model.init_values(0, buffers=False)) == {p.name for p in model.params()}
    for k in v0:
        np.testing.assert_array_equal(v0[k], v0b[k])
        assert v0[k].dtype == np.float32
    assert not np.array_equal(v0["m_0_W"], v1["m_0_W"])
    np.testing.assert_array_equal(v0["m_0_b"], 0)
    np.testing.assert_array_equal(v0["m_1_gamma"], 1)
    np.testing.assert_array_equal(v0["m_1_running_var"], 1)
    assert [b.name for b in model.buffers()] == ["m_1_running_mean", "m_1_running_var"]
    x = sd.input("x", (10, 6))
    model.eval()
    y_eval = model(x)
    assert model.state_updates() == {}
    names = sd.compile(y_eval).input_names
    assert "rng_seed" not in names and "m_1_running_mean" in names
    model.train()
    assert "rng_seed" in sd.compile(model(x)).input_names


# -- initialisers -------------------------------------------------------------------------------------------------

def test_initialiser_statistics():
    rng = np.random.default_rng(0)
    w = nn.init.kaiming_normal((400, 300), rng)
    assert abs(w.mean()) < 0.005
    assert abs(w.std() / np.sqrt(2 / 400) - 1) < 0.01
    u = nn.init.xavier_uniform((400, 300), np.random.default_rng(0))
    a = np.sqrt(6 / 700)
    assert u.min() >= -a and u.max() <= a and u.max() > 0.99 * a
    assert abs(u.var() / (2 / 700) - 1) < 0.02
    np.testing.assert_array_equal(nn.init.kaiming_normal((5, 3), np.random.default_rng(7)),
                                  nn.init.kaiming_normal((5, 3), np.random.default_rng(7)))
    assert nn.init.fans((10, 20)) == (10, 20)
    # the value of a named parameter depends only on (seed, name)
    p = sd.param("foo", (50, 40), init=nn.init.xavier_uniform)
    q = sd.param("bar", (3,), init=None)
    v = nn.init_values([sd.sum(p) + sd.sum(q)], seed=5)
    np.testing.assert_array_equal(v["foo"], nn.init.xavier_uniform((50, 40), nn.init.param_rng(5, "foo")).astype(np.float32))
    np.testing.assert_array_equal(v["bar"], 0)
    lin = nn.Linear(300, 10, init="xavier", name="x1")
    assert abs(lin.init_values(0)["x1_W"].std() / np.sqrt(2 / 310) - 1) < 0.05
    with pytest.raises(ValueError):
        nn.Linear(2, 2, init="nope")


# -- losses and regularisers -------------------------------------------------------------------------------------

def test_losses_against_numpy():
    z = sd.input("z", (6, 4), "float64")
    lab = sd.input("lab", (6,), "int64")
    zv, lv = randn(6, 4), RNG.integers(0, 4, 6)
    lsm = zv - np.log(np.exp(zv).sum(1, keepdims=True))
    ref = -lsm[np.arange(6), lv].mean()
    ce, nl = sd.compile([nn.cross_entropy(z, lab), nn.nll(sd.log_softmax(z), lab)])(z=zv, lab=lv)
    np.testing.assert_allclose([ce, nl], [ref, ref], rtol=1e-12)
    check(nn.nll(nn.LogSoftmax()(z), lab), z, {"z": zv, "lab": lv})
    t = sd.input("t", (6, 4), "float64")
    tv = randn(6, 4)
    np.testing.assert_allclose(sd.compile(nn.mse(z, t))(z=zv, t=tv), np.mean((zv - tv) ** 2))
    y01 = (RNG.random((6, 4)) < 0.5).astype(np.float64)
    p = 1 / (1 + np.exp(-zv))
    bce_ref = -np.mean(y01 * np.log(p) + (1 - y01) * np.log(1 - p))
    np.testing.assert_allclose(sd.compile(nn.bce_with_logits(z, t))(z=zv, t=y01), bce_ref, rtol=1e-12)
    check(nn.bce_with_logits(z, t), [z, t], {"z": zv, "t": y01})
    # stable on large logits (no log(0), no overflow)
    big = sd.compile([nn.bce_with_logits(z, t), sd.grad(nn.bce_with_logits(z, t), z)])(z=zv * 1e3, t=y01)
    assert np.all(np.isfinite(big[0])) and np.all(np.isfinite(big[1]))


def test_regularisers():
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2), name="r")
    vals = model.init_values(0)
    vals = {k: v + RNG.standard_normal(v.shape).astype(v.dtype) for k, v in vals.items()}
    W = [vals["r_0_W"], vals["r_2_W"]]
    allp = list(vals.values())
    l2, l2b, l1, l1b = sd.compile([nn.l2(model, 0.1), nn.l2(model, 0.1, biases=True), nn.l1(model, 0.01),
                                   nn.l1(model.params(), 0.01, biases=True)])(**vals)
    np.testing.assert_allclose(l2, 0.1 * sum((w ** 2).sum() for w in W), rtol=1e-5)
    np.testing.assert_allclose(l2b, 0.1 * sum((w ** 2).sum() for w in allp), rtol=1e-5)
    np.testing.assert_allclose(l1, 0.01 * sum(np.abs(w).sum() for w in W), rtol=1e-5)
    np.testing.assert_allclose(l1b, 0.01 * sum(np.abs(w).sum() for w in allp), rtol=1e-5)
    g = sd.compile(sd.grad(nn.l2(model, 0.1), model.params()))(**{k: vals[k] for k in ("r_0_W", "r_2_W")})
    np.testing.assert_allclose(g[0], 0.2 * vals["r_0_W"], rtol=1e-6)
    np.testing.assert_array_equal(g[1], 0)  # the bias is not decayed
