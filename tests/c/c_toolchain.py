"""Whether the tests that build C themselves can: a compiler that works, and AddressSanitizer.

A compiler on PATH is not enough: on musllinux there is no libasan, on Windows a MinGW gcc may
be found that cannot build for this Python, and a wheel's test run has no compiler at all. Each
check compiles, links and runs a tiny program once per session. When a check fails the test is
skipped with the reason, unless ``TURBOWS_REQUIRE_CC=1`` is set (the CI step that runs these
tests with the toolchain on purpose): then it fails, so that these tests cannot be lost to a
skip.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sysconfig
import tempfile
from pathlib import Path
from typing import NoReturn, Optional, Sequence, Tuple

import pytest

_PROGRAM = (
    "#include <stdlib.h>\nint main(void) { char *p = malloc(4); p[0] = 0; free(p); return 0; }\n"
)


def _flag(name: str) -> bool:
    return os.environ.get(name, "") not in ("", "0")


def unavailable(reason: str) -> NoReturn:
    """Skip the calling test, or fail it when the toolchain is required."""
    if _flag("TURBOWS_REQUIRE_CC"):
        pytest.fail(f"TURBOWS_REQUIRE_CC is set but {reason}", pytrace=False)
    pytest.skip(reason)


@functools.lru_cache(maxsize=None)
def try_build(cc: str, flags: Tuple[str, ...] = ()) -> Optional[str]:
    """Compile, link and run a tiny C program with ``cc`` and ``flags``; None if all went
    well, else what failed."""
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "probe.c"
        exe = Path(tmp) / "probe"
        src.write_text(_PROGRAM)
        try:
            built = subprocess.run(
                [*cc.split(), *flags, str(src), "-o", str(exe)],
                capture_output=True,
                text=True,
                timeout=120,
            )
            if built.returncode != 0:
                return (
                    f"{cc} {' '.join(flags)} cannot build a program: {built.stderr.strip()[-300:]}"
                )
            ran = subprocess.run(
                [str(exe)],
                capture_output=True,
                text=True,
                timeout=60,
                env=dict(os.environ, ASAN_OPTIONS="detect_leaks=0"),
            )
        except (OSError, subprocess.SubprocessError) as exc:
            return f"{cc} {' '.join(flags)}: {exc}"
        if ran.returncode != 0:
            return f"a program built by {cc} {' '.join(flags)} fails: {ran.stderr.strip()[-300:]}"
    return None


def find_compiler(candidates: Sequence[Optional[str]]) -> Tuple[Optional[str], str]:
    """The first candidate found on PATH that builds a working program, or None and why."""
    reasons = []
    for name in candidates:
        if not name:
            continue
        path = shutil.which(name.split()[0])
        if path is None:
            reasons.append(f"{name.split()[0]} not found")
            continue
        cc = " ".join([path, *name.split()[1:]])
        failure = try_build(cc)
        if failure is None:
            return cc, ""
        reasons.append(failure)
    return None, "no working C compiler (" + "; ".join(reasons) + ")"


def kernel_test_compiler() -> Tuple[Optional[str], str]:
    """The compiler for the standalone kernel tests: $CC, gcc, cc or clang."""
    return find_compiler((os.environ.get("CC"), "gcc", "cc", "clang"))


def extension_compiler() -> Tuple[Optional[str], str]:
    """The compiler setuptools uses for extensions of this Python ($CC, else sysconfig's)."""
    return find_compiler((os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc",))


SANITIZERS = ("-fsanitize=address,undefined", "-fno-omit-frame-pointer")


def sanitizer_failure(cc: str) -> Optional[str]:
    """None if ``cc`` builds and runs a program with ASan and UBSan, else why not."""
    return try_build(cc, SANITIZERS)
