"""``sd.export``: several functions of a model (the model, its gradients, Jacobians, Hessians) in one
self-contained C library, and ``sd.load_library`` to call such a library from Python again.

The work is the backend's (the llvm backend registers the ``export`` and ``load_library`` capabilities
in the registry, ``symdiff/backends.py``); this module only normalises the arguments.
"""
from __future__ import annotations

import re
from typing import Mapping, Optional, Sequence, Union

from .backends import get_backend
from .ir import Node

__all__ = ["export", "load_library"]

Outputs = Union[Node, Sequence[Node]]


def export(functions: Mapping[str, Outputs], name: str, outdir: str = ".", *, backend: str = "llvm",
           output_names: Optional[Mapping[str, Sequence[str]]] = None, cpu: Optional[str] = None,
           shared: bool = True):
    """Write ``lib<name>.so`` + ``<name>.h`` holding one C function ``<name>_<key>`` per entry of
    ``functions`` (``{"loss": [loss, *grads], "jac": sd.jacobian(y, x)}``), each with the C ABI of
    docs/cli.md: ``<fn>_run``, the work-size query ``<fn>_workspace_bytes``, the argument counts,
    names, shapes and dtypes as ``#define``s, functions and the ``<fn>_arg_table``. A function whose
    inputs have named dimensions (``sd.input("x", ("batch", 784))``) is compiled once for every size:
    its C functions take the sizes as ``int64_t`` arguments (``<fn>_run(batch, x, ...)``,
    ``<fn>_workspace_bytes(batch)``) and its header says which dimensions are symbolic. Returns the
    backend's export result (files, per-function programs)."""
    if not isinstance(functions, Mapping) or not functions:
        raise TypeError("export: functions must be a non-empty dict {function name: tensor or list of tensors}")
    specs = []
    for key, outs in functions.items():
        if not isinstance(key, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
            raise ValueError(f"export: function name {key!r} is not a C identifier")
        outs = [outs] if isinstance(outs, Node) else list(outs)
        if not outs or not all(isinstance(o, Node) for o in outs):
            raise TypeError(f"export: function {key!r} must be a tensor or a list of tensors")
        names = (output_names or {}).get(key) or [o.meta.get("name") and re.sub(r"\W", "_", o.meta["name"])
                                                  or f"out{i}" for i, o in enumerate(outs)]
        specs.append((key, outs, list(names)))
    spec = get_backend(backend)
    exporter = spec.extras.get("export")
    if exporter is None:
        raise ValueError(f"export: backend {backend!r} cannot export a C library (llvm can)")
    return exporter(specs, name, outdir, cpu=cpu, shared=shared)


def load_library(path: str, backend: str = "llvm"):
    """A library written by :func:`export` (or ``symdiff compile``), its functions callable like
    ``sd.compile``'s (``lib["loss"](x=..., W=...)``, or positionally in the header's order)."""
    loader = get_backend(backend).extras.get("load_library")
    if loader is None:
        raise ValueError(f"load_library: backend {backend!r} has no library loader (llvm has)")
    return loader(path)
