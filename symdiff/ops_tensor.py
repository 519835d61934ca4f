"""Tensor ops with explicit shape rules, NumPy implementations and vector-Jacobian rules.

Conventions: reduction axes are a sorted tuple of non-negative ints; ``matmul`` takes operands of rank >= 2
whose batch dimensions broadcast (the DSL reshapes 1-D operands); gradients of implicit broadcasting are summed back by :func:`sum_to`.
"""
from __future__ import annotations

import numpy as np

from . import dims as _dims
from . import dtypes as _dt
from .ir import Node, apply, const
from .optable import OpDef, broadcast_shapes, register


# -- builders shared by vjp rules and the DSL (trivial cases short-circuit) ---------------------------

def reshape(x: Node, shape: tuple) -> Node:
    shape = tuple(_dims.as_dim(s) for s in shape)
    return x if x.shape == shape else apply("reshape", [x], shape=shape)


def broadcast_to(x: Node, shape: tuple) -> Node:
    shape = tuple(_dims.as_dim(s) for s in shape)
    return x if x.shape == shape else apply("broadcast_to", [x], shape=shape)


def reduce_sum(x: Node, axes: tuple, keepdims: bool = False) -> Node:
    axes = tuple(sorted(axes))
    if not axes:
        return x
    return apply("sum", [x], axes=axes, keepdims=keepdims)


def transpose(x: Node, perm: tuple) -> Node:
    perm = tuple(int(p) for p in perm)
    return x if perm == tuple(range(x.ndim)) else apply("transpose", [x], perm=perm)


def keep_shape(shape: tuple, axes: tuple) -> tuple:
    """The shape after a keepdims=True reduction over ``axes``."""
    return tuple(1 if i in axes else s for i, s in enumerate(shape))


def sum_to(g: Node, shape: tuple) -> Node:
    """Sum ``g`` over the axes that broadcasting added or stretched, so it has ``shape`` (grad of broadcast)."""
    shape = tuple(shape)
    if g.shape == shape:
        return g
    lead = g.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(i + lead for i, s in enumerate(shape) if s == 1 and g.shape[i + lead] != 1)
    return reshape(reduce_sum(g, axes), shape)


def zeros(shape: tuple, dtype: str) -> Node:
    return broadcast_to(const(0.0, dtype), shape)


def cast(x: Node, dtype: str) -> Node:
    return x if x.dtype == dtype else apply("cast", [x], dtype=dtype)


# -- shape rules ------------------------------------------------------------------------------------------

def _check_axes(op: str, shape: tuple, axes: tuple) -> None:
    for a in axes:
        if not 0 <= a < len(shape):
            raise ValueError(f"{op}: axis {a} is out of bounds for a tensor of rank {len(shape)} (shape {shape})")
    if len(set(axes)) != len(axes):
        raise ValueError(f"{op}: repeated axis in {axes}")


def _float_only(op: str, x: Node) -> None:
    if not _dt.is_float(x.dtype):
        raise TypeError(f"{op}: expected a float tensor, got {x.dtype} tensor {x.name or x.op!r}")


def _reduce_infer(op):
    def infer(inputs, attrs):
        (x,) = inputs
        _float_only(op, x)
        axes = attrs["axes"]
        _check_axes(op, x.shape, axes)
        shape = keep_shape(x.shape, axes) if attrs.get("keepdims") else tuple(s for i, s in enumerate(x.shape) if i not in axes)
        if op == "max" and any(x.shape[a] == 0 for a in axes):
            raise ValueError("max: zero-size reduction has no identity")
        return shape, x.dtype
    return infer


def _axis_infer(op):
    def infer(inputs, attrs):
        (x,) = inputs
        _float_only(op, x)
        _check_axes(op, x.shape, (attrs["axis"],))
        return x.shape, x.dtype
    return infer


def _reshape_infer(inputs, attrs):
    (x,) = inputs
    shape = attrs["shape"]
    if any(isinstance(s, int) and s < 0 for s in shape) or _dims.prod(shape) != x.size:
        raise ValueError(f"reshape: cannot reshape a tensor of shape {x.shape} (size {x.size}) into shape {shape}")
    return shape, x.dtype


def _broadcast_infer(inputs, attrs):
    (x,) = inputs
    shape = attrs["shape"]
    if broadcast_shapes("broadcast_to", x.shape, shape) != tuple(shape):
        raise ValueError(f"broadcast_to: shape {x.shape} cannot be broadcast to {shape}")
    return shape, x.dtype


def _transpose_infer(inputs, attrs):
    (x,) = inputs
    perm = attrs["perm"]
    if sorted(perm) != list(range(x.ndim)):
        raise ValueError(f"transpose: axes {perm} are not a permutation of the {x.ndim} axes of shape {x.shape}")
    return tuple(x.shape[p] for p in perm), x.dtype


