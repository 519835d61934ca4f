"""Products and the reductions around them against NumPy: einsum over many subscripts (numpy backend, and one
compiled graph per compiled backend), batched/broadcast matmul shapes vs np.matmul, dot/vdot/inner/outer/
tensordot/kron/matrix_transpose, the prod gradient where entries are 0, argmax/argmin ties and NaN, and the
error messages."""
from __future__ import annotations

import numpy as np
import pytest

import symdiff as sd
from symdiff.codegen.lower import lower

from conftest import assert_grad_ok

EINSUMS = [
    ("ij,jk->ik", [(2, 3), (3, 4)]), ("ij,jk", [(2, 3), (3, 4)]), ("ij->ji", [(2, 3)]), ("ij->", [(2, 3)]),
    ("ij", [(2, 3)]), ("ji", [(2, 3)]), ("i,i->", [(3,), (3,)]), ("i,j->ij", [(3,), (4,)]),
    ("bij,bjk->bik", [(2, 3, 4), (2, 4, 5)]), ("bhqd,bhkd->bhqk", [(2, 3, 4, 5), (2, 3, 6, 5)]),
    ("...ij,...jk->...ik", [(2, 1, 3, 4), (5, 4, 2)]), ("...ij,jk", [(2, 3, 4), (4, 5)]),
    ("ij,ij->ij", [(2, 3), (2, 3)]), ("ij,ij->i", [(2, 3), (2, 3)]), ("ij,jk,kl->il", [(2, 3), (3, 4), (4, 5)]),
    ("abc,cd,de->abe", [(2, 3, 4), (4, 2), (2, 3)]), ("i,ij,j->", [(3,), (3, 4), (4,)]),
    ("bn,bnm->bm", [(2, 3), (2, 3, 4)]), ("ijk->kji", [(2, 3, 4)]), ("ijk->j", [(2, 3, 4)]),
    ("...i->...", [(2, 3, 4)]), ("ab,cd->abcd", [(2, 3), (2, 2)]), ("ij,kj->ik", [(2, 3), (4, 3)]),
    ("ji,jk->ik", [(3, 2), (3, 4)]), ("bij,jk->bik", [(2, 3, 4), (4, 5)]), ("ij,bjk->bik", [(3, 4), (2, 4, 5)]),
    ("aBc,cD->aBD", [(2, 3, 4), (4, 2)]), ("i...,i...->...", [(3, 2, 2), (3, 1, 2)]),
    ("ijk,jkl->il", [(2, 3, 4), (3, 4, 5)]), (" ij , jk -> ik ", [(2, 3), (3, 4)]), ("ij,j->i", [(3, 4), (4,)]),
    ("bqk,bkd->bqd", [(1, 3, 4), (5, 4, 2)]), ("i,i,i->i", [(3,), (3,), (3,)]),
]


def _leaves(shapes, rng, dtype="float64"):
    arrs = [rng.standard_normal(s).astype(dtype) for s in shapes]
    nodes = [sd.input(f"x{i}", s, dtype) for i, s in enumerate(shapes)]
    return arrs, nodes, {f"x{i}": a for i, a in enumerate(arrs)}


@pytest.mark.parametrize("sub,shapes", EINSUMS, ids=[s for s, _ in EINSUMS])
def test_einsum_matches_numpy(sub, shapes):
    arrs, nodes, vals = _leaves(shapes, np.random.default_rng(0))
    out = sd.einsum(sub, *nodes)
    got = sd.compile(out, "numpy")(**vals)
    want = np.einsum(sub, *arrs)
    assert got.shape == want.shape == out.shape
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def test_einsum_gradients():
    rng = np.random.default_rng(1)
    for sub, shapes in [("bhqd,bhkd->bhqk", [(1, 2, 2, 3), (1, 2, 3, 3)]), ("...ij,...jk->...ik", [(2, 1, 2, 3), (2, 3, 2)]),
                        ("abc,cd,de->abe", [(2, 2, 3), (3, 2), (2, 2)]), ("i...,i...->...", [(3, 2, 2), (3, 1, 2)])]:
        arrs, nodes, vals = _leaves(shapes, rng)
        out = sd.einsum(sub, *nodes)
        y = sd.sum(out * sd.const(rng.standard_normal(out.shape)))
        assert_grad_ok(sd.check_grad(y, nodes, vals))


