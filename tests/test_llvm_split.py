"""codegen/llvm/split.py: compile_parallel keeps the order of its inputs whatever the thread count,
and starts the largest modules first."""
from __future__ import annotations

import threading

import pytest

from symdiff.codegen.llvm.split import compile_parallel

TEXTS = ["a" * n for n in (3, 40, 7, 100, 1, 55)]


@pytest.mark.parametrize("workers", [1, 2, 3, None, 50])
def test_results_in_input_order(workers):
    out = compile_parallel(TEXTS, lambda t: len(t).to_bytes(2, "little"), workers=workers)
    assert [int.from_bytes(o, "little") for o in out] == [len(t) for t in TEXTS]


def test_largest_first_on_threads():
    started, lock = [], threading.Lock()
    gate = threading.Barrier(2)

    def compile_text(t: str) -> bytes:
        with lock:
            started.append(len(t))
            first_two = len(started) <= 2
        if first_two:
            gate.wait(timeout=10)  # both threads busy before any third job can start
        return t.encode()

    out = compile_parallel(TEXTS, compile_text, workers=2)
    assert out == [t.encode() for t in TEXTS]
    assert sorted(started[:2]) == [55, 100]
    assert sorted(started) == sorted(len(t) for t in TEXTS)


def test_one_and_none():
    assert compile_parallel([], lambda t: b"") == []
    assert compile_parallel(["x"], lambda t: b"y") == [b"y"]
