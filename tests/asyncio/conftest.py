"""Every asyncio test runs on both server transports: the event loop's and turbows's own
compiled socket transport (``serve(..., fast_transport=True)``), which must behave the same."""

from __future__ import annotations

from typing import Iterator

import pytest

import turbows.asyncio._server as server_module

TRANSPORTS = ["loop"] + (["turbows"] if server_module.SocketTransport is not None else [])


@pytest.fixture(autouse=True, params=TRANSPORTS)
def server_transport(request: pytest.FixtureRequest) -> Iterator[str]:
    """The transport the servers of this test use by default."""
    saved = server_module.FAST_TRANSPORT_DEFAULT
    server_module.FAST_TRANSPORT_DEFAULT = request.param == "turbows"
    try:
        yield request.param
    finally:
        server_module.FAST_TRANSPORT_DEFAULT = saved
