"""Building blocks of the CUDA C renderer: constants, C literals, a tiny statement tree with dead-code
elimination, the per-kernel context, the scalar rules, and the device helpers the prelude may need.
Graph nodes are evaluated at a point by the shared point evaluator (``codegen/pointeval.py``) through
the C emitter of ``cuda/emitter.py``; FLOPs and bytes come from the one cost model (``codegen/cost.py``)."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Optional

import numpy as np

from symdiff import dims as _dims
from symdiff import ops_random as R
from symdiff.dims import Dim, DimLike
from symdiff.ir import Node

from symdiff.codegen.kernel_ir import Buffer
from symdiff.codegen.cuda import dtype_rules
from symdiff.codegen.cuda.literals import flit, math_suffix  # noqa: F401  (re-exported)
from symdiff.codegen.cuda.scalar_rules import SPECIAL, scalar_expr  # noqa: F401  (re-exported)

if TYPE_CHECKING:
    from symdiff.codegen.cuda.render import CudaRenderer

CTYPE = {"float32": "float", "float64": "double", "int32": "int", "int64": "long long", "bool": "bool"}
BLOCK = 256  # threads per block of grid-stride kernels
MAX_GRID = 1024  # blocks of grid-stride kernels (enough to fill an H100: 132 SMs x 8 blocks of 256)
MAX_PARTIAL_BLOCKS = 256  # blocks of a loop kernel with fused total reductions (one partial each)
WARP_ROW_MAX = 1024  # rows up to this length: one warp per row; longer: one block per row
ALIGN = 256


def prod_shape(shape) -> DimLike:
    """Elements of ``shape``: an int, or a Dim polynomial of the named sizes (symbolic shapes)."""
    return _dims.prod(shape)


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def block_threads(n: DimLike, cap: int = BLOCK) -> int:
    """Threads per block for n work items: a multiple of 32 in [32, cap] (``cap`` for a symbolic n)."""
    if isinstance(n, Dim):
        return cap
    return max(32, min(cap, ceil_div(max(n, 1), 32) * 32))


def align_up(n: DimLike, a: int = ALIGN) -> DimLike:
    """``n`` rounded up to a multiple of ``a``; for a polynomial, every coefficient is (then the value is a
    multiple of ``a``, and at least ``n``, at every size)."""
    if isinstance(n, Dim):
        return sum((Dim([(m, ceil_div(c, a) * a)]) if m else ceil_div(c, a) * a) for m, c in n.terms)
    return ceil_div(n, a) * a


SIZE_PREFIX = "sz_"  # the C variable holding a named size at run time: sz_<name> (a long long)


def cdim(d: DimLike) -> str:
    """A size as a C expression: an int literal, or a symbolic size's polynomial of the ``sz_<name>``
    variables (``long long``; parenthesised unless it is one name, so it is an operand of ``* / %``)."""
    if not isinstance(d, Dim):
        return str(int(d))
    text = ""
    for mono, c in sorted(d.terms, key=lambda t: (-len(t[0]), t[0])):
        factors = [f"{SIZE_PREFIX}{n}" for n in mono]
        if abs(c) != 1 or not factors:
            factors.insert(0, str(abs(c)))
        term = " * ".join(factors)
        text = (f"{text} {'-' if c < 0 else '+'} {term}" if text else f"{'-' if c < 0 else ''}{term}")
    return text if IDENT.fullmatch(text) else f"({text})"


def size_names_in(text: str) -> list:
    """The named sizes a C text reads (its ``sz_<name>`` identifiers), sorted."""
    return sorted({t[len(SIZE_PREFIX):] for t in _names(text) if t.startswith(SIZE_PREFIX)})


def grid_size(n: DimLike, per: int, cap: int):
    """Blocks for ``n`` work items of ``per`` each, in [1, cap]: an int, or (symbolic n) the C expression
    ``sd_grid(n, per, cap)``, computed at launch (on the host, or in a kernel that needs it)."""
    if isinstance(n, Dim):
        return f"sd_grid({cdim(n)}, {per}, {cap})"
    return max(1, min(ceil_div(n, per), cap))


def per_thread(n, d) -> float:
    """Iterations per thread of a loop (``Block.count``, informative): n / d, or 1 when symbolic."""
    return n / d if isinstance(n, (int, float)) and isinstance(d, (int, float)) else 1.0


REDUCE_IDENT = {"sum": 0.0, "max": -np.inf, "prod": 1.0}
REDUCE_FUNCTOR = {"sum": "SdSum", "max": "SdMax", "prod": "SdProd"}  # device functors of block reductions


def reduce_ident(op: str, dtype: str) -> str:
    return flit(REDUCE_IDENT[op], dtype)


def reduce_update(op: str, acc: str, v: str) -> str:
    """The C expression that accumulates ``v`` into ``acc`` for reduction ``op``."""
    return f"{acc} + {v}" if op == "sum" else f"{acc} * ({v})" if op == "prod" else f"sd_max({acc}, {v})"


def node_label(n: Node) -> str:
    nm = n.name
    if nm:
        return str(nm)
    return f"{n.op}{list(n.shape)}"


# ---- statements: a tiny tree with dead-code elimination --------------------------------------------------

IDENT = re.compile(r"[A-Za-z_]\w*")  # a C identifier
_COMMENT = re.compile(r"//[^\n]*")


def _names(text: str) -> list:
    return IDENT.findall(_COMMENT.sub("", text))


@dataclass
class Stmt:
    text: str
    defines: Optional[str] = None  # a removable definition of this name (None: always kept)
    flops: int = 0
    special: int = 0


@dataclass
class Block:
    head: str
    body: list = field(default_factory=list)
    tail: str = "}"
    count: float = 1.0  # executions of the body per execution of the enclosing scope (for stats)


def dce(stmts: list, live: set) -> list:
    """Drop definitions nobody reads (names are unique per kernel, so a textual scan is exact enough)."""
    out = []
    for s in reversed(stmts):
        if isinstance(s, Block):
            body = dce(s.body, live)
            live.update(_names(s.head))
            out.append(Block(s.head, body, s.tail, s.count))
        elif s.defines is not None and s.defines not in live:
            continue
        else:
            live.update(_names(s.text))
            out.append(s)
    return out[::-1]


def emit(stmts: list, indent: int, lines: list) -> None:
    pad = "    " * indent
    for s in stmts:
        if isinstance(s, Block):
            lines.append(pad + s.head)
            emit(s.body, indent + 1, lines)
            if s.tail:
                lines.append(pad + s.tail)
        else:
            lines.extend(pad + t if t else "" for t in s.text.split("\n"))


# ---- one generated kernel --------------------------------------------------------------------------------

@dataclass
class CudaKernel:
    name: str
    ir_index: int
    kind: str
    comment: list
    grid: tuple
    block: tuple
    shared_bytes: int = 0
    body: list = field(default_factory=list)
    params: list = field(default_factory=list)  # [(declaration, launcher argument)]
    flops: float = 0.0  # these four: the cost model's numbers (codegen/cost.py)
    special: float = 0.0
    bytes_read: int = 0
    bytes_written: int = 0


class KernelCtx:
    """Parameters (buffers) of one kernel and fresh names."""

    def __init__(self, r: "CudaRenderer") -> None:
        self.r = r
        self.params: dict = {}  # key -> [name, ctype, read, written, nbytes]
        self.const_bytes: dict = {}
        self.n = 0

    def fresh(self, prefix: str = "v") -> str:
        self.n += 1
        return f"{prefix}{self.n}"

    def buf(self, buf: Buffer, write: bool = False) -> str:
        if buf.kind == "const":
            self.const_bytes[buf.id] = buf.nbytes
            return self.r.const_name(buf)
        name = self.r.buf_name(buf)
        p = self.params.setdefault(name, [name, CTYPE[buf.dtype], False, False, buf.nbytes])
        p[3 if write else 2] = True
        return name

    def raw(self, name: str, ctype: str, nbytes: int, write: bool = False) -> str:
        p = self.params.setdefault(name, [name, ctype, False, False, nbytes])
        p[3 if write else 2] = True
        return name

    def decls(self) -> list:
        out = []
        for name, ct, rd, wr, _ in sorted(self.params.values(), key=lambda q: q[3]):  # read-only ones first
            if wr and rd:
                out.append((f"{ct}* {name}", name))
            elif wr:
                out.append((f"{ct}* __restrict__ {name}", name))
            else:
                out.append((f"const {ct}* __restrict__ {name}", name))
        return out

    def traffic(self) -> tuple[int, int]:
        rd = sum(p[4] for p in self.params.values() if p[2]) + sum(self.const_bytes.values())
        wr = sum(p[4] for p in self.params.values() if p[3])
        return rd, wr




# ---- device helpers (emitted when used) -------------------------------------------------------------------

HELPERS: dict[str, tuple[tuple, str]] = {  # name -> (dependencies, code)
    "sd_grid": ((), """\
