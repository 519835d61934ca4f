#!/usr/bin/env python3
"""symdiff benchmarks: time workloads side by side against hand-written numpy, PyTorch and JAX.

    python benchmarks/run.py                         # everything, full timing
    python benchmarks/run.py --quick                 # short smoke run
    python benchmarks/run.py --workloads W1,W3 --contenders symdiff-llvm,torch --repeat 200
    python benchmarks/run.py --torch-compile         # also torch.compile (slow to compile)

Each (workload, contender) runs in its own fresh subprocess, strictly one after another, with
the same thread count for everyone.  Results: a markdown table on stdout and in
benchmarks/results/latest.md, everything in benchmarks/results/latest.json.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import resource
import shlex
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
if sys.path and os.path.abspath(sys.path[0] or ".") == HERE:
    sys.path[0] = REPO               # import as the package ``benchmarks``; don't shadow modules
elif REPO not in sys.path:
    sys.path.insert(0, REPO)

from benchmarks import harness, machine, report, workloads  # noqa: E402
from benchmarks.harness import fmt_time  # noqa: E402


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workloads", help=f"comma list (default all: {','.join(workloads.WORKLOADS)})")
    ap.add_argument("--contenders", help=f"comma list (default {','.join(harness.DEFAULT)}; "
                                         f"known: {','.join(harness.REGISTRY)})")
    ap.add_argument("--repeat", type=int, default=None, help="fixed number of timed calls (default: adaptive)")
    ap.add_argument("--rounds", type=int, default=1,
                    help="time every contender of a workload this many times, the order rotated each round; "
                         "each reports its median round (a noisy host's slow phases then hit every contender)")
    ap.add_argument("--quick", action="store_true", help="short warm-up/timing and smaller peak sizes")
    ap.add_argument("--torch-compile", action="store_true", help="add the torch.compile contender")
    ap.add_argument("--threads", type=int, default=2, help="threads for every contender (default 2)")
    ap.add_argument("--timeout", type=float, default=None,
                    help="seconds per child process before it is killed (default 900, --quick 300)")
    ap.add_argument("--no-peaks", action="store_true", help="skip the GEMM / bandwidth peak measurement")
    ap.add_argument("--idle-threshold", type=float, default=0.10,
                    help="busy CPU fraction above which the machine counts as not idle")
    ap.add_argument("--out-dir", default=os.path.join(HERE, "results"))
    ap.add_argument("--baseline", metavar="DIR",
                    help="also time symdiff-llvm from another checkout (e.g. `git worktree add DIR <old commit>`), "
                         "as contender symdiff-llvm@base, right after symdiff-llvm in the same run")
    ap.add_argument("--baseline-python", metavar="PY", default=sys.executable,
                    help="the interpreter that has the --baseline checkout installed (default: this one)")
    ap.add_argument("--keep-disk-caches", action="store_true",
                    help="let children share on-disk compile caches (default: a fresh cache dir per child, "
                         "so compile times are cold)")
    args = ap.parse_args(argv)
    if args.timeout is None:
        args.timeout = 300.0 if args.quick else 900.0
    return args


def run_child(extra: list[str], env: dict, args, cache: str | None = None,
              python: str = sys.executable, cwd: str = REPO) -> dict:
    """Run ``python -m benchmarks.child`` once; always returns a result dict.

    On-disk compile caches go to ``cache`` if given, else to a fresh directory (cold compile).
    """
    with tempfile.TemporaryDirectory(prefix="sdbench-") as tmp:
        out = os.path.join(tmp, "result.json")
        cenv = dict(env)
        if cache or not args.keep_disk_caches:
            cache = cache or os.path.join(tmp, "cache")
            os.makedirs(cache, exist_ok=True)
            cenv.update(XDG_CACHE_HOME=cache, TORCHINDUCTOR_CACHE_DIR=os.path.join(cache, "inductor"),
                        SYMDIFF_CACHE_DIR=os.path.join(cache, "symdiff"))
        cmd = [python, "-m", "benchmarks.child", "--threads", str(args.threads), "--out", out, *extra]
        if args.quick:
            cmd.append("--quick")
        if args.repeat:
            cmd += ["--repeat", str(args.repeat)]
        t0 = time.perf_counter()
        snap0, ru0 = machine.cpu_snapshot(), resource.getrusage(resource.RUSAGE_CHILDREN)
        # own session: on timeout the whole group (e.g. torch.compile's workers) is killed
        p = subprocess.Popen(cmd, cwd=cwd, env=cenv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             start_new_session=True)
        try:
            stdout, stderr = p.communicate(timeout=args.timeout)
        except subprocess.TimeoutExpired:
            p.send_signal(signal.SIGUSR1)                 # child dumps its Python stacks to stderr
            time.sleep(2)
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            stdout, stderr = p.communicate()
            return {"status": "error", "other_load": 0.0,
                    "reason": f"timed out after {args.timeout:.0f}s " + _where(stderr)}
        wall = time.perf_counter() - t0
        snap1, ru1 = machine.cpu_snapshot(), resource.getrusage(resource.RUSAGE_CHILDREN)
        own = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
        if os.path.exists(out):
            with open(out) as fh:
                res = json.load(fh)
        else:
            rc = p.returncode
            how = f"crashed ({signal.Signals(-rc).name})" if rc < 0 else f"exited with rc={rc} and no result"
            if "Current thread" in stderr:                # faulthandler's dump on a fatal signal
                detail = _where(stderr)
            else:
                detail = " / ".join((stderr or stdout or "").strip().splitlines()[-8:])
            res = {"status": "error", "reason": f"child {how}: {detail}"}
        res["wall_s"] = wall
        # whole-child figure; the child itself reports the (more precise) one for its timing phase
        res["other_load_child"] = round(machine.other_load(snap0, snap1, own), 3)
        res.setdefault("other_load", res["other_load_child"])
        if res.get("status") != "ok" and stderr.strip():
            res["stderr_tail"] = stderr.strip().splitlines()[-5:]
        return res


def _where(stderr: str) -> str:
    """Stage and main-thread Python stack from a child's faulthandler dump (innermost first)."""
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    stage = next((ln[7:] for ln in reversed(lines) if ln.startswith("stage: ")), "prepare")
    try:
        start = max(i for i, ln in enumerate(lines) if ln.startswith("Current thread"))
    except ValueError:
        return f"in {stage}"
    frames = []
    for ln in lines[start + 1:]:
        if not ln.startswith("File "):
            break
        frames.append(ln[5:].replace(REPO + os.sep, ""))
    keep = frames[:1] + [f for f in frames[1:] if not f.startswith('"/')][:5]   # innermost + project frames
    return f"in {stage}; main thread at: " + " <- ".join(keep)


