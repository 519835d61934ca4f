"""Split a rendered module into the graph's own code and its shared GEMM library functions.

The GEMM micro-kernels, packers and driver (``sdgemm.*``, see ``llvm/gemm/emit.py``) take their sizes at
run time and their names encode every static parameter, so one compiled copy serves every graph of a
dtype. Compiling them is most of the LLVM time of a typical model, so the JIT path compiles each as
a module of its own, caches its object on disk (keyed by name, compiler sources and target), and links
the graph's object with those objects in one MCJIT engine. A graph whose kernels are cached compiles
only its own code; the renderer then does not even build their IR (``module.sd_shared_available``).
The exported library (``symdiff compile``) still compiles one whole module.
"""
from __future__ import annotations

import heapq
import os
import re
import sys
import threading
from contextlib import contextmanager
from concurrent.futures import Future
from typing import Callable, Iterator, TypeVar

from llvmlite import ir

SHARED_PREFIX = "sdgemm."
T = TypeVar("T")
_REF = re.compile(r'@"([^"]+)"|@([-A-Za-z$._][-A-Za-z$._0-9]*)')


def _header(module: ir.Module) -> str:
    return f'target triple = "{module.triple}"\ntarget datalayout = "{module.data_layout}"\n'


def _declaration(fn: ir.Function) -> str:
    return str(ir.Function(ir.Module(), fn.function_type, fn.name)).strip()


def arg_types(fn: ir.Function) -> list[str]:
    return [str(a) for a in fn.function_type.args]


def shared_part(module: ir.Module, fn: ir.Function) -> tuple[str, list[str], str]:
    """(name, arg types, module text) of the shared function ``fn`` of ``module``: its definition (external
    linkage) plus declarations, or copies for constants, of the globals it references."""
    globals_ = {g.name: g for g in module.global_values}
    text = str(fn)
    refs: list[str] = []
    for m in _REF.finditer(text):
        name = m.group(1) or m.group(2)
        if name != fn.name and name not in refs and name in globals_:
            refs.append(name)
    decls = [_declaration(g) if isinstance(g, ir.Function) else str(g).strip()  # constants: copied
             for g in (globals_[n] for n in refs)]
    body = re.sub(r"^define internal ", "define ", text.lstrip(), count=1)
    return fn.name, arg_types(fn), _header(module) + "\n".join(decls) + "\n\n" + body


def make_external(fn: ir.Function) -> None:
    """Turn a shared function of a graph module into an external declaration (its object is linked in);
    the GEMM emitter finds it again as an available function (``sd_external``)."""
    fn.blocks.clear()
    fn.linkage = ""
    fn.sd_external = True


def split_shared(module: ir.Module, prefix: str = SHARED_PREFIX) -> tuple[str, list[tuple[str, list[str], str]]]:
    """(graph module text, [(name, arg types, module text)] for every *defined* ``prefix*`` function).

    In the graph text every shared function is an external declaration; each shared module holds one
    definition (external linkage) plus declarations or copies of what it references.
    """
    shared = [f for f in module.functions if f.name.startswith(prefix) and f.blocks]
    parts = [shared_part(module, fn) for fn in shared]
    for fn in shared:  # in the graph's own module they become external declarations
        make_external(fn)
    return str(module), parts


def split_graph(modules: list, prefix: str = SHARED_PREFIX) -> tuple[list[str], list[tuple[str, list[str], str]]]:
    """:func:`split_shared` of a graph rendered into several modules (the entry in the first; kernel functions
    spread over the others, each compiled by its own thread): ([module text, ...], shared parts, each name once).

    A module's text gets an external declaration of every function it references that another module
    defines or declares (the entry's calls to kernels elsewhere, an intrinsic declared elsewhere)."""
    texts, parts, seen = [], [], set()
    decls: dict[str, str] = {}
    for m in modules:
        for g in m.global_values:
            if isinstance(g, ir.Function) and g.name not in decls:
                decls[g.name] = _declaration(g)
    for m in modules:
        own = {g.name for g in m.global_values}
        text, shared = split_shared(m, prefix)
        for name, args, body in shared:
            if name not in seen:  # a shared function two modules both defined: compiled once
                seen.add(name)
                parts.append((name, args, body))
        missing = []
        for found in _REF.finditer(text):
            name = found.group(1) or found.group(2)
            if name not in own and name in decls and name not in missing:
                missing.append(name)
        texts.append(text + "\n" + "\n".join(decls[n] for n in missing) + "\n" if missing else text)
    return texts, parts


