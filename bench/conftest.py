"""pytest-benchmark suites of the turbows codec: ``pytest bench/``.

Every benchmark runs against both codecs through the ``codec`` fixture (``cython``: the
``turbows._speedups`` extension, skipped when it is not built; ``python``: the pure twin). The
suites live outside ``tests/`` and carry the ``bench`` marker, so the normal test run
(``pytest`` / ``pytest tests``) never collects them; ``pytest bench/ -m "not bench"`` deselects
them explicitly. The side-by-side comparison with the peers is ``python -m turbows.bench``.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from types import ModuleType

import pytest

try:
    import turbows  # noqa: F401
except ImportError:  # running from a checkout without installing: use the source tree
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

CODECS = {"cython": "turbows._speedups", "python": "turbows._codec_py"}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "bench: a benchmark (pytest-benchmark), not a test")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        item.add_marker(pytest.mark.bench)


@pytest.fixture(params=sorted(CODECS), ids=str)
def codec(request: pytest.FixtureRequest) -> ModuleType:
    """The codec module under benchmark: the Cython extension or the pure-Python twin."""
    try:
        return importlib.import_module(CODECS[request.param])
    except ImportError as exc:
        pytest.skip(f"{CODECS[request.param]} is not built: {exc}")
