"""Host-targeted LLVM compilation with llvmlite: optimise with the new pass manager (O2 for the
objects :func:`emit_object` writes, O3 for a :class:`JitModule`), JIT with MCJIT, or emit an object file.

Every compiled module owns its own execution engine (no module-level engines).
"""
from __future__ import annotations

import ctypes
import functools
import re
import threading
import time
from contextlib import contextmanager
from typing import Iterator, Optional

import llvmlite
import llvmlite.binding as llvm
from llvmlite import ir
from llvmlite.binding import ffi

from symdiff.codegen.llvm.tiers import LIGHT_CODEGEN_LEVEL, LIGHT_SPEED_LEVEL, LIGHT_TUNING


@functools.lru_cache(maxsize=None)
def _init_llvm() -> None:
    # llvmlite >= 0.45 initialises the core itself; only the native target is needed.
    llvm.initialize_native_target()
    llvm.initialize_native_asmprinter()


def host_cpu() -> tuple[str, str]:
    """(cpu name, feature string) of the machine we run on, as LLVM names them."""
    _init_llvm()
    return llvm.get_host_cpu_name(), llvm.get_host_cpu_features().flatten()


def host_triple() -> str:
    _init_llvm()
    return llvm.get_process_triple()


def target_machine(cpu: Optional[str] = None, features: Optional[str] = None,
                   reloc: str = "default", jit: bool = True, opt: int = 3) -> "llvm.TargetMachine":
    """A TargetMachine for the host (or the given cpu/features), code generation at level ``opt``."""
    _init_llvm()
    hcpu, hfeat = host_cpu()
    if features is None:
        features = _features(hfeat)
    target = llvm.Target.from_triple(host_triple())
    return target.create_target_machine(cpu=cpu or hcpu, features=features,
                                        opt=opt, reloc=reloc, codemodel="jitdefault" if jit else "default",
                                        jit=jit)


def _features(features: str) -> str:
    if "+avx512f" in features:  # measured: 512-bit auto-vectorised loops run ~20% faster here than 256-bit
        features += ",-prefer-256-bit"
    return features


def new_module(name: str, target=None) -> ir.Module:
    """An empty llvmlite module with the host triple and the data layout of ``target``
    (a :class:`symdiff.codegen.target.Target`; default the host) set."""
    tm = target_machine() if target is None else target_machine(cpu=target.cpu, features=_features(target.features))
    mod = ir.Module(name=name)
    mod.triple = host_triple()
    mod.data_layout = str(tm.target_data)
    return mod


def optimize(mod: "llvm.ModuleRef", tm: "llvm.TargetMachine", speed_level: int = 3,
             unlocked: bool = False, tuning: Optional[dict] = None) -> None:
    """Run the standard pipeline of ``speed_level`` (O3 by default; new pass manager) with loop and SLP
    vectorisation, unrolling and interleaving; ``tuning`` overrides pipeline tuning options by name
    (e.g. ``{"loop_unrolling": False}``, which also stops full unrolling: measured for the graph modules
    and not taken, docs/performance.md). ``unlocked``: run it outside llvmlite's global lock (see
    :func:`_unlocked`; only for a module in a private context with a target machine of its own)."""
    pto = llvm.create_pipeline_tuning_options(speed_level=speed_level)
    options = {"loop_vectorization": True, "slp_vectorization": True, "loop_unrolling": True,
               "loop_interleaving": True, **(tuning or {})}
    for name, value in options.items():
        setattr(pto, name, value)
    pb = llvm.create_pass_builder(tm, pto)
    mpm = pb.getModulePassManager()
    run = _unlocked("LLVMPY_RunNewModulePassManager") if unlocked else None
    if run is None:
        mpm.run(mod, pb)
    else:
        run(mpm, mod, pb)


