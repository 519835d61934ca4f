"""The on-disk compile cache (codegen/cache.py: llvm objects, shared GEMM objects and the cuda/cuda-cpu
shared libraries, each kind in its namespace).

- keyed by a hash of the simplified graph, the backend, dtypes and the compiler version (code
  generator sources, llvmlite/LLVM, target CPU);
- a corrupt, truncated or foreign entry is detected and rebuilt, never loaded;
- several processes compiling the same graph into a fresh SYMDIFF_CACHE_DIR at once leave one valid
  entry (atomic renames) and all get correct results;
- off with SYMDIFF_CACHE=0 or ``sd.compile(..., cache=False)``; cleared with ``symdiff.codegen.cache.clear()``;
- private: folders made 0700; an entry or folder that others can write, or another user owns, is refused.
"""
from __future__ import annotations

import ctypes
import hashlib
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

def test_source_fingerprint_covers_every_source_file():
    import symdiff.codegen
    files = _cache.source_files()
    expect = {str(f.resolve()) for pkg in (sd, symdiff.codegen) for f in Path(pkg.__file__).resolve().parent.rglob("*")
              if f.suffix in (".py", ".c", ".h") and f.is_file()}
    assert files == sorted(expect) and len(files) == len(set(files))
    assert str(Path(_cache.__file__).resolve()) in files and any(f.endswith(".c") for f in files)
    h = hashlib.sha256()
    for f in files:
        h.update(Path(f).name.encode() + Path(f).read_bytes())
    _cache.source_fingerprint.cache_clear()
    assert _cache.source_fingerprint() == h.hexdigest()


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
    assert _entries(cache_dir) and list((cache_dir / "cuda").rglob("*.bin"))
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
    (entry,) = [p for p in (cache_dir / "cuda").rglob("*.bin")]
    return entry