// blocks for n work items of `per` each, in [1, cap] (a launch sized by the call's symbolic sizes)
static __host__ __device__ __forceinline__ long long sd_grid(long long n, long long per, long long cap) {
    const long long g = (n + per - 1) / per;
    return g < 1 ? 1 : (g > cap ? cap : g);
}"""),
    "sd_split": ((), """\
// chunks of a split reduction of r elements: ceil(r / per), in [1, max(1, min(256 / blocks, cap))]
static __host__ __device__ __forceinline__ long long sd_split(long long r, long long per, long long blocks, long long cap) {
    long long top = 256 / (blocks < 1 ? 1 : blocks);
    top = top > cap ? cap : (top < 1 ? 1 : top);
    const long long s = (r + per - 1) / per;
    return s < 1 ? 1 : (s > top ? top : s);
}"""),
    "sd_max": ((), """\
// NaN-propagating maximum / minimum (as np.maximum / np.minimum; fmaxf would drop the NaN)
__device__ __forceinline__ float sd_max(float a, float b) { return (a > b || a != a) ? a : b; }
__device__ __forceinline__ double sd_max(double a, double b) { return (a > b || a != a) ? a : b; }"""),
    "sd_min": ((), """\
__device__ __forceinline__ float sd_min(float a, float b) { return (a < b || a != a) ? a : b; }
__device__ __forceinline__ double sd_min(double a, double b) { return (a < b || a != a) ? a : b; }"""),
    "sd_sigmoid": ((), """\
