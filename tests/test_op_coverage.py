"""The op table against every backend: each op is implemented (a scalar rule, an expandable composite, or a
kernel-level op the lowering handles) or declared unsupported, and compiling an unsupported op fails early
with an error naming the op and the backend. Also: op metadata, and ``sd.define_elementwise``."""
from __future__ import annotations

import numpy as np
import pytest
import sympy

import symdiff as sd
from symdiff import api
from symdiff.codegen import expand
from symdiff.codegen.cuda import scalar_rules as cuda_rules
from symdiff.codegen.llvm import scalar_rules as llvm_rules
from symdiff.ir import apply, toposort
from symdiff.optable import COST_CLASSES, OPS, X, elementwise

from conftest import assert_grad_ok

RULES = {"llvm": llvm_rules, "cuda-cpu": cuda_rules}


def implemented(backend: str, op: str) -> bool:
    if backend == "numpy":
        return OPS[op].impl is not None or op in ("input", "param", "const")
    rules = RULES[backend]
    return op in rules.SCALAR_RULES or op in expand.KERNEL_OPS or expand.is_composite(op)


@pytest.mark.parametrize("backend", ["numpy", "llvm", "cuda-cpu"])
def test_every_op_is_implemented_or_declared_unsupported(backend):
    unsupported = set() if backend == "numpy" else RULES[backend].UNSUPPORTED
    missing = [op for op in OPS if not implemented(backend, op) and op not in unsupported]
    assert not missing, f"backend {backend!r}: ops neither implemented nor declared unsupported: {missing}"
    assert unsupported <= set(OPS), "UNSUPPORTED names ops that are not in the op table"


def test_op_metadata():
    for name, d in OPS.items():
        assert d.cost_class in COST_CLASSES, name
        if d.elementwise:
            assert d.arity == len(d.expr.free_symbols), name
    assert OPS["exp"].cost_class == OPS["div"].cost_class == "expensive"
    assert OPS["add"].cost_class == OPS["relu"].cost_class == "cheap"
    assert OPS["reshape"].cost_class == OPS["input"].cost_class == "free"
    # the DSL functions come from the table, under their NumPy names
    assert sd.subtract(sd.input("a", (2,)), 1.0).op == "sub" and sd.negative(sd.input("a", (2,))).op == "neg"
    assert sd.power(sd.input("a", (2,)), 2.0).op == "pow"
    assert {d.api for d in OPS.values() if d.api} == set(api.ELEMENTWISE) <= set(sd.__all__)


def test_primitives_and_composites(scratch_ops):
    assert all(expand.is_primitive(op) for op in ("add", "sub", "neg", "div", "square", "sqrt", "pow", "step",
                                                   "heaviside", "relu", "maximum", "sigmoid"))
    softsign = sd.define_elementwise("softsign_t", lambda x: x / (1 + sympy.Abs(x)))
    assert expand.is_composite("softsign_t")
    x = sd.input("x", (3,), "float64")
    (e,) = expand.expand_composites([softsign(x)])
    ops = {n.op for n in _nodes(e)}
    assert "softsign_t" not in ops and {"div", "abs", "add"} <= ops


@pytest.mark.parametrize("backend", ["llvm", "cuda-cpu"])
def test_unsupported_op_raises_a_clear_error(backend, monkeypatch):
    rules = RULES[backend]
    monkeypatch.setattr(rules, "UNSUPPORTED", {"tanh"})
    x = sd.input("x", (4,))
    with pytest.raises(expand.UnsupportedOpError, match=r"op 'tanh' is not supported by backend '" + backend):
        sd.compile(sd.tanh(x) + 1.0, backend, cache=False)
    sd.compile(sd.tanh(x), "numpy")  # numpy is unaffected


@pytest.mark.parametrize("backend", ["llvm", "cuda-cpu"])
def test_new_primitive_without_a_rule_names_op_and_backend(backend, scratch_ops):
    class cube(sympy.Function):  # a new SymPy head: a primitive that no backend has a rule for
        pass
    elementwise("cube_t", cube(X[0]), lambda a: a ** 3)
    x = sd.input("x", (4,))
    node = apply("cube_t", [x])
    np.testing.assert_allclose(sd.compile(node, "numpy")(x=np.arange(4.0, dtype=np.float32)), [0, 1, 8, 27])
    with pytest.raises(expand.UnsupportedOpError, match=f"op 'cube_t' is not supported by backend '{backend}'"):
        sd.compile(node, backend, cache=False)