def _cuda_corruptions(other: bytes):
    def flip(b):
        b = bytearray(b)
        b[len(b) // 2] ^= 0x55
        return bytes(b)

    return {
        "truncated": lambda b: b[: len(b) // 2],
        "flipped-byte": flip,
        "foreign-entry": lambda b: other,  # another graph's valid entry under this key's name
        "raw-so-without-header": lambda b: b[b.index(b"\x7fELF"):],
    }


def test_bad_cuda_cpu_library_is_rebuilt(cache_dir):
    """Each corruption of the cached library entry is detected: the library is rebuilt and never
    dlopen'ed (a foreign library would be called with the wrong argument layout)."""
    sd.compile(_graph(k=4.0), backend="cuda-cpu")
    other = _cuda_entry(cache_dir)
    other_bytes = other.read_bytes()
    other.unlink()
    assert sd.compile(_graph(), backend="cuda-cpu").cache_hit is False
    entry = _cuda_entry(cache_dir)
    key = entry.stem
    for kind, corrupt in _cuda_corruptions(other_bytes).items():
        bad = corrupt(entry.read_bytes())
        entry.write_bytes(bad)
        assert _cache.load(key, "cuda") is None, kind  # detected (and removed) ...
        entry.write_bytes(bad)
        f = sd.compile(_graph(), backend="cuda-cpu")
        assert not f.cache_hit, kind  # ... and rebuilt, not loaded
        _check(f)
        meta, payload = _cache.load(key, "cuda")  # a valid entry again
        assert meta["backend"] == "cuda-cpu" and payload.startswith(b"\x7fELF"), kind
    assert sd.compile(_graph(), backend="cuda-cpu").cache_hit


def test_cuda_cpu_libraries_go_through_the_cache(cache_dir):
    """cuda-cpu libraries are cache.py entries: a recompile hits, and loads exactly the verified bytes."""
    f1 = sd.compile(_graph(), backend="cuda-cpu")
    f2 = sd.compile(_graph(), backend="cuda-cpu")
    assert not f1.cache_hit and f2.cache_hit
    entry = _cuda_entry(cache_dir)
    assert Path(f2.library_path) == entry == _cache.entry_path(entry.stem, "cuda")
    meta, payload = _cache.load(entry.stem, "cuda")
    assert meta["source_sha256"] == hashlib.sha256(f2.source.encode()).hexdigest()
    assert payload.startswith(b"\x7fELF")
    _check(f2)
    path, hit, tmp = cuda_backend.build_library(f2.source, "cuda-cpu")  # the public API: a loadable .so
    assert hit and Path(path).read_bytes() == payload and ctypes.CDLL(str(path)).sd_entry_launch
    del tmp
    assert not list(cache_dir.rglob("*.so")) and not list(cache_dir.rglob("*.json"))  # no side files


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
    libs = list((cache_dir / "cuda").rglob("*.bin"))
    assert len(libs) == 1 and _cache.load(libs[0].stem, "cuda") is not None
    leftovers = [p for p in cache_dir.rglob("*") if p.name.startswith((".tmp-", ".build-"))]
    assert not leftovers, leftovers
    _cache.source_fingerprint.cache_clear()  # (in a shared checkout the sources may have changed meanwhile)
    for be in ("llvm", "cuda-cpu"):
        f = sd.compile(_graph(), backend=be)
        assert f.cache_hit
        _check(f)


# ---- trust: a cache entry is machine code loaded into the process ----------------------------------------------

posix_only = pytest.mark.skipif(not hasattr(os, "getuid"), reason="POSIX owners and modes")


def _mode(p: Path) -> int:
    return p.stat().st_mode & 0o777


@posix_only
def test_cache_folders_are_created_private(cache_dir):
    sd.compile(_graph())
    sd.compile(_graph(), backend="cuda-cpu")
    folders = [cache_dir, *(p for p in cache_dir.rglob("*") if p.is_dir())]
    assert len(folders) >= 5  # root, llvm shard, kernels/..., cuda/...
    for d in folders:
        assert _mode(d) == 0o700, d
    for f in cache_dir.rglob("*.bin"):
        assert _mode(f) == 0o600, f


@posix_only
@pytest.mark.parametrize("where", ["entry", "shard folder", "namespace folder", "cache folder"])
def test_writable_by_others_is_refused(cache_dir, where):
    sd.compile(_graph(), backend="cuda-cpu")
    entry = _cuda_entry(cache_dir)
    target = {"entry": entry, "shard folder": entry.parent, "namespace folder": entry.parent.parent,
              "cache folder": cache_dir}[where]
    for mode in (0o666 if where == "entry" else 0o777, 0o620 if where == "entry" else 0o770):
        os.chmod(target, mode)
        with pytest.warns(RuntimeWarning, match="writable by group or others"):
            assert _cache.load(entry.stem, "cuda") is None  # refused, not loaded ...
        assert entry.exists()  # ... and not deleted (it may be another user's)
        f = sd.compile(_graph(), backend="cuda-cpu")  # (warned once per path: no second warning)
        assert not f.cache_hit
        _check(f)
        _cache.forget_warnings()
    os.chmod(target, 0o600 if where == "entry" else 0o700)
    assert sd.compile(_graph(), backend="cuda-cpu").cache_hit


@posix_only
def test_warns_once_per_refused_path(cache_dir, recwarn):
    sd.compile(_graph())
    os.chmod(cache_dir, 0o777)
    try:
        for _ in range(3):
            assert not sd.compile(_graph()).cache_hit
        refused = [w for w in recwarn.list if "symdiff cache" in str(w.message)]
        assert len(refused) == 1 and str(cache_dir) in str(refused[0].message)
    finally:
        os.chmod(cache_dir, 0o700)
        _cache.forget_warnings()


@posix_only
def test_entry_owned_by_another_user_is_refused(cache_dir, monkeypatch):
    f = sd.compile(_graph())
    (entry,) = _entries(cache_dir)
    if os.getuid() == 0:  # as root: really give the entry to another user
        os.chown(entry, 12345, -1)
    else:  # otherwise: the cache sees another uid as the owner of this entry
        real_lstat = os.lstat

        def lstat(p, *a, **k):
            st = real_lstat(p, *a, **k)
            if Path(p) == entry:
                return os.stat_result((st.st_mode, st.st_ino, st.st_dev, st.st_nlink, 12345, *st[5:]))
            return st

        monkeypatch.setattr(os, "lstat", lstat)
    with pytest.warns(RuntimeWarning, match="owned by uid 12345"):
        assert _cache.load(entry.stem) is None
    assert entry.exists()  # another user's file is not deleted either
    g = sd.compile(_graph())
    assert not g.cache_hit and not f.cache_hit
    _check(g)
    _cache.forget_warnings()
