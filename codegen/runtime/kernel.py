"""Python side of the symdiff kernel runtime.

A compiled graph is one JIT-compiled function ``void entry(void **args, void *pool)``:
``args`` holds the data pointers of all inputs, then all outputs (C-contiguous,
aligned, native byte order; inputs are never written) and ``pool`` is an ``sd_pool*``
or NULL.  Generated code parallelises loops with
``void sd_parallel_for(void *pool, void (*fn)(void *ctx, int64_t begin, int64_t end),
void *ctx, int64_t n)``.

Everything fast lives in the C extension :mod:`symdiff.codegen.runtime._runtime`:

* :class:`Kernel` ``(entry, pool, inputs, outputs, *, name="kernel", returns="tuple",
  release_gil=True, zero_outputs=False, owner=None, workspace_bytes=None)`` -- the
  callable; validation,
  unboxing, output allocation and the GIL release happen in C (well under 1 us for a
  small graph).  ``inputs``: ``(name, shape, dtype[, label_range])``; ``outputs``:
  ``(name, shape, dtype)``.  ``workspace_bytes=n`` appends one more pointer to ``args``
  after the outputs: ``n`` bytes of 64-byte-aligned scratch (NULL if ``n == 0``), as the
  LLVM renderer's ABI wants.  See ``help(Kernel)``.
* :class:`Pool` ``(nthreads=0)`` -- owns one ``sd_pool`` (threads joined when the Pool is
  collected or closed).  A Kernel keeps its Pool alive.
* :func:`runtime_symbols` -- ``{"sd_parallel_for": address, ...}`` for
  ``llvmlite.binding.add_symbol`` (:func:`register_llvm_symbols` does that).

Fallback: if the extension is missing (it is built by ``pip install -e .``; a missing
one means a broken build), this module warns once with the import error and uses
:class:`FallbackKernel` / :class:`FallbackPool`: the same checks and error messages in
pure Python + ctypes, roughly 10-20x more call overhead, and ``sd_parallel_for``
provided as a ctypes callback that runs loops serially.  Set ``SYMDIFF_REQUIRE_RUNTIME=1``
to make a missing extension an ImportError instead.
"""
from __future__ import annotations

import ctypes
import os
import warnings
from typing import Any, Iterable, Optional

import numpy as np

from symdiff.codegen.target import default_threads

__all__ = [
    "Kernel", "Pool", "FallbackKernel", "FallbackPool", "HAVE_EXTENSION", "EXTENSION_ERROR",
    "default_num_threads", "make_pool", "runtime_symbols", "register_llvm_symbols",
    "jit_kernel",
]

# --------------------------------------------------------------------------- threads


def default_num_threads() -> int:
    """Threads a pool gets by default: :func:`symdiff.codegen.target.default_threads`
    (``$SYMDIFF_NUM_THREADS`` if set, else the CPUs this process may run on)."""
    return default_threads()


# ------------------------------------------------------------------- pure fallback

_KIND_WORD = {"f": "floating-point", "i": "integer", "b": "bool", "c": "complex"}
_ALLOWED = {"f": "fiu", "i": "iu", "b": "b"}  # bool data is rejected for float and int inputs


