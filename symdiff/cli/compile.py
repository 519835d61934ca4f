"""``symdiff compile MODEL.py[:NAME] [--target llvm|cuda|ir]``: NAME and its gradients, simplified,
lowered to kernels and written out as an LLVM library, CUDA C source or IR listings, with a summary
(nodes, kernels, FLOPs, bytes, phase times) on stdout."""
from __future__ import annotations

import argparse
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from .common import EXIT_OK, EXIT_TOOL, UsageError, add_model_argument, load_model, require_scalar, select_wrt, to_dtype


@dataclass
class Job:
    """What the target writers need, and what they report back (files, times, warnings)."""
    name: str
    outdir: Path
    outs: list  # NAME and its gradients, before simplification
    simplified: list  # the compiled graph
    raw_outs: list  # NAME and its unsimplified gradients (the "as built" listing)
    out_names: list[str]
    out_docs: list[str]
    source: str
    args: argparse.Namespace
    times: dict[str, float] = field(default_factory=dict)
    files: list[Path] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    tool_missing: bool = False
    cpu: str = ""


def cost_estimate(program, simplified=None) -> tuple[int, int]:
    """(matmul FLOPs, other arithmetic) of one call of the compiled graph, from the one cost model
    (``Program.stats``, ``codegen/cost.py``): ``2MNK`` (+MN for a fused bias) per matrix product, and
    the elementwise, reduction and softmax-row work of every kernel. ``simplified`` is unused (kept
    for callers that pass the graph)."""
    st = program.stats()
    return st["matmul_flops"], st["elementwise_flops"]


def write_llvm(job: Job):
    """``<name>.ll``, ``.o``, ``.h``, ``_api.c``, the pool sources and ``lib<name>.so`` (unless --no-shared)."""
    from symdiff.codegen.runtime.export import ExportError, build_shared, export_c
    try:
        res = export_c(job.outs, job.name, job.outdir, output_names=job.out_names, output_docs=job.out_docs,
                       simplified=job.simplified, cpu=job.args.cpu, shared=False, source=job.source)
    except ExportError as e:
        raise UsageError(str(e)) from None
    job.files, job.cpu = list(res.files), res.cpu
    job.times["lower+render"] = res.timings["lower_render_s"]
    job.times["LLVM"] = res.timings["llvm_s"]
    if not job.args.no_shared:
        t = time.perf_counter()
        try:
            job.files.append(build_shared(job.outdir, job.name))
        except ExportError as e:
            if "not found" not in str(e):
                raise
            job.warnings.append(str(e))
            job.tool_missing = True
        job.times["cc"] = time.perf_counter() - t
    return res.program


def write_library(job: Job, functions: dict):
    """Several C functions in one library (``--jacobian`` / ``--hessian``): ``symdiff.codegen.runtime.library``."""
    from symdiff.codegen.runtime.export import ExportError
    from symdiff.codegen.runtime.library import FunctionSpec, export_library
    specs = [FunctionSpec(fn, outs, names, docs, job.source) for fn, (outs, names, docs) in functions.items()]
    t = time.perf_counter()
    try:
        res = export_library(specs, job.name, job.outdir, cpu=job.args.cpu, shared=not job.args.no_shared)
    except ExportError as e:
        if "not found" not in str(e):
            raise UsageError(str(e)) from None
        job.warnings.append(str(e))
        job.tool_missing = True
        res = None
    job.times["export"] = time.perf_counter() - t
    if res is None:
        return None
    job.files = list(res.files)
    first = next(iter(res.functions.values()))
    job.cpu = first.cpu
    return first.program


def write_cuda(job: Job):
    """``<name>.cu``, its header and ``cuda_cpu.h`` (the CPU emulation header for ``g++ -x c++``)."""
    from symdiff.codegen.lower import lower
    try:
        from symdiff.codegen.cuda.render import render_cuda
    except ImportError as e:
        raise UsageError(f"--target cuda: the CUDA renderer is not available in this installation "
                         f"(symdiff.codegen.cuda.render: {e}); use --target llvm or ir") from None
    t = time.perf_counter()
    program = lower(job.simplified)
    cu_source, header = render_cuda(program, job.name)
    job.times["lower+render"] = time.perf_counter() - t
    inc = re.search(r'#include\s+"([^"/]+\.(?:h|cuh))"', cu_source)
    hname = inc.group(1) if inc and inc.group(1) != "sd_pool.h" else f"{job.name}_cuda.h"
    from symdiff.codegen.cuda.backend import CPU_HEADERS
    extra = [(h.name, h.read_text()) for h in CPU_HEADERS if h.is_file()]  # cuda_cpu.h and what it includes
    for fname, text in [(f"{job.name}.cu", cu_source), (hname, header)] + extra:
        (job.outdir / fname).write_text(text)
        job.files.append(job.outdir / fname)
    return program


