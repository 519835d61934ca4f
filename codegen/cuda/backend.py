"""``backend="cuda"`` and ``backend="cuda-cpu"``: lower, render CUDA C, build a shared library, call it.

Both backends take the very same generated ``.cu`` source (``symdiff.codegen.cuda.render.render_cuda``):

- ``"cuda"``: nvcc builds it for the GPU found by the driver (``-arch=sm_XY`` of device 0); device
  buffers are allocated once per compiled function, inputs are copied in, the kernels launched (one per
  fused group), the outputs copied back. Without a GPU and driver this raises
  :class:`CudaUnavailableError`, which names ``cuda-cpu``.
- ``"cuda-cpu"``: the host C++ compiler builds it (``g++ -x c++ -std=c++20 -O2 -fPIC -shared -pthread
  -I<codegen>``) against ``codegen/cuda/cuda_cpu.h``, which emulates blocks, threads, ``__syncthreads`` and
  warp shuffles on the CPU. "Device" memory is host memory; the call path is otherwise identical.

Shared libraries are entries of the one compile cache (``symdiff.codegen.cache``, namespace ``cuda``),
keyed by the SHA-256 of the source, the compiler and its version, the flags, and (for cuda-cpu)
cuda_cpu.h. The cache verifies an entry's key and SHA-256 and refuses entries not private to the user:
a library that fails (corrupt, truncated, foreign, world-writable) is rebuilt, never loaded; a verified
one is loaded from a private copy of exactly the verified bytes. Builds happen in a temporary folder;
``SYMDIFF_CACHE=0`` or ``cache=False`` loads the library from there instead.

Symbolic sizes (``sd.input("x", ("batch", 784))``): one library serves every size. The generated entry
points take the sizes (``const long long* sizes``, ``program.size_names`` order); the launcher computes
the grids, offsets and byte counts from them (``cuda/host.py``). A call binds the sizes from its arrays
(``CompiledFunction.__call__``), allocates the outputs, and grows the device buffers (inputs, outputs,
workspace of ``<name>_workspace_bytes(sizes)`` bytes) when a call needs more than the last one.

Options (``sd.compile(..., backend="cuda-cpu", **options)``): ``cache`` (bool), ``compiler`` (the host
C++ compiler for cuda-cpu, or nvcc for cuda; defaults: ``$SYMDIFF_CXX``/``$CXX``/g++ and
``$SYMDIFF_NVCC``/``$NVCC``/nvcc on PATH or /usr/local/cuda/bin), ``arch`` (cuda: e.g. "sm_90";
default: the device's), ``flags`` (extra compiler arguments).
"""
from __future__ import annotations

import ctypes
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
import types
from functools import lru_cache
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from symdiff import dims as _dims
from symdiff.backends import Backend
from symdiff.compiled import CompiledFunction
from symdiff.dim_binding import SymbolicUnsupported
from symdiff.dims import SymbolicDimError
from symdiff.ir import Node

from symdiff.codegen import cache as _cache
from symdiff.codegen.cuda.render import CudaRenderer
from symdiff.codegen.kernel_ir import Program
from symdiff.codegen.cuda import scalar_rules
from symdiff.codegen.expand import require_supported
from symdiff.codegen.lower import lower

ENTRY = "sd_entry"
CODEGEN_VERSION = "1"
CODEGEN_DIR = Path(__file__).resolve().parent
CPU_HEADER = CODEGEN_DIR / "cuda_cpu.h"
CPU_HEADERS = (CPU_HEADER, CODEGEN_DIR / "cuda_cpu_threads.h")  # the emulation: cuda_cpu.h includes the other
CACHE_NAMESPACE = "cuda"  # the symdiff.codegen.cache namespace of the shared libraries
CPU_FLAGS = ("-x", "c++", "-std=c++20", "-O2", "-fPIC", "-shared", "-pthread")
GPU_FLAGS = ("-O3", "-shared", "-Xcompiler", "-fPIC")

