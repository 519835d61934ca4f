"""The ``symdiff`` command line (also ``python -m symdiff``).

Commands (``symdiff COMMAND --help`` for the options)::

    symdiff compile MODEL.py[:NAME] [--target llvm|cuda|ir] [-o OUTDIR]   compile NAME and its gradients
    symdiff check   MODEL.py[:NAME] [--seed S]                             finite-difference gradient check
    symdiff graph   MODEL.py[:NAME] [--backward] [--raw] [--format F] [-o FILE]   show the graph
    symdiff explain MODEL.py[:NAME] --node N                               SymPy derivative of node %N

A model file is an ordinary Python file that builds tensors with the DSL (``import symdiff as sd``);
it is *executed* (as ``python MODEL.py`` would, but with ``__name__ != "__main__"``), so only run
model files you trust. NAME (default ``loss``) is a module-level tensor of that file.

Exit status: 0 success; 1 ``check`` found a gradient that disagrees; 2 usage or model error (one line
on stderr: bad option, missing file, syntax error, missing or non-scalar NAME ...); 3 an external tool
is missing (Graphviz ``dot`` or the C compiler): everything that does not need it was written, and
stderr says what is missing; 4 internal compiler error (a bug: please report it with ``--debug``).
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

EXIT_OK, EXIT_FAIL, EXIT_USAGE, EXIT_TOOL, EXIT_INTERNAL = 0, 1, 2, 3, 4


class UsageError(Exception):
    """A problem with the command line or the model file: one line on stderr, exit status 2."""


class ToolMissing(Exception):
    """An external program (dot, gcc) is missing: the fallback output was written; exit status 3."""


# -- loading a model -------------------------------------------------------------------------------------------

@dataclass
class Model:
    path: Path
    spec: str  # as given on the command line
    name: str  # the tensor's variable name
    tensor: object  # symdiff Node
    namespace: dict


def split_spec(spec: str) -> tuple[str, Optional[str]]:
    """``"model.py:loss"`` -> ``("model.py", "loss")``; ``"model.py"`` -> ``("model.py", None)``."""
    if ":" in spec:
        head, tail = spec.rsplit(":", 1)
        if tail.isidentifier() and head:
            return head, tail
        if tail == "":
            return head, None
    return spec, None


def _tensors_in(ns: dict) -> list[str]:
    from .ir import Node
    return [k for k, v in ns.items() if isinstance(v, Node) and not k.startswith("_")]


def load_model(spec: str, default_name: str = "loss") -> Model:
    """Execute the model file and return the tensor NAME, or raise :class:`UsageError`."""
    from .ir import Node
    path_text, name = split_spec(spec)
    name = name or default_name
    path = Path(path_text)
    if not path.exists():
        raise UsageError(f"model file {path_text} not found")
    if path.is_dir():
        raise UsageError(f"{path_text} is a directory, not a model file")
    try:
        source = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise UsageError(f"cannot read model file {path_text}: {e}") from None
    try:
        code = compile(source, str(path), "exec")
    except SyntaxError as e:
        where = f"{path_text}:{e.lineno}" if e.lineno else path_text
        raise UsageError(f"{where}: syntax error in the model file: {e.msg}") from None
    ns: dict = {"__name__": "__symdiff_model__", "__file__": str(path.resolve()), "__builtins__": __builtins__}
    model_dir = str(path.resolve().parent)
    sys.path.insert(0, model_dir)  # the model may import modules next to it
    try:
        exec(code, ns)  # noqa: S102 - running the user's model file is the point (see the module docstring)
    except (Exception, SystemExit) as e:
        frames = [f for f in traceback.extract_tb(e.__traceback__) if f.filename == str(path)]
        where = f"{path_text}:{frames[-1].lineno}" if frames else path_text
        err = UsageError(f"{where}: running the model file failed: {type(e).__name__}: {e}")
        raise err from e
    finally:
        try:
            sys.path.remove(model_dir)
        except ValueError:
            pass
    if name not in ns:
        found = _tensors_in(ns)
        hint = f"tensors in the file: {', '.join(found)}" if found else "the file defines no symdiff tensors"
        raise UsageError(f"{path_text} defines no tensor named {name!r} ({hint}); pick one with {path_text}:NAME")
    t = ns[name]
    if not isinstance(t, Node):
        raise UsageError(f"{name!r} in {path_text} is not a symdiff tensor (it is of type {type(t).__name__})")
    return Model(path, spec, name, t, ns)


def require_scalar(m: Model, why: str, hint: str = "") -> None:
    t = m.tensor
    if t.shape != ():
        raise UsageError(f"{m.path}: {m.name!r} has shape {t.shape}, but {why} needs a scalar tensor "
                         f"(reduce it first, e.g. sd.mean{'; ' + hint if hint else ''})")
    if not t.dtype.startswith("float"):
        raise UsageError(f"{m.path}: {m.name!r} is an {t.dtype} tensor; {why} needs a float tensor")


def to_dtype(m: Model, dtype: Optional[str]) -> None:
    """Rebuild the model tensor in float64 (``--dtype float64``); float32 only checks the model."""
    if not dtype:
        return
    from .ir import leaves
    floats = {n.dtype for n in leaves([m.tensor]) if n.dtype.startswith("float")} | \
        ({m.tensor.dtype} if m.tensor.dtype.startswith("float") else set())
    if dtype == "float64":
        from .check import to_float64
        m.tensor = to_float64([m.tensor])[0]
    elif floats - {"float32"}:
        raise UsageError(f"{m.path}: {m.name!r} uses float64; --dtype float32 cannot narrow a model "
                         f"(declare it in float32, or use --dtype float64)")


def select_wrt(m: Model, wrt: Optional[str]) -> list:
    """The leaves to differentiate with respect to: ``--wrt a,b`` or every sd.param NAME depends on."""
    from .ir import leaves
    found = leaves([m.tensor])
    by_name = {n.name: n for n in found}
    if wrt:
        names = [w.strip() for w in wrt.split(",") if w.strip()]
        if not names:
            raise UsageError("--wrt: give leaf names separated by commas, e.g. --wrt W1,b1")
        out = []
        for nm in names:
            if nm not in by_name:
                raise UsageError(f"--wrt: {m.name!r} in {m.path} does not depend on a leaf named {nm!r} "
                                 f"(its leaves: {', '.join(by_name) or 'none'})")
            if not by_name[nm].dtype.startswith("float"):
                raise UsageError(f"--wrt: {nm!r} is an {by_name[nm].dtype} tensor (labels); "
                                 f"gradients exist only for float leaves")
            if not any(o is by_name[nm] for o in out):
                out.append(by_name[nm])
        return out
    params = [n for n in found if n.op == "param"]
    if not params:
        raise UsageError(f"{m.name!r} in {m.path} depends on no sd.param; name the leaves to differentiate "
                         f"with --wrt (its leaves: {', '.join(by_name) or 'none'})")
    return params


def build_outputs(m: Model, wrt: list, backward: bool, simplified: bool) -> tuple[list, list]:
    """(outputs, forward outputs) as the graph/explain commands list them (the same numbering)."""
    from .autodiff import grad
    from .simplify import simplify
    outs = [m.tensor]
    if backward:
        outs += grad(m.tensor, wrt, simplify=simplified)
    if simplified:
        outs = simplify(outs)
    return outs, outs[:1]


# -- compile --------------------------------------------------------------------------------------------------

def _flop_estimate(outs, program) -> tuple[int, int]:
    """(matmul FLOPs, elementwise/reduction operations) of one call of the simplified graph."""
    from .ir import toposort
    from .optable import OPS
    ew = 0
    for n in toposort(outs):
        if n.is_leaf or n.op == "const" or n.op not in OPS:
            continue
        if OPS[n.op].elementwise:
            ew += n.size
        elif n.op in ("sum", "max"):
            ew += n.inputs[0].size
        elif n.op in ("softmax", "log_softmax", "logsumexp"):
            ew += 4 * n.inputs[0].size
    return program.stats()["matmul_flops"], ew


def _fmt_s(s: float) -> str:
    return f"{s:.2f} s" if s >= 1 else f"{s * 1000:.0f} ms"


def cmd_compile(a) -> int:
    from .autodiff import grad
    from .inspection import count_nodes, format_graph
    from .simplify import simplify
    from symdiff.codegen.runtime.export import ExportError, c_ident

    t_start = time.perf_counter()
    times: dict[str, float] = {}
    t = time.perf_counter()
    m = load_model(a.model)
    times["model"] = time.perf_counter() - t
    if a.no_grad:
        if a.wrt:
            raise UsageError("--wrt and --no-grad exclude each other")
        if not m.tensor.dtype.startswith("float"):
            raise UsageError(f"{m.path}: {m.name!r} is an {m.tensor.dtype} tensor; only float tensors compile")
    else:
        require_scalar(m, "compiling gradients", "or use --no-grad to compile it forward only")
    to_dtype(m, a.dtype)
    name = a.name or c_ident(m.path.stem if m.name == "loss" else f"{m.path.stem}_{m.name}")

    t = time.perf_counter()
    outs = [m.tensor]
    out_names = [m.name]
    out_docs = [f"the model's {m.name!r}" + (" (forward value)" if not a.no_grad else "")]
    raw_outs = [m.tensor]
    wrt = []
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
    n_raw, n_simple = count_nodes(raw_outs), count_nodes(simplified)

    outdir = Path(a.output or f"{name}_{a.target}")
    if outdir.exists() and not outdir.is_dir():
        raise UsageError(f"-o {outdir}: exists and is not a directory")
    outdir.mkdir(parents=True, exist_ok=True)
    files: list[Path] = []
    warnings: list[str] = []
    tool_missing = False
    source = f"{m.path}:{m.name}" + (f" (gradients w.r.t. {', '.join(w.name for w in wrt)})" if wrt else "")

    from symdiff.codegen.lower import lower
    cpu = ""
    if a.target == "llvm":
        from symdiff.codegen.runtime.export import export_c
        try:
            res = export_c(outs, name, outdir, output_names=out_names, output_docs=out_docs, simplified=simplified,
                           cpu=a.cpu, shared=False, source=source)
        except ExportError as e:
            raise UsageError(str(e)) from None
        program, files, cpu = res.program, list(res.files), res.cpu
        times["lower+render"] = res.timings["lower_render_s"]
        times["LLVM"] = res.timings["llvm_s"]
        if not a.no_shared:
            from symdiff.codegen.runtime.export import build_shared
            t = time.perf_counter()
            try:
                files.append(build_shared(outdir, name))
            except ExportError as e:
                if "not found" not in str(e):
                    raise
                warnings.append(str(e))
                tool_missing = True
            times["cc"] = time.perf_counter() - t
    elif a.target == "cuda":
        try:
            from symdiff.codegen.cuda.render import render_cuda
        except ImportError as e:
            raise UsageError(f"--target cuda: the CUDA renderer is not available in this installation "
                             f"(symdiff.codegen.cuda.render: {e}); use --target llvm or ir") from None
        t = time.perf_counter()
        program = lower(simplified)
        cu_source, header = render_cuda(program, name)
        times["lower+render"] = time.perf_counter() - t
        import re
        inc = re.search(r'#include\s+"([^"/]+\.(?:h|cuh))"', cu_source)
        hname = inc.group(1) if inc and inc.group(1) != "sd_pool.h" else f"{name}_cuda.h"
        from symdiff.codegen.cuda.backend import CPU_HEADER as emulation
        extra = [("cuda_cpu.h", emulation.read_text())] if emulation.is_file() else []  # g++ -x c++ CPU build
        for fname, text in [(f"{name}.cu", cu_source), (hname, header)] + extra:
            (outdir / fname).write_text(text)
            files.append(outdir / fname)
    else:  # ir
        t = time.perf_counter()
        program = lower(simplified)
        times["lower"] = time.perf_counter() - t
        for fname, text in ((f"{name}.graph.txt", format_graph(raw_outs, simplify=False)),
                            (f"{name}.simplified.txt", format_graph(simplified, simplify=False)),
                            (f"{name}.kernels.txt", program.describe())):
            (outdir / fname).write_text(text + "\n")
            files.append(outdir / fname)
    total = time.perf_counter() - t_start

    st = program.stats()
    mm, ew = _flop_estimate(simplified, program)
    kinds = ", ".join(f"{v} {k}" for k, v in st["by_kind"].items() if v)
    out_desc = f"{m.name} {m.tensor.dtype}{list(m.tensor.shape)}"
    if wrt:
        out_desc += f" + {len(wrt)} gradient{'s' if len(wrt) != 1 else ''} (w.r.t. {', '.join(w.name for w in wrt)})"
    detail = ", ".join(f"{k} {_fmt_s(v)}" for k, v in times.items())
    print(f"symdiff compile {m.spec} --target {a.target}" + (f" (cpu {cpu})" if cpu else ""))
    print(f"  outputs   {out_desc}")
    print(f"  nodes     {n_raw} as built, {n_simple} after simplification")
    print(f"  kernels   {st['kernels']} ({kinds or 'none'})")
    print(f"  FLOPs     {mm + ew:,} per call ({mm:,} matmul + {ew:,} elementwise/reduction, estimate)")
    print(f"  bytes     {st['io_bytes']:,} in/out + {st['workspace_bytes']:,} workspace")
    print(f"  time      {total:.2f} s ({detail})")
    print(f"  files     " + "\n            ".join(str(f) for f in files))
    for w in warnings:
        print(f"symdiff compile: warning: {w}", file=sys.stderr)
    return EXIT_TOOL if tool_missing else EXIT_OK


# -- check ----------------------------------------------------------------------------------------------------

def random_values(outputs, seed: int) -> dict:
    """Seeded random values for every leaf: float inputs N(0, 1); parameters N(0, 1/fan_in) for
    matrices and N(0, 0.25) otherwise; integer labels uniform in their range [0, depth)."""
    import numpy as np
    from .signature import Signature
    rng = np.random.default_rng(seed)
    vals = {}
    for s in Signature(list(outputs)).leaves:
        if s.dtype.startswith("int"):
            hi = s.label_depth if s.label_depth is not None else 2
            vals[s.name] = rng.integers(0, hi, size=s.shape).astype(s.dtype)
        elif s.kind == "param" and len(s.shape) >= 2:
            vals[s.name] = (rng.standard_normal(s.shape) / np.sqrt(s.shape[0])).astype(s.dtype)
        elif s.kind == "param":
            vals[s.name] = (0.5 * rng.standard_normal(s.shape)).astype(s.dtype)
        else:
            vals[s.name] = rng.standard_normal(s.shape).astype(s.dtype)
    return vals


def cmd_check(a) -> int:
    from .check import check_grad
    m = load_model(a.model)
    require_scalar(m, "a gradient check")
    wrt = select_wrt(m, a.wrt)
    values = random_values([m.tensor, *wrt], a.seed)
    t = time.perf_counter()
    report = check_grad(m.tensor, wrt, values, eps=a.eps, rtol=a.rtol, atol=a.atol, seed=a.seed)
    dt = time.perf_counter() - t
    print(f"symdiff check {m.spec}: d {m.name} / d {{{', '.join(w.name for w in wrt)}}} "
          f"(float64 central differences, seed {a.seed}, {dt:.2f} s)")
    print(report)
    bad = [r.name for r in report.leaves if not r.passed]
    if bad:
        print(f"FAIL: the gradient of {m.name} w.r.t. {', '.join(bad)} disagrees with finite differences",
              file=sys.stderr)
        return EXIT_FAIL
    return EXIT_OK


# -- graph ----------------------------------------------------------------------------------------------------

_DOT_STYLE = {
    "input": 'shape=box, style="rounded,filled", fillcolor="#dddddd"',
    "labels": 'shape=box, style="rounded,filled,dashed", fillcolor="#eeeeee"',
    "param": 'shape=box, style="rounded,filled", fillcolor="#ffe08a"',
    "const": 'shape=plaintext, fontcolor="#555555"',
    "forward": 'shape=ellipse, style=filled, fillcolor="#cfe2ff"',
    "backward": 'shape=ellipse, style=filled, fillcolor="#fbe3e3"',
    "grad": 'shape=ellipse, style=filled, fillcolor="#f28b82"',
}
_LEGEND = [("input", "input"), ("param", "parameter"), ("forward", "forward op"),
           ("backward", "backward op"), ("grad", "gradient output")]


def _esc(s: str) -> str:
    return s.replace("\\", "\\\\").replace('"', '\\"')


def graph_dot(outs: Sequence, forward_outs: Sequence, title: str = "", output_names: Optional[dict] = None) -> str:
    """Graphviz DOT of a forward or forward+backward graph. Each node shows its id in the text listing
    (``%k``), op (and attributes), dtype and shape. Colours/shapes: inputs grey boxes, parameters
    yellow boxes, forward ops blue, backward ops light red, gradient outputs red with a double border
    and named ``d<y>/d<leaf>``; graph outputs have a double border."""
    from .inspection import attr_text, numbered
    from .ir import toposort
    order, ids = numbered(list(outs))
    fwd = set(toposort(list(forward_outs)))
    out_ids = {ids[o] for o in outs}
    has_bwd = any(n not in fwd and not n.is_leaf and n.op != "const" for n in order)
    lines = ["digraph symdiff {", "  rankdir=TB;", '  node [fontname="Helvetica", fontsize=10];',
             '  edge [color="#555555", arrowsize=0.6];']
    if title:
        lines.append(f'  label="{_esc(title)}"; labelloc=t; fontname="Helvetica";')
    for n in order:
        i = ids[n]
        typ = f"{n.dtype}{list(n.shape)}"
        if n.op == "input":
            role = "labels" if n.dtype.startswith("int") else "input"
            parts = [f"%{i} {n.name}", f"input, {typ}"]
        elif n.op == "param":
            role, parts = "param", [f"%{i} {n.name}", f"param, {typ}"]
        elif n.op == "const":
            role, parts = "const", [f"%{i} {attr_text(n)}", typ]
        else:
            attrs = attr_text(n)
            head = f"%{i} {n.op}" + (f"[{attrs}]" if attrs else "")
            if n in fwd:
                role, parts = "forward", [head, typ]
                if output_names and n in output_names:
                    parts.insert(0, output_names[n])
            elif "grad_of" in n.meta:
                role, parts = "grad", [n.meta.get("name") or f"d/d{n.meta['grad_of']}", head, typ]
            else:
                role, parts = "backward", [head, typ]
        label = "\\n".join(_esc(p) for p in parts)
        periph = ", peripheries=2" if i in out_ids else ""
        lines.append(f'  n{i} [label="{label}", {_DOT_STYLE[role]}{periph}];')
    for n in order:
        for pos, inp in enumerate(n.inputs):
            lab = f' [label="{pos}", fontsize=8]' if len(n.inputs) > 1 else ""
            lines.append(f"  n{ids[inp]} -> n{ids[n]}{lab};")
    legend = [(r, t) for r, t in _LEGEND if has_bwd or r not in ("backward", "grad")]
    lines.append('  subgraph cluster_legend { label="legend"; fontsize=9; style=dashed; color="#aaaaaa";')
    for k, (r, text) in enumerate(legend):
        lines.append(f'    legend{k} [label="{text}", {_DOT_STYLE[r]}, fontsize=8];')
    lines.append("    " + " -> ".join(f"legend{k}" for k in range(len(legend))) + " [style=invis];")
    lines.append("  }")
    lines.append("}")
    return "\n".join(lines) + "\n"


_FORMATS = {".txt": "text", ".dot": "dot", ".gv": "dot", ".svg": "svg", ".png": "png"}


def cmd_graph(a) -> int:
    from .inspection import count_nodes, format_graph
    fmt = a.format or (_FORMATS.get(Path(a.output).suffix.lower(), "text") if a.output else "text")
    if fmt in ("svg", "png") and not a.output:
        raise UsageError(f"--format {fmt} writes an image: give the file with -o FILE")
    m = load_model(a.model)
    if a.backward:
        require_scalar(m, "--backward (the gradient graph)")
    wrt = select_wrt(m, a.wrt) if a.backward else []
    outs, fwd = build_outputs(m, wrt, a.backward, not a.raw)
    what = ("forward+backward" if a.backward else "forward") + (", raw" if a.raw else ", simplified")
    title = f"{m.path.name}:{m.name} ({what})"
    if fmt == "text":
        text = f"# {title}: {count_nodes(outs)} nodes\n" + format_graph(outs, simplify=False) + "\n"
    else:
        text = graph_dot(outs, fwd, title, {fwd[0]: m.name})
    if fmt in ("text", "dot"):
        if a.output:
            Path(a.output).write_text(text)
            print(f"wrote {a.output} ({fmt}, {what})", file=sys.stderr)
        else:
            sys.stdout.write(text)
        return EXIT_OK
    out = Path(a.output)
    dot = shutil.which("dot")
    if dot is None:
        dot_file = out.with_suffix(".dot")
        dot_file.write_text(text)
        raise ToolMissing(f"Graphviz 'dot' not found on PATH: cannot render {fmt}; wrote the DOT source to "
                          f"{dot_file} instead (install Graphviz, e.g. apt-get install graphviz, then: "
                          f"dot -T{fmt} {dot_file} -o {out})")
    r = subprocess.run([dot, f"-T{fmt}", "-o", str(out)], input=text, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"dot -T{fmt} failed: {r.stderr.strip()}")
    print(f"wrote {out} ({fmt}, {what})", file=sys.stderr)
    return EXIT_OK


# -- explain --------------------------------------------------------------------------------------------------

def cmd_explain(a) -> int:
    import sympy as sp
    from .inspection import format_graph, numbered
    from .ir import is_const_scalar
    from .optable import OPS
    from .sympy_bridge import const_subs, derivative_expr, value_expr
    m = load_model(a.model)
    if a.backward:
        require_scalar(m, "--backward (the gradient graph)")
    wrt = select_wrt(m, a.wrt) if a.backward else []
    outs, _ = build_outputs(m, wrt, a.backward, not a.raw)
    order, ids = numbered(outs)
    listing = format_graph(outs, simplify=False).splitlines()
    elementwise = [ids[n] for n in order if n.op in OPS and OPS[n.op].elementwise]
    flags = " ".join(f for f, on in (("--backward", a.backward), ("--raw", a.raw)) if on)
    see = f"(see: symdiff graph {a.model}{' ' + flags if flags else ''})"
    ew_text = ", ".join(f"%{i}" for i in elementwise[:40]) + (" ..." if len(elementwise) > 40 else "")
    if not 0 <= a.node < len(order):
        raise UsageError(f"no node %{a.node}: the listing has %0 .. %{len(order) - 1} {see}")
    n = order[a.node]
    if n.op not in OPS or not OPS[n.op].elementwise:
        kind = "a leaf" if n.is_leaf else ("a constant" if n.op == "const" else f"a {n.op} node (a tensor op whose "
                                                                                 f"vector-Jacobian product is a hand-written rule)")
        raise UsageError(f"%{a.node} is {kind}, not an elementwise op; elementwise nodes: {ew_text or 'none'} {see}")

    def sym(inp):
        nm = inp.name if inp.is_leaf else f"v{ids[inp]}"
        return sp.Symbol(nm, real=True)

    from .optable import X
    sub = {X[j]: sym(inp) for j, inp in enumerate(n.inputs)}
    print(listing[a.node])
    for j, inp in enumerate(n.inputs):
        desc = f"{inp.op} {inp.name!r}" if inp.is_leaf else (f"constant {float(inp.value.reshape(-1)[0]):g}"
                                                              if is_const_scalar(inp) else f"{inp.op} node")
        print(f"  operand {j}: %{ids[inp]} = {desc}, {inp.dtype}{list(inp.shape)}" +
              (f"  ->  symbol {sym(inp)}" if not is_const_scalar(inp) else "  (substituted)"))
    value = value_expr(n).xreplace(sub)
    print(f"\nvalue:  v{a.node} = {sp.sstr(value)}")
    print(f"        LaTeX: {sp.latex(value)}")
    for i, inp in enumerate(n.inputs):
        if is_const_scalar(inp):
            continue
        d = derivative_expr(n.op, i, const_subs(n, i)).xreplace(sub)
        print(f"\nd v{a.node} / d {sym(inp)}  (operand {i}, %{ids[inp]}):")
        print(f"        {sp.sstr(d)}")
        print(f"        LaTeX: {sp.latex(d)}")
        own = sp.Symbol(f"v{a.node}", real=True)
        d_own = d.subs(value, own) if not value.is_Symbol else d
        if d_own != d and own in d_own.free_symbols:
            print(f"        = {sp.sstr(d_own)}   (equivalently, in terms of the node's own value v{a.node})")
        if tuple(inp.shape) != tuple(n.shape):
            print(f"        (operand shape {list(inp.shape)} broadcasts to {list(n.shape)}: the backward pass "
                  f"multiplies by the incoming gradient and sums over the broadcast axes)")
    return EXIT_OK


# -- argument parsing -----------------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="show Python tracebacks for errors")
    model_help = "model file (Python, executed) and the tensor in it, default NAME=loss"
    p = argparse.ArgumentParser(prog="symdiff", description="symdiff: compile, check and inspect models written "
                                "with the symdiff DSL. Model files are Python code and are executed.",
                                epilog="exit status: 0 ok, 1 gradient check failed, 2 usage/model error, "
                                       "3 external tool (dot, gcc) missing, 4 internal error")
    p.add_argument("--version", action="version", version=f"symdiff {_version()}")
    p.add_argument("--debug", action="store_true", default=False, help="show Python tracebacks for errors")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    c = sub.add_parser("compile", parents=[common], help="compile NAME and its gradients (LLVM, CUDA or IR listing)",
                       description="Compile NAME and its gradients w.r.t. every sd.param it depends on.")
    c.add_argument("model", metavar="MODEL.py[:NAME]", help=model_help)
    c.add_argument("--target", choices=("llvm", "cuda", "ir"), default="llvm",
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
    c.set_defaults(func=cmd_compile)

    k = sub.add_parser("check", parents=[common], help="finite-difference check of every gradient",
                       description="Check d NAME / d param against central finite differences (float64) at "
                                   "seeded random values. Exit 0 when all agree, 1 when one disagrees.")
    k.add_argument("model", metavar="MODEL.py[:NAME]", help=model_help)
    k.add_argument("--wrt", metavar="A,B", help="leaves to check (default: every sd.param)")
    k.add_argument("--seed", type=int, default=0, help="random seed for the values (default 0)")
    k.add_argument("--eps", type=float, default=1e-6, help="finite-difference step (default 1e-6)")
    k.add_argument("--rtol", type=float, default=1e-5, help="relative tolerance (default 1e-5)")
    k.add_argument("--atol", type=float, default=1e-6, help="absolute tolerance (default 1e-6)")
    k.set_defaults(func=cmd_check)

    g = sub.add_parser("graph", parents=[common], help="print or draw the forward (and backward) graph",
                       description="The graph of NAME as a text listing (SSA, ids %%k as used by `explain`) "
                                   "or Graphviz DOT/SVG/PNG.")
    g.add_argument("model", metavar="MODEL.py[:NAME]", help=model_help)
    g.add_argument("--backward", action="store_true", help="include the gradients (forward+backward graph)")
    sg = g.add_mutually_exclusive_group()
    sg.add_argument("--simplified", dest="raw", action="store_false", help="after simplification (default)")
    sg.add_argument("--raw", dest="raw", action="store_true", help="as built, before simplification")
    g.add_argument("--wrt", metavar="A,B", help="with --backward: gradients w.r.t. these leaves")
    g.add_argument("--format", choices=("text", "dot", "svg", "png"),
                   help="default: from the -o suffix (.txt .dot .svg .png), else text")
    g.add_argument("-o", "--output", metavar="FILE", help="output file (default: stdout for text/dot)")
    g.set_defaults(func=cmd_graph, raw=False)

    e = sub.add_parser("explain", parents=[common], help="SymPy derivative formulas of an elementwise node",
                       description="Print d node / d operand for each operand of elementwise node %%N "
                                   "(ids as `symdiff graph` lists them with the same flags), as SymPy text and LaTeX.")
    e.add_argument("model", metavar="MODEL.py[:NAME]", help=model_help)
    e.add_argument("--node", "-n", type=int, required=True, metavar="N", help="node id (%%N in the listing)")
    e.add_argument("--backward", action="store_true", help="number nodes in the forward+backward graph")
    se = e.add_mutually_exclusive_group()
    se.add_argument("--simplified", dest="raw", action="store_false", help="simplified graph (default)")
    se.add_argument("--raw", dest="raw", action="store_true", help="graph as built")
    e.add_argument("--wrt", metavar="A,B", help="with --backward: gradients w.r.t. these leaves")
    e.set_defaults(func=cmd_explain, raw=False)
    return p


def _version() -> str:
    from . import __version__
    return __version__


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    a = parser.parse_args(argv)
    debug = bool(getattr(a, "debug", False))
    prog = f"symdiff {a.command}"
    try:
        return a.func(a)
    except UsageError as e:
        if debug:
            traceback.print_exc()
        print(f"{prog}: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except ToolMissing as e:
        print(f"{prog}: warning: {e}", file=sys.stderr)
        return EXIT_TOOL
    except KeyboardInterrupt:
        return 130
    except OSError as e:  # cannot write the output directory / file, ...
        if debug:
            traceback.print_exc()
        if isinstance(e, BrokenPipeError):  # `symdiff graph ... | head`
            try:
                sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - silence the flush at exit
            except OSError:
                pass
            return EXIT_OK
        print(f"{prog}: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except Exception as e:  # noqa: BLE001 - one line, not a traceback, unless --debug
        if debug:
            traceback.print_exc()
        print(f"{prog}: internal error: {type(e).__name__}: {e}" + ("" if debug else " (rerun with --debug for the "
                                                                      "traceback)"), file=sys.stderr)
        return EXIT_INTERNAL


if __name__ == "__main__":
    raise SystemExit(main())
