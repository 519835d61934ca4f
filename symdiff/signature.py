"""The calling convention of a compiled graph: its leaves, and the validation of call arguments.

This module is the single source of every call-argument error message. The numpy and CUDA backends
bind keyword arguments through :meth:`Signature.bind`; the C runtime's ``Kernel`` (llvm backend)
passes exact arrays straight through and hands every other call to :meth:`Signature.bind_call`,
so all of them give the same clear errors for bad input: missing/unexpected names, wrong shape,
non-numeric/complex/None values, float labels, labels out of range. Float inputs of another float
or integer dtype are cast to the leaf's dtype (float64 into a float32 graph is rounded, as NumPy's
``astype``); integer inputs of another integer dtype are range-checked, then cast; non-contiguous,
unaligned, byte-swapped and negative-stride arrays are copied to contiguous ones. Caller arrays
are never written.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Iterable, Optional, Sequence

import numpy as np

from . import dims as _dims
from .dim_binding import bind_sizes, size_checks, unbound_names
from .ir import Node, leaves, toposort

# leaf dtype kind -> array dtype kinds accepted for it (bool data is not a number for float/int leaves)
ACCEPTED_KINDS = {"f": "iuf", "i": "iu", "u": "iu", "b": "b"}


@dataclass(frozen=True)
class LeafSpec:
    name: str
    shape: tuple
    dtype: str
    kind: str  # "input" | "param"
    label_depth: Optional[int] = None  # integer labels must lie in [label_low, label_depth)
    label_low: int = 0

    def describe(self) -> str:
        role = (f"labels in [{self.label_low}, {self.label_depth})" if self.label_depth is not None
                else self.kind)
        return f"{self.name}: {self.dtype}{list(self.shape)} ({role})"


def _label_depths(outputs: Sequence[Node]) -> dict[str, int]:
    depths: dict[str, int] = {}
    for n in toposort(outputs):
        if n.op in ("pick", "one_hot"):
            lab = n.inputs[1] if n.op == "pick" else n.inputs[0]
            depth = n.inputs[0].shape[-1] if n.op == "pick" else n.attrs["depth"]
            while lab.op == "reshape":
                lab = lab.inputs[0]
            if not lab.is_leaf:
                raise ValueError(f"{n.op}: labels must come from an sd.input leaf, got a {lab.op} node")
            depths[lab.name] = min(depth, depths.get(lab.name, depth))
    return depths


class Signature:
    """Ordered leaves of a graph and argument binding for calls.

    ``name``, when given, prefixes every message (``"name(): input 'x': ..."``)."""

    def __init__(self, outputs: Sequence[Node], name: Optional[str] = None,
                 order: Optional[Sequence[Node]] = None) -> None:
        """``order``: the explicit argument order (``sd.compile(..., inputs=[...])``): leaves, each named
        once, covering every leaf of ``outputs`` (extra ones keep a slot the graph does not read); it
        enables positional calls. Without it the order is the graph's (topological) leaf order and only
        keyword calls are accepted."""
        depths = _label_depths(outputs)
        graph_leaves = leaves(outputs)
        if order is not None:
            graph_leaves = _ordered(graph_leaves, order)
        self._init([LeafSpec(n.name, n.shape, n.dtype, n.op, depths.get(n.name)) for n in graph_leaves], name)
        self.positional = order is not None
        unbound = unbound_names(self.leaves, outputs)
        if unbound:
            raise ValueError(f"compile: the graph uses the dimension name(s) {', '.join(map(repr, unbound))}, but no "
                             f"input has an axis of exactly that name to take its size from (inputs: {self.describe()})")
        self.checks = size_checks(outputs) if self.symbolic else []

    def _init(self, specs: list[LeafSpec], name: Optional[str]) -> None:
        self.leaves = specs
        self.names = tuple(s.name for s in self.leaves)
        self._index = {s.name: i for i, s in enumerate(self.leaves)}
        self.prefix = f"{name}(): " if name else ""
        self.positional = True  # runtime signatures (from_specs) are positional in spec order
        self.symbolic = any(_dims.is_symbolic(s.shape) for s in specs)  # some size is bound by each call
        self.checks = []

    @classmethod
    def from_specs(cls, specs: Iterable[Any], name: Optional[str] = None) -> "Signature":
        """A signature from runtime input specs ``(name, shape, dtype, label_range or None)`` as the
        C ``Kernel`` normalises them (``label_range`` = ``(lo, hi)``: values in [lo, hi))."""
        self = cls.__new__(cls)
        leaf_specs = []
        for s in specs:
            lo, hi = s[3] if len(s) > 3 and s[3] is not None else (0, None)
            leaf_specs.append(LeafSpec(s[0], tuple(s[1]), np.dtype(s[2]).name, "input", hi, lo))
        self._init(leaf_specs, name)
        return self

    def describe(self) -> str:
        return "; ".join(s.describe() for s in self.leaves) or "(no inputs)"

    def check_names(self, kwargs: dict) -> None:
        missing = [n for n in self.names if n not in kwargs]
        extra = [n for n in kwargs if n not in self._index]
        if missing or extra:
            parts = []
            if missing:
                parts.append("missing input(s) " + ", ".join(repr(m) for m in missing))
            if extra:
                parts.append("unexpected input(s) " + ", ".join(repr(e) for e in extra))
            raise TypeError(self.prefix + "; ".join(parts) + f". The function takes: {self.describe()}")

    def bind(self, kwargs: dict) -> list[np.ndarray]:
        """Validate keyword arguments; returns C-contiguous arrays of the leaf dtypes, in leaf order."""
        return self.bind_sized(kwargs)[0]

    def call_sizes(self, kwargs: dict) -> Optional[dict[str, int]]:
        """The named sizes keyword arguments bind, with the call-time size checks made; None when some leaf
        cannot bind its sizes (a wrong rank: :meth:`bind_sized` then gives the full error)."""
        self.check_names(kwargs)
        shapes = [_shape_of(kwargs[spec.name]) for spec in self.leaves]
        if any(len(sh) != len(spec.shape) for sh, spec in zip(shapes, self.leaves)):
            return None
        sizes = bind_sizes(self.leaves, shapes, self.prefix)
        for check in self.checks:
            if check.fails(sizes):
                raise ValueError(self.prefix + check.message(sizes))
        return sizes

    def bind_sized(self, kwargs: dict) -> tuple[list[np.ndarray], dict[str, int]]:
        """:meth:`bind`, and the named sizes the call binds (``{}`` for a graph of fixed shapes)."""
        self.check_names(kwargs)
        if not self.symbolic:
            return [convert(spec, kwargs[spec.name], self.prefix) for spec in self.leaves], {}
        values = [kwargs[spec.name] for spec in self.leaves]
        sizes = bind_sizes(self.leaves, [_shape_of(v) for v in values], self.prefix)
        arrays = [convert(_resolved(spec, sizes), v, self.prefix) for spec, v in zip(self.leaves, values)]
        for check in self.checks:
            if check.fails(sizes):
                raise ValueError(self.prefix + check.message(sizes))
        return arrays, sizes

    def convert_input(self, i: int, value) -> np.ndarray:
        """Argument ``value`` for leaf ``i`` -> its array (the C runtime's path for one non-exact argument)."""
        return convert(self.leaves[i], value, self.prefix)

    def positional_error(self, what: str, nargs: int) -> TypeError:
        """The error for a positional call of a function compiled without an argument order."""
        kw = ", ".join(f"{n}=..." for n in self.names)
        return TypeError(f"{what} takes keyword arguments named after its inputs ({kw}); {nargs} positional "
                         f"argument{'' if nargs == 1 else 's'} given. Call it as f({kw}), or compile with "
                         f"sd.compile(outputs, inputs=[...]) to fix a positional order. input_names: {self.names!r}")

    def bind_call(self, args: tuple, kwargs: dict) -> list[np.ndarray]:
        """Positional and/or keyword arguments (inputs in leaf order) -> :meth:`bind`'s arrays."""
        return self.bind_call_sized(args, kwargs)[0]

    def bind_call_sized(self, args: tuple, kwargs: dict) -> tuple[list[np.ndarray], dict[str, int]]:
        """:meth:`bind_call`, and the named sizes the call binds."""
        n, got = len(self.leaves), len(args)
        if got > n or (got != n and not kwargs):
            raise TypeError(f"{self.prefix}takes {n} input{'' if n == 1 else 's'} {self.names!r} "
                            f"but {got} positional {'was' if got == 1 else 'were'} given")
        both = [name for name in self.names[:got] if name in kwargs]
        if both:
            raise TypeError(f"{self.prefix}got multiple values for input(s) "
                            + ", ".join(repr(b) for b in both))
        return self.bind_sized({**dict(zip(self.names, args)), **kwargs})


def _shape_of(value) -> tuple:
    """An argument's shape without converting it (() when it has none: convert reports the error)."""
    shape = getattr(value, "shape", None)
    if isinstance(shape, tuple):
        return shape
    try:
        return np.shape(value)
    except (ValueError, TypeError):
        return ()


def _resolved(spec: LeafSpec, sizes: dict) -> LeafSpec:
    """``spec`` with its sizes for this call (kept symbolic when a name is unbound: the shape error shows it)."""
    if not _dims.is_symbolic(spec.shape) or not _dims.free_names(spec.shape) <= sizes.keys():
        return spec
    return replace(spec, shape=_dims.substitute(spec.shape, sizes))


def _ordered(graph_leaves: list[Node], order: Sequence[Node]) -> list[Node]:
    """``order`` checked against the graph's leaves (see :class:`Signature`)."""
    if isinstance(order, Node):
        order = [order]
    out: list[Node] = []
    seen: dict[str, Node] = {}
    for k, n in enumerate(order):
        if not isinstance(n, Node) or not n.is_leaf:
            what = f"a {n.op} node" if isinstance(n, Node) else type(n).__name__
            raise TypeError(f"compile: inputs[{k}] must be an sd.input or sd.param leaf, got {what}")
        if n.name in seen:
            raise ValueError(f"compile: inputs lists {n.name!r} twice (inputs[{k}])")
        seen[n.name] = n
        out.append(n)
    by_name = {g.name: g for g in graph_leaves}
    for nm, n in seen.items():
        g = by_name.get(nm)
        if g is not None and g is not n:
            raise ValueError(f"compile: inputs names {nm!r} ({n.op} {n.dtype}{list(n.shape)}) but the outputs read "
                             f"a different leaf of that name ({g.op} {g.dtype}{list(g.shape)})")
    missing = [g for g in graph_leaves if g.name not in seen]
    if missing:
        raise ValueError("compile: inputs must list every leaf the outputs read; missing "
                         + ", ".join(f"{g.name!r} ({g.op} {g.dtype}{list(g.shape)})" for g in missing))
    return out


def _range_error(arr: np.ndarray, lo: int, hi: int, what: str) -> Optional[str]:
    """The message for the first value of ``arr`` outside [lo, hi], or None if all fit."""
    if not arr.size:
        return None
    amin, amax = int(arr.min()), int(arr.max())
    if amin >= lo and amax <= hi:
        return None
    bad = amin if amin < lo else amax
    return what.format(bad=bad)


def convert(spec: LeafSpec, value, prefix: str = "") -> np.ndarray:
    """One argument -> an aligned C-contiguous array of ``spec``'s dtype and shape, or a clear exception."""
    if value is None or isinstance(value, (str, bytes)):
        raise TypeError(f"{prefix}input {spec.name!r}: expected a numeric array {spec.dtype}{list(spec.shape)}, "
                        f"got {type(value).__name__}")
    try:
        arr = value if isinstance(value, np.ndarray) else np.asarray(value)
    except (ValueError, TypeError) as e:  # ragged nested lists, objects numpy cannot convert
        raise TypeError(f"{prefix}input {spec.name!r}: cannot convert {type(value).__name__} to a numeric array "
                        f"{spec.dtype}{list(spec.shape)}: {e}") from None
    kind, want = arr.dtype.kind, _dtype(spec.dtype)
    if kind not in ACCEPTED_KINDS[want.kind] or arr.shape != spec.shape:
        _raise_kind_or_shape(spec, arr, prefix)
    if want.kind in "iu":
        _check_int_values(spec, arr, want, prefix)
    if arr.dtype == want:  # (a byte-swapped dtype is not equal: converted below)
        flags = arr.flags
        return arr if flags.c_contiguous and flags.aligned else arr.copy(order="C")
    return arr.astype(want, order="C")


_DTYPES: dict = {}


def _dtype(name: str) -> np.dtype:
    dt = _DTYPES.get(name)
    if dt is None:
        dt = _DTYPES[name] = np.dtype(name)
    return dt


def _raise_kind_or_shape(spec: LeafSpec, arr: np.ndarray, prefix: str) -> None:
    where, kind, want = f"{prefix}input {spec.name!r}", arr.dtype.kind, _dtype(spec.dtype)
    if kind == "c":
        raise TypeError(f"{where}: complex arrays are not supported (got {arr.dtype}, expected {spec.dtype})")
    if kind not in ACCEPTED_KINDS[want.kind]:
        if want.kind in "iu" and kind == "f":
            raise TypeError(f"{where}: labels must be integers ({spec.dtype}), got {arr.dtype}")
        if want.kind == "b":
            raise TypeError(f"{where}: expected a bool array (a mask) of shape {spec.shape}, got dtype {arr.dtype}")
        raise TypeError(f"{where}: expected a numeric array of dtype {spec.dtype}, got dtype {arr.dtype}")
    raise ValueError(f"{where}: expected shape {spec.shape}, got {arr.shape}")


def _check_int_values(spec: LeafSpec, arr: np.ndarray, want: np.dtype, prefix: str) -> None:
    """Labels in [label_low, label_depth); any value representable in ``want`` (no silent wrap)."""
    where = f"{prefix}input {spec.name!r}"
    msg = None
    if spec.label_depth is not None:
        msg = _range_error(arr, spec.label_low, spec.label_depth - 1,
                           f"{where}: label {{bad}} is out of range [{spec.label_low}, {spec.label_depth})")
    if msg is None and arr.dtype != want:  # a narrowing cast must not wrap silently
        info = np.iinfo(want)
        msg = _range_error(arr, int(info.min), int(info.max), f"{where}: value {{bad}} does not fit in {spec.dtype}")
    if msg is not None:
        raise ValueError(msg)
