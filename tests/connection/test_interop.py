"""Interoperability, all in memory: our server against the clients of wsproto and websockets
(sans-I/O), and our client against their servers."""

from __future__ import annotations

from typing import Any, List

import pytest

from turbows import State
from turbows.connection import ClientConnection, ServerConnection
from turbows.events import Accepted, ConnectionClosed, PingAnswered, Rejected, Request

wsproto = pytest.importorskip("wsproto")
websockets = pytest.importorskip("websockets")

from websockets.client import ClientProtocol
from websockets.frames import Close
from websockets.protocol import State as WSState
from websockets.server import ServerProtocol
from websockets.uri import parse_uri
from wsproto import ConnectionType, WSConnection
from wsproto import events as wse

BIG = bytes(range(256)) * 400  # 100 KiB: 64-bit length frames
TEXT = "h\u00e9llo \u20ac \U0001f600" * 1000


# --------------------------------------------------------------------------------------------
# websockets' protocol objects give a list of bytes, where b"" means "half-close the socket".


def _ws_out(proto: Any, peer: Any) -> bool:
    """Move websockets' output to our connection; True if it asked to close TCP."""
    eof = False
    for chunk in proto.data_to_send():
        if chunk:
            peer.receive_data(chunk)
        else:
            eof = True
    return eof


def test_websockets_client_against_our_server(codec):
    client = ClientProtocol(
        parse_uri("ws://example.com/chat?x=1"), subprotocols=["chat"], origin="http://example.com"
    )
    client.send_request(client.connect())
    server = ServerConnection(_codec=codec, subprotocols=["chat"])
    _ws_out(client, server)
    [request] = server.events()
    assert isinstance(request, Request)
    assert (request.path, request.subprotocols, request.origin) == (
        "/chat?x=1",
        ("chat",),
        "http://example.com",
    )
    server.accept()
    client.receive_data(server.data_to_send())
    [response] = client.events_received()
    assert response.status_code == 101 and client.state is WSState.OPEN
    assert client.subprotocol == "chat"

    # Echo: the client sends, our server echoes, the client reads.
    client.send_text(TEXT.encode())
    client.send_binary(BIG)
    client.send_text(b"frag-", fin=False)
    client.send_continuation(b"mented", fin=True)
    client.send_ping(b"are you there")
    _ws_out(client, server)
    received = server.events()
    assert received == [
        codec.TextMessage(TEXT),
        codec.BinaryMessage(BIG),
        codec.TextMessage("frag-mented"),
        codec.Ping(b"are you there"),
    ]
    for event in received:
        if isinstance(event, codec.TextMessage):
            server.send_text(event.data)
        elif isinstance(event, codec.BinaryMessage):
            server.send_binary(event.data)
    server.ping(b"p1", now=1.0)
    client.receive_data(server.data_to_send())
    frames = client.events_received()
    assert [(f.opcode.name, f.data) for f in frames] == [
        ("PONG", b"are you there"),
        ("TEXT", TEXT.encode()),
        ("BINARY", BIG),
        ("TEXT", b"frag-mented"),
        ("PING", b"p1"),
    ]
    # websockets answers our ping by itself.
    _ws_out(client, server)
    assert server.events() == [codec.Pong(b"p1"), PingAnswered(b"p1", None)]

    # The client closes; our server echoes and closes TCP first (RFC 6455 7.1.1).
    client.send_close(1000, "bye")
    _ws_out(client, server)
    events = server.events()
    assert events[0] == codec.CloseReceived(1000, "bye")
    assert isinstance(events[1], ConnectionClosed) and events[1].clean
    assert server.should_close_transport
    client.receive_data(server.data_to_send())
    client.receive_eof()
    assert client.state is WSState.CLOSED
    assert client.close_code == 1000


def test_our_server_closes_a_websockets_client(codec):
    client = ClientProtocol(parse_uri("ws://example.com/"))
    client.send_request(client.connect())
    server = ServerConnection(_codec=codec)
    _ws_out(client, server)
    server.events()
    server.accept()
    client.receive_data(server.data_to_send())
    client.events_received()
    server.close(1001, "restarting", now=0.0)
    client.receive_data(server.data_to_send())
    [frame] = client.events_received()
    assert Close.parse(frame.data) == Close(1001, "restarting")
    _ws_out(client, server)  # the echo
    events = server.events()
    assert events[0] == codec.CloseReceived(1001, "restarting")
    assert events[1].clean and events[1].initiator == "local"
    assert server.state is State.CLOSED and server.should_close_transport