class _Spec:
    __slots__ = ("name", "shape", "dtype", "kind", "range", "lo", "hi")

    def __init__(self, item: Any, what: str, idx: int) -> None:
        n_max = 4 if what == "input" else 3
        if not isinstance(item, (tuple, list)) or not 3 <= len(item) <= n_max:
            raise TypeError(f"{what} spec #{idx} must be (name, shape, dtype"
                            f"{'[, label_range]' if what == 'input' else ''}), got {item!r}")
        name, shape, dtype = item[0], item[1], item[2]
        if not isinstance(name, str):
            raise TypeError(f"{what} spec #{idx}: name must be a str, got {name!r}")
        self.name = name
        try:
            shape = tuple(shape)
        except TypeError:
            raise TypeError(f"{what} '{name}': shape must be a tuple of ints, got {shape!r}") from None
        if not all(hasattr(d, "__index__") and not isinstance(d, bool) and d.__index__() >= 0
                   for d in shape):
            raise ValueError(f"{what} '{name}': shape must be a tuple of non-negative ints, got {shape!r}")
        self.shape = tuple(d.__index__() for d in shape)
        try:
            dt = np.dtype(dtype)
        except TypeError:
            raise TypeError(f"{what} '{name}': not a numpy dtype: {dtype!r}") from None
        self.dtype = dt.newbyteorder("=")
        kind = {"u": "i"}.get(dt.kind, dt.kind)
        if kind not in ("f", "i", "b") and not (kind == "c" and what == "output"):
            raise TypeError(f"{what} '{name}': unsupported dtype {dt} (expected a float, integer"
                            f"{', complex' if what == 'output' else ''} or bool dtype)")
        self.kind = kind
        self.range = None
        self.lo = self.hi = 0
        if kind == "i":
            info = np.iinfo(dt)
            self.lo, self.hi = int(info.min), min(int(info.max), 2**63 - 1)
        r = item[3] if len(item) == 4 else None
        if r is not None:
            if kind != "i":
                raise TypeError(f"input '{name}': a label range needs an integer dtype, not {dt}")
            if isinstance(r, int) and not isinstance(r, bool):
                lo, hi = 0, r
            elif isinstance(r, tuple) and len(r) == 2 and all(isinstance(v, int) for v in r):
                lo, hi = r
            else:
                raise TypeError(f"input '{name}': label_range must be an int C (values in [0, C)) "
                                f"or a (lo, hi) tuple, got {r!r}")
            if hi <= lo or lo < self.lo or hi - 1 > self.hi:
                raise ValueError(f"input '{name}': label range [{lo}, {hi}) is empty or does not "
                                 f"fit in {dt}")
            self.range = (lo, hi)
            self.lo, self.hi = lo, hi - 1


def _parse_specs(specs: Iterable[Any], what: str) -> list[_Spec]:
    out: list[_Spec] = []
    for i, item in enumerate(specs):
        s = _Spec(item, what, i)
        if any(o.name == s.name for o in out):
            raise ValueError(f"duplicate {what} name {s.name!r}")
        out.append(s)
    return out


def _sd_parallel_for_serial(pool, fn, ctx, n):  # noqa: ARG001 - pool unused: serial
    if n > 0:
        _TASK_FN(fn)(ctx, 0, n)


def _sd_pool_num_threads(pool):  # noqa: ARG001
    return 1


_TASK_FN = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64)
_PFOR_FN = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64)
_NUMT_FN = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p)
_ENTRY_FN = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p)
# Module-level so the callbacks outlive every JIT module that calls them.
_FALLBACK_CALLBACKS = {
    "sd_parallel_for": _PFOR_FN(_sd_parallel_for_serial),
    "sd_pool_num_threads": _NUMT_FN(_sd_pool_num_threads),
}


class FallbackPool:
    """Stand-in for :class:`Pool` without the extension: no threads, loops run serially
    (``address`` is 0, so generated code sees a NULL pool)."""

    def __init__(self, nthreads: int = 0) -> None:
        if nthreads < 0:
            raise ValueError(f"Pool: nthreads must be >= 0 (0 = default), got {nthreads}")
        self.nthreads = 1
        self.address = 0
        self.closed = False

    def close(self) -> None:
        self.closed = True

    def set_spin_us(self, us: int) -> None:  # noqa: ARG002
        pass

    def parallel_for(self, fn_addr: int, ctx_addr: Optional[int], n: int) -> None:
        if n > 0:
            _TASK_FN(fn_addr)(ctx_addr, 0, n)

    def __enter__(self) -> "FallbackPool":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return "<symdiff.codegen.runtime.kernel.FallbackPool nthreads=1 (serial)>"


