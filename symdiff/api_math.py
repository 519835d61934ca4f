"""DSL functions of the math set that take parameters, and NumPy's second names (``sd.absolute``, ``sd.fix``).

The ops themselves are op-table entries (``ops_math.py``); these functions build on them with the parameter
as a constant operand: ``elu(x, alpha) = relu(x) + alpha * expm1(min(x, 0))``, ``leaky_relu``, ``celu``,
``hardtanh`` (a clip), ``gelu(x, approximate)`` (the exact or the tanh op), ``round(x, decimals)``.
"""
from __future__ import annotations

from typing import Callable

from .api import TensorLike, as_tensor, elementwise_function
from .ir import Node, apply


# -- DSL functions with parameters, and NumPy's second names ------------------------------------------------------

def _f(name: str) -> Callable[..., Node]:
    return elementwise_function(name)


def gelu(x: TensorLike, approximate=False) -> Node:
    """GELU x Phi(x): exact (erf) by default (as torch); ``approximate=True`` or ``"tanh"``: the tanh form
    (jax.nn.gelu's default, torch's ``approximate="tanh"``)."""
    if approximate in (False, None, "none"):
        return apply("gelu", [as_tensor(x)])
    if approximate in (True, "tanh"):
        return apply("gelu_tanh", [as_tensor(x)])
    raise ValueError(f"gelu: approximate must be False/'none' or True/'tanh', got {approximate!r}")


def _minus_relu_neg(x: Node) -> Node:
    return -_f("relu")(-x)  # min(x, 0)


def elu(x: TensorLike, alpha: float = 1.0) -> Node:
    """x for x > 0, alpha (exp(x) - 1) otherwise."""
    x = as_tensor(x)
    return _f("relu")(x) + float(alpha) * _f("expm1")(_minus_relu_neg(x))


def celu(x: TensorLike, alpha: float = 1.0) -> Node:
    """max(0, x) + min(0, alpha (exp(x / alpha) - 1))."""
    x = as_tensor(x)
    if alpha == 0:
        raise ValueError("celu: alpha must be non-zero")
    return _f("relu")(x) + float(alpha) * _f("expm1")(_minus_relu_neg(x) * (1.0 / float(alpha)))


def leaky_relu(x: TensorLike, negative_slope: float = 0.01) -> Node:
    """x for x > 0, negative_slope * x otherwise."""
    x = as_tensor(x)
    return _f("relu")(x) + float(negative_slope) * _minus_relu_neg(x)


def hardtanh(x: TensorLike, min_val: float = -1.0, max_val: float = 1.0) -> Node:
    """clip(x, min_val, max_val)."""
    if min_val > max_val:
        raise ValueError(f"hardtanh: min_val {min_val} > max_val {max_val}")
    return _f("minimum")(_f("maximum")(as_tensor(x), float(min_val)), float(max_val))


def round(x: TensorLike, decimals: int = 0) -> Node:  # noqa: A001 - NumPy's name
    """Round half to even to ``decimals`` places (np.round: rint(x * 10**d) / 10**d); derivative 0."""
    x = as_tensor(x)
    if int(decimals) != decimals:
        raise TypeError(f"round: decimals must be an integer, got {decimals!r}")
    if decimals == 0:
        return _f("rint")(x)
    s = 10.0 ** abs(int(decimals))  # as NumPy: rint(x * s) / s, or rint(x / s) * s for decimals < 0
    return _f("rint")(x * s) / s if decimals > 0 else _f("rint")(x / s) * s


# NumPy / JAX / PyTorch second names
ALIASES = {"absolute": "abs", "fabs": "abs", "fix": "trunc", "radians": "deg2rad", "degrees": "rad2deg",
           "swish": "silu", "hard_silu": "hard_swish", "true_divide": "div"}
DSL: dict[str, Callable[..., Node]] = {
    "gelu": gelu, "elu": elu, "celu": celu, "leaky_relu": leaky_relu, "hardtanh": hardtanh, "round": round,
    "around": round, **{a: _f(t) for a, t in ALIASES.items()},
}