MATMULS = [((2, 1, 3, 4), (5, 4, 2)), ((3, 4), (2, 4, 5)), ((2, 3, 4), (4, 5)), ((4,), (2, 4, 3)), ((2, 3, 4), (4,)),
           ((3, 1, 2, 5), (1, 4, 5, 3))]
PROD_ZEROS = np.array([[1.5, -2.0, 0.5, 3.0], [0.0, 2.0, -1.0, 0.5], [0.0, 1.0, 0.0, 2.0]])
ARG_NAN = np.array([[1.0, 3.0, 3.0, -1.0], [np.nan, 2.0, np.nan, 5.0]])


def _compiled_graph():
    """(outputs, expected, tolerances, values): einsums, batched matmul shapes (float32), the prod gradient
    where entries are 0 and argmax/argmin with ties and NaN -- one graph, compiled once per backend."""
    rng = np.random.default_rng(2)
    outs, refs, tols, vals = [], [], [], {}
    for j, (sub, shapes) in enumerate(EINSUMS[k] for k in (8, 10, 14, 27)):
        arrs = [rng.standard_normal(s) for s in shapes]
        nodes = [sd.input(f"e{j}_{i}", s, "float64") for i, s in enumerate(shapes)]
        vals.update({n.name: a for n, a in zip(nodes, arrs)})
        outs.append(sd.einsum(sub, *nodes))
        refs.append(np.einsum(sub, *arrs))
        tols.append((1e-10, 1e-12))
    for j, (sa, sb) in enumerate(MATMULS):
        a, b = sd.input(f"a{j}", sa, "float32"), sd.input(f"b{j}", sb, "float32")
        av, bv = rng.standard_normal(sa).astype(np.float32), rng.standard_normal(sb).astype(np.float32)
        vals.update({a.name: av, b.name: bv})
        outs.append(a @ b)
        refs.append(np.matmul(av, bv))
        tols.append((2e-5, 2e-6))
    x = sd.input("pz", (3, 4), "float64")
    vals["pz"] = PROD_ZEROS
    outs.append(sd.grad(sd.sum(sd.prod(x, axis=1) * sd.const(np.array([1.0, 2.0, 3.0]))), x))
    refs.append(np.array([[np.prod(np.delete(PROD_ZEROS[i], j)) * (i + 1) for j in range(4)] for i in range(3)]))
    tols.append((1e-13, 0))
    x = sd.input("an", (2, 4), "float64")
    vals["an"] = ARG_NAN
    outs += [sd.argmax(x, axis=1), sd.argmin(x, axis=1), sd.argmax(x), sd.argmin(x, axis=0, keepdims=True)]
    refs += [np.argmax(ARG_NAN, axis=1), np.argmin(ARG_NAN, axis=1), np.argmax(ARG_NAN),
             np.argmin(ARG_NAN, axis=0, keepdims=True)]
    tols += [(0, 0)] * 4
    x = sd.input("tv", (2, 3), "float64")  # truth values and NaN-skipping reductions
    tv = np.array([[0.0, 1.0, np.nan], [2.0, 0.0, 3.0]])
    vals["tv"] = tv
    outs += [sd.all(x, axis=1), sd.any(x, axis=0, keepdims=True), x.all(), x.any(), sd.nansum(x, axis=1),
             sd.nanmean(x), sd.nanmean(x, axis=0), sd.any(sd.astype(x, "bool"), axis=1)]
    refs += [np.all(tv, axis=1), np.any(tv, axis=0, keepdims=True), tv.all(), tv.any(), np.nansum(tv, axis=1),
             np.nanmean(tv), np.nanmean(tv, axis=0), np.any(tv.astype(bool), axis=1)]
    tols += [(0, 0)] * 4 + [(1e-14, 0)] * 3 + [(0, 0)]
    iv = np.array([[3, -1, 7, 7], [2, 2, -5, 0]], np.int32)  # argmax/argmin of int and bool tensors
    i = sd.input("iv", iv.shape, "int32")
    vals["iv"] = iv
    outs += [sd.argmax(i, axis=1), sd.argmin(i), sd.argmax(sd.greater(i, 2), axis=1)]
    refs += [np.argmax(iv, axis=1), np.argmin(iv), np.argmax(iv > 2, axis=1)]
    tols += [(0, 0)] * 3
    return outs, refs, tols, vals


