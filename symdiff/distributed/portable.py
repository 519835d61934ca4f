"""Compiled functions that travel between processes: the serialized graph plus its compile arguments.

A :class:`PortableGraph` is what crosses a process boundary (pickle, a Dask task): the graph in the
``sd.save`` interchange format (``symdiff/interchange.py``, zlib-compressed JSON), the backend name, the
backend options and the argument order -- never machine code, ctypes pointers or thread pools. Its
``key`` is a SHA-256 of all of that. :func:`load` turns it into a :class:`~symdiff.compiled.CompiledFunction`
through a per-process cache keyed by ``key``: a process compiles (or loads from the on-disk cache) each
graph once and reuses it for every later call. ``pickle.dumps(sd.compile(...))`` pickles as its
PortableGraph (``CompiledFunction.__reduce__``), so unpickling compiles once per process too.
"""
from __future__ import annotations

import hashlib
import json
import threading
import weakref
import zlib
from dataclasses import dataclass, field
from typing import Any, Optional

from .. import interchange
from ..backends import get_backend
from ..compiled import DEFAULT_BACKEND, CompiledFunction, compile as sd_compile
from ..ir import Node
from ..simplify import simplify

_CACHE: dict[str, CompiledFunction] = {}  # compiled by load(): kept for the life of the process
_LOCAL: "weakref.WeakValueDictionary[str, CompiledFunction]" = weakref.WeakValueDictionary()  # by portable()
_LOCK = threading.Lock()
_STATS = {"compiles": 0, "hits": 0}


@dataclass(frozen=True)
class PortableGraph:
    """A compiled function as data: ``payload`` (compressed interchange JSON of the outputs followed by the
    ``order`` leaves), ``n_outputs``, ``single``, ``backend``, ``options``, ``positional`` (compiled with
    ``inputs=``) and ``key``, the SHA-256 of all of them (the per-process cache key)."""

    payload: bytes
    n_outputs: int
    single: bool
    backend: str
    options: tuple
    positional: bool
    key: str = field(default="")

    def function(self) -> CompiledFunction:
        """This graph compiled in the current process: from the per-process cache after the first call."""
        return load(self)


def _digest(payload: bytes, *parts: Any) -> str:
    h = hashlib.sha256(payload)
    h.update(json.dumps([repr(p) for p in parts]).encode())
    return h.hexdigest()


def _pack(outs: list, single: bool, order: list, backend: str, options: dict) -> PortableGraph:
    data = interchange.to_json_data(list(outs) + list(order))
    payload = zlib.compress(json.dumps(data, allow_nan=False, separators=(",", ":"), sort_keys=True).encode(), 6)
    opts = tuple(sorted(options.items()))
    key = _digest(payload, len(outs), single, backend, opts, bool(order))
    return PortableGraph(payload, len(outs), single, backend, opts, bool(order), key)


def portable_of(fn: CompiledFunction) -> PortableGraph:
    """The :class:`PortableGraph` of a function returned by ``sd.compile`` (its simplified graph, recompiled
    without simplifying again, so every process compiles the same graph). Registers ``fn`` (weakly) in
    this process's cache, so loading the result here returns ``fn`` itself."""
    args = getattr(fn, "compile_args", None)
    if args is None:
        raise TypeError(f"{fn!r} was not made by sd.compile: it has no compile arguments to send")
    order = list(args["inputs"] or [])
    graph = _pack(fn.outputs, fn.single, order, args["backend"], args["options"])
    with _LOCK:
        _LOCAL.setdefault(graph.key, fn)  # weakly: sending a function does not keep it alive
    return graph


def graph_of(outputs, backend: Optional[str] = None, **options) -> PortableGraph:
    """The :class:`PortableGraph` that ``sd.compile(outputs, backend, **options)`` would be, without compiling
    here: the graph is simplified and serialized, the options checked against the backend's."""
    single = isinstance(outputs, Node)
    outs = [outputs] if single else list(outputs)
    name = backend or DEFAULT_BACKEND
    opts = get_backend(name).resolve_options(options)
    return _pack(simplify(outs), single, [], name, opts)


def _compile_graph(graph: PortableGraph) -> CompiledFunction:
    nodes = interchange.from_json_data(json.loads(zlib.decompress(graph.payload)), "a PortableGraph")
    nodes = [nodes] if not isinstance(nodes, list) else nodes
    outs, order = nodes[:graph.n_outputs], nodes[graph.n_outputs:]
    inputs = {"inputs": order} if graph.positional else {}
    fn = sd_compile(outs[0] if graph.single else outs, graph.backend, simplify_graph=False,
                    **dict(graph.options), **inputs)
    return fn


def load(graph: PortableGraph) -> CompiledFunction:
    """``graph`` compiled in this process, once: a per-process cache keyed by ``graph.key``."""
    with _LOCK:
        fn = _CACHE.get(graph.key) or _LOCAL.get(graph.key)
        if fn is not None:
            _STATS["hits"] += 1
            return fn
    fn = _compile_graph(graph)  # outside the lock: compiling may take seconds
    with _LOCK:
        fn = _CACHE.setdefault(graph.key, fn)
        _STATS["compiles"] += 1
    return fn


def unpickle(graph: PortableGraph) -> CompiledFunction:
    """What ``pickle.loads`` calls for a pickled compiled function (see ``CompiledFunction.__reduce__``)."""
    return load(graph)


def reduce_compiled(fn: CompiledFunction) -> tuple:
    """``CompiledFunction.__reduce__``: pickle as the function's :class:`PortableGraph`."""
    return (unpickle, (portable_of(fn),))


def cache_stats() -> dict:
    """This process's counts: ``compiles`` (graphs compiled or loaded from disk by :func:`load`), ``hits``
    (calls served from memory) and ``cached`` (graphs held)."""
    with _LOCK:
        return {**_STATS, "cached": len(_CACHE)}


def clear_cache() -> None:
    """Forget every cached function of this process (the next :func:`load` of each graph compiles)."""
    with _LOCK:
        _CACHE.clear()
        _LOCAL.clear()


__all__ = ["PortableGraph", "portable_of", "graph_of", "load", "cache_stats", "clear_cache", "reduce_compiled"]
