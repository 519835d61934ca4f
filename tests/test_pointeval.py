"""The shared point evaluator (codegen/pointeval.py) against NumPy, through a third "backend": a tiny
emitter whose index values are Python ints and whose scalar values are NumPy scalars.

Every graph is evaluated at every point of its output shape and compared with the NumPy interpreter
(``sd.compile(..., "numpy")``); ``rand_uniform`` bit-exactly with ``rand_uniform_np``. Leaves (and, in
some tests, intermediate nodes) are "materialised": ``where`` maps them to arrays the emitter reads.
"""
from __future__ import annotations

import itertools
import re

import numpy as np
import pytest

import symdiff as sd
from symdiff import ops_random as R
from symdiff.ir import apply
from symdiff.optable import OPS
from symdiff.ops_random import rand_uniform, rand_uniform_np

from symdiff.codegen.pointeval import Emitter, PointEval, rand_hash, strides


class PyEmitter(Emitter):
    """Indices are ints, values NumPy scalars; buffers are NumPy arrays; counts loads and ops."""

    def __init__(self) -> None:
        self.loads: list = []
        self.ops: list = []

    def iconst(self, v):
        return int(v)

    def iadd(self, a, b):
        return a + b

    def imul(self, a, c):
        return a * c

    def iudiv(self, a, c):
        self.ops.append("udiv")
        return a // c

    def iurem(self, a, c):
        self.ops.append("urem")
        return a % c

    def load(self, buf, offset, node):
        self.loads.append((node, offset))
        return buf.reshape(-1)[offset]

    def store_ref(self, buf, offset):
        return (id(buf), offset)

    def const(self, value, dtype):
        return np.dtype(dtype).type(value)

    def cast(self, v, src, dst):
        return np.dtype(dst).type(v)

    def scalar(self, op, args, dtype):
        self.ops.append(op)
        with np.errstate(all="ignore"):
            return np.asarray(OPS[op].impl(*args)).astype(dtype)[()]

    def to_index(self, v, dtype):
        return int(v)

    def index_eq(self, a, b, dtype):
        return np.dtype(dtype).type(1.0 if a == b else 0.0)

    # -- index selection (slice/embed/concatenate) --
    def isub(self, a, b):
        return a - b

    def iult(self, a, c):
        return 0 <= a < c

    def ieq(self, a, c):
        return a == c

    def pand(self, p, q):
        return p and q

    def iselect(self, p, a, b):
        return a if p else b

    def vselect(self, p, a, b, dtype):
        return a if p else b

    def u32(self, v, dtype):
        return int(v) & R.MASK32

    def u32const(self, c):
        return c & R.MASK32

    def u32mul(self, a, b):
        return (a * b) & R.MASK32

    def u32xor(self, a, b):
        return a ^ b

    def u32shr(self, a, k):
        return a >> k

    def u32_to_float(self, v, dtype):
        return np.dtype(dtype).type(v)


RNG = np.random.default_rng(7)


def _value(node) -> np.ndarray:
    if node.dtype.startswith("int"):
        return RNG.integers(0, 4, size=node.shape).astype(node.dtype)
    return RNG.standard_normal(node.shape).astype(node.dtype)


def point_eval(out, feeds: dict, where_extra: dict | None = None) -> tuple[np.ndarray, PyEmitter]:
    """``out`` evaluated at every point by the shared evaluator, leaves read from ``feeds``."""
    leaves = {n: feeds[n.name] for n in _leaves(out)}
    leaves.update(where_extra or {})
    em = PyEmitter()
    res = np.empty(out.shape, dtype=out.dtype)
    for point in itertools.product(*(range(s) for s in out.shape)):
        res[point] = PointEval(em, leaves)(out, list(point))
    return res, em


def _leaves(n, seen=None) -> list:
    seen = set() if seen is None else seen
    if id(n) in seen:
        return []
    seen.add(id(n))
    if n.op in ("input", "param"):
        return [n]
    return [leaf for i in n.inputs for leaf in _leaves(i, seen)]


def numpy_ref(out, feeds: dict) -> np.ndarray:
    return sd.compile(out, "numpy", simplify_graph=False)(**feeds)


