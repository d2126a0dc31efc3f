"""turbows.compat.wsproto against the genuine wsproto: the same events for the same bytes,
interoperation both ways (handshake, messages, permessage-deflate), and the places where
RFC 6455 is kept where wsproto departs from it (docs/compat-wsproto.md)."""

from __future__ import annotations

import dataclasses
import os
import zlib

import pytest

from turbows.compat import wsproto as tw
from turbows.compat.wsproto import events as tev
from turbows.compat.wsproto.connection import Connection, ConnectionState, ConnectionType
from turbows.compat.wsproto.extensions import Extension, PerMessageDeflate
from turbows.compat.wsproto.frame_protocol import CloseReason, RsvBits
from turbows.compat.wsproto.utilities import LocalProtocolError, RemoteProtocolError

wp = pytest.importorskip("wsproto")
wp_connection = pytest.importorskip("wsproto.connection")
wp_events = pytest.importorskip("wsproto.events")
wp_extensions = pytest.importorskip("wsproto.extensions")

CLIENT, SERVER = ConnectionType.CLIENT, ConnectionType.SERVER


def as_tuple(event):
    """An event as (class name, fields), to compare ours with wsproto's."""
    return type(event).__name__, dataclasses.astuple(event)


def handshake(client_lib, server_lib, client_exts=(), server_exts=()):
    client = client_lib.WSConnection(client_lib.connection.ConnectionType.CLIENT)
    server = server_lib.WSConnection(server_lib.connection.ConnectionType.SERVER)
    server.receive_data(
        client.send(
            client_lib.events.Request(
                host="example.com", target="/chat", extensions=list(client_exts)
            )
        )
    )
    (request,) = server.events()
    client.receive_data(
        server.send(server_lib.events.AcceptConnection(extensions=list(server_exts)))
    )
    (accepted,) = client.events()
    assert type(accepted).__name__ == "AcceptConnection"
    return client, server


LIBS = [(tw, tw), (tw, wp), (wp, tw)]
LIB_IDS = ["turbows-turbows", "turbows-client-wsproto-server", "wsproto-client-turbows-server"]


@pytest.mark.parametrize(("client_lib", "server_lib"), LIBS, ids=LIB_IDS)
@pytest.mark.parametrize("deflate", [False, True])
def test_messages_both_ways_interoperate(client_lib, server_lib, deflate):
    exts_c = [client_lib.extensions.PerMessageDeflate()] if deflate else []
    exts_s = [server_lib.extensions.PerMessageDeflate()] if deflate else []
    client, server = handshake(client_lib, server_lib, exts_c, exts_s)
    payloads = ["", "héllo", "x" * 70000, b"", b"\x00\xff" * 100, os.urandom(200000)]
    for sender, receiver, lib in ((client, server, client_lib), (server, client, server_lib)):
        for data in payloads:
            cls = lib.events.TextMessage if isinstance(data, str) else lib.events.BytesMessage
            receiver.receive_data(sender.send(cls(data=data)))
            got = list(receiver.events())
            joined = type(data)().join(e.data for e in got)
            assert joined == data
            assert got[-1].message_finished
        receiver.receive_data(sender.send(lib.events.Ping(payload=b"abc")))
        (ping,) = receiver.events()
        assert type(ping).__name__ == "Ping" and ping.payload == b"abc"


@pytest.mark.parametrize("client_sends", [True, False])
def test_same_events_as_wsproto_for_the_same_frames(client_sends):
    # Frames from a genuine wsproto sender, fed in 1-byte and whole chunks to both receivers.
    wp_client, wp_server = (
        wp_connection.Connection(t)
        for t in (wp_connection.ConnectionType.CLIENT, wp_connection.ConnectionType.SERVER)
    )
    sender = wp_client if client_sends else wp_server
    side = SERVER if client_sends else CLIENT
    wire = b"".join(
        [
            sender.send(wp_events.TextMessage(data="fragmented ", message_finished=False)),
            sender.send(wp_events.Ping(payload=b"in between")),
            sender.send(wp_events.TextMessage(data="message ✓", message_finished=True)),
            sender.send(wp_events.BytesMessage(data=b"\x01\x02")),
            sender.send(wp_events.Pong(payload=b"")),
            sender.send(wp_events.CloseConnection(code=4000, reason="done")),
        ]
    )
    ours = Connection(side)
    theirs = wp_connection.Connection(wp_connection.ConnectionType(side.value))
    ours.receive_data(wire)
    theirs.receive_data(wire)
    expected = [as_tuple(e) for e in theirs.events()]
    assert [as_tuple(e) for e in ours.events()] == expected
    assert ours.state.name == theirs.state.name == "REMOTE_CLOSING"


