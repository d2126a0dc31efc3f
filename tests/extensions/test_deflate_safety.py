"""permessage-deflate safety: bombs, fragmented compressed messages, reserved bits, corrupt
data, what is never compressed, and the threshold. Every test runs on both codecs."""

from __future__ import annotations

import random
import tracemalloc
import zlib

import pytest

from turbows import State
from turbows.events import ConnectionClosed
from turbows.exceptions import ProtocolError
from turbows.extensions import Inflater, PerMessageDeflate

from pmd_helpers import frame, frames, open_pair

LIMIT = 1 << 20
OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0, 1, 2, 8, 9, 10


def deflate(data: bytes, wbits: int = 15) -> bytes:
    """A message compressed as RFC 7692 7.2.1 says: raw deflate, sync flush, trailer removed."""
    c = zlib.compressobj(9, zlib.DEFLATED, -wbits, 9)
    out = c.compress(data) + c.flush(zlib.Z_SYNC_FLUSH)
    assert out.endswith(b"\x00\x00\xff\xff")
    return out[:-4]


# 64 MiB of zeros in about 64 KiB: more than a thousand to one.
BOMB = deflate(bytes(64 << 20))


def close_sent(codec, conn, *, by_server: bool):
    """The close frame a connection sent last: (code, reason)."""
    sent = frames(codec, conn.data_to_send(), from_client=not by_server)
    b0, opcode, payload = sent[-1]
    assert opcode == OP_CLOSE and b0 & 0x70 == 0, sent
    return int.from_bytes(payload[:2], "big"), payload[2:].decode()


def open_server(codec, **kw):
    server, _ = open_pair(codec, PerMessageDeflate(), PerMessageDeflate(), **kw)
    return server


# --------------------------------------------------------------------------------------------
# Decompression bombs.


@pytest.mark.parametrize("size", [2_000, 8_000, 64_000])
def test_a_small_bomb_closes_with_1009_and_memory_stays_under_twice_the_limit(codec, size):
    server = open_server(codec, max_message_size=LIMIT)
    data = frame(OP_BINARY, BOMB[:size], rsv=0x40, mask=True)
    assert len(data) < size + 20  # a few KiB that would inflate to megabytes
    tracemalloc.start()
    try:
        server.receive_data(data)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 2 * LIMIT, f"peak {peak} bytes for a limit of {LIMIT}"
    assert server.events() == []
    code, reason = close_sent(codec, server, by_server=True)
    assert code == 1009 and "limit" in reason
    assert server.state is State.CLOSING and server.should_close_transport
    server.receive_data(b"")
    [closed] = server.events()
    assert isinstance(closed, ConnectionClosed) and closed.sent_code == 1009


def test_a_bomb_against_a_large_limit_costs_about_the_limit(codec):
    limit = 16 << 20
    server = open_server(codec, max_message_size=limit)
    tracemalloc.start()
    try:
        server.receive_data(frame(OP_BINARY, BOMB, rsv=0x40, mask=True))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1.25 * limit, peak
    assert close_sent(codec, server, by_server=True)[0] == 1009


def test_a_bomb_spread_over_many_fragments_closes_with_1009(codec):
    server = open_server(codec, max_message_size=LIMIT)
    pieces = [BOMB[i : i + 500] for i in range(0, 40_000, 500)]
    data = frame(OP_BINARY, pieces[0], fin=False, rsv=0x40, mask=True)
    data += b"".join(frame(OP_CONT, p, fin=False, mask=True) for p in pieces[1:])
    tracemalloc.start()
    try:
        server.receive_data(data)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 2 * LIMIT, peak
    assert close_sent(codec, server, by_server=True)[0] == 1009


def test_a_bomb_sent_to_the_client_closes_with_1009(codec):
    _, client = open_pair(codec, PerMessageDeflate(), PerMessageDeflate(), max_message_size=LIMIT)
    client.receive_data(frame(OP_TEXT, BOMB[:4000], rsv=0x40, mask=False))
    assert client.events() == []
    assert close_sent(codec, client, by_server=False)[0] == 1009


def test_a_message_of_exactly_the_limit_inflates(codec):
    server = open_server(codec, max_message_size=LIMIT)
    payload = bytes(LIMIT)
    server.receive_data(frame(OP_BINARY, deflate(payload), rsv=0x40, mask=True))
    assert server.events() == [codec.BinaryMessage(payload)]
    server.receive_data(frame(OP_BINARY, deflate(payload + b"x"), rsv=0x40, mask=True))
    assert close_sent(codec, server, by_server=True)[0] == 1009