@functools.lru_cache(maxsize=None)
def _unlocked(name: str):
    """The C function ``name`` of libllvmlite without llvmlite's lock, or None.

    llvmlite serialises every call into LLVM behind one process-wide lock (``binding/ffi.py``), so
    threads compiling separate modules run one at a time. LLVM itself is thread-safe for objects that
    share nothing (one LLVMContext, module, target machine and pass builder per thread), so for the two
    long calls of such a module (running the pass pipeline, emitting the object) the ctypes function
    under the lock is called directly (ctypes releases the GIL). None when this llvmlite is built
    differently: the locked call is used then.
    """
    try:
        fn = getattr(ffi.lib, name)._cfn  # the wrapper's ctypes function, argtypes already set
    except AttributeError:
        return None
    return fn if callable(fn) else None


def parallel_llvm() -> bool:
    """Whether modules in private contexts compile concurrently (:func:`_unlocked` found its functions)."""
    return all(_unlocked(n) is not None
               for n in ("LLVMPY_RunNewModulePassManager", "LLVMPY_TargetMachineEmitToMemory"))


def _emit(tm: "llvm.TargetMachine", mod: "llvm.ModuleRef", unlocked: bool) -> bytes:
    """``tm.emit_object(mod)``; ``unlocked``: the code generation outside llvmlite's lock (as in
    llvmlite's ``TargetMachine._emit_to_memory``)."""
    emit = _unlocked("LLVMPY_TargetMachineEmitToMemory") if unlocked else None
    if emit is None:
        return tm.emit_object(mod)
    with ffi.OutputString() as err:
        buf = emit(tm, mod, 1, err)
        if not buf:
            raise RuntimeError(str(err))
    try:
        return ctypes.string_at(ffi.lib.LLVMPY_GetBufferStart(buf), ffi.lib.LLVMPY_GetBufferSize(buf))
    finally:
        ffi.lib.LLVMPY_DisposeMemoryBuffer(buf)


def parse(ir_text: str, context=None) -> "llvm.ModuleRef":
    _init_llvm()
    mod = llvm.parse_assembly(ir_text, context)
    mod.verify()
    return mod


class JitModule:
    """One LLVM module compiled for the host CPU and loaded into its own MCJIT engine.

    Keep this object alive as long as any function address taken from it is used.
    """

    def __init__(self, module: ir.Module | str, opt: bool = True,
                 symbols: Optional[dict[str, int]] = None) -> None:
        _init_llvm()
        for name, addr in (symbols or {}).items():
            llvm.add_symbol(name, addr)
        text = str(module)
        self.tm = target_machine()
        self.mod = parse(text)
        if opt:
            optimize(self.mod, self.tm)
        self.engine = llvm.create_mcjit_compiler(self.mod, self.tm)
        self.engine.finalize_object()
        self.engine.run_static_constructors()

    @classmethod
    def from_object(cls, obj: bytes, symbols: Optional[dict[str, int]] = None) -> "JitModule":
        """Load a compiled object file (e.g. from the on-disk cache) into a fresh engine."""
        return cls.from_objects([obj], symbols)

    @classmethod
    def from_objects(cls, objs: list[bytes], symbols: Optional[dict[str, int]] = None) -> "JitModule":
        """Load and link several object files (symbols resolve across them) into a fresh engine."""
        _init_llvm()
        for name, addr in (symbols or {}).items():
            llvm.add_symbol(name, addr)
        self = cls.__new__(cls)
        self.tm = target_machine()
        self.mod = parse("")
        self.mod.triple = host_triple()
        self.engine = llvm.create_mcjit_compiler(self.mod, self.tm)
        self._objs = [llvm.ObjectFileRef.from_data(o) for o in objs]
        for o in self._objs:
            self.engine.add_object_file(o)
        self.engine.finalize_object()
        return self

    def address(self, name: str) -> int:
        addr = self.engine.get_function_address(name)
        if not addr:
            raise KeyError(f"function {name!r} not found in JIT module")
        return addr

    @property
    def optimized_ir(self) -> str:
        return str(self.mod)

    def asm(self) -> str:
        return self.tm.emit_assembly(self.mod)