class FallbackKernel:
    """Pure-Python/ctypes version of :class:`Kernel` (same signature, checks and messages;
    used only when the C extension is unavailable)."""

    def __init__(self, entry: int, pool: Any, inputs: Iterable[Any], outputs: Iterable[Any], *,
                 name: str = "kernel", returns: str = "tuple", release_gil: bool = True,
                 zero_outputs: bool = False, owner: Any = None,
                 workspace_bytes: Optional[int] = None) -> None:
        if not isinstance(entry, int) or not entry:
            raise ValueError(f"Kernel: entry must be a non-zero function address (int), got {entry!r}")
        if pool is None or isinstance(pool, int):
            pool_addr = pool or None
        elif hasattr(pool, "address") and hasattr(pool, "nthreads"):
            pool_addr = pool.address or None
        else:
            raise TypeError(f"Kernel: pool must be a Pool, an int sd_pool* address or None, got {pool!r}")
        self._in = _parse_specs(inputs, "input")
        self._out = _parse_specs(outputs, "output")
        if returns not in ("tuple", "single", "dict"):
            raise ValueError(f"Kernel: returns must be 'tuple', 'single' or 'dict', got {returns!r}")
        if returns == "single" and len(self._out) != 1:
            raise ValueError(f"Kernel: returns='single' needs exactly one output, got {len(self._out)}")
        self.name = name
        self.pool = pool
        self.owner = owner
        self.entry_address = entry
        self._pool_addr = pool_addr
        self._returns = returns
        self._zero = zero_outputs
        if workspace_bytes is not None and (not isinstance(workspace_bytes, int)
                                            or isinstance(workspace_bytes, bool) or workspace_bytes < 0):
            raise ValueError(f"Kernel: workspace_bytes must be None or an int >= 0, got {workspace_bytes!r}")
        self.workspace_bytes = workspace_bytes
        self._fn = _ENTRY_FN(entry)  # ctypes releases the GIL around foreign calls
        self.input_names = tuple(s.name for s in self._in)
        self.output_names = tuple(s.name for s in self._out)
        self.input_specs = tuple((s.name, s.shape, s.dtype, s.range) for s in self._in)
        self.output_specs = tuple((s.name, s.shape, s.dtype) for s in self._out)

    def __repr__(self) -> str:
        return f"<symdiff.codegen.runtime.kernel.FallbackKernel {self.name}{self.input_names!r} -> {self.output_names!r}>"

    def _bind(self, args: tuple, kwargs: dict) -> list:
        n_in = len(self._in)
        if not kwargs:
            if len(args) != n_in:
                raise TypeError(f"{self.name}() takes {n_in} input{'' if n_in == 1 else 's'} "
                                f"{self.input_names!r} but {len(args)} "
                                f"{'was' if len(args) == 1 else 'were'} given")
            return list(args)
        if len(args) > n_in:
            raise TypeError(f"{self.name}() takes {n_in} input{'' if n_in == 1 else 's'} "
                            f"{self.input_names!r} but {len(args)} positional were given")
        bound: list = list(args) + [None] * (n_in - len(args))
        have = [True] * len(args) + [False] * (n_in - len(args))
        for key, val in kwargs.items():
            try:
                i = self.input_names.index(key)
            except ValueError:
                raise TypeError(f"{self.name}() got an unexpected input {key!r} "
                                f"(inputs: {self.input_names!r})") from None
            if have[i]:
                raise TypeError(f"{self.name}() got multiple values for input {key!r}")
            bound[i], have[i] = val, True
        for i, ok in enumerate(have):
            if not ok:
                raise TypeError(f"{self.name}() missing input {self.input_names[i]!r}")
        return bound

    def _check_values(self, s: _Spec, a: np.ndarray) -> None:
        bad = np.flatnonzero((a < s.lo) | (a > s.hi))
        if bad.size:
            i = int(bad[0])
            v = int(a.reshape(-1)[i])
            if s.range is not None:
                raise ValueError(f"{self.name}(): input '{s.name}': label value {v} at flat index "
                                 f"{i} is out of range [{s.lo}, {s.hi + 1})")
            raise ValueError(f"{self.name}(): input '{s.name}': value {v} at flat index {i} "
                             f"does not fit in {s.dtype}")

    def _convert(self, s: _Spec, o: Any) -> np.ndarray:
        pre = f"{self.name}(): input '{s.name}'"
        if o is None:
            raise TypeError(f"{pre} is None; expected a {s.dtype} array of shape {s.shape!r}")
        if isinstance(o, np.ndarray):
            a = o
        else:
            try:
                a = np.asarray(o)
            except Exception as e:  # noqa: BLE001 - re-raised with the input's name
                raise TypeError(f"{pre}: cannot convert to an array: {e}") from e
        k = a.dtype.kind
        if k not in _ALLOWED[s.kind]:
            why = ""
            if k == "c":
                why = " (complex values are not supported; pass .real explicitly)"
            elif k == "O":
                why = " (object array: contains None or non-numeric values?)"
            elif k in "US":
                why = " (strings are not numbers)"
            elif s.kind == "i" and k == "f":
                why = " (labels must be integers; convert with .astype(np.int64) if intended)"
            elif s.kind == "i" and k == "b":
                why = " (bool is not accepted for integer inputs)"
            elif s.kind == "f" and k == "b":
                why = " (bool is not accepted for float inputs; convert with .astype explicitly if intended)"
            raise TypeError(f"{pre}: expected {_KIND_WORD[s.kind]} data ({s.dtype}), got dtype "
                            f"{a.dtype}{why}")
        if a.shape != s.shape:
            raise ValueError(f"{pre}: expected shape {s.shape!r}, got {a.shape!r}")
        if s.kind == "i" and (s.range is not None or a.dtype != s.dtype):
            self._check_values(s, a)
        return np.ascontiguousarray(a, dtype=s.dtype)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        ins = [self._convert(s, o) for s, o in zip(self._in, self._bind(args, kwargs))]
        alloc = np.zeros if self._zero else np.empty
        outs = [alloc(s.shape, s.dtype) for s in self._out]
        addrs = [a.ctypes.data for a in ins] + [a.ctypes.data for a in outs]
        ws = None
        if self.workspace_bytes is not None:
            if self.workspace_bytes:
                ws = np.empty(self.workspace_bytes + 64, np.uint8)  # per call: thread-safe
                addrs.append(ws.ctypes.data + (-ws.ctypes.data) % 64)
            else:
                addrs.append(None)
        ptrs = (ctypes.c_void_p * max(1, len(addrs)))(*addrs)
        self._fn(ptrs, self._pool_addr)
        del ws
        if self._returns == "single":
            return outs[0]
        if self._returns == "dict":
            return dict(zip(self.output_names, outs))
        return tuple(outs)


