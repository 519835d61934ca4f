"""The model DSL: leaves, operators and NumPy-named functions that build graph nodes."""
from __future__ import annotations

import builtins
import inspect
import numbers
from typing import Any, Callable, Optional, Sequence, Union

import numpy as np

from . import dims as _dims
from . import dtypes as _dt
from .ir import Node, apply, const
from .optable import OPS, broadcast_shapes, dsl_function
from .ops_reduce import axis_size
from .ops_tensor import broadcast_to as _broadcast_to
from .ops_tensor import cast as _cast
from .ops_tensor import transpose as _transpose
from .ops_tensor import reshape as _reshape

TensorLike = Union[Node, float, int, np.ndarray]


# -- leaves --------------------------------------------------------------------------------------------------

def _leaf(kind: str, name: str, shape, dtype, meta: Optional[dict] = None) -> Node:
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"{kind}: name must be a Python identifier string, got {name!r}")
    if isinstance(shape, (numbers.Integral, str, _dims.Dim)):
        shape = (shape,)
    try:
        shape = tuple(shape)
    except TypeError:
        raise TypeError(f"{kind} {name!r}: shape must be a tuple of ints, got {shape!r}") from None
    shape = tuple(_leaf_dim(kind, name, s, shape) for s in shape)
    dt = _dt.normalize(dtype)
    return Node(kind, (), {"name": name}, shape, dt, meta)


def _leaf_dim(kind: str, name: str, s: Any, shape: tuple) -> Any:
    """One shape entry of a leaf: a non-negative int, or a symbolic size (a name string, ``sd.dim``)."""
    if isinstance(s, (str, _dims.Dim)):
        try:
            return _dims.as_dim(s)
        except (ValueError, TypeError) as e:
            raise ValueError(f"{kind} {name!r}: {e}") from None
    if not isinstance(s, numbers.Integral) or isinstance(s, bool) or s < 0:
        raise ValueError(f"{kind} {name!r}: shape entries must be non-negative integers or dimension names "
                         f"(\"batch\"), got {shape!r}")
    return int(s)


def input(name: str, shape, dtype: str = "float32") -> Node:  # noqa: A001 - the DSL's public name
    """A named input leaf (data; integers: int32/int64 (labels, counts); masks: bool). A shape entry may be a
    name, ``sd.input("x", ("batch", 784))``: a symbolic size bound by each call (docs/symbolic_dims.md)."""
    return _leaf("input", name, shape, dtype)


def param(name: str, shape, dtype: str = "float32", init: Any = None) -> Node:
    """A named trainable parameter leaf; ``init`` is kept as metadata (an array, a callable
    ``init(shape, rng) -> array``, or None) for the nn layer and the CLI."""
    if not _dt.is_float(_dt.normalize(dtype)):
        raise TypeError(f"param {name!r}: parameters must be float32/float64, got {dtype!r}")
    return _leaf("param", name, shape, dtype, {"init": init})


# -- coercion ------------------------------------------------------------------------------------------------

@dsl_function(numpy_name="asarray", ops=("const",))
def as_tensor(v: TensorLike, like: Optional[Node] = None) -> Node:
    """Wrap Python scalars / arrays as constants. Python scalars are weakly typed (take ``like``'s dtype
    when it is a float; elementwise functions apply NumPy 2's weak-scalar rules, see ``symdiff/dtypes.py``).
    Arrays keep their dtype (bool, int32, int64, float32, float64; other ints -> int64, floats -> float64)."""
    if isinstance(v, Node):
        return v
    if isinstance(v, (list, tuple)) and _holds_node(v):  # [a, b] of tensors: stacked, as np.asarray would
        from .api_arrange import asarray  # noqa: PLC0415  (api_arrange builds on this module)
        return asarray(v)
    if isinstance(v, bool) or isinstance(v, (str, bytes)) or v is None:
        raise TypeError(f"cannot use {v!r} ({type(v).__name__}) as a tensor")
    if isinstance(v, numbers.Number) and not isinstance(v, np.generic):
        if isinstance(v, complex):
            raise TypeError("complex values are not supported")
        dt = like.dtype if like is not None and _dt.is_float(like.dtype) else "float32"
        return const(float(v), dt)
    arr = np.asarray(v)
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"cannot use an array of dtype {arr.dtype} as a tensor")
    return const(arr, _array_dtype(arr.dtype))


def _array_dtype(d: np.dtype) -> str:
    if d.name in _dt.ALL_DTYPES:
        return d.name
    return {"b": "bool", "i": "int64", "u": "int64"}.get(d.kind, "float64")


