"""The closing handshake (RFC 6455 5.5.1, 7), close codes and the TCP close order."""

from __future__ import annotations

import math

import pytest

from turbows import State
from turbows.events import ConnectionClosed
from turbows.exceptions import InvalidStateError

from conn_helpers import (
    client_frame,
    exchange,
    open_client,
    open_pair,
    open_server,
    parse_frames,
    server_frame,
)


def _closed(conn):
    events = conn.events()
    assert isinstance(events[-1], ConnectionClosed), events
    assert conn.state is State.CLOSED
    return events[-1]


def test_server_initiated_close_is_clean_and_the_server_closes_tcp_first(codec):
    server, client = open_pair(codec)
    server.close(1001, "going away", now=0.0)
    assert server.state is State.CLOSING and not server.should_close_transport
    client.receive_data(server.data_to_send(), now=0.1)
    assert client.events() == [codec.CloseReceived(1001, "going away")]
    # The client echoed the code and waits for the server to close TCP.
    assert client.state is State.CLOSING and not client.should_close_transport
    server.receive_data(client.data_to_send(), now=0.2)
    events = server.events()
    assert events[0] == codec.CloseReceived(1001, "")
    closed = events[1]
    assert isinstance(closed, ConnectionClosed) and server.state is State.CLOSED
    assert (closed.code, closed.clean, closed.initiator, closed.sent_code, closed.sent_reason) == (
        1001,
        True,
        "local",
        1001,
        "going away",
    )
    assert server.should_close_transport
    client.receive_data(b"")
    closed = _closed(client)
    assert (closed.code, closed.reason, closed.clean, closed.initiator) == (
        1001,
        "going away",
        True,
        "peer",
    )


def test_client_initiated_close(codec):
    server, client = open_pair(codec)
    client.close(4000, "bye", now=5.0)
    server.receive_data(client.data_to_send())
    events = server.events()
    assert events[0] == codec.CloseReceived(4000, "bye")
    assert isinstance(events[1], ConnectionClosed)
    assert (events[1].code, events[1].clean, events[1].initiator) == (4000, True, "peer")
    assert server.state is State.CLOSED and server.should_close_transport
    client.receive_data(server.data_to_send())
    assert client.events() == [codec.CloseReceived(4000, "")]
    assert client.state is State.CLOSING
    client.receive_data(b"")
    closed = _closed(client)
    assert (closed.code, closed.reason, closed.clean, closed.initiator) == (4000, "", True, "local")


def test_close_without_a_code_sends_an_empty_close_and_reports_1005(codec):
    server, client = open_pair(codec)
    client.close(None)
    data = client.data_to_send()
    assert parse_frames(codec, data, from_client=True) == [codec.CloseReceived(1005, "")]
    server.receive_data(data)
    events = server.events()
    assert events[0] == codec.CloseReceived(1005, "")
    # The echo of a close without a code has no code either.
    assert parse_frames(codec, server.data_to_send(), from_client=False) == [
        codec.CloseReceived(1005, "")
    ]
    assert events[1].code == 1005 and events[1].clean


@pytest.mark.parametrize("code", [1005, 1006, 1015, 1004, 999, 1016, 2999, 5000, 0])
def test_reserved_codes_are_never_sent(codec, code):
    server = open_server(codec)
    with pytest.raises(ValueError):
        server.close(code)
    assert server.state is State.OPEN
    assert server.data_to_send() == b""


@pytest.mark.parametrize(
    "code", [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 4999]
)
def test_valid_codes_are_sent_and_received(codec, code):
    server, client = open_pair(codec)
    server.close(code)
    client.receive_data(server.data_to_send())
    assert client.events() == [codec.CloseReceived(code, "")]


def test_close_reason_is_limited_to_123_utf8_bytes(codec):
    server = open_server(codec)
    with pytest.raises(ValueError):
        server.close(1000, "é" * 62)  # 124 bytes
    with pytest.raises(ValueError):
        server.close(None, "reason without code")
    server.close(1000, "é" * 61 + "x")  # 123 bytes
    [close] = parse_frames(codec, server.data_to_send(), from_client=False)
    assert close.reason == "é" * 61 + "x"