def write_ir(job: Job):
    """The graph as built, the simplified graph and the kernel listing (``Program.describe``)."""
    from symdiff.codegen.lower import lower
    from ..inspection import format_graph
    t = time.perf_counter()
    program = lower(job.simplified)
    job.times["lower"] = time.perf_counter() - t
    for fname, text in ((f"{job.name}.graph.txt", format_graph(job.raw_outs, simplify=False)),
                        (f"{job.name}.simplified.txt", format_graph(job.simplified, simplify=False)),
                        (f"{job.name}.kernels.txt", program.describe())):
        (job.outdir / fname).write_text(text + "\n")
        job.files.append(job.outdir / fname)
    return program


TARGETS: dict[str, Callable[[Job], object]] = {"llvm": write_llvm, "cuda": write_cuda, "ir": write_ir}


def fmt_count(v) -> str:
    """``1,234`` for an int; a symbolic model's count (a polynomial of its named sizes) as ``(20*batch + 36)``."""
    if isinstance(v, int):
        return f"{v:,}"
    return f"({v})" if " " in str(v) else str(v)


def fmt_seconds(s: float) -> str:
    """``1.40 s`` or ``26 ms``."""
    return f"{s:.2f} s" if s >= 1 else f"{s * 1000:.0f} ms"


def run(a: argparse.Namespace) -> int:
    """The ``compile`` subcommand."""
    from symdiff.codegen.runtime.export import c_ident
    from ..autodiff import grad
    from ..inspection import count_nodes
    from ..simplify import simplify

    t_start = time.perf_counter()
    times: dict[str, float] = {}
    t = time.perf_counter()
    if a.function:
        if ":" in Path(a.model).name:
            raise UsageError("give the tensor either as MODEL.py:NAME or with --function NAME, not both")
        a.model = f"{a.model}:{a.function}"
    if (a.jacobian or a.hessian) and a.target != "llvm":
        raise UsageError("--jacobian/--hessian export C functions: use --target llvm")
    m = load_model(a.model)
    times["model"] = time.perf_counter() - t
    if a.no_grad:
        if a.wrt and not (a.jacobian or a.hessian):
            raise UsageError("--wrt and --no-grad exclude each other (unless --jacobian/--hessian use it)")
        if not m.tensor.dtype.startswith("float"):
            raise UsageError(f"{m.path}: {m.name!r} is an {m.tensor.dtype} tensor; only float tensors compile")
    else:
        require_scalar(m, "compiling gradients", "or use --no-grad to compile it forward only")
    if a.hessian:
        require_scalar(m, "--hessian")
    to_dtype(m, a.dtype)
    name = a.name or c_ident(m.path.stem if m.name == "loss" else f"{m.path.stem}_{m.name}")

    t = time.perf_counter()
    outs, raw_outs, wrt = [m.tensor], [m.tensor], []
    out_names = [m.name]
    out_docs = [f"the model's {m.name!r}" + (" (forward value)" if not a.no_grad else "")]
    if not a.no_grad:
        wrt = select_wrt(m, a.wrt)
        outs += grad(m.tensor, wrt)
        raw_outs += grad(m.tensor, wrt, simplify=False)
        out_names += [f"grad_{w.name}" for w in wrt]
        out_docs += [f"gradient d {m.name} / d {w.name}" for w in wrt]
        times["gradients"] = time.perf_counter() - t
    t = time.perf_counter()
    simplified = simplify(outs)
    times["simplify"] = time.perf_counter() - t

    outdir = Path(a.output or f"{name}_{a.target}")
    if outdir.exists() and not outdir.is_dir():
        raise UsageError(f"-o {outdir}: exists and is not a directory")
    outdir.mkdir(parents=True, exist_ok=True)
    source = f"{m.path}:{m.name}" + (f" (gradients w.r.t. {', '.join(w.name for w in wrt)})" if wrt else "")
    job = Job(name, outdir, outs, simplified, raw_outs, out_names, out_docs, source, a, times)
    if a.jacobian or a.hessian:  # one library, one C function per derivative: <model>_<NAME>[_jac|_hess]
        from ..transforms import hessian, jacobian
        dwrt = wrt or select_wrt(m, a.wrt)
        t = time.perf_counter()
        functions = {m.name: (outs, out_names, out_docs)}
        if a.jacobian:
            functions[f"{m.name}_jac"] = (jacobian(m.tensor, dwrt), [f"jac_{w.name}" for w in dwrt],
                                          [f"Jacobian d {m.name} / d {w.name}" for w in dwrt])
        if a.hessian:
            functions[f"{m.name}_hess"] = ([hessian(m.tensor, w) for w in dwrt], [f"hess_{w.name}" for w in dwrt],
                                           [f"Hessian of {m.name} w.r.t. {w.name}" for w in dwrt])
        times["derivatives"] = time.perf_counter() - t
        job.name = a.name or c_ident(m.path.stem)
        program = write_library(job, functions)
        if program is None:
            from symdiff.codegen.lower import lower
            program = lower(simplified)
    else:
        program = TARGETS[a.target](job)
    total = time.perf_counter() - t_start

    st = program.stats()
    mm, ew = cost_estimate(program, simplified)
    kinds = ", ".join(f"{v} {k}" for k, v in st["by_kind"].items() if v)
    out_desc = f"{m.name} {m.tensor.dtype}{list(m.tensor.shape)}"
    if wrt:
        out_desc += f" + {len(wrt)} gradient{'s' if len(wrt) != 1 else ''} (w.r.t. {', '.join(w.name for w in wrt)})"
    detail = ", ".join(f"{k} {fmt_seconds(v)}" for k, v in times.items())
    print(f"symdiff compile {m.spec} --target {a.target}" + (f" (cpu {job.cpu})" if job.cpu else ""))
    print(f"  outputs   {out_desc}")
    print(f"  nodes     {count_nodes(raw_outs)} as built, {count_nodes(simplified)} after simplification")
    print(f"  kernels   {st['kernels']} ({kinds or 'none'})")
    print(f"  FLOPs     {fmt_count(mm + ew)} per call ({fmt_count(mm)} matmul + {fmt_count(ew)} elementwise/reduction, "
          f"estimate)")
    print(f"  bytes     {fmt_count(st['io_bytes'])} in/out + {fmt_count(st['workspace_bytes'])} workspace")
    print(f"  time      {total:.2f} s ({detail})")
    print("  files     " + "\n            ".join(str(f) for f in job.files))
    for w in job.warnings:
        print(f"symdiff compile: warning: {w}", file=sys.stderr)
    return EXIT_TOOL if job.tool_missing else EXIT_OK


