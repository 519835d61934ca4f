"""Dtypes and promotion rules (NumPy 2 semantics, restricted to the dtypes symdiff supports).

- Dtypes: ``bool`` (1 byte in memory), ``int32``, ``int64``, ``float32``, ``float64``. A node's ``dtype`` is a
  :class:`DType`: a ``str`` (hashes and compares like its name, so dtype names stay dict keys) that also
  compares equal to ``np.dtype(...)`` and NumPy scalar types (``x.dtype == np.float64``) and has NumPy's
  ``.name .kind .itemsize .type .char``.
- Promotion (:func:`promote`) is NumPy 2's ``np.result_type`` on arrays: ``int32 + int64 -> int64``,
  ``int32/int64 + float32 -> float64``, ``bool + int -> int``, ``float32 + float64 -> float64``.
- Python scalars are "weak" (NEP 50, :func:`result_type`): ``x32 * 2.0`` stays ``float32``, ``i32 + 1`` stays
  ``int32`` (an int that does not fit is an ``OverflowError``, as NumPy), ``i32 + 0.5`` is ``float64``.
- Each elementwise op has a dtype *rule* (:data:`RULES`, :func:`signature`): ``float`` ops (the default:
  exp, sin, divide, power, ...) compute in floats and promote int operands to ``float64`` as NumPy does;
  ``numeric`` ops (add, multiply, maximum, floor_divide, ...) keep integer dtypes; both reject ``bool``
  operands with a TypeError naming the op and the input. ``compare`` ops compute in the promoted dtype and
  return ``bool``; ``logical`` ops read their operands as truth values (``!= 0``); ``where`` takes a
  condition and promotes its two value operands.
"""
from __future__ import annotations

from typing import Callable, Optional, Sequence

import numpy as np

FLOAT_DTYPES = ("float32", "float64")
INT_DTYPES = ("int32", "int64")
BOOL_DTYPES = ("bool",)
ALL_DTYPES = FLOAT_DTYPES + INT_DTYPES + BOOL_DTYPES

_NP = {name: np.dtype(name) for name in ALL_DTYPES}


class DType(str):
    """A dtype name that behaves like a ``numpy.dtype`` too (see the module docstring)."""

    __slots__ = ()
    __hash__ = str.__hash__

    def __eq__(self, other: object) -> bool:
        if isinstance(other, str):  # a canonical name compares as a string; "f8", "double", ... as NumPy does
            if str.__eq__(self, other) or other in DTYPES:
                return str.__eq__(self, other)
        if other is None:
            return False
        try:
            return _NP[str(self)] == np.dtype(other)
        except (TypeError, ValueError):
            return NotImplemented

    def __ne__(self, other: object) -> bool:
        eq = self.__eq__(other)
        return eq if eq is NotImplemented else not eq

    @property
    def numpy(self) -> np.dtype:
        """The ``numpy.dtype``."""
        return _NP[str(self)]

    @property
    def name(self) -> str:
        return str(self)

    @property
    def kind(self) -> str:
        return _NP[str(self)].kind

    @property
    def itemsize(self) -> int:
        return _NP[str(self)].itemsize

    @property
    def type(self) -> type:
        return _NP[str(self)].type

    @property
    def char(self) -> str:
        return _NP[str(self)].char


DTYPES: dict = {name: DType(name) for name in ALL_DTYPES}  # name -> the one DType instance


def as_dtype(dtype) -> DType:
    """The DType of an already-valid dtype name (cheap: a dict lookup); else :func:`normalize`."""
    if type(dtype) is DType:
        return dtype
    d = DTYPES.get(dtype) if isinstance(dtype, str) else None
    return d if d is not None else DTYPES[normalize(dtype)]


