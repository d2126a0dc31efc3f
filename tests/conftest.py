"""Fixtures shared by every test directory.

The ``codec`` fixture runs a test once per codec implementation: the pure-Python twin
(``turbows._codec_py``, always) and the Cython extension (``turbows._speedups``, when it can be
imported). A missing extension skips the ``cython`` run, unless ``TURBOWS_REQUIRE_EXTENSIONS=1``
is set (CI, wheel builds): then it fails, so that a broken build cannot pass as a skipped test.

Hypothesis profiles: ``ci`` (the default) and ``dev`` (fewer examples, for quick local runs),
picked with ``HYPOTHESIS_PROFILE=dev``.
"""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path
from types import ModuleType
from typing import Optional

import pytest
from hypothesis import HealthCheck, settings

# Test modules are imported with --import-mode=importlib (pyproject.toml), so that folders may
# hold test files of the same name; their helper modules (conn_helpers, codec_strategies, ...)
# are then found through these paths.
for _folder in sorted(Path(__file__).parent.iterdir()):
    if _folder.is_dir() and not _folder.name.startswith((".", "_")):
        sys.path.insert(0, str(_folder))

settings.register_profile(
    "ci",
    max_examples=200,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "dev",
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def _flag(name: str) -> bool:
    # Same convention as setup.py and turbows.codec: any non-empty value but "0" is on.
    return os.environ.get(name, "") not in ("", "0")


REQUIRE_EXTENSIONS = _flag("TURBOWS_REQUIRE_EXTENSIONS")

CODEC_IMPLEMENTATIONS = ("python", "cython")
_MODULES = {"python": "turbows._codec_py", "cython": "turbows._speedups"}


def _load(name: str) -> ModuleType:
    """Import one codec implementation, or skip/fail the requesting test if it is missing."""
    module_name = _MODULES[name]
    try:
        return importlib.import_module(module_name)
    except ImportError as exc:
        if name == "python" or REQUIRE_EXTENSIONS:
            pytest.fail(
                f"{module_name} cannot be imported ({exc!r}) but TURBOWS_REQUIRE_EXTENSIONS is"
                " set: the extension build is broken",
                pytrace=False,
            )
        pytest.skip(f"{module_name} is not built ({exc})")


def speedups_or_none() -> Optional[ModuleType]:
    """The Cython codec if it can be imported, else None (for module-level decisions)."""
    try:
        return importlib.import_module(_MODULES["cython"])
    except ImportError:
        return None


@pytest.fixture(scope="session", params=CODEC_IMPLEMENTATIONS)
def codec(request: pytest.FixtureRequest) -> ModuleType:
    """The codec module under test: ``turbows._codec_py`` or ``turbows._speedups``."""
    return _load(request.param)


@pytest.fixture(scope="session")
def python_codec() -> ModuleType:
    """The pure-Python codec, the reference for differential tests."""
    return _load("python")


@pytest.fixture(scope="session")
def cython_codec() -> ModuleType:
    """The Cython codec alone (skipped, or failed under TURBOWS_REQUIRE_EXTENSIONS, if absent)."""
    return _load("cython")


@pytest.fixture(scope="session")
def tls_certificate(tmp_path_factory: pytest.TempPathFactory) -> "tuple[Path, Path]":
    """A self-signed certificate for ``localhost`` and 127.0.0.1 and its key (PEM files),
    made by the openssl command line; skips the test without it."""
    import shutil
    import subprocess

    if shutil.which("openssl") is None:
        pytest.skip("needs openssl")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
            "-keyout", str(key), "-out", str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return cert, key