@pytest.mark.parametrize("backend", ["numpy", "llvm", "cuda-cpu"])
def test_compiled_products_and_reductions(backend):
    outs, refs, tols, vals = _compiled_graph()
    f = sd.compile(outs, backend)
    got = f(**{k: vals[k] for k in f.input_names})
    for g, r, (rtol, atol) in zip(got, refs, tols):
        assert g.shape == r.shape and g.dtype == r.dtype
        np.testing.assert_allclose(g, r, rtol=rtol, atol=atol)


def test_broadcast_batch_operand_is_not_copied():
    a, b = sd.input("a", (6, 3, 4), "float32"), sd.input("b", (1, 4, 5), "float32")
    prog = lower([a @ b])
    (k,) = prog.kernels
    assert k.kind == "matmul" and k.batch == (6,) and k.b_batch_strides == (0,) and k.a_batch_strides == (12,)
    q, kk = sd.input("q", (2, 3, 4, 5)), sd.input("k", (2, 3, 6, 5))
    (k2,) = lower([sd.einsum("bhqd,bhkd->bhqk", q, kk)]).kernels  # K^T read in place: one batched GEMM
    assert k2.kind == "matmul" and k2.trans_b and k2.batch == (2, 3)
    x, w = sd.input("x", (6, 3, 4)), sd.param("w", (4, 5))
    prog = lower([x @ w])  # the batch folded into the rows: the GEMM reads the input in place (no copy)
    mm = [k for k in prog.kernels if k.kind == "matmul"]
    assert len(mm) == 1 and mm[0].batch == () and prog.where[mm[0].a] is prog.inputs[0]


def test_products_match_numpy():
    rng = np.random.default_rng(4)
    shapes = {"a": (2, 3, 4), "b": (4, 2), "v": (4,), "u": (4,), "m": (3, 4), "c": (2, 4, 3)}
    arrs = {k: rng.standard_normal(s) for k, s in shapes.items()}
    n = {k: sd.input(k, s, "float64") for k, s in shapes.items()}
    cases = [
        (sd.dot(n["a"], n["b"]), np.dot(arrs["a"], arrs["b"])), (sd.dot(n["a"], n["v"]), np.dot(arrs["a"], arrs["v"])),
        (sd.dot(n["a"], n["c"]), np.dot(arrs["a"], arrs["c"])), (sd.dot(n["v"], n["u"]), np.dot(arrs["v"], arrs["u"])),
        (sd.dot(n["m"], 2.0), np.dot(arrs["m"], 2.0)), (sd.vdot(n["m"], n["m"]), np.vdot(arrs["m"], arrs["m"])),
        (sd.inner(n["a"], n["m"]), np.inner(arrs["a"], arrs["m"])), (sd.inner(n["v"], n["u"]), np.inner(arrs["v"], arrs["u"])),
        (sd.outer(n["m"], n["v"]), np.outer(arrs["m"], arrs["v"])),
        (sd.tensordot(n["a"], n["c"], axes=([1, 2], [2, 1])), np.tensordot(arrs["a"], arrs["c"], axes=([1, 2], [2, 1]))),
        (sd.tensordot(n["m"], n["b"], axes=1), np.tensordot(arrs["m"], arrs["b"], axes=1)),
        (sd.tensordot(n["v"], n["u"], axes=0), np.tensordot(arrs["v"], arrs["u"], axes=0)),
        (sd.kron(n["m"], n["b"]), np.kron(arrs["m"], arrs["b"])), (sd.kron(n["v"], n["a"]), np.kron(arrs["v"], arrs["a"])),
        (sd.matrix_transpose(n["a"]), np.matrix_transpose(arrs["a"])),
    ]
    got = sd.compile([c for c, _ in cases], "numpy")(**arrs)
    for g, (_, r) in zip(got, cases):
        assert g.shape == r.shape
        np.testing.assert_allclose(g, r, rtol=1e-12, atol=1e-12)


