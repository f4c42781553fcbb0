# The C kernels are optional: if no compiler is available the build still succeeds and
# retrievekit falls back to its numpy implementation (same results, slower).
from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "retrievekit.index._kernels",
            ["src/retrievekit/index/_kernels.c"],
            extra_compile_args=["-O3"],
            optional=True,
        )
    ]
)
