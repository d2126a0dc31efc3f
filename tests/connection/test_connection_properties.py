"""Property tests of the connection: whatever the peer sends, in whatever pieces, the
connection never raises, never buffers without bound, and ends in a defined state; and what one
turbows side sends, the other receives in order, with and without permessage-deflate."""

from __future__ import annotations

from typing import Any, List, Tuple

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from turbows import PerMessageDeflate, State
from turbows.connection import ClientConnection, ServerConnection
from turbows.events import (
    Accepted,
    ConnectionClosed,
    PingAnswered,
    Rejected,
    Request,
)

from conn_helpers import request_head

SETTINGS = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

chunks = st.lists(st.binary(min_size=0, max_size=300), min_size=1, max_size=12)


def _open_pair(codec: Any, deflate: bool = False) -> Tuple[ServerConnection, ClientConnection]:
    extensions = [PerMessageDeflate(threshold=0)] if deflate else []
    server = ServerConnection(_codec=codec, extensions=extensions, max_message_size=1 << 16)
    client = ClientConnection(
        "ws://example.com/x", _codec=codec, extensions=extensions, max_message_size=1 << 16
    )
    server.receive_data(client.data_to_send(), 0.0)
    (request,) = server.events()
    assert isinstance(request, Request)
    server.accept(now=0.0)
    client.receive_data(server.data_to_send(), 0.0)
    (accepted,) = client.events()
    assert isinstance(accepted, Accepted)
    return server, client


def _message_types(codec: Any) -> Tuple[type, ...]:
    return (
        codec.TextMessage,
        codec.BinaryMessage,
        codec.Ping,
        codec.Pong,
        codec.CloseReceived,
        PingAnswered,
        ConnectionClosed,
    )


def _check_events(events: List[Any], allowed: Tuple[type, ...], seen_closed: List[bool]) -> None:
    for event in events:
        assert isinstance(event, allowed), event
        assert not seen_closed, f"{event!r} after ConnectionClosed"
        if isinstance(event, ConnectionClosed):
            seen_closed.append(True)


@SETTINGS
@given(pieces=chunks, eof=st.booleans())
def test_an_open_server_survives_any_bytes_from_the_client(codec, pieces, eof):
    server, _ = _open_pair(codec)
    allowed = _message_types(codec)
    seen_closed: List[bool] = []
    for now, piece in enumerate(pieces, start=1):
        server.receive_data(piece, float(now))
        _check_events(server.events(), allowed, seen_closed)
        assert isinstance(server.data_to_send(), bytes)
    if eof:
        server.receive_data(b"", 100.0)
        _check_events(server.events(), allowed, seen_closed)
        assert server.state is State.CLOSED and seen_closed
    # A timer long after everything ends whatever is left, in a defined way.
    server.handle_timer(1e6)
    _check_events(server.events(), allowed, seen_closed)
    if server.state is not State.OPEN:
        server.handle_timer(2e6)
        _check_events(server.events(), allowed, seen_closed)
        assert server.state is State.CLOSED


@SETTINGS
@given(pieces=chunks)
def test_an_open_client_survives_any_bytes_from_the_server(codec, pieces):
    _, client = _open_pair(codec)
    allowed = _message_types(codec)
    seen_closed: List[bool] = []
    for now, piece in enumerate(pieces, start=1):
        client.receive_data(piece, float(now))
        _check_events(client.events(), allowed, seen_closed)
        client.data_to_send()
    client.receive_data(b"", 50.0)
    _check_events(client.events(), allowed, seen_closed)
    assert client.state is State.CLOSED and seen_closed


@SETTINGS
@given(pieces=chunks, valid_start=st.booleans())
def test_a_server_in_the_handshake_survives_any_bytes(codec, pieces, valid_start):
    server = ServerConnection(_codec=codec, max_header_size=1024)
    seen_closed: List[bool] = []
    allowed = (Request, ConnectionClosed)
    if valid_start:
        pieces = [request_head()[:40], *pieces]
    for piece in pieces:
        server.receive_data(piece, 0.0)
        _check_events(server.events(), allowed, seen_closed)
        out = server.data_to_send()
        if seen_closed:
            assert out.startswith(b"HTTP/1.1 4") or out.startswith(b"HTTP/1.1 5") or out == b""
    server.receive_data(b"", 1.0)
    _check_events(server.events(), allowed, seen_closed)
    assert server.state is State.CLOSED


