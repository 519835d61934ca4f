"""The backend registry: what ``sd.compile(..., backend=NAME, **options)`` can build.

A backend registers a :class:`Backend`: its name, a factory ``factory(outputs, single, **options)``
returning a :class:`symdiff.compiled.CompiledFunction`, its option names with their defaults, and a
one-line description. The core registers the NumPy reference itself (``symdiff/compiled.py``); the
others are found through the ``symdiff.backends`` entry-point group of installed distributions
(symdiff's own in ``pyproject.toml``: llvm, cuda, cuda-cpu), each entry point naming a Backend
object. A third-party package adds a backend the same way, without touching symdiff::

    [project.entry-points."symdiff.backends"]
    mybackend = "mypackage.backend:BACKEND"

The core never imports a backend module by name: it looks the name up here.
"""
from __future__ import annotations

import threading
import warnings
from dataclasses import dataclass, field
from importlib import metadata
from types import MappingProxyType
from typing import Any, Callable, Mapping

ENTRY_POINT_GROUP = "symdiff.backends"


@dataclass(frozen=True)
class Backend:
    name: str
    factory: Callable[..., Any]  # factory(outputs, single, **options) -> CompiledFunction
    options: Mapping[str, Any] = field(default_factory=dict)  # option name -> default value
    description: str = ""
    # optional capabilities beyond compiling, by name: "export" (write a C library of several functions),
    # "load_library" (open one again); see symdiff/exporting.py
    extras: Mapping[str, Callable] = field(default_factory=dict)
    # True: the factory takes graphs with symbolic sizes (docs/symbolic_dims.md) and its function binds them
    # per call; False: sd.compile specialises the graph to each call's sizes and compiles once per size set
    symbolic_dims: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "options", MappingProxyType(dict(self.options)))
        object.__setattr__(self, "extras", MappingProxyType(dict(self.extras)))

    def resolve_options(self, options: Mapping[str, Any]) -> dict:
        """The defaults overridden by ``options``; an unknown option is a ValueError naming the
        backend and its valid options."""
        unknown = sorted(set(options) - set(self.options))
        if unknown:
            valid = ", ".join(f"{k}={v!r}" for k, v in self.options.items()) or "none"
            plural = "s" if len(unknown) > 1 else ""
            raise ValueError(f"compile: backend {self.name!r} has no option{plural} "
                             f"{', '.join(repr(u) for u in unknown)}; its options are: {valid}")
        return {**self.options, **options}

    def build(self, outputs, single: bool, **options):
        """Validate ``options`` and call the factory."""
        return self.factory(outputs, single, **self.resolve_options(options))


_registry: dict[str, Backend] = {}
_lock = threading.Lock()  # guards _registry
_load_lock = threading.RLock()  # held while the entry points load (re-entrant: a plug-in may look names up)
_entry_points_loaded = False


def register_backend(backend: Backend, *, replace: bool = False) -> Backend:
    """Add a backend; registering a taken name raises unless ``replace``."""
    if not isinstance(backend, Backend):
        raise TypeError(f"register_backend: expected a Backend, got {type(backend).__name__}")
    with _lock:
        if backend.name in _registry and not replace and _registry[backend.name] is not backend:
            raise ValueError(f"backend {backend.name!r} is already registered")
        _registry[backend.name] = backend
    return backend


def unregister_backend(name: str) -> None:
    """Remove a registered backend (no error when absent)."""
    with _lock:
        _registry.pop(name, None)


def _load_entry_points() -> None:
    """Register every backend the installed distributions declare (once, under a lock, so a concurrent
    lookup waits for it; a broken one is skipped with a warning, so one bad plug-in cannot disable the
    others)."""
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    with _load_lock:
        if _entry_points_loaded:
            return
        seen: set = set()
        for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
            if ep.name in seen or ep.name in _registry:
                continue
            seen.add(ep.name)
            try:
                obj = ep.load()
            except Exception as e:  # noqa: BLE001 - a plug-in's import error must not break compile()
                warnings.warn(f"symdiff: backend entry point {ep.name!r} ({ep.value}) failed to load: "
                              f"{type(e).__name__}: {e}", RuntimeWarning, stacklevel=3)
                continue
            if not isinstance(obj, Backend) or obj.name != ep.name:
                warnings.warn(f"symdiff: backend entry point {ep.name!r} ({ep.value}) is not a Backend named "
                              f"{ep.name!r}; ignored", RuntimeWarning, stacklevel=3)
                continue
            with _lock:
                _registry.setdefault(obj.name, obj)
        _entry_points_loaded = True


def get_backend(name: str) -> Backend:
    """The registered backend ``name``; an unknown name is a ValueError listing the registered ones."""
    if name not in _registry:
        _load_entry_points()
    try:
        return _registry[name]
    except KeyError:
        known = ", ".join(sorted(_registry)) or "none"
        hint = "" if len(_registry) > 1 else (f" (the others come from the {ENTRY_POINT_GROUP!r} entry points, "
                                              f"and none is installed: reinstall symdiff, e.g. `pip install -e .`)")
        raise ValueError(f"compile: unknown backend {name!r}; registered backends: {known}{hint}") from None


def list_backends() -> dict[str, str]:
    """Every registered backend: name -> one-line description."""
    _load_entry_points()
    return {name: b.description for name, b in sorted(_registry.items())}


__all__ = ["Backend", "register_backend", "unregister_backend", "get_backend", "list_backends", "ENTRY_POINT_GROUP"]
