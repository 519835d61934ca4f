"""Regression tests: each failure found by the differential fuzzer (tests/test_fuzz.py,
benchmarks/fuzz_long.py) or the bad-input matrix, reduced to a minimal graph and pinned here.
docs/reliability.md lists them with their causes and fixes."""
from __future__ import annotations

import numpy as np
import pytest

import symdiff as sd
from symdiff.ir import apply

COMPILED = ["llvm", "cuda-cpu"]


def _agree(outputs, values, backend, rtol=1e-6):
    ref = sd.compile(outputs, backend="numpy")(**values)
    got = sd.compile(outputs, backend=backend)(**values)
    if not isinstance(ref, tuple):
        ref, got = (ref,), (got,)
    for g, r in zip(got, ref):
        assert g.shape == r.shape and g.dtype == r.dtype
        np.testing.assert_allclose(g, r, rtol=rtol, atol=0, equal_nan=True)
    return got


@pytest.mark.parametrize("backend", COMPILED)
def test_logsumexp_over_several_axes_and_over_none(backend):
    """Fuzz: ``sd.logsumexp(x, axis=(0, 2))`` raised NotImplementedError at lowering ("logsumexp over
    several axes is not lowered yet") and a 0-d logsumexp (axes=()) an IndexError. Fixed in
    codegen/lower.py: such nodes are rewritten to one-axis logsumexp (axes moved last and merged)."""
    x = sd.input("x", (2, 3, 4), "float64")
    s = sd.input("s", (), "float32")
    outs = [sd.logsumexp(x, axis=(0, 2)), sd.logsumexp(x, axis=(0, 2), keepdims=True), sd.logsumexp(x, axis=None),
            sd.logsumexp(x, axis=(2, 1), keepdims=True), sd.logsumexp(s, axis=None), sd.logsumexp(s, axis=(), keepdims=True)]
    loss = sd.sum(outs[0] * np.array([1.0, -2.0, 0.5])) + outs[2] + sd.sum(outs[3]) + sd.astype(outs[4], "float64")
    outs += sd.grad(loss, [x, s])
    vals = {"x": np.random.default_rng(0).standard_normal((2, 3, 4)), "s": np.float32(0.7)}
    got = _agree(outs, vals, backend, rtol=1e-6)
    xv = vals["x"]
    np.testing.assert_allclose(got[0], np.log(np.exp(xv).sum(axis=(0, 2))), rtol=1e-12)
    assert got[4] == np.float32(0.7) and got[5].shape == ()


@pytest.mark.parametrize("backend", COMPILED)
def test_softmax_rows_with_infinities(backend):
    """Fuzz (special values): softmax over a row holding +inf and -inf gave NaN everywhere on the numpy
    reference but 0 for the -inf entries on llvm/cuda-cpu (which shift by the row max only when it is
    finite, as logsumexp always did). Fixed in symdiff/ops_tensor.py: the reference shifts the same way."""
    x = sd.input("x", (4, 3), "float64")
    vals = {"x": np.array([[np.inf, -np.inf, 1.0], [-np.inf, -np.inf, -np.inf], [np.inf, np.inf, 0.0],
                           [np.nan, 1.0, 2.0]])}
    got = _agree([sd.softmax(x, axis=1), sd.log_softmax(x, axis=1), sd.logsumexp(x, axis=1),
                  sd.softmax(x, axis=0)], vals, backend)
    np.testing.assert_array_equal(got[0][0], [np.nan, 0.0, 0.0])  # inf/inf is undefined, exp(-inf) is 0
    assert np.isnan(got[0][1]).all() and np.isnan(got[0][3]).all()
    np.testing.assert_array_equal(got[2], [np.inf, -np.inf, np.inf, np.nan])


@pytest.mark.parametrize("backend", COMPILED)
@pytest.mark.parametrize("dtype,big", [("float32", 1e19), ("float32", 3e4), ("float64", 1e300), ("float64", 1e12)])
def test_log_softmax_keeps_log_sum_next_to_a_large_max(backend, dtype, big):
    """Fuzz (special values): log_softmax([1e19, 1e19, ...]) gave 0 instead of -log 2 on llvm and
    cuda-cpu: they computed x - (max + log(sum)), where log(sum) vanishes next to a large max.
    Fixed in codegen/llvm/render.py and codegen/cuda/render.py: (x - max) - log(sum), as numpy."""
    x = sd.input("x", (2, 4), dtype)
    xv = np.array([[big, big, 0.0, -big], [big, big - 1 if big < 1e5 else big, big, big]], dtype)
    got = _agree([sd.log_softmax(x, axis=1), sd.log_softmax(x, axis=0)], {"x": xv}, backend, rtol=1e-6)
    np.testing.assert_allclose(got[0][0, :2], [-np.log(2)] * 2, rtol=1e-6)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_maximum_minimum_relu_signed_zeros_match_numpy_on_llvm(dtype):
    """Bad-input matrix (special values): llvm's maximum/minimum used llvm.maximum/llvm.minimum, which
    order -0 < +0, while np.maximum returns its second operand on a tie (maximum(0., -0.) = -0.).
    Fixed in codegen/llvm/render.py: (a > b or a is NaN) ? a : b, exactly numpy's rule."""
    a, b = sd.input("a", (6,), dtype), sd.input("b", (6,), dtype)
    av = np.array([0.0, -0.0, np.nan, 1.0, -0.0, 2.0], dtype)
    bv = np.array([-0.0, 0.0, 1.0, np.nan, -0.0, 1.0], dtype)
    outs = [sd.maximum(a, b), sd.minimum(a, b), sd.relu(a), sd.maximum(b, a)]
    ref = sd.compile(outs, backend="numpy")(a=av, b=bv)
    got = sd.compile(outs, backend="llvm")(a=av, b=bv)
    for g, r in zip(got, ref):
        np.testing.assert_array_equal(g, r)
        np.testing.assert_array_equal(np.signbit(g), np.signbit(r))


