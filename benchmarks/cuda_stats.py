"""Per-workload statistics of the generated CUDA kernels (no GPU needed): kernel count, FLOPs,
compulsory bytes, and a roofline lower bound on a reference GPU, so the GPU side can be judged here.

    python benchmarks/cuda_stats.py            # table for W1..W5
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

# Reference device for the roofline (public H100 SXM figures): FP32 (no tensor cores), FP64, HBM3.
GPU = {"name": "H100 SXM", "fp32_flops": 67e12, "fp64_flops": 34e12, "bytes_per_s": 3.35e12}


def workload_stats(wl) -> dict:
    """Lower a workload's loss + gradients and summarise the CUDA kernels rendered from it."""
    import symdiff as sd
    from symdiff.codegen.cuda.render import kernel_stats
    from symdiff.codegen.lower import lower

    from benchmarks.workloads import build_symdiff

    loss, wrt, _ = build_symdiff(wl, sd)
    outs = sd.simplify([loss, *sd.grad(loss, wrt)])
    ks = kernel_stats(lower(outs))
    flops = sum(k["flops"] for k in ks)
    nbytes = sum(k["bytes_read"] + k["bytes_written"] for k in ks)
    peak = GPU["fp64_flops"] if wl.dtype == "float64" else GPU["fp32_flops"]
    bound = max(flops / peak, nbytes / GPU["bytes_per_s"])
    return {"kernels": len(ks), "flops": flops, "bytes": nbytes, "roofline_s": bound,
            "bound_by": "compute" if flops / peak > nbytes / GPU["bytes_per_s"] else "memory",
            "launches_us": len(ks) * 3.0}  # ~3 us per launch is the usual floor for small graphs


def markdown(workloads) -> list[str]:
    lines = [f"## Generated CUDA kernels (roofline on an {GPU['name']}: {GPU['fp32_flops'] / 1e12:.0f} TFLOP/s fp32, "
             f"{GPU['fp64_flops'] / 1e12:.0f} fp64, {GPU['bytes_per_s'] / 1e12:.2f} TB/s)\n",
             "| workload | kernels | FLOPs | compulsory bytes | roofline bound | bound by | launch floor (~3 us each) |",
             "|---|---|---|---|---|---|---|"]
    for wl in workloads:
        try:
            s = workload_stats(wl)
        except Exception as e:  # the table must not sink the benchmark run
            lines.append(f"| {wl.name} | error: {type(e).__name__}: {e} | | | | | |")
            continue
        lines.append(f"| {wl.name} | {s['kernels']} | {s['flops']:,} | {s['bytes']:,} | {s['roofline_s'] * 1e6:.1f} us | "
                     f"{s['bound_by']} | {s['launches_us']:.0f} us |")
    return lines + [""]


if __name__ == "__main__":
    from benchmarks.workloads import WORKLOADS
    print("\n".join(markdown(WORKLOADS.values())))
