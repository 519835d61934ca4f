"""Calling a compiled function: ``inputs=`` argument order, positional calls, the error without it, and
NumPy ufuncs on symbolic tensors (operators build nodes; np.exp names sd.exp)."""
from __future__ import annotations

import numpy as np
import pytest

import symdiff as sd


def _model():
    X, W, lab = sd.input("X", (4, 3)), sd.param("W", (3, 2)), sd.input("lab", (4,), "int64")
    return X, W, lab, sd.cross_entropy(X @ W, lab)


VALS = (np.linspace(-1, 1, 12, dtype=np.float32).reshape(4, 3), np.ones((3, 2), np.float32), np.array([0, 1, 0, 1]))


@pytest.mark.parametrize("backend", ["numpy", "llvm", "cuda-cpu"])
def test_inputs_order_allows_positional_and_keyword_calls(backend):
    X, W, lab, loss = _model()
    f = sd.compile([loss, sd.grad(loss, W)], backend=backend, inputs=[lab, X, W])
    assert f.input_names == ("lab", "X", "W")
    xv, wv, lv = VALS
    by_kw = f(X=xv, W=wv, lab=lv)
    for got in (f(lv, xv, wv), f(lv, X=xv, W=wv)):
        np.testing.assert_allclose(got[0], by_kw[0])
        np.testing.assert_allclose(got[1], by_kw[1])
    with pytest.raises(TypeError, match=r"multiple values for input\(s\) 'lab'"):
        f(lv, lab=lv, X=xv, W=wv)


@pytest.mark.parametrize("backend", ["numpy", "llvm"])
def test_positional_call_without_inputs_says_what_to_do(backend):
    X, W, lab, loss = _model()
    f = sd.compile(loss, backend=backend)
    with pytest.raises(TypeError, match=r"takes keyword arguments named after its inputs \(X=..., W=..., lab=...\); "
                                        r"3 positional arguments given.*inputs=\[...\].*input_names: \('X', 'W', 'lab'\)"):
        f(*VALS)


def test_inputs_must_cover_the_graph_and_name_each_leaf_once():
    X, W, lab, loss = _model()
    with pytest.raises(ValueError, match=r"inputs must list every leaf the outputs read; missing 'lab' \(input int64\[4\]\)"):
        sd.compile(loss, inputs=[X, W])
    with pytest.raises(ValueError, match=r"inputs lists 'X' twice"):
        sd.compile(loss, inputs=[X, W, lab, X])
    with pytest.raises(TypeError, match=r"inputs\[1\] must be an sd.input or sd.param leaf, got a matmul node"):
        sd.compile(loss, inputs=[X, X @ W, lab])


@pytest.mark.parametrize("backend", ["numpy", "llvm"])
def test_an_extra_input_keeps_its_slot_and_a_new_order_is_a_new_kernel(backend):
    X, W, lab, loss = _model()
    ref = sd.compile(loss, backend=backend)(X=VALS[0], W=VALS[1], lab=VALS[2])
    f = sd.compile(loss, backend=backend, inputs=[X, W, lab, sd.input("unused", (2,))])
    np.testing.assert_allclose(f(*VALS, np.zeros(2, np.float32)), ref)
    g = sd.compile(loss, backend=backend, inputs=[W, lab, X])  # same graph, other slots (cache keyed by both)
    np.testing.assert_allclose(g(VALS[1], VALS[2], VALS[0]), ref)


def test_operator_ufuncs_build_nodes_like_the_operators():
    x = sd.input("x", (3,), "float32")
    assert (np.float32(2) * x) is (2.0 * x)
    # NumPy scalars are strong (NEP 50), Python scalars weak: the dtypes NumPy itself gives
    assert (np.float64(2.0) - x).dtype == (np.float64(2.0) - np.ones(3, np.float32)).dtype
    assert (2.0 - x).dtype == "float32"
    assert np.add(x, x) is x + x
    assert np.negative(x) is -x
    assert (np.float32(1) < x) is (x > np.float32(1))


@pytest.mark.parametrize("fn,match", [
    (lambda x: np.exp(x), r"np.exp\(\) cannot be applied to a symbolic sd.Tensor .*use sd.exp\(...\), its DSL twin"),
    (lambda x: np.maximum(x, 0), r"use sd.maximum\(...\)"),
    (lambda x: np.add.reduce(x), r"np.add.reduce cannot be applied .*sd.sum"),
    (lambda x: np.ldexp(x, 2), r"symdiff has no sd.ldexp"),
])
def test_other_ufuncs_name_the_dsl_twin(fn, match):
    with pytest.raises(TypeError, match=match):
        fn(sd.input("x", (3,)))


def test_llvm_calls_go_straight_to_the_c_kernel():
    """A fixed-shape llvm function's ``__call__`` is a property returning its C Kernel (no Python frame per
    call); the Kernel is keywords-only without ``inputs=`` and refuses a positional call with the same
    words as check_positional, for one argument too; a symbolic-size function keeps its Python path."""
    X, W, lab, loss = _model()
    f = sd.compile(loss, backend="llvm")
    assert isinstance(type(f).__dict__["__call__"], property) and f.__call__ is f.kernel
    np.testing.assert_allclose(f(X=VALS[0], W=VALS[1], lab=VALS[2]), sd.compile(loss, "numpy")(
        X=VALS[0], W=VALS[1], lab=VALS[2]), rtol=1e-6)
    with pytest.raises(TypeError, match=r"^this compiled function \(llvm\) takes keyword arguments .*1 positional "
                                        r"argument given"):
        f(VALS[0], W=VALS[1], lab=VALS[2])
    g = sd.compile(loss, backend="llvm", inputs=[X, W, lab])
    assert g.__call__ is g.kernel and np.allclose(g(*VALS), f(X=VALS[0], W=VALS[1], lab=VALS[2]))
    x = sd.input("x", ("n", 3))
    h = sd.compile(sd.sum(x * x), "llvm")
    assert h.kernel is None and h.__call__ == h._call_sized
    assert h(x=np.ones((4, 3))) == 12.0 and h(x=np.ones((2, 3))) == 6.0


def test_kernel_keywords_only_option():
    from symdiff.codegen.runtime import kernel as runtime
    X, W, lab, loss = _model()
    f = sd.compile(loss, backend="llvm")
    k = f.kernel
    kw = runtime.Kernel(f.entry_address, f.pool, [(s.name, s.shape, s.dtype) for s in f.signature.leaves],
                        [("out0", (), "float32")], returns="single", owner=f.jit,
                        workspace_bytes=f.program.workspace_bytes, signature=f.signature, keywords_only="my fn")
    assert kw(X=VALS[0], W=VALS[1], lab=VALS[2]) == k(X=VALS[0], W=VALS[1], lab=VALS[2])
    with pytest.raises(TypeError, match=r"^my fn takes keyword arguments .*3 positional arguments given"):
        kw(*VALS)
    with pytest.raises(TypeError, match="keywords_only must be None or a str"):
        runtime.Kernel(f.entry_address, None, [], [("o", (), "float32")], keywords_only=3)
