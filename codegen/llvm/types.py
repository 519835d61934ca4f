"""The LLVM types the renderers use: i64 indices, opaque pointers, and the type of each dtype; stack slots
and constant arrays of them."""
from __future__ import annotations

import numpy as np
from llvmlite import ir

I64, I32, I8, PTR = ir.IntType(64), ir.IntType(32), ir.IntType(8), ir.PointerType()
FTYPE = {"float32": ir.FloatType(), "float64": ir.DoubleType()}
ITYPE = {"int32": ir.IntType(32), "int64": ir.IntType(64), "bool": I8}  # bool: i8 0/1, in memory and registers


def lltype(dtype: str) -> ir.Type:
    """The LLVM type of a symdiff dtype."""
    return FTYPE.get(dtype) or ITYPE[dtype]


def alloca(b: ir.IRBuilder, ty: ir.Type, name: str = "") -> ir.Value:
    """A stack slot typed as an opaque ``ptr`` (llvmlite's alloca still returns a typed pointer)."""
    a = b.alloca(ty, name=name)
    a.type = PTR
    return a


def constant_array(module: ir.Module, name: str, values, dtype: str) -> ir.GlobalVariable:
    """An internal constant global holding ``values`` (a flat array of ``dtype``), 64-byte aligned. Its
    initializer is the array's bytes, one i8 string: llvmlite formats it ~10x faster than one constant per
    element (an implicit GEMM's 25,664 offsets: 47 -> 5 ms) and LLVM parses it faster too. Readers index
    it with their own element type (opaque pointers)."""
    npt = np.uint8 if dtype == "bool" else np.dtype(dtype)  # (bool: i8 0/1, as numpy stores it)
    data = np.ascontiguousarray(np.asarray(values).reshape(-1), dtype=npt).tobytes()
    ty = ir.ArrayType(I8, max(len(data), 1))
    g = ir.GlobalVariable(module, ty, name=name)
    g.global_constant = True
    g.linkage = "internal"
    g.align = 64
    g.initializer = ir.Constant(ty, bytearray(data or b"\0"))
    return g


__all__ = ["I64", "I32", "I8", "PTR", "FTYPE", "ITYPE", "lltype", "alloca", "constant_array"]