__all__ = ["CudaFunction", "CudaUnavailableError", "CudaBuildError", "make_cuda_function", "gpu_info",
           "find_nvcc", "host_compiler", "build_library", "nvcc_ptx", "nvcc_archs", "CUDA_BACKEND",
           "CUDA_CPU_BACKEND"]


class CudaUnavailableError(RuntimeError):
    """backend="cuda" was asked for on a machine without a usable NVIDIA GPU (or driver, or nvcc)."""


class CudaBuildError(RuntimeError):
    """The compiler rejected a generated source (a bug in the renderer) or could not run."""


# ---- tools ------------------------------------------------------------------------------------------------

def find_nvcc(explicit: Optional[str] = None) -> Optional[str]:
    for cand in (explicit, os.environ.get("SYMDIFF_NVCC"), os.environ.get("NVCC")):
        if cand:
            return shutil.which(cand) or (cand if os.path.isfile(cand) else None)
    for cand in ("nvcc", "/usr/local/cuda/bin/nvcc"):
        found = shutil.which(cand)
        if found:
            return found
    return None


def host_compiler(explicit: Optional[str] = None) -> Optional[str]:
    for cand in (explicit, os.environ.get("SYMDIFF_CXX"), os.environ.get("CXX"), "g++", "c++", "clang++"):
        if cand:
            found = shutil.which(cand)
            if found:
                return found
    return None


@lru_cache(maxsize=None)
def compiler_version(path: str) -> str:
    try:
        r = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=60)
        return (r.stdout or r.stderr).strip()
    except (OSError, subprocess.SubprocessError) as e:
        return f"unknown ({e})"


@lru_cache(maxsize=None)
def nvcc_archs(nvcc: str) -> tuple:
    """The real architectures nvcc can target, oldest first (e.g. ('sm_75', 'sm_80', ...))."""
    try:
        r = subprocess.run([nvcc, "--list-gpu-arch"], capture_output=True, text=True, timeout=60)
        found = sorted({int(m) for m in re.findall(r"compute_(\d+)", r.stdout)})
    except (OSError, subprocess.SubprocessError):
        found = []
    return tuple(f"sm_{v}" for v in found)


@lru_cache(maxsize=None)
def gpu_info() -> tuple:
    """(available, reason, compute capability "XY" or None) of device 0, through the CUDA driver API."""
    try:
        lib = ctypes.CDLL("libcuda.so.1")
    except OSError:
        return False, "no NVIDIA driver (libcuda.so.1 cannot be loaded)", None
    try:
        rc = lib.cuInit(0)
        if rc != 0:
            return False, f"the CUDA driver does not initialise (cuInit error {rc}: no usable GPU?)", None
        n = ctypes.c_int(0)
        rc = lib.cuDeviceGetCount(ctypes.byref(n))
        if rc != 0 or n.value == 0:
            return False, "the CUDA driver reports no GPU", None
        dev = ctypes.c_int(0)
        lib.cuDeviceGet(ctypes.byref(dev), 0)
        major, minor = ctypes.c_int(0), ctypes.c_int(0)
        lib.cuDeviceGetAttribute(ctypes.byref(major), 75, dev)  # CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR
        lib.cuDeviceGetAttribute(ctypes.byref(minor), 76, dev)
        return True, f"{n.value} GPU(s)", f"{major.value}{minor.value}"
    except (AttributeError, OSError) as e:
        return False, f"the CUDA driver cannot be queried ({e})", None


def _sha(data) -> str:
    return hashlib.sha256(data if isinstance(data, bytes) else data.encode()).hexdigest()


def _run_compiler(cmd: list, what: str) -> None:
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    except (OSError, subprocess.SubprocessError) as e:
        raise CudaBuildError(f"{what}: cannot run {cmd[0]}: {e}") from None
    if r.returncode != 0:
        raise CudaBuildError(f"{what} failed (exit {r.returncode}): {' '.join(cmd)}\n{r.stderr.strip() or r.stdout.strip()}")


