"""Compile-time breakdown (not a test): where ``sd.grad`` + ``sd.compile(backend="llvm")`` spend their time.

Every measurement runs in a fresh Python process with its own ``SYMDIFF_CACHE_DIR``::

    python -m benchmarks.compile_time                  # W1, odd MLP, LeNet; 3 runs each; median
    python -m benchmarks.compile_time --cases W1 --runs 5
    python -m benchmarks.compile_time --profile W1     # cProfile of one cold W1 compile

Three states per case (each in a new process):

- ``cold``: empty cache folder: every GEMM kernel and the model itself are compiled;
- ``kernels``: a new model, shared GEMM kernels cached: the cold run's folder with the model's own
  entry deleted (the ``kernels/`` namespace kept), so the graph's module is compiled and every
  ``sdgemm.*`` object is loaded from disk (the run checks that none was compiled);
- ``cached``: the same graph again in a new process: the model's object comes from the disk cache.

Phases (seconds, from ``time.perf_counter`` around the compiler's own functions, patched in the child;
the llvm per-module numbers come from ``symdiff.codegen.llvm.jit.record_compile_times``): imports
(``import symdiff``, the llvm backend on first use), graph build, autodiff (``sd.grad``), each
simplifier phase, expand, lower, cache key, render (building the llvmlite IR, and printing each shared
GEMM function as it is handed to the compile threads), split + IR text of the graph's modules, the LLVM
wait after render (the shared GEMM modules compile on the compile threads while the graph renders; this
is the LLVM time left once the graph's own modules are queued), the summed per-module parse / opt /
codegen of the shared kernels, of the graph's own modules ("main") and of its light-tier modules
("light", ``llvm/tiers.py``; ``--full-tier`` compiles every kernel at the full tier instead), cache I/O,
link + load, runtime setup. ``compile`` is ``fn.compile_seconds`` (simplify + backend); ``total`` is build
+ grad + compile (imports excluded; they are reported on their own line).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CASES = ("W1", "odd", "W6")
STATES = ("cold", "kernels", "cached")


def workload(case: str):
    from benchmarks import workloads as W
    if case == "odd":  # the shape that once compiled in 4x W1's time
        return dataclasses.replace(W.WORKLOADS["W1"], name="W1", title="odd MLP", sizes=(37, 53, 11), batch=13)
    return W.WORKLOADS[case]


# --------------------------------------------------------------------------- child
class _Timers:
    """Accumulated wall time per phase name; ``wrap`` replaces ``owner.attr`` by a timed version."""

    def __init__(self) -> None:
        self.t: dict[str, float] = {}

    def add(self, key: str, dt: float) -> None:
        self.t[key] = self.t.get(key, 0.0) + dt

    def wrap(self, owner, attr: str, key) -> None:
        fn = getattr(owner, attr)
        timers = self

        def timed(*a, **k):
            t0 = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                timers.add(key(a, k) if callable(key) else key, time.perf_counter() - t0)
        setattr(owner, attr, timed)


def child(case: str, speed_level: int | None = None, tuning: str = "", full_tier: bool = False) -> dict:
    t0 = time.perf_counter()
    import numpy  # noqa: F401
    t1 = time.perf_counter()
    import symdiff as sd
    t2 = time.perf_counter()
    from symdiff.backends import get_backend
    get_backend("llvm")  # imports the llvm backend (sd.compile's first call does this)
    t3 = time.perf_counter()
    import importlib
    compiled = importlib.import_module("symdiff.compiled")  # (the package re-exports functions of these names)
    simp = importlib.import_module("symdiff.simplify")
    from symdiff.codegen import cache
    from symdiff.codegen.llvm import backend, jit
    from symdiff.codegen.runtime import kernel as runtime
    from benchmarks import workloads as W

    if speed_level is not None:  # (each run has its own cache folder: no object of another level is loaded)
        jit.EMIT_SPEED_LEVEL = speed_level
    jit.EMIT_TUNING = parse_tuning(tuning)
    backend.LIGHT_TIER = not full_tier
    T = _Timers()
    T.t.update({"import numpy": t1 - t0, "import symdiff": t2 - t1, "import llvm backend": t3 - t2})
    calls = {"n": 0, "stage": "graph build"}

    def phase_key(a, k):  # the phases of sd.compile's simplify; build and grad simplify inside their own time
        if calls["stage"] != "compile":
            return f"{calls['stage']}: simplify"
        calls["n"] += 1
        return f"simplify {calls['n']}: {a[1] if len(a) > 1 else k.get('phase')}"
    T.wrap(simp, "run_phase", phase_key)
    T.wrap(compiled, "simplify", "simplify")
    T.wrap(backend, "require_supported", "expand")
    T.wrap(backend, "lower", "lower")
    T.wrap(backend, "graph_key", "cache key")
    T.wrap(cache, "load", "cache I/O")
    T.wrap(cache, "store", "cache I/O")
    T.wrap(backend.Renderer, "render", "render (build IR)")
    T.wrap(backend, "split_graph", "split + IR text")
    T.wrap(backend, "wait_all", "LLVM wait after render")
    T.wrap(backend.JitModule, "from_objects", "link + load")
    T.wrap(runtime, "make_pool", "runtime setup")
    T.wrap(runtime, "Kernel", "runtime setup")

    wl = workload(case)
    t = time.perf_counter()
    loss, wrt, _ = W.build_symdiff(wl, sd)
    T.add("graph build", time.perf_counter() - t)
    calls["stage"] = "autodiff"
    t = time.perf_counter()
    grads = sd.grad(loss, wrt)
    T.add("autodiff", time.perf_counter() - t)
    calls["stage"] = "compile"
    cpu = time.process_time()
    with jit.record_compile_times() as mods:
        f = sd.compile([loss, *grads], backend="llvm")
    T.add("compile CPU (all threads)", time.process_time() - cpu)
    T.add("compile", f.compile_seconds)
    for m in mods:
        kind = "shared" if m["module"].startswith("sdgemm.") else "light" if m.get("light") else "main"
        for part in ("parse", "opt", "codegen", "print"):
            T.add(f"{kind} {part}", m[f"{part}_s"])
    T.add("total", T.t["graph build"] + T.t["autodiff"] + T.t["compile"])
    return {"t": T.t, "modules": mods, "shared": f.shared_kernels, "cache_hit": f.cache_hit}


# --------------------------------------------------------------------------- parent
def parse_tuning(text: str) -> dict:
    """``"loop_unrolling=0,slp_vectorization=1"`` -> {"loop_unrolling": False, "slp_vectorization": True}."""
    out = {}
    for item in filter(None, (t.strip() for t in text.split(","))):
        name, _, value = item.partition("=")
        if value not in ("0", "1"):
            raise SystemExit(f"--tuning: expected name=0 or name=1, got {item!r}")
        out[name] = value == "1"
    return out


def run_child(case: str, cache_dir: Path, speed_level: int | None = None, tuning: str = "",
              full_tier: bool = False) -> dict:
    env = {**os.environ, "SYMDIFF_CACHE_DIR": str(cache_dir), "SYMDIFF_CACHE": "1"}
    level = ([] if speed_level is None else ["--speed-level", str(speed_level)]) + (["--tuning", tuning] if tuning else [])
    level += ["--full-tier"] if full_tier else []
    out = subprocess.run([sys.executable, "-m", "benchmarks.compile_time", "--child", case, *level], cwd=REPO,
                         env=env, capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(f"child {case} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def drop_graph_entries(cache_dir: Path) -> None:
    """Delete the models' own entries, keep the shared GEMM kernels (the ``kernels`` namespace)."""
    for p in cache_dir.iterdir():
        if p.is_dir() and p.name != "kernels":
            shutil.rmtree(p)


