"""symdiff.codegen: from a simplified graph to machine code.

Installed as ``symdiff.codegen`` (setuptools maps this folder into the symdiff package). Stages:
``lower`` (graph -> kernel IR, ``kernel_ir``), renderers (``llvm/`` with the GEMM generator in
``llvm/gemm/``, ``cuda/``), and what runs the result (``runtime/``: the C extension, thread pool and
export of a standalone library); ``cache`` stores compiled artefacts.
"""
