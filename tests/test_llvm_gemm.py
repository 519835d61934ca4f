"""Correctness of the generated GEMM kernels (codegen/llvm/gemm/emit.py) against numpy.

Products are emitted into a few shared modules (one JIT compile per module), then called
through ctypes: all tasks at once, task by task, and from two threads on disjoint task ranges.
"""
from __future__ import annotations

import ctypes
import itertools
import re
import threading

import numpy as np
import pytest

from symdiff.codegen.llvm.gemm.emit import GemmInfo, emit_matmul, plan_matmul
from symdiff.codegen.llvm.gemm.plan import vec_len
from symdiff.codegen.llvm.jit import JitModule, new_module

_FN = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p,
                       ctypes.c_int64, ctypes.c_int64)


class Built:
    def __init__(self, specs: dict):
        """specs: name -> kwargs of emit_matmul (without module/name)."""
        mod = new_module("test_gemm")
        self.info = {n: emit_matmul(mod, n, **{"threads": 2, **kw}) for n, kw in specs.items()}  # two-thread plans
        self.specs = specs
        self.ir = str(mod)
        self.jm = JitModule(mod)
        self.fn = {n: _FN(self.jm.address(n)) for n in specs}
        self.data: dict = {}     # (name, pad, seed) -> operands and reference, reused across modes


def _operands(rng, kw, pad=0):
    """Random A, B, C, bias for a spec; with pad, leading dimensions exceed the row lengths."""
    dt = kw["dtype"]
    M, N, K = kw["M"], kw["N"], kw["K"]
    ta, tb = kw.get("trans_a", False), kw.get("trans_b", False)
    ar, ac = (K, M) if ta else (M, K)
    br, bc = (N, K) if tb else (K, N)
    A = rng.standard_normal((ar, ac + pad)).astype(dt)
    B = rng.standard_normal((br, bc + pad)).astype(dt)
    C = rng.standard_normal((M, N + pad)).astype(dt)
    bias = rng.standard_normal(max(N, 1)).astype(dt)
    return A, B, C, bias


def _reference(kw, A, B, C, bias):
    M, N, K = kw["M"], kw["N"], kw["K"]
    ta, tb = kw.get("trans_a", False), kw.get("trans_b", False)
    a = (A[:K, :M].T if ta else A[:M, :K]).astype(np.float64)
    b = (B[:N, :K].T if tb else B[:K, :N]).astype(np.float64)
    ref = a @ b
    if kw.get("accumulate"):
        ref += C[:M, :N]
    if kw.get("bias"):
        ref += bias[:N]
    if kw.get("relu"):
        ref = np.maximum(ref, 0)
    return ref


def _check(built: Built, name: str, mode: str = "all", pad: int = 0, seed: int = 0):
    kw = built.specs[name]
    info: GemmInfo = built.info[name]
    key = (name, pad, seed)
    if key not in built.data:
        A, B, C, bias = _operands(np.random.default_rng(seed), kw, pad)
        built.data[key] = (A, B, C, bias, _reference(kw, A, B, C, bias))
    A, B, C0, bias, ref = built.data[key]
    C = C0.copy()
    C_before = C0
    fn = built.fn[name]
    args = (A.ctypes.data, B.ctypes.data, C.ctypes.data, bias.ctypes.data if kw.get("bias") else None)
    if mode == "all":
        fn(*args, 0, info.n_tasks)
    elif mode == "tasks":
        for t in reversed(range(info.n_tasks)):
            fn(*args, t, t + 1)
    elif mode == "threads":
        half = info.n_tasks // 2
        ths = [threading.Thread(target=fn, args=args + (0, half)),
               threading.Thread(target=fn, args=args + (half, info.n_tasks))]
        for t in ths:
            t.start()
        for t in ths:
            t.join()
    M, N, K = kw["M"], kw["N"], kw["K"]
    got = C[:M, :N].astype(np.float64)
    tol = (3e-5 if kw["dtype"] == "float32" else 1e-12) * max(1.0, np.sqrt(K))
    scale = max(1.0, float(np.abs(ref).max())) if ref.size else 1.0
    np.testing.assert_allclose(got, ref, rtol=0, atol=tol * scale, err_msg=f"{name} {kw} {mode}")
    if pad:   # padding columns of C untouched
        np.testing.assert_array_equal(C[:, N:], C_before[:, N:])