def measure(case: str, runs: int, speed_level: int | None = None, tuning: str = "",
            full_tier: bool = False) -> dict[str, list[dict]]:
    res: dict[str, list[dict]] = {s: [] for s in STATES}
    for _ in range(runs):
        d = Path(tempfile.mkdtemp(prefix="sd-compile-time-"))
        try:
            res["cold"].append(run_child(case, d, speed_level, tuning, full_tier))
            drop_graph_entries(d)
            r = run_child(case, d, speed_level, tuning, full_tier)
            if r["shared"]["compiled"]:
                r["warning"] = f"kernels compiled again: {r['shared']['compiled']}"
            res["kernels"].append(r)
            res["cached"].append(run_child(case, d, speed_level, tuning, full_tier))
        finally:
            shutil.rmtree(d, ignore_errors=True)
    return res


ORDER = ["import numpy", "import symdiff", "import llvm backend", "graph build", "autodiff", "simplify",
         "expand", "lower", "cache key", "render (build IR)", "split + IR text", "LLVM wait after render",
         "shared parse", "shared opt", "shared codegen", "shared print", "main parse", "main opt",
         "main codegen", "main print", "light parse", "light opt", "light codegen", "light print", "cache I/O",
         "link + load", "runtime setup", "compile CPU (all threads)",
         "compile", "total"]