def test_a_request_head_that_never_ends_is_refused_at_the_size_limit(codec):
    server = ServerConnection(_codec=codec, max_header_size=4096)
    server.receive_data(b"GET / HTTP/1.1\r\nX: ", 0.0)
    for _ in range(100):
        server.receive_data(b"a" * 1000, 0.0)
        if server.state is State.CLOSED:
            break
    assert server.state is State.CLOSED
    assert server.data_to_send().startswith(b"HTTP/1.1 431")


messages = st.lists(
    st.one_of(
        st.text(max_size=300).map(lambda s: ("text", s)),
        st.binary(max_size=3000).map(lambda b: ("binary", b)),
        st.lists(st.text(min_size=1, max_size=40), min_size=2, max_size=4).map(
            lambda parts: ("fragments", parts)
        ),
    ),
    max_size=15,
)


@SETTINGS
@given(sent=messages, cuts=st.lists(st.integers(min_value=0, max_value=5000), max_size=8),
       deflate=st.booleans(), client_sends=st.booleans())
def test_messages_arrive_whole_and_in_order_across_any_split(
    codec, sent, cuts, deflate, client_sends
):
    server, client = _open_pair(codec, deflate)
    sender, receiver = (client, server) if client_sends else (server, client)
    expected: List[Any] = []
    for kind, value in sent:
        if kind == "text":
            sender.send_text(value)
            expected.append(value)
        elif kind == "binary":
            sender.send_binary(value)
            expected.append(value)
        else:
            for i, part in enumerate(value):
                sender.send_fragment(part, final=i == len(value) - 1)
            expected.append("".join(value))
    wire = sender.data_to_send()
    bounds = sorted({0, len(wire), *(c % (len(wire) + 1) for c in cuts)})
    received: List[Any] = []
    for start, end in zip(bounds, bounds[1:]):
        receiver.receive_data(wire[start:end], 1.0)
        received.extend(e.data for e in receiver.events())
    assert received == expected
    assert receiver.state is State.OPEN


def test_rejected_handshake_ends_the_client_with_the_status(codec):
    server = ServerConnection(_codec=codec)
    client = ClientConnection("ws://example.com/x", _codec=codec)
    server.receive_data(client.data_to_send(), 0.0)
    server.events()
    server.reject(503, headers=[("Retry-After", "3")], body=b"busy")
    client.receive_data(server.data_to_send(), 0.0)
    rejected, closed = client.events()
    assert isinstance(rejected, Rejected) and rejected.status == 503 and rejected.body == b"busy"
    assert isinstance(closed, ConnectionClosed) and not closed.clean


@SETTINGS
@given(sent=messages, cuts=st.lists(st.integers(min_value=0, max_value=5000), max_size=8),
       garbage=st.binary(max_size=20))
def test_receive_events_is_receive_data_then_events(codec, sent, cuts, garbage):
    pairs = [_open_pair(codec), _open_pair(codec)]
    wire = b""
    for server, client in pairs:
        for kind, value in sent:
            if kind == "text":
                client.send_text(value)
            elif kind == "binary":
                client.send_binary(value)
            else:
                client.ping(b"p")
        if len(sent) % 3 == 0:
            client.close(1000, "bye")
        wire = client.data_to_send() + garbage
    bounds = sorted({0, len(wire), *(c % (len(wire) + 1) for c in cuts)})
    (one, _), (two, _) = pairs
    for start, end in zip(bounds, bounds[1:]):
        piece = wire[start:end]
        one.receive_data(piece, 1.0)
        expected = one.events()
        got = two.receive_events(piece, 1.0)
        assert [repr(e) for e in got] == [repr(e) for e in expected]
        assert one.data_to_send() == two.data_to_send()
        assert one.state is two.state
