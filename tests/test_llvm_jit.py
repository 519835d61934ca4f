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

    def optimize(mod, tm, speed_level=3, unlocked=False, tuning=None):
        seen.append((speed_level, tuning))
        real(mod, tm, speed_level, unlocked, tuning)
    monkeypatch.setattr(jit, "optimize", optimize)
    obj, text = jit.emit_object(SRC)
    assert seen == [(jit.EMIT_SPEED_LEVEL, jit.EMIT_TUNING)] and obj and "fadd" in text
    jit.emit_object(SRC, opt=False)
    assert seen == [(jit.EMIT_SPEED_LEVEL, jit.EMIT_TUNING)]
    monkeypatch.setattr(jit, "EMIT_TUNING", {"loop_unrolling": False})
    jit.emit_object(SRC)
    assert seen[-1] == (jit.EMIT_SPEED_LEVEL, {"loop_unrolling": False})


LOOPS = """
define float @total(ptr %p, i64 %n) {
entry:
  br label %loop
loop:
  %i = phi i64 [0, %entry], [%i1, %loop]
  %acc = phi float [0.0, %entry], [%acc1, %loop]
  %q = getelementptr float, ptr %p, i64 %i
  %x = load float, ptr %q
  %acc1 = fadd reassoc float %acc, %x
  %i1 = add i64 %i, 1
  %c = icmp slt i64 %i1, %n
  br i1 %c, label %loop, label %done
done:
  ret float %acc1
}
"""


def test_tuning_overrides_pipeline_options(monkeypatch):
    """A sum loop vectorises with several vector accumulators (the vectoriser's interleaving) by
    default, and with one when the tuning turns interleaving off."""
    def accumulators(tuning):
        monkeypatch.setattr(jit, "EMIT_TUNING", tuning)
        _, text = jit.emit_object(LOOPS)
        return text.split("vector.body:")[1].split("br ")[0].count("fadd reassoc <")
    assert accumulators({}) >= 2
    assert accumulators({"loop_interleaving": False}) == 1


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


def _loops(n: int, salt: int = 0) -> str:
    """A module of ``n`` vectorisable loops (a[i] = a[i] * b[i] + k): a few ms of LLVM work each."""
    fns = []
    for i in range(n):
        fns.append(f"""define void @"sdgemm.test.loop{i}"(ptr noalias %a, ptr noalias %b, i64 %n) {{
entry:
  br label %hdr
hdr:
  %i = phi i64 [0, %entry], [%i1, %body]
  %c = icmp slt i64 %i, %n
  br i1 %c, label %body, label %end
body:
  %pa = getelementptr inbounds float, ptr %a, i64 %i
  %pb = getelementptr inbounds float, ptr %b, i64 %i
  %x = load float, ptr %pa
  %y = load float, ptr %pb
  %m = fmul float %x, %y
  %s = fadd float %m, {float(i + salt + 1):.1f}
  store float %s, ptr %pa
  %i1 = add i64 %i, 1
  br label %hdr
end:
  ret void
}}""")
    return "\n".join(fns) + "\n"


def test_private_context_compiles_outside_llvmlites_lock():
    """While one thread optimises a module in its own context, another thread's llvmlite call does not
    wait for it (llvmlite's global lock is not held), so compile_parallel's threads really overlap.
    (With the lock held, the call waits for the rest of the ~0.5 s pipeline: a 1000x margin.)"""
    import threading
    import time

    import llvmlite.binding as llvm
    assert jit.parallel_llvm()
    tm = jit.target_machine(reloc="pic", jit=False)
    mod = jit.parse(_loops(150), llvm.create_context())
    started, took = threading.Event(), []

    def work():
        started.set()
        t0 = time.perf_counter()
        jit.optimize(mod, tm, jit.EMIT_SPEED_LEVEL, unlocked=True)
        took.append(time.perf_counter() - t0)
    th = threading.Thread(target=work)
    th.start()
    started.wait(10)
    time.sleep(0.05)  # the worker is inside the pass pipeline now
    t0 = time.perf_counter()
    llvm.get_process_triple()  # a locked call
    waited = time.perf_counter() - t0
    th.join()
    assert waited < took[0] / 2, (waited, took)


def test_parallel_objects_equal_serial_ones():
    from symdiff.codegen.llvm.split import compile_parallel
    texts = [_loops(3, salt) for salt in range(6)]
    compile_text = lambda t: jit.emit_object(t, private_context=True)[0]  # noqa: E731
    serial = compile_parallel(texts, compile_text, workers=1)
    assert compile_parallel(texts, compile_text, workers=3) == serial
    assert serial[0] == jit.emit_object(texts[0])[0] and serial[0] != serial[1]