BASELINE = "symdiff-llvm@base"


def run_contender(wl_name: str, name: str, env: dict, args) -> dict:
    """The timed child; for symdiff also a compile-only child in a fresh process that reuses the
    first child's on-disk cache (phase ``disk_cache``: what a second program run pays).
    ``symdiff-llvm@base`` is symdiff-llvm run from the --baseline checkout by its interpreter."""
    where = {}
    if name == BASELINE:
        name, where = "symdiff-llvm", {"python": args.baseline_python, "cwd": os.path.abspath(args.baseline)}
    sel = ["--workload", wl_name, "--contender", name]
    if name != "symdiff-llvm" or args.keep_disk_caches:          # the numpy backend has no disk cache
        return run_child(sel, env, args, **where)
    with tempfile.TemporaryDirectory(prefix="sdbench-cache-") as cache:
        r = run_child(sel, env, args, cache=cache, **where)
        if r.get("status") == "ok":
            again = run_child(sel + ["--compile-only"], env, args, cache=cache, **where)
            if again.get("status") == "ok" and "compile" in again.get("compile", {}):
                r["compile"]["disk_cache"] = again["compile"]["compile"]
                r["info"]["disk_cache_hit"] = (again.get("info") or {}).get("cache_hit")
    return r


def _timed(wl, name: str, env: dict, args, busy_samples: list) -> dict:
    """One contender's child run on ``wl``, after an idle check (printed as it goes)."""
    between = machine.idle_check(0.3, args.idle_threshold)
    if between["busy"] is not None:
        busy_samples.append(between["busy"])
    if between["warning"]:
        print(f"   (load) {between['warning']}")
    print(f"   {name:<14}", end=" ", flush=True)
    r = run_contender(wl.name, name, env, args)
    r.setdefault("workload", wl.name)
    r["contender"] = name  # the child reports "symdiff-llvm" for the baseline too
    r["busy_before"] = between["busy"]
    print(one_line(r) + (f"  [other load {report.load_text(r)}]" if r["status"] == "ok"
                         and r.get("other_load", 0) > args.idle_threshold else ""), flush=True)
    return r


