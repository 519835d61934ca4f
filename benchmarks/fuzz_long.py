"""Long differential fuzzing run (not a test): thousands of random graphs, every backend against numpy.

Uses the generator (``tests/fuzz_graphs.py``) and checks of ``tests/test_fuzz.py`` with a seeded
``random.Random`` per graph, so every graph is reproducible from its seed alone::

    python benchmarks/fuzz_long.py --minutes 25                 # llvm every graph, cuda-cpu every 10th
    python benchmarks/fuzz_long.py --seeds 1234 --cuda-every 1  # replay one seed (prints the graph)

Per seed the configuration is drawn from the seed too (``config``): small shapes or big ones (up to
64 per axis, so the parallel loops and the matmul kernels run), up to 14 ops, first or second order
derivatives, with or without the simplifier (with it, every backend is also compared with the
unsimplified graph on numpy: a simplifier bug that changes values shows there), 1/2/default threads
for llvm, and in some graphs leaves holding inf/nan/+-0/denormal/huge entries (compared across
backends only, no finite differences). A failure is printed with
its seed and configuration and appended to ``--log`` (JSON lines); the run goes on. The summary lists
graphs tried, passed, rejected (values within ``KINK_MARGIN`` of a kink), failed, and op coverage.
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import random
import sys
import tempfile
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

import test_fuzz as tf  # noqa: E402

import symdiff as sd  # noqa: E402
from symdiff.ir import toposort  # noqa: E402
from symdiff.optable import OPS  # noqa: E402

BIG_DIMS = (1, 2, 3, 7, 8, 17, 33, 64)


def config(seed: int) -> dict:
    r = random.Random(seed ^ 0x5EED)
    big = r.random() < 0.15
    return {
        "dims": BIG_DIMS if big else tf.DIMS,
        "max_steps": r.randint(4, 14),
        "order": 2 if r.random() < 0.15 else 1,
        "simplify_graph": r.random() >= 0.15,
        "num_threads": r.choice((None, 1, 2)),
        "special": 0.2 if r.random() < 0.15 else 0.0,
    }


def run_seed(seed: int, backends: tuple, fd: bool = True) -> tuple[dict, tf.FuzzCase]:
    cfg = config(seed)
    case = tf.case_from_seed(seed, cfg["max_steps"], cfg["dims"], cfg["special"])
    if sum(v.size for v in case.values.values()) > 400_000:
        raise tf.Rejected("too big")
    opts = {}
    if "llvm" in backends and cfg["num_threads"] is not None:
        opts["num_threads"] = cfg["num_threads"]
    info: dict = {}
    for be in backends:
        got = tf.check_case(case, (be,), fd=fd and be == backends[0], order=cfg["order"],
                            simplify_graph=cfg["simplify_graph"], **(opts if be == "llvm" else {}))
        info = {**got, "fd": bool(info.get("fd")) or got["fd"]}  # finite differences ran with the first backend
    return info, case


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=20.0, help="stop after this long (default 20)")
    ap.add_argument("--start", type=int, default=1_000_000, help="first seed (default 1000000)")
    ap.add_argument("--count", type=int, default=10**9, help="at most this many seeds")
    ap.add_argument("--seeds", type=str, default="", help="comma-separated seeds to replay (overrides --start)")
    ap.add_argument("--cuda-every", type=int, default=10, help="also run cuda-cpu on every Nth seed (0: never)")
    ap.add_argument("--log", type=str, default="", help="append failures as JSON lines here")
    ap.add_argument("--cache", action="store_true", help="use the compile cache (default: a throwaway dir)")
    args = ap.parse_args(argv)
    if not args.cache:
        os.environ["SYMDIFF_CACHE_DIR"] = tempfile.mkdtemp(prefix="symdiff-fuzz-cache-")
    seeds = [int(s) for s in args.seeds.split(",") if s] or range(args.start, args.start + args.count)
    verbose = bool(args.seeds)
    deadline = time.time() + 60 * args.minutes
    t0 = time.time()
    stats = collections.Counter()
    ops_seen = collections.Counter()
    failures = []
    for i, seed in enumerate(seeds):
        if time.time() > deadline:
            break
        backends = ("llvm",) + (("cuda-cpu",) if args.cuda_every and i % args.cuda_every == 0 else ())
        stats["tried"] += 1
        try:
            info, case = run_seed(seed, backends)
            stats["passed"] += 1
            stats["fd_checked"] += bool(info.get("fd"))
            stats["exact_kink"] += bool(info.get("exact_kink"))
            stats["vs_unsimplified"] += bool(info.get("unsimplified"))
            stats["cuda_cpu"] += "cuda-cpu" in backends
            stats["second_order"] += config(seed)["order"] == 2
            stats["big"] += config(seed)["dims"] == BIG_DIMS
            stats["special_values"] += bool(config(seed)["special"])
            ops_seen.update({n.op for n in toposort(sd.simplify(tf.graph_of(case)[0]))})
            if verbose:
                print(f"seed {seed}: ok {info} {case.describe()}")
        except tf.Rejected as e:
            stats["rejected"] += 1
            if verbose:
                print(f"seed {seed}: rejected ({e})")
        except Exception as e:  # noqa: BLE001 - a finding: report and go on
            stats["failed"] += 1
            rec = {"seed": seed, "config": {k: str(v) for k, v in config(seed).items()}, "backends": backends,
                   "error": f"{type(e).__name__}: {e}"[:4000], "traceback": traceback.format_exc()[-3000:]}
            failures.append(rec)
            print(f"FAIL seed {seed} {rec['config']}: {rec['error'][:2000]}", flush=True)
            if args.log:
                with open(args.log, "a") as f:
                    f.write(json.dumps(rec) + "\n")
        if stats["tried"] % 100 == 0:
            print(f"[{time.time() - t0:7.0f} s] {dict(stats)}", flush=True)
    elapsed = time.time() - t0
    print(f"\n== fuzz_long: {stats['tried']} graphs in {elapsed:.0f} s: {dict(stats)}")
    missing = sorted(set(OPS) - set(ops_seen))
    print("ops covered:", ", ".join(f"{k}:{v}" for k, v in sorted(ops_seen.items())))
    print("ops never generated:", missing or "none")
    if failures:
        print(f"{len(failures)} failure(s); seeds: {[f['seed'] for f in failures]}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