def test_sign_of_negative_zero_on_cuda_cpu():
    """Bad-input matrix (special values): the CUDA renderer's sd_sign returned its argument for zeros,
    so sign(-0.) = -0. where numpy gives 0. Fixed in codegen/cuda/render.py."""
    a = sd.input("a", (4,), "float32")
    got = sd.compile(apply("sign", [a]), backend="cuda-cpu")(a=np.array([-0.0, 0.0, np.nan, -3.0], np.float32))
    np.testing.assert_array_equal(got, [0.0, 0.0, np.nan, -1.0])
    assert not np.signbit(got[0])


@pytest.mark.parametrize("backend", ["numpy", "llvm", "cuda-cpu"])
def test_bool_arrays_are_rejected_everywhere(backend):
    """Bad-input matrix: the llvm C runtime accepted bool data for float inputs (a silent 0/1 cast)
    while the numpy backend raised TypeError. Now every backend's call goes through
    symdiff/signature.py (the C runtime hands every non-exact call to it), which rejects bool, so every
    backend raises the same TypeError."""
    x = sd.input("x", (3,), "float32")
    f = sd.compile(x * 2.0, backend=backend)
    with pytest.raises(TypeError, match=r"input 'x': expected a numeric array of dtype float32, got dtype bool"):
        f(x=np.array([True, False, True]))


def test_runtime_kernel_rejects_bool_too():
    """A bare runtime Kernel (no graph Signature given) words the error through Signature too."""
    from symdiff.codegen.runtime import kernel as runtime
    x = sd.input("x", (3,), "float32")
    f = sd.compile(x * 2.0, backend="llvm")
    k = runtime.Kernel(f.entry_address, None, [("x", (3,), "float32")], [("o", (3,), "float32")],
                       returns="single", owner=f.jit, workspace_bytes=f.program.workspace_bytes)
    np.testing.assert_array_equal(k(np.array([1.0, 2.0, 3.0], np.float32)), [2.0, 4.0, 6.0])
    with pytest.raises(TypeError, match=r"kernel\(\): input 'x': expected a numeric array of dtype float32, got dtype bool"):
        k(np.array([True, False, True]))


@pytest.mark.parametrize("backend", ["numpy", "cuda-cpu"])
def test_int_input_that_does_not_fit_is_not_wrapped(backend):
    """Bad-input matrix: an int32 input (a rand_uniform seed) given 2**40 was silently wrapped to 0 by
    the numpy and cuda-cpu backends but rejected by the llvm runtime. Fixed in symdiff/signature.py:
    narrowing integer casts are range-checked, with the same message on every backend."""
    from symdiff.ops_random import rand_uniform
    seed = sd.input("seed", (), "int32")
    f = sd.compile(rand_uniform(seed, 0, (4,), "float64"), backend=backend)
    with pytest.raises(ValueError, match=r"input 'seed': value 1099511627776 does not fit in int32"):
        f(seed=2**40)
    np.testing.assert_array_equal(f(seed=np.int64(3)), f(seed=np.int32(3)))


@pytest.mark.parametrize("backend", ["numpy", "llvm"])
def test_ragged_list_names_the_input(backend):
    """Bad-input matrix: a ragged nested list raised numpy's bare ValueError ("setting an array element
    with a sequence") without naming the input. Now a TypeError that names it, on every backend."""
    x = sd.input("x", (2, 2), "float64")
    f = sd.compile(x + 1.0, backend=backend)
    with pytest.raises(TypeError, match=r"input 'x': cannot convert list to a numeric array float64\[2, 2\]"):
        f(x=[[1.0, 2.0], [3.0]])


def test_reshaped_matmul_output_listed_twice_is_written_twice():
    """Fuzz seed 1000097 (benchmarks/fuzz_long.py): an output that reshapes a stored node is written in place
    by that node's kernel; the same output listed a second time got its own buffer that no kernel wrote
    (5e-324 came back). Fixed in codegen/lower.py: the repeat is a copy of the first."""
    a, b = sd.input("a", (1, 3), "float64"), sd.input("b", (3, 1), "float64")
    y = sd.reshape(a @ b, ())
    f = sd.compile([y, a * 2.0, y], backend="llvm")
    av, bv = np.arange(3.0).reshape(1, 3), np.ones((3, 1))
    out = f(a=av, b=bv)
    assert float(out[0]) == float(out[2]) == 3.0
