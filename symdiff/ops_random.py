"""Counter-based random numbers inside a compiled graph: the ``rand_uniform`` op.

``rand_uniform(seed, step; shape, dtype, stream)`` is a tensor of i.i.d.-looking uniform numbers in
[0, 1) whose value at every flat index is a *pure function* of (seed, step, stream, index): there is no
generator state. A compiled kernel evaluates it where it is used, forward and backward read the same
node, and every backend computes bit-identical numbers. It is what ``symdiff.nn.Dropout`` draws its
masks from.

Operands and attributes
    ``seed``, ``step``: int32/int64 scalar tensors (normally graph inputs: a run seed and the training
    step counter). ``shape``: the output shape. ``dtype``: float32 or float64. ``stream``: an int in
    [0, 2**32) that separates independent streams in one graph (each dropout layer has its own).

The exact algorithm (every backend must implement exactly this)
    All arithmetic is on unsigned 32-bit integers, modulo 2**32 (wraparound multiplication), ``^`` is
    bitwise xor and ``>>`` a logical shift::

        s = seed  mod 2**32      (the low 32 bits of the two's-complement value; -1 -> 0xFFFFFFFF)
        t = step  mod 2**32
        k = stream mod 2**32
        for each flat (row-major / C-order) index i = 0 .. size-1, with i taken mod 2**32:
            x = (i * 0x9E3779B1) ^ (s * 0x85EBCA77) ^ (t * 0xC2B2AE3D) ^ (k * 0x27D4EB2F)
            repeat 2 times:
                x ^= x >> 16
                x *= 0x7FEB352D
                x ^= x >> 15
                x *= 0x846CA68B
                x ^= x >> 16
            out[i] = (x >> 8) * 2**-24        # a multiple of 2**-24 in [0, 1 - 2**-24]: exact in float32/64

    With ``stream = 0`` the last xor term vanishes. The mixing rounds are Chris Wellons' ``lowbias32``
    integer hash. The conversion is exact (a 24-bit integer times a power of two), so backends agree
    to the last bit; comparisons against it (``u >= p``) do too.

Differentiation: the op is not differentiable (its operands are integers); its vjp is ``None``.
"""
from __future__ import annotations

import numbers

import numpy as np

from . import dims as _dims
from . import dtypes as _dt
from .ir import Node, apply, const
from .optable import OpDef, register

MASK32 = 0xFFFFFFFF
GOLDEN = 0x9E3779B1  # multiplier of the flat index
SEED_MUL = 0x85EBCA77
STEP_MUL = 0xC2B2AE3D
STREAM_MUL = 0x27D4EB2F
MIX1 = 0x7FEB352D
MIX2 = 0x846CA68B
ROUNDS = 2


def _scalar_u32(a) -> int:
    return int(np.asarray(a).reshape(())) & MASK32  # Python ints: two's complement low 32 bits


def rand_uniform_np(seed, step, shape, dtype="float32", stream=0) -> np.ndarray:
    """The NumPy implementation (uint32 wraparound arithmetic, vectorised over the flat index)."""
    shape = tuple(int(s) for s in shape)
    size = int(np.prod(shape, dtype=np.int64))
    base = ((_scalar_u32(seed) * SEED_MUL) ^ (_scalar_u32(step) * STEP_MUL) ^ ((int(stream) & MASK32) * STREAM_MUL)) & MASK32
    idx = np.arange(size, dtype=np.uint64)
    x = (idx & np.uint64(MASK32)).astype(np.uint32)
    x *= np.uint32(GOLDEN)  # array arithmetic wraps modulo 2**32 silently
    x ^= np.uint32(base)
    for _ in range(ROUNDS):
        x ^= x >> np.uint32(16)
        x *= np.uint32(MIX1)
        x ^= x >> np.uint32(15)
        x *= np.uint32(MIX2)
        x ^= x >> np.uint32(16)
    u = (x >> np.uint32(8)).astype(dtype) * np.asarray(2.0 ** -24, dtype=dtype)
    return u.reshape(shape)


def _rand_infer(inputs, attrs):
    if len(inputs) != 2:
        raise TypeError(f"rand_uniform: expected 2 operands (seed, step), got {len(inputs)}")
    for what, t in zip(("seed", "step"), inputs):
        if t.dtype not in _dt.INT_DTYPES or t.shape != ():
            raise TypeError(f"rand_uniform: {what} must be an int32/int64 scalar tensor, got {t.dtype}{list(t.shape)} "
                            f"({t.name or t.op!r})")
    shape = tuple(attrs["shape"])
    if any(not isinstance(s, _dims.Dim) and (not isinstance(s, numbers.Integral) or s < 0) for s in shape):
        raise ValueError(f"rand_uniform: shape entries must be non-negative integers or symbolic sizes, got {shape}")
    dtype = _dt.normalize(attrs["dtype"])
    if not _dt.is_float(dtype):
        raise TypeError(f"rand_uniform: dtype must be float32 or float64, got {dtype}")
    stream = attrs.get("stream", 0)
    if not isinstance(stream, numbers.Integral) or not 0 <= stream <= MASK32:
        raise ValueError(f"rand_uniform: stream must be an int in [0, 2**32), got {stream!r}")
    return shape, dtype


register(OpDef("rand_uniform", _rand_infer, rand_uniform_np, vjp=lambda node, g: [None, None], arity=2,
               differentiable=False, cost_class="cheap",
               doc="counter-based uniform [0,1) numbers: a pure uint32 hash of (seed, step, stream, flat index)"))


def _int_scalar(v, what: str) -> Node:
    if isinstance(v, Node):
        return v
    if isinstance(v, numbers.Integral) and not isinstance(v, bool):
        return const(np.int64(v), "int64")
    raise TypeError(f"rand_uniform: {what} must be an int scalar tensor or a Python int, got {type(v).__name__}")


def rand_uniform(seed, step, shape, dtype: str = "float32", stream: int = 0) -> Node:
    """Uniform [0, 1) numbers of ``shape`` from the counter-based hash of (seed, step, stream, index).

    ``seed``/``step``: int32/int64 scalar tensors (graph inputs) or Python ints. Identical arguments
    give the identical node (hash-consing), hence identical numbers, wherever it is used. ``shape`` may hold
    symbolic sizes (``x.shape`` of a ``("batch", ...)`` input); the number at a flat index does not depend
    on the shape, so with the batch as the leading axis a smaller batch draws the first rows of a larger one.
    """
    if isinstance(shape, (numbers.Integral, str, _dims.Dim)):
        shape = (shape,)
    return apply("rand_uniform", [_int_scalar(seed, "seed"), _int_scalar(step, "step")],
                 shape=tuple(_dims.as_dim(s) for s in shape), dtype=_dt.normalize(dtype), stream=int(stream) & MASK32)


__all__ = ["rand_uniform", "rand_uniform_np"]