def _matmul_infer(inputs, attrs):
    # (..., M, K) @ (..., K, N) -> (..., M, N); the batch dims (...) broadcast as NumPy's
    a, b = inputs
    _float_only("matmul", a)
    _float_only("matmul", b)
    if a.ndim < 2 or b.ndim < 2 or a.shape[-1] != b.shape[-2]:
        raise ValueError(f"matmul: shapes {a.shape} and {b.shape} are not aligned "
                         f"({a.shape[-1] if a.shape else '?'} != {b.shape[-2] if b.ndim > 1 else '?'})")
    if a.dtype != b.dtype:
        raise TypeError(f"matmul: operand dtypes differ ({a.dtype}, {b.dtype}); cast first")
    try:
        batch = broadcast_shapes("matmul", a.shape[:-2], b.shape[:-2])
    except ValueError:
        raise ValueError(f"matmul: batch dimensions of shapes {a.shape} and {b.shape} cannot be broadcast "
                         f"together ({a.shape[:-2]} and {b.shape[:-2]})") from None
    return batch + (a.shape[-2], b.shape[-1]), a.dtype


def _labels_check(op, x_shape, labels):
    if labels.dtype not in _dt.INT_DTYPES:
        raise TypeError(f"{op}: labels must be an int32/int64 tensor, got {labels.dtype} tensor {labels.name or labels.op!r}")
    if labels.shape != x_shape[:-1]:
        raise ValueError(f"{op}: labels of shape {labels.shape} do not match logits of shape {x_shape} "
                         f"(expected labels shape {x_shape[:-1]})")


def _pick_infer(inputs, attrs):
    x, labels = inputs
    _float_only("pick", x)
    if x.ndim != 2:
        raise ValueError(f"pick: expected 2-D (rows, classes) values, got shape {x.shape}")
    _labels_check("pick", x.shape, labels)
    return x.shape[:-1], x.dtype


def _one_hot_infer(inputs, attrs):
    (labels,) = inputs
    if labels.dtype not in _dt.INT_DTYPES:
        raise TypeError(f"one_hot: labels must be int32/int64, got {labels.dtype}")
    return labels.shape + (attrs["depth"],), _dt.normalize(attrs["dtype"])


def _eq_infer(inputs, attrs):
    a, b = inputs
    return broadcast_shapes("eq", a.shape, b.shape), _dt.promote(a.dtype, b.dtype)


def _cast_infer(inputs, attrs):
    (x,) = inputs
    return x.shape, _dt.normalize(attrs["dtype"])


def _leaf_infer(inputs, attrs):
    raise TypeError("leaves are created with sd.input / sd.param / constants, not apply()")


# -- numpy implementations -----------------------------------------------------------------------------------

def _shift(a, axes):
    """The row max used to shift softmax/log_softmax/logsumexp, or 0 where it is not finite (a row of
    -inf stays -inf, +inf stays inf; -inf entries next to +inf get probability 0): all backends do this."""
    m = np.max(a, axis=axes, keepdims=True, initial=-np.inf)  # initial: an empty row has no max (shift 0)
    return np.where(np.isfinite(m), m, np.zeros((), a.dtype))


def _softmax_np(a, axis):
    e = np.exp(a - _shift(a, axis))
    return e / np.sum(e, axis=axis, keepdims=True)


def _log_softmax_np(a, axis):
    s = a - _shift(a, axis)
    return s - np.log(np.sum(np.exp(s), axis=axis, keepdims=True))


def _logsumexp_np(a, axes, keepdims):
    m = _shift(a, axes)
    r = np.log(np.sum(np.exp(a - m), axis=axes, keepdims=True)) + m
    return r if keepdims else np.squeeze(r, axis=axes)


def _one_hot_np(labels, depth, dtype):
    return (labels[..., None] == np.arange(depth)).astype(dtype)


# -- vector-Jacobian rules ------------------------------------------------------------------------------------

def _sum_vjp(node, g):
    (x,) = node.inputs
    return [broadcast_to(reshape(g, keep_shape(x.shape, node.attrs["axes"])), x.shape)]


def _max_vjp(node, g):
    # the gradient goes to the arg-max entries, shared equally between ties (as JAX)
    (x,) = node.inputs
    axes = node.attrs["axes"]
    m = reshape(node, keep_shape(x.shape, axes))
    mask = apply("eq", [x, m])
    count = reduce_sum(mask, axes, keepdims=True)
    return [apply("mul", [mask, apply("div", [reshape(g, keep_shape(x.shape, axes)), count])])]


def _softmax_vjp(node, g):
    # d softmax: s * (g - sum(g * s))
    ax = (node.attrs["axis"],)
    gs = reduce_sum(apply("mul", [g, node]), ax, keepdims=True)
    return [apply("mul", [node, apply("sub", [g, gs])])]