def check(out, **inputs) -> PyEmitter:
    feeds = {name: _value(node) for name, node in inputs.items()}
    got, em = point_eval(out, feeds)
    ref = numpy_ref(out, feeds)
    np.testing.assert_allclose(got, ref, rtol=1e-6, atol=1e-6)
    return em


def test_strides_are_row_major():
    assert strides((3, 4, 5)) == [20, 5, 1]
    assert strides(()) == []
    assert strides((7,)) == [1]


def test_elementwise_with_broadcasting():
    x, y = sd.input("x", (3, 1, 5)), sd.input("y", (4, 5))
    check(sd.exp(x) * y + sd.sin(y) - 2.0, x=x, y=y)


def test_broadcast_to_and_cast():
    z = sd.input("z", (4, 1), "float64")
    x = sd.input("x", (3, 4, 5))
    check(sd.astype(x, "float64") * sd.broadcast_to(z, (3, 4, 5)), x=x, z=z)
    k = sd.input("k", (2, 3), "int32")
    check(sd.astype(k, "float32") * 0.5, k=k)


@pytest.mark.parametrize("perm", [(2, 1, 0), (1, 2, 0), (0, 2, 1)])
def test_transpose(perm):
    x = sd.input("x", (2, 3, 4))
    check(sd.transpose(x, perm) * 3.0, x=x)


@pytest.mark.parametrize("src,dst", [((3, 4, 5), (6, 10)), ((3, 4, 5), (60,)), ((2, 6), (3, 1, 4)),
                                     ((3, 1, 4), (3, 4, 1, 1)), ((1, 12), (12, 1)), ((4, 3), (2, 2, 3))])
def test_reshape(src, dst):
    x = sd.input("x", src)
    check(sd.reshape(x, dst) + 1.0, x=x)


def test_reshape_of_transpose_of_reshape():
    x = sd.input("x", (3, 4, 5))
    y = sd.reshape(sd.transpose(sd.reshape(x, (12, 5))), (5, 3, 4))
    check(sd.transpose(y, (1, 0, 2)) * 2.0, x=x)


def test_reshape_fast_path_only_maps_indices():
    """Only size-1 axes differ: the input's indices are the output's (no division, no modulo)."""
    em = PyEmitter()
    ev = PointEval(em, {})
    assert ev.reshape_point((3, 1, 4), (3, 4, 1), [2, 3, 0]) == [2, 0, 3]
    assert ev.reshape_point((1, 5, 1), (5,), [4]) == [0, 4, 0]
    assert em.ops == []
    # general case: coordinate k of the flat offset f is (f / stride_k) % size_k, the outermost without %
    assert ev.reshape_point((3, 4), (1, 12), [0, 7]) == [1, 3]
    assert em.ops == ["udiv", "urem"]  # 7 / 4, then 7 % 4 (a stride of 1 needs no division)
    assert ev.reshape_point((2, 3, 2), (12,), [11]) == [1, 2, 1]


def test_pick_and_one_hot():
    lg, lab = sd.input("lg", (5, 7), "float64"), sd.input("lab", (5,), "int32")
    check(apply("pick", [lg, lab]) * 2.0, lg=lg, lab=lab)
    check(apply("one_hot", [lab], depth=7, dtype="float64") * lg, lg=lg, lab=lab)
    lab64 = sd.input("lab", (5,), "int64")
    check(apply("pick", [sd.exp(lg), lab64]), lg=lg, lab=lab64)


def test_eq():
    x, m = sd.input("x", (3, 4)), sd.input("m", (3, 1))
    feeds = {"x": _value(x), "m": None}
    feeds["m"] = feeds["x"][:, :1].copy()
    out = apply("eq", [x, m])
    got, _ = point_eval(out, feeds)
    np.testing.assert_array_equal(got, numpy_ref(out, feeds))
    assert got[:, 0].tolist() == [1.0, 1.0, 1.0]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_rand_uniform_bit_exact(dtype):
    s, t = sd.input("s", (), "int64"), sd.input("t", (), "int32")
    u = rand_uniform(s, t, (3, 7), dtype, stream=0xDEADBEEF)
    for seed, step in ((0, 0), (-5, 2 ** 31 - 1), (123456789, 17)):
        feeds = {"s": np.array(seed, "int64"), "t": np.array(step, "int32")}
        got, _ = point_eval(u, feeds)
        np.testing.assert_array_equal(got, rand_uniform_np(seed, step, (3, 7), dtype, stream=0xDEADBEEF))
        assert got.dtype == np.dtype(dtype)


