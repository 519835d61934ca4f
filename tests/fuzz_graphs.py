"""The random graphs of the differential fuzzer (``tests/test_fuzz.py``, ``benchmarks/fuzz_long.py``).

``Builder`` grows a random well-typed graph from the whole op table -- elementwise unary/binary ops with
NumPy broadcasting (size-1 and added axes), reductions over random axes with and without keepdims,
max/logsumexp/softmax/log_softmax, matmul of 1-D/2-D operands, reshape/transpose/broadcast_to/cast,
cross_entropy/pick/one_hot on integer labels, rand_uniform masks, eq masks, constants, gathers/scatters on
integer index leaves (negative and out-of-range entries: wrapped, clamped), cumsum/cumprod, sort -- with fan-out
(nodes reused) and several outputs. Domains are kept valid by construction (log/sqrt/pow/div get
positive or bounded-away operands) and magnitudes by a running bound (large values are rescaled before
exp and friends). Choices come from hypothesis (``HypChooser``, shrinkable) or a seeded
``random.Random`` (``RngChooser``: ``case_from_seed`` rebuilds a long-run graph from its seed).
"""
from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import Optional, Sequence

import numpy as np

import symdiff as sd
from symdiff.ir import Node, apply
from symdiff.ops_random import rand_uniform
from symdiff.optable import OPS

from fuzz_conv import op_conv

try:  # benchmarks/fuzz_long.py does not need hypothesis
    from hypothesis import strategies as st
except ImportError:  # pragma: no cover
    st = None

MAX_BOUND = 1e4  # larger running magnitude bounds are rescaled before use
DIMS = (1, 1, 2, 3, 4, 5)  # size-1 axes are common on purpose
SMOOTH_UNARY = ("neg", "square", "exp", "expm1", "sin", "cos", "tanh", "sigmoid", "softplus")
KINK_UNARY = ("abs", "relu", "sign", "step", "heaviside")
DOMAIN_UNARY = ("sqrt", "log", "log1p")
BINARY = ("add", "sub", "mul", "div", "pow", "maximum", "minimum")
# the math set (symdiff/ops_math.py): op -> (input map, output bound from the input bound b)
MATH_UNARY = {
    **{op: ("any", lambda b: b) for op in ("silu", "mish", "gelu", "gelu_tanh", "positive", "deg2rad")},
    **{op: ("any", lambda b: 2.0) for op in ("arctan", "erf", "erfc", "softsign")},
    "arcsinh": ("any", lambda b: math.log1p(b) + 1), "log_sigmoid": ("any", lambda b: b + 1),
    "rad2deg": ("any", lambda b: 60 * b),
    **{op: ("squash", lambda b: 12.0) for op in ("sinh", "cosh", "exp2", "tan")},  # tanh(x) * 1.2 first
    **{op: ("unit", lambda b: 3.0) for op in ("arcsin", "arccos", "arctanh", "erfinv")},  # tanh(x) * 0.9 first
    **{op: ("positive", lambda b: 1 / 0.25 + b) for op in ("cbrt", "log2", "log10", "rsqrt", "reciprocal",
                                                            "arccosh", "sinc")},
    **{op: ("kink", lambda b: b + 1) for op in ("floor", "ceil", "rint", "trunc", "selu", "relu6", "hard_sigmoid",
                                                 "hard_swish")},
}
MATH_BINARY = ("fmax", "fmin", "hypot", "logaddexp", "logaddexp2", "copysign", "arctan2")
COMPARE = ("less", "less_equal", "greater", "greater_equal", "equal", "not_equal")
# Special leaf entries for the special-value fuzzing: non-finite values, signed zeros, denormals and the
# exp overflow/underflow points. Huge *finite* values (near the dtype's max) are left out here: whether
# a sum of them overflows to inf, or meets an inf of the other sign (NaN), depends on the summation
# order and on FMA contraction, which legitimately differ between BLAS and our kernels; they are
# tested op by op in tests/test_bad_inputs.py::test_special_values_match_numpy instead.
SPECIAL_VALUES = {dt: np.array([np.inf, -np.inf, np.nan, 0.0, -0.0, np.finfo(dt).smallest_subnormal * 3,
                                -np.finfo(dt).tiny, 1e-30, -88.0, 710.0])
                  for dt in ("float32", "float64")}


