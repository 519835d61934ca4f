"""Python side of the symdiff kernel runtime.

A compiled graph is one JIT-compiled function ``void entry(void **args, void *pool)``:
``args`` holds the data pointers of all inputs, then all outputs (C-contiguous,
aligned, native byte order; inputs are never written) and ``pool`` is an ``sd_pool*``
or NULL.  Generated code parallelises loops with
``void sd_parallel_for(void *pool, void (*fn)(void *ctx, int64_t begin, int64_t end),
void *ctx, int64_t n)``.

Everything fast lives in the C extension :mod:`symdiff.codegen.runtime.native`:

* :class:`Kernel` ``(entry, pool, inputs, outputs, *, name="kernel", returns="tuple",
  release_gil=True, zero_outputs=False, owner=None, workspace_bytes=None, signature=None)``
  -- the callable.  A call of exact arrays is bound, unboxed and run in C (about a
  microsecond, the GIL released around the entry); any other call goes to
  :meth:`symdiff.signature.Signature.bind_call`, the one place that converts arguments
  and words every call error.  ``inputs``: ``(name, shape, dtype[, label_range])``;
  ``outputs``: ``(name, shape, dtype)``.  ``workspace_bytes=n`` appends one more pointer
  to ``args`` after the outputs: ``n`` bytes of 64-byte-aligned scratch (NULL if
  ``n == 0``), as the LLVM renderer's ABI wants.  See ``help(Kernel)``.
* :class:`Pool` ``(nthreads=0)`` -- owns one ``sd_pool`` (threads joined when the Pool is
  collected or closed).  A Kernel keeps its Pool alive.
* :func:`runtime_symbols` -- ``{"sd_parallel_for": address, ...}`` for
  ``llvmlite.binding.add_symbol`` (:func:`register_llvm_symbols` does that).

The extension is built by ``pip install -e .``; there is no pure-Python stand-in (a missing
extension is an ImportError that says how to rebuild it).
"""
from __future__ import annotations

import os
from typing import Any, Iterable, Optional

from symdiff.codegen.target import default_threads

__all__ = [
    "Kernel", "Pool", "default_num_threads", "make_pool", "runtime_symbols", "register_llvm_symbols",
    "jit_kernel",
]

# --------------------------------------------------------------------------- threads


def default_num_threads() -> int:
    """Threads a pool gets by default: :func:`symdiff.codegen.target.default_threads`
    (``$SYMDIFF_NUM_THREADS`` if set, else the CPUs this process may run on)."""
    return default_threads()


try:
    from symdiff.codegen.runtime import native as _ext
except ImportError as _e:  # pragma: no cover - only on a broken build
    raise ImportError("symdiff: the C extension symdiff.codegen.runtime.native is not available "
                      f"({type(_e).__name__}: {_e}); rebuild it with `pip install -e .`") from _e

Kernel = _ext.Kernel
Pool = _ext.Pool


def make_pool(nthreads: Optional[int] = None) -> "Pool":
    """A new thread pool with ``nthreads`` threads in all (the calling thread included);
    None = :func:`default_num_threads`.  ``nthreads=1`` gives a pool without workers."""
    if nthreads is None:
        nthreads = default_num_threads()
    if not isinstance(nthreads, int) or isinstance(nthreads, bool) or nthreads < 1:
        raise ValueError(f"make_pool: nthreads must be a positive int or None, got {nthreads!r}")
    return Pool(nthreads)


def runtime_symbols() -> dict[str, int]:
    """Name -> address of every runtime function generated code may call
    (``sd_parallel_for``, ``sd_pool_num_threads``, ...)."""
    return _ext.symbol_addresses()


def register_llvm_symbols() -> dict[str, int]:
    """Make the runtime functions resolvable by llvmlite JIT engines in this process
    (``llvmlite.binding.add_symbol``); idempotent.  Returns :func:`runtime_symbols`."""
    import llvmlite.binding as llvm

    syms = runtime_symbols()
    for name, addr in syms.items():
        llvm.add_symbol(name, addr)
    return syms


def jit_kernel(jit: Any, entry_name: str, inputs: Iterable[Any], outputs: Iterable[Any],
               pool: Any = None, **kwargs: Any) -> "Kernel":
    """A :class:`Kernel` for function ``entry_name`` of a compiled ``symdiff.codegen.llvm.jit.JitModule``
    (the kernel keeps the module alive through ``owner``)."""
    kwargs.setdefault("name", entry_name)
    return Kernel(jit.address(entry_name), pool, inputs, outputs, owner=jit, **kwargs)
