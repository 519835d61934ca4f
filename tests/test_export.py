"""symdiff.codegen.runtime.export: C header/API generation, symbol hygiene, and calling the exported library
through ctypes (float32 and integer labels) against the NumPy backend."""
from __future__ import annotations

import ctypes
import platform
import shutil
import subprocess

import numpy as np
import pytest

import symdiff as sd
from symdiff.codegen.runtime.export import ExportError, c_ident, export_c
from symdiff.signature import Signature

needs_gcc = pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc is needed to link the library")


def ce_model():
    x = sd.input("x", (6, 4))
    labels = sd.input("labels", (6,), dtype="int64")
    W = sd.param("W", (4, 3))
    b = sd.param("b", (3,))
    loss = sd.cross_entropy(sd.sigmoid(x @ W + b) * 3.0, labels)
    grads = sd.grad(loss, [W, b])
    return [loss, *grads], ["loss", "grad_W", "grad_b"]


def test_c_ident():
    assert c_ident("W1") == "W1"
    assert c_ident("int") == "int_" and c_ident("double") == "double_"
    assert c_ident("9lives") == "_9lives"
    taken = set()
    assert [c_ident("a", taken), c_ident("a", taken)] == ["a", "a_2"]


def test_bad_name_is_rejected(tmp_path):
    outs, names = ce_model()
    with pytest.raises(ExportError, match="C identifier"):
        export_c(outs, "my-model", tmp_path, output_names=names, shared=False)


def test_unknown_cpu_is_rejected(tmp_path):
    outs, names = ce_model()
    with pytest.raises(ExportError, match="not a CPU LLVM knows"):
        export_c(outs, "m", tmp_path, output_names=names, shared=False, cpu="no-such-cpu")


def test_header_and_unused_leaf(tmp_path):
    W = sd.param("W", (3,), dtype="float64")
    z = sd.input("z", (3,), dtype="float64")
    loss = sd.sum(W * W) + sd.sum(sd.exp(z) * 0.0)
    res = export_c([loss, sd.grad(loss, W)], "m", tmp_path, output_names=["loss", "grad_W"], shared=False)
    header = (tmp_path / "m.h").read_text()
    api = (tmp_path / "m_api.c").read_text()
    assert "int m_run(const double *W," in header and "double *grad_W" in header
    assert "#define M_WORKSPACE_BYTES" in header and '#include "sd_pool.h"' in header
    used = {a.name for a in res.args if a.used}
    assert used == {"W", "loss", "grad_W"}  # the simplifier dropped z * 0: z stays in the API, documented as ignored
    assert "unused after simplification" in header and "(void)z;" in api
    assert {p.name for p in res.files} >= {"m.ll", "m.o", "m.h", "m_api.c", "sd_pool.h", "sd_pool.c"}


class ArgInfo(ctypes.Structure):
    """``<name>_arg_info`` of the exported header."""
    _fields_ = [("name", ctypes.c_char_p), ("role", ctypes.c_char_p), ("dtype", ctypes.c_char_p),
                ("ndim", ctypes.c_int), ("shape", ctypes.POINTER(ctypes.c_int64)), ("size", ctypes.c_int64),
                ("doc", ctypes.c_char_p)]


def read_arg_table(lib, name: str, nargs: int) -> list[tuple]:
    """``<name>_arg_table`` as (name, role, dtype, shape, size, doc) tuples, read through ctypes."""
    table = (ArgInfo * nargs).in_dll(lib, f"{name}_arg_table")
    return [(e.name.decode(), e.role.decode(), e.dtype.decode(), tuple(e.shape[i] for i in range(e.ndim)), e.size,
             e.doc.decode()) for e in table]


X86 = platform.machine() in ("x86_64", "AMD64")


