"""The NumPy elementwise math set for float tensors, and the deep-learning activations.

One ``elementwise(...)`` line per op (value as a SymPy expression, derivative by ``sympy.diff``). Ops whose
expression uses existing heads only (``sinh = (expm1(x) - expm1(-x)) / 2``, ``silu = x * sigmoid(x)``) are
composites: the compiled backends expand them (``codegen/expand.py``), so they need no backend code. The
new SymPy heads (tan, asin, ..., erf, erfinv, floor, ...) have one scalar rule per backend
(``codegen/llvm/scalar_rules.py`` + ``codegen/llvm/mathlib_ext.py``, ``codegen/cuda/scalar_rules.py``).

Heads SymPy lacks, or whose SymPy derivative is not an op (``Derivative(floor(x), x)``), are ``Function``
subclasses here whose ``fdiff`` states the derivative: the rounding functions have derivative 0 (as JAX),
``fmax``/``fmin`` split a tie as ``maximum`` does (Heaviside(0) = 1/2), ``logaddexp`` differentiates to
sigmoid(x - y). DSL functions with parameters (``elu(x, alpha)``, ``leaky_relu``, ``hardtanh``, ``celu``,
``gelu(approximate=...)``, ``round(decimals=...)``) are built from ops with the parameter as a constant.
"""
from __future__ import annotations

import math
from typing import Callable

import numpy as np
import sympy as sp
from sympy.codegen.cfunctions import exp2, expm1, hypot, log2, log10

from .ops_elementwise import relu, sigmoid, softplus
from .optable import X, elementwise
from .sympy_bridge import PARTIALS


class _ZeroDerivative(sp.Function):
    """A piecewise-constant function: derivative 0 almost everywhere (floor, ceil, rint, trunc), as JAX."""

    def fdiff(self, argindex=1):
        return sp.Integer(0)


class floor(_ZeroDerivative):
    """largest integer <= x"""


class ceil(_ZeroDerivative):
    """smallest integer >= x"""


class rint(_ZeroDerivative):
    """nearest integer, ties to even (np.rint, np.round)"""


class trunc(_ZeroDerivative):
    """integer part, rounding toward zero (np.trunc, np.fix)"""


class cbrt(sp.Function):
    """real cube root (negative for x < 0; SymPy's cbrt is the principal complex root)"""

    def fdiff(self, argindex=1):
        return 1 / (3 * cbrt(self.args[0]) ** 2)  # d/dx x^(1/3) = 1 / (3 x^(2/3)); inf at 0


class copysign(sp.Function):
    """|x| with the sign of y; d/dx = sign(x) copysign(1, y), d/dy = 0 (as jnp.copysign)"""

    def fdiff(self, argindex=1):
        x, y = self.args
        return sp.sign(x) * copysign(1, y) if argindex == 1 else sp.Integer(0)


class fmax(sp.Function):
    """maximum ignoring NaN (np.fmax); a tie splits the gradient like np.maximum"""

    def fdiff(self, argindex=1):
        x, y = self.args
        return sp.Heaviside(x - y) if argindex == 1 else sp.Heaviside(y - x)


class fmin(sp.Function):
    """minimum ignoring NaN (np.fmin)"""

    def fdiff(self, argindex=1):
        x, y = self.args
        return sp.Heaviside(y - x) if argindex == 1 else sp.Heaviside(x - y)


class logaddexp(sp.Function):
    """log(exp(x) + exp(y)), evaluated stably as max(x, y) + log1p(exp(-|x - y|))"""

    def fdiff(self, argindex=1):
        x, y = self.args
        return sigmoid(x - y) if argindex == 1 else sigmoid(y - x)


class sinc(sp.Function):
    """sin(pi x) / (pi x), 1 at x = 0 (np.sinc, normalised)"""

    def fdiff(self, argindex=1):
        x = self.args[0]
        return (sp.cos(sp.pi * x) - sinc(x)) / x  # NaN at exactly x = 0 (the limit is 0)


class log_or_zero(sp.Function):
    """log(x) with log(0) = 0: the factor of d/dy x**y = x**y log(x), so that d/dy 0**y = 0 (as JAX)"""

    @classmethod
    def eval(cls, x):
        if x.is_zero:
            return sp.Integer(0)
        if x.is_Number and x.is_positive:
            return sp.log(x)
        return None

    def fdiff(self, argindex=1):
        return 1 / self.args[0]


