"""Reduction ops beyond sum/max: ``prod`` (a reduce kernel on every backend) and ``argmax``/``argmin``
(int64 results, first occurrence as NumPy; the compiled backends expand them into max + comparisons with
an index iota + a min reduction, see :func:`expand_arg_reduce`).

Conventions as ``ops_tensor``: ``axes`` is a sorted tuple of non-negative ints, ``keepdims`` a bool.
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from . import dims as _dims
from . import dtypes as _dt
from .ir import Node, apply, const
from .ops_tensor import broadcast_to, cast, keep_shape, reduce_sum, reshape
from .optable import OpDef, register


def _check(op: str, x: Node, axes: tuple, any_dtype: bool = False) -> None:
    if not any_dtype and not _dt.is_float(x.dtype):
        raise TypeError(f"{op}: expected a float tensor, got {x.dtype} tensor {x.name or x.op!r}")
    for a in axes:
        if not 0 <= a < x.ndim:
            raise ValueError(f"{op}: axis {a} is out of bounds for a tensor of rank {x.ndim} (shape {x.shape})")
    if len(set(axes)) != len(axes) or tuple(sorted(axes)) != tuple(axes):
        raise ValueError(f"{op}: axes must be sorted and distinct, got {axes}")


def _out_shape(x: Node, axes: tuple, keepdims: bool) -> tuple:
    return keep_shape(x.shape, axes) if keepdims else tuple(s for i, s in enumerate(x.shape) if i not in axes)


def _prod_infer(inputs, attrs):
    (x,) = inputs
    _check("prod", x, attrs["axes"])
    return _out_shape(x, attrs["axes"], attrs.get("keepdims", False)), x.dtype


def _arg_infer(op):
    def infer(inputs, attrs):
        (x,) = inputs
        axes = attrs["axes"]
        _check(op, x, axes, any_dtype=True)  # int / bool tensors too, as NumPy
        if any(x.shape[a] == 0 for a in axes):
            raise ValueError(f"{op}: attempt to get {op} of an empty sequence (shape {x.shape}, axes {axes})")
        return _out_shape(x, axes, attrs.get("keepdims", False)), "int64"
    return infer


def _eqf(a: Node, b: Node, dtype: str) -> Node:
    """1.0 where a == b, else 0.0, in float ``dtype`` (a comparison is not differentiable)."""
    return cast(apply("eq", [a, b]), dtype)


def _prod_vjp(node: Node, g: Node) -> list:
    """d prod(x) / d x_i = prod_{j != i} x_j, also where entries are 0: with nz = [x == 0], xs = x + nz (the
    zeros replaced by 1) and Q = prod(xs) (the product of the non-zero entries),

        grad_i = g * Q * ( [no zero in the row] (1 - nz_i) / xs_i  +  [exactly one zero] nz_i ).

    Rows with two or more zeros get a zero gradient (exact). The second derivative is exact for rows with at
    most one zero; for rows with two or more zeros the mixed partials between zero entries are dropped."""
    (x,) = node.inputs
    axes, dt = node.attrs["axes"], x.dtype
    ks = keep_shape(x.shape, axes)
    one = const(1.0, dt)
    nz = _eqf(x, const(0.0, dt), dt)
    xs = apply("add", [x, nz])
    q = apply("prod", [xs], axes=axes, keepdims=True)
    cnt = reduce_sum(nz, axes, keepdims=True)
    none, single = _eqf(cnt, const(0.0, dt), dt), _eqf(cnt, one, dt)
    others = apply("add", [apply("mul", [apply("div", [apply("sub", [one, nz]), xs]), none]),
                           apply("mul", [nz, single])])
    return [apply("mul", [apply("mul", [reshape(g, ks), q]), others])]


def _prod_np(a, axes, keepdims):
    return np.prod(a, axis=axes, keepdims=keepdims)


def _arg_np(fn):
    def impl(a, axes, keepdims):
        rest = [i for i in range(a.ndim) if i not in axes]
        moved = np.transpose(a, rest + list(axes)).reshape([a.shape[i] for i in rest] + [-1])
        r = fn(moved, axis=-1).astype(np.int64)
        return r.reshape(keep_shape(a.shape, axes) if keepdims else tuple(a.shape[i] for i in rest))
    return impl


def expand_arg_reduce(n: Node, ins: list) -> Node:
    """argmax / argmin from ops every backend compiles (float64 index arithmetic, exact below 2**53; int and
    bool inputs are compared as float64, exact for magnitudes below 2**53):

        mask = [x == max(x)] + [x != x]       (NaN: max is NaN and NumPy returns the first NaN)
        idx  = sum_a iota_a * stride_a        (row-major flat index over the reduced axes)
        arg  = min(mask * idx + (1 - mask) * R)  as -max(-...), R = the reduced count
    argmin(x) is argmax(-x)."""
    (x,) = ins
    axes, keepdims = n.attrs["axes"], n.attrs.get("keepdims", False)
    if not _dt.is_float(x.dtype):  # int / bool: compared in float64 (exact for |values| < 2**53)
        x = cast(x, "float64")
    if n.op == "argmin":
        x = apply("neg", [x])
    m = apply("max", [x], axes=axes, keepdims=True)
    f64 = "float64"
    mask = apply("sub", [apply("add", [_eqf(x, m, f64), const(1.0, f64)]), _eqf(x, x, f64)])
    red = [x.shape[a] for a in axes]
    total = int(_dims.prod(red))
    idx, stride = None, total
    for a, s in zip(axes, red):
        stride //= s
        if s == 1:
            continue
        shape = tuple(s if i == a else 1 for i in range(x.ndim))
        iota = const((np.arange(s, dtype=np.float64) * stride).reshape(shape), f64)
        idx = iota if idx is None else apply("add", [idx, iota])
    idx = const(0.0, f64) if idx is None else idx
    cand = apply("add", [apply("mul", [mask, idx]),
                         apply("mul", [apply("sub", [const(1.0, f64), mask]), const(float(total), f64)])])
    cand = broadcast_to(cand, x.shape)
    best = apply("neg", [apply("max", [apply("neg", [cand])], axes=axes, keepdims=keepdims)])
    return cast(best, "int64")


register(OpDef("prod", _prod_infer, _prod_np, _prod_vjp, cost_class="cheap",
               doc="product over axes; gradient exact also where entries are 0"))
register(OpDef("argmax", _arg_infer("argmax"), _arg_np(np.argmax), differentiable=False, cost_class="cheap",
               doc="index of the first maximum over axes (row-major over several axes), int64"))
register(OpDef("argmin", _arg_infer("argmin"), _arg_np(np.argmin), differentiable=False, cost_class="cheap",
               doc="index of the first minimum over axes (row-major over several axes), int64"))

def _axis_size_infer(inputs, attrs):
    (x,) = inputs
    if any(not 0 <= a < x.ndim for a in attrs["axes"]) or len(set(attrs["axes"])) != len(attrs["axes"]):
        raise ValueError(f"axis_size: axes {attrs['axes']} are not distinct axes of shape {x.shape}")
    return (), _dt.normalize(attrs["dtype"])


def axis_size(x: Node, axes: tuple, dtype: str) -> Node:
    """The number of elements of ``x`` over ``axes`` (a 0-d ``dtype`` tensor): a constant for fixed sizes,
    the call's value for symbolic ones (``mean``'s divisor)."""
    n = _dims.prod(x.shape[a] for a in axes)
    if not isinstance(n, _dims.Dim):
        return const(np.asarray(n, dtype=dtype), dtype)
    return apply("axis_size", [x], axes=tuple(axes), dtype=_dt.normalize(dtype))


def expand_axis_size(n: Node, ins: list) -> Optional[Node]:
    """A compiled backend's axis_size over fixed sizes: the constant; over symbolic sizes None (kept: the
    point evaluator reads the call's sizes)."""
    if _dims.is_symbolic([ins[0].shape[a] for a in n.attrs["axes"]]):
        return None
    return const(np.asarray(_dims.prod(ins[0].shape[a] for a in n.attrs["axes"]), dtype=n.dtype), n.dtype)


# x's values never matter, only its shape: no gradient flows into x
register(OpDef("axis_size", _axis_size_infer,
               lambda a, axes, dtype: np.asarray(np.prod([a.shape[k] for k in axes], dtype=np.int64), dtype=dtype),
               differentiable=False, doc="the element count of a tensor over some axes (its shape, not its values)"))

# ops a compiled backend computes through an expansion into other ops (codegen/expand.py)
TENSOR_EXPANSIONS = {"argmax": expand_arg_reduce, "argmin": expand_arg_reduce, "axis_size": expand_axis_size}