// sigmoid(x) = 1 / (1 + exp(-x)), stable: exp of a non-positive number only
__device__ __forceinline__ float sd_sigmoid(float x) { const float e = expf(-fabsf(x)); return (x >= 0.0f ? 1.0f : e) / (1.0f + e); }
__device__ __forceinline__ double sd_sigmoid(double x) { const double e = exp(-fabs(x)); return (x >= 0.0 ? 1.0 : e) / (1.0 + e); }"""),
    "sd_softplus": ((), """\
// softplus(x) = log(1 + exp(x)) = max(x, 0) + log1p(exp(-|x|)), stable for large |x|
__device__ __forceinline__ float sd_softplus(float x) { return fmaxf(x, 0.0f) + log1pf(expf(-fabsf(x))); }
__device__ __forceinline__ double sd_softplus(double x) { return fmax(x, 0.0) + log1p(exp(-fabs(x))); }"""),
    "sd_step": ((), """\
// Heaviside step with H(0) = 0; NaN stays NaN
__device__ __forceinline__ float sd_step(float x) { return x > 0.0f ? 1.0f : (x <= 0.0f ? 0.0f : x); }
__device__ __forceinline__ double sd_step(double x) { return x > 0.0 ? 1.0 : (x <= 0.0 ? 0.0 : x); }"""),
    "sd_heaviside": ((), """\
// Heaviside step with H(0) = 1/2; NaN stays NaN
__device__ __forceinline__ float sd_heaviside(float x) { return x > 0.0f ? 1.0f : (x < 0.0f ? 0.0f : (x == 0.0f ? 0.5f : x)); }
__device__ __forceinline__ double sd_heaviside(double x) { return x > 0.0 ? 1.0 : (x < 0.0 ? 0.0 : (x == 0.0 ? 0.5 : x)); }"""),
    "sd_sign": ((), """\
