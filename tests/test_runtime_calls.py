"""Calling runtime Kernels: binding, conversions, errors (worded by symdiff.signature.Signature),
outputs, workspace, concurrency and the GIL. Kernels are tiny C functions (tests/runtime_support.py)."""
from __future__ import annotations

import ctypes
import gc
import os
import shutil
import subprocess
import threading
import time
import weakref
from pathlib import Path

import numpy as np
import pytest

from symdiff.codegen.runtime import kernel as runtime
from runtime_support import *  # noqa: F401,F403  (C kernels, fixtures: clib, impl, xy, ...)


# ------------------------------------------------------------------ calling kernels


def test_call_basic(clib, impl):
    k = axpy_kernel(clib, impl)
    x, y = xy()
    o, s = k(x, y)
    np.testing.assert_array_equal(o, 2 * x + y)
    assert s.shape == () and s.dtype == np.float64 and float(s) == x.sum()
    o2, _ = k(y=y, x=x)
    o3, _ = k(x, y=y)
    np.testing.assert_array_equal(o2, o)
    np.testing.assert_array_equal(o3, o)
    assert k.input_names == ("x", "y") and k.output_names == ("o", "s")
    assert k.input_specs[0] == ("x", (2, 3), np.dtype("float32"), None)
    assert k.output_specs[1] == ("s", (), np.dtype("float64"))
    assert k.name == "axpy" and "axpy" in repr(k)


def test_returns_modes(clib, impl):
    K, _ = impl
    x, y = xy()
    d = axpy_kernel(clib, impl, returns="dict")(x, y)
    assert set(d) == {"o", "s"}
    np.testing.assert_array_equal(d["o"], 2 * x + y)
    single = K(addr(clib, "k_pick64"), None, PICK_IN, PICK_OUT, returns="single")
    logits = np.arange(12.0).reshape(4, 3)
    out = single(logits, np.array([0, 1, 2, 0]))
    assert isinstance(out, np.ndarray)
    np.testing.assert_array_equal(out, [0.0, 4.0, 8.0, 9.0])


def _err(k, *args, **kwargs):
    try:
        k(*args, **kwargs)
    except (TypeError, ValueError) as e:
        return e
    raise AssertionError("no error raised")


def test_argument_binding_errors(clib, impl):
    k = axpy_kernel(clib, impl)
    x, y = xy()
    e = _err(k, x)
    assert isinstance(e, TypeError) and "axpy(): takes 2 inputs ('x', 'y') but 1 positional was given" in str(e)
    assert isinstance(_err(k, x, y, y), TypeError)
    e = _err(k, x, z=y)
    assert isinstance(e, TypeError) and "unexpected input(s) 'z'" in str(e)
    e = _err(k, x, x=y)
    assert isinstance(e, TypeError) and "multiple values for input(s) 'x'" in str(e)
    e = _err(k, x=x)
    assert isinstance(e, TypeError) and "missing input(s) 'y'" in str(e)
    # the messages are Signature's: the same as the numpy backend's
    from symdiff.signature import Signature
    sig = Signature.from_specs(k.input_specs, "axpy")
    with pytest.raises(TypeError) as ref:
        sig.bind_call((x,), {})
    assert str(ref.value) == str(_err(k, x))