REDUCTIONS = {  # DSL reductions composed from ops the backend op suite covers: numpy values and gradients
    "min": (lambda x: sd.min(x, axis=(0, 2)), lambda x: np.min(x, axis=(0, 2))),
    "amin": (lambda x: sd.amin(x, axis=-1, keepdims=True), lambda x: np.amin(x, axis=-1, keepdims=True)),
    "amax": (lambda x: sd.amax(x, axis=1), lambda x: np.amax(x, axis=1)),
    "min_method": (lambda x: x.min(), lambda x: x.min()),
    "prod_method": (lambda x: x.prod(axis=1), lambda x: x.prod(axis=1)),
    "var": (lambda x: sd.var(x, axis=1), lambda x: np.var(x, axis=1)),
    "std": (lambda x: sd.std(x, axis=2, ddof=1), lambda x: np.std(x, axis=2, ddof=1)),
    "std_method": (lambda x: x.std(keepdims=True), lambda x: x.std(keepdims=True)),
    "norm": (lambda x: sd.norm(x), lambda x: np.linalg.norm(x)),
    "norm_axis_keepdims": (lambda x: sd.linalg.norm(x, axis=(0, 1), keepdims=True),
                           lambda x: np.linalg.norm(x, axis=(0, 1), keepdims=True)),
    "norm_inf_p": (lambda x: sd.norm(x, np.inf, axis=0) + sd.norm(x, 2.5, axis=0) + sd.norm(x, 0, axis=0),
                   lambda x: np.linalg.norm(x, np.inf, axis=0) + np.linalg.norm(x, 2.5, axis=0)
                   + np.linalg.norm(x, 0, axis=0)),
    "norm_matrix_2d": (lambda x: sd.norm(sd.reshape(x, (4, 6)), -1)
                       + sd.norm(sd.reshape(x, (4, 6)), -np.inf) + sd.norm(sd.reshape(x, (4, 6)), "fro"),
                       lambda x: np.linalg.norm(x.reshape(4, 6), -1) + np.linalg.norm(x.reshape(4, 6), -np.inf)
                       + np.linalg.norm(x.reshape(4, 6), "fro")),
    "average": (lambda x: sd.average(x, axis=1, weights=np.array([0.5, 1.0, 2.0])),
                lambda x: np.average(x, axis=1, weights=np.array([0.5, 1.0, 2.0]))),
    "average_full": (lambda x: sd.average(x, weights=sd.exp(x)), lambda x: np.average(x, weights=np.exp(x))),
}


@pytest.mark.parametrize("name", sorted(REDUCTIONS))
def test_reductions_values_and_gradients(name):
    build, ref = REDUCTIONS[name]
    rng = np.random.default_rng(5)
    xv = rng.uniform(0.3, 1.5, (2, 3, 4)) * rng.choice([-1.0, 1.0], (2, 3, 4))
    x = sd.input("x", xv.shape, "float64")
    out = build(x)
    got = sd.compile(out, "numpy")(x=xv)
    want = np.asarray(ref(xv))
    assert got.shape == want.shape == out.shape
    np.testing.assert_allclose(got, want, rtol=1e-12)
    y = sd.sum(out * sd.const(rng.standard_normal(out.shape)))
    assert_grad_ok(sd.check_grad(y, [x], {"x": xv}))