def build_library(source: str, backend: str, *, cache: Optional[bool] = None, compiler: Optional[str] = None,
                  arch: Optional[str] = None, flags: Sequence[str] = ()) -> tuple[Path, bool, Optional[tempfile.TemporaryDirectory]]:
    """Compile a generated source to a shared library: (path of a loadable ``.so``, cache hit, temp dir to
    keep alive or None). A cached library is handed out as a private copy of its verified bytes."""
    path, hit, tmp, data = _build_library(source, backend, cache=cache, compiler=compiler, arch=arch, flags=flags)
    if data is not None:  # a cache entry (header + payload): write the verified library out on its own
        tmp = tempfile.TemporaryDirectory(prefix="symdiff-cuda-")
        path = Path(tmp.name) / f"lib{ENTRY}.so"
        path.write_bytes(data)
    return path, hit, tmp


def _build_library(source: str, backend: str, *, cache: Optional[bool] = None, compiler: Optional[str] = None,
                   arch: Optional[str] = None, flags: Sequence[str] = ()):
    """build_library, plus the verified bytes of a cached library (None for an uncached build).

    Cached libraries are ordinary entries of :mod:`symdiff.codegen.cache` in the ``cuda`` namespace
    (verified by content hash, published atomically, refused when not private to this user); the
    returned path of a cached one is that entry, which only :func:`_load_library` can load."""
    if backend == "cuda-cpu":
        cc = host_compiler(compiler)
        if cc is None:
            raise CudaBuildError("backend='cuda-cpu' needs a host C++ compiler (g++ or clang++); none found "
                                 "(set SYMDIFF_CXX)")
        base = list(CPU_FLAGS) + [f"-I{CODEGEN_DIR}"] + list(flags)
        extra = _sha(b"".join(h.read_bytes() for h in CPU_HEADERS))
    else:
        cc = find_nvcc(compiler)
        if cc is None:
            raise CudaUnavailableError("backend='cuda' needs nvcc (the CUDA toolkit) on PATH or SYMDIFF_NVCC; use "
                                       "backend='cuda-cpu' to run the generated CUDA source on the CPU")
        base = list(GPU_FLAGS) + [f"-arch={arch}"] + list(flags)
        extra = ""
    key = _cache.make_key("cuda-so", CODEGEN_VERSION, backend, cc, compiler_version(cc), " ".join(base), extra,
                          _sha(source))
    use_cache = _cache.enabled(cache)
    if use_cache:
        hit = _cache.load(key, CACHE_NAMESPACE)  # absent, corrupt, foreign or refused: None (never dlopen'ed)
        if hit is not None:
            return _cache.entry_path(key, CACHE_NAMESPACE), True, None, hit[1]
    tmp = tempfile.TemporaryDirectory(prefix="symdiff-cuda-")
    src, out = Path(tmp.name) / f"{ENTRY}.cu", Path(tmp.name) / f"lib{ENTRY}.so"
    src.write_text(source)
    _run_compiler([cc, *base, "-o", str(out), str(src)],
                  "nvcc" if backend == "cuda" else f"{Path(cc).name} (cuda-cpu build of {src})")
    if not use_cache:
        return out, False, tmp, None
    data = out.read_bytes()
    entry = _cache.store(key, {"backend": backend, "source_sha256": _sha(source)}, data, CACHE_NAMESPACE)
    if entry is None:  # an unusable cache folder only costs the cache
        return out, False, tmp, None
    tmp.cleanup()
    return entry, False, None, data


_LOADED: dict = {}  # SHA-256 of a verified library -> its handle (libraries are never unloaded)
_LOADED_LOCK = threading.Lock()


def _load_library(path: Path, data: Optional[bytes]) -> ctypes.CDLL:
    """dlopen a library. Cached ones are loaded from a private copy of the bytes that were verified:
    nothing changed on disk after the check is ever loaded, and a rebuilt entry is not mistaken for an
    already loaded one of the same path (dlopen reuses a handle by path). Identical bytes are loaded
    once per process."""
    if data is None:
        return ctypes.CDLL(str(path))
    digest = _sha(data)
    with _LOADED_LOCK:
        lib = _LOADED.get(digest)
        if lib is None:
            lib = _LOADED[digest] = _load_private_copy(path, data)
        return lib