# ---- choices: hypothesis draws (shrinkable) or a seeded Random (the long run) -------------------------------

class RngChooser:
    def __init__(self, seed: int) -> None:
        self.r = random.Random(seed)

    def int(self, lo: int, hi: int) -> int:  # inclusive
        return self.r.randint(lo, hi)

    def choice(self, seq):
        return seq[self.r.randrange(len(seq))]

    def coin(self, p: float = 0.5) -> bool:
        return self.r.random() < p


class HypChooser:
    def __init__(self, data) -> None:
        self.data = data

    def int(self, lo: int, hi: int) -> int:
        return self.data.draw(st.integers(lo, hi))

    def choice(self, seq):
        return seq[self.data.draw(st.integers(0, len(seq) - 1))]

    def coin(self, p: float = 0.5) -> bool:
        # integers shrink towards 0 -> "False" is the simple case
        return self.data.draw(st.integers(0, 99)) >= 100 - round(100 * p)


# ---- the case -------------------------------------------------------------------------------------------------

@dataclass
class FuzzCase:
    outputs: list
    values: dict  # leaf name -> array
    ops: list = field(default_factory=list)  # the ops the builder applied, in order (for reports)
    seed: Optional[int] = None
    special: bool = False  # leaves hold inf/nan/+-0/denormal entries: backends are compared, no finite differences

    def describe(self) -> str:
        leaves = ", ".join(f"{k}:{v.dtype}{list(v.shape)}" for k, v in self.values.items())
        outs = ", ".join(f"{o.dtype}{list(o.shape)}" for o in self.outputs)
        return f"leaves [{leaves}] -> outputs [{outs}]; ops: {' '.join(self.ops)}"


