"""SymPy <-> graph: partial derivatives of elementwise ops by ``sympy.diff``, turned back into nodes.

``partial(node, i)`` differentiates the op's SymPy expression with respect to operand ``i`` (after
substituting scalar-constant operands, so ``x**2`` differentiates to ``2*x`` rather than
``x**y*y/x``) and converts the result into graph nodes whose leaves are the node's own operands.
Subexpressions equal to forward nodes (``tanh(x)`` in ``1 - tanh(x)**2``) hash to the same node.
"""
from __future__ import annotations

import functools
from typing import Optional

import numpy as np
import sympy as sp

from .ir import Node, apply, const, is_const_scalar
from .optable import OPS, X, op_for_sympy


def _number(v: np.ndarray) -> sp.Expr:
    f = float(np.asarray(v).reshape(()))
    return sp.Integer(int(f)) if f.is_integer() and abs(f) < 2**53 else sp.Float(f, 17)


# (op, operand index) -> its partial derivative as an expression of X, where ``sympy.diff`` gives the wrong
# value at a singular point (d/dy x**y = x**y log x is nan at x = 0; JAX's convention is 0); op modules fill it
PARTIALS: dict[tuple[str, int], sp.Expr] = {}


@functools.lru_cache(maxsize=4096)
def derivative_expr(op: str, i: int, subs: tuple) -> sp.Expr:
    """d op / d operand_i as a SymPy expression (pure function of its arguments, memoised)."""
    if (op, i) in PARTIALS:
        d = PARTIALS[(op, i)]
        return sp.powsimp(d.subs(dict(subs)) if subs else d)
    expr = OPS[op].expr.subs(dict(subs)) if subs else OPS[op].expr
    return sp.powsimp(sp.diff(expr, X[i]))


def value_expr(node: Node) -> sp.Expr:
    """The SymPy expression of an elementwise node in terms of X[i] (scalar constants substituted)."""
    return OPS[node.op].expr.subs(dict(const_subs(node, -1)))


def const_subs(node: Node, skip: int) -> tuple:
    return tuple((X[j], _number(inp.value)) for j, inp in enumerate(node.inputs)
                 if j != skip and is_const_scalar(inp))


def partial(node: Node, i: int) -> Node:
    """The partial derivative of elementwise ``node`` with respect to its i-th input, as a node."""
    d = derivative_expr(node.op, i, const_subs(node, i))
    env = {X[j]: inp for j, inp in enumerate(node.inputs)}
    return to_graph(d, env, node.dtype)


def to_graph(expr: sp.Expr, env: dict, dtype: str) -> Node:
    """Convert a SymPy expression over the symbols in ``env`` into graph nodes of ``dtype``."""
    memo: dict = {}

    def conv(e: sp.Expr) -> Node:
        if e in memo:
            return memo[e]
        memo[e] = out = _conv(e)
        return out

    def num(v) -> Node:
        return const(float(v), dtype)

    def product(factors: list) -> Optional[Node]:
        out = None
        for f in factors:
            out = f if out is None else apply("mul", [out, f])
        return out

    def _conv(e: sp.Expr) -> Node:
        if e.is_Symbol:
            return env[e]
        if e.is_Number:
            if not e.is_finite:
                raise ValueError(f"derivative evaluates to a non-finite constant {e}")
            return num(e)
        if isinstance(e, sp.NumberSymbol):  # pi (in the derivatives of erf, sinc), E, ...
            return num(float(e))
        if isinstance(e, sp.DiracDelta):
            return num(0)  # derivative of a step: zero almost everywhere
        if e.is_Add:
            pos, neg = [], []
            for t in e.args:
                c, rest = t.as_coeff_Mul()
                (neg if c.is_negative else pos).append(-t if c.is_negative else t)
            out = None
            for t in pos:
                out = conv(t) if out is None else apply("add", [out, conv(t)])
            for t in neg:
                out = apply("neg", [conv(t)]) if out is None else apply("sub", [out, conv(t)])
            return out
        if e.is_Mul:
            c, rest = e.as_coeff_Mul()
            sign = c.is_negative
            c = -c if sign else c
            numer, denom = [], []
            if c != 1:
                numer.append(num(c))
            for f in sp.Mul.make_args(rest):
                if f.is_Pow and f.exp.is_Number and f.exp.is_negative:
                    denom.append(conv(sp.Pow(f.base, -f.exp)))
                else:
                    numer.append(conv(f))
            top = product(numer)
            if top is None:  # (a Node has no truth value: test for None explicitly)
                top = num(1)
            out = apply("div", [top, product(denom)]) if denom else top
            return apply("neg", [out]) if sign else out
        if e.is_Pow:
            b, p = e.base, e.exp
            if p.is_Number:
                if p.is_negative:
                    return apply("div", [num(1), conv(sp.Pow(b, -p))])
                if p == 1:
                    return conv(b)
                if p == 2:
                    return apply("square", [conv(b)])
                if p == sp.Rational(1, 2):
                    return apply("sqrt", [conv(b)])
                return apply("pow", [conv(b), num(p)])
            if b == sp.E:
                return apply("exp", [conv(p)])
            return apply("pow", [conv(b), conv(p)])
        op = op_for_sympy(e)
        if op is None:
            raise NotImplementedError(f"no op for SymPy expression {e} ({e.func})")
        args = [conv(a) for a in (e.args[:1] if e.func is sp.Heaviside else e.args)]
        if len(args) == OPS[op].arity:  # (where(c, a, b) is ternary)
            return apply(op, args)
        out = args[0]
        for a in args[1:]:  # Max/Min may be n-ary
            out = apply(op, [out, a])
        return apply(op, [out]) if len(args) == 1 else out

    return conv(sp.sympify(expr))
