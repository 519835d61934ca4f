"""Symbolic dimensions: sizes that are names (``"batch"``) or integer polynomials of names.

A shape entry is an ``int`` or a :class:`Dim`. A Dim is a polynomial with integer coefficients in named
sizes, kept in one canonical form (sorted monomials), so two Dims are equal exactly when they are the same
polynomial: ``Dim("b") * 2 == Dim("b") + Dim("b")``. Every named size is an integer >= 1 at call time
(as in JAX's shape polymorphism); that makes ``d >= 1`` decidable at build time for a Dim with non-negative
coefficients, while an order comparison that depends on the runtime value (``d < 5``), ``int(d)`` and
``range(d)`` raise :class:`SymbolicDimError` naming the dimension. Equality is structural: a Dim never
equals an int, so ``batch == 1`` is False and broadcasting never assumes a named size is 1.

What the graph IR needs of it: arithmetic (``+ - *``, exact ``//`` and ``%`` by a factor, as reshape with
``-1`` and flattening use), structural ``==`` and hashing (node digests), :func:`prod` of a shape,
:func:`evaluate` at call time, and :func:`substitute` of the sizes bound by a call into shapes and attributes.
"""
from __future__ import annotations

import ast
import numbers
from typing import Any, Iterable, Mapping, Optional, Union

__all__ = ["Dim", "SymbolicDimError", "dim", "as_dim", "is_symbolic", "prod", "evaluate", "substitute",
           "free_names", "DimLike"]


class SymbolicDimError(ValueError):
    """A symbolic dimension was used where a fixed size is needed, or cannot be decided at build time."""


Monomial = tuple  # sorted tuple of names, repeated for powers: ("b", "b", "s") = b**2 * s


