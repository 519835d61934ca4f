"""Symbolic dimensions at call time: binding named sizes from the arguments, the checks that could not be
made when the graph was built, and specialising a graph to the sizes of one call.

- :func:`bind_sizes`: every leaf axis whose size is a single name (``("batch", 784)``) binds that name from
  the argument's shape; a name bound twice to different sizes is an error naming both inputs and sizes.
- :func:`size_checks`: what broadcasting decided at build time on trust. A named size met a fixed size k
  (``(batch, 5) + (5, 5)``): the result has k rows, so the call must have ``batch == k``.
- :func:`specialize`: the graph with every size replaced by its value (leaves of fixed shape, attributes
  evaluated): what a backend without symbolic sizes compiles per call shape.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

from . import dims as _dims
from .ir import Node, apply, rebuild, toposort
from .optable import OPS

BROADCASTING_OPS = ("broadcast_to", "eq")  # besides the elementwise ops


class SymbolicUnsupported(NotImplementedError):
    """A backend that compiles runtime sizes cannot compile this graph so (a kernel whose plan needs a size it
    only learns at call time): ``sd.compile`` then specialises the graph per call's sizes instead."""


@dataclass(frozen=True)
class SizeCheck:
    """At call time ``left`` must equal ``right`` (a size decided on trust when ``where`` was built)."""
    left: _dims.DimLike
    right: _dims.DimLike
    where: str  # "add of 'x' (float32[batch, 5]) and <const> (float32[5, 5])"

    def fails(self, sizes: Mapping[str, int]) -> bool:
        return _dims.evaluate(self.left, sizes) != _dims.evaluate(self.right, sizes)

    def message(self, sizes: Mapping[str, int]) -> str:
        lv, rv = _dims.evaluate(self.left, sizes), _dims.evaluate(self.right, sizes)
        names = ", ".join(f"{n}={sizes[n]}" for n in sorted(_dims.free_names([self.left, self.right])))
        return (f"the {self.where} broadcasts the size {self.left} against {self.right}, so they must be equal; "
                f"this call has {self.left} = {lv} and {self.right} = {rv} ({names})")


def _describe(n: Node) -> str:
    nm = f"{n.name!r}" if n.name else f"<{n.op}>"
    return f"{nm} ({n.dtype}{list(n.shape)})"


def size_checks(outputs: Sequence[Node]) -> list[SizeCheck]:
    """The call-time checks of a graph: each broadcast of a symbolic size against another size."""
    checks: dict = {}
    for n in toposort(outputs):
        if not (OPS[n.op].elementwise or n.op in BROADCASTING_OPS) or not n.inputs:
            continue
        for x in n.inputs:
            for k, d in enumerate(x.shape):
                out = n.shape[len(n.shape) - x.ndim + k]
                if isinstance(d, _dims.Dim) and d != out:
                    key = (d, out)
                    if key not in checks:
                        where = f"{n.op} of " + " and ".join(_describe(i) for i in n.inputs)
                        checks[key] = SizeCheck(d, out, where)
    return list(checks.values())


def graph_names(outputs: Sequence[Node]) -> frozenset:
    """Every named size a graph uses (in shapes and attributes)."""
    names: set = set()
    for n in toposort(outputs):
        names |= _dims.free_names(n.shape) | _dims.free_names(n.attrs.values())
    return frozenset(names)


def is_symbolic_graph(outputs: Sequence[Node]) -> bool:
    """True when some node of the graph has a symbolic size."""
    return bool(graph_names(outputs))


def bind_sizes(leaves: Sequence, shapes: Sequence[tuple], prefix: str = "") -> dict[str, int]:
    """Named sizes from the argument shapes: ``leaves`` are specs with ``name`` and ``shape``, ``shapes[i]``
    the i-th argument's shape. Errors name the inputs, the axes and the sizes."""
    sizes: dict[str, int] = {}
    first: dict[str, tuple] = {}
    for spec, shape in zip(leaves, shapes):
        if len(shape) != len(spec.shape):
            continue  # the shape check of signature.convert reports it, with the expected shape
        for axis, d in enumerate(spec.shape):
            if not (isinstance(d, _dims.Dim) and d.is_name):
                continue
            (name,) = d.names
            v = int(shape[axis])
            if name in first and sizes[name] != v:
                other, oaxis = first[name]
                raise ValueError(f"{prefix}input {spec.name!r}: dimension {name!r} is {v} here (axis {axis} of "
                                 f"shape {tuple(shape)}) but {sizes[name]} in input {other!r} (axis {oaxis}); "
                                 f"inputs that share a dimension name must agree on its size")
            if v < 1:
                raise ValueError(f"{prefix}input {spec.name!r}: dimension {name!r} (axis {axis}) is {v}; a named "
                                 f"size must be at least 1")
            sizes.setdefault(name, v)
            first.setdefault(name, (spec.name, axis))
    return sizes


def unbound_names(leaves: Sequence, outputs: Sequence[Node]) -> list[str]:
    """Names the graph uses that no leaf axis binds (``("2*n",)`` alone, or ``sd.dim("k")`` in an attribute)."""
    bound = {next(iter(d.names)) for spec in leaves for d in spec.shape if isinstance(d, _dims.Dim) and d.is_name}
    return sorted(graph_names(outputs) - bound)


def specialize(outputs: Sequence[Node], sizes: Mapping[str, int]) -> list[Node]:
    """The graph with every symbolic size replaced by its value in ``sizes`` (leaves keep names and meta)."""
    def rule(n: Node, ins: list):
        if n.is_leaf:
            if not _dims.is_symbolic(n.shape):
                return None
            return Node(n.op, (), n.attrs, _dims.substitute(n.shape, sizes), n.dtype, n.meta)
        if _dims.has_dims(n.attrs):
            return apply(n.op, ins, **_dims.substitute(n.attrs, sizes))
        return None
    return rebuild(list(outputs), rule)


__all__ = ["SizeCheck", "size_checks", "graph_names", "is_symbolic_graph", "bind_sizes", "unbound_names",
           "specialize"]
