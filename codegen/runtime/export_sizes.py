"""Symbolic sizes in the exported C API (a model built with named dimensions, ``("batch", 784)``).

A function whose argument shapes hold :class:`symdiff.dims.Dim` sizes is compiled once for every
value of its named sizes. Its C API (written by ``export.py`` with the pieces of this module) takes
the sizes as ``int64_t`` arguments, in sorted-name order (the API's ``sizes[]`` order)::

    size_t <fn>_workspace_bytes(int64_t batch);          /* the work-size query */
    void  *<fn>_workspace_alloc(int64_t batch);
    int    <fn>_run(int64_t batch, const float *x, ..., float *out0, ..., void *workspace, sd_pool *pool);
    int    <fn>_call(const <fn>_args *a, void *workspace, sd_pool *pool);   /* a->batch, a->x, ... */

and, for generic callers, ``<fn>_num_sizes()``, ``<fn>_size_names[]``, ``<fn>_arg_dims[]`` (each
argument's shape as text, ``"[batch, 784]"``) and ``<fn>_arg_shape(arg, sizes, shape)``. A call returns
-2 when a size is < 1 or a call-time size check of the graph fails (a named size broadcast against a
fixed one); the raw entry point then receives the sizes its program uses (``program.size_names``) as
its last argument (``codegen/llvm/render.py``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence

from symdiff import dims as _dims
from symdiff.dims import Dim, DimLike


@dataclass
class SizeArg:
    """One named size of the C API."""
    name: str  # the symdiff name
    c_name: str  # the C parameter / struct field name
    index: int  # position in the API's sizes[] array (sorted names)
    bound_by: list = field(default_factory=list)  # ["x axis 0", ...]: input axes of exactly this size


@dataclass
class SizeSpec:
    """The named sizes of one exported function, what the raw entry needs of them, and its checks."""
    sizes: list  # [SizeArg], sorted by name
    raw_names: tuple  # the raw entry's sizes[] (program.size_names; empty: the entry takes none)
    workspace: DimLike  # bytes, a polynomial of the sizes
    checks: list  # [(left, right, where)]: each call must have left == right

    @property
    def names(self) -> list[str]:
        return [s.name for s in self.sizes]

    def expr(self, d: DimLike, ref: Optional[Callable[[SizeArg], str]] = None) -> str:
        """``d`` as a C ``int64_t`` expression; ``ref(size)`` is a size's C text (default ``sizes[i]``)."""
        if not isinstance(d, Dim):
            return str(int(d))
        ref = ref or (lambda s: f"sizes[{s.index}]")
        by_name = {s.name: s for s in self.sizes}
        parts = []
        for mono, coef in d.terms:  # sum of coef * prod(names), every factor an int64_t
            factors = [ref(by_name[n]) for n in mono]
            if not mono:
                factors = [f"INT64_C({coef})"]
            elif coef != 1:
                factors.insert(0, f"INT64_C({coef})")
            parts.append(" * ".join(factors))
        text = " + ".join(parts)
        return text if len(parts) == 1 and " " not in text else f"({text})"

    def by_param(self, s: SizeArg) -> str:
        """A size's C text inside a function that takes it as a named parameter."""
        return f"(int64_t)({s.c_name})"

    def literal(self) -> str:
        """The API's sizes[] array built from the named parameters (a C99 compound literal)."""
        return "(const int64_t[]){" + ", ".join(s.c_name for s in self.sizes) + "}"


def size_spec(args: Sequence, program, checks: Sequence, ident: Callable[[str], str]) -> Optional[SizeSpec]:
    """The named sizes of an exported function's arguments (``CArg``s), or None when every shape is fixed.
    ``checks``: ``symdiff.dim_binding.SizeCheck``s of the graph; ``ident(name)``: a C name not yet in use."""
    names = sorted(_dims.free_names(s for a in args for s in a.shape))
    if not names:
        return None
    sizes = [SizeArg(n, ident(n), i) for i, n in enumerate(names)]  # (ident avoids HELPERS too)
    by_name = {s.name: s for s in sizes}
    for a in args:
        if a.role == "output":
            continue
        for axis, d in enumerate(a.shape):
            if isinstance(d, Dim) and d.is_name:
                by_name[next(iter(d.names))].bound_by.append(f"{a.c_name} axis {axis}")
    return SizeSpec(sizes, tuple(program.size_names), program.workspace_bytes,
                    [(c.left, c.right, c.where) for c in checks])


# the static functions of the API source: a size's C name never shadows one
HELPERS = ("sizes_ok", "workspace_bytes_of", "workspace_alloc_of", "run_sized", "raw_sizes", "sizes")


def _comment(text: str) -> str:
    return text.replace("*/", "* /")


# -- header ------------------------------------------------------------------------------------------------