# ----------------------------------------------------------------------------- odd sizes
SIZES = [1, 7, 33, 100]
ODD = {}
for dt in ("float32", "float64"):
    for (M, K, N), ta, tb in itertools.product(
            [(m, k, n) for m in SIZES for k in SIZES for n in SIZES if (m, k, n) != (1, 1, 1)][::3]
            + [(1, 1, 1), (257, 33, 7), (9, 257, 40), (17, 5, 257), (30, 600, 37), (17, 2000, 5)],
            (False, True), (False, True)):
        ODD[f"odd_{dt}_{M}_{K}_{N}_{int(ta)}{int(tb)}"] = dict(dtype=dt, M=M, N=N, K=K, trans_a=ta,
                                                               trans_b=tb)


@pytest.fixture(scope="module")
def odd():
    return Built(ODD)


def test_odd_sizes_all_transpositions(odd):
    for name in ODD:
        _check(odd, name)


# ----------------------------------------------------------------------------- named shapes
NAMED_SHAPES = [  # (M, K, N, trans_a, trans_b)
    (1, 784, 256, False, False), (1, 256, 10, False, False), (1, 2, 16, False, False),
    (16, 16, 1, False, False), (1, 256, 784, False, True), (64, 784, 256, False, False),
    (784, 64, 256, True, False), (64, 256, 784, False, True), (256, 1024, 1024, False, False),
    (1024, 256, 1024, True, False), (256, 1024, 1024, False, True), (16, 1, 16, True, True),
]
NAMED = {}
for dt in ("float32", "float64"):
    for (M, K, N, ta, tb) in NAMED_SHAPES:
        NAMED[f"named_{dt}_{M}_{K}_{N}_{int(ta)}{int(tb)}"] = dict(dtype=dt, M=M, N=N, K=K,
                                                                  trans_a=ta, trans_b=tb)


@pytest.fixture(scope="module")
def named():
    return Built(NAMED)


@pytest.mark.parametrize("mode", ["all", "tasks", "threads"])
def test_named_shapes(named, mode):
    for name in NAMED:
        _check(named, name, mode)


def test_named_shapes_parallel_split(named):
    big = named.info["named_float32_256_1024_1024_00"]
    assert big.n_tasks >= 2 and big.n_tasks % 2 == 0
    assert big.flops == 2 * 256 * 1024 * 1024
    assert named.info["named_float32_1_2_16_00"].n_tasks == 1
    assert named.info["named_float32_16_16_1_00"].n_tasks == 1
    for info in named.info.values():
        assert info.n_tasks >= 1
        assert info.stack_bytes <= 1 << 20


# ----------------------------------------------------------------------------- epilogues, ld, accumulate
EPI = {}
for dt in ("float32", "float64"):
    for (M, K, N), ta, tb, (acc, bias, relu) in itertools.product(
            [(1, 300, 37), (5, 40, 1), (37, 300, 70), (40, 270, 200), (1, 17, 5)],
            (False, True), (False, True),
            [(True, False, False), (False, True, False), (False, False, True), (True, True, True),
             (False, True, True)]):
        EPI[f"epi_{dt}_{M}_{K}_{N}_{int(ta)}{int(tb)}_{int(acc)}{int(bias)}{int(relu)}"] = dict(
            dtype=dt, M=M, N=N, K=K, trans_a=ta, trans_b=tb, accumulate=acc, bias=bias, relu=relu)
    # several K blocks: the inner blocks take the plain C += acc path of whole tiles, the last applies
    # bias and relu (whole and N-edge tiles, M edge too)
    for ta, tb, acc in itertools.product((False, True), (False, True), (False, True)):
        EPI[f"epi_{dt}_37_700_70_{int(ta)}{int(tb)}_{int(acc)}11"] = dict(
            dtype=dt, M=37, N=70, K=700, trans_a=ta, trans_b=tb, accumulate=acc, bias=True, relu=True)


@pytest.fixture(scope="module")
def epi():
    return Built(EPI)


@pytest.mark.parametrize("mode", ["all", "tasks"])
def test_accumulate_bias_relu(epi, mode):
    for name in EPI:
        _check(epi, name, mode)


PAD = 5
LD = {}
for dt in ("float32", "float64"):
    for (M, K, N), ta, tb, acc in itertools.product(
            [(1, 64, 48), (13, 1, 9), (40, 300, 70), (64, 100, 1)], (False, True), (False, True),
            (False, True)):
        LD[f"ld_{dt}_{M}_{K}_{N}_{int(ta)}{int(tb)}{int(acc)}"] = dict(
            dtype=dt, M=M, N=N, K=K, trans_a=ta, trans_b=tb, accumulate=acc,
            lda=(M if ta else K) + PAD, ldb=(K if tb else N) + PAD, ldc=N + PAD)