def test_signature_sees_only_calls_off_the_fast_path(clib):
    """Exact arrays never reach Python; one non-exact argument is converted by Signature.convert_input
    alone; a call C cannot bind goes whole to Signature.bind_call, whose error is the one raised."""
    from symdiff.signature import Signature

    class Recorder(Signature):
        def convert_input(self, i, value):
            calls.append(("convert_input", i))
            return super().convert_input(i, value)

        def bind_call(self, args, kwargs):
            calls.append(("bind_call", len(args), tuple(kwargs)))
            return super().bind_call(args, kwargs)

    calls: list = []
    sig = Recorder.from_specs([(n, shape, np.dtype(dt), None) for n, shape, dt in AXPY_IN], "axpy")
    k = runtime.Kernel(addr(clib, "k_axpy"), None, AXPY_IN, AXPY_OUT, name="axpy", signature=sig)
    assert k.signature is sig
    x, y = xy()
    ref = k(x, y)[0]
    k(x, y), k(y=y, x=x), k(x, y=y)
    assert calls == []
    np.testing.assert_array_equal(k(x.astype(np.float64), y)[0], ref)
    assert calls == [("convert_input", 0)]
    calls.clear()
    np.testing.assert_array_equal(k(x, y=y.tolist())[0], ref)
    assert calls == [("convert_input", 1)]
    calls.clear()
    with pytest.raises(TypeError, match=r"axpy\(\): missing input\(s\) 'y'"):
        k(x=x)
    assert calls == [("bind_call", 0, ("x",))]
    # without a signature= the Kernel builds one from its specs, with its name in the messages
    k2 = runtime.Kernel(addr(clib, "k_axpy"), None, AXPY_IN, AXPY_OUT, name="axpy2")
    assert k2.signature.names == ("x", "y") and k2.signature.prefix == "axpy2(): "


@pytest.mark.parametrize("case", ["none", "complex", "string", "object", "bytes", "shape", "ndim",
                                  "scalar", "ragged"])
def test_float_input_errors(clib, impl, case):
    k = axpy_kernel(clib, impl)
    x, y = xy()
    bad = {
        "none": None,
        "complex": x.astype(np.complex64),
        "string": np.array([["a", "b", "c"], ["d", "e", "f"]]),
        "object": np.array([[1.0, None, 2.0], [1.0, 2.0, 3.0]], dtype=object),
        "bytes": b"abcdef",
        "shape": np.zeros((3, 2), np.float32),
        "ndim": np.zeros(6, np.float32),
        "scalar": 1.0,
        "ragged": [[1.0, 2.0, 3.0], [1.0]],
    }[case]
    e = _err(k, bad, y)
    msg = str(e)
    assert "axpy()" in msg and "'x'" in msg, msg
    if case in ("shape", "ndim", "scalar"):
        assert isinstance(e, ValueError)
        got = np.shape(bad)
        assert f"expected shape (2, 3), got {got}" in msg
    else:
        assert isinstance(e, TypeError)
    if case == "complex":
        assert "complex64" in msg and "float32" in msg
    if case == "none":
        assert "got NoneType" in msg and "float32[2, 3]" in msg
    if case == "string":
        assert "<U1" in msg
    if case == "object":
        assert "object" in msg
    if case == "ragged":
        assert "cannot convert list" in msg


@pytest.mark.parametrize("dtype", ["int64", "int32"])
def test_label_errors(clib, impl, dtype):
    k = pick_kernel(clib, impl, dtype)
    logits = np.arange(12.0).reshape(4, 3)
    e = _err(k, logits, np.array([0.0, 1.0, 2.0, 0.0]))
    assert isinstance(e, TypeError) and "'labels'" in str(e) and "float64" in str(e)
    assert "integer" in str(e)
    e = _err(k, logits, np.array([True, False, True, False]))
    assert isinstance(e, TypeError) and "bool" in str(e)
    e = _err(k, logits, np.array([0, 1, 3, 0]))
    assert isinstance(e, ValueError)
    assert "pick(): input 'labels': label 3 is out of range [0, 3)" in str(e)
    e = _err(k, logits, np.array([0, -1, 1, 0], dtype=np.int8))  # via the cast path
    assert isinstance(e, ValueError) and "label -1 is out of range [0, 3)" in str(e)
    e = _err(k, logits, np.array([0, 1, 2, 2**40]))  # would wrap to 0 in int32
    assert isinstance(e, ValueError) and str(2**40) in str(e)
    e = _err(k, logits, np.array([0, 1, 2, 2**63 + 5], dtype=np.uint64))
    assert isinstance(e, ValueError) and str(2**63 + 5) in str(e)
    e = _err(k, logits, np.array([0, 1, 2]))
    assert isinstance(e, ValueError) and "expected shape (4,), got (3,)" in str(e)