def _log_softmax_vjp(node, g):
    # d log_softmax: g - softmax(x) * sum(g)
    (x,) = node.inputs
    ax = node.attrs["axis"]
    s = apply("softmax", [x], axis=ax)
    return [apply("sub", [g, apply("mul", [s, reduce_sum(g, (ax,), keepdims=True)])])]


def _logsumexp_vjp(node, g):
    # d logsumexp = exp(x - logsumexp(x)) * g
    (x,) = node.inputs
    axes = node.attrs["axes"]
    ks = keep_shape(x.shape, axes)
    p = apply("exp", [apply("sub", [x, reshape(node, ks)])])
    return [apply("mul", [p, reshape(g, ks)])]


def swap_last(x: Node) -> Node:
    """``x`` with its last two axes exchanged (the matrix transpose of every batch entry)."""
    return transpose(x, tuple(range(x.ndim - 2)) + (x.ndim - 1, x.ndim - 2))


def _matmul_vjp(node, g):
    # C = A B:  dA = G B^T,  dB = A^T G  (per batch entry; broadcast batch dims summed back by sum_to).
    # A batched operand times a 2-D one folds the batch into the rows: dB = A_flat^T G_flat is one GEMM.
    a, b = node.inputs
    if a.ndim == 2 and b.ndim == 2:
        return [apply("matmul", [g, transpose(b, (1, 0))]), apply("matmul", [transpose(a, (1, 0)), g])]
    if b.ndim == 2 and a.shape[:-2] == g.shape[:-2]:
        rows = _dims.prod(g.shape[:-1])
        a2, g2 = reshape(a, (rows, a.shape[-1])), reshape(g, (rows, g.shape[-1]))
        da = reshape(apply("matmul", [g2, transpose(b, (1, 0))]), a.shape)
        return [da, apply("matmul", [transpose(a2, (1, 0)), g2])]
    return [sum_to(apply("matmul", [g, swap_last(b)]), a.shape), sum_to(apply("matmul", [swap_last(a), g]), b.shape)]


def _pick_vjp(node, g):
    x, labels = node.inputs
    oh = apply("one_hot", [labels], depth=x.shape[-1], dtype=x.dtype)
    return [apply("mul", [oh, reshape(g, g.shape + (1,))]), None]


register(OpDef("input", _leaf_infer, None, arity=0, doc="a named input leaf"))
register(OpDef("param", _leaf_infer, None, arity=0, doc="a named trainable parameter leaf"))
register(OpDef("const", _leaf_infer, None, arity=0, doc="a constant array"))
register(OpDef("sum", _reduce_infer("sum"), lambda a, axes, keepdims: np.sum(a, axis=axes, keepdims=keepdims), _sum_vjp,
               cost_class="cheap"))
register(OpDef("max", _reduce_infer("max"), lambda a, axes, keepdims: np.max(a, axis=axes, keepdims=keepdims), _max_vjp,
               cost_class="cheap"))
register(OpDef("reshape", _reshape_infer, lambda a, shape: np.reshape(a, shape),
               lambda n, g: [reshape(g, n.inputs[0].shape)]))
register(OpDef("broadcast_to", _broadcast_infer, lambda a, shape: np.broadcast_to(a, shape),
               lambda n, g: [sum_to(g, n.inputs[0].shape)]))
register(OpDef("transpose", _transpose_infer, lambda a, perm: np.transpose(a, perm),
               lambda n, g: [transpose(g, tuple(np.argsort(n.attrs["perm"])))]))
register(OpDef("matmul", _matmul_infer, np.matmul, _matmul_vjp, arity=2, cost_class="cheap"))
register(OpDef("cast", _cast_infer, lambda a, dtype: a.astype(dtype), lambda n, g: [cast(g, n.inputs[0].dtype)]))
register(OpDef("softmax", _axis_infer("softmax"), _softmax_np, _softmax_vjp, cost_class="expensive"))
register(OpDef("log_softmax", _axis_infer("log_softmax"), _log_softmax_np, _log_softmax_vjp, cost_class="expensive"))
register(OpDef("logsumexp", _reduce_infer("logsumexp"), _logsumexp_np, _logsumexp_vjp, cost_class="expensive"))
register(OpDef("pick", _pick_infer, lambda a, lab: a[np.arange(a.shape[0]), lab], _pick_vjp, arity=2,
               doc="pick(x, labels)[i] = x[i, labels[i]]"))
register(OpDef("one_hot", _one_hot_infer, _one_hot_np, arity=1, differentiable=False, cost_class="cheap"))
register(OpDef("eq", _eq_infer, lambda a, b: np.equal(a, b).astype(np.result_type(a, b)), arity=2, differentiable=False,
               cost_class="cheap"))
