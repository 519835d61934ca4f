"""Markdown report (and JSON) from the collected run: medians table, spread/roofline, compile
times, gradient check, symdiff kernel stats, skips."""
from __future__ import annotations

import json
import os

from .harness import GOAL_PEERS, PEERS, SYMDIFF, fmt_time

PHASES = ["build", "grad", "compile", "cached", "rebuilt", "disk_cache", "wrap", "first_call"]


def _usable(r: dict | None) -> bool:
    return bool(r) and r.get("status") == "ok" and r.get("check", {}).get("ok", False)


def _median(r: dict | None) -> float | None:
    return r["timing"]["median_s"] if r and r.get("status") == "ok" else None


def load_text(r: dict) -> str:
    """The other-load figure of a result, with the hypervisor's steal named when it is 1% or more."""
    steal = r.get("steal", 0)
    return f"{r.get('other_load', 0):.0%}" + (f" (steal {steal:.0%})" if steal >= 0.01 else "")


def _noisy(r: dict, run: dict) -> str:
    return " ~" if r.get("other_load", 0) > run.get("idle_threshold", 0.1) else ""


def _cell(r: dict | None, best: float | None, run: dict) -> str:
    if r is None:
        return "-"
    if r["status"] == "skipped":
        return "skip"
    if r["status"] != "ok":
        return "error"
    t = _median(r)
    if not r["check"]["ok"]:
        return f"{fmt_time(t)} (!grad){_noisy(r, run)}"
    ratio = t / best if best else float("nan")
    tag = f"**{ratio:.2f}x**" if ratio <= 1.0001 else f"{ratio:.2f}x"
    return f"{fmt_time(t)} ({tag}){_noisy(r, run)}"


def _vs_best_peer(row: dict, name: str) -> str:
    r = row.get(name)
    peers = [(p, _median(row[p])) for p in PEERS if _usable(row.get(p))]
    if not _usable(r) or not peers:
        return "-"
    p, t = min(peers, key=lambda pt: pt[1])
    return f"{_median(r) / t:.2f}x vs {p}"


def _vs_goal_peers(row: dict, name: str) -> str:
    r = row.get(name)
    peers = [_median(row[p]) for p in GOAL_PEERS if _usable(row.get(p))]
    return f"{_median(r) / min(peers):.3f}" if _usable(r) and peers else "-"


def _peak_for(run: dict, wl: dict) -> tuple[float | None, str]:
    peaks = run.get("peaks") or {}
    if wl["bound"] == "bandwidth":
        return (peaks.get("bandwidth") or {}).get("gbs"), "GB/s"
    return (peaks.get(wl["bound"]) or {}).get("gflops"), "GFLOP/s"


