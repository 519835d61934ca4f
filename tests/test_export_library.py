"""sd.export: several functions (a model, its gradient, Jacobian and Hessian) in one C library; its ABI
(work-size query, argument counts/tables); thread safety from C with pthreads; sd.load_library."""
from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest

import symdiff as sd

needs_gcc = pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc is needed to link the library")
LINKS = np.array([1.0, 0.8, 0.5])


def _arm():
    """A planar 3-link arm: joint angles q -> end position (x, y); loss = |pos - target|^2."""
    q = sd.input("q", (3,), "float64")
    ang = sd.cumsum(q)
    pos = sd.stack([sd.sum(LINKS * sd.cos(ang)), sd.sum(LINKS * sd.sin(ang))])
    loss = sd.sum((pos - sd.const(np.array([1.2, 0.9]), "float64")) ** 2)
    return q, pos, loss


@pytest.fixture(scope="module")
def arm_lib(tmp_path_factory):
    out = tmp_path_factory.mktemp("arm")
    q, pos, loss = _arm()
    res = sd.export({"fk": pos, "fk_jac": sd.jacobian(pos, q), "loss": [loss, sd.grad(loss, q)],
                     "loss_hess": sd.hessian(loss, q)}, "arm", out)
    return out, res, (q, pos, loss)