def test_define_elementwise_gradients_order_1_and_2(scratch_ops):
    softsign = sd.define_elementwise("softsign_t", lambda x: x / (1 + sympy.Abs(x)))
    mix = sd.define_elementwise("mix_t", lambda x, y: sympy.exp(-x * y) + sympy.log(1 + y ** 2) * x)
    x, y = sd.input("x", (5,), "float64"), sd.input("y", (5,), "float64")
    rng = np.random.default_rng(0)
    values = {"x": rng.uniform(0.2, 2, 5) * rng.choice([-1.0, 1.0], 5), "y": rng.standard_normal(5)}
    for out in (softsign(x), mix(x, y), mix(softsign(x), 2.0)):
        leaves = {n for n in _nodes(out) if n.is_leaf}
        wrt = [w for w in (x, y) if w in leaves]
        f = sd.sum(out * sd.const(rng.standard_normal(5), "float64"))
        assert_grad_ok(sd.check_grad(f, wrt, values))  # order 1
        g = sd.grad(f, wrt)
        f2 = sd.sum(g[0] * sd.const(rng.standard_normal(5), "float64"))
        assert_grad_ok(sd.check_grad(f2, wrt, values))  # order 2: a grad of a grad
        for backend in ("llvm", "cuda-cpu"):  # the compiled derivatives agree with numpy's
            want = sd.compile([f2, *sd.grad(f2, wrt)], "numpy")(**{w.name: values[w.name] for w in wrt})
            got = sd.compile([f2, *sd.grad(f2, wrt)], backend)(**{w.name: values[w.name] for w in wrt})
            for a, b in zip(got, want):
                np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


def _nodes(n) -> list:
    return toposort([n])


def test_define_elementwise_names_and_redefinition(scratch_ops):
    f = sd.define_elementwise("softsign_t", lambda x: x / (1 + sympy.Abs(x)))
    assert sd.define_elementwise("softsign_t", lambda z: z / (1 + sympy.Abs(z))) is f  # same expression: same op
    with pytest.raises(ValueError, match="already defined"):
        sd.define_elementwise("softsign_t", lambda x: x / (2 + sympy.Abs(x)))
    for clash in ("tanh", "sub", "subtract", "softmax"):
        with pytest.raises(ValueError, match="clashes with a built-in"):
            sd.define_elementwise(clash, lambda x: x * 2)
    with pytest.raises(ValueError, match="is not an op"):
        sd.define_elementwise("gamma_t", lambda x: sympy.gamma(x))
    g = sd.define_elementwise("halfsq_t", lambda x: x ** 2 / 2, impl=lambda a: 0.5 * a * a, doc="x^2/2")
    assert g.__doc__ == "x^2/2" and g.__name__ == "halfsq_t"
    x = sd.input("x", (3,))
    np.testing.assert_allclose(sd.compile(g(x), "llvm")(x=np.array([1, 2, 3], np.float32)), [0.5, 2, 4.5])


@pytest.mark.parametrize("backend", ["numpy", "llvm", "cuda-cpu"])
def test_composite_that_ignores_an_operand_keeps_the_call_signature(backend, scratch_ops):
    """Expanding sin(a) (b unused) drops the leaf y from the lowered graph; the compiled function
    still takes y, and the output must not be written into y's slot."""
    import sympy
    first = sd.define_elementwise("sin_of_first", lambda a, b: sympy.sin(a))
    x, y = sd.input("x", (3,), "float64"), sd.input("y", (3,), "float64")
    f = sd.compile(first(x, y) * 2.0, backend)
    xv, yv = np.array([0.0, 1.0, 2.0]), np.array([5.0, 6.0, 7.0])
    np.testing.assert_allclose(f(x=xv, y=yv), 2.0 * np.sin(xv), rtol=1e-12)
    np.testing.assert_array_equal(yv, [5.0, 6.0, 7.0])  # the unread input is left alone
