"""Build the C extension with AddressSanitizer + UndefinedBehaviorSanitizer and fuzz it.

The build goes to a temporary copy of the sources; the differential fuzzer in
``fuzz_codec.py`` then runs against it with Python's allocator switched to malloc, so that
ASan sees every object allocation. Any out-of-bounds access, use after free or undefined
behaviour aborts the child process and fails the test.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SECONDS = os.environ.get("FASTWS_FUZZ_SECONDS", "20")


def _libasan() -> str:
    cc = sysconfig.get_config_var("CC") or "cc"
    try:
        out = subprocess.run(
            [cc.split()[0], "-print-file-name=libasan.so"],
            capture_output=True, text=True, check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return ""
    return out if os.path.isabs(out) and os.path.exists(out) else ""


@pytest.mark.skipif(sys.platform != "linux", reason="sanitizer build tested on Linux")
def test_extension_is_clean_under_asan_and_ubsan_while_fuzzed(tmp_path: Path) -> None:
    pytest.importorskip("Cython")
    libasan = _libasan()
    if not libasan:
        pytest.skip("no libasan for the C compiler")
    if not (ROOT / "src" / "fastws" / "_speedups.pyx").exists():
        pytest.skip("source tree not available")
    work = tmp_path / "src"
    shutil.copytree(
        ROOT / "src", work / "src",
        ignore=shutil.ignore_patterns("*.so", "*.pyd", "_speedups.c", "__pycache__"),
    )
    for name in ("setup.py", "pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, work / name)
    flags = "-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer -O1 -g"
    env = dict(os.environ, CFLAGS=flags, LDFLAGS="-fsanitize=address,undefined",
               FASTWS_REQUIRE_EXTENSIONS="1")
    env.pop("FASTWS_NO_EXTENSIONS", None)
    build = subprocess.run(
        [sys.executable, "setup.py", "build_ext", "--inplace"],
        cwd=work, env=env, capture_output=True, text=True,
    )
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    run_env = dict(
        env,
        PYTHONPATH=str(work / "src"),
        PYTHONMALLOC="malloc",
        LD_PRELOAD=libasan,
        ASAN_OPTIONS="detect_leaks=0:abort_on_error=1",
        UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1",
    )
    fuzz = subprocess.run(
        [sys.executable, str(Path(__file__).with_name("fuzz_codec.py")), SECONDS, "12345"],
        cwd=tmp_path, env=run_env, capture_output=True, text=True, timeout=600,
    )
    assert fuzz.returncode == 0, fuzz.stdout[-3000:] + fuzz.stderr[-6000:]
    assert "no difference" in fuzz.stdout
    assert "ERROR: AddressSanitizer" not in fuzz.stderr
    assert "runtime error" not in fuzz.stderr, fuzz.stderr[-6000:]
