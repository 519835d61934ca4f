"""The machine a Program is compiled for: ISA, CPU, features, vector width and thread count.

A :class:`Target` flows through lowering (how many tasks a loop kernel splits into), GEMM planning
(how many tasks a product splits into), rendering (the LLVM target machine) and the runtime (the
size of the thread pool), and is part of every compile-cache key. ``host_target()`` detects it:

- ``cpu``/``features``: LLVM's names for the host CPU (llvmlite);
- ``vector_bytes``: 64 with AVX-512F, 32 with AVX2, 16 otherwise;
- ``threads``: ``$SYMDIFF_NUM_THREADS`` when set, else the CPUs this process may run on.

Task counts: a loop kernel over a large domain splits into up to ``TASKS_PER_THREAD * threads``
tasks (over-decomposition balances uneven chunks; 8 tasks on 2 threads), a matrix product into at
most ``threads`` (each task of a column split packs op(A) again); one thread means serial code.
"""
from __future__ import annotations

import functools
import os
from dataclasses import dataclass, replace
from typing import Optional

TASKS_PER_THREAD = 4
MAX_THREADS = 1024
ENV_THREADS = "SYMDIFF_NUM_THREADS"


def default_threads() -> int:
    """``$SYMDIFF_NUM_THREADS`` if set (a positive integer), else the CPUs this process may run on
    (``len(os.sched_getaffinity(0))``, i.e. ``os.cpu_count()`` unless pinned to fewer)."""
    env = os.environ.get(ENV_THREADS, "").strip()
    if env:
        try:
            n = int(env)
        except ValueError:
            n = 0
        if n < 1:
            raise ValueError(f"{ENV_THREADS} must be a positive integer, got {env!r}")
        return min(n, MAX_THREADS)
    try:
        n = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        n = os.cpu_count() or 1
    return max(1, min(n, MAX_THREADS))


def vector_bytes_of(features: str) -> int:
    """The widest SIMD register the feature string provides, in bytes."""
    flags = set(features.split(","))
    if "+avx512f" in flags:
        return 64
    if "+avx2" in flags:
        return 32
    return 16


@dataclass(frozen=True)
class Target:
    isa: str  # "x86_64", "aarch64", ... (the architecture of the LLVM triple)
    cpu: str  # LLVM CPU name ("znver3", "sapphirerapids", ...)
    features: str  # LLVM feature string ("+avx2,+fma,...")
    vector_bytes: int
    threads: int

    def __post_init__(self) -> None:
        if not isinstance(self.threads, int) or isinstance(self.threads, bool) or self.threads < 1:
            raise ValueError(f"Target: threads must be a positive int, got {self.threads!r}")

    @property
    def loop_tasks(self) -> int:
        """The most tasks a loop kernel splits into (1: serial)."""
        return 1 if self.threads == 1 else TASKS_PER_THREAD * self.threads

    @property
    def gemm_tasks(self) -> int:
        """The most tasks a matrix product splits into (1: serial)."""
        return self.threads

    @property
    def has_fma(self) -> bool:
        """Fused multiply-add units: an x86-64 CPU whose features name ``+fma`` or a forced AVX2/AVX-512 level;
        every other architecture LLVM targets here (aarch64) has them."""
        if self.isa != "x86_64":
            return True
        return self.cpu in FMA_LEVEL_CPUS or "+fma" in self.features.split(",")

    def with_threads(self, threads: Optional[int]) -> "Target":
        """This target with another thread count (None: unchanged)."""
        return self if threads is None else replace(self, threads=threads)

    def key(self) -> str:
        """The target's part of a compile-cache key."""
        return f"{self.isa}|{self.cpu}|{self.features}|v{self.vector_bytes}|t{self.threads}"


@functools.lru_cache(maxsize=1)
def _host_isa() -> tuple[str, str, str]:
    import llvmlite.binding as llvm
    llvm.initialize_native_target()
    return llvm.get_process_triple().split("-")[0], llvm.get_host_cpu_name(), llvm.get_host_cpu_features().flatten()


# x86-64 levels a user can force (``sd.compile(..., isa=...)``): LLVM's generic CPU of each level (its
# features follow from the name) and the vector register width the kernels are planned for
ISA_LEVELS = {"sse4.2": ("x86-64-v2", 16, ("+sse4.2",)), "avx2": ("x86-64-v3", 32, ("+avx2", "+fma")),
              "avx512": ("x86-64-v4", 64, ("+avx512f",))}


FMA_LEVEL_CPUS = frozenset(ISA_LEVELS[lv][0] for lv in ("avx2", "avx512"))  # the levels that include FMA


def host_supports(level: str) -> bool:
    """True when this CPU can run code of the x86-64 ``level`` (a key of :data:`ISA_LEVELS`)."""
    isa, _, features = _host_isa()
    flags = set(features.split(","))
    return isa == "x86_64" and all(f in flags for f in ISA_LEVELS[level][2])


def isa_target(level: str, threads: Optional[int] = None) -> Target:
    """The target of an x86-64 ``level`` ("sse4.2", "avx2", "avx512"): LLVM's generic CPU of that level
    (``x86-64-v2/v3/v4``), its vector width, this machine's thread count."""
    if level not in ISA_LEVELS:
        raise ValueError(f"isa must be one of {', '.join(ISA_LEVELS)} (or None for the host), got {level!r}")
    cpu, width, _ = ISA_LEVELS[level]
    return Target("x86_64", cpu, "", width, default_threads() if threads is None else threads)


def host_target(threads: Optional[int] = None) -> Target:
    """The machine we run on; ``threads`` overrides :func:`default_threads`."""
    isa, cpu, features = _host_isa()
    return Target(isa, cpu, features, vector_bytes_of(features), default_threads() if threads is None else threads)


__all__ = ["Target", "host_target", "default_threads", "vector_bytes_of", "TASKS_PER_THREAD", "ENV_THREADS",
           "ISA_LEVELS", "host_supports", "isa_target"]
