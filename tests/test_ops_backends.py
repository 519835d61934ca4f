"""Every op of the op table on every backend against the NumPy oracle: forward, gradient and a
Hessian-vector product, float64 and float32, plus a composite op made by ``sd.define_elementwise``.

One graph per (backend, dtype) holds every op (leaves prefixed with the op name), so each backend compiles
twice; the oracle is the numpy backend on the *unsimplified* graph (so a simplifier bug shows too).
``cuda`` joins when a GPU is present. The cases are tests/test_ops.py's ``CASES``.
"""
from __future__ import annotations

import numpy as np
import pytest
import sympy

import symdiff as sd
from symdiff.codegen.cuda import backend as cb
from symdiff.optable import OPS

from test_ops import API_CASES, CASES

BACKENDS = ["numpy", "llvm", "cuda-cpu"] + (["cuda"] if cb.gpu_info()[0] else [])
# (rtol, atol) against the numpy oracle; on a GPU nvcc contracts a * b + c into FMAs and CUDA's math functions
# have their own ulp bounds, so results there are close to, not identical with, the CPU's
TOL = {("cpu", "float64"): (1e-10, 1e-12), ("cpu", "float32"): (3e-5, 3e-6),
       ("gpu", "float64"): (1e-9, 1e-11), ("gpu", "float32"): (2e-4, 2e-5)}

COMPOSITES: dict = {}  # name -> DSL function, defined for this module only (scratch_ops_module)


@pytest.fixture(scope="module", autouse=True)
def composites(scratch_ops_module):
    COMPOSITES["softsign_t"] = sd.define_elementwise("softsign_t", lambda x: x / (1 + sympy.Abs(x)))
    # a custom SymPy head of the op table (sigmoid) inside a composite
    COMPOSITES["swish_t"] = sd.define_elementwise("swish_t", lambda x: x * OPS["sigmoid"].expr.func(x))
    yield
    COMPOSITES.clear()
    _RESULTS.clear()


def assert_close(got, want, dtype: str, what: str, backend: str = "numpy") -> None:
    """The one closeness rule of the op suite: same shape and dtype, values within the dtype's tolerance."""
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape, f"{what}: shape {got.shape} != {want.shape}"
    assert got.dtype == want.dtype, f"{what}: dtype {got.dtype} != {want.dtype}"
    rtol, atol = TOL[("gpu" if backend == "cuda" else "cpu", dtype)]
    np.testing.assert_allclose(got, want, rtol=rtol, atol=atol, err_msg=what)


def _leaves(prefix: str, vals: dict, dtype: str, values: dict) -> dict:
    nodes = {}
    for k, v in vals.items():
        v = np.asarray(v)
        v = v.astype(dtype) if v.dtype.kind == "f" else v
        nm = f"{prefix}_{k}"
        nodes[k] = (sd.param if k == "w" else sd.input)(nm, v.shape, v.dtype.name)
        values[nm] = v
    return nodes


def _derivatives(label: str, out, wrt: list, rng, outs: list, labels: list) -> None:
    """Append d/dx of a weighted sum of out, and a Hessian-vector product (the gradient of <grad, v>)."""
    y = sd.sum(out * sd.const(rng.standard_normal(out.shape), out.dtype))
    grads = sd.grad(y, wrt)
    for g, x in zip(grads, wrt):
        outs.append(g)
        labels.append(f"{label}: d/d{x.name}")
    y2 = sd.sum(grads[0] * sd.const(rng.standard_normal(grads[0].shape), grads[0].dtype))
    for h, x in zip(sd.grad(y2, wrt), wrt):
        outs.append(h)
        labels.append(f"{label}: Hv d/d{x.name}")


def op_graph(dtype: str):
    """(outputs, labels, values): every op's forward value and derivatives, in one graph."""
    outs, labels, values = [], [], {}
    every = {**CASES, **{f"sd.{k}": c for k, c in API_CASES.items()}}
    for op in sorted(every):
        case = every[op]
        tag = op.replace("sd.", "api_")  # leaf names are identifiers
        fwd = _leaves(f"{tag}_fwd", case.gen(np.random.default_rng(0)), dtype, values)
        outs.append(case.build(*fwd.values()))
        labels.append(f"{op} forward")
        nodes = _leaves(f"{tag}_grad", (case.gen_grad or case.gen)(np.random.default_rng(1)), dtype, values)
        wrt = [n for n in nodes.values() if n.dtype.startswith("float")]
        _derivatives(op, case.build(*nodes.values()), wrt, np.random.default_rng(2), outs, labels)
    for name, f in COMPOSITES.items():
        x = _leaves(name, {"x": 3 * np.random.default_rng(3).standard_normal((2, 3))}, dtype, values)["x"]
        outs.append(f(x))
        labels.append(f"{name} forward")
        _derivatives(name, f(x), [x], np.random.default_rng(4), outs, labels)
    return outs, labels, values


_RESULTS: dict = {}


def results(backend: str, dtype: str):
    key = (backend, dtype)
    if key not in _RESULTS:
        if ("graph", dtype) not in _RESULTS:
            outs, labels, values = op_graph(dtype)
            ref = sd.compile(outs, "numpy", simplify_graph=False)
            _RESULTS[("graph", dtype)] = (outs, labels, values, ref(**{k: values[k] for k in ref.input_names}))
        outs, labels, values, ref = _RESULTS[("graph", dtype)]
        f = sd.compile(outs, backend)
        got = f(**{k: values[k] for k in f.input_names})
        _RESULTS[key] = (labels, got, ref)
    return _RESULTS[key]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_every_op_forward_gradient_and_hvp(backend, dtype):
    labels, got, ref = results(backend, dtype)
    assert len(got) == len(ref) == len(labels)
    covered = {lab.split(" ")[0].split(":")[0] for lab in labels}
    assert set(CASES) | {f"sd.{k}" for k in API_CASES} | set(COMPOSITES) <= covered
    for g, r, lab in zip(got, ref, labels):
        assert_close(g, r, dtype, f"{backend}/{dtype}: {lab}", backend)


def test_composite_against_its_formula():
    softsign = COMPOSITES["softsign_t"]
    x = sd.input("x", (5,), "float64")
    xs = np.array([-3.0, -0.5, 0.0, 0.25, 4.0])
    for backend in BACKENDS:
        val, d1, d2 = sd.compile([softsign(x), sd.grad(sd.sum(softsign(x)), x),
                                  sd.grad(sd.sum(sd.grad(sd.sum(softsign(x)), x)), x)], backend)(x=xs)
        assert_close(val, xs / (1 + np.abs(xs)), "float64", f"{backend}: softsign", backend)
        assert_close(d1, 1 / (1 + np.abs(xs)) ** 2, "float64", f"{backend}: softsign'", backend)
        assert_close(d2, -2 * np.sign(xs) / (1 + np.abs(xs)) ** 3, "float64", f"{backend}: softsign''", backend)