def markdown(run: dict) -> str:
    m = run["machine"]
    names = run["contenders"]
    rows: dict[str, dict] = {w: {} for w in run["workloads"]}
    for r in run["results"]:
        rows[r["workload"]][r["contender"]] = r
    L: list[str] = []
    add = L.append

    add("# symdiff benchmark results\n")
    add(f"- date: {run['date']}")
    add(f"- command: `{run['command']}`")
    add(f"- machine: {m['cpu']} ({m['cpu_flags']}), {m['logical_cpus']} logical CPUs, {m['mem_gib']} GiB, {m['os']}")
    add(f"- software: Python {m['python']}, numpy {m['numpy']}, torch {m['torch']}, jax {m['jax']}, "
        f"llvmlite {m['llvmlite']}, symdiff git {m['symdiff_git']}")
    add(f"- threads: {run['threads']} per contender; every contender runs alone in a fresh process")
    for note in run["env_notes"]:
        add(f"- env: {note}")
    add("- timing: warm-up, then individually timed calls; median (p10/p90 below); "
        f"{'QUICK mode (short runs)' if run['quick'] else 'full mode'}")
    n_rounds = max((len(r.get("rounds", [])) for r in run["results"]), default=0)
    if n_rounds > 1:
        add(f"- rounds: every contender timed {n_rounds} times per workload, the order rotated each round; a "
            "cell is the contender's median round (the lower middle of an even count; every round's median: "
            "last column of the spread table)")
    add("")
    warnings = [w for w in run.get("load_warnings", []) if w]
    if warnings:
        for w in warnings:
            add(f"> **WARNING:** {w}")
        add("")

    # -- peaks
    pk = run.get("peaks") or {}
    add("## Machine peaks (measured in this run, same threads)\n")
    if pk.get("status") == "ok":
        add("| peak | value |\n|---|---|")
        for dt in ("float32", "float64"):
            g = pk[f"gemm_{dt}"]
            add(f"| numpy GEMM {dt} (n={g['n']}) | {g['gflops']:.1f} GFLOP/s |")
        for key in ("bandwidth", "bandwidth_16MiB"):
            b = pk[key]
            add(f"| copy {b['bytes'] >> 20} MiB (read+write), {b['threads']} threads | {b['gbs']:.1f} GB/s "
                f"(1 thread: {b['gbs_1thread']:.1f}) |")
        add(f"\n{pk['note']}\n")
    elif not pk:
        add("not measured (--no-peaks): no fraction-of-peak figures.\n")
    else:
        add(f"peak measurement failed: {pk.get('reason', '?')}\n")

    # -- medians
    add("## Median time per call (loss + all gradients)\n")
    add("Ratio in parentheses: to the fastest contender of the row whose gradients agree "
        "(**1.00x** = fastest). `!grad` = gradients disagree with the reference. `~` = other processes "
        f"(or the hypervisor, shown as steal) used more than {run.get('idle_threshold', 0.1):.0%} of the CPUs "
        "while it was being timed.\n")
    sd_cols = [s for s in SYMDIFF if s in names]
    goal = "symdiff-llvm" in names and any(p in names for p in GOAL_PEERS)
    add("| workload | " + " | ".join(names) + "".join(f" | {s} vs best peer" for s in sd_cols)
        + (" | symdiff-llvm / best of torch, jax |" if goal else " |"))
    add("|---" * (1 + len(names) + len(sd_cols) + goal) + "|")
    for w, row in rows.items():
        best = min((_median(r) for r in row.values() if _usable(r)), default=None)
        cells = [_cell(row.get(n), best, run) for n in names] + [_vs_best_peer(row, s) for s in sd_cols]
        cells += [_vs_goal_peers(row, "symdiff-llvm")] if goal else []
        add(f"| {w} | " + " | ".join(cells) + " |")
    add("")

    # -- spread / roofline / check
    add("## Spread, throughput vs peak, gradient check\n")
    add("Achieved = matmul FLOPs (2*M*N*K, fwd+bwd) / median, vs numpy GEMM peak of that dtype; "
        "W4: compulsory bytes (read x,y + write dx,dy) / median, vs large-copy bandwidth. "
        "Grad err = max|got-ref| / max|ref| against the float64 hand-written reference.\n")
    add("| workload | contender | median | p10 | p90 | reps | achieved | % peak | grad err | check | other load |"
        + (" rounds |" if n_rounds > 1 else ""))
    add("|---|---|---|---|---|---|---|---|---|---|---|" + ("---|" if n_rounds > 1 else ""))
    for w, row in rows.items():
        wl = run["workloads"][w]
        peak, unit = _peak_for(run, wl)
        for n in names:
            r = row.get(n)
            if not r or r["status"] != "ok":
                continue
            t = r["timing"]
            val = r["gbs"] if unit == "GB/s" else r["gflops"]
            frac = f"{100 * val / peak:.1f}%" if (val is not None and peak) else "-"
            ck = r["check"]
            status = "ok" if ck["ok"] else "DISAGREE"
            if ck.get("problems"):
                status += ": " + "; ".join(ck["problems"])[:160]
            add(f"| {w} | {n} | {fmt_time(t['median_s'])} | {fmt_time(t['p10_s'])} | {fmt_time(t['p90_s'])} | "
                f"{t['reps']} | {val:.2f} {unit} | {frac} | {ck['max_err']:.1e} | {status} | "
                f"{load_text(r)}{_noisy(r, run)} |"
                + (f" {', '.join(fmt_time(v) for v in r.get('rounds', []))} |" if n_rounds > 1 else ""))
    add("")

    # -- compile times
    add("## Compile / first-call times\n")
    add("symdiff: build = DSL graph, grad = sd.grad, compile = first (cold) sd.compile in a fresh process, "
        "cached = second sd.compile of the same outputs, rebuilt = sd.compile of an identical graph built "
        "again, disk_cache = sd.compile in a new process that finds the first one's on-disk cache. jax: compile = jit(...).lower().compile(). torch-compile: compilation happens in the "
        "first call. first_call = the first call after preparing.\n")
    add("| workload | contender | " + " | ".join(PHASES) + " |")
    add("|---" * (2 + len(PHASES)) + "|")
    for w, row in rows.items():
        for n in names:
            r = row.get(n)
            if not r or r["status"] not in ("ok", "error") or "compile" not in r:
                continue
            c = r["compile"]
            add(f"| {w} | {n} | " + " | ".join(fmt_time(c.get(p)) for p in PHASES) + " |")
    add("")

    # -- symdiff kernel stats
    stat_rows = []
    for w, row in rows.items():
        for n in sd_cols:
            info = (row.get(n) or {}).get("info") or {}
            if any(k in info for k in ("n_kernels", "stats")):
                head = info.get("headline", {})
                kern = info.get("n_kernels", head.get("kernels", "-"))
                hflops = run["workloads"][w]["flops"]
                # the harness counts matmul FLOPs only: compare like with like (the cost model's matmul part)
                sflops = head.get("matmul_flops", next((v for k, v in head.items() if "flop" in k.lower()), None))
                ratio = f" ({sflops / hflops:.2f}x harness)" if (sflops and hflops) else ""
                stat_rows.append(f"| {w} | {n} | {kern} | {hflops:,} | "
                                 + (", ".join(f"{k}={v:,}" if isinstance(v, int) else f"{k}={v:.3g}"
                                              for k, v in head.items() if k != "kernels") or "-")
                                 + ratio + f" | {info.get('cache_hit', '-')}/{info.get('disk_cache_hit', '-')} |")
    add("## symdiff generated code (from f.stats / f.kernels)\n")
    if stat_rows:
        add("harness FLOPs = the matmul FLOPs counted by this harness (2*M*N*K, fwd + needed bwd); "
            "cache hit = f.cache_hit of the cold compile / of the fresh-process recompile.\n")
        add("| workload | backend | kernels | harness FLOPs | symdiff stats | cache hit (cold/disk) |")
        add("|---|---|---|---|---|---|")
        L.extend(stat_rows)
    else:
        add("No compiled symdiff function exposed `stats` or `kernels` in this run.")
    add("")

    L.extend(run.get("cuda_kernels_md", []))

    # -- skipped / errors (identical reasons grouped across workloads)
    bad: dict[tuple, list[str]] = {}
    for row in rows.values():
        for r in row.values():
            if r["status"] != "ok":
                bad.setdefault((r["contender"], r["status"], r.get("reason", "")[:600]), []).append(r["workload"])
    if bad:
        add("## Skipped / failed\n")
        for (name, status, reason), wls in bad.items():
            add(f"- {','.join(wls)} / {name}: **{status}** - {reason}")
        add("")

    # -- workloads
    add("## Workloads\n")
    add("| workload | description | matmul FLOPs/call | compulsory bytes/call |\n|---|---|---|---|")
    for w, wl in run["workloads"].items():
        add(f"| {w} | {wl['describe']}{(' - ' + wl['note']) if wl['note'] else ''} | "
            f"{wl['flops']:,} | {wl['min_bytes']:,} B |")
    add("")
    return "\n".join(L)


def write(run: dict, out_dir: str) -> tuple[str, str]:
    os.makedirs(out_dir, exist_ok=True)
    md_path = os.path.join(out_dir, "latest.md")
    js_path = os.path.join(out_dir, "latest.json")
    text = markdown(run)
    with open(md_path, "w") as fh:
        fh.write(text + "\n")
    with open(js_path, "w") as fh:
        json.dump(run, fh, indent=1, default=repr)
    return md_path, js_path
