"""stabilize: numerically stable forms (PyTensor's stabilize phase)."""
from __future__ import annotations

from typing import Optional

from ..ir import Node, apply
from .patterns import one_plus, uniform
from .registry import rewrite


# -- log(...) -------------------------------------------------------------------------------------------------

@rewrite("stabilize", ops=("log",))
def log_of_softmax(n: Node) -> Optional[Node]:
    """log(softmax(z)) -> log_softmax(z)."""
    x = n.inputs[0]
    return apply("log_softmax", x.inputs, **x.attrs) if x.op == "softmax" else None


@rewrite("stabilize", ops=("log",))
def log_of_sigmoid(n: Node) -> Optional[Node]:
    """log(sigmoid(z)) -> -softplus(-z): never saturates."""
    x = n.inputs[0]
    return apply("neg", [apply("softplus", [apply("neg", [x.inputs[0]])])]) if x.op == "sigmoid" else None


@rewrite("stabilize", ops=("log",))
def log_of_exp(n: Node) -> Optional[Node]:
    """log(exp(z)) -> z."""
    x = n.inputs[0]
    return x.inputs[0] if x.op == "exp" else None


@rewrite("stabilize", ops=("log",))
def log_of_sum_exp(n: Node) -> Optional[Node]:
    """log(sum(exp(z))) -> logsumexp(z)."""
    x = n.inputs[0]
    if x.op == "sum" and x.inputs[0].op == "exp":
        return apply("logsumexp", [x.inputs[0].inputs[0]], **x.attrs)
    return None


def _log_one_plus(n: Node) -> Optional[Node]:
    """y when n is log(1 + y) (either operand order) with y of n's operand type."""
    x = n.inputs[0]
    y = one_plus(x)
    return y if y is not None and y.shape == x.shape and y.dtype == x.dtype else None


@rewrite("stabilize", ops=("log",))
def log_one_plus_exp(n: Node) -> Optional[Node]:
    """log(1 + exp(z)) -> softplus(z) (either operand order)."""
    y = _log_one_plus(n)
    return apply("softplus", [y.inputs[0]]) if y is not None and y.op == "exp" else None


@rewrite("stabilize", ops=("log",))
def log_one_plus(n: Node) -> Optional[Node]:
    """log(1 + z) -> log1p(z) (after log_one_plus_exp, which takes z = exp(.))."""
    y = _log_one_plus(n)
    return apply("log1p", [y]) if y is not None else None


# -- others ---------------------------------------------------------------------------------------------------

@rewrite("stabilize", ops=("sub",))
def exp_minus_one(n: Node) -> Optional[Node]:
    """exp(z) - 1 -> expm1(z)."""
    a, b = n.inputs
    if a.op == "exp" and uniform(b) == 1 and n.shape == a.shape:
        return apply("expm1", [a.inputs[0]])
    return None


@rewrite("stabilize", ops=("sub",))
def sub_logsumexp(n: Node) -> Optional[Node]:
    """z - logsumexp(z, axis, keepdims) -> log_softmax(z, axis)."""
    a, b = n.inputs
    if b.op == "logsumexp" and b.inputs[0] is a and len(b.attrs["axes"]) == 1 and b.attrs["keepdims"]:
        return apply("log_softmax", [a], axis=b.attrs["axes"][0])
    return None


@rewrite("stabilize", ops=("exp",))
def exp_log_softmax(n: Node) -> Optional[Node]:
    """exp(log_softmax(z)) -> softmax(z)."""
    x = n.inputs[0]
    return apply("softmax", x.inputs, **x.attrs) if x.op == "log_softmax" else None


@rewrite("stabilize", ops=("div",))
def sigmoid_of_div(n: Node) -> Optional[Node]:
    """1 / (1 + exp(-z)) -> sigmoid(z)."""
    a, b = n.inputs
    if uniform(a) == 1:
        z = one_plus(b)
        if z is not None and z.op == "exp" and z.inputs[0].op == "neg" and z.shape == n.shape:
            return apply("sigmoid", [z.inputs[0].inputs[0]])
    return None


@rewrite("stabilize", ops=("div",))
def softmax_of_div(n: Node) -> Optional[Node]:
    """exp(z) / sum(exp(z), axis, keepdims) -> softmax(z, axis)."""
    a, b = n.inputs
    if (a.op == "exp" and b.op == "sum" and b.attrs["keepdims"] and len(b.attrs["axes"]) == 1
            and b.inputs[0] is a):
        return apply("softmax", [a.inputs[0]], axis=b.attrs["axes"][0])
    return None