def normalize(dtype) -> DType:
    """Canonical dtype (a :class:`DType`); raises TypeError for anything symdiff does not support."""
    if isinstance(dtype, str) and dtype in DTYPES:
        return DTYPES[dtype]
    try:
        name = np.dtype(dtype).name
    except TypeError as e:
        raise TypeError(f"unknown dtype {dtype!r}; supported: {', '.join(ALL_DTYPES)}") from e
    if name not in DTYPES:
        raise TypeError(f"unsupported dtype {dtype!r}; supported: {', '.join(ALL_DTYPES)}")
    return DTYPES[name]


def is_float(dtype: str) -> bool:
    return dtype in FLOAT_DTYPES


def is_int(dtype: str) -> bool:
    return dtype in INT_DTYPES


def is_bool(dtype: str) -> bool:
    return dtype == "bool"


# -- promotion ------------------------------------------------------------------------------------------------

_RANK = {"bool": 0, "int32": 1, "int64": 2, "float32": 3, "float64": 4}
_KIND_RANK = {"b": 0, "i": 1, "f": 2}
_KIND_OF = {"bool": "b", "int32": "i", "int64": "i", "float32": "f", "float64": "f"}
DEFAULT_OF_KIND = {"b": "bool", "i": "int64", "f": "float64"}  # NumPy's default dtype of a Python scalar kind


def promote2(a: str, b: str) -> DType:
    """np.result_type of arrays of dtypes a and b (NumPy 2): the wider one; int + float32 -> float64."""
    if a == b:
        return DTYPES[a]
    hi, lo = (a, b) if _RANK[a] >= _RANK[b] else (b, a)
    if hi == "float32" and lo in INT_DTYPES:
        return DTYPES["float64"]
    return DTYPES[hi]


def promote(*dtypes: str) -> DType:
    """Result dtype of NumPy 2 array promotion over these dtypes (float32 when none are given)."""
    if not dtypes:
        return DTYPES["float32"]
    out = dtypes[0]
    for d in dtypes[1:]:
        out = promote2(out, d)
    return DTYPES[out]


def scalar_kind(v) -> str:
    """'b', 'i' or 'f' of a Python scalar (bool is its own kind, as NumPy)."""
    if isinstance(v, (bool, np.bool_)):
        return "b"
    if isinstance(v, (int, np.integer)):
        return "i"
    return "f"


def result_type(dtypes: Sequence[str], weak: Sequence[str] = ()) -> DType:
    """NEP 50: promotion of tensors of ``dtypes`` with Python scalars of kinds ``weak`` ('b', 'i', 'f').
    A scalar of a kind no higher than the tensors' adopts their dtype; a higher kind promotes to its
    default dtype (int64 / float64). Only scalars: int -> int64, float -> float32 (symdiff's default float)."""
    if not dtypes:
        top = max(weak, key=_KIND_RANK.__getitem__) if weak else "f"
        return DTYPES["float32" if top == "f" else DEFAULT_OF_KIND[top]]
    out = promote(*dtypes)
    for k in weak:
        if _KIND_RANK[k] > _KIND_RANK[_KIND_OF[out]]:
            out = promote2(out, DEFAULT_OF_KIND[k])
    return out


def check_scalar_fits(op: str, v, dtype: str) -> None:
    """A Python int scalar must fit the integer dtype it adopts (NumPy 2 raises OverflowError too)."""
    if dtype in INT_DTYPES and scalar_kind(v) == "i":
        info = np.iinfo(dtype)
        if not info.min <= int(v) <= info.max:
            raise OverflowError(f"{op}: Python integer {int(v)} out of bounds for {dtype}")


# -- elementwise dtype rules ------------------------------------------------------------------------------------