def test_int_overflow_without_range(clib, impl):
    K, _ = impl
    k = K(addr(clib, "k_noop"), None, [("i", (3,), "int32")], [("o", (1,), "float64")], name="f")
    k(np.array([1, 2, 3], dtype=np.int64))
    e = _err(k, np.array([1, 2**31, 3], dtype=np.int64))
    assert isinstance(e, ValueError) and "f(): input 'i': value 2147483648 does not fit in int32" in str(e)


@pytest.mark.parametrize("dtype", ["int64", "int32"])
def test_label_conversions(clib, impl, dtype):
    k = pick_kernel(clib, impl, dtype)
    logits = np.arange(12.0).reshape(4, 3)
    expect = np.array([0.0, 4.0, 8.0, 9.0])
    base = np.array([0, 1, 2, 0])
    for lab in (base.astype(np.int64), base.astype(np.int32), base.astype(np.uint8),
                base.astype(np.int16), base.astype(">i8"), base.astype(np.longlong),
                np.repeat(base, 2)[::2], base[::-1][::-1].copy()[::-1][::-1], [0, 1, 2, 0]):
        before = np.array(lab, copy=True)
        np.testing.assert_array_equal(k(logits, lab)[0], expect)
        np.testing.assert_array_equal(np.asarray(lab), before)  # unmodified
    np.testing.assert_array_equal(k(np.asfortranarray(logits), base)[0], expect)
    np.testing.assert_array_equal(k(logits.astype(np.float32), base)[0], expect)


def test_float_conversions(clib, impl):
    k = axpy_kernel(clib, impl)
    x, y = xy()
    ref_o, ref_s = k(x, y)
    big = np.zeros((4, 6), np.float64)
    big[::2, ::2] = x
    variants = {
        "float64": x.astype(np.float64),
        "float16": x.astype(np.float16),
        "int64": x.astype(np.int64),
        "uint8": x.astype(np.uint8),
        "fortran": np.asfortranarray(x),
        "transposed": np.ascontiguousarray(x.T).T,
        "strided": big[::2, ::2],
        "negative strides": np.ascontiguousarray(x[::-1, ::-1])[::-1, ::-1],
        "byteswapped": x.astype(">f4"),
        "list": x.tolist(),
        "readonly": np.frombuffer(x.tobytes(), np.float32).reshape(2, 3),
    }
    for name, v in variants.items():
        before = np.array(v, copy=True)
        o, s = k(v, y)
        np.testing.assert_array_equal(o, ref_o, err_msg=name)
        assert float(s) == float(ref_s), name
        np.testing.assert_array_equal(np.asarray(v), before, err_msg=name)  # inputs unmodified
    raw = np.zeros(6 * 4 + 1, np.uint8)
    unaligned = raw[1:].view(np.float32).reshape(2, 3)
    unaligned[...] = x
    assert not unaligned.flags.aligned
    np.testing.assert_array_equal(k(unaligned, y)[0], ref_o)
    # bool data is rejected, as by the numpy backend (a mask passed by mistake is an error, not 0/1)
    m = np.array([[True, False, True], [False, True, False]])
    with pytest.raises(TypeError, match="bool"):
        k(m, y)
    # 0-d float input from Python scalars / numpy scalars
    K, _ = impl
    k0 = K(addr(clib, "k_rendezvous"), None, [("x", (), "float64")], [("o", (), "float64")])
    clib.rendezvous_reset()
    for v in (1.5, np.float32(1.5), np.array(1.5), 3):
        assert float(k0(v)[0]) == float(v) + 1


def test_zero_copy_fast_path_and_copies(clib):
    k = runtime.Kernel(addr(clib, "k_ptrs"), None, [("x", (3,), "float64")], [("o", (2,), "int64")])
    x = np.arange(3.0)
    (p,) = k(x)
    assert p[0] == x.ctypes.data  # exact match: passed without a copy
    assert p[1] != x.ctypes.data
    xs = np.arange(6.0)[::2]
    (p,) = k(xs)
    assert p[0] != xs.ctypes.data  # non-contiguous: copied
    (p,) = k(np.arange(3, dtype=np.float32))
    assert p[0] != 0