def test_event_dataclasses_match_wsproto_fields_defaults_repr_and_equality():
    for name in (
        "Request",
        "AcceptConnection",
        "RejectConnection",
        "RejectData",
        "CloseConnection",
        "Message",
        "TextMessage",
        "BytesMessage",
        "Ping",
        "Pong",
    ):
        ours, theirs = getattr(tev, name), getattr(wp_events, name)
        assert [(f.name, repr(f.default)) for f in dataclasses.fields(ours)] == [
            (f.name, repr(f.default)) for f in dataclasses.fields(theirs)
        ], name
    samples = [
        ("TextMessage", dict(data="x")),
        ("BytesMessage", dict(data=b"x", message_finished=False)),
        ("CloseConnection", dict(code=1000)),
        ("RejectConnection", dict()),
        ("Request", dict(host="h", target="/")),
        ("AcceptConnection", dict(subprotocol="chat")),
        ("Ping", dict()),
        ("RejectData", dict(data=b"body")),
    ]
    for name, kwargs in samples:
        ours, theirs = getattr(tev, name)(**kwargs), getattr(wp_events, name)(**kwargs)
        assert repr(ours) == repr(theirs)
        assert ours == getattr(tev, name)(**kwargs)
        with pytest.raises(dataclasses.FrozenInstanceError):
            ours.x = 1  # type: ignore[attr-defined]
    assert tev.Ping(b"p").response() == tev.Pong(b"p")
    assert tev.CloseConnection(1001, "bye").response() == tev.CloseConnection(1001, "bye")


def test_received_message_events_are_ordinary_frozen_dataclasses():
    client, server = Connection(CLIENT), Connection(SERVER)
    server.receive_data(client.send(tev.TextMessage(data="abc")))
    (event,) = server.events()
    assert event == tev.TextMessage(data="abc")
    assert dataclasses.replace(event, data="x").data == "x"
    with pytest.raises(dataclasses.FrozenInstanceError):
        event.data = "y"  # type: ignore[misc]


def test_protocol_error_is_a_close_event_and_later_data_is_ignored():
    client, server = Connection(CLIENT), Connection(SERVER)
    good = client.send(tev.TextMessage(data="before"))
    unmasked = b"\x81\x02hi"  # RFC 6455 5.1: a server MUST fail on an unmasked frame
    server.receive_data(good + unmasked)
    events = list(server.events())
    assert events[0] == tev.TextMessage(data="before")
    assert isinstance(events[1], tev.CloseConnection)
    assert events[1].code is CloseReason.PROTOCOL_ERROR
    # RFC 6455 7.1.7: the application answers it as a close from the peer, with the code.
    assert server.state is ConnectionState.REMOTE_CLOSING
    server.receive_data(client.send(tev.TextMessage(data="after")))
    assert list(server.events()) == []
    client.receive_data(server.send(events[1].response()))
    assert server.state is ConnectionState.CLOSED
    assert list(client.events()) == [events[1]]
    assert client.state is ConnectionState.REMOTE_CLOSING


def test_invalid_utf8_fails_with_1007_as_soon_as_it_is_seen():
    client, server = Connection(CLIENT), Connection(SERVER)
    server.receive_data(client.send(tev.BytesMessage(data=b"ok")))
    frame = client.send(tev.TextMessage(data="ab", message_finished=False))
    server.receive_data(frame)
    # A continuation that starts with a lone continuation byte: invalid at once.
    server.receive_data(client._frame(0, b"\x80abc", False) or client._take())
    events = list(server.events())
    assert events[-1].code is CloseReason.INVALID_FRAME_PAYLOAD_DATA


def test_connection_lost_reports_1006_and_closes():
    conn = Connection(CLIENT)
    conn.receive_data(None)
    assert list(conn.events()) == [tev.CloseConnection(code=CloseReason.ABNORMAL_CLOSURE)]
    assert conn.state is ConnectionState.CLOSED
    with pytest.raises(LocalProtocolError):
        conn.receive_data(b"x")


def test_close_handshake_states_follow_wsproto():
    client, server = Connection(CLIENT), Connection(SERVER)
    server.receive_data(client.send(tev.CloseConnection(code=1000, reason="bye")))
    (close,) = server.events()
    assert close == tev.CloseConnection(code=1000, reason="bye")
    assert (client.state, server.state) == (
        ConnectionState.LOCAL_CLOSING,
        ConnectionState.REMOTE_CLOSING,
    )
    # Data after the peer's close is not parsed (RFC 6455 5.5.1).
    server.receive_data(b"\xff\xff")
    assert list(server.events()) == []
    client.receive_data(server.send(close.response()))
    assert list(client.events()) == [tev.CloseConnection(code=1000, reason="bye")]
    assert client.state is server.state is ConnectionState.CLOSED


