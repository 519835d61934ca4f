"""Export a compiled graph as plain C artifacts: LLVM IR, an object file, a C header with a
convenience API, and a self-contained shared library (no Python, no runtime besides libc/libm).

``export_c(outputs, name, outdir, ...)`` writes into ``outdir``:

- ``<name>.ll``         the optimized LLVM IR of the entry point and its kernels;
- ``<name>.o``          that IR compiled to a position-independent object file for the target CPU;
- ``<name>.h``          the C header: raw entry point, argument table, ``<name>_run`` / ``<name>_call``;
- ``<name>_api.c``      the C source of the convenience API declared in the header;
- ``sd_pool.h/.c``      the thread pool the generated code calls (``sd_parallel_for``);
- ``lib<name>.so``      ``gcc -shared -fPIC -O2 -pthread`` of the object, the API and the pool.

The raw entry point keeps the renderer's ABI (``symdiff.codegen.llvm.render``)::

    void <name>(void **args, void *pool);   /* args: inputs..., outputs..., workspace */

Only the entry point, the ``<name>_*`` API and the ``sd_pool_*`` functions are exported: every
kernel, GEMM and math helper is made internal before compilation, so several exported models can be
linked into one program.
"""
from __future__ import annotations

import keyword as _pykeyword
import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

from symdiff import dims as _dims
from symdiff.dim_binding import SymbolicUnsupported, size_checks
from symdiff.dims import SymbolicDimError
from symdiff.ir import Node
from symdiff.signature import LeafSpec, Signature

from symdiff.codegen.kernel_ir import Program
from symdiff.codegen.runtime import export_sizes as _sizes
from symdiff.codegen.runtime.export_sizes import SizeSpec

C_TYPES = {"float32": "float", "float64": "double", "int32": "int32_t", "int64": "int64_t",
           "bool": "bool"}  # bool: C99 <stdbool.h>, 1 byte (numpy bool_), values 0/1

C_KEYWORDS = frozenset("""
auto break case char const continue default do double else enum extern float for goto if inline int long
register restrict return short signed sizeof static struct switch typedef union unsigned void volatile while
_Bool _Complex _Imaginary _Alignas _Alignof _Atomic _Generic _Noreturn _Static_assert _Thread_local
bool true false NULL args pool workspace ws
""".split())


class ExportError(RuntimeError):
    """A problem the user can fix (bad name, missing C compiler, ...)."""


def c_ident(name: str, taken: Optional[set] = None) -> str:
    """A valid, non-reserved C identifier for ``name`` (unique within ``taken`` when given)."""
    s = re.sub(r"\W", "_", name, flags=re.ASCII) or "_"
    if s[0].isdigit():
        s = "_" + s
    if s in C_KEYWORDS or _pykeyword.iskeyword(s):
        s += "_"
    if taken is not None:
        base, k = s, 2
        while s in taken:
            s = f"{base}_{k}"
            k += 1
        taken.add(s)
    return s


@dataclass
class CArg:
    """One argument of the convenience API (a leaf or an output)."""
    c_name: str
    name: str  # the symdiff name (leaf name, or output label)
    role: str  # "input" | "param" | "labels" | "output"
    shape: tuple
    dtype: str
    doc: str
    used: bool = True  # False: a leaf that simplification removed (the entry point never reads it)
    slot: int = -1  # index in the raw entry's args array (-1: not passed)

    @property
    def size(self) -> _dims.DimLike:
        """Elements: an int, or a polynomial of the named sizes (a symbolic shape)."""
        return _dims.prod(self.shape)

    @property
    def ctype(self) -> str:
        return C_TYPES[self.dtype]


@dataclass
class ExportResult:
    name: str
    program: Program
    args: list  # [CArg] inputs then outputs, convenience-API order
    files: list = field(default_factory=list)  # [Path] written
    timings: dict = field(default_factory=dict)
    cpu: str = ""
    optimized_ir: str = ""
    shared_library: Optional[Path] = None
    warnings: list = field(default_factory=list)
    sizes: Optional[SizeSpec] = None  # the named sizes the API takes (None: every shape fixed)


