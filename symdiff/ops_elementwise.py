"""Elementwise ops: one line each, value as a SymPy expression, derivative by ``sympy.diff``.

Functions SymPy lacks (sigmoid, softplus, relu) are SymPy ``Function`` subclasses whose ``fdiff``
states the derivative in terms of the function itself, so derivative graphs reuse forward values
(d/dx sigmoid = sigmoid * (1 - sigmoid)) and stay numerically stable.
"""
from __future__ import annotations

import numpy as np
import sympy as sp
from sympy.codegen.cfunctions import expm1, log1p

from . import dtypes as _dt
from .optable import X, elementwise


class sigmoid(sp.Function):
    """sigma(x) = 1 / (1 + exp(-x))"""

    def fdiff(self, argindex=1):
        s = sigmoid(self.args[0])
        return s * (1 - s)  # d/dx sigma = sigma (1 - sigma)

    def _eval_rewrite_as_exp(self, x, **kw):
        return 1 / (1 + sp.exp(-x))


class softplus(sp.Function):
    """softplus(x) = log(1 + exp(x)), evaluated stably as max(x, 0) + log1p(exp(-|x|))"""

    def fdiff(self, argindex=1):
        return sigmoid(self.args[0])  # d/dx softplus = sigma

    def _eval_rewrite_as_exp(self, x, **kw):
        return sp.log(1 + sp.exp(x))


class relu(sp.Function):
    """relu(x) = max(x, 0); derivative H(x) with H(0) = 0 (as PyTorch and JAX)."""

    def fdiff(self, argindex=1):
        # H(relu(x)) = H(x) (relu(x) > 0 iff x > 0; NaN stays NaN): the mask reads the forward output, so a
        # network needs relu(x) after the forward pass, not x, and the product before it can apply the relu
        # in its epilogue instead of storing x (codegen/lower.py)
        return sp.Heaviside(relu(self.args[0]), 0)


def _sigmoid_np(a):
    # stable both sides: exp of a non-positive number only
    e = np.exp(-np.abs(a))
    return np.where(a >= 0, 1 / (1 + e), e / (1 + e)).astype(np.result_type(a), copy=False)


def _softplus_np(a):
    return np.logaddexp(np.zeros((), a.dtype), a)


x, y = X[0], X[1]

# name, value, numpy impl, cost class, DSL name (sd.<api>; None: internal), doc
elementwise("add", x + y, np.add, "cheap", "add", "elementwise add with NumPy broadcasting")
elementwise("sub", x - y, np.subtract, "cheap", "subtract", "elementwise subtract with NumPy broadcasting")
elementwise("mul", x * y, np.multiply, "cheap", "multiply", "elementwise multiply with NumPy broadcasting")
elementwise("div", x / y, np.divide, "expensive", "divide", "elementwise divide with NumPy broadcasting")
elementwise("pow", x ** y, np.power, "expensive", "power", "elementwise power with NumPy broadcasting")
elementwise("neg", -x, np.negative, "cheap", "negative", "-x")
elementwise("square", x ** 2, np.square, "cheap", "square", "x**2")
elementwise("sqrt", sp.sqrt(x), np.sqrt, "expensive", "sqrt", "square root")
elementwise("exp", sp.exp(x), np.exp, "expensive", "exp", "e**x")
elementwise("log", sp.log(x), np.log, "expensive", "log", "natural logarithm")
elementwise("log1p", log1p(x), np.log1p, "expensive", "log1p", "log(1 + x), accurate for small x")
elementwise("expm1", expm1(x), np.expm1, "expensive", "expm1", "exp(x) - 1, accurate for small x")
elementwise("sin", sp.sin(x), np.sin, "expensive", "sin", "sine")
elementwise("cos", sp.cos(x), np.cos, "expensive", "cos", "cosine")
elementwise("tanh", sp.tanh(x), np.tanh, "expensive", "tanh", "hyperbolic tangent")
elementwise("abs", sp.Abs(x), np.abs, "cheap", "abs", "absolute value")
elementwise("sign", sp.sign(x), np.sign, "cheap", "sign", "sign(x) in {-1, 0, 1}")
elementwise("maximum", sp.Max(x, y), np.maximum, "cheap", "maximum", "elementwise maximum with NumPy broadcasting")
elementwise("minimum", sp.Min(x, y), np.minimum, "cheap", "minimum", "elementwise minimum with NumPy broadcasting")
elementwise("sigmoid", sigmoid(x), _sigmoid_np, "expensive", "sigmoid", "1 / (1 + exp(-x)), stable for large |x|")
elementwise("softplus", softplus(x), _softplus_np, "expensive", "softplus", "log(1 + exp(x)), stable")
elementwise("relu", relu(x), lambda a: np.maximum(a, np.zeros((), a.dtype)), "cheap", "relu",
            "max(x, 0); derivative 0 at x = 0")
elementwise("heaviside", sp.Heaviside(x), lambda a: np.heaviside(a, np.asarray(0.5, a.dtype)), "cheap")  # H(0) = 1/2
elementwise("step", sp.Heaviside(x, 0), lambda a: np.heaviside(a, np.zeros((), a.dtype)), "cheap")  # H(0) = 0

# integer-closed ops (NumPy keeps int32/int64 operands integers; symdiff/dtypes.py "numeric"); every other
# elementwise op computes in floats (ints promote to float64) and rejects bool operands
for _op in ("add", "sub", "mul", "neg", "square", "abs", "sign", "maximum", "minimum"):
    _dt.set_rule(_op, "numeric")
