"""The uvicorn servers of the e2e-uvicorn benchmarks start (uvicorn, httptools, the named
WebSocket class) and echo what the benchmark client sends, on one and on many
connections at once."""

from __future__ import annotations

import importlib.util

import pytest

from turbows.bench import _echo_client, _echo_servers, e2e

pytestmark = pytest.mark.skipif(
    any(importlib.util.find_spec(m) is None for m in ("uvicorn", "httptools", "wsproto")),
    reason="uvicorn, httptools or wsproto is not installed",
)


@pytest.mark.parametrize("impl", sorted(_echo_servers.UVICORN_WS))
def test_the_uvicorn_echo_server_echoes(impl: str) -> None:
    server = e2e.ServerProcess(impl, "asyncio", core=-1)
    try:
        endpoint = _echo_client.Endpoint(server.port, True)
        trip = _echo_client.RoundTrip(endpoint, 1024)
        trip(20)
        trip.close()
        concurrent = _echo_client.Concurrent(endpoint, 32, 10)
        concurrent(200)
        concurrent.close()
    finally:
        server.stop()