# -- NumPy implementations where NumPy/SciPy lack the exact function --------------------------------------------

def _same(f: Callable) -> Callable:
    """Run f and keep the input dtype (scipy/np helpers may compute in float64)."""
    def impl(*a):
        return np.asarray(f(*a)).astype(np.result_type(*a), copy=False)
    return impl


def _erf(a):
    from scipy import special
    return special.erf(a)


def _erfc(a):
    from scipy import special
    return special.erfc(a)


def _erfinv(a):
    from scipy import special
    return special.erfinv(a)


def _sinc(a):
    return np.sinc(a)


def _log_or_zero(a):
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(a == 0, np.zeros((), a.dtype), np.log(a)).astype(a.dtype, copy=False)


def _sigmoid_np(a):
    e = np.exp(-np.abs(a))
    return np.where(a >= 0, 1 / (1 + e), e / (1 + e)).astype(a.dtype, copy=False)


def _softplus_np(a):
    return np.logaddexp(np.zeros((), a.dtype), a)


def _gelu_np(a):
    from scipy import special
    return (a * special.erfc(-a / np.sqrt(2.0)) / 2).astype(a.dtype, copy=False)


_GELU_C = math.sqrt(2.0 / math.pi)


def _gelu_tanh_np(a):
    return (a * _sigmoid_np(2 * _GELU_C * (a + 0.044715 * a ** 3))).astype(a.dtype, copy=False)


def _relu6_np(a):
    return np.minimum(np.maximum(a, 0), 6).astype(a.dtype, copy=False)


_SELU_ALPHA, _SELU_SCALE = 1.6732632423543772848170429916717, 1.0507009873554804934193349852946


def _selu_np(a):
    return (_SELU_SCALE * np.where(a > 0, a, _SELU_ALPHA * np.expm1(np.minimum(a, 0)))).astype(a.dtype, copy=False)


x, y = X[0], X[1]
_F = lambda v: sp.Float(v, 17)  # noqa: E731  (a float constant of an expression)
_LN2 = _F(math.log(2.0))

# name, value, numpy impl, cost class, DSL name, doc
elementwise("tan", sp.tan(x), np.tan, "expensive", "tan", "tangent")
elementwise("arcsin", sp.asin(x), np.arcsin, "expensive", "arcsin", "inverse sine, [-1, 1] -> [-pi/2, pi/2]")
elementwise("arccos", sp.acos(x), np.arccos, "expensive", "arccos", "inverse cosine, [-1, 1] -> [0, pi]")
elementwise("arctan", sp.atan(x), np.arctan, "expensive", "arctan", "inverse tangent")
elementwise("arctan2", sp.atan2(x, y), np.arctan2, "expensive", "arctan2", "arctan2(y, x): the angle of (x, y)")
elementwise("sinh", (expm1(x) - expm1(-x)) / 2, np.sinh, "expensive", "sinh", "hyperbolic sine")
elementwise("cosh", (sp.exp(x) + sp.exp(-x)) / 2, np.cosh, "expensive", "cosh", "hyperbolic cosine")
elementwise("arcsinh", sp.asinh(x), np.arcsinh, "expensive", "arcsinh", "inverse hyperbolic sine")
elementwise("arccosh", sp.acosh(x), np.arccosh, "expensive", "arccosh", "inverse hyperbolic cosine, x >= 1")
elementwise("arctanh", sp.atanh(x), np.arctanh, "expensive", "arctanh", "inverse hyperbolic tangent, |x| < 1")
elementwise("exp2", exp2(x), np.exp2, "expensive", "exp2", "2**x")
elementwise("log2", log2(x), np.log2, "expensive", "log2", "base-2 logarithm")
elementwise("log10", log10(x), np.log10, "expensive", "log10", "base-10 logarithm")
elementwise("logaddexp", logaddexp(x, y), np.logaddexp, "expensive", "logaddexp", "log(exp(x) + exp(y)), stable")
elementwise("logaddexp2", logaddexp(x * _LN2, y * _LN2) / _LN2, np.logaddexp2, "expensive", "logaddexp2",
            "log2(2**x + 2**y), stable")
