"""The calling convention of a compiled graph: its leaves, and the validation of call arguments.

Every backend binds keyword arguments through :class:`Signature`, so all of them give the same clear
errors for bad input: missing/unexpected names, wrong shape, non-numeric/complex/None values, float
labels, labels out of range. Float inputs of another float or integer dtype are cast to the leaf's
dtype (float64 into a float32 graph is rounded, as NumPy's ``astype``); non-contiguous and
negative-stride arrays are copied to contiguous ones. Caller arrays are never written.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np

from .ir import Node, leaves, toposort


@dataclass(frozen=True)
class LeafSpec:
    name: str
    shape: tuple
    dtype: str
    kind: str  # "input" | "param"
    label_depth: Optional[int] = None  # integer labels must lie in [0, label_depth)

    def describe(self) -> str:
        role = f"labels in [0, {self.label_depth})" if self.label_depth is not None else self.kind
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
    """Ordered leaves of a graph and argument binding for calls."""

    def __init__(self, outputs: Sequence[Node]) -> None:
        depths = _label_depths(outputs)
        self.leaves = [LeafSpec(n.name, n.shape, n.dtype, n.op, depths.get(n.name)) for n in leaves(outputs)]
        self.names = tuple(s.name for s in self.leaves)
        self._index = {s.name: i for i, s in enumerate(self.leaves)}

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
            raise TypeError("; ".join(parts) + f". The function takes: {self.describe()}")

    def bind(self, kwargs: dict) -> list[np.ndarray]:
        """Validate keyword arguments; returns C-contiguous arrays of the leaf dtypes, in leaf order."""
        self.check_names(kwargs)
        return [convert(spec, kwargs[spec.name]) for spec in self.leaves]


def convert(spec: LeafSpec, value) -> np.ndarray:
    """One argument -> a C-contiguous array of ``spec``'s dtype and shape, or a clear exception."""
    if value is None or isinstance(value, (str, bytes)):
        raise TypeError(f"input {spec.name!r}: expected a numeric array {spec.dtype}{list(spec.shape)}, "
                        f"got {type(value).__name__}")
    try:
        arr = value if isinstance(value, np.ndarray) else np.asarray(value)
    except (ValueError, TypeError) as e:  # ragged nested lists, objects numpy cannot convert
        raise TypeError(f"input {spec.name!r}: cannot convert {type(value).__name__} to a numeric array "
                        f"{spec.dtype}{list(spec.shape)}: {e}") from None
    kind = arr.dtype.kind
    if kind == "c":
        raise TypeError(f"input {spec.name!r}: complex arrays are not supported (got {arr.dtype})")
    if kind not in "iuf":
        raise TypeError(f"input {spec.name!r}: expected a numeric array of dtype {spec.dtype}, got dtype {arr.dtype}")
    if arr.shape != spec.shape:
        raise ValueError(f"input {spec.name!r}: expected shape {spec.shape}, got {arr.shape}")
    if spec.dtype.startswith("int"):
        if kind == "f":
            raise TypeError(f"input {spec.name!r}: labels must be integers ({spec.dtype}), got {arr.dtype}")
        if spec.label_depth is not None and arr.size:
            lo, hi = int(arr.min()), int(arr.max())
            if lo < 0 or hi >= spec.label_depth:
                bad = lo if lo < 0 else hi
                raise ValueError(f"input {spec.name!r}: label {bad} is out of range [0, {spec.label_depth})")
        if arr.size and arr.dtype != np.dtype(spec.dtype):  # a narrowing cast must not wrap silently
            info = np.iinfo(spec.dtype)
            lo, hi = int(arr.min()), int(arr.max())
            if lo < info.min or hi > info.max:
                raise ValueError(f"input {spec.name!r}: value {lo if lo < info.min else hi} does not fit in {spec.dtype}")
    return np.ascontiguousarray(arr, dtype=spec.dtype)