// sign(x) in {-1, 0, 1}; NaN stays NaN
__device__ __forceinline__ float sd_sign(float x) { return x > 0.0f ? 1.0f : (x < 0.0f ? -1.0f : (x == 0.0f ? 0.0f : x)); }
__device__ __forceinline__ double sd_sign(double x) { return x > 0.0 ? 1.0 : (x < 0.0 ? -1.0 : (x == 0.0 ? 0.0 : x)); }"""),
    # -- math functions (ops_math) --
    "sd_sinc": ((), """\
// np.sinc: sin(pi x) / (pi x), 1 at x = 0
__device__ __forceinline__ float sd_sinc(float x) { const float y = 3.14159265358979323846f * x; return x == 0.0f ? 1.0f : sinf(y) / y; }
__device__ __forceinline__ double sd_sinc(double x) { const double y = 3.14159265358979323846 * x; return x == 0.0 ? 1.0 : sin(y) / y; }"""),
    "sd_log_or_zero": ((), """\
// log(x) with 0 at x = 0 (the factor of d/dy x**y, so that d/dy 0**y = 0)
__device__ __forceinline__ float sd_log_or_zero(float x) { return x == 0.0f ? 0.0f : logf(x); }
__device__ __forceinline__ double sd_log_or_zero(double x) { return x == 0.0 ? 0.0 : log(x); }"""),
    "sd_logaddexp": ((), """\
// np.logaddexp: max + log1p(exp(-|x - y|)); x == y (infinities too) -> x + ln 2; NaN propagates
__device__ __forceinline__ float sd_logaddexp(float x, float y) {
    if (x == y) return x + 0.693147180559945309f;
    const float m = x > y ? x : y;
    return (x != x || y != y) ? x + y : m + log1pf(expf(-fabsf(x - y)));
}
__device__ __forceinline__ double sd_logaddexp(double x, double y) {
    if (x == y) return x + 0.693147180559945309;
    const double m = x > y ? x : y;
    return (x != x || y != y) ? x + y : m + log1p(exp(-fabs(x - y)));
}"""),
    "sd_fmax": ((), """\
// np.fmax / np.fmin: NaN ignored; a tie (+0 vs -0) gives the second operand, as NumPy's array loops
__device__ __forceinline__ float sd_fmax(float a, float b) { return (a > b || b != b) ? a : b; }
__device__ __forceinline__ double sd_fmax(double a, double b) { return (a > b || b != b) ? a : b; }"""),
    "sd_fmin": ((), """\
__device__ __forceinline__ float sd_fmin(float a, float b) { return (a < b || b != b) ? a : b; }
__device__ __forceinline__ double sd_fmin(double a, double b) { return (a < b || b != b) ? a : b; }"""),
    "sd_rand_bits": ((), f"""\
// rand_uniform (symdiff/ops_random.py): lowbias32 hash of (index, seed, step, stream), top 24 bits
__device__ __forceinline__ unsigned int sd_rand_bits(unsigned int i, unsigned int seed, unsigned int step, unsigned int stream) {{
    unsigned int x = (i * 0x{R.GOLDEN:08X}u) ^ (seed * 0x{R.SEED_MUL:08X}u) ^ (step * 0x{R.STEP_MUL:08X}u) ^ (stream * 0x{R.STREAM_MUL:08X}u);
    for (int r = 0; r < {R.ROUNDS}; ++r) {{
        x ^= x >> 16;
        x *= 0x{R.MIX1:08X}u;
        x ^= x >> 15;
        x *= 0x{R.MIX2:08X}u;
        x ^= x >> 16;
    }}
    return x >> 8;
}}"""),
    "SdSum": ((), """\
struct SdSum {
    template <typename T> __device__ __forceinline__ T operator()(T a, T b) const { return a + b; }
};"""),
    "SdMax": (("sd_max",), """\
struct SdMax {
    template <typename T> __device__ __forceinline__ T operator()(T a, T b) const { return sd_max(a, b); }
};"""),
    "SdProd": ((), """\