elementwise("hypot", hypot(x, y), np.hypot, "expensive", "hypot", "sqrt(x**2 + y**2) without overflow")
elementwise("reciprocal", 1 / x, np.reciprocal, "expensive", "reciprocal", "1 / x")
elementwise("rsqrt", 1 / sp.sqrt(x), lambda a: 1 / np.sqrt(a), "expensive", "rsqrt", "1 / sqrt(x)")
elementwise("cbrt", cbrt(x), np.cbrt, "expensive", "cbrt", "real cube root")
elementwise("erf", sp.erf(x), _same(_erf), "expensive", "erf", "error function")
elementwise("erfc", sp.erfc(x), _same(_erfc), "expensive", "erfc", "1 - erf(x), accurate for large x")
elementwise("erfinv", sp.erfinv(x), _same(_erfinv), "expensive", "erfinv", "inverse error function, (-1, 1)")
elementwise("floor", floor(x), np.floor, "cheap", "floor", "largest integer <= x; derivative 0")
elementwise("ceil", ceil(x), np.ceil, "cheap", "ceil", "smallest integer >= x; derivative 0")
elementwise("rint", rint(x), np.rint, "cheap", "rint", "nearest integer, ties to even; derivative 0")
elementwise("trunc", trunc(x), np.trunc, "cheap", "trunc", "round toward zero; derivative 0")
elementwise("copysign", copysign(x, y), np.copysign, "cheap", "copysign", "|x| with the sign of y")
elementwise("deg2rad", x * _F(math.pi / 180), np.deg2rad, "cheap", "deg2rad", "degrees to radians")
elementwise("rad2deg", x * _F(180 / math.pi), np.rad2deg, "cheap", "rad2deg", "radians to degrees")
elementwise("sinc", sinc(x), _sinc, "expensive", "sinc", "sin(pi x) / (pi x), 1 at 0")
elementwise("fmax", fmax(x, y), np.fmax, "cheap", "fmax", "elementwise maximum ignoring NaN")
elementwise("fmin", fmin(x, y), np.fmin, "cheap", "fmin", "elementwise minimum ignoring NaN")
elementwise("positive", x, np.positive, "free", "positive", "+x")
elementwise("log_or_zero", log_or_zero(x), _log_or_zero, "expensive", None,
            "log(x) with 0 at x = 0 (internal: d/dy x**y)")
# deep-learning activations
# (evaluate=False: SymPy would rewrite erfc(-z) as 2 - erfc(z), which cancels to 0 in the left tail)
elementwise("gelu", x * sp.erfc(-x / sp.sqrt(2), evaluate=False) / 2, _gelu_np, "expensive", None,
            "x Phi(x) = x erfc(-x / sqrt 2) / 2 (exact GELU)")
elementwise("gelu_tanh", x * sigmoid(2 * _F(_GELU_C) * (x + _F(0.044715) * x ** 3)), _gelu_tanh_np, "expensive",
            None, "x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) / 2 (tanh GELU), as x sigmoid(2 u)")
elementwise("silu", x * sigmoid(x), lambda a: a * _sigmoid_np(a), "expensive", "silu", "x sigmoid(x) (swish)")
elementwise("log_sigmoid", -softplus(-x), lambda a: -_softplus_np(-a), "expensive", "log_sigmoid",
            "log(sigmoid(x)) = -softplus(-x), stable")
elementwise("softsign", x / (1 + sp.Abs(x)), lambda a: a / (1 + np.abs(a)), "expensive", "softsign", "x / (1 + |x|)")
elementwise("mish", x * sp.tanh(softplus(x)), lambda a: a * np.tanh(_softplus_np(a)), "expensive", "mish",
            "x tanh(softplus(x))")
elementwise("selu", _F(_SELU_SCALE) * (relu(x) + _F(_SELU_ALPHA) * expm1(-relu(-x))), _selu_np, "expensive",
            "selu", "scale * elu(x, alpha) with the self-normalising constants")
elementwise("relu6", sp.Min(relu(x), 6), _relu6_np, "cheap", "relu6", "min(max(x, 0), 6)")
elementwise("hard_sigmoid", sp.Min(relu(x + 3), 6) / 6, lambda a: _relu6_np(a + 3) / 6, "cheap", "hard_sigmoid",
            "relu6(x + 3) / 6")
elementwise("hard_swish", x * sp.Min(relu(x + 3), 6) / 6, lambda a: a * _relu6_np(a + 3) / 6, "cheap",
            "hard_swish", "x relu6(x + 3) / 6")

# d/dy x**y = x**y log(x), with log replaced by 0 at x = 0 (JAX's convention: d/dy 0**y = 0)
PARTIALS[("pow", 1)] = X[0] ** X[1] * log_or_zero(X[0])