_RECORDERS: list[list[dict]] = []
_RECORD_LOCK = threading.Lock()
_DEFINE = re.compile(r'^define [^@]*@"?([^"(]+)', re.M)


@contextmanager
def record_compile_times() -> Iterator[list[dict]]:
    """Collect, for every module :func:`emit_object` compiles inside the block (any thread), a dict
    ``{"module": first defined function, "ir_chars", "parse_s", "opt_s", "codegen_s"}`` (benchmarks)."""
    records: list[dict] = []
    with _RECORD_LOCK:
        _RECORDERS.append(records)
    try:
        yield records
    finally:
        with _RECORD_LOCK:  # by identity (two blocks' lists may be equal)
            _RECORDERS[:] = [r for r in _RECORDERS if r is not records]


# The optimisation level of every object emit_object compiles (the JIT's graph module, each shared GEMM
# module, an exported library). Measured (docs/performance.md, "Compile time"): the GEMM micro-kernels and
# the driver are explicit vector code and get the same assembly at O2 as at O3 (packers: within a few
# instructions); an MLP's graph module gets the same assembly; a conv net's graph module (LeNet: 35 loop
# kernels) optimises in about half O3's time (O3's larger full-unroll threshold), runtime within noise.
EMIT_SPEED_LEVEL = 2
# Pipeline tuning options emit_object overrides (``optimize(tuning=...)``): none. ``python -m
# benchmarks.compile_time --tuning loop_unrolling=0`` sets it for A/B runs (docs/performance.md: graph
# modules without unrolling compiled faster and ran LeNet 24% slower, so it stays empty).
EMIT_TUNING: dict = {}


def emit_object(module: ir.Module | str, opt: bool = True, private_context: bool = False,
                target=None, light: bool = False) -> tuple[bytes, str]:
    """Compile to a position-independent object file at ``EMIT_SPEED_LEVEL`` (tuning ``EMIT_TUNING``);
    returns (object bytes, optimized IR text).

    ``light``: the light tier of ``codegen/llvm/tiers.py`` instead (a graph module of small kernels: IR
    pipeline at O1 without unrolling or interleaving, code generation at O0).

    ``private_context``: parse into a fresh LLVMContext, so several threads may compile at once (and
    really do: the pass pipeline and the code generation run outside llvmlite's lock, :func:`_unlocked`).
    ``target``: a :class:`symdiff.codegen.target.Target` (its CPU and features); default the host.
    """
    t0 = time.perf_counter()
    level, tuning, cg_level = EMIT_SPEED_LEVEL, EMIT_TUNING, 3
    if light:
        level, tuning, cg_level = LIGHT_SPEED_LEVEL, LIGHT_TUNING, LIGHT_CODEGEN_LEVEL
    if target is None:
        tm = target_machine(reloc="pic", jit=False, opt=cg_level)
    else:
        tm = target_machine(cpu=target.cpu, features=_features(target.features), reloc="pic", jit=False,
                            opt=cg_level)
    text = str(module)
    mod = parse(text, llvm.create_context() if private_context else None)
    t1 = time.perf_counter()
    if opt:  # (the target machine is this call's own: with a private context nothing is shared)
        optimize(mod, tm, level, unlocked=private_context, tuning=tuning)
    t2 = time.perf_counter()
    obj = _emit(tm, mod, unlocked=private_context)
    t3 = time.perf_counter()
    optimized = str(mod)
    if _RECORDERS:
        found = _DEFINE.search(text)
        rec = {"module": found.group(1) if found else "?", "light": light, "ir_chars": len(text), "parse_s": t1 - t0,
               "opt_s": t2 - t1, "codegen_s": t3 - t2, "print_s": time.perf_counter() - t3}
        with _RECORD_LOCK:
            for r in _RECORDERS:
                r.append(rec)
    return obj, optimized


def llvm_version() -> str:
    return f"llvmlite {llvmlite.__version__} / LLVM {'.'.join(map(str, llvm.llvm_version_info))}"
