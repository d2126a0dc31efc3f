"""permessage-deflate against websockets' implementation, in memory, both directions.

Our server against websockets' sans-I/O client (``ClientProtocol`` with
``ClientPerMessageDeflateFactory``) and our client against its server (``ServerProtocol``
with ``ServerPerMessageDeflateFactory``), with each context-takeover mode and several window
sizes; text and binary, tiny, 1 MiB compressible and random, many messages in a row, and
messages fragmented by websockets.
"""

from __future__ import annotations

import random
from types import ModuleType
from typing import Any

import pytest

from turbows import State
from turbows.connection import ClientConnection, ServerConnection
from turbows.events import Accepted, Request
from turbows.extensions import PerMessageDeflate

from pmd_helpers import NO_TIMERS

websockets = pytest.importorskip("websockets")

from websockets.client import ClientProtocol
from websockets.extensions.permessage_deflate import (
    ClientPerMessageDeflateFactory,
    ServerPerMessageDeflateFactory,
)
from websockets.frames import Opcode as WSOpcode
from websockets.protocol import State as WSState
from websockets.server import ServerProtocol
from websockets.uri import parse_uri

LIMIT = 4 << 20
MIB = 1 << 20


def _json_text(n: int, seed: int = 0) -> str:
    rnd = random.Random(seed)
    parts = []
    size = 0
    while size < n:
        part = (
            f'{{"id": {rnd.randrange(10**6)}, "user": "user{rnd.randrange(500)}",'
            f' "price": {rnd.random() * 100:.2f}, "tags": ["a", "b\u00e9", "\u20ac"]}}, '
        )
        parts.append(part)
        size += len(part)
    return "".join(parts)[:n]


BIG_TEXT = _json_text(MIB)
RANDOM_MIB = random.Random(7).randbytes(MIB)
BLOCK = random.Random(11).randbytes(2048)
SERIES = [_json_text(600, seed) for seed in range(40)]


# --------------------------------------------------------------------------------------------
# Moving bytes and reading messages.


class WSPeer:
    """A websockets protocol object, with messages reassembled from its frames."""

    def __init__(self, proto: Any) -> None:
        self.proto = proto
        self._parts: list[bytes] = []
        self._opcode: Any = None

    def take(self) -> bytes:
        return b"".join(self.proto.data_to_send())

    def messages(self, data: bytes) -> list[tuple[str, bytes]]:
        self.proto.receive_data(data)
        out = []
        for frame in self.proto.events_received():
            if frame.opcode in (WSOpcode.TEXT, WSOpcode.BINARY):
                self._opcode = frame.opcode
                self._parts = [frame.data]
            elif frame.opcode is WSOpcode.CONT:
                self._parts.append(frame.data)
            else:
                continue
            if frame.fin:
                kind = "text" if self._opcode is WSOpcode.TEXT else "binary"
                out.append((kind, b"".join(self._parts)))
        return out

    def send(self, kind: str, data: bytes, pieces: int = 1) -> None:
        """Send a message, in ``pieces`` fragments."""
        proto = self.proto
        if pieces == 1:
            (proto.send_text if kind == "text" else proto.send_binary)(data)
        else:
            step = -(-len(data) // pieces)
            chunks = [data[i : i + step] for i in range(0, len(data), step)]
            (proto.send_text if kind == "text" else proto.send_binary)(chunks[0], fin=False)
            for i, chunk in enumerate(chunks[1:], 2):
                proto.send_continuation(chunk, fin=i == len(chunks))


def _turbows_messages(conn: Any, data: bytes) -> list[tuple[str, bytes]]:
    conn.receive_data(data)
    out = []
    for event in conn.events():
        name = type(event).__name__
        if name == "TextMessage":
            out.append(("text", event.data.encode("utf-8")))
        elif name == "BinaryMessage":
            out.append(("binary", bytes(event.data)))
        else:
            raise AssertionError(f"unexpected event {event!r}")
    return out


def _turbows_send(conn: Any, kind: str, data: bytes) -> None:
    if kind == "text":
        conn.send_text(data.decode("utf-8"))
    else:
        conn.send_binary(data)


# --------------------------------------------------------------------------------------------
# Modes: what each side is configured with. The ids say what they exercise.

# Our server, websockets' client: (our PerMessageDeflate, websockets' client factory).
SERVER_MODES: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "defaults": ({}, {}),
    "client-asks-server-no-takeover": ({}, {"server_no_context_takeover": True}),
    "client-hints-client-no-takeover": (
        {"client_no_context_takeover": True},
        {"client_no_context_takeover": True},
    ),
    "server-imposes-both-no-takeover": (
        {"server_no_context_takeover": True, "client_no_context_takeover": True},
        {},
    ),
    "small-windows": ({}, {"server_max_window_bits": 10, "client_max_window_bits": 9}),
    "window-15": (
        {"window_bits": 15, "client_max_window_bits": 15, "mem_level": 8},
        {"server_max_window_bits": 15},
    ),
    "server-caps-its-window": ({"server_max_window_bits": 9}, {"client_max_window_bits": None}),
    "window-8-asked-of-server": ({}, {"server_max_window_bits": 8}),
}

