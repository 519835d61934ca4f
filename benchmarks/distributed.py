"""Data-parallel steps on a Dask LocalCluster: steps/s on 1 and 2 workers for W1- and W5-sized MLP gradient
steps, the communication cost per step (bytes and seconds), and a cost-model extrapolation to 8 and 64 workers.

    python benchmarks/distributed.py [--steps 20] [--workloads W1,W5]

A step is ``DataParallel(grad graph)(x, y, params)``: the batch split over the workers, the parameters sent
with every shard's task, the loss and gradients averaged on the client. Communication is measured with an
identity task carrying the same bytes (parameters out, gradients back) and no compute. The cost model per
step on W workers (parameters P bytes, compute C seconds for the whole batch on one worker):

    t(W) = C / W + a + b * W     (a: fixed overhead per step; b: broadcast + gather of P bytes per worker)

and with a ring or tree reduction the per-step traffic through one node becomes ~2P (ring) or P log2(W)
(tree) instead of W * P. The machine has 2 cores: 2 workers compete with the scheduler and the client.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

import numpy as np

# run as a script, sys.path[0] is benchmarks/, where this file would shadow the `distributed` package
HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
sys.path.insert(0, str(HERE.parent))

from benchmarks.workloads import WORKLOADS, build_symdiff, make_data  # noqa: E402


def grad_builder(wl, sd):
    """``build(rows)``: [loss, *grads] of workload ``wl`` at ``rows`` rows (same parameter names)."""
    from dataclasses import replace

    def build(rows: int):
        loss, wrt, _ = build_symdiff(replace(wl, batch=rows), sd)
        return [loss, *sd.grad(loss, wrt)]
    return build


def echo(payload):
    """The communication probe: returns what it got (the size of the gradients)."""
    return payload


def median_time(fn, steps: int) -> float:
    fn()  # warm-up: compiles on the workers
    ts = []
    for _ in range(steps):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return float(np.median(ts))


def measure(wl, workers: int, steps: int) -> dict:
    import distributed

    import symdiff as sd
    from symdiff.distributed import DataParallel

    data = make_data(wl)
    params = {k: v for k, v in data.items() if k not in ("x", "y")}
    p_bytes = int(sum(v.nbytes for v in params.values()))
    x_bytes = int(data["x"].nbytes + data["y"].nbytes)
    cluster = distributed.LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                       dashboard_address=None, silence_logs=logging.CRITICAL)
    client = distributed.Client(cluster)
    try:
        client.wait_for_workers(workers, timeout=120)
        build = grad_builder(wl, sd)
        with DataParallel(build, client, split=("x", "y"), timeout=300, num_threads=1) as dp:
            step_s = median_time(lambda: dp(**data), steps)
        names = sorted(client.scheduler_info()["workers"])

        def comm():  # the same traffic, no compute: P bytes to each worker, P bytes back from each
            futs = [client.submit(echo, params, workers=[w], pure=False) for w in names]
            distributed.wait(futs, timeout=300)
            client.gather(futs)
        comm_s = median_time(comm, steps)
    finally:
        client.close()
        cluster.close()
    local = sd.compile(grad_builder(wl, sd)(wl.batch), num_threads=1)
    compute_s = median_time(lambda: local(**data), steps)
    return {"workload": wl.name, "workers": workers, "steps_per_s": 1.0 / step_s, "step_s": step_s,
            "local_1_thread_step_s": compute_s, "comm_s": comm_s, "param_bytes": p_bytes, "batch_bytes": x_bytes,
            "bytes_per_step": workers * 2 * p_bytes + x_bytes}


def extrapolate(r1: dict, r2: dict, workers: int) -> dict:
    """t(W) = C/W + a + b*W fitted to the measured 1- and 2-worker step times (C: the 1-thread compute of the
    batch; a: fixed overhead per step -- scheduler round trips, task (de)serialization; b: seconds per worker
    of parameter broadcast + gradient gather through the client). A ring all-reduce moves ~2P through each
    node whatever W (b*W -> 2b); a tree moves P per level over log2(W) levels (b*W -> b*log2(W))."""
    c = r1["local_1_thread_step_s"]
    b = max(r2["step_s"] - r1["step_s"] + c / 2, 0.0)
    a = max(r1["step_s"] - c - b, 0.0)
    t = c / workers + a + b * workers
    ring = c / workers + a + b * 2
    tree = c / workers + a + b * np.log2(max(workers, 2))
    return {"workers": workers, "a_s": a, "b_s": b, "client_step_s": t, "ring_step_s": ring, "tree_step_s": tree,
            "speedup_client": c / t, "speedup_ring": c / ring, "speedup_tree": c / tree}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--workloads", default="W1,W5")
    ap.add_argument("--json", default="")
    args = ap.parse_args()
    out = []
    for name in args.workloads.split(","):
        wl = WORKLOADS[name.strip().upper()]
        r1, r2 = measure(wl, 1, args.steps), measure(wl, 2, args.steps)
        rows = [r1, r2]
        for r in rows:
            print(f"{wl.name} {r['workers']} worker(s): {r['steps_per_s']:.1f} steps/s (step {r['step_s'] * 1e3:.1f} ms; "
                  f"local 1-thread step {r['local_1_thread_step_s'] * 1e3:.1f} ms; communication {r['comm_s'] * 1e3:.1f} ms "
                  f"for {r['bytes_per_step'] / 1e6:.2f} MB/step)")
        for w in (8, 64):
            e = extrapolate(r1, r2, w)
            print(f"{wl.name} {w} workers (model a={e['a_s'] * 1e3:.1f} ms, b={e['b_s'] * 1e3:.1f} ms/worker): client {e['client_step_s'] * 1e3:.1f} ms/step "
                  f"(x{e['speedup_client']:.2f}), ring {e['ring_step_s'] * 1e3:.1f} ms (x{e['speedup_ring']:.2f}), "
                  f"tree {e['tree_step_s'] * 1e3:.1f} ms (x{e['speedup_tree']:.2f})")
            rows.append({"workload": wl.name, "model": True, **e})
        out += rows
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
