"""The Autobahn|Testsuite against turbows, server and client, C and pure-Python codecs.

Needs ``wstest`` (``TURBOWS_WSTEST``, see ``install.sh``); skipped without it, unless
``TURBOWS_REQUIRE_AUTOBAHN=1`` (set by ``.ci/run``) makes its absence a failure. The slowest
compression cases are left out here (``suite.quick_exclusions``); ``python
tests/autobahn/suite.py server`` runs them all.
"""

from __future__ import annotations

import os
import shlex
from pathlib import Path

import pytest
import suite

import turbows

WSTEST = os.environ.get("TURBOWS_WSTEST", "")
REQUIRED = os.environ.get("TURBOWS_REQUIRE_AUTOBAHN") == "1"

pytestmark = pytest.mark.skipif(
    not WSTEST and not REQUIRED, reason="no wstest (TURBOWS_WSTEST); see tests/autobahn"
)


@pytest.mark.parametrize("codec", ["cython", "python"])
@pytest.mark.parametrize("mode", ["server", "client"])
def test_autobahn_suite(mode: str, codec: str, tmp_path: Path) -> None:
    assert WSTEST, "TURBOWS_REQUIRE_AUTOBAHN=1 but TURBOWS_WSTEST is not set"
    if codec == "cython" and turbows.IMPLEMENTATION != "cython":
        pytest.skip("the compiled extension is not built")
    env = {"TURBOWS_NO_EXTENSIONS": "1" if codec == "python" else ""}
    results = suite.run(
        mode, shlex.split(WSTEST), tmp_path, ["*"], suite.quick_exclusions(), env=env
    )
    # Every case of sections 1 to 13 but the excluded ones: none may go missing.
    assert len(results) >= 400, suite.summary(results)
    failed = suite.failures(results)
    assert not failed, {case: results[case] for case in failed}
    # The testee really ran on the codec asked for.
    log = (tmp_path / "log.txt").read_text()
    assert f"codec {codec}" in log, log[:2000]


def test_autobahn_suite_server_on_uvloop(tmp_path: Path) -> None:
    assert WSTEST, "TURBOWS_REQUIRE_AUTOBAHN=1 but TURBOWS_WSTEST is not set"
    pytest.importorskip("uvloop")
    results = suite.run(
        "server", shlex.split(WSTEST), tmp_path, ["*"], suite.quick_exclusions(), uvloop=True
    )
    assert len(results) >= 400, suite.summary(results)
    failed = suite.failures(results)
    assert not failed, {case: results[case] for case in failed}
    assert "loop uvloop." in (tmp_path / "log.txt").read_text()


def test_autobahn_suite_sync_client(tmp_path: Path) -> None:
    """turbows.sync's blocking client against ``wstest -m fuzzingserver``, same bar."""
    assert WSTEST, "TURBOWS_REQUIRE_AUTOBAHN=1 but TURBOWS_WSTEST is not set"
    cases, exclude = suite.sync_client_selection()
    results = suite.run("client", shlex.split(WSTEST), tmp_path, cases, exclude, sync=True)
    assert len(results) >= 320, suite.summary(results)
    failed = suite.failures(results)
    assert not failed, {case: results[case] for case in failed}
    assert "client: turbows.sync" in (tmp_path / "log.txt").read_text()