def _load_private_copy(path: Path, data: bytes) -> ctypes.CDLL:
    for folder in (path.parent, None):  # next to the cache entry (a private folder), else the system temp folder
        try:
            fd, private = tempfile.mkstemp(prefix=".load-", suffix=".so", dir=folder)  # mode 0600, O_EXCL
            break
        except OSError:
            continue
    else:
        raise CudaBuildError(f"cannot write a private copy of {path} to load it")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        return ctypes.CDLL(private)
    finally:
        try:
            os.unlink(private)  # the mapping outlives the name
        except OSError:
            pass


def nvcc_ptx(source: str, arch: str = "sm_90", nvcc: Optional[str] = None, cache: Optional[bool] = None) -> tuple[int, str]:
    """Compile a generated source to PTX for ``arch`` (a check: the PTX is discarded).

    Returns (exit status, compiler messages). A clean result is remembered in the cache dir (keyed by
    source, nvcc version and arch) and not recompiled."""
    nv = find_nvcc(nvcc)
    if nv is None:
        raise CudaUnavailableError("nvcc not found")
    key = _cache.make_key("cuda-ptx-ok", arch, compiler_version(nv), _sha(source))
    if _cache.enabled(cache) and _cache.load(key, "cuda-ptx-ok") is not None:
        return 0, ""
    with tempfile.TemporaryDirectory(prefix="symdiff-ptx-") as d:
        src = Path(d) / f"{ENTRY}.cu"
        src.write_text(source)
        r = subprocess.run([nv, "--ptx", f"-arch={arch}", "-o", str(Path(d) / "out.ptx"), str(src)],
                           capture_output=True, text=True, timeout=600)
    msgs = (r.stderr + r.stdout).strip()
    if r.returncode == 0 and not msgs and _cache.enabled(cache):
        _cache.store(key, {"arch": arch}, b"ok", "cuda-ptx-ok")  # a marker entry: a clean check is not redone
    return r.returncode, msgs


# ---- the compiled function ----------------------------------------------------------------------------

_P = ctypes.c_void_p