def _is_scalar(v) -> bool:
    """A Python scalar (weakly typed under NEP 50); NumPy scalars and arrays are strongly typed."""
    return isinstance(v, numbers.Number) and not isinstance(v, (np.generic, complex))


def _holds_node(v: Any) -> bool:
    return any(isinstance(e, Node) or (isinstance(e, (list, tuple)) and _holds_node(e)) for e in v)


def _ew(op: str, *args: TensorLike) -> Node:
    """apply(op) with NumPy 2 promotion: Python scalars are weak and become constants of the dtype their
    operand group promotes to (``x32 * 2`` is float32, ``i32 + 1`` int32, ``i32 + 0.5`` float64)."""
    if all(isinstance(a, Node) for a in args):
        return apply(op, args)
    args = [a if isinstance(a, Node) or _is_scalar(a) else as_tensor(a) for a in args]
    rule_accepts_bool = _dt.RULE_KINDS[_dt.rule_of(op)][0]
    out = list(args)
    for group in _dt.value_groups(op, len(args)):
        weak = [_dt.scalar_kind(args[i]) for i in group if not isinstance(args[i], Node)]
        if not weak:
            continue
        if "b" in weak and not rule_accepts_bool:
            v = next(args[i] for i in group if isinstance(args[i], bool))
            raise TypeError(f"cannot use {v!r} ({type(v).__name__}) as a tensor in {op} (arithmetic needs a number)")
        dt = _dt.result_type([args[i].dtype for i in group if isinstance(args[i], Node)], weak)
        for i in group:
            if not isinstance(args[i], Node):
                _dt.check_scalar_fits(op, args[i], dt)
                out[i] = const(args[i], dt)
    return apply(op, out)


def elementwise_function(op: str, name: Optional[str] = None) -> Callable[..., Node]:
    """The DSL function of elementwise op ``op``: tensors or scalars in (NumPy broadcasting), a node out."""
    d = OPS[op]

    def f(*args: TensorLike) -> Node:
        if len(args) != d.arity:
            raise TypeError(f"{f.__name__}() takes {d.arity} argument(s), got {len(args)}")
        return _ew(op, *args)
    f.__name__ = f.__qualname__ = name or d.api or op
    f.__doc__ = d.doc or f"elementwise {op}"
    params = ("x",) if d.arity == 1 else ("a", "b") if d.arity == 2 else tuple(f"x{k}" for k in range(d.arity))
    f.__signature__ = inspect.Signature([inspect.Parameter(p, inspect.Parameter.POSITIONAL_OR_KEYWORD)
                                         for p in params])
    return f


# one DSL function per op-table entry that names one (sd.add, sd.subtract -> op "sub", sd.tanh, ...)
ELEMENTWISE: dict[str, Callable[..., Node]] = {d.api: elementwise_function(d.name) for d in OPS.values()
                                               if d.elementwise and d.api}
globals().update(ELEMENTWISE)
add, subtract, multiply, negative, square = (ELEMENTWISE[k] for k in ("add", "subtract", "multiply", "negative",
                                                                      "square"))  # used below


# -- shape manipulation ----------------------------------------------------------------------------------------

def _axes(op: str, x: Node, axis) -> tuple:
    if axis is None:
        return tuple(range(x.ndim))
    if isinstance(axis, numbers.Integral) and not isinstance(axis, bool):
        axis = (axis,)
    try:
        axis = tuple(axis)
    except TypeError:
        raise TypeError(f"{op}: axis must be None, an int or a tuple of ints, got {axis!r}") from None
    out = []
    for a in axis:
        if not isinstance(a, numbers.Integral) or isinstance(a, bool):
            raise TypeError(f"{op}: axis must be None, an int or a tuple of ints, got {axis!r}")
        if not -x.ndim <= a < x.ndim:
            raise ValueError(f"{op}: axis {a} is out of bounds for a tensor of rank {x.ndim} (shape {x.shape})")
        out.append(int(a) % x.ndim)
    if len(set(out)) != len(out):
        raise ValueError(f"{op}: repeated axis in {axis}")
    return tuple(sorted(out))


reduction_axes = _axes  # public: other DSL modules normalise axis arguments with it


def _axis1(op: str, x: Node, axis: int) -> int:
    return _axes(op, x, axis if axis is not None else -1)[0] if x.ndim else 0


def sum(x: TensorLike, axis=None, keepdims: bool = False) -> Node:  # noqa: A001
    """Sum over ``axis`` (None: all axes), NumPy semantics."""
    x = as_tensor(x)
    return apply("sum", [x], axes=_axes("sum", x, axis), keepdims=bool(keepdims))


