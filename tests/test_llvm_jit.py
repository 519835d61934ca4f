"""codegen/llvm/jit.py: emit_object's optimisation level and the per-module compile-time records."""
from __future__ import annotations

from symdiff.codegen.llvm import jit

SRC = """define float @"sdgemm.test.twice"(float %x) {
  %y = fadd float %x, %x
  ret float %y
}
"""


def test_emit_object_uses_emit_speed_level(monkeypatch):
    seen = []
    real = jit.optimize

    def optimize(mod, tm, speed_level=3):
        seen.append(speed_level)
        real(mod, tm, speed_level)
    monkeypatch.setattr(jit, "optimize", optimize)
    obj, text = jit.emit_object(SRC)
    assert seen == [jit.EMIT_SPEED_LEVEL] and obj and "fadd" in text
    jit.emit_object(SRC, opt=False)
    assert seen == [jit.EMIT_SPEED_LEVEL]


def test_record_compile_times():
    jit.emit_object(SRC)  # outside any block: recorded nowhere
    with jit.record_compile_times() as outer:
        with jit.record_compile_times() as inner:
            jit.emit_object(SRC, private_context=True)
        jit.emit_object(SRC)
    assert len(inner) == 1 and len(outer) == 2
    rec = inner[0]
    assert rec["module"] == "sdgemm.test.twice" and rec["ir_chars"] == len(SRC)
    assert all(rec[k] >= 0 for k in ("parse_s", "opt_s", "codegen_s", "print_s"))
    jit.emit_object(SRC)  # after the blocks: recorded nowhere
    assert len(inner) == 1 and len(outer) == 2