def header_doc(name: str, spec: SizeSpec, args: Sequence) -> list[str]:
    """The header comment's section on the sizes: their order, where each is bound, every symbolic axis."""
    w = max(len(f"sizes[{s.index}] = {s.c_name}") for s in spec.sizes)
    lines = [
        f" * Symbolic sizes: this one compiled function serves every value of the named sizes below.",
        f" * Each call takes them as int64_t arguments (each >= 1), first in {name}_run, as fields of",
        f" * {name}_args and in the work-size query; generic callers pass them as an array sizes[]",
        f" * in this order ({name}_size_names):",
    ]
    for s in spec.sizes:
        where = ", ".join(s.bound_by) or "no input axis"
        lines.append(f" *   {f'sizes[{s.index}] = {s.c_name}':<{w}}  the size of {where}")
    sym = [f"{a.c_name}[{k}] = {d}" for a in args for k, d in enumerate(a.shape) if isinstance(d, Dim)]
    lines += [f" * Symbolic dimensions (every other dimension is fixed):"]
    lines += _wrap(sym, " *   ")
    lines += [
        f" * The shapes in the table are in terms of the sizes; every array, the outputs too, is the",
        f" * caller's, allocated with its shape for the call's sizes ({name}_arg_shape computes it).",
        f" * The workspace of a call is {name}_workspace_bytes(sizes) = {spec.workspace} bytes.",
    ]
    if spec.checks:
        lines.append(f" * Call-time checks ({name}_run returns -2 when one fails):")
        for left, right, where in spec.checks:
            lines.append(f" *   {left} == {right}  ({_comment(where)})")
    lines.append(" *")
    return lines


def _wrap(items: list[str], prefix: str, width: int = 104) -> list[str]:
    lines, cur = [], ""
    for i, it in enumerate(items):
        piece = it + ("," if i < len(items) - 1 else "")
        if cur and len(prefix) + len(cur) + 1 + len(piece) > width:
            lines.append(prefix + cur)
            cur = piece
        else:
            cur = f"{cur} {piece}" if cur else piece
    return lines + ([prefix + cur] if cur else [])


def size_params(spec: SizeSpec) -> list[str]:
    return [f"int64_t {s.c_name}" for s in spec.sizes]


def header_decls(name: str, spec: SizeSpec) -> dict:
    """The declarations that differ from a fixed-shape header, by the part of the header they replace."""
    U = name.upper()
    params = ", ".join(size_params(spec))
    macro_args = ", ".join(s.c_name for s in spec.sizes)
    ws_expr = spec.expr(spec.workspace, spec.by_param)
    return {
        "defines": [
            f"#define {U}_NUM_SIZES {len(spec.sizes)}",
            f"/* Bytes of scratch memory one call needs for the sizes (as {name}_workspace_bytes). */",
            f"#define {U}_WORKSPACE_BYTES({macro_args}) ((size_t){ws_expr})",
        ],
        "query": [
            f"/* Bytes of scratch memory one call needs for these sizes ({spec.workspace}): the work-size query. */",
            f"size_t {name}_workspace_bytes({params});",
        ],
        "counts": [f"int {name}_num_sizes(void);"],
        "alloc": [
            f"/* A 64-byte aligned workspace for calls with these sizes (NULL when out of memory, or when",
            f" * a size is < 1). It serves every call whose {name}_workspace_bytes is no larger:",
            f" * allocate it for the largest sizes you use and reuse it, one per thread calling",
            f" * concurrently. Free with {name}_workspace_free. */",
            f"void *{name}_workspace_alloc({params});",
        ],
        "run_doc": [
            f"/* Evaluate the model for the sizes given first. workspace: from {name}_workspace_alloc()",
            f" * (or any 64-byte aligned buffer of at least {name}_workspace_bytes(sizes) bytes), or NULL",
            f" * to allocate one for this call only. pool: NULL = this thread only.",
            f" * Returns 0, -1 when the workspace could not be allocated, or -2 when a size is < 1",
            f" * or fails a call-time check (nothing is written then). */",
        ],
        "generic": [
            f"/* For generic callers: the sizes' names in sizes[] order; each argument's shape as text",
            f" * (\"[batch, 784]\"), in {name}_args order; and {name}_arg_shape, which writes the shape of",
            f" * argument `arg` ({name}_args order) for sizes[] ({U}_NUM_SIZES values) to shape[] and",
            f" * returns its ndim (-1: no such argument). */",
            f"extern const char *const {name}_size_names[{U}_NUM_SIZES];",
            f"extern const char *const {name}_arg_dims[{U}_NUM_ARGS];",
            f"int {name}_arg_shape(int arg, const int64_t *sizes, int64_t *shape);",
            f"",
        ],
    }


def raw_sizes_line(spec: SizeSpec, slot: int) -> list[str]:
    """The raw entry's last argument, for the header's description of the raw ABI."""
    if not spec.raw_names:
        return []
    return [f" *   args[{slot}] = const int64_t sizes[{len(spec.raw_names)}] = {{{', '.join(spec.raw_names)}}}"
            f" (the values of the sizes its program uses)"]


