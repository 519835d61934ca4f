"""symdiff/dims.py: symbolic sizes as integer polynomials of names."""
from __future__ import annotations

import pickle

import numpy as np
import pytest

from symdiff.dims import Dim, SymbolicDimError, as_dim, dim, evaluate, free_names, has_dims, prod, substitute

n, m = dim("n"), dim("m")


def test_canonical_form_makes_equal_polynomials_equal():
    assert n + n == 2 * n and n * m == m * n and hash(n * m) == hash(m * n)
    assert (n + 1) - n == 1 and isinstance((n + 1) - n, int)  # a constant result is a plain int
    assert dim("2*n + 1") == 2 * n + 1 and dim("n**2") == n * n
    assert n != m and n != 1 and not (n == 0)  # a Dim never equals an int: a name is never assumed to be 1
    assert str(2 * n * m - 3) == "2*m*n - 3" and repr(n) == "n"


def test_exact_division_and_remainder():
    assert (4 * n * m) // m == 4 * n and (6 * n) // 3 == 2 * n and (6 * n) % 3 == 0
    assert (n * m) // (n * m) == 1
    with pytest.raises(SymbolicDimError, match="not a multiple"):
        (2 * n + 1) // 2
    with pytest.raises(SymbolicDimError):
        n % 2
    with pytest.raises(SymbolicDimError):
        12 // n


@pytest.mark.parametrize("expr,want", [("n >= 1", True), ("n > 0", True), ("n + 1 > n", True), ("n - 1 >= 0", True),
                                       ("-n <= -1", True), ("n < 1", False), ("0 >= n", False), ("2*n > n", True)])
def test_comparisons_decided_for_names_at_least_one(expr, want):
    assert eval(expr, {"n": n}) is want


@pytest.mark.parametrize("expr", ["n > 1", "n < 5", "n - 3 > 0", "n > m"])
def test_undecidable_comparisons_raise(expr):
    with pytest.raises(SymbolicDimError, match="depends on the sizes at call time"):
        eval(expr, {"n": n, "m": m})


def test_fixed_sizes_are_refused_with_the_name():
    for use in (int, lambda d: range(d), lambda d: np.zeros((d, 2)), lambda d: np.prod((d, 3), dtype=np.int64)):
        with pytest.raises(SymbolicDimError, match="the size n is symbolic"):
            use(n)


def test_evaluate_substitute_and_names():
    shape = (n, 3, 2 * n * m)
    assert prod(shape) == 6 * n * n * m
    assert evaluate(prod(shape), {"n": 2, "m": 5}) == 120
    assert substitute({"shape": shape, "k": [n + 1, "s"]}, {"n": 2, "m": 5}) == {"shape": (2, 3, 20), "k": [3, "s"]}
    assert free_names([shape, (4,)]) == {"n", "m"} and has_dims({"a": (1, (n,))}) and not has_dims((1, 2))
    with pytest.raises(SymbolicDimError, match="needs 'm'"):
        evaluate(n * m, {"n": 2})


def test_parsing_and_pickling():
    assert as_dim("batch") == dim("batch") and as_dim(np.int64(3)) == 3
    assert pickle.loads(pickle.dumps(2 * n + m)) == 2 * n + m
    for bad in ("2 n", "n / 2", "n ** -1", "f(n)"):
        with pytest.raises(ValueError, match="cannot read the dimension"):
            dim(bad)
    assert isinstance(dim("n"), Dim) and dim(4) == 4
