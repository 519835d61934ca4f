"""symdiff: a symbolic-differentiation and code-generation compiler.

Declare a model with ``sd.input``/``sd.param`` and NumPy-named functions, differentiate it
symbolically with ``sd.grad``, and compile the result with ``sd.compile``.
"""
from .api import (abs, add, as_tensor, astype, broadcast_to, cos, cross_entropy, divide, exp, expm1, input,
                  log, log1p, log_softmax, logsumexp, matmul, max, maximum, mean, minimum, mse, multiply,
                  negative, param, power, relu, reshape, sigmoid, sign, sin, softmax, softplus, sqrt, square,
                  subtract, sum, tanh, transpose)
from .autodiff import grad
from .backends import list_backends
from .check import GradCheckError, GradReport, check_grad
from .compiled import CompiledFunction, compile
from .inspection import format_graph, to_dot, to_networkx
from .ir import Node, Tensor, const
from .simplify import simplify

__version__ = "0.1.0"

__all__ = [
    "abs", "add", "as_tensor", "astype", "broadcast_to", "cos", "cross_entropy", "divide", "exp", "expm1", "input",
    "log", "log1p", "log_softmax", "logsumexp", "matmul", "max", "maximum", "mean", "minimum", "mse", "multiply",
    "negative", "param", "power", "relu", "reshape", "sigmoid", "sign", "sin", "softmax", "softplus", "sqrt",
    "square", "subtract", "sum", "tanh", "transpose", "grad", "check_grad", "GradCheckError", "GradReport",
    "compile", "CompiledFunction", "list_backends", "to_networkx", "format_graph", "to_dot", "Node", "Tensor", "const", "simplify",
]

from . import nn  # noqa: E402  (after the core: nn builds on api, autodiff and compiled)

__all__.append("nn")
