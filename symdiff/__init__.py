"""symdiff: a symbolic-differentiation and code-generation compiler.

Declare a model with ``sd.input``/``sd.param`` and NumPy-named functions, differentiate it
symbolically with ``sd.grad``, and compile the result with ``sd.compile``.
"""
# fill the op table first (the op modules register into symdiff.optable; the DSL is generated from it)
from . import ops_elementwise, ops_random, ops_tensor, ops_compare, ops_reduce  # noqa: F401,I001
from . import ops_gather, ops_index, ops_math, ops_conv  # noqa: F401,I001
from .api import (ELEMENTWISE, as_tensor, astype, broadcast_to, cross_entropy, input, log_softmax, logsumexp,
                  matmul, max, mean, mse, param, reshape, softmax, sum, transpose)
from .api_shape import (append, array_split, atleast_1d, atleast_2d, atleast_3d, column_stack, concatenate, dsplit,
                        dstack, expand_dims, flatten, flip, fliplr, flipud, hsplit, hstack, moveaxis, ravel, rollaxis,
                        split, squeeze, stack, swapaxes, vsplit, vstack)
from .api_arrange import (array, asarray, cross, diagonal, diff, pad, repeat, roll, rot90, tile, trace, tril, triu)
from .api_creation import (arange, eye, full, full_like, identity, linspace, ones, ones_like, zeros,
                           zeros_like)
from .api_reduce import all, amax, amin, any, argmax, argmin, average, min, nanmean, nansum, norm, prod, std, var
from .api_products import dot, einsum, inner, kron, matrix_transpose, outer, tensordot, vdot
from . import linalg
from .api_conv import conv1d, conv2d, conv3d, conv_transpose1d, conv_transpose2d
from .api_select import bool_operator, clip, mod, nan_to_num, select
from .api_gather import (advanced_index, argpartition, argsort, cumprod, cumsum, partition, sort, take,
                         take_along_axis)
from .api_pool import (adaptive_avg_pool1d, adaptive_avg_pool2d, adaptive_max_pool1d, adaptive_max_pool2d,
                       avg_pool1d, avg_pool2d, max_pool1d, max_pool2d)
from .define import define_elementwise
from .api_math import DSL as _MATH_DSL
from .autodiff import grad
from .transforms import hessian, hvp, jacobian, jvp, vjp
from .sparsity import jacobian_sparsity, sparse_jacobian
from .exporting import export, load_library
from .batching import vmap
from .backends import list_backends
from .check import GradCheckError, GradReport, check_grad
from .compiled import CompiledFunction, compile
from .inspection import format_graph, to_dot, to_networkx
from .inspection_html import to_html
from .interchange import from_networkx, load, save
from .ir import Node, Tensor, const
from .simplify import simplify

__version__ = "0.1.0"

globals().update(ELEMENTWISE)  # sd.add, sd.subtract, sd.tanh, ...: one per op-table entry with a DSL name
globals().update(_MATH_DSL)  # sd.gelu, sd.elu, sd.round, sd.absolute, ...: math functions with parameters, aliases

__all__ = [
    *ELEMENTWISE, "as_tensor", "astype", "broadcast_to", "cross_entropy", "input", "log_softmax", "logsumexp",
    "matmul", "max", "mean", "mse", "param", "reshape", "softmax", "sum", "transpose", "define_elementwise",
    "grad", "check_grad", "GradCheckError", "GradReport", "compile", "CompiledFunction", "list_backends",
    "advanced_index", "cumprod", "cumsum", "take", "take_along_axis",
    "arange", "eye", "full", "full_like", "identity", "linspace", "ones", "ones_like", "zeros", "zeros_like",
    "amax", "amin", "argmax", "argmin", "average", "min", "norm", "prod", "std", "var", "linalg",
    "all", "any", "nansum", "nanmean",
    "dot", "einsum", "inner", "kron", "matrix_transpose", "outer", "tensordot", "vdot",
    "to_networkx", "from_networkx", "save", "load", "format_graph", "to_dot", "to_html", "Node", "Tensor", "const", "simplify",
    "clip", "select", "nan_to_num", "mod",
    "argpartition", "argsort", "partition", "sort", *_MATH_DSL,
    "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d",
    "jvp", "vjp", "hvp", "jacobian", "hessian", "jacobian_sparsity", "sparse_jacobian",
    "export", "load_library",
]

from . import nn  # noqa: E402  (after the core: nn builds on api, autodiff and compiled)

__all__.append("nn")
__all__ += ["append", "array_split", "atleast_1d", "atleast_2d", "atleast_3d", "column_stack", "concatenate",
            "dsplit", "dstack", "expand_dims", "flatten", "flip", "fliplr", "flipud", "hsplit", "hstack", "moveaxis",
            "ravel", "rollaxis", "split", "squeeze", "stack", "swapaxes", "vsplit", "vstack", "array", "asarray",
            "cross", "diagonal", "diff", "pad", "repeat", "roll", "rot90", "tile", "trace", "tril", "triu"]
__all__.append("vmap")
__all__ += ["adaptive_avg_pool1d", "adaptive_avg_pool2d", "adaptive_max_pool1d", "adaptive_max_pool2d", "avg_pool1d",
            "avg_pool2d", "max_pool1d", "max_pool2d"]