def test_websockets_client_reads_our_rejection(codec):
    client = ClientProtocol(parse_uri("ws://example.com/"))
    client.send_request(client.connect())
    server = ServerConnection(_codec=codec)
    _ws_out(client, server)
    server.events()
    server.reject(403, headers=[("X-Why", "no")], body=b"forbidden")
    client.receive_data(server.data_to_send())
    [response] = client.events_received()
    assert response.status_code == 403 and response.body == b"forbidden"
    assert response.headers["X-Why"] == "no"


def test_websockets_client_sees_our_protocol_error_close(codec):
    client = ClientProtocol(parse_uri("ws://example.com/"))
    client.send_request(client.connect())
    server = ServerConnection(_codec=codec, max_message_size=100)
    _ws_out(client, server)
    server.events()
    server.accept()
    client.receive_data(server.data_to_send())
    client.events_received()
    client.send_binary(b"x" * 101)
    _ws_out(client, server)
    assert server.events() == []
    client.receive_data(server.data_to_send())
    client.events_received()
    assert client.close_rcvd is not None and client.close_rcvd.code == 1009


def test_our_client_against_websockets_server(codec):
    server = ServerProtocol(subprotocols=["v2", "v1"])
    client = ClientConnection(
        "ws://example.com:8765/feed",
        subprotocols=["v1", "v2"],
        extra_headers=[("Cookie", "s=1")],
        _codec=codec,
    )
    server.receive_data(client.data_to_send())
    [request] = server.events_received()
    assert request.path == "/feed" and request.headers["Cookie"] == "s=1"
    assert request.headers["Host"] == "example.com:8765"
    server.send_response(server.accept(request))
    _ws_out(server, client)
    [accepted] = client.events()
    assert isinstance(accepted, Accepted) and accepted.subprotocol == "v2"

    client.send_text(TEXT)
    client.send_binary(BIG)
    client.send_fragment(b"a")
    client.send_fragment(b"b", final=True)
    client.ping(b"rtt", now=0.0)
    server.receive_data(client.data_to_send())
    frames = server.events_received()
    assert [(f.opcode.name, f.data, f.fin) for f in frames] == [
        ("TEXT", TEXT.encode(), True),
        ("BINARY", BIG, True),
        ("BINARY", b"a", False),
        ("CONT", b"b", True),
        ("PING", b"rtt", True),
    ]
    server.send_text(TEXT.encode())
    server.send_binary(b"x", fin=False)
    server.send_continuation(b"y", fin=True)
    server.send_ping(b"srv")
    _ws_out(server, client)  # includes the pong to our ping
    events = client.events()
    assert events == [
        codec.Pong(b"rtt"),
        PingAnswered(b"rtt", None),
        codec.TextMessage(TEXT),
        codec.BinaryMessage(b"xy"),
        codec.Ping(b"srv"),
    ]
    server.receive_data(client.data_to_send())
    assert [(f.opcode.name, f.data) for f in server.events_received()] == [("PONG", b"srv")]

    # Our client closes; websockets' server echoes and half-closes, we then see EOF.
    client.close(1000, "done")
    server.receive_data(client.data_to_send())
    eof = _ws_out(server, client)
    assert eof
    assert client.state is State.CLOSING
    client.receive_data(b"")
    [*_, closed] = client.events()
    assert isinstance(closed, ConnectionClosed)
    assert (closed.code, closed.clean, closed.initiator) == (1000, True, "local")


def test_websockets_server_rejection_reaches_our_client(codec):
    server = ServerProtocol()
    client = ClientConnection("ws://example.com/", _codec=codec)
    server.receive_data(client.data_to_send())
    [_request] = server.events_received()
    server.send_response(server.reject(503, "try later"))
    eof = _ws_out(server, client)
    if eof:
        client.receive_data(b"")
    events = client.events()
    assert isinstance(events[0], Rejected)
    assert events[0].status == 503 and events[0].body == b"try later"
    assert isinstance(events[-1], ConnectionClosed)


# --------------------------------------------------------------------------------------------
# wsproto


