"""Build script for the turbows C extension.

``TURBOWS_NO_EXTENSIONS=1`` skips the extension (pure-Python install). Without that, a failed
build falls back to pure Python with a warning, unless ``TURBOWS_REQUIRE_EXTENSIONS=1`` is set
(CI and wheel builds), in which case it is an error.
"""

import os
import sys
import warnings

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext
from setuptools.command.build_py import build_py


def _flag(name: str) -> bool:
    return os.environ.get(name, "") not in ("", "0")


NO_EXTENSIONS = _flag("TURBOWS_NO_EXTENSIONS")
REQUIRE_EXTENSIONS = _flag("TURBOWS_REQUIRE_EXTENSIONS")


# Written into the built package when an extension could not be built; turbows.codec reads it
# and warns at import time that the pure-Python codec runs. pip shows a build's output only
# when the build fails or with -v, so the warning below alone would go unseen.
FAILURE_MARKER = "_build_failure.txt"


class OptionalBuildExt(build_ext):
    """Build the extension, or warn and install pure Python if it cannot be built."""

    def run(self) -> None:
        self.failures: list = []
        try:
            super().run()
        except Exception as exc:  # noqa: BLE001 - any build failure
            self._fail(exc)
        self._write_failure_marker()

    def _write_failure_marker(self) -> None:
        if self.inplace:
            package = self.get_finalized_command("build_py").get_package_dir("turbows")
        else:
            package = os.path.join(self.build_lib, "turbows")
        marker = os.path.join(package, FAILURE_MARKER)
        if self.failures:
            os.makedirs(package, exist_ok=True)
            with open(marker, "w", encoding="utf-8") as f:
                f.write("\n".join(self.failures) + "\n")
        elif os.path.exists(marker):
            os.remove(marker)  # from an earlier in-place build that failed

    def build_extension(self, ext: Extension) -> None:
        try:
            super().build_extension(ext)
        except Exception as exc:  # noqa: BLE001 - compiler missing, compile error, ...
            self._fail(exc, ext.name)
            # Marked optional, setuptools skips the missing file when it copies an --inplace
            # build back to the sources (else that copy fails, and so do the other extensions).
            ext.optional = True

    def _fail(self, exc: Exception, name: str = "turbows._speedups") -> None:
        if REQUIRE_EXTENSIONS:
            raise
        self.failures.append(f"{name}: {exc}")
        fallback = {
            "turbows._speedups": "the pure-Python codec, which is much slower",
            "turbows.asyncio._fastio": "asyncio's own transports only",
            "turbows.bench._loadgen": "the benchmark's Python client, which caps its figures",
        }.get(name, "without it")
        warnings.warn(
            f"turbows: the C extension {name} could not be built ({exc}); installing {fallback}",
            stacklevel=1,
        )


# turbows-wsproto.pth, installed at the root of site-packages: at interpreter start-up it
# makes `import wsproto` give turbows.compat.wsproto, but only when TURBOWS_WSPROTO=1 is set;
# otherwise it costs one environment lookup and imports nothing.
WSPROTO_PTH = "turbows-wsproto.pth"
WSPROTO_PTH_LINE = (
    'import os; os.environ.get("TURBOWS_WSPROTO") == "1"'
    ' and __import__("turbows.compat").compat._startup()\n'
)


class BuildPyWithPth(build_py):
    """build_py that also writes turbows-wsproto.pth at the root of the build (purelib)."""

    def run(self) -> None:
        super().run()
        path = os.path.join(self.build_lib, WSPROTO_PTH)
        with open(path, "w", encoding="ascii") as f:
            f.write(WSPROTO_PTH_LINE)

    def get_outputs(self, include_bytecode: bool = True) -> list:
        return [*super().get_outputs(include_bytecode), os.path.join(self.build_lib, WSPROTO_PTH)]


def extensions() -> list:
    if NO_EXTENSIONS:
        return []
    try:
        from Cython.Build import cythonize
    except ImportError:
        if REQUIRE_EXTENSIONS:
            raise
        warnings.warn("turbows: Cython is not installed; installing the pure-Python codec")
        return []
    if sys.platform == "win32":
        cflags = ["/O2"]
    else:
        # Never -march=native: wheels must run on any CPU of the architecture; the kernels
        # pick AVX2/AVX-512/NEON at run time.
        cflags = ["-O3", "-fno-strict-aliasing"]
    ext = Extension(
        "turbows._speedups",
        sources=["src/turbows/_speedups.pyx", "src/turbows/_kernels/turbows_kernels.c"],
        include_dirs=["src/turbows/_kernels"],
        extra_compile_args=cflags,
        define_macros=[("CYTHON_TRACE", "0")],
    )
    exts = [ext]
    if sys.platform != "win32":
        # The asyncio layer's optional socket transport (POSIX sockets).
        exts.append(
            Extension(
                "turbows.asyncio._fastio",
                sources=["src/turbows/asyncio/_fastio.pyx"],
                extra_compile_args=cflags,
            )
        )
    if sys.platform.startswith("linux"):
        # The end-to-end benchmark's compiled client (epoll).
        exts.append(
            Extension(
                "turbows.bench._loadgen",
                sources=["src/turbows/bench/_loadgen.pyx"],
                extra_compile_args=cflags,
            )
        )
    return cythonize(
        exts,
        compiler_directives={"language_level": "3", "embedsignature": True},
        quiet=True,
    )


setup(
    ext_modules=extensions(),
    cmdclass={"build_ext": OptionalBuildExt, "build_py": BuildPyWithPth},
)