def test_close_is_refused_twice(codec):
    server = open_server(codec)
    server.close()
    with pytest.raises(InvalidStateError, match="CLOSING"):
        server.close()


def test_close_timeout_aborts(codec):
    server = open_server(codec, now=0.0, close_timeout=3.0)
    server.close(now=10.0)
    assert server.next_deadline() == 13.0
    server.handle_timer(12.9)
    assert server.state is State.CLOSING
    server.handle_timer(13.0)
    closed = _closed(server)
    assert (closed.code, closed.reason, closed.clean, closed.initiator) == (
        1006,
        "close timeout",
        False,
        "local",
    )
    assert closed.sent_code == 1000
    assert server.should_close_transport
    assert server.next_deadline() is None


def test_close_timeout_starts_at_the_next_timer_without_a_time(codec):
    server = open_server(codec, now=0.0)
    server.close()
    assert server.next_deadline() == -math.inf
    server.handle_timer(100.0)
    assert server.state is State.CLOSING
    assert server.next_deadline() == 110.0


def test_client_waits_for_the_server_tcp_close_then_gives_up_cleanly(codec):
    client = open_client(codec, now=0.0)
    client.receive_data(server_frame(codec, 8, codec.encode_close(1000, "done")), now=1.0)
    assert client.events() == [codec.CloseReceived(1000, "done")]
    assert parse_frames(codec, client.data_to_send(), from_client=True) == [
        codec.CloseReceived(1000, "")
    ]
    assert client.state is State.CLOSING and not client.should_close_transport
    assert client.next_deadline() == 11.0
    client.handle_timer(11.0)
    closed = _closed(client)
    assert (closed.code, closed.reason, closed.clean, closed.initiator) == (
        1000,
        "done",
        True,
        "peer",
    )
    assert client.should_close_transport


def test_client_close_waits_for_the_close_frame_then_tcp(codec):
    client = open_client(codec, now=0.0)
    client.close(now=1.0)
    client.data_to_send()
    client.receive_data(server_frame(codec, 8, codec.encode_close(1000)), now=2.0)
    assert client.state is State.CLOSING
    assert client.next_deadline() == 11.0  # one timeout covers the whole close
    client.receive_data(b"")
    assert _closed(client).clean


def test_eof_without_close_is_abnormal(codec):
    server, _client = open_pair(codec)
    server.receive_data(b"")
    closed = _closed(server)
    assert (closed.code, closed.clean, closed.initiator, closed.sent_code) == (
        1006,
        False,
        "peer",
        None,
    )
    assert closed.reason == "connection lost"
    assert server.should_close_transport


def test_eof_after_our_close_but_before_the_reply_is_abnormal(codec):
    server = open_server(codec)
    server.close()
    server.receive_data(b"")
    closed = _closed(server)
    assert (closed.code, closed.clean, closed.initiator) == (1006, False, "local")


def test_pings_after_the_close_frame_are_not_answered(codec):
    server = open_server(codec)
    server.receive_data(
        client_frame(codec, 8, codec.encode_close(1000)) + client_frame(codec, 9, b"late")
    )
    events = server.events()
    assert events[0] == codec.CloseReceived(1000, "")
    assert isinstance(events[1], ConnectionClosed) and len(events) == 2
    assert parse_frames(codec, server.data_to_send(), from_client=False) == [
        codec.CloseReceived(1000, "")
    ]


def test_a_ping_before_the_close_is_answered_before_the_echo(codec):
    server = open_server(codec)
    server.receive_data(
        client_frame(codec, 9, b"p") + client_frame(codec, 8, codec.encode_close(1001))
    )
    assert parse_frames(codec, server.data_to_send(), from_client=False) == [
        codec.Pong(b"p"),
        codec.CloseReceived(1001, ""),
    ]


def test_connection_closed_is_the_last_event_exactly_once(codec):
    server, client = open_pair(codec)
    client.close()
    exchange(client, server)
    client.receive_data(b"")
    client.receive_data(b"")
    client.handle_timer(1e9)
    server.receive_data(b"")
    for conn in (server, client):
        events = conn.events()
        assert [type(e) for e in events].count(ConnectionClosed) == 1
        assert isinstance(events[-1], ConnectionClosed)