def test_messages_are_delivered_before_a_bomb_in_the_same_chunk(codec):
    server = open_server(codec, max_message_size=LIMIT)
    server.receive_data(
        frame(OP_TEXT, deflate(b"first"), rsv=0x40, mask=True)
        + frame(OP_BINARY, BOMB[:3000], rsv=0x40, mask=True)
    )
    assert server.events() == [codec.TextMessage("first")]
    assert close_sent(codec, server, by_server=True)[0] == 1009


@pytest.mark.parametrize("limit", [0, 1, 100, 65_535, 65_536, 65_537, 200_000])
def test_inflater_returns_everything_up_to_the_limit_and_fails_past_it(limit):
    """The stepped inflation: exactly ``limit`` bytes pass, ``limit + 1`` fail with 1009."""
    payload = random.Random(limit).randbytes(limit // 2) + bytes(limit - limit // 2)
    assert Inflater().feed(deflate(payload), True, limit) == payload
    with pytest.raises(ProtocolError) as info:
        Inflater().feed(deflate(payload + b"!"), True, limit)
    assert info.value.code == 1009
    # Without a limit, anything goes.
    assert Inflater().feed(deflate(payload + b"!"), True, -1) == payload + b"!"


def test_inflater_across_pieces_returns_what_each_piece_gives():
    payload = random.Random(1).randbytes(50_000) * 4
    data = deflate(payload)
    inflater = Inflater()
    out = b""
    for i in range(0, len(data), 999):
        piece = data[i : i + 999]
        out += inflater.feed(piece, i + 999 >= len(data), 10**6 - len(out))
    assert out == payload


# --------------------------------------------------------------------------------------------
# Fragmented compressed messages.


@pytest.mark.parametrize("pieces", [2, 10, 300])
def test_a_compressed_message_fragmented_over_many_frames(codec, pieces):
    server = open_server(codec)
    text = "".join(f"line {i}: h\u00e9llo w\u00f6rld \u20ac\n" for i in range(20_000))
    data = deflate(text.encode())
    step = -(-len(data) // pieces)
    chunks = [data[i : i + step] for i in range(0, len(data), step)]
    wire = frame(OP_TEXT, chunks[0], fin=False, rsv=0x40, mask=True)
    for i, chunk in enumerate(chunks[1:], 2):
        wire += frame(OP_CONT, chunk, fin=i == len(chunks), mask=True)
    # Fed in random chunks: frame and piece boundaries fall anywhere.
    rnd = random.Random(pieces)
    pos = 0
    events = []
    while pos < len(wire):
        n = rnd.randrange(1, 4000)
        server.receive_data(wire[pos : pos + n])
        events += server.events()
        pos += n
    assert events == [codec.TextMessage(text)]


def test_a_control_frame_between_compressed_fragments(codec):
    server = open_server(codec)
    data = deflate(b"abc" * 1000)
    server.receive_data(
        frame(OP_BINARY, data[:10], fin=False, rsv=0x40, mask=True)
        + frame(OP_PING, b"in between", mask=True)
        + frame(OP_CONT, data[10:], mask=True)
    )
    assert server.events() == [codec.Ping(b"in between"), codec.BinaryMessage(b"abc" * 1000)]
    [(b0, opcode, payload)] = frames(codec, server.data_to_send(), from_client=False)
    assert (opcode, payload, b0 & 0x70) == (OP_PONG, b"in between", 0)


def test_compressed_and_plain_messages_interleave(codec):
    """RFC 7692 6: RSV1 is per message; a plain message between compressed ones is fine."""
    server = open_server(codec)
    c = zlib.compressobj(6, zlib.DEFLATED, -15)

    def takeover(data: bytes) -> bytes:
        return (c.compress(data) + c.flush(zlib.Z_SYNC_FLUSH))[:-4]

    server.receive_data(
        frame(OP_TEXT, takeover(b"hello hello"), rsv=0x40, mask=True)
        + frame(OP_TEXT, b"plain", mask=True)
        + frame(OP_TEXT, takeover(b"hello hello"), rsv=0x40, mask=True)
        + frame(OP_BINARY, b"", rsv=0x40, mask=True)
    )
    assert server.events() == [
        codec.TextMessage("hello hello"),
        codec.TextMessage("plain"),
        codec.TextMessage("hello hello"),
        codec.BinaryMessage(b""),
    ]


def test_invalid_utf8_inside_a_compressed_text_message_closes_with_1007(codec):
    server = open_server(codec)
    server.receive_data(frame(OP_TEXT, deflate(b"ok \xff\xfe"), rsv=0x40, mask=True))
    assert close_sent(codec, server, by_server=True)[0] == 1007


# --------------------------------------------------------------------------------------------
# Reserved bits.


@pytest.mark.parametrize(
    "bad",
    [
        frame(OP_PING, b"x", rsv=0x40, mask=True),
        frame(OP_PONG, b"x", rsv=0x40, mask=True),
        frame(OP_CLOSE, b"\x03\xe8", rsv=0x40, mask=True),
        frame(OP_TEXT, b"x", rsv=0x20, mask=True),
        frame(OP_TEXT, b"x", rsv=0x10, mask=True),
        frame(OP_TEXT, b"x", rsv=0x60, mask=True),
    ],
    ids=["ping-rsv1", "pong-rsv1", "close-rsv1", "text-rsv2", "text-rsv3", "text-rsv1+2"],
)
def test_reserved_bits_that_permessage_deflate_does_not_own_close_with_1002(codec, bad):
    server = open_server(codec)
    server.receive_data(bad)
    assert server.events() == []
    assert close_sent(codec, server, by_server=True)[0] == 1002


def test_rsv1_on_a_continuation_frame_closes_with_1002(codec):
    server = open_server(codec)
    data = deflate(b"abcdef" * 100)
    server.receive_data(
        frame(OP_TEXT, data[:5], fin=False, rsv=0x40, mask=True)
        + frame(OP_CONT, data[5:], rsv=0x40, mask=True)
    )
    assert server.events() == []
    code, reason = close_sent(codec, server, by_server=True)
    assert code == 1002 and "RSV1" in reason


def test_rsv1_on_a_continuation_of_a_plain_message_closes_with_1002(codec):
    server = open_server(codec)
    server.receive_data(
        frame(OP_TEXT, b"abc", fin=False, mask=True)
        + frame(OP_CONT, deflate(b"def"), rsv=0x40, mask=True)
    )
    assert close_sent(codec, server, by_server=True)[0] == 1002


@pytest.mark.parametrize("role", ["server", "client"])
@pytest.mark.parametrize(
    ("server_pmd", "client_pmd"),
    [(None, None), (PerMessageDeflate(), None), (None, PerMessageDeflate())],
    ids=["neither", "server-only", "client-only"],
)
def test_compressed_frames_without_negotiation_close_with_1002(codec, role, server_pmd, client_pmd):
    server, client = open_pair(codec, server_pmd, client_pmd)
    assert server.extensions == () and client.extensions == ()
    conn = server if role == "server" else client
    conn.receive_data(frame(OP_TEXT, deflate(b"hello"), rsv=0x40, mask=role == "server"))
    assert conn.events() == []
    code, reason = close_sent(codec, conn, by_server=role == "server")
    assert code == 1002 and "reserved" in reason


# --------------------------------------------------------------------------------------------
# Corrupt data.


@pytest.mark.parametrize(
    "payload",
    [
        b"\xff\xff\xff\xff",  # block type 3 is reserved
        b"\x07\x00",  # stored block whose length check is missing
        deflate(b"x" * 1000)[:-3] + b"\xff\xff\xff",
    ],
    ids=["reserved-block-type", "truncated-stored", "bad-distance"],
)
def test_corrupt_deflate_data_closes_with_1007_and_says_why(codec, payload):
    server = open_server(codec)
    server.receive_data(frame(OP_BINARY, payload, rsv=0x40, mask=True))
    assert server.events() == []
    code, reason = close_sent(codec, server, by_server=True)
    assert code == 1007
    assert reason.startswith("compressed message cannot be inflated")
    assert len(reason.encode()) <= 123


# --------------------------------------------------------------------------------------------
# What we send.


def test_control_frames_are_never_compressed(codec):
    server, client = open_pair(
        codec, PerMessageDeflate(threshold=0), PerMessageDeflate(threshold=0)
    )
    long = b"p" * 125
    for conn, is_server in ((server, True), (client, False)):
        conn.ping(long)
        conn.pong(long)
        conn.close(1000, "r" * 123)
        sent = frames(codec, conn.data_to_send(), from_client=not is_server)
        assert [(op, b0 & 0x70) for b0, op, _ in sent] == [
            (OP_PING, 0),
            (OP_PONG, 0),
            (OP_CLOSE, 0),
        ]
        assert sent[0][2] == long and sent[1][2] == long


def test_automatic_pongs_and_close_echoes_are_not_compressed(codec):
    server, _client = open_pair(
        codec, PerMessageDeflate(threshold=0), PerMessageDeflate(threshold=0)
    )
    server.receive_data(
        frame(OP_PING, b"x" * 125, mask=True) + frame(OP_CLOSE, b"\x03\xe8bye", mask=True)
    )
    sent = frames(codec, server.data_to_send(), from_client=False)
    assert [(op, b0 & 0x70) for b0, op, _ in sent] == [(OP_PONG, 0), (OP_CLOSE, 0)]


def test_fragments_we_send_are_not_compressed(codec):
    _server, client = open_pair(
        codec, PerMessageDeflate(threshold=0), PerMessageDeflate(threshold=0)
    )
    client.send_fragment("a" * 1000)
    client.send_fragment("b" * 1000, final=True)
    sent = frames(codec, client.data_to_send(), from_client=True)
    assert [b0 & 0x70 for b0, _, _ in sent] == [0, 0]
    assert [len(p) for _, _, p in sent] == [1000, 1000]


@pytest.mark.parametrize("threshold", [0, 1, 128, 1000])
def test_the_threshold_decides_what_is_compressed(codec, threshold):
    server, client = open_pair(
        codec, PerMessageDeflate(threshold=threshold), PerMessageDeflate(threshold=threshold)
    )
    for conn, peer, is_server in ((server, client, True), (client, server, False)):
        sizes = sorted({0, max(threshold - 1, 0), threshold, threshold + 1})
        for size in sizes:
            conn.send_binary(b"z" * size)
            conn.send_text("z" * size)
        data = conn.data_to_send()
        sent = frames(codec, data, from_client=not is_server)
        expected = [0x40 if size >= threshold else 0 for size in sizes for _ in (0, 1)]
        assert [b0 & 0x70 for b0, _, _ in sent] == expected
        peer.receive_data(data)
        got = peer.events()
        assert [len(e.data) for e in got] == [s for s in sizes for _ in (0, 1)]


def test_default_threshold_is_128_bytes(codec):
    server, _client = open_pair(codec, PerMessageDeflate(), PerMessageDeflate())
    server.send_text("a" * 127)
    server.send_text("a" * 128)
    sent = frames(codec, server.data_to_send(), from_client=False)
    assert [b0 & 0x40 for b0, _, _ in sent] == [0, 0x40]


def test_a_negative_threshold_turns_compression_off_for_sending(codec):
    server, client = open_pair(codec, PerMessageDeflate(threshold=-1), PerMessageDeflate())
    server.send_text("a" * 10_000)
    sent = frames(codec, server.data_to_send(), from_client=False)
    assert [(b0 & 0x40, len(p)) for b0, _, p in sent] == [(0, 10_000)]
    # It still inflates what the peer compresses.
    client.send_text("b" * 10_000)
    server.receive_data(client.data_to_send())
    assert server.events() == [codec.TextMessage("b" * 10_000)]


def test_incompressible_messages_still_round_trip(codec):
    server, client = open_pair(codec, PerMessageDeflate(), PerMessageDeflate())
    payload = random.Random(5).randbytes(100_000)
    client.send_binary(payload)
    data = client.data_to_send()
    assert data[0] & 0x40
    server.receive_data(data)
    assert server.events() == [codec.BinaryMessage(payload)]


def test_a_connection_whose_inflater_was_interrupted_closes_with_1011(codec, monkeypatch):
    # A MemoryError (or a KeyboardInterrupt) out of the inflater leaves the stream at an
    # unknown point: it reaches the caller, and the next bytes close the connection with
    # 1011 instead of being parsed from the wrong place.
    server, _ = open_pair(codec, PerMessageDeflate(), PerMessageDeflate())
    feed = Inflater.feed
    interrupted = []

    def once(self, data, final, limit):
        if not interrupted:
            interrupted.append(True)
            raise MemoryError
        return feed(self, data, final, limit)

    monkeypatch.setattr(Inflater, "feed", once)
    with pytest.raises(MemoryError):
        server.receive_data(frame(OP_TEXT, deflate(b"hello"), rsv=0x40, mask=True))
    server.receive_data(frame(OP_TEXT, deflate(b"again"), rsv=0x40, mask=True))
    reason = "parser unusable: an earlier feed() was interrupted by MemoryError"
    assert close_sent(codec, server, by_server=True) == (1011, reason)
    assert server.state is State.CLOSING