def test_wsproto_client_against_our_server(codec):
    ws = WSConnection(ConnectionType.CLIENT)
    server = ServerConnection(_codec=codec, subprotocols=["chat"])
    server.receive_data(
        ws.send(wse.Request(host="example.com", target="/w", subprotocols=["chat"]))
    )
    [request] = server.events()
    assert request.path == "/w" and request.subprotocols == ("chat",)
    server.accept()
    ws.receive_data(server.data_to_send())
    [accept] = list(ws.events())
    assert isinstance(accept, wse.AcceptConnection) and accept.subprotocol == "chat"

    data = ws.send(wse.TextMessage(TEXT)) + ws.send(wse.BytesMessage(BIG))
    data += ws.send(wse.TextMessage("par", message_finished=False)) + ws.send(wse.TextMessage("ts"))
    data += ws.send(wse.Ping(b"wp"))
    # Fed one byte short of each boundary, then the rest: arbitrary chunking.
    for pos in range(0, len(data), 997):
        server.receive_data(data[pos : pos + 997])
    received = server.events()
    assert received == [
        codec.TextMessage(TEXT),
        codec.BinaryMessage(BIG),
        codec.TextMessage("parts"),
        codec.Ping(b"wp"),
    ]
    server.send_text(TEXT)
    server.send_binary(BIG)
    ws.receive_data(server.data_to_send())
    got: List[Any] = list(ws.events())
    assert isinstance(got[0], wse.Pong) and got[0].payload == b"wp"
    text = "".join(e.data for e in got if isinstance(e, wse.TextMessage))
    binary = b"".join(e.data for e in got if isinstance(e, wse.BytesMessage))
    assert text == TEXT and binary == BIG

    server.close(1000, "bye")
    ws.receive_data(server.data_to_send())
    [close] = [e for e in ws.events() if isinstance(e, wse.CloseConnection)]
    assert close.code == 1000 and close.reason == "bye"
    server.receive_data(ws.send(close.response()))
    events = server.events()
    assert events[-1].clean and server.should_close_transport


def test_wsproto_client_with_a_bad_version_gets_426(codec):
    ws = WSConnection(ConnectionType.CLIENT)
    request = ws.send(wse.Request(host="example.com", target="/"))
    request = request.replace(b"Sec-WebSocket-Version: 13", b"Sec-WebSocket-Version: 8")
    server = ServerConnection(_codec=codec)
    server.receive_data(request)
    ws.receive_data(server.data_to_send())
    [reject] = [e for e in ws.events() if isinstance(e, wse.RejectConnection)]
    assert reject.status_code == 426
    assert (b"sec-websocket-version", b"13") in [(k.lower(), v) for k, v in reject.headers]


def test_our_client_against_wsproto_server(codec):
    ws = WSConnection(ConnectionType.SERVER)
    client = ClientConnection("ws://example.com/live", subprotocols=["a", "b"], _codec=codec)
    ws.receive_data(client.data_to_send())
    [request] = list(ws.events())
    assert isinstance(request, wse.Request)
    assert request.target == "/live" and request.subprotocols == ["a", "b"]
    client.receive_data(
        ws.send(wse.AcceptConnection(subprotocol="b")) + ws.send(wse.TextMessage("welcome"))
    )
    events = client.events()
    assert isinstance(events[0], Accepted) and events[0].subprotocol == "b"
    assert events[1:] == [codec.TextMessage("welcome")]

    client.send_text(TEXT)
    client.send_binary(BIG)
    ws.receive_data(client.data_to_send())
    got = list(ws.events())
    assert "".join(e.data for e in got if isinstance(e, wse.TextMessage)) == TEXT
    assert b"".join(e.data for e in got if isinstance(e, wse.BytesMessage)) == BIG

    # wsproto's server starts the close; we echo and wait for its TCP close.
    client.receive_data(ws.send(wse.CloseConnection(code=1001, reason="maintenance")))
    assert client.events() == [codec.CloseReceived(1001, "maintenance")]
    ws.receive_data(client.data_to_send())
    [close] = list(ws.events())
    assert isinstance(close, wse.CloseConnection) and close.code == 1001
    client.receive_data(b"")
    [closed] = client.events()
    assert (closed.code, closed.reason, closed.clean, closed.initiator) == (
        1001,
        "maintenance",
        True,
        "peer",
    )


def test_wsproto_server_rejection_with_body_reaches_our_client(codec):
    ws = WSConnection(ConnectionType.SERVER)
    client = ClientConnection("ws://example.com/", _codec=codec)
    ws.receive_data(client.data_to_send())
    list(ws.events())
    data = ws.send(
        wse.RejectConnection(status_code=401, headers=[(b"content-length", b"6")], has_body=True)
    )
    data += ws.send(wse.RejectData(data=b"log in", body_finished=True))
    client.receive_data(data)
    events = client.events()
    assert isinstance(events[0], Rejected)
    assert (events[0].status, events[0].body) == (401, b"log in")
    assert isinstance(events[1], ConnectionClosed)


def test_wsproto_server_reads_our_protocol_error_close(codec):
    ws = WSConnection(ConnectionType.SERVER)
    client = ClientConnection("ws://example.com/", _codec=codec)
    ws.receive_data(client.data_to_send())
    list(ws.events())
    client.receive_data(ws.send(wse.AcceptConnection()))
    client.events()
    # A text message that is not UTF-8, built by hand: our client answers with 1007.
    client.receive_data(b"\x81\x02\xff\xfe")
    ws.receive_data(client.data_to_send())
    [close] = list(ws.events())
    assert isinstance(close, wse.CloseConnection) and close.code == 1007
