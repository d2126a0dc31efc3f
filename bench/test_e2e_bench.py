"""End-to-end benchmarks (pytest-benchmark): turbows's asyncio echo server over 127.0.0.1.

The server runs in its own process (pinned to core 0 when there are two cores), on each codec
(the ``python`` case sets ``TURBOWS_NO_EXTENSIONS=1`` in the server), driven by the raw-socket
client of ``python -m turbows.bench --only e2e`` (:mod:`turbows.bench.e2e`), which also runs the
peers and the raw TCP echo side by side. Every benchmark is bounded: a fixed number of rounds,
and the server stops when the test ends (or by itself, when this process goes away).
"""

from __future__ import annotations

from collections.abc import Iterator
from types import ModuleType
from typing import Any

import pytest

from turbows.bench import _data, _echo_client, e2e

RR_SIZES = [32, 1024, 64 * 1024]


def _size_id(size: int) -> str:
    return _data.human_size(size).replace(" ", "")


@pytest.fixture(params=["asyncio", "uvloop"])
def server(request: pytest.FixtureRequest, codec: ModuleType) -> Iterator[e2e.ServerProcess]:
    """A turbows echo server on the codec under benchmark and the given loop."""
    if request.param == "uvloop":
        pytest.importorskip("uvloop")
    pure = codec.__name__ == "turbows._codec_py"
    process = e2e.ServerProcess("turbows", request.param, pure=pure)
    try:
        yield process
    finally:
        process.stop()


@pytest.mark.parametrize("size", RR_SIZES, ids=_size_id)
def test_echo_round_trip(benchmark: Any, server: e2e.ServerProcess, size: int) -> None:
    round_trip = _echo_client.RoundTrip(_echo_client.Endpoint(server.port, True), size)
    try:
        benchmark.extra_info["bytes"] = size
        benchmark.pedantic(round_trip, args=(100,), rounds=20, warmup_rounds=2)
    finally:
        round_trip.close()


def test_echo_50_connections(benchmark: Any, server: e2e.ServerProcess) -> None:
    load = _echo_client.Concurrent(_echo_client.Endpoint(server.port, True), 32, 50)
    try:
        benchmark.extra_info["messages"] = 1000
        benchmark.pedantic(load, args=(1000,), rounds=20, warmup_rounds=2)
    finally:
        load.close()