# rule name -> (accepts bool operands, operand conversion, result):
#   operand conversion "promote": to the promoted dtype; "float": promoted, ints -> float64; "bool": truth value
RULE_KINDS = {
    "float": (False, "float", "same"),  # exp, sin, divide, power, ... (the default)
    "numeric": (False, "promote", "same"),  # add, multiply, maximum, floor_divide, ...: ints stay ints
    "any": (True, "promote", "same"),  # dtype-agnostic (stop_gradient)
    "compare": (True, "promote", "bool"),  # less, equal, ...
    "predicate": (True, "float", "bool"),  # isnan, isfinite, isinf (ints and bools: converted to float64)
    "logical": (True, "bool", "bool"),  # logical_and, ...: operands read as != 0
    "where": (True, "where", "same"),  # where(c, a, b): c as a truth value, a and b promoted
}
RULES: dict[str, str] = {}  # op name -> rule name (elementwise ops not listed use "float")


def set_rule(op: str, rule: str) -> None:
    if rule not in RULE_KINDS:
        raise ValueError(f"op {op!r}: dtype rule must be one of {sorted(RULE_KINDS)}, got {rule!r}")
    RULES[op] = rule
    _SIGNATURES.clear()


def rule_of(op: str) -> str:
    return RULES.get(op, "float")


def value_groups(op: str, arity: int) -> list:
    """Operand index groups whose Python scalars type together (where: the condition alone, then a and b)."""
    return [[0], list(range(1, arity))] if rule_of(op) == "where" else [list(range(arity))]


def signature(op: str, dtypes: Sequence[str], describe: Optional[Callable[[int], str]] = None) -> tuple:
    """(operand compute dtypes, result dtype) of elementwise ``op`` over operands of ``dtypes``.

    ``describe(i)`` names operand i in the TypeError a bool operand of a numeric op raises. Memoised."""
    key = (op, tuple(dtypes))
    hit = _SIGNATURES.get(key)
    if hit is None:
        hit = _SIGNATURES[key] = _signature(op, dtypes, describe)
    return hit


_SIGNATURES: dict = {}  # (op, operand dtypes) -> signature(...)


def _signature(op: str, dtypes: Sequence[str], describe: Optional[Callable[[int], str]]) -> tuple:
    accepts_bool, conv, result = RULE_KINDS[rule_of(op)]
    if not accepts_bool:
        for i, d in enumerate(dtypes):
            if d == "bool":
                what = describe(i) if describe else f"operand {i}"
                raise TypeError(f"{op}: boolean tensor {what} cannot be used in arithmetic (it needs a number); "
                                f"convert it with .astype('float32') / .astype('int64'), or use sd.where")
    if conv == "where":
        val = promote(*dtypes[1:])
        return [DTYPES["bool"]] + [val] * (len(dtypes) - 1), val
    if conv == "bool":
        return [DTYPES["bool"]] * len(dtypes), DTYPES["bool"]
    p = promote(*dtypes)
    if conv == "float" and p not in FLOAT_DTYPES:
        p = DTYPES["float64"]
    return [p] * len(dtypes), (DTYPES["bool"] if result == "bool" else p)


def numpy_wrapped(op: str, impl: Callable) -> Callable:
    """``impl`` called on operands converted to their compute dtypes, its result in the op's result dtype
    (so a NumPy function defined on floats only, like a stable sigmoid, sees float64 for int operands).
    Signatures are memoised per operand-dtype tuple (the interpreter calls this once per node and run)."""
    cache: dict = {}

    def run(*arrays):
        arrays = [a if isinstance(a, np.ndarray) else np.asarray(a) for a in arrays]
        key = tuple(a.dtype for a in arrays)
        sig = cache.get(key)
        if sig is None:
            ins, out = signature(op, [d.name for d in key])
            sig = cache[key] = ([None if d == _NP[c] else _NP[c] for d, c in zip(key, ins)], _NP[out])
        conv, out = sig
        r = impl(*[a if c is None else a.astype(c) for a, c in zip(arrays, conv)])
        return r if getattr(r, "dtype", None) == out else np.asarray(r, dtype=out)
    run.__name__ = getattr(impl, "__name__", op)
    run.__wrapped__ = impl
    return run