# -- LLVM -> object ------------------------------------------------------------------------------------------

def internalize(module, entry: str) -> None:
    """Give every defined function and global except ``entry`` internal linkage (the GEMM drivers
    ``gemm<k>`` are external by default: two exported models would clash at link time)."""
    from llvmlite import ir
    for g in module.global_values:
        if g.name == entry or g.linkage not in ("", "external"):
            continue
        if isinstance(g, ir.Function) and not g.is_declaration:
            g.linkage = "internal"
        elif isinstance(g, ir.GlobalVariable) and g.initializer is not None:
            g.linkage = "internal"


def check_cpu_name(cpu: str) -> None:
    """Raise ExportError for a CPU name LLVM does not know. (LLVM only prints a warning when the
    target machine is made and aborts the whole process later, so ask a child process.)"""
    import sys
    code = ("import sys; from symdiff.codegen.llvm.jit import target_machine; "
            "target_machine(cpu=sys.argv[1], features='', reloc='pic', jit=False)")
    r = subprocess.run([sys.executable, "-c", code, cpu], capture_output=True, text=True)
    if r.returncode != 0 or "not a recognized processor" in r.stderr:
        raise ExportError(f"--cpu {cpu!r}: not a CPU LLVM knows for this target (try host, x86-64, x86-64-v2, "
                          f"x86-64-v3, x86-64-v4, or a name such as skylake)")


def compile_object(module, cpu: Optional[str] = None) -> tuple[bytes, str, str]:
    """(object bytes, optimized IR, cpu name). ``cpu`` None/"host": this machine's CPU and features;
    anything else (e.g. "x86-64", "x86-64-v3", "generic") is an LLVM CPU name with its default features."""
    from symdiff.codegen.llvm.jit import emit_object, host_cpu, optimize, parse, target_machine
    if cpu in (None, "", "host"):
        obj, text = emit_object(module)
        return obj, text, host_cpu()[0]
    check_cpu_name(cpu)
    tm = target_machine(cpu=cpu, features="", reloc="pic", jit=False)
    mod = parse(str(module))
    optimize(mod, tm)
    return tm.emit_object(mod), str(mod), cpu


# -- argument description ------------------------------------------------------------------------------------

def _leaf_role(spec: LeafSpec) -> str:
    if spec.label_depth is not None:
        return "labels"
    return spec.kind


def _leaf_doc(spec: LeafSpec) -> str:
    if spec.label_depth is not None:
        return f"integer class labels in [0, {spec.label_depth})"
    return "trainable parameter" if spec.kind == "param" else "input data"


def describe_args(outputs: Sequence[Node], simplified: Sequence[Node], output_names: Sequence[str],
                  output_docs: Sequence[str], program: Program) -> list[CArg]:
    """Convenience-API arguments: every leaf of the model (signature order of ``outputs``), then the outputs."""
    taken: set = set()
    raw_sig = Signature(list(outputs))
    used_sig = Signature(list(simplified))
    slot_of = {s.name: i for i, s in enumerate(used_sig.leaves)}
    # leaves of the simplified graph first keep their order; any leaf simplification dropped is appended
    specs = {s.name: s for s in raw_sig.leaves}
    for s in used_sig.leaves:
        specs.setdefault(s.name, s)
    order = [s.name for s in raw_sig.leaves] + [s.name for s in used_sig.leaves if s.name not in
                                                 {r.name for r in raw_sig.leaves}]
    args: list[CArg] = []
    for nm in order:
        s = used_sig.leaves[slot_of[nm]] if nm in slot_of else specs[nm]
        used = nm in slot_of
        doc = _leaf_doc(s) + ("" if used else "; unused after simplification (ignored, may be NULL)")
        args.append(CArg(c_ident(nm, taken), nm, _leaf_role(s), tuple(s.shape), s.dtype, doc, used,
                         slot_of.get(nm, -1)))
    n_in = len(used_sig.leaves)
    for k, (o, onm, odoc) in enumerate(zip(simplified, output_names, output_docs)):
        args.append(CArg(c_ident(onm, taken), onm, "output", tuple(o.shape), o.dtype, odoc, True, n_in + k))
    assert len(program.inputs) == n_in and len(program.outputs) == len(simplified)
    return args


