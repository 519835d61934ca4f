"""The machine: description, idle check, and measured peaks (GEMM GFLOP/s, copy GB/s).

``measure_peaks`` runs inside a benchmark child (same environment and thread count as the
contenders); the rest runs in the parent.
"""
from __future__ import annotations

import os
import platform
import subprocess
import sys
import time
from importlib import metadata

CHILD_ENV_UNSET = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")   # slow numpy down on this machine


# --------------------------------------------------------------------------- child environment
def child_env(threads: int) -> tuple[dict[str, str], list[str]]:
    """Environment for benchmark children, and human-readable notes on what was changed."""
    env = os.environ.copy()
    notes = []
    for k in CHILD_ENV_UNSET:
        if k in env:
            notes.append(f"unset {k} (was {env.pop(k)!r}) in the benchmark children")
        else:
            notes.append(f"unset {k} (was not set) in the benchmark children")
    n = str(threads)
    for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "BLIS_NUM_THREADS",
              "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS", "SYMDIFF_NUM_THREADS"):
        env[k] = n
    env["JAX_PLATFORMS"] = "cpu"
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    env["PYTHONHASHSEED"] = "0"
    notes.append(f"threads={n}: OMP/MKL/OPENBLAS/BLIS/SYMDIFF_NUM_THREADS, torch.set_num_threads, "
                 f"and every child pinned to {n} CPU(s) (bounds XLA:CPU, which has no thread flag)")
    return env, notes


def pin_cpus(threads: int) -> list[int]:
    """Pin this process to the first ``threads`` CPUs it may run on (call before heavy imports)."""
    try:
        cpus = sorted(os.sched_getaffinity(0))[:threads]
        os.sched_setaffinity(0, cpus)
        return cpus
    except (AttributeError, OSError):
        return []


# --------------------------------------------------------------------------- description
def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def _cpu_flags() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return " ".join(f for f in ("avx2", "fma", "avx512f", "avx512_bf16", "amx_tile") if f in flags)
    except OSError:
        pass
    return ""


def _mem_total_gib() -> float:
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemTotal"):
                    return int(line.split()[1]) / 2**20
    except OSError:
        pass
    return float("nan")


def _version(pkg: str) -> str | None:
    try:
        return metadata.version(pkg)
    except metadata.PackageNotFoundError:
        return None


def _git_rev(repo: str) -> str:
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=repo, capture_output=True,
                             text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "symdiff", "codegen"], cwd=repo,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return rev + ("+dirty" if dirty else "")
    except Exception:
        return "?"


def describe(repo: str) -> dict:
    return {
        "cpu": _cpu_model(),
        "cpu_flags": _cpu_flags(),
        "logical_cpus": os.cpu_count(),
        "mem_gib": round(_mem_total_gib(), 1),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "numpy": _version("numpy"),
        "torch": _version("torch"),
        "jax": _version("jax"),
        "jaxlib": _version("jaxlib"),
        "llvmlite": _version("llvmlite"),
        "symdiff_git": _git_rev(repo),
    }


# --------------------------------------------------------------------------- idle check
def _read_cpu_jiffies() -> tuple[int, int]:
    with open("/proc/stat") as fh:
        vals = [int(v) for v in fh.readline().split()[1:]]
    idle = vals[3] + (vals[4] if len(vals) > 4 else 0)          # idle + iowait
    return sum(vals[:8]), idle


def _proc_jiffies() -> dict[int, tuple[str, int]]:
    out = {}
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat") as fh:
                raw = fh.read()
            comm = raw[raw.index("(") + 1:raw.rindex(")")]
            fields = raw[raw.rindex(")") + 2:].split()
            out[int(pid)] = (comm, int(fields[11]) + int(fields[12]))   # utime + stime
        except (OSError, ValueError, IndexError):
            continue
    return out


def cpu_snapshot() -> tuple[float, float]:
    """(busy CPU-seconds, wall-clock seconds) since boot, summed over all CPUs; for ``other_load``."""
    tot, idle = _read_cpu_jiffies()
    return (tot - idle) / os.sysconf("SC_CLK_TCK"), time.monotonic()


def steal_snapshot() -> tuple[float, float]:
    """(stolen CPU-seconds, wall-clock seconds): the time the hypervisor ran other guests while this
    virtual machine wanted the CPU (the ``steal`` column of ``/proc/stat``; 0 on bare metal). Steal is
    part of :func:`other_load`'s busy time: on a shared VM it is the usual cause of a noisy run."""
    with open("/proc/stat") as fh:
        vals = fh.readline().split()[1:]
    steal = int(vals[7]) if len(vals) > 7 else 0
    return steal / os.sysconf("SC_CLK_TCK"), time.monotonic()


def steal_fraction(before: tuple[float, float], after: tuple[float, float]) -> float:
    """Fraction of all CPUs stolen by the hypervisor between two :func:`steal_snapshot` s."""
    wall = max(after[1] - before[1], 1e-9)
    return max(0.0, (after[0] - before[0]) / (wall * (os.cpu_count() or 1)))


def other_load(before: tuple[float, float], after: tuple[float, float], own_cpu_s: float) -> float:
    """Fraction of all CPUs used by *other* processes between two snapshots, given the CPU seconds
    our own child used meanwhile (from getrusage(RUSAGE_CHILDREN))."""
    wall = max(after[1] - before[1], 1e-9)
    other = (after[0] - before[0]) - own_cpu_s
    return max(0.0, other / (wall * (os.cpu_count() or 1)))


