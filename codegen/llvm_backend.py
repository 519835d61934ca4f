"""``backend="llvm"``: lower, render, JIT-compile (or load from the cache) and call through the C runtime."""
from __future__ import annotations

import ctypes
import time
from typing import Optional, Sequence

import llvmlite
import numpy as np

from symdiff.compiled import CompiledFunction
from symdiff.ir import Node

from . import cache as _cache
from .kernel_ir import Program
from .llvm_jit import JitModule, emit_object, host_cpu, llvm_version
from .llvm_render import render
from .lower import lower

ENTRY = "sd_entry"
CODEGEN_VERSION = "1"


def graph_key(outputs: Sequence[Node], backend: str, extra: str = "") -> str:
    """Cache key: simplified graph structure + backend + target + versions."""
    import symdiff
    cpu, feats = host_cpu()
    return _cache.make_key(backend, CODEGEN_VERSION, symdiff.__version__, llvmlite.__version__, cpu, feats, extra,
                           *[f"{o.digest}:{o.dtype}:{o.shape}" for o in outputs])


_POOL_LIB = None


def _pool_lib():
    global _POOL_LIB  # TEMPORARY until codegen._runtime lands
    if _POOL_LIB is None:
        import subprocess, os, tempfile
        out = os.path.join(tempfile.gettempdir(), "sdpool_tmp.so")
        src = os.path.join(os.path.dirname(__file__), "sd_pool.c")
        subprocess.run(["gcc", "-O2", "-fPIC", "-shared", "-pthread", src, "-o", out], check=True)
        _POOL_LIB = ctypes.CDLL(out)
        _POOL_LIB.sd_pool_create.restype = ctypes.c_void_p
    return _POOL_LIB


def runtime_symbols() -> dict[str, int]:
    return {"sd_parallel_for": ctypes.cast(_pool_lib().sd_parallel_for, ctypes.c_void_p).value}


class _TmpPool:
    def __init__(self, n):
        self.ptr = _pool_lib().sd_pool_create(n or 2)


class _CtypesKernel:
    def __init__(self, addr, pool, sig, out_specs, ws, single):
        self.fn = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p)(addr)
        self.pool, self.sig, self.out_specs, self.ws, self.single = pool, sig, out_specs, ws, single

    def call_arrays(self, arrays):
        outs = [np.empty(s, d) for s, d in self.out_specs]
        ws = np.empty(max(self.ws, 1), np.uint8)
        ptrs = (ctypes.c_void_p * (len(arrays) + len(outs) + 1))(*[a.ctypes.data for a in arrays + outs], ws.ctypes.data)
        self.fn(ptrs, self.pool.ptr)
        return outs[0] if self.single else tuple(outs)

    def __call__(self, kwargs):
        return self.call_arrays(self.sig.bind(kwargs))


class LLVMFunction(CompiledFunction):
    """A graph compiled to host machine code. ``ir`` holds the optimised LLVM IR when compiled this run."""

    backend = "llvm"

    def __init__(self, outputs: Sequence[Node], single: bool, cache: Optional[bool] = None,
                 num_threads: Optional[int] = None) -> None:
        super().__init__(outputs, single)
        t0 = time.perf_counter()
        self.program: Program = lower(self.outputs)
        key = graph_key(self.outputs, "llvm")
        hit = _cache.load(key) if _cache.enabled(cache) else None
        self.cache_hit = hit is not None
        self.ir: Optional[str] = None
        symbols = runtime_symbols()
        if hit is not None:
            meta, obj = hit
            self.jit = JitModule.from_object(obj, symbols=symbols)
        else:
            module = render(self.program, ENTRY)
            self.unoptimized_ir = str(module)
            obj, self.ir = emit_object(module)
            self.jit = JitModule.from_object(obj, symbols=symbols)
            if _cache.enabled(cache):
                _cache.store(key, {"workspace_bytes": self.program.workspace_bytes}, obj)
        self.entry_address = self.jit.address(ENTRY)
        self.pool = _TmpPool(num_threads)
        self.kernel = _CtypesKernel(self.entry_address, self.pool, self.signature, self.output_specs,
                                    self.program.workspace_bytes, single)
        self.compile_detail = {"lower+codegen_s": time.perf_counter() - t0, "cache_hit": self.cache_hit}

    @property
    def stats(self) -> dict:
        return self.program.stats()

    def __call__(self, *args, **kwargs):
        if args:
            raise TypeError(f"call with keyword arrays named after the leaves: {', '.join(self.input_names)}")
        return self.kernel(kwargs)

    def _run(self, arrays: list[np.ndarray]) -> list[np.ndarray]:
        out = self.kernel.call_arrays(arrays)
        return [out] if self.single else list(out)


__all__ = ["LLVMFunction", "graph_key", "llvm_version", "ctypes"]
