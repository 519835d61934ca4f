"""The LLVM types the renderers use: i64 indices, opaque pointers, and the type of each dtype."""
from __future__ import annotations

from llvmlite import ir

I64, I32, I8, PTR = ir.IntType(64), ir.IntType(32), ir.IntType(8), ir.PointerType()
FTYPE = {"float32": ir.FloatType(), "float64": ir.DoubleType()}
ITYPE = {"int32": ir.IntType(32), "int64": ir.IntType(64), "bool": I8}  # bool: i8 0/1, in memory and registers


def lltype(dtype: str) -> ir.Type:
    """The LLVM type of a symdiff dtype."""
    return FTYPE.get(dtype) or ITYPE[dtype]


__all__ = ["I64", "I32", "I8", "PTR", "FTYPE", "ITYPE", "lltype"]