# -- API source ----------------------------------------------------------------------------------------------

def api_helpers(name: str, spec: SizeSpec, args: Sequence, n_raw: int) -> list[str]:
    """C source: the size checks, the work-size query, the shapes, and ``run_sized`` (the call of the raw
    entry for API-order sizes[]) used by ``<fn>_run`` and ``<fn>_call``."""
    U = name.upper()
    params = ", ".join(size_params(spec))
    checks = [f"    if ({spec.expr(a)} != {spec.expr(b)}) return 0;  /* {_comment(w)} */" for a, b, w in spec.checks]
    index = {s.name: s.index for s in spec.sizes}
    if list(spec.raw_names) == spec.names:
        raw = ["    args[{0}] = (void *)sizes;".format(n_raw - 1)]
    elif spec.raw_names:
        vals = ", ".join(f"sizes[{index[n]}]" for n in spec.raw_names)
        raw = [f"    int64_t raw_sizes[{len(spec.raw_names)}] = {{{vals}}};  /* {', '.join(spec.raw_names)} */",
               f"    args[{n_raw - 1}] = raw_sizes;"]
    else:
        raw = []
    ws_slot = n_raw - (2 if spec.raw_names else 1)
    cases = []
    for i, a in enumerate(args):
        body = " ".join(f"shape[{k}] = {spec.expr(d)};" for k, d in enumerate(a.shape))
        cases.append(f"    case {i}: {body} return {len(a.shape)};".replace(":  return", ": return"))
    dims_text = ", ".join('"[' + ", ".join(str(d) for d in a.shape) + ']"' for a in args)
    names_text = ", ".join(f'"{s.name}"' for s in spec.sizes)
    return [
        f"/* sizes[]: {', '.join(spec.names)} (API order) */",
        f"static int sizes_ok(const int64_t *sizes) {{",
        f"    for (int i = 0; i < {U}_NUM_SIZES; i++)",
        f"        if (sizes[i] < 1) return 0;",
        *checks,
        f"    return 1;",
        f"}}",
        f"",
        f"static size_t workspace_bytes_of(const int64_t *sizes) {{ return (size_t){spec.expr(spec.workspace)}; }}",
        f"",
        f"SD_EXPORT size_t {name}_workspace_bytes({params}) {{",
        f"    return workspace_bytes_of({spec.literal()});",
        f"}}",
        f"",
        f"SD_EXPORT int {name}_num_sizes(void) {{ return {U}_NUM_SIZES; }}",
        f"",
        f"static void *workspace_alloc_of(const int64_t *sizes) {{",
        f"    if (!sizes_ok(sizes)) return NULL;",
        f"    size_t n = (workspace_bytes_of(sizes) + 63) / 64 * 64;",
        f"    return aligned_alloc(64, n ? n : 64);",
        f"}}",
        f"",
        f"SD_EXPORT void *{name}_workspace_alloc({params}) {{ return workspace_alloc_of({spec.literal()}); }}",
        f"",
        f"SD_EXPORT void {name}_workspace_free(void *workspace) {{ free(workspace); }}",
        f"",
        f"static int run_sized(void **args, const int64_t *sizes, void *workspace, sd_pool *pool) {{",
        f"    if (!sizes_ok(sizes)) return -2;",
        f"    size_t nbytes = workspace_bytes_of(sizes);",
        f"    void *own = NULL;",
        f"    if (!workspace && nbytes) {{",
        f"        workspace = own = aligned_alloc(64, (nbytes + 63) / 64 * 64);",
        f"        if (!workspace) return -1;",
        f"    }}",
        f"    args[{ws_slot}] = workspace;",
        *raw,
        f"    {name}(args, pool);",
        f"    free(own);",
        f"    return 0;",
        f"}}",
        f"",
        f"SD_EXPORT const char *const {name}_size_names[{U}_NUM_SIZES] = {{{names_text}}};",
        f"SD_EXPORT const char *const {name}_arg_dims[{U}_NUM_ARGS] = {{{dims_text}}};",
        f"",
        f"SD_EXPORT int {name}_arg_shape(int arg, const int64_t *sizes, int64_t *shape) {{",
        f"    switch (arg) {{",
        *cases,
        f"    default: return -1;",
        f"    }}",
        f"}}",
        f"",
    ]


def table_shape(shape: tuple) -> tuple[str, str]:
    """(the arg table's shape entries, its element count): -1 for what depends on the sizes."""
    vals = ", ".join("-1" if isinstance(s, Dim) else str(s) for s in shape) or "0"
    n = _dims.prod(shape)
    return vals, "-1" if isinstance(n, Dim) else str(n)


__all__ = ["SizeArg", "SizeSpec", "size_spec", "header_doc", "header_decls", "raw_sizes_line", "api_helpers",
           "table_shape", "size_params"]