def test_average_returned_and_norm_gradient_at_zero():
    x = sd.input("x", (2, 3), "float64")
    xv = np.arange(6.0).reshape(2, 3)
    avg, scl = sd.average(x, axis=1, weights=np.array([1.0, 2.0, 3.0]), returned=True)
    a, s = sd.compile([avg, scl], "numpy")(x=xv)
    wa, ws = np.average(xv, axis=1, weights=[1.0, 2.0, 3.0], returned=True)
    np.testing.assert_allclose(a, wa)
    np.testing.assert_allclose(s, ws)
    v = sd.input("v", (3,), "float64")
    zero = np.zeros(3)
    grads = [sd.grad(sd.norm(v, o), v) for o in (None, 1, np.inf)]
    g2, g1, ginf = sd.compile(grads, "numpy")(v=zero)
    assert np.all(np.isnan(g2))  # as jax.numpy.linalg.norm: d sqrt(u) at 0 is inf, times 0
    np.testing.assert_array_equal(g1, zero)
    np.testing.assert_array_equal(ginf, zero)


def test_nan_reductions_gradient_and_empty_truth_values():
    x = sd.input("x", (2, 3), "float64")
    xv = np.array([[0.5, np.nan, -1.0], [np.nan, np.nan, 2.0]])
    w = np.array([1.0, -2.0])
    for f, want in ((sd.nansum, [[1, 0, 1], [0, 0, -2]]), (sd.nanmean, [[0.5, 0, 0.5], [0, 0, -2]])):
        g = sd.grad(sd.sum(f(x, axis=1) * sd.const(w)), x)
        np.testing.assert_allclose(sd.compile(g, "numpy")(x=xv), want)
    e = sd.input("e", (0, 2), "float64")
    got = sd.compile([sd.all(e, axis=0), sd.any(e), sd.all(e)], "numpy")(e=np.zeros((0, 2)))
    assert [g.dtype for g in got] == [np.bool_] * 3
    np.testing.assert_array_equal(got[0], [True, True])
    assert not got[1] and got[2]


def test_prod_gradient_with_zeros_and_min_ties():
    x = sd.input("x", (3, 4), "float64")
    assert_grad_ok(sd.check_grad(sd.sum(sd.prod(x, axis=0)), [x], {"x": PROD_ZEROS}))
    x = sd.input("x", (2, 4), "float64")
    g = sd.grad(sd.sum(sd.min(x, axis=1)), x)  # ties share the gradient, as max
    np.testing.assert_allclose(sd.compile(g, "numpy")(x=-np.array([[1.0, 3.0, 3.0, -1.0], [0.0, 1.0, 2.0, 0.5]])),
                               [[0, 0.5, 0.5, 0], [0, 0, 1, 0]])


@pytest.mark.parametrize("call,match", [
    (lambda a, b: sd.einsum("ij,jk->il", a, b), r"einsum: invalid subscripts 'ij,jk->il' for operand shapes \(2, 3\), \(3, 4\): output index 'l'"),
    (lambda a, b: sd.einsum("ij,jk", a, a), r"index 'j' have sizes 3 and 2"),
    (lambda a, b: sd.einsum("ii->i", a), r"index 'i' is repeated within one operand"),
    (lambda a, b: sd.einsum("ijk,jk->i", a, b), r"term 'ijk' has 3 index\(es\) but operand 0 has 2"),
    (lambda a, b: sd.einsum("ij->", a, b), r"1 input term\(s\) for 2 operand\(s\)"),
    (lambda a, b: sd.einsum("i1,jk", a, b), r"invalid character '1'"),
    (lambda a, b: sd.einsum("..i,jk", a, b), r"misplaced '\.'"),
    (lambda a, b: sd.einsum("...j,jk->k", a, b), r"no '\.\.\.'"),
    (lambda a, b: sd.tensordot(a, b, axes=([0], [1])), r"tensordot: shape mismatch"),
    (lambda a, b: sd.matrix_transpose(sd.sum(a, axis=0)), r"rank >= 2"),
    (lambda a, b: sd.norm(a, ord="nuc"), r"singular value"),
    (lambda a, b: sd.var(a, axis=0, ddof=2), r"ddof=2 leaves no degrees of freedom"),
    (lambda a, b: sd.argmax(a, axis=(0, 1)), r"argmax: axis must be None or an int"),
])
def test_error_messages(call, match):
    a, b = sd.input("a", (2, 3)), sd.input("b", (3, 4))
    with pytest.raises((ValueError, TypeError, NotImplementedError), match=match):
        call(a, b)
