"""sd.export of a model with a symbolic batch: one exported C function serves every batch size. A C program
calls it with three batch sizes in one run (work buffer from the size query); sd.load_library binds the
sizes from the arrays; bad sizes and failed call-time checks are refused."""
from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest

import symdiff as sd

needs_gcc = pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc is needed to link the library")
D, H, C = 12, 16, 5  # features, hidden units, classes
BATCHES = (1, 7, 64)


def _mlp():
    x = sd.input("x", ("batch", D))
    y = sd.input("y", ("batch",), dtype="int64")
    W1, b1 = sd.param("W1", (D, H)), sd.param("b1", (H,))
    W2, b2 = sd.param("W2", (H, C)), sd.param("b2", (C,))
    logits = sd.tanh(x @ W1 + b1) @ W2 + b2
    loss = sd.cross_entropy(logits, y)
    return (x, y, W1, b1, W2, b2), logits, loss


def fill(n: int, k: int) -> np.ndarray:
    """The test values the C program writes: ((7 i + 13 k) mod 17 - 8) / 16, exact in float32."""
    i = np.arange(n)
    return (((7 * i + 13 * k) % 17 - 8) / 16).astype(np.float32)


def inputs(batch: int) -> dict:
    shapes = {"W1": (D, H), "b1": (H,), "W2": (H, C), "b2": (C,)}
    vals = {nm: fill(int(np.prod(s)), k + 1).reshape(s) for k, (nm, s) in enumerate(shapes.items())}
    vals["x"] = fill(batch * D, 0).reshape(batch, D)
    vals["y"] = (np.arange(batch) * 3 + 1) % C
    return vals


@pytest.fixture(scope="module")
def mlp_lib(tmp_path_factory):
    out = tmp_path_factory.mktemp("mlp_sym")
    leaves, logits, loss = _mlp()
    grads = sd.grad(loss, list(leaves[2:]))
    fixed = sd.sum(leaves[2] ** 2)  # a fixed-shape function in the same library
    res = sd.export({"loss_grad": [loss, logits, *grads], "predict": logits, "l2": fixed}, "mlp", out,
                    output_names={"loss_grad": ["loss", "logits", "dW1", "db1", "dW2", "db2"]},
                    shared=shutil.which("gcc") is not None)
    ref = sd.compile([loss, logits, *grads], backend="numpy")
    return out, res, ref


def test_header_documents_the_sizes(mlp_lib):
    out, res, _ = mlp_lib
    h = (out / "mlp_loss_grad.h").read_text()
    for text in ("size_t mlp_loss_grad_workspace_bytes(int64_t batch);",
                 "void *mlp_loss_grad_workspace_alloc(int64_t batch);",
                 "int mlp_loss_grad_run(int64_t batch,\n        const float *x,",
                 "    int64_t batch;", "#define MLP_LOSS_GRAD_NUM_SIZES 1",
                 "#define MLP_LOSS_GRAD_WORKSPACE_BYTES(batch) ((size_t)",
                 "int mlp_loss_grad_arg_shape(int arg, const int64_t *sizes, int64_t *shape);",
                 "sizes[0] = batch  the size of x axis 0, y axis 0",
                 "x[0] = batch, y[0] = batch, logits[0] = batch",
                 "float32[batch, 12]", "int64[batch]", "or -2 when a size is < 1"):
        assert text in h, text
    assert res.functions["mlp_loss_grad"].sizes.names == ["batch"]
    assert res.functions["mlp_l2"].sizes is None
    fixed_h = (out / "mlp_l2.h").read_text()  # a fixed-shape function keeps the fixed API
    assert "size_t mlp_l2_workspace_bytes(void);" in fixed_h and "num_sizes" not in fixed_h