@dsl_function(numpy_name="mean", ops=("sum", "mul"))
def mean(x: TensorLike, axis=None, keepdims: bool = False) -> Node:
    """Arithmetic mean over ``axis``."""
    x = as_tensor(x)
    axes = _axes("mean", x, axis)
    count = _dims.prod([x.shape[a] for a in axes])
    if isinstance(count, _dims.Dim):  # the size known at call time: divide by it (float64 for float64 x)
        total = sum(x, axes, keepdims)
        return ELEMENTWISE["divide"](total, axis_size(x, axes, total.dtype if _dt.is_float(total.dtype) else "float64"))
    return multiply(sum(x, axes, keepdims), 1.0 / count if count else float("nan"))  # empty: 0 * nan = nan, as NumPy


def max(x: TensorLike, axis=None, keepdims: bool = False) -> Node:  # noqa: A001
    """Maximum over ``axis``; its gradient is shared equally between tied maxima."""
    x = as_tensor(x)
    return apply("max", [x], axes=_axes("max", x, axis), keepdims=bool(keepdims))


def transpose(x: TensorLike, axes: Optional[Sequence[int]] = None) -> Node:
    """Permute axes (default: reverse them), as ``np.transpose``."""
    x = as_tensor(x)
    perm = tuple(reversed(range(x.ndim))) if axes is None else tuple(_axes("transpose", x, a)[0] for a in axes)
    return _transpose(x, perm)


