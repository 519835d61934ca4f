"""``backend="llvm"``: lower, render, JIT-compile (or load from the cache) and call through the C runtime."""
from __future__ import annotations

import gc
import operator
import threading
import time
from typing import Optional, Sequence

import llvmlite
import numpy as np

from symdiff import dims as _dims
from symdiff.backends import Backend
from symdiff.dim_binding import SymbolicUnsupported
from symdiff.dims import SymbolicDimError
from symdiff.compiled import CompiledFunction
from symdiff.ir import Node

from symdiff.codegen import cache as _cache
from symdiff.codegen.kernel_ir import MatmulKernel, Program
from symdiff.codegen.llvm.gemm.plan import vector_bytes as gemm_vector_bytes
from symdiff.codegen.llvm.jit import JitModule, emit_object, llvm_version
from symdiff.codegen.llvm.render import Renderer
from symdiff.codegen.llvm.split import CompileQueue, compile_threads, short_gil_switches, split_graph
from symdiff.codegen.llvm.tiers import light_kernels
from symdiff.codegen.expand import require_supported
from symdiff.codegen.llvm import scalar_rules
from symdiff.codegen.lower import lower
from symdiff.codegen.target import ISA_LEVELS, Target, host_supports, host_target, isa_target

ENTRY = "sd_entry"
GRAPH_PART_KERNELS = 3  # a graph module is split for parallel compilation from this many kernels per part
LIGHT_TIER = True  # small kernels compile at the light tier (llvm/tiers.py); False: all at the full one
LIGHT_ENTRY = True  # ... and so does the entry's module then (dispatch code and the products' call stubs)
CODEGEN_VERSION = "1"