def test_outputs_are_fresh(clib, impl):
    k = axpy_kernel(clib, impl)
    x, y = xy()
    o1, s1 = k(x, y)
    o2, s2 = k(x, y)
    for a in (o1, s1, o2, s2):
        assert a.flags.c_contiguous and a.flags.writeable and a.flags.owndata and a.base is None
    assert o1.dtype == np.float32 and o1.shape == (2, 3) and s1.shape == ()
    arrays = [x, y, o1, s1, o2, s2]
    for i, a in enumerate(arrays):
        for b in arrays[i + 1:]:
            assert not np.shares_memory(a, b)
    o1[...] = -1
    np.testing.assert_array_equal(o2, 2 * x + y)


def test_zero_outputs(clib, impl):
    K, _ = impl
    k = K(addr(clib, "k_noop"), None, [("x", (3,), "float64")],
          [("o", (1000,), "float64"), ("c", (2,), "complex128"), ("b", (), "bool")], zero_outputs=True)
    for _ in range(3):
        o, c, b = k(np.zeros(3))
        assert (o == 0).all() and (c == 0).all() and not b and b.dtype == np.bool_


def test_many_inputs_heap_path(clib, impl):
    K, _ = impl
    n = 40
    k = K(addr(clib, "k_sum40"), None, [(f"a{i}", (1,), "float64") for i in range(n)],
          [("s", (), "float64")], returns="single")
    vals = [np.array([float(i)]) for i in range(n)]
    assert float(k(*vals)) == sum(range(n))
    assert float(k(**{f"a{i}": v for i, v in enumerate(vals)})) == sum(range(n))
    e = _err(k, *vals[:-1], None)
    assert "input 'a39': expected a numeric array float64[1], got NoneType" in str(e)


def test_workspace_slot(clib, impl):
    K, _ = impl
    ins, outs = [("x", (64,), "float64")], [("o", (64,), "float64")]
    k = K(addr(clib, "k_ws"), None, ins, outs, workspace_bytes=64 * 8, returns="single")
    assert k.workspace_bytes == 512
    x = np.arange(64.0)
    for _ in range(3):
        np.testing.assert_array_equal(k(x), 3 * x)
    k0 = K(addr(clib, "k_ws0"), None, ins, outs, workspace_bytes=0, returns="single")
    assert k0(x)[0] == 1.0
    with pytest.raises(ValueError, match="workspace_bytes"):
        K(addr(clib, "k_ws"), None, ins, outs, workspace_bytes=-1)
    # concurrent calls never share a workspace
    xs = [np.full(64, float(i)) for i in range(6)]
    bad: list = []

    def worker(t):
        for it in range(40):
            i = (t + it) % 6
            if not np.array_equal(k(xs[i]), 3 * xs[i]):
                bad.append((t, it))

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not bad


def test_spec_errors(clib, impl):
    K, P = impl
    a = addr(clib, "k_noop")
    out = [("o", (1,), "float64")]
    with pytest.raises(ValueError, match="non-zero function address"):
        K(0, None, [], out)
    with pytest.raises(TypeError, match="not a numpy dtype"):
        K(a, None, [("x", (1,), "nonsense")], out)
    with pytest.raises(TypeError, match="unsupported dtype"):
        K(a, None, [("x", (1,), "complex128")], out)
    with pytest.raises(TypeError, match="unsupported dtype"):
        K(a, None, [("x", (1,), "U3")], out)
    with pytest.raises(ValueError, match="non-negative ints"):
        K(a, None, [("x", (-1,), "float64")], out)
    with pytest.raises(ValueError, match="non-negative ints"):
        K(a, None, [("x", (1.5,), "float64")], out)
    with pytest.raises(ValueError, match="duplicate input name 'x'"):
        K(a, None, [("x", (1,), "float64"), ("x", (2,), "float64")], out)
    with pytest.raises(TypeError, match="label range needs an integer dtype"):
        K(a, None, [("x", (1,), "float64", 3)], out)
    with pytest.raises(ValueError, match="does not fit"):
        K(a, None, [("x", (1,), "int8", 1000)], out)
    with pytest.raises(ValueError, match="needs exactly one output"):
        K(a, None, [], out * 2 if False else [("o", (1,), "f8"), ("p", (1,), "f8")], returns="single")
    with pytest.raises(ValueError, match="returns must be"):
        K(a, None, [], out, returns="list")
    with pytest.raises(TypeError, match="pool must be"):
        K(a, "pool", [], out)
    with pytest.raises(TypeError, match="spec"):
        K(a, None, ["x"], out)
    # np.int64 dims, dtype objects, (lo, hi) ranges are accepted
    k = K(a, P(1), [("x", (np.int64(2),), np.dtype("<f8")), ("y", [3], "i4", (-1, 2))], out)
    assert k.input_specs[1] == ("y", (3,), np.dtype("int32"), (-1, 2))
    k(np.zeros(2), np.array([-1, 0, 1]))
    assert "out of range [-1, 2)" in str(_err(k, np.zeros(2), np.array([-1, 0, 2])))