def compile_threads() -> int:
    """Threads :func:`compile_parallel` uses by default (the CPUs this process may run on)."""
    return _cpus()


def _cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


class CompileQueue:
    """Module texts compiled on ``workers`` threads as they are submitted; among the texts waiting, the
    largest starts first (so the longest jobs do not end up last on one thread). llvmlite releases the GIL
    while LLVM works, so the submitting thread goes on (rendering the rest of a graph) meanwhile.
    ``submit`` returns a Future; ``close`` waits for the workers (use as a context manager)."""

    def __init__(self, compile_text: Callable[[str], T], workers: int | None = None) -> None:
        self.compile_text = compile_text
        self.workers = max(1, workers or _cpus())
        self._heap: list = []
        self._cv = threading.Condition()
        self._closed = False
        self._count = 0
        self._threads: list[threading.Thread] = []

    def submit(self, text: str) -> Future:
        return self.submit_all([text])[0]

    def submit_all(self, texts: list[str], last: frozenset = frozenset()) -> list[Future]:
        """Queue several texts at once (no worker starts one before all are queued); the indexes in ``last``
        start after every other text waiting (a module known to compile fast for its size)."""
        futures: list[Future] = []
        with self._cv:
            for i, text in enumerate(texts):
                fut: Future = Future()
                heapq.heappush(self._heap, (i in last, -len(text), self._count, text, fut))
                self._count += 1
                futures.append(fut)
            while len(self._threads) < min(self.workers, self._count):  # (no more threads than texts)
                t = threading.Thread(target=self._work, name=f"sd-compile-{len(self._threads)}", daemon=True)
                self._threads.append(t)
                t.start()
            self._cv.notify_all()
        return futures

    def _work(self) -> None:
        while True:
            with self._cv:
                while not self._heap and not self._closed:
                    self._cv.wait()
                if not self._heap:
                    return
                *_, text, fut = heapq.heappop(self._heap)
            if fut.set_running_or_notify_cancel():
                try:
                    fut.set_result(self.compile_text(text))
                except BaseException as e:  # (reaches whoever waits for this future)
                    fut.set_exception(e)

    def close(self) -> None:
        with self._cv:
            self._closed = True
            self._cv.notify_all()
        for t in self._threads:
            t.join()

    def __enter__(self) -> "CompileQueue":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def compile_parallel(texts: list[str], compile_text: Callable[[str], T],
                     workers: int | None = None) -> list[T]:
    """Compile module texts on ``workers`` threads (default: the CPUs this process may use; a
    :class:`CompileQueue`), largest first; the results come back in the order of ``texts``.
    ``compile_text`` may return anything (e.g. ``emit_object``'s (object, IR) pair)."""
    workers = max(1, min(len(texts), workers or _cpus()))
    if workers == 1:
        return [compile_text(t) for t in texts]
    with CompileQueue(compile_text, workers) as q:
        futures = q.submit_all(texts)
        return [f.result() for f in futures]


# Python's GIL switch interval while a graph renders next to the compile threads (default 5 ms). A compile
# thread returning from an LLVM call (ctypes released the GIL) waits for it until the rendering thread is
# made to let go: W1 cold, the shared modules' parse time summed 227-239 ms at 5 ms, 49-50 ms at 0.5 ms
# (the rendering itself slowed by ~50 ms; compile 572 / 624 -> 555 / 523 ms in two A/B rounds).
RENDER_SWITCH_INTERVAL = 0.0005
_SWITCH = {"depth": 0, "saved": 0.0}
_SWITCH_LOCK = threading.Lock()


@contextmanager
def short_gil_switches(interval: float = RENDER_SWITCH_INTERVAL) -> Iterator[None]:
    """``sys.setswitchinterval(interval)`` for the duration, restored when the last of any nested or
    concurrent uses ends (the setting is process-wide)."""
    with _SWITCH_LOCK:
        if _SWITCH["depth"] == 0:
            _SWITCH["saved"] = sys.getswitchinterval()
            sys.setswitchinterval(min(interval, _SWITCH["saved"]))
        _SWITCH["depth"] += 1
    try:
        yield
    finally:
        with _SWITCH_LOCK:
            _SWITCH["depth"] -= 1
            if _SWITCH["depth"] == 0:
                sys.setswitchinterval(_SWITCH["saved"])