@pytest.fixture(scope="module")
def ld():
    return Built(LD)


def test_leading_dimensions(ld):
    for name in LD:
        _check(ld, name, pad=PAD)


# ----------------------------------------------------------------------------- degenerate
def test_empty_and_k0():
    specs = {
        "m0": dict(dtype="float32", M=0, N=5, K=3),
        "n0": dict(dtype="float32", M=4, N=0, K=3),
        "k0": dict(dtype="float32", M=4, N=5, K=0),
        "k0acc": dict(dtype="float64", M=3, N=20, K=0, accumulate=True, bias=True, relu=True),
        "k0big": dict(dtype="float32", M=300, N=300, K=0, bias=True),
    }
    built = Built(specs)
    for name in ("k0", "k0acc", "k0big"):
        _check(built, name)
    for name in ("m0", "n0"):
        assert built.info[name].n_tasks == 1 and built.info[name].flops == 0
        built.fn[name](None, None, None, None, 0, 1)


# ----------------------------------------------------------------------------- IR properties
def test_linkage_sharing_and_vector_width():
    mod = new_module("props")
    i1 = emit_matmul(mod, "mm_a", "float32", 64, 256, 784, threads=2)
    i2 = emit_matmul(mod, "mm_b", "float32", 64, 256, 784, trans_b=True, bias=True, relu=True, threads=2)
    emit_matmul(mod, "mm_c", "float32", 128, 512, 96, threads=2)
    fns = {f.name: f for f in mod.functions if f.blocks}
    assert fns["mm_a"].linkage == "" and fns["mm_b"].linkage == ""
    helpers = [n for n in fns if n not in ("mm_a", "mm_b", "mm_c")]
    assert helpers and all(fns[n].linkage == "internal" for n in helpers)
    # the products share their micro-kernels and loop driver
    assert len([n for n in helpers if ".uk" in n]) <= 4
    assert len([n for n in helpers if n.endswith(".driver")]) == 1
    assert i1.n_tasks >= 2 and i2.packed_b
    with pytest.raises(ValueError):
        emit_matmul(mod, "mm_a", "float32", 2, 2, 2)
    asm = JitModule(mod).asm()
    assert any(f"vfmadd{o}ps" in asm for o in ("132", "213", "231"))  # FMA on this target
    from symdiff.codegen.llvm.jit import host_cpu
    assert ("zmm" if "+avx512f" in host_cpu()[1] else "ymm") in asm  # the widest vector registers it has


@pytest.mark.parametrize("M,N,K,ta", [(64, 10, 256, False), (256, 10, 64, True), (60, 256, 64, False),
                                        (64, 256, 64, True), (3, 5, 7, False)])
def test_only_the_tiles_a_product_has_are_emitted(M, N, K, ta):
    # a product narrower than one panel has no full tile, one whose rows divide MR no M-edge tile, ...:
    # at most one micro-kernel per (rows, columns) tile shape the product has, and only its row counts
    mod = new_module("tiles")
    emit_matmul(mod, "mm", "float32", M, N, K, trans_a=ta, threads=2)
    p, plan = plan_matmul("float32", M, N, K, trans_a=ta, threads=2)
    NR = plan.nv if plan.kernel == "dot" else plan.nv * vec_len("float32")
    rows = {r for r, has in ((plan.mr, p.M >= plan.mr), (p.M % plan.mr, p.M % plan.mr > 0)) if has}
    cols = [has for has in (p.N >= NR, p.N % NR > 0) if has]
    kernels = {f.name for f in mod.functions if f.blocks and re.search(r"\.[ud]k\d+x", f.name)}
    assert kernels and len(kernels) <= len(rows) * len(cols), (kernels, rows, cols)
    assert {int(re.search(r"\.[ud]k(\d+)x", n).group(1)) for n in kernels} == rows, kernels