def test_kernel_keeps_pool_and_owner_alive(clib):
    class Owner:
        pass

    pool = runtime.Pool(2)
    owner = Owner()
    k = runtime.Kernel(addr(clib, "k_par"), pool, [("x", (20000,), "float64")],
                       [("o", (20000,), "float64")], owner=owner)
    wp, wo = weakref.ref(pool), weakref.ref(owner)
    del pool, owner
    gc.collect()
    assert wp() is not None and wo() is not None and k.pool is wp() and k.owner is wo()
    x = np.linspace(0, 1, 20000)
    r1 = k(x)[0]
    k.pool.close()  # closed pool: the kernel runs serially
    np.testing.assert_array_equal(k(x)[0], r1)
    # a reference cycle kernel <-> owner is collectable
    holder = Owner()
    holder.k = runtime.Kernel(addr(clib, "k_noop"), None, [], [("o", (1,), "f8")], owner=holder)
    wh = weakref.ref(holder)
    del holder, k
    gc.collect()
    assert wh() is None and wp() is None


def test_concurrent_calls_match_sequential(clib):
    pool = runtime.Pool(2)
    k = runtime.Kernel(addr(clib, "k_par"), pool, [("x", (20000,), "float64")],
                       [("o", (20000,), "float64")], returns="single")
    rng = np.random.default_rng(1)
    xs = [rng.random(20000) for _ in range(8)]
    expect = [k(x) for x in xs]
    results: dict = {}
    errors: list = []
    barrier = threading.Barrier(4)

    def worker(t):
        try:
            barrier.wait()
            for it in range(25):
                i = (t + it) % len(xs)
                results[(t, it)] = (i, k(xs[i]))
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(results) == 100
    for i, out in results.values():
        np.testing.assert_array_equal(out, expect[i])


def test_gil_released_during_call(clib):
    k = runtime.Kernel(addr(clib, "k_rendezvous"), None, [("x", (), "float64")], [("o", (), "float64")],
                       returns="single")
    clib.rendezvous_reset()
    out = {}
    threads = [threading.Thread(target=lambda i=i: out.__setitem__(i, k(np.array(float(i)))))
               for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert clib.rendezvous_max() == 2  # both calls were inside entry() at the same time
    assert float(out[0]) == 1.0 and float(out[1]) == 2.0


def test_pool_close_refused_while_in_flight(clib):
    pool = runtime.Pool(2)
    k = runtime.Kernel(addr(clib, "k_rendezvous"), pool, [("x", (), "float64")], [("o", (), "float64")],
                       returns="single")
    clib.rendezvous_reset()
    t = threading.Thread(target=k, args=(np.array(1.0),))
    t.start()
    deadline = time.monotonic() + 10
    while clib.rendezvous_max() < 1 and time.monotonic() < deadline:  # wait until inside entry()
        time.sleep(0.001)
    with pytest.raises(RuntimeError, match="in flight"):
        pool.close()
    assert float(k(np.array(2.0))) == 3.0  # second caller releases the rendezvous
    t.join()
    pool.close()
    assert pool.closed and float(k(np.array(2.0))) == 3.0  # closed pool -> serial