def test_message_over_the_size_limit_fails_with_1009():
    client, server = Connection(CLIENT), Connection(SERVER, max_message_size=1000)
    server.receive_data(client.send(tev.BytesMessage(data=b"x" * 1001)))
    (event,) = server.events()
    assert event.code is CloseReason.MESSAGE_TOO_BIG


# ---------------------------------------------------------------------------------------------
# Where RFC 6455 is kept instead of wsproto's behaviour.


def test_close_code_1014_is_accepted_as_rfc_6455_and_iana_allow():
    client, server = Connection(CLIENT), Connection(SERVER)
    server.receive_data(client.send(tev.CloseConnection(code=1014)))
    (event,) = server.events()
    assert event.code == 1014 and server.state is ConnectionState.REMOTE_CLOSING


@pytest.mark.parametrize("code", [999, 1004, 1016, 2999, 5000])
def test_close_codes_reserved_by_rfc_6455_are_not_sent(code):
    conn = Connection(CLIENT)
    with pytest.raises(LocalProtocolError):
        conn.send(tev.CloseConnection(code=code))
    assert conn.state is ConnectionState.OPEN


@pytest.mark.parametrize("code", [1005, 1006, 1015])
def test_local_only_codes_go_out_as_1000_as_wsproto_does(code):
    client, server = Connection(CLIENT), Connection(SERVER)
    server.receive_data(client.send(tev.CloseConnection(code=code)))
    (event,) = server.events()
    assert event.code is CloseReason.NORMAL_CLOSURE


def test_long_close_reason_is_cut_at_a_character_boundary():
    client, server = Connection(CLIENT), Connection(SERVER)
    server.receive_data(client.send(tev.CloseConnection(code=1000, reason="é" * 100)))
    (event,) = server.events()
    assert event.reason == "é" * 61


def _request(headers, version=b"1.1"):
    lines = [b"GET /chat HTTP/" + version] + [k + b": " + v for k, v in headers]
    return b"\r\n".join(lines) + b"\r\n\r\n"


GOOD = [
    (b"Host", b"example.com"),
    (b"Upgrade", b"websocket"),
    (b"Connection", b"Upgrade"),
    (b"Sec-WebSocket-Key", b"dGhlIHNhbXBsZSBub25jZQ=="),
    (b"Sec-WebSocket-Version", b"13"),
]


def test_http_1_0_handshake_is_refused_with_505():
    server = tw.WSConnection(SERVER)
    with pytest.raises(RemoteProtocolError) as info:
        server.receive_data(_request(GOOD, b"1.0"))
    assert info.value.event_hint == tev.RejectConnection(status_code=505)


def test_a_key_that_is_not_16_bytes_of_base64_is_refused():
    server = tw.WSConnection(SERVER)
    bad = [h if h[0] != b"Sec-WebSocket-Key" else (h[0], b"not-a-key") for h in GOOD]
    with pytest.raises(RemoteProtocolError) as info:
        server.receive_data(_request(bad))
    assert info.value.event_hint.status_code == 400


def test_version_mismatch_hint_asks_for_version_13():
    server = tw.WSConnection(SERVER)
    bad = [h if h[0] != b"Sec-WebSocket-Version" else (h[0], b"8") for h in GOOD]
    with pytest.raises(RemoteProtocolError) as info:
        server.receive_data(_request(bad))
    assert info.value.event_hint == tev.RejectConnection(
        headers=[(b"Sec-WebSocket-Version", b"13")], status_code=426
    )


def test_frames_sent_right_behind_the_request_are_not_lost():
    client = tw.WSConnection(CLIENT)
    server = tw.WSConnection(SERVER)
    request = client.send(tev.Request(host="example.com", target="/"))
    server.receive_data(request + Connection(CLIENT).send(tev.TextMessage(data="early")))
    (req,) = server.events()
    server.send(tev.AcceptConnection())
    assert list(server.events()) == [tev.TextMessage(data="early")]


# ---------------------------------------------------------------------------------------------
# Extensions.


def test_permessage_deflate_negotiation_matches_wsproto():
    for kwargs in ({}, {"client_max_window_bits": 9, "server_no_context_takeover": True}):
        ours, theirs = PerMessageDeflate(**kwargs), wp_extensions.PerMessageDeflate(**kwargs)
        assert ours.offer() == theirs.offer()
        assert repr(ours).split(" ", 1)[1] == repr(theirs).split(" ", 1)[1]
        for offer in (
            "permessage-deflate",
            "permessage-deflate; client_max_window_bits",
            "permessage-deflate; server_max_window_bits=10; client_no_context_takeover",
            "permessage-deflate; server_max_window_bits=8",
        ):
            a, b = PerMessageDeflate(**kwargs), wp_extensions.PerMessageDeflate(**kwargs)
            assert a.accept(offer) == b.accept(offer), offer
            assert a.enabled() == b.enabled()


