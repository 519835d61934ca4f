"""Op-suite cases for elementwise math (merged into tests/test_ops.py CASES / API_CASES).

Inputs lie inside each function's domain and away from its kinks and jumps (the finite-difference checks
need a smooth neighbourhood); references are written with other NumPy functions than the op's own impl.
Special values (inf, nan, 0, domain edges), the singular-point conventions and ulp bounds are in
tests/test_math_ops.py.
"""
from __future__ import annotations

import math

import numpy as np

import symdiff as sd
from symdiff.ir import apply

from conftest import separated, signed_away
from test_ops import U_SHAPE, Case

_erf = np.vectorize(math.erf, otypes=[float])
_erfc = np.vectorize(math.erfc, otypes=[float])


def unary(op, ref, gen=lambda r: {"x": r.standard_normal(U_SHAPE)}):
    return Case(gen, lambda x: apply(op, [x]), ref)


# binary ops on same-shape operands: broadcasting (and the reductions of its gradients) is the same code for every
# op and is tested by add/sub/...; here it would only make the one-graph-per-backend suite slower to compile
def binary(op, ref, gen=lambda r: {"a": r.standard_normal(U_SHAPE), "b": r.standard_normal(U_SHAPE)}):
    return Case(gen, lambda a, b: apply(op, [a, b]), ref)


def _u(lo, hi):
    return lambda r: {"x": r.uniform(lo, hi, U_SHAPE)}


def _away_from_integers(r, frac=(0.1, 0.9)):
    return {"x": r.integers(-3, 3, U_SHAPE) + r.uniform(*frac, U_SHAPE)}


def _away_from_halves(r):  # neither near an integer (the jump of rint) nor near k + 1/2 (where it rounds)
    return {"x": r.integers(-3, 3, U_SHAPE) + r.choice([-1.0, 1.0], U_SHAPE) * r.uniform(0.1, 0.4, U_SHAPE)}


def _pair_sep(r):
    a, b = separated(r, [U_SHAPE, U_SHAPE], margin=0.1)
    return {"a": a, "b": b}


def _pair_away(r):
    return {"a": signed_away(r, U_SHAPE), "b": signed_away(r, U_SHAPE)}


def _hard_gen(r):  # away from the kinks at -3 and 3
    return {"x": r.choice([-4.5, 0.0, 4.5], U_SHAPE) + r.uniform(-1.0, 1.0, U_SHAPE)}


def _relu6_gen(r):  # away from 0 and 6
    return {"x": r.choice([-1.5, 3.0, 7.5], U_SHAPE) + r.uniform(-1.0, 1.0, U_SHAPE)}


def _phi(x):  # standard normal CDF
    return 0.5 * (1 + _erf(x / math.sqrt(2)))


_SELU_A, _SELU_S = 1.6732632423543772, 1.0507009873554805

CASES: dict = {
    "tan": unary("tan", lambda x: np.sin(x) / np.cos(x), _u(-1.2, 1.2)),
    "arcsin": unary("arcsin", lambda x: np.arctan2(x, np.sqrt(1 - x * x)), _u(-0.8, 0.8)),
    "arccos": unary("arccos", lambda x: np.pi / 2 - np.arctan2(x, np.sqrt(1 - x * x)), _u(-0.8, 0.8)),
    "arctan": unary("arctan", lambda x: np.arctan2(x, 1.0)),
    "arctan2": binary("arctan2", lambda a, b: np.angle(b + 1j * a), _pair_away),
    "sinh": unary("sinh", lambda x: (np.exp(x) - np.exp(-x)) / 2),
    "cosh": unary("cosh", lambda x: (np.exp(x) + np.exp(-x)) / 2),
    "arcsinh": unary("arcsinh", lambda x: np.log(x + np.sqrt(x * x + 1)), lambda r: {"x": 2 * r.standard_normal(U_SHAPE)}),
    "arccosh": unary("arccosh", lambda x: np.log(x + np.sqrt(x * x - 1)), _u(1.2, 3.0)),
    "arctanh": unary("arctanh", lambda x: 0.5 * np.log((1 + x) / (1 - x)), _u(-0.8, 0.8)),
    "exp2": unary("exp2", lambda x: np.exp(x * np.log(2))),
    "log2": unary("log2", lambda x: np.log(x) / np.log(2), _u(0.2, 5.0)),
    "log10": unary("log10", lambda x: np.log(x) / np.log(10), _u(0.2, 5.0)),
    "logaddexp": binary("logaddexp", lambda a, b: np.log(np.exp(a) + np.exp(b))),
    "logaddexp2": binary("logaddexp2", lambda a, b: np.log2(2.0 ** a + 2.0 ** b)),
    "hypot": binary("hypot", lambda a, b: np.sqrt(a * a + b * b), _pair_away),
    "reciprocal": unary("reciprocal", lambda x: x ** -1.0, lambda r: {"x": signed_away(r, U_SHAPE, 0.5)}),
    "rsqrt": unary("rsqrt", lambda x: x ** -0.5, _u(0.3, 3.0)),
    "cbrt": unary("cbrt", lambda x: np.sign(x) * np.abs(x) ** (1 / 3), lambda r: {"x": signed_away(r, U_SHAPE, 0.3, 3)}),
    "erf": unary("erf", _erf),
    "erfc": unary("erfc", _erfc, lambda r: {"x": 1.5 * r.standard_normal(U_SHAPE)}),
    "erfinv": unary("erfinv", lambda x: np.vectorize(lambda v: _newton_erfinv(v))(x), _u(-0.8, 0.8)),
    "floor": unary("floor", lambda x: x - np.mod(x, 1.0), _away_from_integers),
    "ceil": unary("ceil", lambda x: -((-x) - np.mod(-x, 1.0)), _away_from_integers),
    "rint": unary("rint", lambda x: np.floor(x + 0.5), _away_from_halves),
    "trunc": unary("trunc", lambda x: np.sign(x) * np.floor(np.abs(x)), _away_from_integers),
    "copysign": binary("copysign", lambda a, b: np.abs(a) * np.sign(b), _pair_away),
    "deg2rad": unary("deg2rad", lambda x: x / 180 * np.pi, lambda r: {"x": 90 * r.standard_normal(U_SHAPE)}),
    "rad2deg": unary("rad2deg", lambda x: x * 180 / np.pi),
    "sinc": unary("sinc", lambda x: np.sin(np.pi * x) / (np.pi * x), lambda r: {"x": signed_away(r, U_SHAPE, 0.2, 2.5)}),
    "fmax": binary("fmax", lambda a, b: np.where(a > b, a, b), _pair_sep),
    "fmin": binary("fmin", lambda a, b: np.where(a < b, a, b), _pair_sep),
    "positive": unary("positive", lambda x: x + 0.0),
    "log_or_zero": unary("log_or_zero", lambda x: np.log(x), _u(0.3, 3.0)),
    "gelu": unary("gelu", lambda x: x * _phi(x), lambda r: {"x": 2 * r.standard_normal(U_SHAPE)}),
    "gelu_tanh": unary("gelu_tanh", lambda x: 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x ** 3))),
                       lambda r: {"x": 2 * r.standard_normal(U_SHAPE)}),
    "silu": unary("silu", lambda x: x / (1 + np.exp(-x)), lambda r: {"x": 3 * r.standard_normal(U_SHAPE)}),
    "log_sigmoid": unary("log_sigmoid", lambda x: np.log(1 / (1 + np.exp(-x))), lambda r: {"x": 3 * r.standard_normal(U_SHAPE)}),
    "softsign": unary("softsign", lambda x: x / (1 + np.abs(x)), lambda r: {"x": signed_away(r, U_SHAPE)}),
    "mish": unary("mish", lambda x: x * np.tanh(np.log(1 + np.exp(x))), lambda r: {"x": 2 * r.standard_normal(U_SHAPE)}),
    "selu": unary("selu", lambda x: _SELU_S * np.where(x > 0, x, _SELU_A * (np.exp(x) - 1)),
                  lambda r: {"x": signed_away(r, U_SHAPE)}),
    "relu6": unary("relu6", lambda x: np.clip(x, 0, 6), _relu6_gen),
    "hard_sigmoid": unary("hard_sigmoid", lambda x: np.clip(x / 6 + 0.5, 0, 1), _hard_gen),
    "hard_swish": unary("hard_swish", lambda x: x * np.clip(x / 6 + 0.5, 0, 1), _hard_gen),
}


