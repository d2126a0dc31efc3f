"""mypy --strict on small programs that use the public API the way users do: the good ones
pass, and each bad one fails on its marked line with the expected error code."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).parent
mypy = pytest.importorskip("mypy", reason="needs mypy (the test extra installs it)")


def _mypy(*paths: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", "--hide-error-context",
         "--config-file=", "--show-error-codes", *map(str, paths)],
        capture_output=True, text=True, timeout=300, cwd=HERE,
    )


def test_the_example_programs_pass_mypy_strict() -> None:
    result = _mypy(*sorted((HERE / "good").glob("*.py")))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("program", sorted((HERE / "bad").glob("*.py")), ids=lambda p: p.stem)
def test_each_mistake_is_caught_by_mypy_strict(program: Path) -> None:
    expected = {}
    for number, line in enumerate(program.read_text().splitlines(), 1):
        match = re.search(r"# expect: (\S+)", line)
        if match:
            expected[number] = match.group(1)
    assert expected, f"{program.name} marks no line"
    result = _mypy(program)
    found = {
        int(m.group(1)): m.group(2)
        for m in re.finditer(r":(\d+): error: .*\[([\w-]+)\]$", result.stdout, re.M)
    }
    assert found == expected, result.stdout
