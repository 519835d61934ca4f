"""Build the symdiff.codegen.runtime.native C extension (everything else is in pyproject.toml)."""
import sys

import numpy
from setuptools import Extension, setup

unix = sys.platform != "win32"

setup(
    ext_modules=[
        Extension(
            "symdiff.codegen.runtime.native",
            sources=[f"codegen/runtime/{f}.c" for f in (
                "native", "runtime_pool", "runtime_specs", "runtime_kernel", "runtime_kernel_type", "sd_pool")],
            depends=["codegen/runtime/runtime.h", "codegen/runtime/sd_pool.h"],
            include_dirs=[numpy.get_include(), "codegen/runtime"],
            define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
            extra_compile_args=["-pthread", "-fvisibility=hidden"] if unix else [],
            extra_link_args=["-pthread"] if unix else [],
        )
    ]
)