def reshape(x: TensorLike, shape) -> Node:
    """Reshape (one entry may be -1), as ``np.reshape``."""
    x = as_tensor(x)
    shape = (shape,) if isinstance(shape, numbers.Integral) else tuple(shape)
    if builtins.sum(1 for s in shape if s == -1) > 1:
        raise ValueError(f"reshape: only one dimension can be -1, got {shape}")
    if -1 in shape:
        rest = _dims.prod([s for s in shape if s != -1])
        if rest == 0 or _divides_not(rest, x.size):
            raise ValueError(f"reshape: cannot reshape a tensor of shape {x.shape} (size {x.size}) into shape {shape}")
        shape = tuple(x.size // rest if s == -1 else s for s in shape)
    return _reshape(x, shape)


def _divides_not(rest: Any, size: Any) -> bool:
    """True when ``rest`` does not divide ``size`` (a symbolic quotient that is not exact counts as not dividing)."""
    try:
        return bool(size % rest)
    except _dims.SymbolicDimError:
        return True


def broadcast_to(x: TensorLike, shape) -> Node:
    x = as_tensor(x)
    return _broadcast_to(x, tuple(shape))


@dsl_function(numpy_name="ndarray.astype", ops=("cast",))
def astype(x: TensorLike, dtype) -> Node:
    """Cast to another dtype (NumPy's ``astype``): float -> int truncates toward zero, -> bool is ``x != 0``
    (NaN is true), bool -> number is 0/1. A float out of the integer range casts to an unspecified value."""
    return _cast(as_tensor(x), _dt.normalize(dtype))


def matmul(a: TensorLike, b: TensorLike) -> Node:
    """Matrix product with NumPy semantics: 1-D operands are a row / column vector (the added axis is
    removed from the result), operands of rank >= 3 are stacks of matrices whose batch dimensions
    broadcast. A batched left operand times a 2-D right one is one GEMM over the folded rows."""
    a, b = as_tensor(a), as_tensor(b)
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError(f"matmul: operands must be at least 1-D (use multiply for scalars), got shapes "
                         f"{a.shape} and {b.shape}")
    kb = b.shape[0] if b.ndim == 1 else b.shape[-2]
    if a.shape[-1] != kb:
        raise ValueError(f"matmul: shapes {a.shape} and {b.shape} are not aligned ({a.shape[-1]} != {kb})")
    dt = _dt.promote(a.dtype, b.dtype)
    a2 = _reshape(_cast(a, dt), (1, a.shape[0])) if a.ndim == 1 else _cast(a, dt)
    b2 = _reshape(_cast(b, dt), (b.shape[0], 1)) if b.ndim == 1 else _cast(b, dt)
    if b2.ndim == 2 and a2.ndim > 2:  # fold the batch into the rows: one 2-D GEMM
        rows = _dims.prod(a2.shape[:-1])
        out, batch = apply("matmul", [_reshape(a2, (rows, a2.shape[-1])), b2]), a2.shape[:-2]
    else:
        out = apply("matmul", [a2, b2])
        batch = out.shape[:-2]
    shape = batch + (a.shape[-2:-1] if a.ndim >= 2 else ()) + (b.shape[-1:] if b.ndim >= 2 else ())
    return _reshape(out, shape)


# -- neural-network functions ----------------------------------------------------------------------------------

def logsumexp(x: TensorLike, axis=-1, keepdims: bool = False) -> Node:
    """log(sum(exp(x))) over ``axis``, computed stably (shift by the max)."""
    x = as_tensor(x)
    return apply("logsumexp", [x], axes=_axes("logsumexp", x, axis), keepdims=bool(keepdims))


def softmax(x: TensorLike, axis: int = -1) -> Node:
    """exp(x) / sum(exp(x)) along ``axis``, stable."""
    x = as_tensor(x)
    return apply("softmax", [x], axis=_axis1("softmax", x, axis))


def log_softmax(x: TensorLike, axis: int = -1) -> Node:
    """x - logsumexp(x) along ``axis``."""
    x = as_tensor(x)
    return apply("log_softmax", [x], axis=_axis1("log_softmax", x, axis))


@dsl_function(ops=("log_softmax", "pick", "sum", "mul", "neg", "reshape"))
def cross_entropy(logits: TensorLike, labels: Node) -> Node:
    """Mean negative log-likelihood of integer ``labels`` under softmax(``logits``) over rows.

    ``logits``: (N, C) with ``labels`` (N,) int32/int64, or (C,) with a scalar label.
    """
    logits = as_tensor(logits)
    if not isinstance(labels, Node):
        raise TypeError("cross_entropy: labels must be a symdiff int tensor (sd.input(..., dtype='int64'))")
    if logits.ndim == 1:
        logits = _reshape(logits, (1,) + logits.shape)
        labels = _reshape(labels, (1,)) if labels.shape == () else labels
    if logits.ndim != 2:
        raise ValueError(f"cross_entropy: logits must be (N, C) or (C,), got shape {logits.shape}")
    check_labels("cross_entropy", logits, labels)
    picked = apply("pick", [log_softmax(logits, axis=-1), labels])
    return negative(mean(picked))


def check_labels(fn: str, scores: Node, labels: Node, what: str = "logits") -> None:
    """Class labels for (N, C) scores: an int tensor of shape (N,), else an error saying what to change."""
    if labels.dtype not in _dt.INT_DTYPES:
        raise TypeError(f"{fn}: labels must be an int32/int64 tensor, got {labels.dtype}{list(labels.shape)} "
                        f"(class indices; float targets are for bce/mse; the Trainer's label_dtype= sets it)")
    if labels.shape != scores.shape[:-1]:
        raise ValueError(f"{fn}: labels of shape {labels.shape} do not match {what} of shape {scores.shape}: "
                         f"expected labels of shape {scores.shape[:-1]} (one class index per row); reshape the "
                         f"labels (y.reshape(-1)) or, with the Trainer, use label_shape=()")


def check_target(fn: str, pred: Node, target: Node, broadcast: bool = False) -> None:
    """A target must have the prediction's shape: broadcasting (64, 1) against (64,) to (64, 64) silently
    computes the wrong loss, so it is an error unless the caller asks for it (``broadcast=True``)."""
    if broadcast or target.shape == pred.shape or (target.ndim == 0 and target.op == "const"):
        return
    hint = ""
    if pred.shape[:-1] == target.shape and pred.shape[-1:] == (1,):
        hint = f"; reshape the prediction (pred.reshape(-1)) or the target (y.reshape(-1, 1))"
    elif target.shape[:-1] == pred.shape and target.shape[-1:] == (1,):
        hint = f"; reshape the target (y.reshape(-1)) or the prediction (pred.reshape(-1, 1))"
    try:
        b = broadcast_shapes(fn, pred.shape, target.shape)
        what = f" (they would broadcast to {b})"
    except ValueError:
        what = ""
    raise ValueError(f"{fn}: target of shape {target.shape} does not match the prediction of shape {pred.shape}"
                     f"{what}{hint}; with the Trainer, set label_shape= to the model output's shape per sample; "
                     f"pass broadcast=True to broadcast on purpose")


@dsl_function(ops=("sub", "square", "sum", "mul"))
def mse(pred: TensorLike, target: TensorLike, broadcast: bool = False) -> Node:
    """Mean squared error mean((pred - target)**2) over all entries (target of pred's shape).

    A Python scalar target is fine; ``broadcast=True`` allows NumPy broadcasting of another shape."""
    pred = as_tensor(pred)
    target = as_tensor(target, pred)
    check_target("mse", pred, target, broadcast)
    return mean(square(subtract(pred, target)))
