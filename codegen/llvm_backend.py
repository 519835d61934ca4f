"""``backend="llvm"``: lower, render, JIT-compile (or load from the cache) and call through the C runtime."""
from __future__ import annotations

import time
from typing import Optional, Sequence

import llvmlite
import numpy as np

from symdiff.compiled import CompiledFunction
from symdiff.ir import Node

from . import cache as _cache
from .kernel_ir import Program
from .llvm_jit import JitModule, emit_object, host_cpu, llvm_version
from .llvm_render import Renderer
from .lower import lower

ENTRY = "sd_entry"
CODEGEN_VERSION = "1"


def graph_key(outputs: Sequence[Node], backend: str, extra: str = "") -> str:
    """Cache key: simplified graph structure + backend + target + versions (the compiler's own
    sources included, so an edited code generator never loads a stale object)."""
    cpu, feats = host_cpu()
    return _cache.make_key(backend, CODEGEN_VERSION, _cache.source_fingerprint(), llvmlite.__version__, cpu, feats, extra,
                           *[f"{o.digest}:{o.dtype}:{o.shape}" for o in outputs])


def runtime_symbols() -> dict[str, int]:
    from .runtime import runtime_symbols as rs
    return rs()


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
            self.parallel = bool(meta.get("parallel", True))
            self.jit = JitModule.from_object(obj, symbols=symbols)
        else:
            renderer = Renderer(self.program, ENTRY)
            module = renderer.render()
            self.parallel = renderer.parallel
            self.unoptimized_ir = str(module)
            obj, self.ir = emit_object(module)
            self.jit = JitModule.from_object(obj, symbols=symbols)
            if _cache.enabled(cache):
                _cache.store(key, {"workspace_bytes": self.program.workspace_bytes, "parallel": self.parallel}, obj)
        self.entry_address = self.jit.address(ENTRY)
        from .runtime import Kernel, make_pool
        self.pool = make_pool(num_threads) if self.parallel else None  # no threads for serial programs
        inputs = [(s.name, s.shape, s.dtype) + ((s.label_depth,) if s.label_depth is not None else ())
                  for s in self.signature.leaves]
        outputs = [(f"out{i}", shape, dtype) for i, (shape, dtype) in enumerate(self.output_specs)]
        self.kernel = Kernel(self.entry_address, self.pool, inputs, outputs, name="symdiff",
                             returns="single" if single else "tuple", owner=self.jit,
                             workspace_bytes=self.program.workspace_bytes)
        self.compile_detail = {"lower+codegen_s": time.perf_counter() - t0, "cache_hit": self.cache_hit}

    @property
    def stats(self) -> dict:
        return self.program.stats()

    def __call__(self, **kwargs):
        try:
            return self.kernel(**kwargs)  # validation, unboxing and the GIL release happen in C
        except (TypeError, ValueError):
            self.signature.bind(kwargs)  # the same checks in Python give the backend-independent message
            raise

    def _run(self, arrays: list[np.ndarray]) -> list[np.ndarray]:
        out = self.kernel(*arrays)
        return [out] if self.single else list(out)


__all__ = ["LLVMFunction", "graph_key", "llvm_version"]
