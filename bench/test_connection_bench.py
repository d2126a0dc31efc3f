"""Connection benchmarks (pytest-benchmark): the sans-I/O ``ServerConnection`` on each codec.

The same inputs and the same in-memory handshake as ``python -m turbows.bench --only
connection`` (:mod:`turbows.bench.connection`), which also runs the peers side by side.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

import pytest

from turbows.bench import _data
from turbows.bench._peer_connections import traced_bytes_per_object
from turbows.bench.connection import open_server

FRAME_SIZES = [16, 125, 1024]
BATCH = 1000


def _size_id(size: int) -> str:
    return _data.human_size(size).replace(" ", "")


@pytest.mark.parametrize("size", FRAME_SIZES, ids=_size_id)
def test_server_receive_path(benchmark: Any, codec: ModuleType, size: int) -> None:
    stream = _data.masked_text_stream(size, 256 * 1024)
    chunks = stream.chunks
    server = open_server(codec)
    receive = server.receive_data
    events = server.events

    def receive_stream() -> Any:
        count = 0
        last = None
        for chunk in chunks:
            receive(chunk)
            got = events()
            count += len(got)
            last = got[-1] if got else last
        return count, last

    benchmark.extra_info["frames"] = stream.frames
    count, last = benchmark(receive_stream)
    assert count == stream.frames and last.data == stream.last_text


def test_server_send_path(benchmark: Any, codec: ModuleType) -> None:
    payload = _data.ascii_text(125, salt=1)
    server = open_server(codec)
    send_text = server.send_text

    def send_batch() -> bytes:
        for _ in range(BATCH):
            send_text(payload)
        return server.data_to_send()  # type: ignore[no-any-return]

    benchmark.extra_info["frames"] = BATCH
    assert benchmark(send_batch) == _data.encode_frame(0x1, payload.encode()) * BATCH


def test_open_connection_footprint(codec: ModuleType) -> None:
    """Not timed: the bytes one OPEN connection holds (issue 3: at most 2 KiB)."""
    per_connection = traced_bytes_per_object(lambda: open_server(codec))
    print(f"\n{codec.__name__}: {per_connection:.0f} B per open ServerConnection")
    assert per_connection <= 2048