# websockets' server, our client: (our PerMessageDeflate, websockets' server factory).
CLIENT_MODES: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "defaults": ({}, {}),
    "server-limits-client-window": (
        {"client_max_window_bits": True},
        {"client_max_window_bits": 10},
    ),
    "client-asks-server-no-takeover": ({"server_no_context_takeover": True}, {}),
    "server-imposes-both-no-takeover": (
        {},
        {"server_no_context_takeover": True, "client_no_context_takeover": True},
    ),
    "client-no-takeover-by-choice": ({"client_no_context_takeover": True}, {}),
    "small-windows": (
        {"server_max_window_bits": 10, "client_max_window_bits": 11},
        {"server_max_window_bits": 9},
    ),
    "window-15": (
        {"window_bits": 15, "client_max_window_bits": 15},
        {"client_max_window_bits": 15},
    ),
}


def _our_server_and_their_client(
    codec: ModuleType, ours: dict[str, Any], theirs: dict[str, Any]
) -> tuple[ServerConnection, WSPeer]:
    client = ClientProtocol(
        parse_uri("ws://example.com/"),
        extensions=[ClientPerMessageDeflateFactory(**theirs)],
        max_size=None,
    )
    client.send_request(client.connect())
    server = ServerConnection(
        extensions=[PerMessageDeflate(**ours)], max_message_size=LIMIT, _codec=codec, **NO_TIMERS
    )
    server.receive_data(b"".join(client.data_to_send()))
    [request] = server.events()
    assert isinstance(request, Request)
    server.accept()
    client.receive_data(server.data_to_send())
    [response] = client.events_received()
    assert response.status_code == 101 and client.state is WSState.OPEN, client.handshake_exc
    assert [type(e).__name__ for e in client.extensions] == ["PerMessageDeflate"]
    return server, WSPeer(client)


def _their_server_and_our_client(
    codec: ModuleType, ours: dict[str, Any], theirs: dict[str, Any]
) -> tuple[WSPeer, ClientConnection]:
    server = ServerProtocol(extensions=[ServerPerMessageDeflateFactory(**theirs)], max_size=None)
    client = ClientConnection(
        "ws://example.com/",
        extensions=[PerMessageDeflate(**ours)],
        max_message_size=LIMIT,
        _codec=codec,
        **NO_TIMERS,
    )
    server.receive_data(client.data_to_send())
    [request] = server.events_received()
    server.send_response(server.accept(request))
    assert server.state is WSState.OPEN
    client.receive_data(b"".join(server.data_to_send()))
    [accepted] = client.events()
    assert isinstance(accepted, Accepted) and client.state is State.OPEN
    assert [name for name, _ in accepted.extensions] == ["permessage-deflate"]
    return WSPeer(server), client