def table(case: str, res: dict[str, list[dict]]) -> str:
    keys = [k for k in ORDER if any(k in r["t"] for rs in res.values() for r in rs)]
    phases = sorted({k for rs in res.values() for r in rs for k in r["t"] if k.startswith("simplify ")},
                    key=lambda k: int(k.split()[1].rstrip(":")))
    keys[keys.index("simplify") + 1:keys.index("simplify") + 1] = phases
    n = len(res["cold"])
    lines = [f"### {case}: {workload(case).describe()}", "",
             f"| phase (ms, median of {n} fresh processes) | " + " | ".join(STATES) + " |",
             "|---|" + "---:|" * len(STATES)]
    for k in keys:
        cells = []
        for s in STATES:
            vals = [r["t"].get(k, 0.0) for r in res[s]]
            cells.append(f"{1e3 * statistics.median(vals):.1f}" if any(vals) else "")
        sub = k.startswith(("simplify ", "shared ", "main ", "light "))
        name = f"**{k}**" if k in ("compile", "total") else ("&nbsp;&nbsp;" + k if sub else k)
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    cold = res["cold"][0]
    lines += ["", f"cold: {len(cold['shared']['compiled'])} shared GEMM modules compiled "
              f"({', '.join(cold['shared']['compiled'])}); main module "
              f"{sum(m['ir_chars'] for m in cold['modules'] if not m['module'].startswith('sdgemm.')):,} IR chars"]
    lines += [f"warning: {r['warning']}" for r in res["kernels"] if "warning" in r]
    return "\n".join(lines)


def profile(case: str) -> None:
    import cProfile
    import pstats
    d = Path(tempfile.mkdtemp(prefix="sd-compile-prof-"))
    os.environ["SYMDIFF_CACHE_DIR"] = str(d)
    try:
        pr = cProfile.Profile()
        pr.enable()
        r = child(case)
        pr.disable()
    finally:
        shutil.rmtree(d, ignore_errors=True)
    print({k: round(v * 1e3, 1) for k, v in r["t"].items()})
    st = pstats.Stats(pr)
    st.sort_stats("cumulative").print_stats(45)
    st.sort_stats("tottime").print_stats(25)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cases", default=",".join(CASES), help="comma-separated: W1, odd, W6, or any workload name")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--profile", metavar="CASE", help="cProfile one cold compile of CASE")
    ap.add_argument("--json", metavar="PATH", help="also write the raw results there")
    ap.add_argument("--speed-level", type=int, choices=(1, 2, 3),
                    help="LLVM optimisation level of the emitted objects (default: jit.EMIT_SPEED_LEVEL)")
    ap.add_argument("--tuning", default="", help="pipeline tuning overrides, e.g. loop_unrolling=0 (jit.EMIT_TUNING)")
    ap.add_argument("--full-tier", action="store_true",
                    help="every graph kernel at the full tier (no light tier, llvm/tiers.py)")
    a = ap.parse_args(argv)
    if a.child:
        print(json.dumps(child(a.child, a.speed_level, a.tuning, a.full_tier)))
        return
    if a.profile:
        profile(a.profile)
        return
    from benchmarks import machine
    m = machine.describe(str(REPO))
    idle = machine.idle_check()
    print(f"machine: {m['cpu']}, {m['logical_cpus']} logical CPUs, Python {m['python']}, llvmlite {m['llvmlite']}, "
          f"symdiff {m['symdiff_git']}" + (f", LLVM O{a.speed_level}" if a.speed_level else "")
          + (", every kernel at the full tier" if a.full_tier else ""))
    if idle["warning"]:
        print(idle["warning"])
    raw = {}
    for case in [c.strip() for c in a.cases.split(",") if c.strip()]:
        raw[case] = measure(case, a.runs, a.speed_level, a.tuning, a.full_tier)
        print()
        print(table(case, raw[case]), flush=True)
    cold = {c: statistics.median(r["t"]["total"] for r in rs["cold"]) for c, rs in raw.items()}
    if "W1" in cold:
        print("\ncold total / W1's: " + ", ".join(f"{c} {v / cold['W1']:.2f}x" for c, v in cold.items()))
    if a.json:
        Path(a.json).write_text(json.dumps({"machine": m, "idle": idle, "results": raw}, indent=1))


if __name__ == "__main__":
    main()