@needs_gcc
@pytest.mark.parametrize("cpu", ["host", pytest.param("x86-64", marks=pytest.mark.skipif(not X86, reason="x86 only"))])
def test_library_via_ctypes_matches_numpy(tmp_path, cpu):
    outs, names = ce_model()
    res = export_c(outs, "ce", tmp_path, output_names=names, cpu=cpu)
    if cpu != "host":
        assert res.cpu == cpu and f"Target CPU: {cpu}" in (tmp_path / "ce.h").read_text()
    lib = ctypes.CDLL(str(res.shared_library))
    lib.ce_workspace_bytes.restype = ctypes.c_size_t
    assert lib.ce_workspace_bytes() == res.program.workspace_bytes
    assert read_arg_table(lib, "ce", len(res.args)) == [
        (a.c_name, a.role, a.dtype, tuple(a.shape), int(np.prod(a.shape, dtype=np.int64)), a.doc) for a in res.args]
    assert [(a.c_name, a.role, a.dtype, a.shape) for a in res.args] == [
        ("x", "input", "float32", (6, 4)), ("W", "param", "float32", (4, 3)), ("b", "param", "float32", (3,)),
        ("labels", "labels", "int64", (6,)), ("loss", "output", "float32", ()),
        ("grad_W", "output", "float32", (4, 3)), ("grad_b", "output", "float32", (3,))]

    rng = np.random.default_rng(0)
    sig = Signature(outs)
    vals = {}
    for s in sig.leaves:
        vals[s.name] = (rng.integers(0, s.label_depth, s.shape) if s.label_depth else rng.standard_normal(s.shape)
                        ).astype(s.dtype)
    ref = sd.compile(outs, backend="numpy")(**vals)
    ins = [vals[a.name] for a in res.args if a.role != "output"]
    outs_c = [np.empty(a.shape, dtype=a.dtype) for a in res.args if a.role == "output"]
    ptrs = [arr.ctypes.data_as(ctypes.c_void_p) for arr in ins + outs_c]
    ws = lib.ce_workspace_alloc
    ws.restype = ctypes.c_void_p
    work = ws()
    run = lib.ce_run
    run.argtypes = [ctypes.c_void_p] * (len(ptrs) + 2)
    assert run(*ptrs, work, None) == 0
    for got, want, nm in zip(outs_c, ref, names):
        np.testing.assert_allclose(got, want, rtol=2e-5, atol=1e-6, err_msg=nm)
    # the same through the threaded pool
    lib.sd_pool_create.restype = ctypes.c_void_p
    pool = lib.sd_pool_create(2)
    for o in outs_c:
        o.fill(np.nan)
    assert run(*ptrs, None, ctypes.c_void_p(pool)) == 0  # workspace NULL: allocated per call
    for got, want, nm in zip(outs_c, ref, names):
        np.testing.assert_allclose(got, want, rtol=2e-5, atol=1e-6, err_msg=nm)
    lib.sd_pool_destroy.argtypes = [ctypes.c_void_p]
    lib.sd_pool_destroy(pool)
    lib.ce_workspace_free.argtypes = [ctypes.c_void_p]
    lib.ce_workspace_free(work)


@needs_gcc
def test_two_exported_models_link_into_one_program(tmp_path):
    outs, names = ce_model()
    export_c(outs, "one", tmp_path, output_names=names, shared=False)
    x = sd.input("x", (5, 4), dtype="float64")
    W = sd.param("W", (4, 4), dtype="float64")
    loss = sd.mean(sd.tanh(x @ W))
    export_c([loss, sd.grad(loss, W)], "two", tmp_path, output_names=["loss", "grad_W"], shared=False)
    main = tmp_path / "main.c"
    main.write_text('#include "one.h"\n#include "two.h"\n#include <stdio.h>\n'
                    'int main(void) { printf("%zu %zu\\n", one_workspace_bytes(), two_workspace_bytes()); return 0; }\n')
    exe = tmp_path / "both"
    srcs = [str(tmp_path / f) for f in ("main.c", "one.o", "one_api.c", "two.o", "two_api.c", "sd_pool.c")]
    r = subprocess.run(["gcc", "-O1", "-pthread", "-I", str(tmp_path), *srcs, "-lm", "-o", str(exe)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr  # no duplicate gemm*/kernel symbols
    assert subprocess.run([str(exe)], capture_output=True, text=True).returncode == 0
