"""The `symdiff` command line, end to end through the installed console script (subprocesses), plus a
few in-process calls of `symdiff.cli.main` where the environment has to be faked (no Graphviz)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from symdiff import cli

ROOT = Path(__file__).resolve().parents[1]
# the console script of the interpreter running the tests (not whichever `symdiff` is first on PATH)
_SCRIPT = Path(sys.executable).parent / "symdiff"
BASE_CMD = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "symdiff"]


def checkout_env() -> dict:
    """The console script, importing this checkout (not whatever copy another `pip install -e` registered)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [env.get("PYTHONPATH")])])
    return env

MLP = """\
import symdiff as sd
x = sd.input("x", (4, 3))
labels = sd.input("labels", (4,), dtype="int64")
W = sd.param("W", (3, 5))
b = sd.param("b", (5,))
h = sd.tanh(x @ W + b)
z = h / (1.0 + sd.exp(h))
loss = sd.cross_entropy(z, labels)
hidden = h
"""

SMOOTH = """\
import symdiff as sd
w = sd.param("w", (3,), dtype="float64")
loss = sd.sum(sd.exp(w))
"""


def run(*args, cwd=None, check_rc=None):
    r = subprocess.run([*BASE_CMD, *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=120,
                       env=checkout_env())
    if check_rc is not None:
        assert r.returncode == check_rc, f"rc={r.returncode}\nstdout:\n{r.stdout}\nstderr:\n{r.stderr}"
    return r


def call(capsys, *args):
    """In process (faster than a subprocess; for variants of a command already tested end to end)."""
    rc = cli.main([str(a) for a in args])
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.fixture
def model(tmp_path) -> Path:
    p = tmp_path / "mlp.py"
    p.write_text(MLP)
    return p


def test_console_script_installed_and_python_m():
    assert _SCRIPT.exists(), f"the symdiff console script is not installed next to {sys.executable} (pip install -e .)"
    r = subprocess.run([sys.executable, "-m", "symdiff", "--version"], capture_output=True, text=True, timeout=60,
                       env=checkout_env())
    assert r.returncode == 0 and r.stdout.startswith("symdiff ")


def test_compile_ir_target(model, tmp_path):
    out = tmp_path / "ir"
    r = run("compile", f"{model}:loss", "--target", "ir", "-o", out, check_rc=0)
    assert "after simplification" in r.stdout and "kernels" in r.stdout and "FLOPs" in r.stdout
    before = (out / "mlp.graph.txt").read_text()
    after = (out / "mlp.simplified.txt").read_text()
    kernels = (out / "mlp.kernels.txt").read_text()
    assert "param 'W'" in before and before.count("\n") > after.count("\n")
    assert "dloss/dW" in after and after.rstrip().splitlines()[-1].startswith("return")
    assert kernels.startswith("program:") and "matmul" in kernels
    for f in ("mlp.graph.txt", "mlp.simplified.txt", "mlp.kernels.txt"):
        assert str(out / f) in r.stdout


def test_compile_llvm_target_float64_with_labels(model, tmp_path):
    out = tmp_path / "llvm"
    r = run("compile", model, "-o", out, "--dtype", "float64", "--name", "net", check_rc=0)
    for f in ("net.ll", "net.o", "net.h", "net_api.c", "sd_pool.h", "sd_pool.c", "libnet.so"):
        assert (out / f).is_file(), f
        assert str(out / f) in r.stdout
    header = (out / "net.h").read_text()
    assert "void net(void **args, void *pool);" in header
    assert "const double *x" in header and "const int64_t *labels" in header and "double *grad_W" in header
    assert "integer class labels in [0, 5)" in header and "gradient d loss / d b" in header
    assert "size_t net_workspace_bytes(void);" in header
    assert "define" in (out / "net.ll").read_text()


def test_compile_no_grad_non_scalar_and_wrt(model, tmp_path, capsys):
    rc, out, _ = call(capsys, "compile", f"{model}:hidden", "--no-grad", "--target", "ir", "-o", tmp_path / "h")
    assert rc == 0 and "outputs   hidden float32[4, 5]\n" in out and "gradient" not in out
    rc, out, _ = call(capsys, "compile", model, "--wrt", "b", "--target", "ir", "-o", tmp_path / "b")
    assert rc == 0 and "1 gradient (w.r.t. b)" in out
    rc, _, err = call(capsys, "compile", model, "--wrt", "nope", "--target", "ir", "-o", tmp_path / "n")
    assert rc == 2 and "nope" in err and "W" in err


def test_compile_cuda_target(model, tmp_path):
    r = run("compile", model, "--target", "cuda", "-o", tmp_path / "cu")
    assert r.returncode == 0, r.stderr
    cu = (tmp_path / "cu" / "mlp.cu").read_text()
    assert "__global__" in cu or "SD_LAUNCH" in cu
    assert any(p.suffix == ".h" and p.name not in ("cuda_cpu.h", "cuda_cpu_threads.h") for p in (tmp_path / "cu").iterdir())
    assert (tmp_path / "cu" / "cuda_cpu.h").is_file() and (tmp_path / "cu" / "cuda_cpu_threads.h").is_file()


def test_compile_cuda_target_without_the_renderer(model, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "symdiff.codegen.cuda.render", None)  # the import raises ImportError
    rc, _, err = call(capsys, "compile", model, "--target", "cuda", "-o", tmp_path / "cu")
    assert rc == 2 and "CUDA renderer is not available" in err


def test_check_passes_and_fails(tmp_path, model):
    r = run("check", model, "--seed", "3", check_rc=0)
    assert "all passed" in r.stdout and "PASS" in r.stdout and "W" in r.stdout
    smooth = tmp_path / "smooth.py"
    smooth.write_text(SMOOTH)
    # a huge finite-difference step makes the numeric derivative of exp wrong by sinh(1) - 1 = 17.5%
    r = run("check", smooth, "--eps", "1.0", check_rc=1)
    assert "FAIL" in r.stdout and "w" in r.stderr


def test_graph_text_dot_svg(model, tmp_path, capsys):
    r = run("graph", model, check_rc=0)
    assert r.stdout.startswith("#") and "%0" in r.stdout and "tanh" in r.stdout and "dloss" not in r.stdout
    rc, raw, _ = call(capsys, "graph", model, "--backward", "--raw")
    assert rc == 0
    rc, simplified, _ = call(capsys, "graph", model, "--backward")
    assert rc == 0 and "dloss/dW" in simplified and simplified.count("\n") < raw.count("\n")
    dot = tmp_path / "g.dot"
    assert call(capsys, "graph", model, "--backward", "-o", dot)[0] == 0
    text = dot.read_text()
    assert text.startswith("digraph") and "#ffe08a" in text and "#f28b82" in text and "#fbe3e3" in text
    assert "dloss/dW" in text and "float32[3, 5]" in text
    svg = tmp_path / "g.svg"
    r = run("graph", model, "--backward", "--format", "svg", "-o", svg)
    if shutil.which("dot") is None:
        assert r.returncode == 3 and "dot" in r.stderr and (tmp_path / "g.dot").is_file()
        pytest.skip("Graphviz 'dot' is not installed: SVG rendering not tested (the DOT fallback was)")
    assert r.returncode == 0, r.stderr
    assert "<svg" in svg.read_text()


def test_graph_without_dot_writes_dot_file(model, tmp_path, monkeypatch, capsys):
    real_which = shutil.which
    monkeypatch.setattr(shutil, "which", lambda name, *a, **k: None if name == "dot" else real_which(name, *a, **k))
    out = tmp_path / "pic.png"
    rc = cli.main(["graph", str(model), "-o", str(out)])
    err = capsys.readouterr().err
    assert rc == cli.EXIT_TOOL
    assert "Graphviz 'dot' not found" in err and str(tmp_path / "pic.dot") in err
    assert (tmp_path / "pic.dot").read_text().startswith("digraph") and not out.exists()


def test_explain_prints_sympy_derivatives(model, capsys):
    listing = call(capsys, "graph", model)[1]
    tanh_id = next(line.split()[0][1:] for line in listing.splitlines() if "= tanh" in line)
    r = run("explain", model, "--node", tanh_id, check_rc=0)
    assert "1 - tanh(" in r.stdout and "LaTeX: 1 - \\tanh^{2}" in r.stdout
    div_id = next(line.split()[0][1:] for line in listing.splitlines() if "= div" in line)
    rc, out, _ = call(capsys, "explain", model, "--node", div_id)
    assert rc == 0 and out.count("LaTeX:") == 3  # the value and two partial derivatives
    rc, _, err = call(capsys, "explain", model, "--node", "1")  # a leaf
    assert rc == 2 and "not an elementwise op" in err
    rc, _, err = call(capsys, "explain", model, "--node", "999")
    assert rc == 2 and "no node %999" in err
    rc, out, _ = call(capsys, "explain", model, "--backward", "--node", tanh_id)  # same ids for forward nodes
    assert rc == 0 and "1 - tanh(" in out


@pytest.mark.parametrize("case", ["missing_file", "syntax", "missing_name", "non_scalar", "runtime", "not_tensor"])
def test_errors_are_one_line_exit_2(tmp_path, model, case, capsys):
    bad = tmp_path / "bad.py"
    if case == "missing_file":
        spec, needle = tmp_path / "nope.py", "not found"
    elif case == "syntax":
        bad.write_text("import symdiff as sd\nx = sd.input('x', (3,))\nloss = sd.sum(x *\n")
        spec, needle = bad, "bad.py:3: syntax error"
    elif case == "missing_name":
        spec, needle = f"{model}:nothere", "no tensor named 'nothere'"
    elif case == "non_scalar":
        spec, needle = f"{model}:hidden", "has shape (4, 5)"
    elif case == "runtime":
        bad.write_text("import symdiff as sd\nx = sd.input('x', (3,))\nW = sd.param('W', (4, 4))\nloss = sd.sum(x @ W)\n")
        spec, needle = bad, "bad.py:4: running the model file failed: ValueError"
    else:
        bad.write_text("loss = 3.0\n")
        spec, needle = bad, "not a symdiff tensor"
    if case in ("missing_file", "syntax"):  # through the console script
        r = run("check", spec, check_rc=2)
        err = r.stderr
    else:
        rc, _, err = call(capsys, "check", spec)
        assert rc == 2
    assert needle in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert Path(str(spec).split(":")[0]).name in err


def test_debug_shows_traceback(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("raise RuntimeError('boom')\n")
    r = run("compile", bad, "--debug", check_rc=2)
    assert "Traceback" in r.stderr and "boom" in r.stderr


def test_usage_errors(model, capsys, monkeypatch):
    monkeypatch.chdir(model.parent)
    rc, _, err = call(capsys, "graph", model, "--format", "svg")  # no -o: the image is MODEL.svg
    assert (rc == 0 and (model.parent / "mlp.svg").exists() and "wrote mlp.svg" in err) or \
        (rc == 3 and (model.parent / "mlp.dot").exists() and "dot" in err)  # without Graphviz: the DOT source
    with pytest.raises(SystemExit) as e:  # argparse
        cli.main(["compile", str(model), "--target", "nope"])
    assert e.value.code == 2
    run(check_rc=2)


def test_model_file_runs_with_its_directory_importable(tmp_path):
    (tmp_path / "layers.py").write_text(textwrap.dedent("""\
        import symdiff as sd
        def dense(x, name, n_in, n_out):
            return x @ sd.param(name, (n_in, n_out), dtype="float64")
    """))
    (tmp_path / "net.py").write_text(textwrap.dedent("""\
        import symdiff as sd
        from layers import dense
        x = sd.input("x", (2, 3), dtype="float64")
        loss = sd.mean(sd.tanh(dense(x, "W", 3, 2)))
        if __name__ == "__main__":
            raise SystemExit("the CLI must not run the main block")
    """))
    r = run("check", "net.py", cwd=tmp_path, check_rc=0)
    assert "all passed" in r.stdout
    assert os.fspath(tmp_path) not in sys.path


def test_shipped_two_layer_model_file_checks(capsys):
    """examples/two_layer_model.py (the lecture network as a model file, rendered in the docs)."""
    model = Path(__file__).resolve().parent.parent / "examples" / "two_layer_model.py"
    rc, out, _ = call(capsys, "check", f"{model}:C")
    assert rc == 0 and "W1" in out and "W2" in out and "all passed" in out