def test_plan_choices():
    # batch-1 x @ W^T: dot kernel; N == 1 with a contiguous column: computed transposed
    _, plan = plan_matmul("float32", 1, 256, 784, trans_b=True)
    assert plan.kernel == "dot"
    p, plan = plan_matmul("float32", 16, 1, 16)
    assert p.transposed and p.M == 1 and p.N == 16
    _, plan = plan_matmul("float64", 256, 1024, 1024, threads=2)
    assert plan.kernel == "row" and plan.pack == "copy" and plan.n_tasks >= 2
    # a deep product of few rows, both operands k-contiguous (a conv-weight gradient): dot kernel up to
    # _DOT_DEEP_M rows when K >= _DOT_DEEP_K * M; a shallow one, or more rows, keeps the packed row kernel
    from symdiff.codegen.llvm.gemm.plan import vec_len
    deep = plan_matmul("float32", 16, 150, 6400, trans_b=True, threads=2)[1].kernel
    assert deep == ("dot" if vec_len("float32") >= 16 else "row")
    assert plan_matmul("float64", 24, 512, 512, trans_b=True, threads=2)[1].kernel == "row"
    assert plan_matmul("float32", 32, 256, 256, trans_b=True, threads=2)[1].kernel == "row"
    assert plan_matmul("float32", 64, 576, 25088, trans_b=True, threads=2)[1].kernel == "row"
    with pytest.raises(ValueError):
        plan_matmul("float16", 2, 2, 2)
    with pytest.raises(ValueError):
        plan_matmul("float32", 4, 4, 4, lda=3)


def test_packed_transposed_a(monkeypatch):
    """The optional op(A) packing path (off by default) stays correct."""
    import symdiff.codegen.llvm.gemm.plan as G  # the tuning switches live with the planner
    monkeypatch.setattr(G, "_PACK_A", True)
    specs = {}
    for dt in ("float32", "float64"):
        for (M, K, N), tb, acc in itertools.product([(300, 70, 200), (37, 600, 100)], (False, True),
                                                     (False, True)):
            specs[f"pa_{dt}_{M}_{K}_{N}_{int(tb)}{int(acc)}"] = dict(
                dtype=dt, M=M, N=N, K=K, trans_a=True, trans_b=tb, accumulate=acc, bias=True)
    built = Built(specs)
    assert all(_plan_of(kw).pack_a for kw in specs.values())
    for name in specs:
        _check(built, name, "tasks")


def _plan_of(kw):
    kw = dict(kw)
    return plan_matmul(kw.pop("dtype"), kw.pop("M"), kw.pop("N"), kw.pop("K"), threads=2, **kw)[1]


# ----------------------------------------------------------------------------- K == 1 (outer products)
K1 = {}
for dt in ("float32", "float64"):
    for (M, N), ta, tb, (acc, bias, relu) in itertools.product(
            [(784, 256), (33, 100), (5, 17), (300, 7), (2, 1), (1, 300), (3, 16)],
            (False, True), (False, True),
            [(False, False, False), (True, False, False), (False, True, True), (True, True, True)]):
        K1[f"k1_{dt}_{M}_{N}_{int(ta)}{int(tb)}_{int(acc)}{int(bias)}{int(relu)}"] = dict(
            dtype=dt, M=M, N=N, K=1, trans_a=ta, trans_b=tb, accumulate=acc, bias=bias, relu=relu)
    for ta, tb, acc in itertools.product((False, True), (False, True), (False, True)):
        K1[f"k1ld_{dt}_{int(ta)}{int(tb)}{int(acc)}"] = dict(
            dtype=dt, M=37, N=45, K=1, trans_a=ta, trans_b=tb, accumulate=acc,
            lda=(37 if ta else 1) + PAD, ldb=(1 if tb else 45) + PAD, ldc=45 + PAD)


@pytest.fixture(scope="module")
def k1():
    return Built(K1)


@pytest.mark.parametrize("mode", ["all", "tasks", "threads"])
def test_k1_outer_products(k1, mode):
    for name, kw in K1.items():
        _check(k1, name, mode, pad=PAD if name.startswith("k1ld") else 0)


def test_k1_plan():
    for name, kw in K1.items():
        plan = _plan_of(kw)
        # b contiguous along j (or a single column): the outer-product kernel
        if not name.startswith("k1ld") or not kw["trans_b"]:
            assert plan.kernel == "outer", name
    _, plan = plan_matmul("float32", 784, 256, 1, trans_a=True, threads=2)
    assert plan.kernel == "outer" and plan.n_tasks == 2
    _, plan = plan_matmul("float32", 5, 17, 1, threads=2)
    assert plan.kernel == "outer" and plan.n_tasks == 1