@needs_gcc
def test_functions_round_trip_through_load_library(arm_lib):
    out, res, (q, pos, loss) = arm_lib
    assert sorted(res.functions) == ["arm_fk", "arm_fk_jac", "arm_loss", "arm_loss_hess"]
    lib = sd.load_library(res.shared_library)
    qv = np.array([0.3, -0.2, 0.5])
    ref = sd.compile([pos, sd.jacobian(pos, q), loss, sd.grad(loss, q), sd.hessian(loss, q)], backend="numpy")(q=qv)
    np.testing.assert_allclose(lib["fk"](q=qv), ref[0], rtol=1e-13)
    np.testing.assert_allclose(lib["fk_jac"](qv), ref[1], rtol=1e-13)  # positional, in the header's order
    v, g = lib["arm_loss"](q=qv)
    np.testing.assert_allclose(v, ref[2], rtol=1e-13)
    np.testing.assert_allclose(g, ref[3], rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(lib["loss_hess"](q=qv), ref[4], rtol=1e-12, atol=1e-14)
    with pytest.raises(ValueError, match=r"input 'q': expected shape \(3,\), got \(2,\)"):
        lib["fk"](q=np.zeros(2))
    with pytest.raises(KeyError, match=r"no function 'nope'; it has arm_fk, arm_fk_jac"):
        lib["nope"]
    header = (out / "arm.h").read_text()
    assert '#include "arm_fk_jac.h"' in header and "ARM_NUM_FUNCTIONS 4" in header
    jac_h = (out / "arm_fk_jac.h").read_text()
    for decl in ("size_t arm_fk_jac_workspace_bytes(void);", "int arm_fk_jac_num_inputs(void);",
                 "#define ARM_FK_JAC_NUM_OUTPUTS 1", "arm_fk_jac_arg_table"):
        assert decl in jac_h


THREADS_C = r"""
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "arm.h"
#define N 2000
static double ref[9];
typedef struct { int id; int bad; } job;
static void *work(void *p) {
    job *j = (job *)p;
    void *ws = arm_loss_hess_workspace_alloc();       /* one workspace per thread */
    double q[3], h[9];
    for (int it = 0; it < N; it++) {
        q[0] = 0.3; q[1] = -0.2; q[2] = 0.5;
        arm_loss_hess_run(q, h, ws, NULL);
        if (memcmp(h, ref, sizeof h)) j->bad++;
    }
    arm_loss_hess_workspace_free(ws);
    return NULL;
}
int main(void) {
    double q[3] = {0.3, -0.2, 0.5};
    if (arm_num_functions != 4 || arm_loss_hess_num_inputs() != 1 || arm_loss_hess_num_outputs() != 1) return 3;
    if (arm_loss_hess_run(q, ref, NULL, NULL)) return 2;
    pthread_t t[4]; job jobs[4] = {{0, 0}, {1, 0}, {2, 0}, {3, 0}};
    for (int i = 0; i < 4; i++) pthread_create(&t[i], NULL, work, &jobs[i]);
    int bad = 0;
    for (int i = 0; i < 4; i++) { pthread_join(t[i], NULL); bad += jobs[i].bad; }
    for (int i = 0; i < 9; i++) printf("%.17g\n", ref[i]);
    return bad ? 1 : 0;
}
"""


@needs_gcc
def test_threads_calling_one_function_agree(arm_lib):
    out, res, (q, _, loss) = arm_lib
    (out / "threads.c").write_text(THREADS_C)
    exe = out / "threads"
    cmd = ["gcc", "-O1", "-pthread", "-I", str(out), str(out / "threads.c"), "-L", str(out), "-larm",
           f"-Wl,-rpath,{out}", "-o", str(exe)]
    subprocess.run(cmd, check=True, capture_output=True)
    r = subprocess.run([str(exe)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r
    h = np.array([float(v) for v in r.stdout.split()]).reshape(3, 3)
    np.testing.assert_allclose(h, sd.compile(sd.hessian(loss, q), backend="numpy")(q=np.array([0.3, -0.2, 0.5])),
                               rtol=1e-12, atol=1e-14)


def test_export_argument_errors(tmp_path):
    q, pos, _ = _arm()
    with pytest.raises(TypeError, match="export: functions must be a non-empty dict"):
        sd.export([pos], "arm", tmp_path)
    with pytest.raises(ValueError, match=r"export: function name '2x' is not a C identifier"):
        sd.export({"2x": pos}, "arm", tmp_path)
    with pytest.raises(ValueError, match=r"backend 'numpy' cannot export"):
        sd.export({"fk": pos}, "arm", tmp_path, backend="numpy")


ARM_MODEL = """
import numpy as np
import symdiff as sd
q = sd.input("q", (3,), "float64")
ang = sd.cumsum(q)
L = np.array([1.0, 0.8, 0.5])
pos = sd.stack([sd.sum(L * sd.cos(ang)), sd.sum(L * sd.sin(ang))])
loss = sd.sum((pos - np.array([1.2, 0.9])) ** 2)
"""


@needs_gcc
def test_cli_compile_jacobian_and_hessian_into_one_library(tmp_path, capsys):
    from symdiff import cli
    model = tmp_path / "arm.py"
    model.write_text(ARM_MODEL)
    assert cli.main(["compile", str(model), "--function", "loss", "--wrt", "q", "--jacobian", "--hessian",
                     "-o", str(tmp_path / "out")]) == 0
    assert "loss float64[] + 1 gradient" in capsys.readouterr().out
    lib = sd.load_library(tmp_path / "out" / "libarm.so")
    assert sorted(lib.functions) == ["arm_loss", "arm_loss_hess", "arm_loss_jac"]
    q, pos, loss = _arm()
    qv = np.array([0.1, 0.7, -0.4])
    ref = sd.compile([sd.grad(loss, q), sd.hessian(loss, q)], backend="numpy")(q=qv)
    np.testing.assert_allclose(lib["loss_jac"](q=qv), ref[0], rtol=1e-12, atol=1e-14)  # d scalar / dq = grad
    np.testing.assert_allclose(lib["loss_hess"](q=qv), ref[1], rtol=1e-12, atol=1e-14)
    assert cli.main(["compile", str(model), "--function", "pos", "--no-grad", "--jacobian", "--wrt", "q",
                     "-o", str(tmp_path / "out2")]) == 0
    jac = sd.load_library(tmp_path / "out2" / "libarm.so")["pos_jac"](q=qv)
    np.testing.assert_allclose(jac, sd.compile(sd.jacobian(pos, q), backend="numpy")(q=qv), rtol=1e-12)
    assert cli.main(["compile", str(model), "--function", "pos", "--no-grad", "--hessian", "--wrt", "q"]) == 2
    assert "--hessian needs a scalar tensor" in capsys.readouterr().err


@needs_gcc
def test_robot_arm_example_and_its_c_program(tmp_path, capsys):
    """examples/robot_arm.py solves IK with the symbolic Jacobian; examples/c_jacobian/ik.c does the same
    from C with the exported library."""
    import importlib.util
    from pathlib import Path
    root = Path(__file__).resolve().parent.parent
    spec = importlib.util.spec_from_file_location("robot_arm", root / "examples" / "robot_arm.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    res = mod.main(["--target", "1.2,0.9", "--export", str(tmp_path)])
    assert res["errors"][-1] < 1e-10 and len(res["errors"]) < 15
    exe = tmp_path / "ik"
    subprocess.run(["gcc", "-O1", "-I", str(tmp_path), str(root / "examples" / "c_jacobian" / "ik.c"), "-L",
                    str(tmp_path), "-larm", f"-Wl,-rpath,{tmp_path}", "-lm", "-o", str(exe)], check=True,
                   capture_output=True)
    out = subprocess.run([str(exe), "1.2", "0.9"], capture_output=True, text=True, timeout=30).stdout.split()
    q_c, p_c = np.array(out[3:6], float), np.array(out[7:9], float)
    np.testing.assert_allclose(p_c, [1.2, 0.9], atol=1e-9)
    np.testing.assert_allclose(q_c, res["q"], atol=1e-8)
