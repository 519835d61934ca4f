"""One benchmark child process: one contender on one workload (or the machine peaks).

    python -m benchmarks.child --workload W1 --contender torch --threads 2 --out res.json
    python -m benchmarks.child --peaks --threads 2 --out peaks.json

Run by ``run.py`` in a fresh process with the benchmark environment; writes one JSON object.
Stages: prepare (import/build/compile) -> first call (timed) -> gradient check against the
float64 hand-written reference -> warm-up + timed repetitions -> a second gradient check.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
import traceback


def _tail(limit: int = 6) -> str:
    return " / ".join(traceback.format_exc(limit=limit).strip().splitlines()[-4:])


def _own_cpu() -> float:
    import resource
    ru = resource.getrusage(resource.RUSAGE_SELF)              # all threads of this process
    return ru.ru_utime + ru.ru_stime


def run_one(args) -> dict:
    from . import harness, reference, workloads
    from .machine import cpu_snapshot, other_load, steal_fraction, steal_snapshot
    from .harness import TimingPlan, time_calls

    wl = workloads.WORKLOADS[args.workload]
    out: dict = {"workload": wl.name, "contender": args.contender, "status": "ok"}
    data = workloads.make_data(wl)
    truth = reference.fwd_bwd(wl, workloads.as_float64(data))

    stage = "prepare"
    try:
        prep = harness.get(args.contender)(wl, data, args.threads)
    except harness.Skip as e:
        out.update(status="skipped", reason=str(e))
        return out
    except Exception as e:
        out.update(status="skipped", reason=f"{stage}: {type(e).__name__}: {e} | {_tail()}")
        return out
    out["info"] = prep.info
    out["compile"] = dict(prep.compile)
    if args.compile_only:
        return out

    try:
        stage = "first call"
        print("stage: first call", file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        res = prep.call()
        out["compile"]["first_call"] = time.perf_counter() - t0
        stage = "gradient check"
        out["check"] = reference.compare(wl, prep.to_numpy(res), truth)
        del res
        stage = "timing"
        print("stage: timing", file=sys.stderr, flush=True)
        snap0, cpu0, steal0 = cpu_snapshot(), _own_cpu(), steal_snapshot()
        out["timing"] = time_calls(prep.call, TimingPlan.make(args.quick, args.repeat))
        out["other_load"] = round(other_load(snap0, cpu_snapshot(), _own_cpu() - cpu0), 3)
        out["steal"] = round(steal_fraction(steal0, steal_snapshot()), 3)   # the hypervisor's part of it
        stage = "post-timing gradient check"
        post = reference.compare(wl, prep.to_numpy(prep.call()), truth)
        out["check_after"] = {"ok": post["ok"], "max_err": post["max_err"]}
        if not post["ok"]:
            out["check"]["ok"] = False
            out["check"]["problems"].append("outputs changed after repeated calls: " + "; ".join(post["problems"]))
    except Exception as e:
        out.update(status="error", reason=f"{stage}: {type(e).__name__}: {e} | {_tail()}")
        return out

    med = out["timing"]["median_s"]
    out["gflops"] = wl.flops() / med / 1e9 if wl.flops() else None
    out["gbs"] = wl.min_bytes() / med / 1e9
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--workload")
    ap.add_argument("--contender")
    ap.add_argument("--peaks", action="store_true")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--repeat", type=int, default=None)
    ap.add_argument("--compile-only", action="store_true", help="prepare (compile) only, no calls")
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)

    import faulthandler
    import signal
    faulthandler.enable()                                     # stacks on a crash (e.g. in JIT code)
    faulthandler.register(signal.SIGUSR1, all_threads=True)   # the parent asks for a stack on timeout

    from .machine import pin_cpus                      # before numpy/torch/jax start thread pools
    cpus = pin_cpus(args.threads)
    if args.peaks:
        from .machine import measure_peaks
        try:
            result = {"status": "ok", **measure_peaks(args.quick, args.threads)}
        except Exception as e:
            result = {"status": "error", "reason": f"{type(e).__name__}: {e} | {_tail()}"}
    else:
        result = run_one(args)
    result["cpus"] = cpus
    with open(args.out, "w") as fh:
        json.dump(result, fh, indent=1, default=repr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