# -- C text --------------------------------------------------------------------------------------------------

def _shape_text(shape: tuple) -> str:
    return "[" + ", ".join(str(s) for s in shape) + "]"


def _comment(text: str) -> str:
    return text.replace("*/", "* /")


def header_text(name: str, args: list[CArg], program: Program, *, source: str = "", cpu: str = "",
                sizes: Optional[SizeSpec] = None) -> str:
    """The C header; ``sizes``: the named sizes of a symbolic function (``export_sizes.py``)."""
    U = name.upper()
    ins = [a for a in args if a.role != "output"]
    outs = [a for a in args if a.role == "output"]
    ws = program.workspace_bytes
    w_name = max([len(a.c_name) for a in args] + [4])
    w_ty = max(len(f"{a.dtype}{_shape_text(a.shape)}") for a in args)
    table = []
    for a in args:
        direction = "out" if a.role == "output" else "in "
        table.append(f" *   {direction} {a.c_name:<{w_name}}  {a.dtype + _shape_text(a.shape):<{w_ty}}  "
                     f"{a.role:<7} {_comment(a.doc)}")
    raw = sorted((a for a in args if a.slot >= 0), key=lambda a: a.slot)
    n_raw = len(raw)
    ws_text = f"workspace ({ws} bytes{', may be NULL' if ws == 0 else ''})"
    if sizes:
        ws_text = f"workspace ({U}_WORKSPACE_BYTES({', '.join(s.c_name for s in sizes.sizes)}) bytes)"
    if [a.c_name for a in raw] == [a.c_name for a in args]:
        raw_lines = [f" *   args[0..{n_raw - 1}] = the arguments above, in that order; args[{n_raw}] = {ws_text}."]
    else:
        raw_lines = [f" *   args[{a.slot}] = {a.c_name}" for a in raw] + [f" *   args[{n_raw}] = {ws_text}"]
    sym = _sizes.header_decls(name, sizes) if sizes else {}
    if sizes:
        raw_lines += _sizes.raw_sizes_line(sizes, n_raw + 1)
    run_params = [", ".join(_sizes.size_params(sizes))] if sizes else []  # the sizes on the first line
    for a in ins:
        run_params.append(f"const {a.ctype} *{a.c_name}")
    for a in outs:
        run_params.append(f"{a.ctype} *{a.c_name}")
    run_params += ["void *workspace", "sd_pool *pool"]
    run_sig = f"int {name}_run(" + ",\n        ".join(run_params) + ");"
    decls = [f"{'const ' if a.role != 'output' else ''}{a.ctype} *{a.c_name};" for a in args]
    size_decls = [f"int64_t {s.c_name};" for s in sizes.sizes] if sizes else []
    w_decl = max(len(d) for d in decls + size_decls)
    fields = [f"    {d:<{w_decl}}  /* size: sizes[{s.index}], {s.name} >= 1 */"
              for d, s in zip(size_decls, sizes.sizes if sizes else [])]
    fields += [f"    {d:<{w_decl}}  /* {a.role}: {a.dtype}{_shape_text(a.shape)}, {_comment(a.doc)} */"
               for d, a in zip(decls, args)]
    after = " after the sizes" if sizes else ""
    lines = [
        f"/*",
        f" * {name}.h -- generated by symdiff. Do not edit.",
        f" *",
    ]
    if source:
        lines.append(f" * Source: {_comment(source)}")
    if cpu:
        lines.append(f" * Target CPU: {cpu} (the object code uses this CPU's instruction set)")
    lines += [
        f" * Library: lib{name}.so, self-contained (libc, libm, pthreads only). Link with",
        f" *     cc main.c -I<dir> -L<dir> -l{name} -Wl,-rpath,<dir>",
        f" * or statically: cc main.c {name}.o {name}_api.c sd_pool.c -I<dir> -O2 -pthread -lm",
        f" *",
        f" * Arrays are dense, C-contiguous (row-major), of the dtype shown, owned by the caller.",
        f" * A shape [] is a scalar (one element). Inputs are never written; outputs are",
        f" * overwritten, never read, and must not overlap the inputs or each other.",
        f" * Floating point matches the NumPy reference up to rounding (no fast-math).",
        f" *",
        *(_sizes.header_doc(name, sizes, args) if sizes else []),
        f" * Arguments of {name}_run / fields of {name}_args{after}, in order:",
        *table,
        f" */",
        f"#ifndef SYMDIFF_{U}_H",
        f"#define SYMDIFF_{U}_H",
        f"",
        f"#include <stdbool.h>",
        f"#include <stddef.h>",
        f"#include <stdint.h>",
        f"#include \"sd_pool.h\"  /* sd_pool_create(nthreads), sd_pool_destroy(pool): exported by lib{name}.so */",
        f"",
        f"#ifdef __cplusplus",
        f"extern \"C\" {{",
        f"#endif",
        f"",
        f"#define {U}_NUM_INPUTS {len(ins)}",
        f"#define {U}_NUM_OUTPUTS {len(outs)}",
        f"#define {U}_NUM_ARGS {len(args)}",
        *(sym["defines"] if sizes else [f"#define {U}_WORKSPACE_BYTES {ws}"]),
        f"",
        f"/* Raw entry point (the compiler's ABI):",
        *raw_lines,
        f" * pool: an sd_pool* from sd_pool_create(), or NULL to run on the calling thread. */",
        f"void {name}(void **args, void *pool);",
        f"",
        *(sym["query"] if sizes else [
            f"/* Bytes of scratch memory one call needs ({U}_WORKSPACE_BYTES): the work-size query. */",
            f"size_t {name}_workspace_bytes(void);"]),
        f"",
        f"/* The argument counts as functions (for callers that load the library at run time). */",
        f"int {name}_num_inputs(void);",
        f"int {name}_num_outputs(void);",
        f"int {name}_num_args(void);",
        *sym.get("counts", []),
        f"",
        *(sym["alloc"] if sizes else [
            f"/* A 64-byte aligned workspace for {name}_run/{name}_call (never NULL unless out of memory);",
            f" * reuse it across calls, one per thread calling concurrently. Free with {name}_workspace_free. */",
            f"void *{name}_workspace_alloc(void);"]),
        f"void {name}_workspace_free(void *workspace);",
        f"",
        *(sym["run_doc"] if sizes else [
            f"/* Evaluate the model. workspace: from {name}_workspace_alloc() (or any {U}_WORKSPACE_BYTES bytes,",
            f" * 64-byte aligned), or NULL to allocate one for this call only. pool: NULL = this thread only.",
            f" * Returns 0, or -1 when the workspace could not be allocated. */"]),
        run_sig,
        f"",
        f"/* The same call with named pointers (designated initialisers keep call sites readable). */",
        f"typedef struct {name}_args {{",
        *fields,
        f"}} {name}_args;",
        f"int {name}_call(const {name}_args *a, void *workspace, sd_pool *pool);",
        f"",
        f"/* Argument table (for generic callers and bindings), in {name}_args order. */",
        f"typedef struct {name}_arg_info {{",
        f"    const char *name;     /* C name (field / parameter) */",
        f"    const char *role;     /* \"input\", \"param\", \"labels\" or \"output\" */",
        f"    const char *dtype;    /* \"float32\", \"float64\", \"int32\", \"int64\" or \"bool\" */",
        f"    int ndim;",
        (f"    const int64_t *shape; /* ndim entries (-1: a symbolic size, see {name}_arg_dims) */" if sizes else
         f"    const int64_t *shape; /* ndim entries */"),
        (f"    int64_t size;         /* number of elements (-1: it depends on the sizes) */" if sizes else
         f"    int64_t size;         /* number of elements */"),
        f"    const char *doc;",
        f"}} {name}_arg_info;",
        f"extern const {name}_arg_info {name}_arg_table[{U}_NUM_ARGS];",
        f"",
        *sym.get("generic", []),
        f"#ifdef __cplusplus",
        f"}}",
        f"#endif",
        f"",
        f"#endif /* SYMDIFF_{U}_H */",
        "",
    ]
    return "\n".join(lines)