def _cmdline(pid: int, comm: str) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            args = fh.read().split(b"\0")
        text = " ".join(a.decode(errors="replace") for a in args if a)
        return (text[:70] + "...") if len(text) > 70 else (text or comm)
    except OSError:
        return comm


def idle_check(interval: float = 1.0, busy_threshold: float = 0.10, top: int = 5) -> dict:
    """Sample /proc/stat (and every process) over ``interval`` seconds.

    Returns busy fraction of all CPUs, load averages, the busiest other processes, and a
    warning string when more than ``busy_threshold`` of the CPUs were busy (the load average is
    reported but not used: it lags by a minute and still counts the previous benchmark child).
    """
    try:
        tot0, idle0 = _read_cpu_jiffies()
        procs0 = _proc_jiffies()
        time.sleep(interval)
        tot1, idle1 = _read_cpu_jiffies()
        procs1 = _proc_jiffies()
        with open("/proc/loadavg") as fh:
            load = [float(v) for v in fh.read().split()[:3]]
    except OSError as e:
        return {"busy": None, "loadavg": None, "warning": f"could not check idleness: {e}", "top": []}
    dt, didle = max(tot1 - tot0, 1), idle1 - idle0
    busy = 1.0 - didle / dt
    hz = os.sysconf("SC_CLK_TCK")
    me = os.getpid()
    hogs = []
    for pid, (comm, j1) in procs1.items():
        if pid == me:
            continue
        cpu = (j1 - (procs0[pid][1] if pid in procs0 else 0)) / hz / interval   # new pid: all of it
        if cpu >= 0.02:
            hogs.append({"pid": pid, "comm": comm, "cpu": round(cpu, 2)})
    hogs.sort(key=lambda h: -h["cpu"])
    hogs = hogs[:top]
    for h in hogs:
        h["cmd"] = _cmdline(h["pid"], h["comm"])
    ncpu = os.cpu_count() or 1
    warning = None
    if busy > busy_threshold:                        # loadavg lags (it still counts our own last child)
        warning = (f"machine is NOT idle: {busy:.0%} of {ncpu} CPUs busy over {interval:g}s, "
                   f"loadavg {load[0]:.2f}/{load[1]:.2f}/{load[2]:.2f}"
                   + (("; busiest: " + ", ".join(f"[{h['pid']}] {h['cpu']:.0%} {h['cmd']}" for h in hogs[:3]))
                      if hogs else "") + " -- timings are unreliable")
    return {"busy": round(busy, 3), "loadavg": load, "warning": warning, "top": hogs}


# --------------------------------------------------------------------------- peaks (in a child)
def _best_of(fn, reps: int, warmup_s: float = 0.0) -> float:
    t_end = time.perf_counter() + warmup_s
    fn()
    while time.perf_counter() < t_end:                           # let clocks / thread pools settle
        fn()
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def measure_peaks(quick: bool = False, threads: int = 2) -> dict:
    """Large NumPy GEMM GFLOP/s (float32, float64) and large-array copy GB/s, best of several.

    Copy: numpy copies with one thread, so the array is split in ``threads`` chunks copied from
    ``threads`` Python threads (np.copyto releases the GIL); the 1-thread figure is kept as context.
    """
    from concurrent.futures import ThreadPoolExecutor

    import numpy as np

    res: dict = {}
    n = 2048 if quick else 4096
    rng = np.random.default_rng(0)
    for dt in ("float32", "float64"):
        a = rng.standard_normal((n, n)).astype(dt)
        b = rng.standard_normal((n, n)).astype(dt)
        c = np.empty((n, n), dtype=dt)
        t = _best_of(lambda: np.matmul(a, b, out=c), 8 if quick else 10, 0.5 if quick else 1.5)
        res[f"gemm_{dt}"] = {"n": n, "seconds": t, "gflops": 2.0 * n ** 3 / t / 1e9}
        del a, b, c

    # copy bandwidth: bytes counted = read + write (write-allocate traffic not counted)
    pool = ThreadPoolExecutor(max(threads, 1))
    for label, nbytes, reps in (("bandwidth", 512 << 20, 5 if quick else 10),
                                ("bandwidth_16MiB", 16 << 20, 20 if quick else 50)):
        src = np.ones(nbytes // 8, dtype=np.float64)
        dst = np.empty_like(src)
        chunks = [(dst[s], src[s]) for s in (slice(i * len(src) // threads, (i + 1) * len(src) // threads)
                                              for i in range(threads))]

        def par_copy():
            for f in [pool.submit(np.copyto, d, s) for d, s in chunks]:
                f.result()
        t = _best_of(par_copy, reps, 0.1)
        t1 = _best_of(lambda: np.copyto(dst, src), reps, 0.05)
        res[label] = {"bytes": nbytes, "seconds": t, "gbs": 2.0 * nbytes / t / 1e9,
                      "gbs_1thread": 2.0 * nbytes / t1 / 1e9, "threads": threads}
        del src, dst, chunks
    pool.shutdown()
    res["note"] = ("GEMM: 2*n^3 / best time of np.matmul after a warm-up; copy: (read+write bytes) / best "
                   f"time of np.copyto split over {threads} threads, on a 512 MiB array (bandwidth peak) "
                   "and on a 16 MiB array (cache-resident context for W4's 16 MB)")
    res["python"] = sys.version.split()[0]
    return res