def _newton_erfinv(y: float) -> float:
    x = 0.0
    for _ in range(60):
        x -= (math.erf(x) - y) / (2 / math.sqrt(math.pi) * math.exp(-x * x))
    return x


def _api(fn, ref, gen=lambda r: {"x": r.standard_normal(U_SHAPE)}):
    return Case(gen, fn, ref)


API_CASES: dict = {
    "elu": _api(lambda x: sd.elu(x, alpha=0.7), lambda x: np.where(x > 0, x, 0.7 * (np.exp(x) - 1)),
                lambda r: {"x": signed_away(r, U_SHAPE)}),
    "celu": _api(lambda x: sd.celu(x, alpha=1.5), lambda x: np.maximum(x, 0) + np.minimum(0, 1.5 * (np.exp(x / 1.5) - 1)),
                 lambda r: {"x": signed_away(r, U_SHAPE)}),
    "leaky_relu": _api(lambda x: sd.leaky_relu(x, 0.1), lambda x: np.where(x > 0, x, 0.1 * x),
                       lambda r: {"x": signed_away(r, U_SHAPE)}),
    "hardtanh": _api(lambda x: sd.hardtanh(x, -0.5, 1.5), lambda x: np.clip(x, -0.5, 1.5),
                     lambda r: {"x": r.choice([-1.5, 0.5, 2.5], U_SHAPE) + r.uniform(-0.4, 0.4, U_SHAPE)}),
    # rounding to decimals (zero derivative) times a smooth factor, so the derivative checks have a value
    "round": _api(lambda x: sd.round(x, 1) * x + sd.around(x * 100, -1),
                  lambda x: np.floor(x * 10 + 0.5) / 10 * x + np.floor(x * 10 + 0.5) * 10,
                  lambda r: {"x": (r.integers(-20, 20, U_SHAPE) + r.uniform(0.1, 0.4, U_SHAPE)) / 10}),
}


# Each case reshaped to its own 6-element shape: the one-graph-per-backend suite fuses same-shape outputs into
# one loop kernel, and one kernel holding every math op compiles far slower (g++ -O2, LLVM O3) than several
_SHAPES = [(6,), (2, 3), (3, 2), (1, 6), (6, 1), (1, 2, 3), (2, 3, 1), (3, 1, 2), (2, 1, 3), (3, 2, 1), (1, 3, 2)]


def _reshaped(case: Case, shape: tuple) -> Case:
    def gen(r, g=case.gen):
        return {k: np.asarray(v).reshape(shape) for k, v in g(r).items()}
    return Case(gen, case.build, case.ref, None if case.gen_grad is None else
                lambda r, g=case.gen_grad: {k: np.asarray(v).reshape(shape) for k, v in g(r).items()})


CASES = {op: _reshaped(c, _SHAPES[i % len(_SHAPES)]) for i, (op, c) in enumerate(CASES.items())}
API_CASES = {op: _reshaped(c, _SHAPES[(i + 5) % len(_SHAPES)]) for i, (op, c) in enumerate(API_CASES.items())}