# --------------------------------------------------------------- choose the backend

try:
    from symdiff.codegen.runtime import _runtime as _ext
except ImportError as _e:  # pragma: no cover - only on a broken build
    _ext = None
    EXTENSION_ERROR: Optional[str] = f"{type(_e).__name__}: {_e}"
    if os.environ.get("SYMDIFF_REQUIRE_RUNTIME", "") not in ("", "0"):
        raise ImportError(
            "symdiff: the C extension symdiff.codegen.runtime._runtime is not available "
            f"({EXTENSION_ERROR}); rebuild it with `pip install -e .` "
            "(SYMDIFF_REQUIRE_RUNTIME is set, so the slow fallback is disabled)") from _e
    warnings.warn(
        "symdiff: the C extension symdiff.codegen.runtime._runtime is not available "
        f"({EXTENSION_ERROR}); falling back to the pure-ctypes runtime: kernels run serially "
        "with ~10-20x the per-call overhead. Rebuild with `pip install -e .`.",
        RuntimeWarning, stacklevel=2)
else:
    EXTENSION_ERROR = None

HAVE_EXTENSION: bool = _ext is not None

if _ext is not None:
    Kernel = _ext.Kernel
    Pool = _ext.Pool
else:  # pragma: no cover
    Kernel = FallbackKernel  # type: ignore[misc,assignment]
    Pool = FallbackPool  # type: ignore[misc,assignment]


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
    if _ext is not None:
        return _ext.symbol_addresses()
    return {k: ctypes.cast(v, ctypes.c_void_p).value for k, v in _FALLBACK_CALLBACKS.items()}


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