def _exchange(ours: Any, theirs: WSPeer, ours_compresses: bool) -> None:
    """Every kind of message, both ways, checked on arrival and on the wire."""
    singles = [
        ("text", b"hi"),
        ("binary", b"\x00\x01\x02"),
        ("text", _json_text(5000, 3).encode()),
        ("binary", bytes(300)),
        ("text", BIG_TEXT.encode()),
        ("binary", RANDOM_MIB),
        ("binary", b""),
        ("text", b""),
    ]
    # Ours to theirs, one at a time so that wire sizes can be checked.
    for kind, data in singles:
        _turbows_send(ours, kind, data)
        wire = ours.data_to_send()
        assert theirs.messages(wire) == [(kind, data)]
        if kind == "text" and len(data) == MIB:
            if ours_compresses:
                assert len(wire) < len(data) // 3
            else:
                assert len(wire) > len(data)
        if len(data) < 128:
            # Below the threshold: sent as it is, RSV1 clear.
            assert wire[0] & 0x40 == 0
    # Theirs to ours.
    for kind, data in singles:
        theirs.send(kind, data)
        wire = theirs.take()
        assert _turbows_messages(ours, wire) == [(kind, data)]
        if len(data) == MIB and kind == "text":
            assert len(wire) < len(data) // 3  # websockets did compress
    # Many in a row: context takeover carries over between them.
    for text in SERIES:
        ours.send_text(text)
    assert theirs.messages(ours.data_to_send()) == [("text", t.encode()) for t in SERIES]
    for text in SERIES:
        theirs.send("text", text.encode())
    assert _turbows_messages(ours, theirs.take()) == [("text", t.encode()) for t in SERIES]
    # Fragmented by websockets (it compresses the fragments as one message), 2 to 50 pieces.
    for pieces in (2, 7, 50):
        theirs.send("text", BIG_TEXT.encode()[:200_000], pieces)
        theirs.send("binary", RANDOM_MIB[:100_000], pieces)
        assert _turbows_messages(ours, theirs.take()) == [
            ("text", BIG_TEXT.encode()[:200_000]),
            ("binary", RANDOM_MIB[:100_000]),
        ]
    # Our fragments go uncompressed, between compressed messages.
    ours.send_text(SERIES[0])
    ours.send_fragment("frag", False)
    ours.send_fragment("mented", True)
    ours.send_text(SERIES[1])
    assert theirs.messages(ours.data_to_send()) == [
        ("text", SERIES[0].encode()),
        ("text", b"fragmented"),
        ("text", SERIES[1].encode()),
    ]


def _repeat_sizes(send: Any, take: Any, deliver: Any) -> list[int]:
    """Wire sizes of the same 2 KiB random block sent three times in a row (and delivered)."""
    sizes = []
    for _ in range(3):
        send(BLOCK)
        wire = take()
        sizes.append(len(wire))
        assert deliver(wire) == [("binary", BLOCK)]
    return sizes


def _check_takeover(sizes: list[int], takeover: bool) -> None:
    if takeover:
        # The repeats refer back to the first copy: a few bytes each.
        assert sizes[1] < 100 and sizes[2] < 100, sizes
    else:
        # Every message starts from an empty window: random data does not shrink.
        assert min(sizes) > 2000, sizes


@pytest.mark.parametrize("mode", list(SERVER_MODES))
def test_our_server_against_websockets_client(codec, mode):
    ours_cfg, theirs_cfg = SERVER_MODES[mode]
    server, client = _our_server_and_their_client(codec, ours_cfg, theirs_cfg)
    ext = client.proto.extensions[0]  # websockets' view of what was agreed
    # Our compressor's window: the agreed one, capped by our own settings. zlib cannot
    # compress with 8 bits, so then we send uncompressed.
    our_bits = min(
        ext.remote_max_window_bits,
        ours_cfg.get("server_max_window_bits") or 15,
        ours_cfg.get("window_bits", 12),
    )
    _exchange(server, client, our_bits >= 9)
    # Context takeover as agreed, both ways (a 2 KiB block needs a window of 12 bits).
    if our_bits >= 12:
        sizes = _repeat_sizes(server.send_binary, server.data_to_send, client.messages)
        _check_takeover(sizes, not ext.remote_no_context_takeover)
    if ext.local_max_window_bits >= 12:
        sizes = _repeat_sizes(
            client.proto.send_binary, client.take, lambda d: _turbows_messages(server, d)
        )
        _check_takeover(sizes, not ext.local_no_context_takeover)
    assert server.state is State.OPEN


@pytest.mark.parametrize("mode", list(CLIENT_MODES))
def test_our_client_against_websockets_server(codec, mode):
    ours_cfg, theirs_cfg = CLIENT_MODES[mode]
    server, client = _their_server_and_our_client(codec, ours_cfg, theirs_cfg)
    ext = server.proto.extensions[0]
    wanted = ours_cfg.get("client_max_window_bits")
    our_bits = min(
        ext.remote_max_window_bits,
        wanted if isinstance(wanted, int) and wanted is not True else 15,
        ours_cfg.get("window_bits", 12),
    )
    _exchange(client, server, our_bits >= 9)
    if our_bits >= 12:
        sizes = _repeat_sizes(client.send_binary, client.data_to_send, server.messages)
        _check_takeover(
            sizes,
            not ext.remote_no_context_takeover and not ours_cfg.get("client_no_context_takeover"),
        )
    if ext.local_max_window_bits >= 12:
        sizes = _repeat_sizes(
            server.proto.send_binary, server.take, lambda d: _turbows_messages(client, d)
        )
        _check_takeover(sizes, not ext.local_no_context_takeover)
    assert client.state is State.OPEN