def test_rand_hash_matches_the_documented_formula():
    em = PyEmitter()
    for i, seed, step, stream in ((0, 0, 0, 0), (5, 1, 2, 3), (1000, 77, 2 ** 31, 0xFFFFFFFF)):
        bits = rand_hash(em, i, seed & R.MASK32, step & R.MASK32, stream)
        assert 0 <= bits < 2 ** 24
        assert bits * 2.0 ** -24 == rand_uniform_np(seed, step, (i + 1,), "float64", stream)[i]


def test_memoised_per_point():
    """x * x + exp(x) at one point loads x once; a second evaluation of the same node is free."""
    x = sd.input("x", (4,))
    out = x * x + sd.exp(x)
    em = PyEmitter()
    ev = PointEval(em, {x: np.arange(4.0, dtype="float32")})
    v = ev(out, [2])
    assert v == pytest.approx(4.0 + np.exp(2.0))
    assert len(em.loads) == 1
    assert ev(out, [2]) == v and len(em.loads) == 1 and em.ops.count("add") == 1
    ev(out, [3])
    assert len(em.loads) == 2


def test_materialised_nodes_load_unless_computed():
    x = sd.input("x", (3,))
    t = sd.exp(x)
    stored = np.array([10.0, 20.0, 30.0], "float32")
    em = PyEmitter()
    ev = PointEval(em, {x: np.zeros(3, "float32"), t: stored})
    assert ev(t + 1.0, [1]) == 21.0  # t read from its buffer
    assert ev(t, [1], compute=True) == 1.0  # the kernel that stores t computes it: exp(0)
    assert ev.store_ref(stored, t, [2]) == (id(stored), 2)


def test_flat_offset_shortcut():
    em = PyEmitter()
    ev = PointEval(em, {}, flat=("i", (3, 4), [1, 2]))
    assert ev.offset((3, 4), [1, 2]) == "i"
    assert ev.offset((3, 4), [2, 1]) == 9
    assert ev.offset((1, 4, 1), [0, 3, 0]) == 3


def test_unsupported_op_names_itself():
    x = sd.input("x", (3, 4))
    with pytest.raises(NotImplementedError, match="'sum'.*inside a kernel"):
        PointEval(PyEmitter(), {x: np.zeros((3, 4), "float32")})(sd.sum(x, axis=1), [0])


def test_backend_emitters_implement_the_protocol():
    """The LLVM and CUDA emitters implement every abstract method (instantiating checks that)."""
    from symdiff.codegen.cuda.emitter import CudaEmitter
    from symdiff.codegen.llvm.emitter import LLVMEmitter
    assert not getattr(LLVMEmitter, "__abstractmethods__", None)
    assert not getattr(CudaEmitter, "__abstractmethods__", None)
    with pytest.raises(TypeError):
        type("Half", (Emitter,), {"iconst": lambda self, v: v})()


def test_cuda_emitter_binds_index_expressions_as_c():
    """The C emitter: reshape coordinates as bound `const int` names, sums parenthesised under * / %."""
    from symdiff.codegen.cuda.emitter import CudaEmitter
    from symdiff.codegen.cuda.ir import KernelCtx
    out: list = []
    em = CudaEmitter(KernelCtx(None), out, "int")
    ev = PointEval(em, {})
    assert ev.reshape_point((3, 4), (12,), ["i"]) == ["v1", "v2"]
    assert [s.text for s in out] == ["const int v1 = i / 4;", "const int v2 = i % 4;"]
    assert ev.offset((3, 1, 4), ["a", "0", "b"]) == "a * 4 + b"
    assert em.imul(em.iadd("a", "b"), 3) == "(a + b) * 3"
    e, a = em.scalar("exp", ["v1"], "float32"), em.scalar("add", ["v1", "v2"], "float64")
    assert (out[-2].text, out[-2].flops, out[-2].special) == (f"const float {e} = expf(v1);", 1, 1)
    assert (out[-1].text, out[-1].flops, out[-1].special) == (f"const double {a} = v1 + v2;", 1, 0)