def test_permessage_deflate_really_compresses_and_keeps_context():
    client, server = handshake(tw, tw, [PerMessageDeflate()], [PerMessageDeflate()])
    text = "the same text again and again " * 20
    first = client.send(tev.TextMessage(data=text))
    second = client.send(tev.TextMessage(data=text))
    assert first[0] & 0x40 and len(first) < len(text) // 4  # RSV1: compressed
    assert len(second) < len(first)  # context takeover: the repeat costs a few bytes
    server.receive_data(first + second)
    assert [e.data for e in server.events()] == [text, text]


class Reverse(Extension):
    """A foreign extension that owns RSV1 and reverses each message (not the interface's
    own PerMessageDeflate): it must run through the frame hooks."""

    name = "x-reverse"

    def __init__(self):
        self._on = False
        self._inbound = b""

    def enabled(self):
        return self._on

    def offer(self):
        return True

    def accept(self, offer):
        self._on = True
        return True

    def finalize(self, offer):
        self._on = True

    def frame_outbound(self, proto, opcode, rsv, data, fin):
        if opcode.iscontrol():
            return rsv, data
        return RsvBits(True, rsv.rsv2, rsv.rsv3), data[::-1]

    def frame_inbound_payload_data(self, proto, data):
        self._inbound += data
        return b""

    def frame_inbound_complete(self, proto, fin):
        out, self._inbound = self._inbound[::-1], b""
        return out


def test_a_foreign_extension_runs_through_its_hooks_both_ways():
    client, server = handshake(tw, tw, [Reverse()], [Reverse()])
    wire = client.send(tev.TextMessage(data="héllo"))
    assert wire[0] & 0x40 and "olléh".encode()[::-1] != wire[-6:]
    server.receive_data(wire)
    assert list(server.events()) == [tev.TextMessage(data="héllo")]
    client.receive_data(server.send(tev.BytesMessage(data=b"abc")))
    assert list(client.events()) == [tev.BytesMessage(data=b"abc")]
    client.receive_data(server.send(tev.Ping(payload=b"p")))
    assert list(client.events()) == [tev.Ping(payload=b"p")]


def test_rsv1_without_a_negotiated_extension_fails_with_1002():
    client, server = Connection(CLIENT), Connection(SERVER)
    deflated = zlib.compressobj(wbits=-15)
    payload = deflated.compress(b"x") + deflated.flush(zlib.Z_SYNC_FLUSH)
    server.receive_data(client._frame(2, payload[:-4], True, 0x40) or client._take())
    (event,) = server.events()
    assert event.code is CloseReason.PROTOCOL_ERROR


def test_a_ping_that_arrives_with_the_close_is_answered_while_still_open():
    # uvicorn answers each Ping as it reads it; wsproto changes the state when it yields the
    # close, so a ping, a message and a close read together are answered in order.
    client, server = Connection(CLIENT), Connection(SERVER)
    wire = client.send(tev.Ping(payload=b"p")) + client.send(tev.TextMessage(data="abc"))
    wire += client.send(tev.CloseConnection(code=1001, reason="custom reason"))
    server.receive_data(wire)
    replies = []
    for event in server.events():
        if isinstance(event, tev.Ping):
            assert server.state is ConnectionState.OPEN
            replies.append(server.send(event.response()))
        elif isinstance(event, tev.CloseConnection):
            assert server.state is ConnectionState.REMOTE_CLOSING
            replies.append(server.send(event.response()))
    assert server.state is ConnectionState.CLOSED
    client.receive_data(b"".join(replies))
    assert list(client.events()) == [
        tev.Pong(payload=b"p"),
        tev.CloseConnection(code=1001, reason="custom reason"),
    ]


def test_deflate_inflates_a_peer_that_was_never_given_a_smaller_window():
    # RFC 7692 7.1.2.2: a server configured with client_max_window_bits=10 cannot impose it on
    # a client that did not offer the parameter; that client compresses with 15 bits, and its
    # second message refers back 3000 bytes into the first. (wsproto 1.3.2 inflates with 10
    # bits and fails the connection here.)
    data = os.urandom(3000)
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    server = tw.WSConnection(SERVER)
    server.receive_data(_request(GOOD + [(b"Sec-WebSocket-Extensions", b"permessage-deflate")]))
    list(server.events())
    server.send(tev.AcceptConnection(extensions=[PerMessageDeflate(client_max_window_bits=10)]))
    client = Connection(CLIENT)
    for _ in range(2):
        payload = compressor.compress(data) + compressor.flush(zlib.Z_SYNC_FLUSH)
        client._frame(2, payload[:-4], True, 0x40)
        server.receive_data(client._take())
    assert list(server.events()) == [tev.BytesMessage(data=data)] * 2
