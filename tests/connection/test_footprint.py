"""Memory per connection, and the contracts the receive fast path relies on."""

from __future__ import annotations

import gc
import tracemalloc

import pytest

from conn_helpers import client_frame, open_client, open_server

MAX_OPEN_CONNECTION_BYTES = 2048


@pytest.mark.parametrize("opener", [open_server, open_client], ids=["server", "client"])
def test_an_open_connection_takes_at_most_2_kib(codec, opener):
    opener(codec)  # warm up: imports, caches, codec free lists
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        connections = [opener(codec) for _ in range(100)]
        gc.collect()
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    per_connection = (after - before) / len(connections)
    assert per_connection <= MAX_OPEN_CONNECTION_BYTES, per_connection


def test_connections_have_no_instance_dict(codec):
    assert not hasattr(open_server(codec), "__dict__")
    assert not hasattr(open_client(codec), "__dict__")


def test_parser_returns_a_new_list_per_feed(codec):
    # The connection keeps the list feed() returns as its pending events when it has none.
    parser = codec.FrameParser(require_mask=True)
    frame = client_frame(codec, 1, "x")
    first = parser.feed(frame)
    second = parser.feed(frame)
    assert first is not second and first == second == [codec.TextMessage("x")]


def test_events_are_kept_across_calls_until_taken(codec):
    server = open_server(codec)
    server.receive_data(client_frame(codec, 1, "a"))
    server.receive_data(client_frame(codec, 1, "b") + client_frame(codec, 9, b"p"))
    server.receive_data(client_frame(codec, 1, "c"))
    assert server.events() == [
        codec.TextMessage("a"),
        codec.TextMessage("b"),
        codec.Ping(b"p"),
        codec.TextMessage("c"),
    ]
