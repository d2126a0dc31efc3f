"""Build the C extensions with AddressSanitizer + UndefinedBehaviorSanitizer and run them.

The build goes to a temporary copy of the sources. The differential fuzzer in
``fuzz_codec.py`` runs against it, then the compiled socket transport's tests do, each in a
child process with Python's allocator switched to malloc, so that ASan sees every object
allocation. Any out-of-bounds access, use after free or undefined behaviour aborts the child
process and fails the test.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Dict

import pytest

from c_toolchain import extension_compiler, sanitizer_failure, unavailable

ROOT = Path(__file__).resolve().parents[2]
SECONDS = os.environ.get("TURBOWS_FUZZ_SECONDS", "20")


def _libasan(cc: str) -> str:
    try:
        out = subprocess.run(
            [cc.split()[0], "-print-file-name=libasan.so"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return ""
    return out if os.path.isabs(out) and os.path.exists(out) else ""


@pytest.fixture(scope="module")
def sanitized(tmp_path_factory: pytest.TempPathFactory) -> Dict[str, str]:
    """Build the extensions with ASan + UBSan in a copy of the sources; return the
    environment that runs Python against that build."""
    if sys.platform != "linux":
        pytest.skip("sanitizer build tested on Linux")
    pytest.importorskip("Cython")
    if not (ROOT / "src" / "turbows" / "_speedups.pyx").exists():
        unavailable(f"the sources are not in this tree ({ROOT / 'src'}): tests run from a copy")
    cc, why = extension_compiler()
    if cc is None:
        unavailable(why)
    failure = sanitizer_failure(cc)
    if failure is not None:
        unavailable(f"AddressSanitizer/UBSan do not link or run: {failure}")
    libasan = _libasan(cc)
    if not libasan:
        unavailable(f"{cc} -print-file-name=libasan.so names no libasan")
    work = tmp_path_factory.mktemp("asan") / "src"
    shutil.copytree(
        ROOT / "src",
        work / "src",
        ignore=shutil.ignore_patterns("*.so", "*.pyd", "_speedups.c", "_fastio.c", "__pycache__"),
    )
    for name in ("setup.py", "pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, work / name)
    flags = "-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer -O1 -g"
    env = dict(
        os.environ,
        CFLAGS=flags,
        LDFLAGS="-fsanitize=address,undefined",
        TURBOWS_REQUIRE_EXTENSIONS="1",
    )
    env.pop("TURBOWS_NO_EXTENSIONS", None)
    build = subprocess.run(
        [sys.executable, "setup.py", "build_ext", "--inplace"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
    )
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    return dict(
        env,
        PYTHONPATH=str(work / "src"),
        PYTHONMALLOC="malloc",
        LD_PRELOAD=libasan,
        ASAN_OPTIONS="detect_leaks=0:abort_on_error=1",
        UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1",
    )


def _clean(run: "subprocess.CompletedProcess[str]") -> None:
    assert "ERROR: AddressSanitizer" not in run.stderr, run.stderr[-6000:]
    assert "runtime error" not in run.stderr, run.stderr[-6000:]


def test_extension_is_clean_under_asan_and_ubsan_while_fuzzed(
    sanitized: Dict[str, str], tmp_path: Path
) -> None:
    fuzz = subprocess.run(
        [sys.executable, str(Path(__file__).with_name("fuzz_codec.py")), SECONDS, "12345"],
        cwd=tmp_path,
        env=sanitized,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert fuzz.returncode == 0, fuzz.stdout[-3000:] + fuzz.stderr[-6000:]
    assert "no difference" in fuzz.stdout
    _clean(fuzz)


def test_compiled_transport_is_clean_under_asan_and_ubsan(sanitized: Dict[str, str]) -> None:
    """The socket transport's tests (reads parsed in place, writes of unbuilt frames, partial
    writes, slow readers, flow control, a loop closed with connections open, fork) against
    the sanitized build."""
    where = subprocess.run(
        [sys.executable, "-c", "import turbows.asyncio._fastio as m; print(m.__file__)"],
        env=sanitized,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert where.returncode == 0, where.stderr[-3000:]
    assert where.stdout.startswith(sanitized["PYTHONPATH"]), where.stdout
    tests = ROOT / "tests" / "asyncio"
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            str(tests / "test_fast_transport.py"),
            str(tests / "test_fast_transport_edges.py"),
            str(tests / "test_echo.py"),
            str(tests / "test_flow_control.py"),
        ],
        cwd=ROOT / "tests",
        env=sanitized,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-6000:]
    assert " passed" in run.stdout.splitlines()[-1] and " failed" not in run.stdout
    _clean(run)


def test_codec_objects_hammered_by_threads_are_clean_under_asan_and_ubsan(
    sanitized: Dict[str, str],
) -> None:
    """tests/codec/threaded_stress.py against the sanitized build: every codec object shared
    by several threads, large payloads, buffers resized meanwhile."""
    stress = ROOT / "tests" / "codec" / "threaded_stress.py"
    run = subprocess.run(
        [sys.executable, str(stress), "turbows._speedups", "all", "2"],
        env=sanitized,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-6000:]
    assert run.stdout.splitlines()[-1] == "ok", run.stdout
    _clean(run)
