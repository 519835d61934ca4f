"""The op table of docs/dsl.md is generated from the op table (docs/gen_ops_table.py) and must be current."""
from __future__ import annotations

import importlib.util
import pathlib

import sympy

import symdiff as sd
from symdiff.codegen.llvm import scalar_rules as llvm_rules
from symdiff.ir import apply
from symdiff.optable import DSL_FUNCTIONS, OPS, dsl_function

ROOT = pathlib.Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("gen_ops_table", ROOT / "docs" / "gen_ops_table.py")
gen = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(gen)


def _row(table: str, first: str, second: str = "") -> str:
    rows = [ln for ln in table.splitlines() if ln.startswith(f"| {first} |") and second in ln]
    assert len(rows) == 1, f"no single row for {first} {second} in the generated table"
    return rows[0]


def test_committed_op_table_is_current():
    text = (ROOT / "docs" / "dsl.md").read_text(encoding="utf-8")
    assert gen.BEGIN in text and gen.END in text, "docs/dsl.md lacks the op table markers"
    assert gen.updated(text) == text, ("docs/dsl.md: the op table is out of date (an op or DSL function was added "
                                       "or changed); run `python docs/gen_ops_table.py` and commit docs/dsl.md")


def test_table_lists_every_op_and_dsl_function():
    table = gen.render()
    for op, d in OPS.items():
        row = _row(table, f"`{op}`")
        assert ("| yes |" if d.differentiable else "| no |") in row
    assert "`np.tanh`" in _row(table, "`tanh`") and "`sd.subtract`" in _row(table, "`sub`")
    for name in DSL_FUNCTIONS:
        assert f"`sd.{name}`" in table
    assert "`np.mean`" in _row(table, "—", "`sd.mean`")
    assert gen.attributes("sum") == "axes, keepdims" and gen.attributes("rand_uniform") == "shape, dtype, stream"
    assert gen.attributes("tanh") == gen.attributes("matmul") == "" and gen.attributes("const") == "value"
    x = sd.input("x", (2, 3))
    for node in (sd.sum(x, 0), sd.reshape(x, (3, 2)), sd.transpose(x), sd.softmax(x)):  # the attrs a node stores
        assert set(node.attrs) == set(gen.attributes(node.op).split(", ")), node.op


def test_table_follows_the_tables_at_run_time(scratch_ops, monkeypatch):
    sd.define_elementwise("softsign_t", lambda x: x / (1 + sympy.Abs(x)))  # a composite: expanded on llvm/cuda
    monkeypatch.setattr(llvm_rules, "UNSUPPORTED", {"tanh"})
    monkeypatch.setitem(DSL_FUNCTIONS, "var_t", None)  # the key is deleted again after the test

    @dsl_function(numpy_name="var", differentiable=False, ops=("sum", "tanh"))
    def var_t(x):
        """Variance (a test function)."""
        return x
    table = gen.render()
    assert "| numpy, llvm, cuda |" in _row(table, "`softsign_t`")
    assert "| numpy, cuda |" in _row(table, "`tanh`")
    row = _row(table, "—", "`sd.var_t`")
    assert "`np.var`" in row and "| no |" in row and "| numpy, cuda |" in row and "Variance" in row
    monkeypatch.setattr(sd, "__all__", [*sd.__all__, "stack_t"])

    def stack_t(*xs):
        """Stack (a test function)."""
    stack_t.__module__ = "symdiff.api"
    monkeypatch.setattr(sd, "stack_t", stack_t, raising=False)

    def twice_t(x):
        """Twice (a test function)."""
        return sd.tanh(x) * 2.0

    def same_t(x):
        """Equal to itself (a test function)."""
        return apply("eq", [x, x])
    for f in (stack_t, twice_t, same_t):
        f.__module__ = "symdiff.api"
        monkeypatch.setattr(sd, f.__name__, f, raising=False)
    monkeypatch.setattr(sd, "__all__", [*sd.__all__, "twice_t", "same_t"])
    table = gen.render()
    row = _row(table, "—", "`sd.stack_t`")  # an unregistered public function is listed, marked `?`
    assert "| function |  | — | ? | numpy, cuda | Stack" in row  # no np.stack_t; llvm lacks tanh (patched above)
    # a function that a probe call traces: differentiability and backends from the ops it builds
    assert "| yes* | numpy, cuda* |" in _row(table, "—", "`sd.twice_t`")
    assert "| no* | numpy, llvm, cuda* |" in _row(table, "—", "`sd.same_t`")
