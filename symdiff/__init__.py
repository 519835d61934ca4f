"""symdiff: a symbolic-differentiation and code-generation compiler.

Declare a model with ``sd.input``/``sd.param`` and NumPy-named functions, differentiate it
symbolically with ``sd.grad``, and compile the result with ``sd.compile``.
"""
# fill the op table first (the op modules register into symdiff.optable; the DSL is generated from it)
from . import ops_elementwise, ops_random, ops_tensor  # noqa: F401,I001
from . import ops_math  # noqa: F401,I001
from .api import (ELEMENTWISE, as_tensor, astype, broadcast_to, cross_entropy, input, log_softmax, logsumexp,
                  matmul, max, mean, mse, param, reshape, softmax, sum, transpose)
from .define import define_elementwise
from .api_math import DSL as _MATH_DSL
from .autodiff import grad
from .backends import list_backends
from .check import GradCheckError, GradReport, check_grad
from .compiled import CompiledFunction, compile
from .inspection import format_graph, to_dot, to_networkx
from .ir import Node, Tensor, const
from .simplify import simplify

__version__ = "0.1.0"

globals().update(ELEMENTWISE)  # sd.add, sd.subtract, sd.tanh, ...: one per op-table entry with a DSL name
globals().update(_MATH_DSL)  # sd.gelu, sd.elu, sd.round, sd.absolute, ...: math functions with parameters, aliases

__all__ = [
    *ELEMENTWISE, "as_tensor", "astype", "broadcast_to", "cross_entropy", "input", "log_softmax", "logsumexp",
    "matmul", "max", "mean", "mse", "param", "reshape", "softmax", "sum", "transpose", "define_elementwise",
    "grad", "check_grad", "GradCheckError", "GradReport", "compile", "CompiledFunction", "list_backends",
    "to_networkx", "format_graph", "to_dot", "Node", "Tensor", "const", "simplify", *_MATH_DSL,
]

from . import nn  # noqa: E402  (after the core: nn builds on api, autodiff and compiled)

__all__.append("nn")
