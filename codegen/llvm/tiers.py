"""Compile tiers of a graph's kernels: which kernels are too small for the full LLVM pipeline to pay.

llvmlite's bundled LLVM (built with assertions) spends ~10 ms of CPU on every vectorised loop it
optimises and code-generates at O2/O3, whatever the loop's size (docs/performance.md, "Where the
graph's compile time goes"). An MLP's graph has a dozen loop kernels (bias, relu and its mask,
softmax rows, column sums) whose work is a few microseconds per call, next to milliseconds of GEMM.
Those compile at the *light* tier: the IR pipeline at O1, still loop- and SLP-vectorised but neither
unrolled nor interleaved, and code generation at O0 (FastISel, the fast register allocator; that is
where most of the time goes: the O3 IR pipeline with O0 code generation saves nearly as much).

A kernel is light when its estimated time is small in absolute terms and the light kernels together
are a small share of the program's: each kernel's work is weighed in GEMM-FLOP equivalents
(:func:`work`), the kernels are taken smallest first while the running total stays within
``LIGHT_SHARE`` of the program's work, and any kernel of at most ``LIGHT_FLOOR`` is light regardless;
none above ``LIGHT_MAX``. Light code runs up to ~1.4x slower (a column sum; O0's register allocator
spills loop-carried values), so the light kernels cost at most ~1% of a call by this estimate.
A matrix product is never forced light: its code in the graph's module is a small call into the shared
GEMM functions (``sdgemm.*``, compiled at the full tier as modules of their own), cheap at O3 too.

Measured (2026-12-04, Zen 4; docs/performance.md): a new model with the GEMM kernels cached compiles
in 112 ms instead of 149 (W1) and in 345 ms instead of 547 (W6, LeNet), medians of fresh processes;
runtime within the noise (+-3%) of a same-process A/B.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Optional

if TYPE_CHECKING:  # (jit.py imports this module for the settings alone)
    from symdiff.codegen.cost import Cost

LIGHT_SHARE = 0.01     # the light kernels' summed work, at most this share of the program's
LIGHT_FLOOR = 4096     # work (GEMM-FLOP equivalents) up to which a kernel is light regardless
LIGHT_MAX = 1 << 21    # ... and above which it never is (~20 us of work at ~100 GFLOP/s)
# weights of the work estimate: a GEMM FLOP runs ~2x faster than an elementwise one (full FMA tiles),
# a math-library call is ~20 vector instructions per lane group, a compulsory byte at ~20 GB/s costs
# about what 4-5 GEMM FLOPs do at ~100 GFLOP/s
ELEMENTWISE_WEIGHT, SPECIAL_WEIGHT, BYTE_WEIGHT = 2, 20, 4

# how a light module is compiled (codegen/llvm/jit.py's emit_object(light=True))
LIGHT_SPEED_LEVEL = 1
LIGHT_CODEGEN_LEVEL = 0
LIGHT_TUNING = {"loop_unrolling": False, "loop_interleaving": False}


def work(c: "Cost") -> Optional[int]:
    """A kernel's work in GEMM-FLOP equivalents, or None when its cost is symbolic (a Dim polynomial)."""
    parts = (c.matmul_flops, c.flops, c.special, c.bytes_read, c.bytes_written)
    if not all(isinstance(v, int) for v in parts):
        return None
    elementwise = c.flops - c.matmul_flops
    return c.matmul_flops + ELEMENTWISE_WEIGHT * elementwise + SPECIAL_WEIGHT * c.special + BYTE_WEIGHT * c.bytes


def light_kernels(program, share: float = LIGHT_SHARE, floor: int = LIGHT_FLOOR,
                  cap: int = LIGHT_MAX) -> frozenset[int]:
    """Indexes of the kernels of ``program`` (a :class:`symdiff.codegen.kernel_ir.Program`) that compile at
    the light tier; none when part of the program's work is symbolic (its share cannot be bounded)."""
    works = [work(c) for c in program.costs()]
    if any(w is None for w in works):
        return frozenset()
    budget = share * sum(works)
    light, spent = set(), 0
    for w, i in sorted((w, i) for i, w in enumerate(works)):
        if w > cap or (w > floor and spent + w > budget):
            break
        light.add(i)
        spent += w
    return frozenset(light)


def module_choices(tiers: list[bool], light: bool, product: bool, entry_module: bool) -> list[int]:
    """The modules (``tiers[j]``: module j is light) a kernel may be rendered into: those of its tier
    (``light``); with ``entry_module``, module 0 holds the entry alone (dispatch code: the full tier's time
    on it buys nothing) plus the stubs of the full-tier products (each a call into the shared GEMM
    functions); 0 when no module fits."""
    if entry_module and product and not light:
        return [0]
    return [j for j, t in enumerate(tiers) if t == light and not (j == 0 and entry_module)] or [0]


__all__ = ["light_kernels", "module_choices", "work", "LIGHT_SHARE", "LIGHT_FLOOR", "LIGHT_MAX", "LIGHT_SPEED_LEVEL",
           "LIGHT_CODEGEN_LEVEL", "LIGHT_TUNING"]