def median_round(rs: list[dict]) -> dict:
    """The round whose median is the median of a contender's rounds (its whole result: timing, check,
    compile), with every round's median under ``rounds``; the first result when none succeeded."""
    ok = sorted((r for r in rs if r.get("status") == "ok"), key=lambda r: r["timing"]["median_s"])
    if not ok:
        return rs[0]
    pick = dict(ok[(len(ok) - 1) // 2])
    if len(rs) > 1:
        pick["rounds"] = [r["timing"]["median_s"] for r in ok]
    return pick


def one_line(r: dict) -> str:
    if r["status"] == "skipped":
        return f"SKIP  {r.get('reason', '')[:300]}"
    if r["status"] != "ok":
        return f"ERROR {r.get('reason', '')[:300]}"
    t = r["timing"]
    ck = r["check"]
    comp = r.get("compile", {})
    extra = ", ".join(f"{k} {fmt_time(v)}" for k, v in comp.items())
    return (f"median {fmt_time(t['median_s'])} (p10 {fmt_time(t['p10_s'])}, p90 {fmt_time(t['p90_s'])}, "
            f"{t['reps']} reps) grad {'ok' if ck['ok'] else 'DISAGREE'} err {ck['max_err']:.1e}"
            + (f" [{'; '.join(ck['problems'])}]" if ck["problems"] else "") + (f" | {extra}" if extra else ""))


def main(argv=None) -> int:
    args = parse_args(argv)
    wls = workloads.get(args.workloads)
    names = harness.parse(args.contenders, args.torch_compile)
    if args.baseline:
        names.insert(names.index("symdiff-llvm") + 1 if "symdiff-llvm" in names else 0, BASELINE)
    env, env_notes = machine.child_env(args.threads)
    info = machine.describe(REPO)
    print(f"symdiff benchmarks: {len(wls)} workload(s) x {len(names)} contender(s), threads={args.threads}"
          f"{', QUICK' if args.quick else ''}")
    print(f"machine: {info['cpu']}, {info['logical_cpus']} CPUs, {info['mem_gib']} GiB; "
          f"numpy {info['numpy']}, torch {info['torch']}, jax {info['jax']}, symdiff {info['symdiff_git']}")
    if args.baseline:
        info["symdiff_baseline_git"] = subprocess.run(["git", "-C", args.baseline, "rev-parse", "--short", "HEAD"],
                                                      capture_output=True, text=True).stdout.strip()
        print(f"baseline: {BASELINE} = {args.baseline} at {info['symdiff_baseline_git']} ({args.baseline_python})")
    for n in env_notes:
        print(f"env: {n}")

    load_warnings = []
    idle = machine.idle_check(1.0, args.idle_threshold)
    print(f"idle check: {idle['busy']:.0%} busy, loadavg {idle['loadavg']}" if idle["busy"] is not None
          else idle["warning"])
    if idle["warning"]:
        print(f"WARNING: {idle['warning']}")
        load_warnings.append("before start: " + idle["warning"])

    peaks = None
    if not args.no_peaks:
        print("measuring machine peaks ...", flush=True)
        peaks = run_child(["--peaks"], env, args)
        if peaks.get("status") == "ok":
            print("peaks: " + ", ".join(
                [f"GEMM {dt} {peaks[f'gemm_{dt}']['gflops']:.1f} GFLOP/s" for dt in ("float32", "float64")]
                + [f"copy {peaks[k]['bytes'] >> 20} MiB {peaks[k]['gbs']:.1f} GB/s"
                   for k in ("bandwidth", "bandwidth_16MiB")]))
        else:
            print(f"peaks: FAILED {peaks.get('reason')}")
        if peaks.get("other_load", 0) > args.idle_threshold:
            load_warnings.append(f"peaks were measured while other processes used {peaks['other_load']:.0%} "
                                 f"of the CPUs: the peaks (and the % of peak figures) are too low")
            print(f"WARNING: {load_warnings[-1]}")

    results, busy_samples = [], []
    for wl in wls:
        print(f"\n== {wl.name}: {wl.describe()}")
        per: dict[str, list] = {n: [] for n in names}
        for rnd in range(max(1, args.rounds)):
            if args.rounds > 1:
                print(f"   -- round {rnd + 1} of {args.rounds}")
            for name in names[rnd % len(names):] + names[:rnd % len(names)]:
                per[name].append(_timed(wl, name, env, args, busy_samples))
        results += [median_round(per[n]) for n in names]

    disturbed = [f"{r['workload']}/{r['contender']} ({report.load_text(r)})" for r in results
                 if r.get("status") == "ok" and r.get("other_load", 0) > args.idle_threshold]
    if disturbed:
        load_warnings.append(f"other processes (or the hypervisor: steal) used more than {args.idle_threshold:.0%} "
                             f"of the CPUs while these ran (marked ~ in the tables): " + ", ".join(disturbed))
        print(f"\nWARNING: {load_warnings[-1]}")
    if busy_samples:
        noisy = [b for b in busy_samples if b > args.idle_threshold]
        if noisy:
            load_warnings.append(f"during the run: {len(noisy)} of {len(busy_samples)} between-run samples found "
                                 f"the machine busy (max {max(busy_samples):.0%} of all CPUs) -- other load "
                                 f"was competing with the benchmark")
            print(f"\nWARNING: {load_warnings[-1]}")

    run = {
        "date": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "command": "python benchmarks/run.py " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:])),
        "machine": info, "threads": args.threads, "idle_threshold": args.idle_threshold, "quick": args.quick, "env_notes": env_notes,
        "idle_start": idle, "load_warnings": load_warnings, "peaks": peaks,
        "contenders": names,
        "workloads": {w.name: {"describe": w.describe(), "note": w.note, "flops": w.flops(),
                               "min_bytes": w.min_bytes(), "bound": w.bound, "dtype": w.dtype} for w in wls},
        "results": results,
    }
    from benchmarks import cuda_stats  # generated CUDA kernels per workload: count, FLOPs, bytes, GPU roofline
    run["cuda_kernels_md"] = cuda_stats.markdown(wls)
    md_path, js_path = report.write(run, args.out_dir)
    print("\n" + report.markdown(run))
    print(f"written: {os.path.relpath(md_path)}, {os.path.relpath(js_path)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
