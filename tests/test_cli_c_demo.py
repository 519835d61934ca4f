"""examples/c_demo: export the demo model with the `symdiff` console script, build the plain C program
against the exported shared library with gcc, run it, and compare its numbers with the NumPy backend."""
from __future__ import annotations

import os
import runpy
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import symdiff as sd

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "examples" / "c_demo"
from test_cli import BASE_CMD  # the console script of the interpreter under test
SEEDS = {"x": 1.0, "y": 2.0, "W1": 3.0, "b1": 4.0, "W2": 5.0, "b2": 6.0, "W3": 7.0, "b3": 8.0}  # as demo.c fills
PARAMS = ["W1", "b1", "W2", "b2", "W3", "b3"]

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc is needed to build the C demo")


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("c_demo")
    r = subprocess.run([*BASE_CMD, "compile", str(DEMO / "model.py"), "--name", "tiny", "-o", str(out)],
                       capture_output=True, text=True, timeout=120,
                       env={**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))})
    assert r.returncode == 0, r.stderr
    exe = out / "demo"
    cc = subprocess.run(["gcc", "-O2", "-Wall", "-Wextra", "-Werror", str(DEMO / "demo.c"), f"-I{out}", f"-L{out}",
                         "-ltiny", f"-Wl,-rpath,{out}", "-lm", "-o", str(exe)], capture_output=True, text=True)
    assert cc.returncode == 0, cc.stderr
    return out


def test_library_is_self_contained(built):
    lib = built / "libtiny.so"
    readelf = shutil.which("readelf")
    if readelf is None:
        pytest.skip("readelf not installed")
    dyn = subprocess.run([readelf, "-d", str(lib)], capture_output=True, text=True, check=True).stdout
    needed = [line.split("[")[1].rstrip("]") for line in dyn.splitlines() if "(NEEDED)" in line]
    assert needed, dyn
    for n in needed:
        assert n.split(".so")[0] in ("libc", "libm", "libpthread", "libdl", "ld-linux-x86-64", "ld-linux-aarch64"), n
    syms = subprocess.run([readelf, "--dyn-syms", "-W", str(lib)], capture_output=True, text=True, check=True).stdout
    exported = {line.split()[-1] for line in syms.splitlines() if " GLOBAL " in line and " UND " not in line}
    assert {"tiny", "tiny_run", "tiny_call", "tiny_workspace_bytes", "sd_pool_create", "sd_pool_destroy"} <= exported
    assert not any(s.startswith(("gemm", "k0_", "sd_exp")) for s in exported), exported


def test_c_demo_matches_numpy_backend(built):
    r = subprocess.run([str(built / "demo"), "2000"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    printed = {}
    for line in r.stdout.splitlines():
        name, *vals = line.split()
        if name != "per_call_ns":
            printed[name] = np.array(vals, dtype=np.float64)
    ns = runpy.run_path(str(DEMO / "model.py"))
    values = {k: (0.5 * np.sin(s + 0.7 * np.arange(ns[k].size))).reshape(ns[k].shape) for k, s in SEEDS.items()}
    loss = ns["loss"]
    f = sd.compile([loss, *sd.grad(loss, [ns[p] for p in PARAMS])], backend="numpy")
    ref = f(**values)
    for name, want in zip(["loss"] + [f"grad_{p}" for p in PARAMS], ref):
        got = printed[name]
        np.testing.assert_allclose(got, np.ravel(want), rtol=1e-12, atol=1e-14, err_msg=name)
    timing = [line.split() for line in r.stdout.splitlines() if line.startswith("per_call_ns")]
    # "per_call_ns <entry> wall <ns> cpu <ns>", for tiny_call and the raw entry point
    assert [(t[1], t[2], t[4]) for t in timing] == [("tiny_call", "wall", "cpu"), ("raw_entry", "wall", "cpu")]
    assert all(float(t[3]) > 0 and float(t[5]) >= 0 for t in timing), timing