struct SdProd {
    template <typename T> __device__ __forceinline__ T operator()(T a, T b) const { return a * b; }
};"""),
    "sd_warp_allreduce": ((), """\
// butterfly reduction over the 32 lanes of a warp: every lane gets the same result
template <typename T, typename Op>
__device__ __forceinline__ T sd_warp_allreduce(T v, Op op) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v = op(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}"""),
    "sd_block_allreduce": (("sd_warp_allreduce",), """\
// reduction over a 1-D block (blockDim.x a multiple of 32): warps reduce with shuffles, warp results
// meet in `scratch` (32 elements of shared memory); every thread gets the result; all must call it
template <typename T, typename Op>
__device__ __forceinline__ T sd_block_allreduce(T v, T* scratch, Op op, T ident) {
    const int lane = (int)(threadIdx.x & 31u), warp = (int)(threadIdx.x >> 5);
    const int nwarps = (int)((blockDim.x + 31u) >> 5);
    v = sd_warp_allreduce(v, op);
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    v = lane < nwarps ? scratch[lane] : ident;
    v = sd_warp_allreduce(v, op);
    __syncthreads();  // scratch may be reused after this
    return v;
}"""),
    "sd_atomic_mul": ((), """\
// *p *= v atomically (scatter_mul): a compare-and-swap loop on the bit pattern
__device__ __forceinline__ void sd_atomic_mul(float* p, float v) {
    unsigned int* q = (unsigned int*)p;
    unsigned int old = *q, seen;
    do { seen = old; old = atomicCAS(q, seen, __float_as_uint(__uint_as_float(seen) * v)); } while (old != seen);
}
__device__ __forceinline__ void sd_atomic_mul(double* p, double v) {
    unsigned long long* q = (unsigned long long*)p;
    unsigned long long old = *q, seen;
    do {
        seen = old;
        old = atomicCAS(q, seen, (unsigned long long)__double_as_longlong(__longlong_as_double((long long)seen) * v));
    } while (old != seen);
}"""),
    "sd_sorts_before": ((), """\
// (a, ia) sorts before (b, ib): a < b with NaN greatest, ties (equal, or both NaN) by index: a stable order
template <typename T, typename I>
__device__ __forceinline__ int sd_sorts_before(T a, I ia, T b, I ib) {
    const bool an = a != a, bn = b != b;
    const bool lt = a < b || (bn && !an), gt = a > b || (an && !bn);
    return (lt || (!gt && ia < ib)) ? 1 : 0;
}"""),
    "sd_heap_argsort": (("sd_sorts_before",), """\
// argsort of one long row in place in o (a max-heap under sd_sorts_before): entry j of the row is at
// base + j * st in both x and o; O(L log L) for one thread
template <typename T, typename I>
__device__ void sd_heap_sift(const T* x, long long* o, I base, I st, I root, I end) {
    for (;;) {
        I child = 2 * root + 1;
        if (child >= end) return;
        long long ic = o[base + child * st];
        if (child + 1 < end) {
            const long long ir = o[base + (child + 1) * st];
            if (sd_sorts_before(x[base + ic * st], ic, x[base + ir * st], ir)) { child += 1; ic = ir; }
        }
        const long long it = o[base + root * st];
        if (!sd_sorts_before(x[base + it * st], it, x[base + ic * st], ic)) return;
        o[base + root * st] = ic;
        o[base + child * st] = it;
        root = child;
    }
}
template <typename T, typename I>
__device__ void sd_heap_argsort(const T* x, long long* o, I base, I st, I L) {
    for (I j = 0; j < L; ++j) o[base + j * st] = j;
    for (I s = L / 2 - 1; s >= 0; --s) sd_heap_sift(x, o, base, st, s, L);
    for (I e = L - 1; e > 0; --e) {
        const long long t = o[base];
        o[base] = o[base + e * st];
        o[base + e * st] = t;
        sd_heap_sift(x, o, base, st, (I)0, e);
    }
}"""),
}
HELPERS.update(dtype_rules.HELPERS)  # integer / NumPy floor division (cuda/dtype_rules.py)