def test_llvm_emitter_hoists_bases_and_reads_inbounds():
    """The LLVM emitter: element reads are inbounds GEPs off base pointers loaded once, in the entry
    block (outside every loop); elementwise arithmetic carries no fast-math flags."""
    pytest.importorskip("llvmlite")
    from symdiff.codegen.llvm.render import Renderer
    from symdiff.codegen.lower import lower
    x, y = sd.input("x", (8, 5)), sd.input("y", (5,))
    mod = Renderer(lower([sd.exp(x * 2.0) + y])).render()
    text = str(mod)
    body = text[text.index('define internal void @"k0_loop"'):]
    body = body[:body.index("\n}")]
    entry = body[:body.index("\n  br label")]
    assert entry.count("load ptr") == 3  # x, y, the output: each base pointer once, before the loops
    assert body.count("load ptr") == 3
    assert "getelementptr inbounds float" in body
    assert " fadd float" in body and "fadd fast" not in body and "reassoc" not in body


# -- index selection (slice/embed/concatenate) --

def test_index_selection_ops_read_in_bounds():
    """slice / flip / embed / concatenate against NumPy; every load of a select branch (also the
    branch not taken) is inside its buffer: indices outside a part are clamped, never wrapped."""
    from symdiff.ops_index import concat, embed, flip, strided_slice
    x, y = sd.input("x", (3, 4)), sd.input("y", (2, 4))
    for out in (strided_slice(sd.exp(x), (1, 1), (1, 2), (2, 2)), flip(x, (0, 1)) + 1.0,
                embed(x, (8, 6), (1, 2), (3, 1), -2.0), concat([x, y, x], 0) * 2.0,
                embed(concat([y, x], 0), (6, 9), (1, 0), (1, 2), 0.5)):
        em = check(out, **{n.name: n for n in _leaves(out)})
        assert em.loads and all(0 <= off < node.size for node, off in em.loads), out


def test_llvm_embed_of_a_buffer_is_a_guarded_load():
    """embed (pad) of a materialised buffer: the LLVM emitter reads it at the unclamped index under a
    branch (``load_if``), which the vectoriser turns into masked loads (no gathers) where the target has
    them; values equal NumPy's, strided placement, other fills and integer dtypes included. The CUDA
    emitter reads under C's ?: (values through cuda-cpu)."""
    pytest.importorskip("llvmlite")
    from symdiff.codegen.target import host_supports
    from symdiff.ops_index import embed
    rng = np.random.default_rng(3)
    x = sd.input("x", (3, 5, 37))
    xi = sd.input("xi", (4, 9), "int32")
    xs = {"x": rng.standard_normal((3, 5, 37)).astype(np.float32)}
    cases = [(sd.pad(x, ((0, 0), (2, 1), (1, 3))), xs), (embed(x, (3, 11, 80), (0, 1, 2), (1, 2, 2), -1.5), xs),
             (embed(xi, (6, 12), (1, 3), (1, 1), 7), {"xi": rng.integers(-9, 9, (4, 9)).astype(np.int32)})]
    for out, feeds in cases:
        ref = sd.compile(out, "numpy")(**feeds)
        for backend in ("llvm", "cuda-cpu"):
            np.testing.assert_array_equal(sd.compile(out, backend)(**feeds), ref, err_msg=backend)
    padded = sd.pad(x, ((0, 0), (1, 1), (1, 1)))
    pad = sd.compile(padded, "llvm", cache=False)
    assert "masked.gather" not in pad.ir
    if host_supports("avx2"):
        assert "llvm.masked.load" in pad.ir
    # the CUDA emitter: the read sits in the selected operand of ?: (never made out of bounds)
    from symdiff.codegen.cuda.render import render_cuda
    from symdiff.codegen.lower import lower
    src = render_cuda(lower([padded * 2.0]), "sd_entry")[0]
    assert re.search(r"= \S+ \? \w+\[[^]]+\] : 0\.0f?;", src), src[-1500:]