def _c_string(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def api_source(name: str, args: list[CArg], program: Program, sizes: Optional[SizeSpec] = None) -> str:
    """The C source of the convenience API; ``sizes``: the named sizes of a symbolic function."""
    U = name.upper()
    ins = [a for a in args if a.role != "output"]
    outs = [a for a in args if a.role == "output"]
    n_raw = len(program.inputs) + len(program.outputs) + 1 + (1 if sizes and sizes.raw_names else 0)
    raw = sorted((a for a in args if a.slot >= 0), key=lambda a: a.slot)
    shapes, infos = [], []
    for i, a in enumerate(args):
        vals, count = _sizes.table_shape(a.shape) if sizes else (", ".join(str(s) for s in a.shape) or "0", a.size)
        shapes.append(f"static const int64_t shape_{i}[] = {{{vals}}};")
        infos.append(f"    {{{_c_string(a.c_name)}, {_c_string(a.role)}, {_c_string(a.dtype)}, {len(a.shape)}, "
                     f"shape_{i}, {count}, {_c_string(a.doc)}}},")
    run_params = [", ".join(_sizes.size_params(sizes))] if sizes else []  # the sizes on the first line
    run_params += [f"const {a.ctype} *{a.c_name}" for a in ins] + [f"{a.ctype} *{a.c_name}" for a in outs]
    run_params += ["void *workspace", "sd_pool *pool"]
    unused = [a for a in ins if not a.used]
    if sizes:
        common = _sizes.api_helpers(name, sizes, args, n_raw)
        run_call = f"run_sized(args, {sizes.literal()}, workspace, pool)"
        call_call = "run_sized(args, (const int64_t[]){" + ", ".join(f"a->{s.c_name}" for s in sizes.sizes) + \
                    "}, workspace, pool)"
    else:
        common = [
            f"SD_EXPORT size_t {name}_workspace_bytes(void) {{ return {U}_WORKSPACE_BYTES; }}",
            f"SD_EXPORT int {name}_num_inputs(void) {{ return {U}_NUM_INPUTS; }}",
            f"SD_EXPORT int {name}_num_outputs(void) {{ return {U}_NUM_OUTPUTS; }}",
            f"SD_EXPORT int {name}_num_args(void) {{ return {U}_NUM_ARGS; }}",
            f"",
            f"SD_EXPORT void *{name}_workspace_alloc(void) {{",
            f"    size_t n = ({U}_WORKSPACE_BYTES + 63) / 64 * 64;",
            f"    return aligned_alloc(64, n ? n : 64);",
            f"}}",
            f"",
            f"SD_EXPORT void {name}_workspace_free(void *workspace) {{ free(workspace); }}",
            f"",
            f"static int run_raw(void **args, void *workspace, sd_pool *pool) {{",
            f"    void *own = NULL;",
            f"    if (!workspace && {U}_WORKSPACE_BYTES) {{",
            f"        workspace = own = {name}_workspace_alloc();",
            f"        if (!workspace) return -1;",
            f"    }}",
            f"    args[{n_raw - 1}] = workspace;",
            f"    {name}(args, pool);",
            f"    free(own);",
            f"    return 0;",
            f"}}",
            f"",
        ]
        run_call = call_call = "run_raw(args, workspace, pool)"
    counts = [
        f"SD_EXPORT int {name}_num_inputs(void) {{ return {U}_NUM_INPUTS; }}",
        f"SD_EXPORT int {name}_num_outputs(void) {{ return {U}_NUM_OUTPUTS; }}",
        f"SD_EXPORT int {name}_num_args(void) {{ return {U}_NUM_ARGS; }}",
        f"",
    ] if sizes else []

    def argv(prefix: str) -> list[str]:
        return [f"(void *){prefix}{a.c_name}," for a in raw]
    tail = ["        NULL, NULL};" if n_raw > len(raw) + 1 else "        NULL};"]  # workspace (and sizes)

    lines = [
        f"/* {name}_api.c -- generated by symdiff: the convenience API declared in {name}.h. */",
        f"#include <stdlib.h>",
        f"#include \"{name}.h\"",
        f"",
        f"#define SD_EXPORT __attribute__((visibility(\"default\")))",
        f"",
        *counts,
        *common,
        f"SD_EXPORT int {name}_run(" + ",\n        ".join(run_params) + ") {",
        *([f"    (void){a.c_name};  /* unused after simplification */" for a in unused]),
        f"    void *args[{n_raw}] = {{",
        *[f"        {s}" for s in argv("")],
        *tail,
        f"    return {run_call};",
        f"}}",
        f"",
        f"SD_EXPORT int {name}_call(const {name}_args *a, void *workspace, sd_pool *pool) {{",
        f"    void *args[{n_raw}] = {{",
        *[f"        {s}" for s in argv("a->")],
        *tail,
        f"    return {call_call};",
        f"}}",
        f"",
        *shapes,
        f"",
        f"SD_EXPORT const {name}_arg_info {name}_arg_table[{U}_NUM_ARGS] = {{",
        *infos,
        f"}};",
        "",
    ]
    return "\n".join(lines)


# -- shared library ------------------------------------------------------------------------------------------

def find_cc(cc: Optional[str] = None) -> Optional[str]:
    cc = cc or os.environ.get("CC") or "gcc"
    return shutil.which(cc)


def build_shared(outdir: Path, name: str, cc: Optional[str] = None, functions: Optional[Sequence[str]] = None,
                 extra_sources: Sequence[str] = ()) -> Path:
    """Link ``<f>.o`` and ``<f>_api.c`` of each function ``f`` (default: the one named ``name``), the
    ``extra_sources`` and ``sd_pool.c`` in ``outdir`` into ``lib<name>.so``."""
    functions = list(functions or [name])
    exe = find_cc(cc)
    if exe is None:
        raise ExportError(f"C compiler {cc or os.environ.get('CC') or 'gcc'!r} not found: lib{name}.so not built "
                          f"(link it yourself: gcc -shared -fPIC -O2 -pthread -o lib{name}.so "
                          f"{' '.join(f'{f}.o {f}_api.c' for f in functions)} sd_pool.c -lm)")
    lib = outdir / f"lib{name}.so"
    srcs = [str(outdir / f"{f}{ext}") for f in functions for ext in (".o", "_api.c")]
    cmd = [exe, "-shared", "-fPIC", "-O2", "-pthread", "-fvisibility=hidden", "-I", str(outdir), "-o", str(lib),
           *srcs, *(str(outdir / e) for e in extra_sources), str(outdir / "sd_pool.c"), "-lm"]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise ExportError(f"linking lib{name}.so failed ({' '.join(cmd)}):\n{r.stderr.strip()}")
    return lib


# -- driver --------------------------------------------------------------------------------------------------

def export_c(outputs: Sequence[Node], name: str, outdir: str | os.PathLike, *,
             output_names: Optional[Sequence[str]] = None, output_docs: Optional[Sequence[str]] = None,
             simplify_graph: bool = True, simplified: Optional[Sequence[Node]] = None,
             cpu: Optional[str] = None, shared: bool = True, cc: Optional[str] = None,
             source: str = "") -> ExportResult:
    """Compile ``outputs`` to C artifacts in ``outdir`` (see the module docstring).

    ``name`` is the entry symbol and the prefix of every file and API symbol (a C identifier).
    ``output_names``/``output_docs``: C names and comments of the outputs (default ``out0``...).
    ``simplified``: the already simplified ``outputs`` (skips simplification).
    With ``shared=False`` no C compiler is needed (no ``.so``). Raises :class:`ExportError` for a
    bad name or a failing C compiler; the other files are written before the link is attempted.
    """
    from symdiff.codegen.llvm.render import render
    from symdiff.codegen.lower import lower
    from symdiff.simplify import simplify

    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name or "") or name in C_KEYWORDS:
        raise ExportError(f"--name {name!r} is not a usable C identifier")
    outs = list(outputs)
    output_names = list(output_names or [f"out{i}" for i in range(len(outs))])
    output_docs = list(output_docs or [o.meta.get("name") or o.op for o in outs])
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    timings: dict = {}

    t = time.perf_counter()
    if simplified is None:
        simplified = simplify(outs) if simplify_graph else outs
    simplified = list(simplified)
    timings["simplify_s"] = time.perf_counter() - t
    t = time.perf_counter()
    from symdiff.codegen.llvm.gemm.plan import planned_for
    from symdiff.codegen.target import ISA_LEVELS
    widths = {c: w for c, w, _ in ISA_LEVELS.values()}
    try:
        program = lower(simplified)
        if cpu in widths:  # an x86-64 level (x86-64-v2/v3/v4): plan the GEMMs for its register width
            with planned_for(widths[cpu]):
                module = render(program, name)
        else:
            module = render(program, name)
    except (SymbolicDimError, SymbolicUnsupported) as e:  # a kernel that needs a size the C caller gives at run time
        raise ExportError(f"{name}: this graph cannot be compiled once for every value of its named sizes ({e}); "
                          f"export it with fixed sizes instead (build it with ints for those dimensions)") from e
    internalize(module, name)
    timings["lower_render_s"] = time.perf_counter() - t
    t = time.perf_counter()
    obj, opt_ir, cpu_name = compile_object(module, cpu)
    timings["llvm_s"] = time.perf_counter() - t

    args = describe_args(outs, simplified, output_names, output_docs, program)
    taken = {a.c_name for a in args} | set(_sizes.HELPERS)
    sizes = _sizes.size_spec(args, program, size_checks(outs), lambda n: c_ident(n, taken))
    res = ExportResult(name, program, args, cpu=cpu_name, optimized_ir=opt_ir, timings=timings, sizes=sizes)

    def write(fname: str, data) -> Path:
        p = outdir / fname
        if isinstance(data, bytes):
            p.write_bytes(data)
        else:
            p.write_text(data)
        res.files.append(p)
        return p

    write(f"{name}.ll", opt_ir)
    write(f"{name}.o", obj)
    write(f"{name}.h", header_text(name, args, program, source=source, cpu=cpu_name, sizes=sizes))
    write(f"{name}_api.c", api_source(name, args, program, sizes))
    here = Path(__file__).resolve().parent
    for f in ("sd_pool.h", "sd_pool.c"):
        write(f, (here / f).read_text())
    if shared:
        t = time.perf_counter()
        res.shared_library = build_shared(outdir, name, cc)
        res.files.append(res.shared_library)
        timings["cc_s"] = time.perf_counter() - t
    return res


__all__ = ["export_c", "ExportResult", "ExportError", "CArg", "c_ident", "header_text", "api_source",
           "build_shared", "compile_object", "internalize", "C_TYPES"]
