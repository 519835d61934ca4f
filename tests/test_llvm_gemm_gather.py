"""Gathered op(B) (implicit GEMM, codegen/llvm/gemm/gather.py): products whose op(B)[k, j] = B[rk[k] + cj[j]]
against numpy, for im2col tables of convolutions (forward: column runs; weight gradient: row runs), random
tables, both dtypes, odd sizes, epilogues and task splits."""
from __future__ import annotations

import ctypes
import threading

import numpy as np
import pytest

from symdiff.codegen.llvm.gemm.emit import emit_matmul, gather_mode
from symdiff.codegen.llvm.jit import JitModule, new_module

_FN = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p,
                       ctypes.c_int64, ctypes.c_int64)


def im2col_tables(n, c, hp, wp, kh, kw, oh, ow, stride=1, dil=1):
    """Offsets into a padded (n, c, hp, wp) input of im2col's rows (kernel offset, channel) and columns
    (image, output position)."""
    a, bb, ch = np.meshgrid(np.arange(kh), np.arange(kw), np.arange(c), indexing="ij")
    rk = (ch * hp * wp + a * dil * wp + bb * dil).ravel()
    im, i, j = np.meshgrid(np.arange(n), np.arange(oh), np.arange(ow), indexing="ij")
    cj = (im * c * hp * wp + i * stride * wp + j * stride).ravel()
    return rk, cj


def _conv_case(dtype, n, c, h, w, k, pad, stride, dil, M, weight_grad=False, **kw):
    hp, wp = h + 2 * pad, w + 2 * pad
    oh, ow = (hp - dil * (k - 1) - 1) // stride + 1, (wp - dil * (k - 1) - 1) // stride + 1
    rk, cj = im2col_tables(n, c, hp, wp, k, k, oh, ow, stride, dil)
    if weight_grad:  # op(B) = im2col^T: rows are output positions, columns kernel offsets
        rk, cj = cj, rk
    return dict(dtype=dtype, M=M, K=len(rk), N=len(cj), b_offsets=(rk, cj), src=n * c * hp * wp, **kw)


CASES = {
    "fwd3x3": _conv_case("float32", 2, 16, 13, 11, 3, 1, 1, 1, 24),
    "fwd3x3_f64": _conv_case("float64", 2, 8, 9, 14, 3, 1, 1, 1, 17),
    "fwd5x5_valid_small_m": _conv_case("float32", 3, 3, 12, 12, 5, 0, 1, 1, 6),
    "fwd_stride2_dil2": _conv_case("float32", 2, 5, 17, 19, 3, 2, 2, 2, 20),
    "fwd_bias_relu_acc": _conv_case("float32", 2, 16, 10, 20, 3, 1, 1, 1, 33, bias=True, relu=True, accumulate=True),
    "wgrad3x3": _conv_case("float32", 2, 16, 13, 11, 3, 1, 1, 1, 24, weight_grad=True),
    "wgrad3x3_f64": _conv_case("float64", 2, 8, 9, 14, 3, 1, 1, 1, 20, weight_grad=True),
    "wgrad_m6": _conv_case("float32", 4, 6, 14, 14, 5, 0, 1, 1, 16, weight_grad=True),
    "wgrad_long_k": _conv_case("float32", 2, 4, 40, 40, 3, 1, 1, 1, 64, weight_grad=True),
}
_rng = np.random.default_rng(5)
CASES["random_rows"] = dict(dtype="float32", M=19, K=37, N=301, src=5000,
                            b_offsets=(_rng.integers(0, 4000, 37), np.sort(_rng.choice(999, 301, replace=False))))
CASES["random_cols"] = dict(dtype="float64", M=40, K=300, N=45, src=6000,
                            b_offsets=(np.sort(_rng.choice(1500, 300, replace=False)), _rng.integers(0, 4400, 45)))


@pytest.fixture(scope="module")
def built():
    mod = new_module("test_gather")
    info = {nm: emit_matmul(mod, nm, threads=2, **{k: v for k, v in kw.items() if k != "src"})
            for nm, kw in CASES.items()}
    jm = JitModule(mod)
    return info, jm, {nm: _FN(jm.address(nm)) for nm in CASES}


@pytest.mark.parametrize("mode", ["all", "tasks", "threads"])
@pytest.mark.parametrize("name", sorted(CASES))
def test_gathered_products_match_numpy(built, name, mode):
    info, _jm, fns = built
    kw = CASES[name]
    rng = np.random.default_rng(1)
    dt, M, N, K = kw["dtype"], kw["M"], kw["N"], kw["K"]
    rk, cj = (np.asarray(t) for t in kw["b_offsets"])
    src = rng.standard_normal(kw["src"]).astype(dt)
    A = rng.standard_normal((M, K)).astype(dt)
    C = rng.standard_normal((M, N)).astype(dt)
    bias = rng.standard_normal(N).astype(dt)
    ref = A.astype(np.float64) @ src[rk[:, None] + cj[None, :]].astype(np.float64)
    if kw.get("accumulate"):
        ref += C
    if kw.get("bias"):
        ref += bias
    if kw.get("relu"):
        ref = np.maximum(ref, 0)
    fn, T = fns[name], info[name].n_tasks
    args = (A.ctypes.data, src.ctypes.data, C.ctypes.data, bias.ctypes.data)
    if mode == "all":
        fn(*args, 0, T)
    elif mode == "tasks":
        for t in reversed(range(T)):
            fn(*args, t, t + 1)
    else:
        ths = [threading.Thread(target=fn, args=args + r) for r in ((0, T // 2), (T // 2, T))]
        for t in ths:
            t.start()
        for t in ths:
            t.join()
    tol = (3e-5 if dt == "float32" else 1e-12) * max(1.0, np.sqrt(K)) * max(1.0, float(np.abs(ref).max()))
    np.testing.assert_allclose(C, ref, rtol=0, atol=tol, err_msg=f"{name} {info[name]}")


def test_gather_plans(built):
    info, _jm, _fns = built
    for nm, inf in info.items():
        assert inf.packed_b and inf.kernel == "row", (nm, inf)
    assert info["fwd3x3"].gathered == "rows" and info["wgrad3x3"].gathered == "cols"
    assert info["random_rows"].gathered == "rows" and info["random_cols"].gathered == "cols"
    assert info["wgrad_long_k"].n_tasks == 2  # (the task split applies as to any product)


def test_gather_mode_refuses_what_no_packer_reads():
    with pytest.raises(ValueError, match="strictly increasing"):
        gather_mode(([0, 2, 1], [5, 3]), 3, 2)
    with pytest.raises(ValueError, match="entries"):
        gather_mode(([0, 1], [0, 1]), 3, 2)
    with pytest.raises(ValueError, match="2\\*\\*31"):
        gather_mode(([0, 2 ** 31], [0, 1]), 2, 2)