def test_reshape_of_a_stored_node_reads_it_at_the_reshapes_own_offset():
    """A reshape of a materialised node: row-major order is kept, so its element at a point is the stored
    node's element at the reshape's own flat offset (no division or modulo)."""
    x = sd.input("x", (4, 6))
    y = sd.reshape(x, (2, 3, 4))
    em = PyEmitter()
    data = np.arange(24, dtype=np.float32).reshape(4, 6)
    ev = PointEval(em, {x: data})
    for p in itertools.product(range(2), range(3), range(4)):
        assert ev(y, list(p)) == data.reshape(2, 3, 4)[p]
    assert "udiv" not in em.ops and "urem" not in em.ops
    check(sd.reshape(sd.exp(x), (3, 8)) * 2.0, x=x)  # (an input that is computed still maps indices)


def test_embed_of_an_index_view_reads_through_guarded_loads():
    """col2im (fold) is a sum of embeds of slices of the stored windows: each slice is an index view of a
    stored node, read by guarded loads at the unclamped index (masked loads on LLVM: no gathers; 7x faster
    for LeNet's second fold), with values equal to NumPy's on llvm and cuda-cpu."""
    pytest.importorskip("llvmlite")
    from symdiff.codegen.pointeval import is_view
    from symdiff.codegen.target import host_supports
    from symdiff.ops_conv import fold
    c = sd.input("c", (4, 3, 3, 3, 18, 30))
    y = fold(c, (20, 32), (3, 3), (1, 1), (1, 1))
    feeds = {"c": np.random.default_rng(5).standard_normal(c.shape).astype(np.float32)}
    ref = sd.compile(y, "numpy")(**feeds)
    for backend in ("llvm", "cuda-cpu"):
        np.testing.assert_allclose(sd.compile(y, backend, cache=False)(**feeds), ref, rtol=1e-5, atol=1e-6,
                                   err_msg=backend)
    f = sd.compile(y, "llvm", cache=False)
    assert "masked.gather" not in f.ir
    if host_supports("avx2"):
        assert "llvm.masked.load" in f.ir
    x = sd.input("x", (4, 5))
    where = {x: np.zeros((4, 5), np.float32)}
    assert is_view(sd.transpose(sd.reshape(x, (5, 4))), where) and not is_view(sd.exp(x), where)


def test_embed_of_float_math_over_views_is_computed_under_guarded_reads():
    """A pad of an activation (float math over index views of stored nodes, ``guardable``) reads at the
    unclamped index under guarded loads and selects the fill outside: masked loads, no gathers (W7's padded
    output gradient: 302 -> 86 us); integer math, other dtypes and long expressions keep the clamped reads.
    Values equal NumPy's on llvm and cuda-cpu, also where the expression is not finite at the fill."""
    pytest.importorskip("llvmlite")
    from symdiff.codegen.pointeval import guardable
    from symdiff.codegen.target import host_supports
    rng = np.random.default_rng(4)
    x = sd.input("x", (2, 3, 9, 37))
    feeds = {"x": rng.standard_normal(x.shape).astype(np.float32)}
    t = sd.transpose(x, (1, 0, 2, 3))
    for out in (sd.pad(sd.relu(x) * 2.0, ((0, 0), (0, 0), (1, 1), (2, 1))),
                sd.pad(sd.log(t) + 1.0, ((0, 0), (1, 0), (0, 2), (1, 1)), constant_values=-3.0)):
        ref = sd.compile(out, "numpy")(**feeds)
        for backend in ("llvm", "cuda-cpu"):
            np.testing.assert_allclose(sd.compile(out, backend, cache=False)(**feeds), ref, rtol=2e-6, atol=1e-6,
                                       err_msg=backend)  # (NaN where log's argument is negative: in both)
    f = sd.compile(sd.pad(sd.relu(x) * 2.0, ((0, 0), (0, 0), (1, 1), (1, 1))), "llvm", cache=False)
    assert "masked.gather" not in f.ir
    if host_supports("avx2"):
        assert "llvm.masked.load" in f.ir
    where = {x: None}
    assert guardable(sd.relu(t) * 2.0, where, "float32")
    xi = sd.input("xi", (4,), "int32")
    assert not guardable(xi // 2, {xi: None}, "int32")                     # integer math: may trap
    assert not guardable(sd.astype(xi, "float32") + 1.0, {xi: None}, "float32")  # a read of another dtype
    deep = x
    for _ in range(20):
        deep = sd.sin(deep)
    assert not guardable(deep, where, "float32")                              # too much to compute twice
    assert not guardable(sd.sum(x, axis=0), where, "float32")                 # a reduction
