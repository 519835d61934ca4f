"""The machine's FMA peak, measured (not a test): a JIT-compiled loop of independent vector FMAs.

    python benchmarks/fma_peak.py            # GFLOP/s float32 and float64, 1 and 2 threads

The loop keeps ``accumulators()`` vector accumulators (enough to cover the FMA latency on every x86-64 core
seen: 2 pipes x 4-5 cycles, and few enough that they and the two operands stay in registers: 16 with
AVX-512's 32 registers, 12 with AVX2/SSE's 16, where 16 spill and measure half the peak) of the host's
vector width (``Target.vector_bytes``: 16 floats with AVX-512),
each updated ``acc = acc * x + y`` (``llvm.fma``: no fast-math, so LLVM cannot fold the chain). GFLOP/s =
2 * lanes * accumulators * iterations / time; the 2-thread figure runs the loop on two Python threads at
once (ctypes releases the GIL). ``benchmarks/bench_gemm.py`` prints each GEMM as a fraction of it.
"""
from __future__ import annotations

import ctypes
import os
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from llvmlite import ir  # noqa: E402

from symdiff.codegen.llvm.jit import JitModule, new_module  # noqa: E402
from symdiff.codegen.target import host_target  # noqa: E402

_FN = ctypes.CFUNCTYPE(ctypes.c_double, ctypes.c_int64)


def accumulators() -> int:
    """Independent FMA chains: 16 with 32 vector registers (AVX-512), else 12 (16 registers)."""
    return 16 if host_target().vector_bytes >= 64 else 12


def build_loop(dtype: str) -> tuple[JitModule, int]:
    """A module with ``double fma_loop(i64 n)`` over vectors of ``dtype``; returns it and the lanes."""
    ety = ir.FloatType() if dtype == "float32" else ir.DoubleType()
    lanes = host_target().vector_bytes // (4 if dtype == "float32" else 8)
    vty = ir.VectorType(ety, lanes)
    mod = new_module(f"fma_peak_{dtype}")
    fma = ir.Function(mod, ir.FunctionType(vty, [vty] * 3), f"llvm.fma.v{lanes}{'f32' if dtype == 'float32' else 'f64'}")
    fn = ir.Function(mod, ir.FunctionType(ir.DoubleType(), [ir.IntType(64)]), "fma_loop")
    n = fn.args[0]
    entry, loop, done = (fn.append_basic_block(t) for t in ("entry", "loop", "done"))
    b = ir.IRBuilder(entry)
    x = ir.Constant(vty, [ir.Constant(ety, 0.999999)] * lanes)
    y = ir.Constant(vty, [ir.Constant(ety, 1e-7)] * lanes)
    b.branch(loop)
    b.position_at_end(loop)
    i = b.phi(ir.IntType(64))
    accs = [b.phi(vty) for _ in range(accumulators())]
    i.add_incoming(ir.Constant(ir.IntType(64), 0), entry)
    for k, a in enumerate(accs):
        a.add_incoming(ir.Constant(vty, [ir.Constant(ety, float(k))] * lanes), entry)
    new = [b.call(fma, [a, x, y]) for a in accs]
    nxt = b.add(i, ir.Constant(ir.IntType(64), 1))
    i.add_incoming(nxt, loop)
    for a, v in zip(accs, new):
        a.add_incoming(v, loop)
    b.cbranch(b.icmp_signed("<", nxt, n), loop, done)
    b.position_at_end(done)
    total = new[0]
    for v in new[1:]:
        total = b.fadd(total, v)
    s = b.extract_element(total, ir.Constant(ir.IntType(32), 0))
    b.ret(b.fpext(s, ir.DoubleType()) if dtype == "float32" else s)
    return JitModule(mod), lanes


def fma_peak(dtype: str = "float32", threads: int = 1, seconds: float = 0.3) -> float:
    """GFLOP/s of the FMA loop on ``threads`` threads at once (the best of a few timings)."""
    jm, lanes = build_loop(dtype)
    f = _FN(jm.address("fma_loop"))
    flops_per_iter = 2 * lanes * accumulators()
    n = 1 << 16
    while True:  # iterations for about 20 ms per call
        t = time.perf_counter()
        f(n)
        if time.perf_counter() - t > 0.02:
            break
        n *= 2
    best = 0.0
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        workers = [threading.Thread(target=f, args=(n,)) for _ in range(threads)]
        t = time.perf_counter()
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        best = max(best, threads * n * flops_per_iter / (time.perf_counter() - t) / 1e9)
    return best


def main() -> None:
    for dtype in ("float32", "float64"):
        one, two = fma_peak(dtype, 1), fma_peak(dtype, 2)
        print(f"FMA peak {dtype}: {one:.1f} GFLOP/s on 1 thread, {two:.1f} on 2 threads")


if __name__ == "__main__":
    main()