class Dim:
    """An integer polynomial in named sizes (each >= 1 at call time). Immutable and hashable; build one
    with :func:`dim` (``sd.dim("batch")``) or by arithmetic on others. A constant polynomial never appears:
    the arithmetic returns a plain ``int`` then."""

    __slots__ = ("terms", "_hash")

    def __init__(self, terms: Iterable[tuple[Monomial, int]]) -> None:
        merged: dict = {}
        for mono, c in terms:
            mono = tuple(sorted(mono))
            merged[mono] = merged.get(mono, 0) + int(c)
        self.terms = tuple(sorted((m, c) for m, c in merged.items() if c != 0))
        self._hash = hash(("Dim", self.terms))

    # -- construction ------------------------------------------------------------------------------
    @staticmethod
    def _make(terms: Iterable[tuple[Monomial, int]]) -> "DimLike":
        d = Dim(terms)
        if all(not m for m, _ in d.terms):
            return sum(c for _, c in d.terms)
        return d

    @property
    def names(self) -> frozenset:
        """The named sizes this Dim depends on."""
        return frozenset(n for m, _ in self.terms for n in m)

    @property
    def is_name(self) -> bool:
        """A single named size (``batch``), the kind a call can bind from an argument's shape."""
        return len(self.terms) == 1 and len(self.terms[0][0]) == 1 and self.terms[0][1] == 1

    def lower_bound(self) -> Optional[int]:
        """The least value over named sizes >= 1 when every coefficient is >= 0 (the value at all-ones), else None."""
        if any(c < 0 for m, c in self.terms if m):
            return None
        return sum(c for _, c in self.terms)

    # -- arithmetic --------------------------------------------------------------------------------
    def __add__(self, o: Any) -> "DimLike":
        o = _terms_of(o)
        return NotImplemented if o is None else Dim._make(self.terms + o)

    __radd__ = __add__

    def __neg__(self) -> "DimLike":
        return Dim._make((m, -c) for m, c in self.terms)

    def __sub__(self, o: Any) -> "DimLike":
        o = _terms_of(o)
        return NotImplemented if o is None else Dim._make(self.terms + tuple((m, -c) for m, c in o))

    def __rsub__(self, o: Any) -> "DimLike":
        return (-self) + o

    def __mul__(self, o: Any) -> "DimLike":
        o = _terms_of(o)
        if o is None:
            return NotImplemented
        return Dim._make((m1 + m2, c1 * c2) for m1, c1 in self.terms for m2, c2 in o)

    __rmul__ = __mul__

    def __floordiv__(self, o: Any) -> "DimLike":
        q = _exact_quotient(self, o)
        if q is None:
            raise SymbolicDimError(f"{self} is not a multiple of {o}: the quotient depends on the sizes at call time")
        return q

    def __rfloordiv__(self, o: Any) -> "DimLike":
        q = _exact_quotient(o, self)
        if q is None:
            raise SymbolicDimError(f"{o} // {self} depends on the sizes at call time")
        return q

    def __mod__(self, o: Any) -> int:
        if _exact_quotient(self, o) is None:
            raise SymbolicDimError(f"{self} % {o} depends on the sizes at call time")
        return 0

    def __rmod__(self, o: Any) -> int:
        if _exact_quotient(o, self) is None:
            raise SymbolicDimError(f"{o} % {self} depends on the sizes at call time")
        return 0

    # -- comparison --------------------------------------------------------------------------------
    def __eq__(self, o: object) -> bool:
        """Structural: the same polynomial. A Dim never equals an int (``batch == 1`` is False: a named
        size is never *assumed* to be 1, so broadcasting treats it as a full axis)."""
        if isinstance(o, Dim):
            return self.terms == o.terms
        if isinstance(o, numbers.Integral):
            return False
        return NotImplemented

    def __ne__(self, o: object) -> bool:
        r = self.__eq__(o)
        return r if r is NotImplemented else not r

    def __hash__(self) -> int:
        return self._hash

    def _cmp(self, o: Any, op: str) -> bool:
        if _terms_of(o) is None:
            return NotImplemented
        # a > b is certain when min(a - b) >= 1, impossible when min(b - a) >= 0 (integers, names >= 1)
        big, small = (self, o) if op in (">", ">=") else (o, self)
        strict = op in (">", "<")
        if _least(big - small) >= (1 if strict else 0):
            return True
        if _least(small - big) >= (0 if strict else 1):
            return False
        raise SymbolicDimError(f"whether {self} {op} {o} depends on the sizes at call time")

    def __lt__(self, o: Any) -> bool: return self._cmp(o, "<")
    def __le__(self, o: Any) -> bool: return self._cmp(o, "<=")
    def __gt__(self, o: Any) -> bool: return self._cmp(o, ">")
    def __ge__(self, o: Any) -> bool: return self._cmp(o, ">=")

    def __bool__(self) -> bool:
        return True  # a size polynomial with a positive lower bound (or undecidable: treated as non-empty)

    # -- fixed sizes are needed -----------------------------------------------------------------------
    def __index__(self) -> int:
        raise SymbolicDimError(f"the size {self} is symbolic (named dimension{'s' if len(self.names) > 1 else ''} "
                               f"{', '.join(sorted(self.names))}): this needs a fixed size")

    __int__ = __index__

    # -- display -------------------------------------------------------------------------------------
    def __repr__(self) -> str:
        parts = []
        for mono, c in sorted(self.terms, key=lambda t: (-len(t[0]), t[0])):
            names = "*".join(_power_str(mono))
            if not mono:
                parts.append(str(c))
            elif c == 1:
                parts.append(names)
            elif c == -1:
                parts.append("-" + names)
            else:
                parts.append(f"{c}*{names}")
        return " + ".join(parts).replace("+ -", "- ")

    __str__ = __repr__

    def __reduce__(self):
        return (Dim, (self.terms,))


DimLike = Union[int, Dim]


def _power_str(mono: Monomial) -> list[str]:
    out, seen = [], []
    for n in mono:
        if n not in seen:
            seen.append(n)
            k = mono.count(n)
            out.append(n if k == 1 else f"{n}**{k}")
    return out


def _least(v: DimLike) -> float:
    """A lower bound of ``v`` over named sizes >= 1 (-inf when a coefficient is negative)."""
    if not isinstance(v, Dim):
        return v
    lb = v.lower_bound()
    return float("-inf") if lb is None else lb


def _terms_of(v: Any) -> Optional[tuple]:
    if isinstance(v, Dim):
        return v.terms
    if isinstance(v, numbers.Integral) and not isinstance(v, bool):
        return (((), int(v)),)
    return None


