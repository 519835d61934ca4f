"""Forced x86-64 levels: sd.compile(..., isa="sse4.2" | "avx2" | "avx512") compiles for LLVM's generic CPU of
that level (GEMMs planned for its vector width); the levels this CPU runs are compared with numpy, the
cache keeps them apart, and an AVX-512 library can be exported on a machine without AVX-512."""
from __future__ import annotations

import numpy as np
import pytest

import symdiff as sd
from symdiff.codegen.target import host_supports


def _graph():
    x = sd.input("x", (24, 40), "float32")
    W = sd.param("W", (40, 36), "float32")
    k = sd.param("k", (3, 1, 3, 3), "float32")
    lab = sd.input("lab", (24,), "int64")
    img = sd.reshape(x, (24, 1, 4, 10))
    h = sd.tanh(x @ W) + sd.mean(sd.conv2d(img, k, padding=1))
    loss = sd.cross_entropy(h, lab)
    return [loss, *sd.grad(loss, [W, k])]


def _values():
    r = np.random.default_rng(0)
    return {"x": r.standard_normal((24, 40)).astype(np.float32), "W": (0.2 * r.standard_normal((40, 36))).astype(np.float32),
            "k": (0.3 * r.standard_normal((3, 1, 3, 3))).astype(np.float32), "lab": r.integers(0, 36, 24)}


@pytest.mark.parametrize("isa,cpu,width", [("sse4.2", "x86-64-v2", 16), ("avx2", "x86-64-v3", 32),
                                           ("avx512", "x86-64-v4", 64)])
def test_forced_isa_matches_numpy(isa, cpu, width):
    if not host_supports(isa):
        with pytest.raises(ValueError, match=rf"this CPU cannot run isa='{isa}' code"):
            sd.compile(_graph(), isa=isa)
        pytest.skip(f"this CPU cannot run {isa} code")
    outs = _graph()
    f = sd.compile(outs, isa=isa, cache=False)
    assert (f.target.cpu, f.target.vector_bytes) == (cpu, width)
    ref = sd.compile(outs, backend="numpy")(**_values())
    for got, want in zip(f(**_values()), ref):
        np.testing.assert_allclose(got, want, rtol=2e-5, atol=2e-6)
    # without FMA units (SSE4.2) llvm.fma would be a libm call per element: the math library and the
    # GEMM use a multiply and an add there
    assert f.target.has_fma == (isa != "sse4.2")
    assert ("llvm.fma." in f.ir) == f.target.has_fma


def test_levels_are_separate_cache_entries(tmp_path, monkeypatch):
    monkeypatch.setenv("SYMDIFF_CACHE_DIR", str(tmp_path))
    levels = [lv for lv in ("sse4.2", "avx2") if host_supports(lv)]
    if len(levels) < 2:
        pytest.skip("needs a CPU that runs both SSE4.2 and AVX2 code")
    fns = [sd.compile(_graph(), isa=lv, cache=True) for lv in levels]
    assert not any(f.cache_hit for f in fns)  # the second level did not load the first one's object
    again = sd.compile(_graph(), isa=levels[0], cache=True)
    assert again.cache_hit


def test_bad_isa_names_the_choices():
    with pytest.raises(ValueError, match=r"isa must be one of sse4.2, avx2, avx512"):
        sd.compile(_graph(), isa="neon")


def test_avx512_library_is_exported_on_any_x86_host(tmp_path):
    """The GEMM of an x86-64-v4 export is planned for 512-bit registers whatever this CPU has."""
    res = sd.export({"step": _graph()}, "lvl", tmp_path, cpu="x86-64-v4", shared=False)
    ir_text = (tmp_path / "lvl_step.ll").read_text()
    assert "<16 x float>" in ir_text and res.functions["lvl_step"].cpu == "x86-64-v4"