C_MAIN = r"""
#include <stdio.h>
#include <stdlib.h>
#include "mlp.h"

static float *fill(int64_t n, int k) {
    float *p = malloc((size_t)(n ? n : 1) * sizeof(float));
    for (int64_t i = 0; i < n; i++) p[i] = (float)((7 * i + 13 * k) % 17 - 8) / 16.0f;
    return p;
}

static void print(const char *what, const float *p, int64_t n) {
    printf("%s", what);
    for (int64_t i = 0; i < n; i++) printf(" %.9g", p[i]);
    printf("\n");
}

int main(void) {
    const int64_t batches[3] = {BATCHES};
    float *W1 = fill(D * H, 1), *b1 = fill(H, 2), *W2 = fill(H * C, 3), *b2 = fill(C, 4);
    float loss, dW1[D * H], db1[H], dW2[H * C], db2[C];
    sd_pool *pool = sd_pool_create(2);
    if (mlp_num_functions != 3 || mlp_loss_grad_num_sizes() != 1) return 10;
    for (int t = 0; t < 3; t++) {
        int64_t B = batches[t];
        float *x = fill(B * D, 0), *logits = malloc((size_t)(B * C) * sizeof(float));
        int64_t *y = malloc((size_t)B * sizeof(int64_t)), shape[2];
        for (int64_t i = 0; i < B; i++) y[i] = (i * 3 + 1) % C;
        if (mlp_loss_grad_arg_shape(7, (const int64_t[]){B}, shape) != 2 || shape[0] != B || shape[1] != C)
            return 11;
        size_t nbytes = mlp_loss_grad_workspace_bytes(B);       /* the work-size query */
        if (nbytes != MLP_LOSS_GRAD_WORKSPACE_BYTES(B)) return 12;
        void *ws = aligned_alloc(64, (nbytes + 63) / 64 * 64 + 64);
        int rc;
        if (t == 1) {  /* the struct form, on the calling thread */
            mlp_loss_grad_args a = {.batch = B, .x = x, .y = y, .W1 = W1, .b1 = b1, .W2 = W2, .b2 = b2,
                                    .loss = &loss, .logits = logits, .dW1 = dW1, .db1 = db1, .dW2 = dW2,
                                    .db2 = db2};
            rc = mlp_loss_grad_call(&a, ws, NULL);
        } else {
            rc = mlp_loss_grad_run(B, x, W1, b1, W2, b2, y, &loss, logits, dW1, db1, dW2, db2, ws, pool);
        }
        if (rc != 0) return 13;
        printf("batch %lld workspace %zu\n", (long long)B, nbytes);
        print("loss", &loss, 1);
        print("logits", logits, B * C);
        print("dW1", dW1, D * H);
        print("db1", db1, H);
        print("dW2", dW2, H * C);
        print("db2", db2, C);
        if (mlp_predict_run(B, x, W1, b1, W2, b2, logits, NULL, pool) != 0) return 14;
        print("predict", logits, B * C);
        free(ws); free(x); free(y); free(logits);
    }
    /* a size < 1 is refused, nothing written */
    if (mlp_loss_grad_run(0, NULL, W1, b1, W2, b2, NULL, &loss, NULL, dW1, db1, dW2, db2, NULL, NULL) != -2)
        return 15;
    if (mlp_loss_grad_workspace_alloc(0) != NULL) return 16;
    sd_pool_destroy(pool);
    return 0;
}
"""


def _parse(stdout: str) -> list[dict]:
    runs: list[dict] = []
    for line in stdout.splitlines():
        key, *vals = line.split()
        if key == "batch":
            runs.append({"batch": int(vals[0]), "workspace": int(vals[2])})
        else:
            runs[-1][key] = np.array(vals, np.float64)
    return runs


