"""benchmarks/run.py --rounds: each contender reports its median round; the report's goal column is
symdiff-llvm over the best of torch and jax (issue 17's ratio)."""
from __future__ import annotations

from benchmarks import report
from benchmarks.run import median_round


def _ok(t: float, name: str = "torch", workload: str = "W1") -> dict:
    return {"status": "ok", "workload": workload, "contender": name, "check": {"ok": True, "max_err": 0.0,
                                                                               "problems": []},
            "timing": {"median_s": t, "p10_s": t, "p90_s": t, "reps": 10}, "gflops": 1.0, "gbs": None,
            "compile": {}, "other_load": 0.0}


def test_median_round_keeps_the_middle_result_and_every_rounds_median():
    rs = [_ok(3.0), _ok(1.0), {"status": "error", "reason": "x"}, _ok(2.0)]
    got = median_round(rs)
    assert got["timing"]["median_s"] == 2.0 and got["rounds"] == [1.0, 2.0, 3.0]
    assert median_round([_ok(2.0), _ok(1.0)])["timing"]["median_s"] == 1.0  # (even count: the lower middle)
    assert "rounds" not in median_round([_ok(5.0)])
    bad = {"status": "error", "reason": "boom"}
    assert median_round([bad]) is bad


def test_report_has_the_goal_ratio_and_the_rounds():
    results = [dict(_ok(0.5, "symdiff-llvm"), rounds=[0.5, 0.6]), dict(_ok(1.0, "torch"), rounds=[1.0, 1.1]),
               dict(_ok(2.0, "jax"), rounds=[2.0, 2.2]), dict(_ok(0.4, "numpy"), rounds=[0.4, 0.4])]
    from collections import defaultdict
    run = {"date": "d", "command": "c", "machine": defaultdict(lambda: "?"),
           "threads": 2, "quick": False, "env_notes": [], "load_warnings": [], "peaks": None,
           "contenders": ["symdiff-llvm", "numpy", "torch", "jax"],
           "workloads": {"W1": {"describe": "w", "note": "", "flops": 1, "min_bytes": 1, "bound": "gemm_float32",
                                "dtype": "float32"}},
           "results": results, "cuda_kernels_md": ""}
    md = report.markdown(run)
    row = next(line for line in md.splitlines() if line.startswith("| W1 | 500.00 ms"))
    assert row.endswith("| 0.500 |")  # 0.5 s over torch's 1.0 s (numpy, faster, is not a goal peer)
    assert "rounds: every contender timed 2 times" in md and "500.00 ms, 600.00 ms" in md