def _exact_quotient(a: Any, b: Any) -> Optional[DimLike]:
    """a / b when b divides a as polynomials by a monomial (or an int), else None."""
    ta, tb = _terms_of(a), _terms_of(b)
    if ta is None or tb is None or len(tb) != 1 or tb[0][1] == 0:
        return None
    (mb, cb), = tb
    out = []
    for ma, ca in ta:
        rest = list(ma)
        for n in mb:
            if n not in rest:
                return None
            rest.remove(n)
        if ca % cb:
            return None
        out.append((tuple(rest), ca // cb))
    return Dim._make(out)


# -- parsing and normalisation --------------------------------------------------------------------------

_BINOPS = {ast.Add: lambda a, b: a + b, ast.Sub: lambda a, b: a - b, ast.Mult: lambda a, b: a * b}


def dim(spec: Union[str, int, Dim]) -> DimLike:
    """A symbolic size: ``dim("batch")``, or an expression of names and integers (``dim("2*n + 1")``)."""
    if isinstance(spec, Dim) or (isinstance(spec, numbers.Integral) and not isinstance(spec, bool)):
        return spec if isinstance(spec, Dim) else int(spec)
    if not isinstance(spec, str):
        raise TypeError(f"a dimension is an int, a name or a symdiff Dim, got {spec!r}")
    try:
        tree = ast.parse(spec.strip(), mode="eval").body
    except SyntaxError:
        raise ValueError(f"cannot read the dimension {spec!r}: use a name (a Python identifier) or an expression "
                         f"of names and integers with + - *") from None
    return _eval_ast(tree, spec)


def _eval_ast(node: ast.AST, spec: str) -> DimLike:
    if isinstance(node, ast.Name):
        return Dim(((((node.id,), 1)),))
    if isinstance(node, ast.Constant) and isinstance(node.value, int) and not isinstance(node.value, bool):
        return node.value
    if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
        return _BINOPS[type(node.op)](_eval_ast(node.left, spec), _eval_ast(node.right, spec))
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Pow) and isinstance(node.right, ast.Constant):
        base, k = _eval_ast(node.left, spec), node.right.value
        if isinstance(k, int) and k >= 1:
            out = base
            for _ in range(k - 1):
                out = out * base
            return out
    raise ValueError(f"cannot read the dimension {spec!r}: only names, integers, + - * and integer powers")


def as_dim(v: Any) -> DimLike:
    """A shape entry in canonical form: an int, or a non-constant Dim (a name string is parsed)."""
    if isinstance(v, Dim):
        return v
    if isinstance(v, str):
        return dim(v)
    return int(v)


def is_symbolic(shape: Iterable[Any]) -> bool:
    """True when some entry of ``shape`` is a Dim."""
    return any(isinstance(s, Dim) for s in shape)


def free_names(values: Iterable[Any]) -> frozenset:
    """Every named size in shapes or nested attribute values."""
    out: set = set()
    for v in values:
        if isinstance(v, Dim):
            out |= v.names
        elif isinstance(v, (tuple, list)):
            out |= free_names(v)
    return frozenset(out)


def prod(shape: Iterable[DimLike]) -> DimLike:
    """The number of elements of ``shape`` (an int, or a Dim when a size is symbolic)."""
    out: DimLike = 1
    for s in shape:
        out = out * s
    return out


def evaluate(v: DimLike, sizes: Mapping[str, int]) -> int:
    """The value of a size for the named sizes ``sizes`` (a missing name is a SymbolicDimError)."""
    if not isinstance(v, Dim):
        return int(v)
    total = 0
    for mono, c in v.terms:
        term = c
        for n in mono:
            if n not in sizes:
                raise SymbolicDimError(f"the size {v} needs {n!r}, which no input's shape gives")
            term *= sizes[n]
        total += term
    return total


def substitute(v: Any, sizes: Mapping[str, int]) -> Any:
    """``v`` (a size, a shape, or nested tuples/lists/dicts of attribute values) with every Dim evaluated."""
    if isinstance(v, Dim):
        return evaluate(v, sizes)
    if isinstance(v, tuple):
        return tuple(substitute(x, sizes) for x in v)
    if isinstance(v, list):
        return [substitute(x, sizes) for x in v]
    if isinstance(v, dict):
        return {k: substitute(x, sizes) for k, x in v.items()}
    return v


def has_dims(v: Any) -> bool:
    """True when ``v`` (a value, or nested tuples/lists/dicts) holds a Dim."""
    if isinstance(v, Dim):
        return True
    if isinstance(v, (tuple, list)):
        return any(has_dims(x) for x in v)
    if isinstance(v, dict):
        return any(has_dims(x) for x in v.values())
    return False
