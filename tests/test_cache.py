"""The on-disk compile cache (codegen/cache.py for llvm objects, codegen/cuda/backend.py for the
cuda-cpu shared libraries).

- keyed by a hash of the simplified graph, the backend, dtypes and the compiler version (code
  generator sources, llvmlite/LLVM, target CPU);
- a corrupt, truncated or foreign entry is detected and rebuilt, never loaded;
- several processes compiling the same graph into a fresh SYMDIFF_CACHE_DIR at once leave one valid
  entry (atomic renames) and all get correct results;
- off with SYMDIFF_CACHE=0 or ``sd.compile(..., cache=False)``; cleared with ``symdiff.codegen.cache.clear()``.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

import symdiff as sd
from symdiff.codegen import cache as _cache
from symdiff.codegen.cuda import backend as cuda_backend
from symdiff.codegen.llvm import backend as llvm_backend
from symdiff.codegen.target import host_target


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    d = tmp_path / "cache"
    monkeypatch.setenv("SYMDIFF_CACHE_DIR", str(d))
    monkeypatch.delenv("SYMDIFF_CACHE", raising=False)
    return d


def _graph(dtype="float32", k=3.0):
    x = sd.input("x", (4, 5), dtype)
    w = sd.param("w", (5, 3), dtype)
    y = sd.sum(sd.tanh(x @ w) * k)
    return [y] + sd.grad(y, [w])


def _values(dtype=np.float32):
    r = np.random.default_rng(0)
    return {"x": r.standard_normal((4, 5)).astype(dtype), "w": r.standard_normal((5, 3)).astype(dtype)}


def _reference(dtype="float32", k=3.0):
    return sd.compile(_graph(dtype, k), backend="numpy")(**_values(np.dtype(dtype).type))


def _check(f, dtype="float32", k=3.0):
    got = f(**_values(np.dtype(dtype).type))
    for g, r in zip(got, _reference(dtype, k)):
        np.testing.assert_allclose(g, r, rtol=1e-5, atol=1e-6)


def _entries(d: Path, pattern="*.bin"):
    return sorted(p for p in d.rglob(pattern) if "cuda" not in p.parts and "kernels" not in p.parts)


# ---- keys -------------------------------------------------------------------------------------------------------

def test_key_depends_on_graph_backend_dtype_and_compiler_version(monkeypatch):
    base = sd.simplify(_graph())
    key = llvm_backend.graph_key(base, "llvm")
    assert key == llvm_backend.graph_key(sd.simplify(_graph()), "llvm")  # rebuilt graph: same structure, same key
    x = sd.input("x", (4, 5), "float32")
    w = sd.param("w", (5, 3), "float32")
    assert llvm_backend.graph_key(sd.simplify([sd.sum(sd.tanh(x @ w) * 3.0) * 1.0]), "llvm") == \
        llvm_backend.graph_key(sd.simplify([sd.sum(sd.tanh(x @ w) * 3.0)]), "llvm")  # keyed by the simplified graph
    others = {
        "graph": llvm_backend.graph_key(sd.simplify(_graph(k=4.0)), "llvm"),
        "dtype": llvm_backend.graph_key(sd.simplify(_graph("float64")), "llvm"),
        "backend": llvm_backend.graph_key(base, "llvm-other"),
        "outputs": llvm_backend.graph_key(base[:1], "llvm"),
    }
    monkeypatch.setattr(llvm_backend, "CODEGEN_VERSION", "999")
    others["codegen version"] = llvm_backend.graph_key(base, "llvm")
    monkeypatch.undo()
    monkeypatch.setattr(_cache, "source_fingerprint", lambda: "edited-sources")
    others["compiler sources"] = llvm_backend.graph_key(base, "llvm")
    monkeypatch.undo()
    monkeypatch.setattr(llvm_backend.llvmlite, "__version__", "0.0.0")
    others["llvmlite version"] = llvm_backend.graph_key(base, "llvm")
    monkeypatch.undo()
    host = host_target()
    others["target cpu"] = llvm_backend.graph_key(base, "llvm", target=replace(host, cpu="other-cpu"))
    others["target features"] = llvm_backend.graph_key(base, "llvm", target=replace(host, features="+sse2"))
    others["target threads"] = llvm_backend.graph_key(base, "llvm", target=host.with_threads(host.threads + 1))
    assert llvm_backend.graph_key(base, "llvm", target=host) == key  # the default target is the host
    assert llvm_backend.graph_key(base, "llvm") == key
    for what, k in others.items():
        assert k != key, f"the key ignores the {what}"
    assert len(set(others.values())) == len(others)


def test_cuda_cpu_key_depends_on_source_compiler_and_runtime_header(cache_dir, monkeypatch):
    """The cuda-cpu library is keyed by the generated source, the compiler + version + flags and
    cuda_cpu.h: a changed input builds a new library (no hit)."""
    f = sd.compile(_graph(), backend="cuda-cpu")
    assert not f.cache_hit and sd.compile(_graph(), backend="cuda-cpu").cache_hit
    assert not sd.compile(_graph(k=4.0), backend="cuda-cpu").cache_hit
    assert not sd.compile(_graph(), backend="cuda-cpu", flags=["-DSYMDIFF_TEST_FLAG=1"]).cache_hit
    monkeypatch.setattr(cuda_backend, "compiler_version", lambda path: "g++ (test) 0.0")
    assert not sd.compile(_graph(), backend="cuda-cpu").cache_hit


# ---- hits, switches, clear ---------------------------------------------------------------------------------------

def test_llvm_hit_after_store_and_results(cache_dir):
    f1 = sd.compile(_graph())
    assert not f1.cache_hit and f1.ir is not None
    assert len(_entries(cache_dir)) == 1
    f2 = sd.compile(_graph())
    assert f2.cache_hit and f2.ir is None  # loaded from the object file, not recompiled
    _check(f1)
    _check(f2)
    f3 = sd.compile(_graph("float64"))  # another dtype: another entry
    assert not f3.cache_hit and len(_entries(cache_dir)) == 2
    _check(f3, "float64")


def test_turning_the_cache_off(cache_dir, monkeypatch):
    f = sd.compile(_graph(), cache=False)
    assert not f.cache_hit and not cache_dir.exists()
    fc = sd.compile(_graph(), backend="cuda-cpu", cache=False)
    assert not fc.cache_hit and not cache_dir.exists()
    _check(f)
    _check(fc)
    monkeypatch.setenv("SYMDIFF_CACHE", "0")
    for be in ("llvm", "cuda-cpu"):
        g = sd.compile(_graph(), backend=be)
        assert not g.cache_hit
        _check(g)
    assert not cache_dir.exists()
    g = sd.compile(_graph(), cache=True)  # an explicit cache=True wins over the environment
    assert not g.cache_hit and len(_entries(cache_dir)) == 1
    for off in ("false", "no", "off"):
        monkeypatch.setenv("SYMDIFF_CACHE", off)
        assert not _cache.enabled()
    monkeypatch.setenv("SYMDIFF_CACHE", "1")
    assert _cache.enabled() and sd.compile(_graph()).cache_hit


def test_clear(cache_dir):
    sd.compile(_graph())
    sd.compile(_graph(), backend="cuda-cpu")
    assert _entries(cache_dir) and list((cache_dir / "cuda").rglob("*.so"))
    _cache.clear()
    assert not cache_dir.exists()
    assert not sd.compile(_graph()).cache_hit
    assert not sd.compile(_graph(), backend="cuda-cpu").cache_hit
    _cache.clear()
    _cache.clear()  # clearing an absent cache is fine


def test_unusable_cache_dir_only_costs_the_cache(tmp_path, monkeypatch):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    monkeypatch.setenv("SYMDIFF_CACHE_DIR", str(blocker / "cache"))
    monkeypatch.delenv("SYMDIFF_CACHE", raising=False)
    for be in ("llvm", "cuda-cpu"):
        f = sd.compile(_graph(), backend=be)
        assert not f.cache_hit
        _check(f)
        assert not sd.compile(_graph(), backend=be).cache_hit


# ---- bad entries are rebuilt, never loaded ---------------------------------------------------------------------------

def _corruptions(other: bytes):
    def flip_payload(b):
        b = bytearray(b)
        b[-10] ^= 0xFF
        return bytes(b)

    def header_size(b):
        return b.replace(b'"size": ', b'"size": 1', 1)

    return {
        "truncated-payload": lambda b: b[:-7],
        "truncated-header": lambda b: b[:len(_cache.MAGIC) + 10],
        "empty": lambda b: b"",
        "flipped-payload-byte": flip_payload,
        "bad-magic": lambda b: b"X" + b[1:],
        "garbage": lambda b: os.urandom(len(b)),
        "header-size-lies": header_size,
        "format-version": lambda b: b.replace(b'"format": 1', b'"format": 9', 1),
        "foreign-entry": lambda b: other,  # a valid entry of another graph under this key's name
        "header-not-json": lambda b: b[:len(_cache.MAGIC) + 4] + b"{not json" + b[len(_cache.MAGIC) + 13:],
    }


@pytest.mark.parametrize("kind", sorted(_corruptions(b"")))
def test_bad_llvm_entry_is_rebuilt(cache_dir, kind):
    sd.compile(_graph(k=4.0))
    (other_path,) = _entries(cache_dir)
    other = other_path.read_bytes()
    sd.compile(_graph())
    (path,) = [p for p in _entries(cache_dir) if p != other_path]
    good = path.read_bytes()
    path.write_bytes(_corruptions(other)[kind](good))
    key = path.stem
    assert _cache.load(key) is None  # detected ...
    path.write_bytes(_corruptions(other)[kind](good))
    f = sd.compile(_graph())
    assert not f.cache_hit  # ... and rebuilt, not loaded
    _check(f)
    assert _cache.load(key) is not None  # the rebuilt entry is valid again
    assert sd.compile(_graph()).cache_hit


def _cuda_entry(cache_dir):
    (so,) = [p for p in (cache_dir / "cuda").rglob("*.so")]
    return so, so.with_suffix(".json")


CUDA_CORRUPTIONS = ["truncated", "flipped-byte", "foreign-so", "foreign-so-and-sidecar", "missing-sidecar"]


def test_bad_cuda_cpu_library_is_rebuilt(cache_dir):
    """Each corruption of the cached .so (or of its sidecar) is detected: the library is rebuilt and
    never dlopen'ed (a foreign library would be called with the wrong argument layout)."""
    sd.compile(_graph(k=4.0), backend="cuda-cpu")
    other_so, other_meta = _cuda_entry(cache_dir)
    other_bytes, other_sidecar = other_so.read_bytes(), other_meta.read_text()
    other_so.unlink()
    other_meta.unlink()
    assert sd.compile(_graph(), backend="cuda-cpu").cache_hit is False
    so, meta = _cuda_entry(cache_dir)
    for kind in CUDA_CORRUPTIONS:
        data = so.read_bytes()
        if kind == "truncated":
            so.write_bytes(data[: len(data) // 2])
        elif kind == "flipped-byte":
            b = bytearray(data)
            b[len(b) // 2] ^= 0x55
            so.write_bytes(bytes(b))
        elif kind == "foreign-so":  # another graph's library
            so.write_bytes(other_bytes)
        elif kind == "foreign-so-and-sidecar":
            so.write_bytes(other_bytes)
            meta.write_text(other_sidecar)
        elif kind == "missing-sidecar":
            meta.unlink()
        f = sd.compile(_graph(), backend="cuda-cpu")
        assert not f.cache_hit, kind
        _check(f)
        info = json.loads(meta.read_text())
        assert info["size"] == len(so.read_bytes()) and info["key"] == so.stem, kind
    assert sd.compile(_graph(), backend="cuda-cpu").cache_hit
    assert cuda_backend._verified(so, meta, "another-key") is None  # a sidecar for another key is foreign


# ---- several processes at once ----------------------------------------------------------------------------------------

CHILD = textwrap.dedent("""
    import os, sys, time, json
    import numpy as np
    sys.path.insert(0, {tests!r})
    import test_cache as t
    go = {go!r}
    while not os.path.exists(go):  # start together
        time.sleep(0.002)
    out = {{}}
    for be in ("llvm", "cuda-cpu"):
        f = t.sd.compile(t._graph(), backend=be)
        res = f(**t._values())
        out[be] = [float(np.asarray(r, np.float64).sum()) for r in res]
        out[be + "-hit"] = f.cache_hit
    print(json.dumps(out))
""")


def test_concurrent_processes_share_one_fresh_cache(cache_dir, tmp_path):
    """Four processes compile the same graph (llvm and cuda-cpu) into an empty cache at the same time:
    all get correct results, and the cache ends with one valid entry per backend, no temporaries."""
    go = tmp_path / "go"
    script = tmp_path / "child.py"
    script.write_text(CHILD.format(tests=str(Path(__file__).parent), go=str(go)))
    env = {**os.environ, "SYMDIFF_CACHE_DIR": str(cache_dir)}
    env.pop("SYMDIFF_CACHE", None)
    procs = [subprocess.Popen([sys.executable, str(script)], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(4)]
    time.sleep(0.5)
    go.write_text("go")
    outs = []
    for p in procs:
        stdout, stderr = p.communicate(timeout=300)
        assert p.returncode == 0, stderr[-3000:]
        outs.append(json.loads(stdout.strip().splitlines()[-1]))
    ref = [float(np.asarray(r, np.float64).sum()) for r in _reference()]
    for o in outs:
        for be in ("llvm", "cuda-cpu"):
            np.testing.assert_allclose(o[be], ref, rtol=1e-5)
    entries = _entries(cache_dir)
    assert len(entries) == 1 and _cache.load(entries[0].stem) is not None
    sos = list((cache_dir / "cuda").rglob("*.so"))
    assert len(sos) == 1
    assert cuda_backend._entry_ok(sos[0], sos[0].with_suffix(".json"), sos[0].stem)
    leftovers = [p for p in cache_dir.rglob("*") if p.name.startswith((".tmp-", ".build-"))]
    assert not leftovers, leftovers
    _cache.source_fingerprint.cache_clear()  # (in a shared checkout the sources may have changed meanwhile)
    for be in ("llvm", "cuda-cpu"):
        f = sd.compile(_graph(), backend=be)
        assert f.cache_hit
        _check(f)
