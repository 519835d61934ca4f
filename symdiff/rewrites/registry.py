"""The rewrite registry: named rewrite functions, registered by phase and by the op(s) they match.

A rewrite is a function ``node -> replacement | None`` that receives a node whose inputs are already
rewritten. It is registered with the decorator (PyTensor's ``@register_stabilize @node_rewriter([log])``)::

    @rewrite("stabilize", ops=("log",))
    def log_of_softmax(n): ...

``ops=None`` matches every op (constant folding). The simplifier asks :func:`rewrites_for` for the
rewrites of one phase that match one op: a dict lookup, in registration order (the first rewrite that
returns a replacement wins, then the node is tried again).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable, Optional, Sequence

from ..ir import Node

RewriteFn = Callable[[Node], Optional[Node]]
PHASE_NAMES = ("canonicalize", "stabilize", "specialize")


@dataclass(frozen=True)
class Rewrite:
    """One named rewrite: ``fn(node)`` returns a replacement or None."""

    name: str
    phase: str
    ops: Optional[tuple]  # the ops it matches; None: every op
    fn: RewriteFn

    def __call__(self, node: Node) -> Optional[Node]:
        return self.fn(node)

    @property
    def doc(self) -> str:
        """The first line of the function's docstring (what the rewrite does)."""
        return (self.fn.__doc__ or "").strip().splitlines()[0] if self.fn.__doc__ else ""

    def matches(self, op: str) -> bool:
        return self.ops is None or op in self.ops


REWRITES: dict[str, Rewrite] = {}  # name -> rewrite, in registration order
_TABLES: dict[tuple, tuple] = {}  # (phase, op) -> matching rewrites (cleared on registration)


def rewrite(phase: str, ops: Optional[Sequence[str]] = None, name: Optional[str] = None) -> Callable[[RewriteFn], RewriteFn]:
    """Register the decorated function as rewrite ``name`` (default: the function's name) of ``phase``,
    tried on nodes whose op is in ``ops`` (every op when None). Returns the function unchanged."""
    if phase not in PHASE_NAMES:
        raise ValueError(f"unknown simplifier phase {phase!r} (phases: {', '.join(PHASE_NAMES)})")

    def register(fn: RewriteFn) -> RewriteFn:
        nm = name or fn.__name__
        if nm in REWRITES:
            raise ValueError(f"a rewrite named {nm!r} is already registered")
        REWRITES[nm] = Rewrite(nm, phase, None if ops is None else tuple(ops), fn)
        _TABLES.clear()
        return fn

    return register


def in_phase(phase: str) -> list[Rewrite]:
    """The rewrites of one phase, in registration order."""
    return [r for r in REWRITES.values() if r.phase == phase]


def dispatch(rewrites: Iterable[Rewrite]) -> Callable[[str], tuple]:
    """op -> the rewrites of ``rewrites`` that match it (in order), memoised per op."""
    rewrites = tuple(rewrites)
    table: dict[str, tuple] = {}

    def for_op(op: str) -> tuple:
        got = table.get(op)
        if got is None:
            got = table[op] = tuple(r for r in rewrites if r.matches(op))
        return got

    return for_op


def rewrites_for(phase: str, op: str) -> tuple:
    """The rewrites of ``phase`` that match ``op``, in registration order (cached)."""
    key = (phase, op)
    got = _TABLES.get(key)
    if got is None:
        got = _TABLES[key] = tuple(r for r in in_phase(phase) if r.matches(op))
    return got