def _parts(kernels: int) -> int:
    """Modules for ``kernels`` kernels of one tier: one per compile thread, at least GRAPH_PART_KERNELS each."""
    return max(1, min(compile_threads(), kernels // GRAPH_PART_KERNELS)) if kernels else 0


def graph_modules(program: Program, light: frozenset, entry_module: bool) -> tuple[int, int]:
    """(full-tier, light-tier) modules of a graph's kernels. With an entry module of its own, the full tier's
    products are stubs there and do not count: the odd MLP's 6 full-tier loops in 2 modules instead of 1
    took its kernels-cached compile from 118-128 to 97-98 ms (two compile threads)."""
    full = [k for i, k in enumerate(program.kernels) if i not in light and not (entry_module and isinstance(k, MatmulKernel))]
    return _parts(len(full)), _parts(len(light))


def graph_key(outputs: Sequence[Node], backend: str, extra: str = "", target: Optional[Target] = None) -> str:
    """Cache key: simplified graph structure + backend + target (ISA, CPU, features, vector width,
    threads: the task splits are compiled in) + versions (the compiler's own sources included, so an
    edited code generator never loads a stale object)."""
    target = target or host_target()
    return _cache.make_key(backend, CODEGEN_VERSION, _cache.source_fingerprint(), llvmlite.__version__, target.key(),
                           f"gemm{gemm_vector_bytes()}", extra, *[f"{o.digest}:{o.dtype}:{o.shape}" for o in outputs])


def runtime_symbols() -> dict[str, int]:
    from symdiff.codegen.runtime.kernel import runtime_symbols as rs
    return rs()



def wait_all(futures: list) -> list:
    """The results of compile futures, in order (benchmarks/compile_time.py times this wait: the LLVM
    work still running once the graph has rendered)."""
    return [f.result() for f in futures]

class LLVMFunction(CompiledFunction):
    """A graph compiled to host machine code. ``ir`` holds the optimised LLVM IR when compiled this run;
    ``target`` the :class:`Target` it was compiled for (``num_threads`` overrides its thread count,
    which sets the task splits and the thread pool)."""

    backend = "llvm"

    def __init__(self, outputs: Sequence[Node], single: bool, cache: Optional[bool] = None,
                 num_threads: Optional[int] = None, inputs: Optional[Sequence[Node]] = None,
                 isa: Optional[str] = None) -> None:
        super().__init__(outputs, single, inputs)
        t0 = time.perf_counter()
        if num_threads is not None and (not isinstance(num_threads, int) or isinstance(num_threads, bool)
                                        or num_threads < 1):
            raise ValueError(f"llvm backend: num_threads must be a positive int or None, got {num_threads!r}")
        expanded = require_supported("llvm", self.outputs, scalar_rules.SCALAR_RULES, scalar_rules.UNSUPPORTED)
        if isa is None:
            self.target: Target = host_target(num_threads)
        else:  # a forced x86-64 level (tests run SSE4.2 / AVX2 code on a wider machine)
            self.target = isa_target(isa, num_threads)
            if not host_supports(isa):
                raise ValueError(f"llvm backend: this CPU cannot run isa={isa!r} code; sd.export(..., cpu="
                                 f"{ISA_LEVELS[isa][0]!r}) writes a library for such a machine")
        try:
            self.program: Program = lower(expanded, self.target, self.signature)
        except SymbolicDimError as e:  # a lowering decision only the call's sizes could make
            raise SymbolicUnsupported(f"llvm: {e}") from e
        # a user op is keyed by its expansion; the argument slots (the signature) are compiled in too
        sig = ";".join(f"{s.name}:{s.dtype}:{s.shape}" for s in self.signature.leaves)
        key = graph_key(expanded, "llvm", extra=sig, target=self.target)
        use_cache = _cache.enabled(cache)
        objs = None
        hit = _cache.load(key) if use_cache else None
        if hit is not None:
            meta, payload = hit
            try:
                objs = _cache.unpack(payload)
                self.parallel = bool(meta.get("parallel", True))
            except ValueError:
                objs = None
        self.cache_hit = objs is not None
        self.ir: Optional[str] = None
        self.shared_kernels: dict = {"reused": [], "compiled": []}
        if objs is None:
            try:
                objs = self._compile(use_cache)
            except SymbolicDimError as e:  # a kernel that needs a fixed size: sd.compile specialises instead
                raise SymbolicUnsupported(f"llvm: {e}") from e
            if use_cache:
                _cache.store(key, {"workspace_bytes": str(self.program.workspace_bytes), "parallel": self.parallel},
                             _cache.pack(objs))
        self.jit = JitModule.from_objects(objs, symbols=runtime_symbols())
        self.entry_address = self.jit.address(ENTRY)
        from symdiff.codegen.runtime.kernel import Kernel, make_pool
        self.pool = make_pool(self.target.threads) if self.parallel else None  # no threads for serial programs
        self.symbolic = self.program.symbolic
        if self.symbolic:  # runtime sizes: bound, allocated and passed by SizedEntry (one compile for every size)
            self.sized = SizedEntry(self.entry_address, self.program, self.pool, self.jit, self.signature, single)
            self.kernel = None  # (self._call: the class's _call_sized)
            self.compile_detail = {"lower+codegen_s": time.perf_counter() - t0, "cache_hit": self.cache_hit}
            return
        inputs = [(s.name, s.shape, s.dtype) + ((s.label_depth,) if s.label_depth is not None else ())
                  for s in self.signature.leaves]
        outputs = [(f"out{i}", shape, dtype) for i, (shape, dtype) in enumerate(self.output_specs)]
        # without inputs=[...] a positional call is refused in C with the error check_positional words
        self.kernel = Kernel(self.entry_address, self.pool, inputs, outputs, name="symdiff",
                             returns="single" if single else "tuple", owner=self.jit,
                             workspace_bytes=self.program.workspace_bytes, signature=self.signature,
                             keywords_only=None if self.signature.positional else f"this compiled function "
                                                                                  f"({self.backend})")
        self._call = self.kernel
        self.compile_detail = {"lower+codegen_s": time.perf_counter() - t0, "cache_hit": self.cache_hit}

    def _compile(self, use_cache: bool) -> list[bytes]:
        """Render and compile: the graph's own module, plus one object per shared GEMM function,
        taken from the on-disk cache when another graph already compiled it (caching on)."""
        t = self.target  # shared GEMM functions take their task range as arguments: no thread count
        versions = (CODEGEN_VERSION, _cache.source_fingerprint(), llvmlite.__version__, t.isa, t.cpu, t.features)
        reused: dict[str, bytes] = {}

        def available(name: str):
            hit = _cache.load(_cache.make_key("llvm-shared", name, *versions), "kernels") if use_cache else None
            if hit is None or not isinstance(hit[0].get("args"), list):
                return None
            reused[name] = hit[1]
            return hit[0]["args"]

        # the graph's kernels in as many modules as threads compile them (at least GRAPH_PART_KERNELS each),
        # the small ones (llvm/tiers.py) in modules of their own compiled at the light tier, and so is the
        # entry's module (it dispatches; the products' stubs are calls into the shared GEMM functions)
        light = light_kernels(self.program) if LIGHT_TIER else frozenset()
        entry_module = LIGHT_ENTRY and bool(light)
        n_mod, n_light = graph_modules(self.program, light, entry_module)
        light_texts: set[str] = set()

        def compile_text(text: str):
            return emit_object(text, private_context=True, target=self.target, light=text in light_texts)

        shared: list = []  # (name, arg types, future of (object, IR)) per shared GEMM function compiled
        # one queue of compile threads (each module in a private LLVM context): every shared GEMM function
        # starts compiling as soon as the renderer has built it, while the rest of the graph renders
        with CompileQueue(compile_text, compile_threads()) as queue:
            renderer = Renderer(self.program, ENTRY, shared_available=available, target=self.target,
                                modules=n_mod, light=light, light_modules=n_light,
                                entry_module=entry_module,
                                on_shared=lambda n, a, text: shared.append((n, a, queue.submit(text))))
            gc_was_on = gc.isenabled()
            gc.disable()  # building IR allocates ~10^5 objects; repeated cyclic-GC scans only cost time here
            try:
                with short_gil_switches():  # (the compile threads get the GIL back sooner between LLVM calls)
                    renderer.render()
                    texts, parts = split_graph(renderer.modules)  # (parts: none left over, normally)
                    light_texts.update(t for t, m in zip(texts, renderer.modules) if m.sd_light)
            finally:
                if gc_was_on:
                    gc.enable()
            self.parallel = renderer.parallel
            # the entry's light module compiles in ~0.5 ms per KB of IR against 2-5 for kernel modules
            # (W1): queued by size it would start first and end last
            last = frozenset({0} if renderer.entry_module else ())
            futures = queue.submit_all(texts + [text for _, _, text in parts], last=last)
            shared += [(n, a, f) for (n, a, _), f in zip(parts, futures[len(texts):])]
            own = wait_all(futures[:len(texts)])
            fresh = [o for o, _ in wait_all([f for _, _, f in shared])]
        self.ir = "\n".join(ir_text for _, ir_text in own)
        if use_cache:
            for (name, args, _), o in zip(shared, fresh):
                _cache.store(_cache.make_key("llvm-shared", name, *versions), {"args": args}, o, "kernels")
        self.shared_kernels = {"reused": sorted(reused), "compiled": [name for name, _, _ in shared]}
        return [*(o for o, _ in own), *reused.values(), *fresh]

    @property
    def stats(self) -> dict:
        return self.program.stats()

    # f(...) calls self._call: the C Kernel itself for fixed shapes (a property whose getter is C, so no
    # Python frame runs per call: a tiny model's call is ~1.2 us instead of ~1.9), _call_sized otherwise
    __call__ = property(operator.attrgetter("_call"), doc="Call with the inputs by name (by position too "
                        "when compiled with inputs=[...]); returns the outputs.")

    def _call_sized(self, *args, **kwargs):
        """A call of a program with symbolic sizes: a keyword call of arrays goes to its sizes' C Kernel."""
        last = self.sized.last
        if last is not None and not args:  # the sizes of the previous call: its Kernel checks every shape
            try:
                return last(**kwargs)
            except (ValueError, TypeError):
                pass  # other sizes (or a bad call): bind them below, which words any error
        sizes = None if args else self.sized.sizes_of(kwargs)
        k = self.sized.kernel_for(sizes) if sizes is not None else None
        if k is not None:
            out = k(**kwargs)
            self.sized.last = k
            return out
        return CompiledFunction.__call__(self, *args, **kwargs)  # the signature binds (or refuses) the call

    _call = _call_sized  # (an instance with fixed shapes holds its Kernel under this name instead)

    def _run(self, arrays: list[np.ndarray]) -> list[np.ndarray]:
        out = self.kernel(*arrays)
        return [out] if self.single else list(out)

    def _run_sized(self, arrays: list[np.ndarray], sizes: dict[str, int]) -> list[np.ndarray]:
        out = self.sized.kernel_for(sizes)(*arrays)
        return [out] if self.single else list(out)


class SizedEntry:
    """Calls an entry compiled with runtime sizes (render.py's ABI) through the C runtime: one C ``Kernel`` per
    set of sizes seen (its shapes, workspace size and the sizes' int64 values -- the entry's last argument --
    fixed), made on first use and kept (the ``MAX_SIZE_SETS`` most recent). A keyword call of arrays binds its
    sizes here from the arrays' shapes and goes straight to that Kernel (the C fast path does the rest)."""

    MAX_SIZE_SETS = 64

    def __init__(self, address: int, program: Program, pool, owner, signature, single: bool) -> None:
        self.address, self.pool, self.owner, self.signature = address, pool, owner, signature
        self.names = program.size_names
        self.outputs = [(f"out{i}", b.shape, b.dtype) for i, b in enumerate(program.outputs)]
        self.ws_bytes = program.workspace_bytes
        self.returns = "single" if single else "tuple"
        # (argument, axis, size name) for every axis that is a plain name: what a keyword call binds
        self.binds = [(spec.name, axis, next(iter(d.names))) for spec in signature.leaves
                      for axis, d in enumerate(spec.shape) if isinstance(d, _dims.Dim) and d.is_name]
        self.n_leaves = len(signature.leaves)
        self.kernels: dict = {}
        self.last = None  # the Kernel of the latest keyword call's sizes (tried first)
        self.lock = threading.Lock()

    def sizes_of(self, kwargs: dict) -> Optional[dict]:
        """The sizes a keyword call of arrays binds, or None when anything is unusual (the signature's path
        then binds or words the error)."""
        if len(kwargs) != self.n_leaves:
            return None
        sizes: dict = {}
        try:
            for arg, axis, name in self.binds:
                v = kwargs[arg].shape[axis]
                if sizes.setdefault(name, v) != v:
                    return None
        except (KeyError, AttributeError, IndexError, TypeError):
            return None
        return sizes

    def kernel_for(self, sizes: dict):
        """The C Kernel of these sizes (made and checked on first use)."""
        key = tuple(sizes[n] for n in self.names)
        k = self.kernels.get(key)
        if k is not None:
            return k
        from symdiff.codegen.runtime.kernel import Kernel
        with self.lock:
            k = self.kernels.get(key)
            if k is None:
                if any(not isinstance(v, int) or v < 1 for v in key):
                    return None  # (the signature's path gives the error)
                for check in self.signature.checks:
                    if check.fails(sizes):
                        raise ValueError(self.signature.prefix + check.message(sizes))
                inputs = [(s.name, _dims.substitute(s.shape, sizes), s.dtype)
                          + ((s.label_depth,) if s.label_depth is not None else ()) for s in self.signature.leaves]
                outputs = [(n, _dims.substitute(shape, sizes), dt) for n, shape, dt in self.outputs]
                k = Kernel(self.address, self.pool, inputs, outputs, name="symdiff", returns=self.returns,
                           owner=self.owner, workspace_bytes=_dims.evaluate(self.ws_bytes, sizes),
                           tail=np.array(key, np.int64).tobytes())
                while len(self.kernels) >= self.MAX_SIZE_SETS:
                    self.kernels.pop(next(iter(self.kernels)))
                self.kernels[key] = k
        return k


def _export(functions, name, outdir, **options):
    from symdiff.codegen.runtime.library import FunctionSpec, export_library
    return export_library([FunctionSpec(*f) for f in functions], name, outdir, **options)


def _load_library(path):
    from symdiff.codegen.runtime.library import load_library
    return load_library(path)


BACKEND = Backend("llvm", LLVMFunction, {"cache": None, "num_threads": None, "isa": None},
                  "JIT-compiled host machine code (LLVM), called through the C runtime; the default",
                  extras={"export": _export, "load_library": _load_library}, symbolic_dims=True)

__all__ = ["LLVMFunction", "graph_key", "llvm_version", "BACKEND"]