class CudaFunction(CompiledFunction):
    """A graph compiled to CUDA C: ``source``/``header`` hold the generated text, ``kernel_stats`` the
    per-kernel launch configuration, FLOPs and bytes, ``library_path`` the shared library."""

    def __init__(self, outputs: Sequence[Node], single: bool, backend: str = "cuda-cpu", *,
                 cache: Optional[bool] = None, compiler: Optional[str] = None, arch: Optional[str] = None,
                 flags: Sequence[str] = (), inputs: Optional[Sequence[Node]] = None) -> None:
        if backend not in ("cuda", "cuda-cpu"):
            raise ValueError(f"CudaFunction: backend must be 'cuda' or 'cuda-cpu', got {backend!r}")
        super().__init__(outputs, single, inputs)
        self.backend = backend
        t0 = time.perf_counter()
        if backend == "cuda":
            ok, reason, cc = gpu_info()
            if not ok:
                raise CudaUnavailableError(
                    f"backend='cuda' needs an NVIDIA GPU: {reason}. Use backend='cuda-cpu' to run the same "
                    f"generated CUDA source on the CPU (codegen/cuda/cuda_cpu.h emulates the CUDA thread model).")
            arch = arch or f"sm_{cc}"
        expanded = require_supported(backend, self.outputs, scalar_rules.SCALAR_RULES, scalar_rules.UNSUPPORTED)
        try:
            self.program: Program = lower(expanded, signature=self.signature)
            self.renderer = CudaRenderer(self.program, ENTRY)
            self.source, self.header = self.renderer.render()
            self.kernel_stats = self.renderer.stats()
        except SymbolicDimError as e:  # a decision only the call's sizes could make: sd.compile specialises
            raise SymbolicUnsupported(f"{backend}: {e}") from e
        self.symbolic = self.program.symbolic  # runtime sizes: the entry points take them (_run_sized)
        self.size_names = self.program.size_names
        t1 = time.perf_counter()
        self.library_path, self.cache_hit, self._tmpdir, data = _build_library(
            self.source, backend, cache=cache, compiler=compiler, arch=arch, flags=flags)
        t2 = time.perf_counter()
        self._lib = lib = _load_library(self.library_path, data)
        fn = lambda nm, res, *args: self._bind(lib, nm, res, args)  # noqa: E731
        sizes = (ctypes.POINTER(ctypes.c_longlong),) if self.symbolic else ()
        self._launch = fn("launch", ctypes.c_int, ctypes.POINTER(_P), *sizes, _P)
        self._ws_bytes = fn("workspace_bytes", ctypes.c_size_t, *sizes)
        self._last_error = fn("last_error", ctypes.c_char_p)
        self._malloc = fn("malloc", _P, ctypes.c_size_t)
        self._free = fn("free", ctypes.c_int, _P)
        self._to_device = fn("to_device", ctypes.c_int, _P, _P, ctypes.c_size_t)
        self._to_host = fn("to_host", ctypes.c_int, _P, _P, ctypes.c_size_t)
        self._sync = fn("synchronize", ctypes.c_int)
        self._device_count = fn("device_count", ctypes.c_int)
        # bytes: an int, or (symbolic sizes) a Dim polynomial of them; _workspace_bytes(sizes) evaluates it in C
        self.workspace_bytes = self.renderer.ws_bytes if self.symbolic else int(self._ws_bytes())
        if backend == "cuda" and self._device_count() <= 0:
            raise CudaUnavailableError(f"backend='cuda': the CUDA runtime sees no GPU "
                                       f"({self._error_text()}); use backend='cuda-cpu'")
        self._lock = threading.Lock()
        self._dev: Optional[list] = None
        self._argv = None
        self._caps: list = []  # symbolic sizes: the byte capacity of each device buffer in self._dev
        self.compile_detail = {"lower+render_s": t1 - t0, "build_s": t2 - t1, "cache_hit": self.cache_hit,
                               "library": str(self.library_path)}

    @staticmethod
    def _bind(lib, nm: str, res, args):
        f = getattr(lib, f"{ENTRY}_{nm}")
        f.restype = res
        f.argtypes = list(args)
        return f

    def _error_text(self) -> str:
        msg = self._last_error()
        return msg.decode(errors="replace") if msg else "unknown error"

    def _check(self, rc: int, what: str) -> None:
        if rc != 0:
            raise RuntimeError(f"{self.backend}: {what} failed (CUDA error {rc}): {self._error_text()}")

    @property
    def stats(self) -> dict:
        st = self.program.stats()
        st["cuda_kernels"] = len(self.kernel_stats)
        st["cuda_flops"] = sum(k["flops"] for k in self.kernel_stats)
        return st

    @property
    def kernels(self) -> list:
        """The generated kernels (objects with .name, .grid, .block, .flops, ...; see ``kernel_stats``)."""
        return [types.SimpleNamespace(**k) for k in self.kernel_stats]

    def _buffers(self) -> list:
        if self._dev is None:
            sizes = [b.nbytes for b in self.program.inputs + self.program.outputs] + [self.workspace_bytes]
            dev = []
            try:
                for s in sizes:
                    p = self._malloc(max(int(s), 1))
                    if not p:
                        raise MemoryError(f"{self.backend}: device allocation of {s} bytes failed: {self._error_text()}")
                    dev.append(p)
            except BaseException:
                for p in dev:
                    self._free(p)
                raise
            self._dev = dev
            self._argv = (_P * len(dev))(*dev)
        return self._dev

    def _sized_buffers(self, needed: list) -> list:
        """Device buffers of at least ``needed`` bytes each (symbolic sizes): the ones from earlier calls,
        those too small replaced by buffers of the size now needed."""
        if self._dev is None:
            self._dev, self._caps = [None] * len(needed), [-1] * len(needed)
        for i, nb in enumerate(needed):
            if self._caps[i] < nb:
                if self._dev[i]:
                    self._free(self._dev[i])
                    self._dev[i], self._caps[i] = None, -1
                p = self._malloc(max(int(nb), 1))
                if not p:
                    raise MemoryError(f"{self.backend}: device allocation of {nb} bytes failed: {self._error_text()}")
                self._dev[i], self._caps[i] = p, nb
        self._argv = (_P * len(self._dev))(*self._dev)
        return self._dev

    def _run_sized(self, arrays: list[np.ndarray], sizes: dict[str, int]) -> list[np.ndarray]:
        """One call with these named sizes: outputs of the shapes they give, the launch sized by them."""
        if not self.symbolic:  # (a graph whose symbolic sizes were all simplified away)
            return self._run(arrays)
        vals = (ctypes.c_longlong * max(len(self.size_names), 1))(*[int(sizes[n]) for n in self.size_names])
        outs = [np.empty(_dims.substitute(shape, sizes), dtype=dtype) for shape, dtype in self.output_specs]
        with self._lock:
            needed = [a.nbytes for a in arrays] + [o.nbytes for o in outs] + [int(self._ws_bytes(vals))]
            dev = self._sized_buffers(needed)
            for a, p in zip(arrays, dev):
                if a.nbytes:
                    self._check(self._to_device(p, a.ctypes.data, a.nbytes), "copy to device")
            self._check(self._launch(self._argv, vals, None), "kernel launch")
            self._check(self._sync(), "synchronize")
            for o, p in zip(outs, dev[len(arrays):]):
                if o.nbytes:
                    self._check(self._to_host(o.ctypes.data, p, o.nbytes), "copy to host")
        return outs

    def _run(self, arrays: list[np.ndarray]) -> list[np.ndarray]:
        if self.symbolic:
            raise RuntimeError(f"{self.backend}: this function has symbolic sizes; call it through __call__")
        with self._lock:
            dev = self._buffers()
            nin = len(self.program.inputs)
            for a, p in zip(arrays, dev):
                if a.nbytes:
                    self._check(self._to_device(p, a.ctypes.data, a.nbytes), "copy to device")
            self._check(self._launch(self._argv, None), "kernel launch")
            self._check(self._sync(), "synchronize")
            outs = []
            for (shape, dtype), p in zip(self.output_specs, dev[nin:]):
                o = np.empty(shape, dtype=dtype)
                if o.nbytes:
                    self._check(self._to_host(o.ctypes.data, p, o.nbytes), "copy to host")
                outs.append(o)
            return outs

    def close(self) -> None:
        """Free the device buffers now (they are also freed when the function is garbage collected)."""
        dev, self._dev = self._dev, None
        if dev:
            for p in dev:
                try:
                    if p:
                        self._free(p)
                except Exception:  # interpreter shutdown
                    pass

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass


def make_cuda_function(outputs: Sequence[Node], single: bool, backend: str, **options) -> CudaFunction:
    """A CudaFunction for ``backend`` "cuda" or "cuda-cpu" (what the registered backends build)."""
    return CudaFunction(outputs, single, backend, **options)


def _gpu_function(outputs: Sequence[Node], single: bool, **options) -> CudaFunction:
    return CudaFunction(outputs, single, "cuda", **options)


def _cpu_function(outputs: Sequence[Node], single: bool, **options) -> CudaFunction:
    return CudaFunction(outputs, single, "cuda-cpu", **options)


CUDA_BACKEND = Backend("cuda", _gpu_function, {"cache": None, "compiler": None, "arch": None, "flags": ()},
                       "CUDA C built with nvcc for the NVIDIA GPU of this machine", symbolic_dims=True)
CUDA_CPU_BACKEND = Backend("cuda-cpu", _cpu_function, {"cache": None, "compiler": None, "flags": ()},
                           "the same generated CUDA C built with the host C++ compiler against a CPU "
                           "emulation of the CUDA thread model (tests the CUDA renderer without a GPU)",
                           symbolic_dims=True)
