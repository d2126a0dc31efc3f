"""The end-to-end suite's server and client run on separate cores."""

from __future__ import annotations

import os

import pytest

from turbows.bench import e2e


@pytest.mark.skipif(
    not hasattr(os, "sched_setaffinity")
    or not {e2e.SERVER_CORE, e2e.CLIENT_CORE} <= os.sched_getaffinity(0),
    reason="needs cores 0 and 1",
)
def test_a_server_started_after_the_client_is_pinned_still_gets_its_own_core() -> None:
    before = os.sched_getaffinity(0)
    try:
        e2e._pin_client()
        assert os.sched_getaffinity(0) == {e2e.CLIENT_CORE}
        server = e2e._shared_server("raw", "asyncio")
        assert os.sched_getaffinity(server.pid) == {e2e.SERVER_CORE}
        # The one-core round trip's server shares the client's core, on purpose.
        shared = e2e._shared_server("raw", "asyncio", e2e.CLIENT_CORE)
        assert shared is not server
        assert os.sched_getaffinity(shared.pid) == {e2e.CLIENT_CORE}
    finally:
        e2e.stop_servers()
    assert os.sched_getaffinity(0) == before
