"""Codec objects used from several threads: misuse is reported, never a crash.

The stress runs happen in a child process (``threaded_stress.py``), so that a crash of the
interpreter fails the test instead of killing the test run.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from types import ModuleType

STRESS = Path(__file__).with_name("threaded_stress.py")


def run_stress(module: str, scenarios: str, seconds: float) -> "subprocess.CompletedProcess[str]":
    """Run ``threaded_stress.py`` in a child process (shared with the sanitizer test)."""
    return subprocess.run(
        [sys.executable, str(STRESS), module, scenarios, str(seconds)],
        capture_output=True,
        text=True,
        timeout=300,
    )


def _check(run: "subprocess.CompletedProcess[str]") -> None:
    assert run.returncode == 0, (run.returncode, run.stdout[-2000:], run.stderr[-4000:])
    assert run.stdout.splitlines()[-1] == "ok", run.stdout


def test_apply_mask_inplace_on_a_bytearray_another_thread_resizes_never_crashes(
    codec: ModuleType,
) -> None:
    # 64 MiB masked with the GIL released while a second thread clears and refills the
    # bytearray: the resize fails with BufferError (the segfault of issue 16 before).
    run = run_stress(codec.__name__, "mask_inplace", 2)
    _check(run)
    assert "BufferError" in run.stdout, run.stdout