def add_parser(sub, common: argparse.ArgumentParser) -> None:
    """Register ``compile`` and its options."""
    c = sub.add_parser("compile", parents=[common], help="compile NAME and its gradients (LLVM, CUDA or IR listing)",
                       description="Compile NAME and its gradients w.r.t. every sd.param it depends on.")
    add_model_argument(c)
    c.add_argument("--target", choices=tuple(TARGETS), default="llvm",
                   help="llvm: .ll, .o, lib<name>.so and a C header (default); cuda: .cu and header; "
                        "ir: graph and kernel listings")
    c.add_argument("-o", "--output", metavar="OUTDIR", help="output directory (default: <name>_<target>)")
    c.add_argument("--name", help="C symbol and file prefix (default: the model file's stem)")
    c.add_argument("--wrt", metavar="A,B", help="differentiate w.r.t. these leaves (default: every sd.param)")
    c.add_argument("--no-grad", action="store_true", help="compile NAME forward only (it may be non-scalar)")
    c.add_argument("--dtype", choices=("float32", "float64"),
                   help="float64: rebuild the model in float64 before compiling; float32: require a float32 model")
    c.add_argument("--cpu", default="host", help="LLVM target CPU for the object code: host (default), or e.g. "
                   "x86-64, x86-64-v3 for a portable library")
    c.add_argument("--no-shared", action="store_true", help="llvm: do not link lib<name>.so (no C compiler needed)")
    c.add_argument("--function", metavar="NAME", help="the tensor to compile (same as MODEL.py:NAME)")
    c.add_argument("--jacobian", action="store_true",
                   help="llvm: also export <model>_<NAME>_jac, the Jacobian of NAME w.r.t. each --wrt leaf "
                        "(NAME may be a vector); the library then holds one C function per derivative")
    c.add_argument("--hessian", action="store_true",
                   help="llvm: also export <model>_<NAME>_hess, the Hessian of scalar NAME w.r.t. each --wrt leaf")
    c.set_defaults(func=run)