@needs_gcc
def test_c_program_calls_three_batch_sizes(mlp_lib):
    out, res, ref = mlp_lib
    main = out / "main.c"
    main.write_text(f"#define D {D}\n#define H {H}\n#define C {C}\n#define BATCHES {', '.join(map(str, BATCHES))}\n"
                    + C_MAIN)
    exe = out / "main"
    cc = subprocess.run(["gcc", "-O2", "-std=c11", "-Wall", "-Wextra", "-Werror", "-I", str(out), str(main), "-L",
                         str(out), "-lmlp", f"-Wl,-rpath,{out}", "-o", str(exe)], capture_output=True, text=True)
    assert cc.returncode == 0, cc.stderr
    r = subprocess.run([str(exe)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, (r.returncode, r.stderr)
    runs = _parse(r.stdout)
    assert [run["batch"] for run in runs] == list(BATCHES)
    lib = sd.load_library(res.shared_library)["loss_grad"]
    for run in runs:
        B = run["batch"]
        assert run["workspace"] == lib.workspace_size(batch=B) > 0
        want = ref(**inputs(B))
        for key, w in zip(("loss", "logits", "dW1", "db1", "dW2", "db2"), want):
            np.testing.assert_allclose(run[key], np.ravel(w), rtol=2e-5, atol=2e-6, err_msg=f"{key} at batch {B}")
        np.testing.assert_allclose(run["predict"], np.ravel(want[1]), rtol=2e-5, atol=2e-6)


@needs_gcc
def test_load_library_binds_sizes_from_the_arrays(mlp_lib):
    out, res, ref = mlp_lib
    lib = sd.load_library(res.shared_library)
    f = lib["loss_grad"]
    assert f.size_names == ("batch",) and f.workspace_bytes is None
    for B in BATCHES:
        kw = inputs(B)
        got, want = f(**kw), ref(**kw)
        assert got[1].shape == (B, C)
        for g, w in zip(got, want):
            np.testing.assert_allclose(g, w, rtol=2e-5, atol=2e-6)
        pred = lib["predict"](*[kw[n] for n in lib["predict"].input_names])  # positionally, header order
        np.testing.assert_allclose(pred, want[1], rtol=2e-5, atol=2e-6)
    kw = inputs(3)
    kw["y"] = kw["y"][:2]
    with pytest.raises(ValueError, match=r"dimension 'batch' is 2 here .* but 3 in input 'x'"):
        f(**kw)
    with pytest.raises(TypeError, match="takes the sizes batch"):
        f.workspace_size(n=3)
    assert lib["l2"].size_names == () and lib["l2"].workspace_size() == lib["l2"].workspace_bytes
    np.testing.assert_allclose(lib["l2"](W1=kw["W1"]), np.sum(kw["W1"].astype(np.float64) ** 2), rtol=1e-5)


@needs_gcc
def test_call_time_check_and_unused_symbolic_input(tmp_path):
    """A named size broadcast against a fixed one is checked by the C code (-2: a ValueError here); two sizes
    and a product of them; an input whose symbolic dimension the simplified graph no longer reads still takes
    its size (the raw entry then takes none)."""
    x = sd.input("x", ("n", 3), dtype="float64")
    M = sd.param("M", (3, 3), dtype="float64")
    z = sd.input("z", ("m",), dtype="float64")
    s = sd.input("s", ("seq", "batch", 3), dtype="float64")
    rows = s.reshape(-1, 3) @ M  # (batch*seq, 3): an output shape that is a product of two sizes
    Mv = np.arange(9.0).reshape(3, 3)
    res = sd.export({"f": x + M, "g": sd.sum(M) + 0.0 * sd.sum(z), "h": rows}, "chk", tmp_path)
    h = (tmp_path / "chk_f.h").read_text()
    assert "Call-time checks" in h and "n == 3" in h
    assert "int chk_h_run(int64_t batch, int64_t seq," in (tmp_path / "chk_h.h").read_text()
    lib = sd.load_library(res.shared_library)
    sv = np.arange(2 * 5 * 3.0).reshape(2, 5, 3)
    np.testing.assert_allclose(lib["h"](s=sv, M=Mv), sv.reshape(10, 3) @ Mv)
    assert lib["h"].size_names == ("batch", "seq")
    np.testing.assert_array_equal(lib["f"](x=np.ones((3, 3)), M=Mv), 1 + Mv)
    with pytest.raises(ValueError, match=r"chk_f\(\): the sizes n=2 fail a call-time check"):
        lib["f"](x=np.ones((2, 3)), M=Mv)
    g = lib["g"]
    assert g.size_names == ("m",) and res.functions["chk_g"].sizes.raw_names == ()
    assert g(M=Mv, z=np.zeros(4)) == pytest.approx(36.0)


def test_export_without_a_compiler_writes_the_sources(tmp_path):
    leaves, logits, loss = _mlp()
    res = sd.export({"predict": logits}, "nocc", tmp_path, shared=False)
    api = (tmp_path / "nocc_predict_api.c").read_text()
    assert "SD_EXPORT size_t nocc_predict_workspace_bytes(int64_t batch)" in api
    assert 'nocc_predict_arg_dims[NOCC_PREDICT_NUM_ARGS] = {"[batch, 12]"' in api
    assert res.shared_library is None


SYM_MODEL = """
import symdiff as sd
x = sd.input("x", ("batch", 4))
y = sd.input("y", ("batch", 1))
W = sd.param("W", (4, 1))
loss = sd.mse(x @ W, y)
"""


@needs_gcc
def test_cli_compile_of_a_symbolic_model(tmp_path, capsys):
    from symdiff import cli
    model = tmp_path / "reg.py"
    model.write_text(SYM_MODEL)
    assert cli.main(["compile", str(model), "-o", str(tmp_path / "out")]) == 0
    report = capsys.readouterr().out
    assert "workspace" in report and "*batch" in report  # costs as polynomials of the sizes
    assert "size_t reg_workspace_bytes(int64_t batch);" in (tmp_path / "out" / "reg.h").read_text()
    f = sd.load_library(tmp_path / "out" / "libreg.so")["reg"]
    ns = {}
    exec(SYM_MODEL, ns)
    ref = sd.compile([ns["loss"], sd.grad(ns["loss"], ns["W"])], backend="numpy")
    for B in (2, 9):
        kw = {"x": fill(4 * B, 1).reshape(B, 4), "y": fill(B, 2).reshape(B, 1), "W": fill(4, 3).reshape(4, 1)}
        for g, w in zip(f(**kw), ref(**kw)):
            np.testing.assert_allclose(g, w, rtol=2e-5, atol=1e-6)


def test_a_graph_that_needs_a_fixed_size_is_an_export_error(tmp_path, monkeypatch):
    """No per-size fallback exists in a C library: a kernel that needs a fixed value of a size is refused."""
    from symdiff.codegen.llvm import render as render_mod
    from symdiff.codegen.runtime.export import ExportError
    from symdiff.dims import SymbolicDimError

    def refuse(program, name="sd_entry", target=None):
        raise SymbolicDimError("the size batch is symbolic: this needs a fixed size")
    monkeypatch.setattr(render_mod, "render", refuse)
    _, logits, _ = _mlp()
    with pytest.raises(ExportError, match=r"cannot be compiled once for every value of its named sizes \(the size "
                                          r"batch is symbolic.*export it with fixed sizes"):
        sd.export({"predict": logits}, "bad", tmp_path, shared=False)