class Builder:
    """Grows a random graph: a pool of float nodes with magnitude bounds; every op keeps domains valid."""

    def __init__(self, ch, max_steps: int = 8, dims: Sequence[int] = DIMS, special: float = 0.0) -> None:
        self.ch = ch
        self.special = special  # fraction of leaf entries replaced by SPECIAL_VALUES
        self.max_steps = max_steps
        self.dims = tuple(dims)
        self.vseed = ch.int(0, 2**31 - 1)
        self.rng = np.random.default_rng(self.vseed)
        self.values: dict[str, np.ndarray] = {}
        self.pool: list[Node] = []
        self.bound: dict[Node, float] = {}
        self.ops: list[str] = []
        self.rand_inputs: Optional[tuple] = None
        self.n_leaves = 0
        self.default_dtype = ch.choice(("float64", "float64", "float32"))

    # -- leaves and shapes --------------------------------------------------------------------------------
    def shape(self, max_rank: int = 3) -> tuple:
        return tuple(self.ch.choice(self.dims) for _ in range(self.ch.int(0, max_rank)))

    def dtype(self) -> str:
        return self.default_dtype if self.ch.coin(0.8) else self.ch.choice(("float32", "float64"))

    def leaf(self, shape: tuple, dtype: Optional[str] = None) -> Node:
        dtype = dtype or self.dtype()
        name = f"x{self.n_leaves}"
        self.n_leaves += 1
        kind = sd.param if self.ch.coin(0.4) else sd.input
        node = kind(name, shape, dtype)
        v = self.rng.uniform(-2.0, 2.0, shape)
        if self.special and v.size:
            mask = self.rng.random(shape) < self.special
            v = np.where(mask, self.rng.choice(SPECIAL_VALUES[dtype], shape), v)
        self.values[name] = np.asarray(v, dtype=dtype)
        self.bound[node] = 2.0
        self.ops.append(f"{kind.__name__}{list(shape)}{dtype[5:]}")
        return node

    def labels(self, n: int, depth: int) -> Node:
        name = f"lab{self.n_leaves}"
        self.n_leaves += 1
        dt = self.ch.choice(("int32", "int64"))
        node = sd.input(name, (n,), dt)
        self.values[name] = self.rng.integers(0, depth, n).astype(dt)
        return node

    def const(self, shape: tuple, dtype: str) -> Node:
        node = sd.const(self.rng.uniform(-2.0, 2.0, shape), dtype)
        self.bound[node] = 2.0
        return node

    def broadcast_partner(self, shape: tuple) -> tuple:
        """A random shape that broadcasts with ``shape``: drop leading axes, set axes to 1, add axes."""
        s = list(shape[self.ch.int(0, len(shape)):] if shape and self.ch.coin(0.4) else shape)
        s = [1 if self.ch.coin(0.3) else d for d in s]
        if len(s) == len(shape) < 3 and self.ch.coin(0.2):
            s = [self.ch.choice(self.dims)] + s  # an added leading axis (the result grows)
        if shape == tuple(s) and s and self.ch.coin(0.3):
            s[self.ch.int(0, len(s) - 1)] = 1
        return tuple(s)

    # -- helpers ------------------------------------------------------------------------------------------------
    def pick(self) -> Node:
        # any pool node: earlier nodes get reused (fan-out), later ones deepen the graph
        n = len(self.pool)
        i = n - 1 - min(int(self.ch.int(0, 2 * n) // 2), n - 1) if self.ch.coin(0.7) else self.ch.int(0, n - 1)
        return self.tame(self.pool[i])

    def tame(self, x: Node) -> Node:
        """Rescale a node whose magnitude bound got large."""
        b = self.bound[x]
        if b > MAX_BOUND:
            y = x * (1.0 / b) if self.ch.coin(0.5) else sd.tanh(x * (4.0 / b))
            self.bound[y] = 4.0 if y.op != "tanh" else 1.0
            self.ops.append("rescale")
            return y
        return x

    def add(self, node: Node, bound: float, label: str) -> Node:
        self.bound[node] = float(bound) if math.isfinite(bound) else 1e300
        self.pool.append(node)
        self.ops.append(label)
        return node

    def positive(self, x: Node, c: float) -> tuple:
        """A strictly positive function of x (>= about c) and its bound."""
        b = self.bound[x]
        kind = self.ch.int(0, 4)
        if kind == 0:
            return sd.square(x) + c, b * b + c
        if kind == 1:
            return sd.softplus(x) + c, b + 1 + c
        if kind == 2:
            return sd.sigmoid(x) + c, 1 + c
        if kind == 3:
            return sd.exp(sd.tanh(x)) + c, math.e + c  # > c (arccosh needs >= 1: c = 1.1)
        return sd.abs(x) + c, b + c

    def other(self, a: Node) -> Node:
        """A second operand that broadcasts with ``a``: a pool node, a new leaf, a constant or a Python float."""
        k = self.ch.int(0, 9)
        if k <= 3:
            cands = [n for n in self.pool if _broadcastable(n.shape, a.shape) and n is not a]
            if cands:
                return self.tame(self.ch.choice(cands))
        if k == 9:
            return a  # the same node twice (x*x, x-x, maximum(x, x): ties)
        if k == 8:
            v = self.ch.choice((0.5, -1.5, 2.0, 3.0, 1e-3))
            c = sd.as_tensor(v, a)
            self.bound[c] = abs(v)
            return c
        shape = self.broadcast_partner(a.shape)
        if k == 7:
            return self.const(shape, self.ch.choice(("float32", "float64")))
        return self.leaf(shape)

    # -- ops --------------------------------------------------------------------------------------------------
    def step(self) -> None:
        kind = self.ch.choice(("unary", "unary", "binary", "binary", "binary", "reduce", "shape", "shape",
                               "matmul", "axis", "special", "select", "gather", "index", "math", "math", "math", "conv"))
        if kind == "select":
            return self.op_select(self.pick(), self.ch.choice(("compare", "compare", "mod")))
        getattr(self, "op_" + kind)()

    def op_unary(self) -> None:
        x = self.pick()
        b = self.bound[x]
        op = self.ch.choice(SMOOTH_UNARY + KINK_UNARY + DOMAIN_UNARY)
        if self.special and op in ("sin", "cos"):
            op = "tanh"  # llvm sin/cos are documented as meaningless beyond |x| ~ 2e5 (float32) / 3e12 (float64)
        if op in ("exp", "expm1"):
            if b > 30:
                x, b = sd.tanh(x) * 3.0, 3.0
            return self.add(apply(op, [x]), math.exp(b), op)
        if op == "sqrt":
            p, pb = self.positive(x, 0.1)
            return self.add(sd.sqrt(p), math.sqrt(pb), op)
        if op == "log":
            p, pb = self.positive(x, 0.2)
            return self.add(sd.log(p), max(abs(math.log(0.2)), math.log(pb)), op)
        if op == "log1p":
            p, pb = self.positive(x, 0.0)
            return self.add(sd.log1p(p - 0.5 if self.ch.coin(0.3) and p.op != "exp" else p), math.log1p(pb) + 1, op)
        bound = {"square": b * b, "softplus": b + 1, "neg": b, "abs": b, "relu": b}.get(op, 1.0)
        return self.add(apply(op, [x]), bound, op)

    def op_math(self) -> None:
        """One op of the math set, its argument mapped into the op's domain (away from its singular points)."""
        x = self.pick()
        b = self.bound[x]
        op = self.ch.choice(tuple(MATH_UNARY) + MATH_BINARY)
        if op in MATH_BINARY:
            o = self.other(x)
            if op == "arctan2":  # a positive second argument: away from the branch cut and (0, 0)
                o, _ = self.positive(o, 0.25)
            return self.add(apply(op, [x, sd.as_tensor(o, x)]), max(b, self.bound.get(o, 4.0)) + 4.0, op)
        kind, bound = MATH_UNARY[op]
        if kind == "squash":
            x, b = sd.tanh(x) * 1.2, 1.2
        elif kind == "unit":
            x, b = sd.tanh(x) * 0.9, 0.9
        elif kind == "positive":
            x, b = self.positive(x, 1.1 if op == "arccosh" else 0.25)
        return self.add(apply(op, [x]), bound(b), op)

    def op_binary(self) -> None:
        a = self.pick()
        b = self.other(a)
        op = self.ch.choice(BINARY)
        ba, bb = self.bound[a], self.bound[b]
        if self.ch.coin(0.5):  # operand order
            a, b, ba, bb = b, a, bb, ba
        if op == "div":
            den, _ = self.positive(b, 0.25)
            if self.ch.coin(0.3):
                den = -den
            return self.add(a / den, ba * 4, op)
        if op == "pow":
            base, pb = self.positive(a, 0.3)
            if self.ch.coin(0.5):
                e = self.ch.choice((-1.5, -1.0, -0.5, 0.5, 2.0, 3.0, 0.0, 1.0))
                return self.add(sd.power(base, e), max(pb, 1 / 0.3) ** abs(e), "pow")
            e = sd.tanh(b) * 1.5
            return self.add(sd.power(base, e), max(pb, 1 / 0.3) ** 1.5, "pow")
        bound = {"add": ba + bb, "sub": ba + bb, "mul": ba * bb}.get(op, max(ba, bb))
        return self.add(apply(op, [a, b]) if op in ("maximum", "minimum") else getattr(sd, _DSL[op])(a, b), bound, op)

    def axes(self, x: Node):
        if x.ndim == 0 or self.ch.coin(0.15):
            return None
        k = self.ch.int(1, x.ndim)
        ax = sorted({self.ch.int(0, x.ndim - 1) for _ in range(k)})
        if self.ch.coin(0.3):
            ax = [a - x.ndim for a in ax]  # negative axes
        return ax[0] if len(ax) == 1 and self.ch.coin(0.5) else tuple(ax)

    def op_reduce(self) -> None:
        x = self.pick()
        op = self.ch.choice(("sum", "sum", "mean", "max", "logsumexp", "prod", "min", "argmax"))
        ax = self.axes(x)
        keep = self.ch.coin(0.4)
        b = self.bound[x]
        if op == "prod":  # factors in (0.5, 1.5): no zeros, a bounded product
            y = sd.prod(sd.sigmoid(x) + 0.5, axis=ax, keepdims=keep)
            return self.add(y, 1.5 ** min(max(x.size, 1), 1700), op)  # (a float: 1.5 ** 1751 overflows)
        if op == "argmax":  # an int64 index (no gradient), used as a float weight
            f = self.ch.choice((sd.argmax, sd.argmin))
            one = ax if isinstance(ax, int) else ax[0] if ax is not None and len(ax) == 1 else None
            a = f(x, axis=one, keepdims=one is not None)  # one axis (kept: broadcasts against x) or all
            return self.add(x * sd.astype(a, x.dtype) * 0.25, b * 0.25 * max(x.size, 1), "argmax")
        if op == "logsumexp":
            if x.ndim == 0:
                ax = None
            y = sd.logsumexp(x, axis=ax if ax is not None else tuple(range(x.ndim)), keepdims=keep)
            return self.add(y, b + math.log(max(x.size, 1)), op)
        y = getattr(sd, op)(x, axis=ax, keepdims=keep)
        return self.add(y, b * x.size if op == "sum" else b, op)

    def op_axis(self) -> None:
        x = self.pick()
        b = self.bound[x]
        if x.ndim == 0:
            x = sd.reshape(x, (1,)) if self.ch.coin(0.5) else sd.broadcast_to(x, (self.ch.choice(self.dims[2:]),))
        op = self.ch.choice(("softmax", "log_softmax"))
        axis = self.ch.int(-x.ndim, x.ndim - 1)
        y = getattr(sd, op)(x, axis=axis)
        n = x.shape[axis]
        return self.add(y, 1.0 if op == "softmax" else 2 * b + math.log(n), op)

    def op_shape(self) -> None:
        x = self.pick()
        b = self.bound[x]
        op = self.ch.choice(("reshape", "transpose", "broadcast_to", "cast", "T"))
        if op == "reshape":
            return self.add(sd.reshape(x, self.factor(x.size)), b, op)
        if op in ("transpose", "T"):
            if x.ndim < 3 and x.size > 1 and self.ch.coin(0.5):
                x = sd.reshape(x, self.factor(x.size, min_rank=3))  # transposes of rank >= 3 are not involutions
            perm = list(range(x.ndim))
            if self.ch.coin(0.5):
                r = self.ch.int(1, max(1, x.ndim - 1))
                perm = perm[r:] + perm[:r]  # a rotation (a cycle)
            else:
                for i in range(len(perm) - 1, 0, -1):
                    j = self.ch.int(0, i)
                    perm[i], perm[j] = perm[j], perm[i]
            return self.add(x.T if op == "T" else sd.transpose(x, perm), b, "transpose")
        if op == "broadcast_to":
            s = [self.ch.choice(self.dims[2:]) if d == 1 and self.ch.coin(0.6) else d for d in x.shape]
            if len(s) < 4 and self.ch.coin(0.5):
                s = [self.ch.choice(self.dims)] + s
            return self.add(sd.broadcast_to(x, tuple(s)), b, op)
        return self.add(sd.astype(x, "float32" if x.dtype == "float64" else "float64"), b, "cast")

    def factor(self, size: int, min_rank: int = 0) -> tuple:
        dims, rest = [], size
        while rest > 1 and len(dims) < 3:
            divs = [d for d in range(2, rest + 1) if rest % d == 0]
            d = self.ch.choice(divs)
            dims.append(d)
            rest //= d
        if rest > 1:
            dims.append(rest)
        for _ in range(self.ch.int(0, 2)):
            dims.insert(self.ch.int(0, len(dims)), 1)
        while len(dims) < min_rank:
            dims.insert(self.ch.int(0, len(dims)), 1)
        if dims and self.ch.coin(0.2) and not min_rank:
            dims[self.ch.int(0, len(dims) - 1)] = -1
        return tuple(dims)

    def op_matmul(self) -> None:
        x = self.pick()
        bx = self.bound[x]
        if x.ndim == 0:
            x = sd.broadcast_to(x, (self.ch.choice(self.dims),))
        elif x.ndim > 2:
            if self.ch.coin(0.5):
                x = sd.reshape(x, (-1, x.shape[-1]))
            else:
                bx *= x.size // (x.shape[-2] * x.shape[-1])
                x = sd.sum(x, axis=tuple(range(x.ndim - 2)))
        left = self.ch.coin(0.3)  # w @ x instead of x @ w
        k = x.shape[0] if left else x.shape[-1]
        cands = [n for n in self.pool if 1 <= n.ndim <= 2 and (n.shape[-1] if left else n.shape[0]) == k]
        if cands and self.ch.coin(0.4):
            w = self.tame(self.ch.choice(cands))
        else:
            m = self.ch.choice(self.dims)
            w = self.leaf(((m, k) if left else (k, m)) if self.ch.coin(0.7) else (k,))
        y = w @ x if left else x @ w
        return self.add(y, bx * self.bound[w] * k, "matmul")

    def op_special(self) -> None:
        x = self.pick()
        kind = self.ch.choice(("cross_entropy", "pick", "one_hot", "rand", "eq", "const", "compare", "mod"))
        b = self.bound[x]
        if kind in ("compare", "mod"):
            return self.op_select(x, kind)
        if kind in ("cross_entropy", "pick", "one_hot"):
            if x.ndim != 2:
                x = sd.reshape(x, (-1, x.shape[-1])) if x.ndim > 2 else sd.reshape(x, (1, x.size))
            n, c = x.shape
            lab = self.labels(n, c)
            if kind == "cross_entropy":
                return self.add(sd.cross_entropy(x, lab), 2 * b + math.log(c), kind)
            if kind == "pick":
                return self.add(apply("pick", [x, lab]), b, kind)
            oh = apply("one_hot", [lab], depth=c, dtype=self.ch.choice(("float32", "float64")))
            return self.add(oh * x, b, kind)
        if kind == "rand":
            if self.rand_inputs is None or self.ch.coin(0.2):
                if self.ch.coin(0.5):
                    seed = self.ch.int(-2**40, 2**40)
                    self.rand_inputs = (seed, self.ch.int(0, 2**34))
                else:
                    for nm in ("seed", "step"):
                        if nm not in self.values:
                            dt = self.ch.choice(("int32", "int64"))
                            self.values[nm] = np.asarray(self.rng.integers(-2**31, 2**31 - 1), dtype=dt)
                    self.rand_inputs = tuple(sd.input(nm, (), self.values[nm].dtype.name) for nm in ("seed", "step"))
            u = rand_uniform(*self.rand_inputs, shape=x.shape, dtype=x.dtype, stream=self.ch.int(0, 3))
            return self.add(x * u if self.ch.coin(0.7) else x * apply("step", [u - 0.5]), b, "rand_uniform")  # dropout-like mask
        if kind == "eq":
            if x.ndim == 0:
                x = sd.broadcast_to(x, (3,))
            ax = self.axes(x)
            m = sd.max(x, axis=ax, keepdims=True)
            return self.add(apply("eq", [x, m]) * x, b, "eq")
        if self.ch.coin(0.2):  # x * count(x) / size: the count is mean's divisor (the call's size when symbolic)
            cnt = apply("axis_size", [x], axes=tuple(range(x.ndim)), dtype=x.dtype)
            return self.add(x * cnt * (1.0 / max(x.size, 1)), b, "axis_size")
        c = self.const(self.broadcast_partner(x.shape), x.dtype)
        y = c - x if self.ch.coin(0.5) else x * c
        return self.add(y, b * 2 + 2, "const")

    def op_select(self, x: Node, kind: str) -> Node:
        """Comparisons, logical ops and predicates selecting with where (bool edges carry no gradient, and
        stop_gradient only wraps a locally constant mask), or a floor division / remainder by a constant."""
        b = self.bound[x]
        if kind == "mod":
            op, d = self.ch.choice(("floor_divide", "remainder", "fmod")), self.ch.choice((1.5, -1.25, 0.75))
            y = apply(op, [x, sd.as_tensor(d, x)])
            return self.add(y, b / abs(d) + 1 if op == "floor_divide" else abs(d), op)
        o = self.other(x)
        a, c = (x, o) if self.ch.coin(0.5) else (o, x)
        cond = apply(self.ch.choice(COMPARE), [a, c])
        variant = self.ch.int(0, 3)
        if variant == 1:
            pred = (apply(self.ch.choice(("isfinite", "isnan", "isinf", "isinf")), [x]) if self.ch.coin(0.5)
                    else apply(self.ch.choice(COMPARE), [x, sd.as_tensor(0.5, x)]))
            cond = apply(self.ch.choice(("logical_and", "logical_or", "logical_xor")), [cond, pred])
        elif variant == 2:  # (where(~c, a, b) alone simplifies to where(c, b, a))
            cond = apply("logical_and", [apply("logical_not", [cond]), apply("isfinite", [x])])
        if variant == 3:
            y = x * apply("stop_gradient", [sd.where(cond, 1.5, -0.5)])
            return self.add(y, 1.5 * b, "stop_gradient")
        return self.add(apply("where", [cond, a, c]), max(b, self.bound[o]), "where")

    def indices(self, shape: tuple, n: int) -> Node:
        """An integer leaf of indices into an axis of length n, some negative, some out of range."""
        name = f"idx{self.n_leaves}"
        self.n_leaves += 1
        dt = self.ch.choice(("int32", "int64"))
        self.values[name] = self.rng.integers(-n - 2, n + 2, shape).astype(dt)
        return sd.input(name, shape, dt)

    def op_gather(self) -> None:
        x = self.pick()
        b = self.bound[x]
        if x.ndim == 0:
            x = sd.reshape(x, (1,))
        kind = self.ch.choice(("take", "at_add", "at_set", "at_multiply", "cumsum", "cumprod", "sort"))
        axis = self.ch.int(0, x.ndim - 1)
        n = x.shape[axis]
        if kind == "take":
            i = self.indices(tuple(self.ch.choice(self.dims) for _ in range(self.ch.int(0, 2))), n)
            return self.add(sd.take(x, i, axis=axis), b, kind)
        if kind.startswith("at_"):  # rows of x at (repeated) dynamic indices
            k = self.ch.choice(self.dims[2:])
            i = self.indices((k,), x.shape[0])
            v_shape = ((k,) if self.ch.coin(0.6) else ()) + x.shape[1:]
            if kind == "at_multiply":
                v, vb = self.positive(self.leaf(v_shape), 0.5)
                return self.add(x.at[i].multiply(v), b * vb ** k, kind)
            v = self.leaf(v_shape)
            y = x.at[i].add(v) if kind == "at_add" else x.at[i].set(v)
            return self.add(y, b + 2.0 * k, kind)
        if kind == "cumsum":
            return self.add(sd.cumsum(x, axis=axis), b * n, kind)
        if kind == "cumprod":  # factors in (0.5, 1.5): no zeros (its gradient divides by them)
            return self.add(sd.cumprod(sd.sigmoid(x) + 0.5, axis=axis), 1.5 ** n, kind)
        s = sd.sort(self.leaf(x.shape), axis=axis)  # a fresh leaf: no ties (a tie is a kink of sort)
        return self.add(s * x, 2.0 * b, kind)

    def op_index(self) -> None:
        """Static indexing and joining: slices with steps (negative too), integer indices, flips, pads and
        concatenations (index-mapping ops computed inline; their VJPs are each other)."""
        x = self.pick()
        b = self.bound[x]
        if x.ndim == 0:
            x = sd.reshape(x, (1,))
        axis = self.ch.int(0, x.ndim - 1)
        n = x.shape[axis]
        kind = self.ch.choice(("slice", "slice", "int", "flip", "pad", "concatenate"))
        key = [slice(None)] * x.ndim
        if kind == "slice":
            lo, step = self.ch.int(0, max(n - 1, 0)), self.ch.choice((1, 1, 2, -1, -2))
            key[axis] = slice(lo, None, step) if step > 0 else slice(None, lo if lo else None, step)
            y = x[tuple(key)]
            if y.size == 0:
                y = x
            return self.add(y, b, kind)
        if kind == "int":
            key[axis] = self.ch.int(-n, n - 1)
            return self.add(x[tuple(key)], b, kind)
        if kind == "flip":
            return self.add(sd.flip(x, axis), b, kind)
        if kind == "pad":
            width = [(0, 0)] * x.ndim
            width[axis] = (self.ch.int(0, 2), self.ch.int(1, 2))
            mode = self.ch.choice(("constant", "edge", "reflect" if n > 2 else "edge"))
            return self.add(sd.pad(x, width, mode=mode), b, kind)
        o = self.leaf(x.shape[:axis] + (self.ch.choice(self.dims[1:]),) + x.shape[axis + 1:])
        parts = [x, o] if self.ch.coin(0.5) else [o, x, o * 0.5]
        return self.add(sd.concatenate(parts, axis=axis), max(b, 1.0), kind)

    op_conv = op_conv  # tests/fuzz_conv.py

    # -- the whole graph ---------------------------------------------------------------------------------------
    def build(self) -> FuzzCase:
        for _ in range(self.ch.int(1, 2)):
            self.pool.append(self.leaf(self.shape(4 if self.ch.coin(0.15) else 3)))
        for _ in range(self.ch.int(1, self.max_steps)):
            self.step()
        outs = [self.pool[-1]]
        extra = [n for n in self.pool[:-1]]
        for _ in range(self.ch.int(0, 2)):
            if extra:
                outs.append(self.ch.choice(extra))  # fan-out: intermediate values are outputs too
        if self.ch.coin(0.1):
            outs.append(outs[0])  # the same node twice: outputs must not alias
        return FuzzCase(outs, self.values, self.ops, special=bool(self.special))


_DSL = {"add": "add", "sub": "subtract", "mul": "multiply"}


def _broadcastable(a: tuple, b: tuple) -> bool:
    """True if ``a`` broadcasts into ``b`` without changing ``b``'s shape."""
    try:
        return tuple(np.broadcast_shapes(a, b)) == tuple(b)
    except ValueError:
        return False


def build_case(ch, max_steps: int = 8, dims: Sequence[int] = DIMS, special: float = 0.0) -> FuzzCase:
    return Builder(ch, max_steps, dims, special).build()


def case_from_seed(seed: int, max_steps: int = 8, dims: Sequence[int] = DIMS, special: float = 0.0) -> FuzzCase:
    case = build_case(RngChooser(seed), max_steps, dims, special)
    case.seed = seed
    return case
