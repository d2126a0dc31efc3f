"""FrameParser's hook for compressed messages (RFC 7692: RSV1 marks a compressed message).

The inflater here is a plain raw-DEFLATE decoder written for the tests, so these tests pin the
parser's side of the contract only: when it calls ``inflater.feed(data, final, limit)``, what
it does with the result, and which rules still apply.
"""

from __future__ import annotations

import random
import zlib
from typing import List, Tuple

import pytest
from hypothesis import given
from hypothesis import strategies as st

from turbows.exceptions import ProtocolError

from codec_reference import (
    OP_BINARY,
    OP_CONT,
    OP_PING,
    OP_TEXT,
    chunks_of,
    client_frame,
    describe_all,
    feed_all,
)
from codec_strategies import chunkings, plans

RSV1 = 0x40
TAIL = b"\x00\x00\xff\xff"  # RFC 7692 7.2.1: removed by the sender, appended by the receiver


def deflate(data: bytes) -> bytes:
    """One message compressed as RFC 7692 7.2.1 says (no context takeover)."""
    c = zlib.compressobj(wbits=-15)
    out = c.compress(data) + c.flush(zlib.Z_SYNC_FLUSH)
    assert out.endswith(TAIL)
    return out[:-4]


class Inflater:
    """Raw DEFLATE, one message at a time, bounded to ``limit + 1`` bytes per call."""

    def __init__(self) -> None:
        self.calls: List[Tuple[bytes, bool, int]] = []
        self._d = zlib.decompressobj(wbits=-15)

    def feed(self, data: bytes, final: bool, limit: int) -> bytes:
        self.calls.append((bytes(data), final, limit))
        if final:
            data = bytes(data) + TAIL
        out = self._d.decompress(data, limit + 1 if limit >= 0 else 0)
        if final:
            self._d = zlib.decompressobj(wbits=-15)
        return out


def error_of(parser, data: bytes) -> ProtocolError:
    with pytest.raises(ProtocolError) as info:
        parser.feed(data)
    return info.value


def test_a_compressed_text_message_is_inflated_and_delivered_as_text(codec):
    inflater = Inflater()
    parser = codec.FrameParser(inflater=inflater)
    text = "compressed ✓ " * 50
    (msg,) = parser.feed(client_frame(OP_TEXT, deflate(text.encode()), rsv=RSV1))
    assert msg.data == text and msg.final is True
    assert [final for _, final, _ in inflater.calls][-1] is True
    assert sum(final for _, final, _ in inflater.calls) == 1


def test_a_compressed_fragmented_message_sets_rsv1_on_its_first_frame_only(codec):
    inflater = Inflater()
    parser = codec.FrameParser(inflater=inflater)
    payload = bytes(range(256)) * 20
    wire = deflate(payload)
    stream = (
        client_frame(OP_BINARY, wire[:10], fin=False, rsv=RSV1)
        + client_frame(OP_PING, b"in between")
        + client_frame(OP_CONT, wire[10:30], fin=False)
        + client_frame(OP_CONT, wire[30:])
    )
    items = parser.feed(stream)
    assert [type(i).__name__ for i in items] == ["Ping", "BinaryMessage"]
    assert items[1].data == payload
    assert b"".join(data for data, _, _ in inflater.calls) == wire


def test_an_uncompressed_message_does_not_go_through_the_inflater(codec):
    inflater = Inflater()
    parser = codec.FrameParser(inflater=inflater)
    (msg,) = parser.feed(client_frame(OP_TEXT, b"plain"))
    assert msg.data == "plain"
    assert inflater.calls == []


def test_the_inflater_gets_the_remaining_room_under_max_message_size_as_its_limit(codec):
    inflater = Inflater()
    parser = codec.FrameParser(max_message_size=5000, inflater=inflater)
    (msg,) = parser.feed(client_frame(OP_BINARY, deflate(b"a" * 3000), rsv=RSV1))
    assert len(msg.data) == 3000
    assert inflater.calls[0][2] == 5000
    inflater = Inflater()
    parser = codec.FrameParser(max_message_size=None, inflater=inflater)
    parser.feed(client_frame(OP_BINARY, deflate(b"a" * 3000), rsv=RSV1))
    assert {limit for _, _, limit in inflater.calls} == {-1}


def test_a_message_that_inflates_past_max_message_size_fails_with_1009(codec):
    # A small frame that inflates to far more than the limit (a "zip bomb").
    wire = deflate(b"\x00" * 200_000)
    assert len(wire) < 1000
    parser = codec.FrameParser(max_message_size=10_000, inflater=Inflater())
    assert error_of(parser, client_frame(OP_BINARY, wire, rsv=RSV1)).code == 1009


def test_a_message_that_inflates_to_exactly_max_message_size_is_accepted(codec):
    parser = codec.FrameParser(max_message_size=10_000, inflater=Inflater())
    (msg,) = parser.feed(client_frame(OP_BINARY, deflate(b"z" * 10_000), rsv=RSV1))
    assert len(msg.data) == 10_000


def test_an_incompressible_message_at_max_message_size_is_accepted(codec):
    # Deflate makes random data slightly longer: the wire payload exceeds the limit while the
    # message itself (what max_message_size bounds) is exactly at it.
    payload = random.Random(1).randbytes(1000)
    wire = deflate(payload)
    assert len(wire) > 1000
    parser = codec.FrameParser(max_message_size=1000, inflater=Inflater())
    (msg,) = parser.feed(client_frame(OP_BINARY, wire, rsv=RSV1))
    assert msg.data == payload


def test_invalid_utf8_after_inflation_fails_with_1007(codec):
    parser = codec.FrameParser(inflater=Inflater())
    wire = deflate("fine ".encode() * 10 + b"\xed\xa0\x80")
    assert error_of(parser, client_frame(OP_TEXT, wire, rsv=RSV1)).code == 1007


def test_incomplete_utf8_at_the_end_of_an_inflated_text_fails_with_1007(codec):
    parser = codec.FrameParser(inflater=Inflater())
    wire = deflate(b"cut \xe2\x82")
    assert error_of(parser, client_frame(OP_TEXT, wire, rsv=RSV1)).code == 1007


@pytest.mark.parametrize("rsv", [0x20, 0x10, 0x60, 0x50])
def test_rsv2_and_rsv3_are_a_protocol_error_even_with_an_inflater(codec, rsv):
    parser = codec.FrameParser(inflater=Inflater())
    assert error_of(parser, client_frame(OP_TEXT, b"x", rsv=rsv)).code == 1002


def test_rsv1_on_a_continuation_frame_is_a_protocol_error(codec):
    parser = codec.FrameParser(inflater=Inflater())
    wire = deflate(b"message")
    assert parser.feed(client_frame(OP_BINARY, wire[:3], fin=False, rsv=RSV1)) == []
    assert error_of(parser, client_frame(OP_CONT, wire[3:], rsv=RSV1)).code == 1002


def test_rsv1_on_a_control_frame_is_a_protocol_error(codec):
    parser = codec.FrameParser(inflater=Inflater())
    assert error_of(parser, client_frame(OP_PING, b"", rsv=RSV1)).code == 1002


def test_an_inflater_returning_something_else_than_bytes_raises_type_error(codec):
    class Broken:
        def feed(self, data, final, limit):
            return bytearray(b"not bytes")

    parser = codec.FrameParser(inflater=Broken())
    with pytest.raises(TypeError):
        parser.feed(client_frame(OP_BINARY, b"\x00", rsv=RSV1))


@given(plan=plans(max_messages=4), compress=st.lists(st.booleans(), max_size=8), data=st.data())
def test_compressed_conversations_round_trip_in_any_chunking(codec, plan, compress, data):
    # Compress some of the plan's messages: RSV1 on the first frame, the deflated payload
    # spread over the message's frames in the same proportions.
    frames = []
    index = 0
    pending: List[Tuple[int, bytes, bool]] = []
    for opcode, payload, fin in plan.frames:
        if opcode >= 8:
            frames.append(client_frame(opcode, payload))
            continue
        pending.append((opcode, payload, fin))
        if not fin:
            continue
        squeeze = compress[index % len(compress)] if compress else False
        index += 1
        if squeeze:
            wire = deflate(b"".join(p for _, p, _ in pending))
            sizes = [len(p) for _, p, _ in pending]
            cuts = [min(len(wire), sum(sizes[: i + 1])) for i in range(len(pending) - 1)]
            pieces = [wire[a:b] for a, b in zip([0] + cuts, cuts + [len(wire)])]
            for i, ((op, _, f), piece) in enumerate(zip(pending, pieces)):
                frames.append(client_frame(op, piece, fin=f, rsv=RSV1 if i == 0 else 0))
        else:
            frames.extend(client_frame(op, p, fin=f) for op, p, f in pending)
        pending = []
    stream = b"".join(frames)
    chunks = data.draw(chunkings(stream), label="chunks")
    parser = codec.FrameParser(max_message_size=None, inflater=Inflater())
    items = []
    for chunk in chunks:
        items.extend(parser.feed(chunk))
    assert describe_all(items) == plan.expected(fragments=False, text_as_bytes=False)


def test_both_codecs_agree_on_compressed_streams_with_damage(python_codec, cython_codec):
    rng = random.Random(7692)
    for _ in range(300):
        text = "".join(rng.choice("ab✓😀 \n") for _ in range(rng.randrange(0, 300)))
        wire = bytearray(deflate(text.encode()))
        for _ in range(rng.randrange(0, 3)):
            if wire:
                wire[rng.randrange(len(wire))] ^= 1 << rng.randrange(8)
        stream = client_frame(OP_TEXT, bytes(wire), rsv=RSV1) + client_frame(OP_PING, b"after")
        chunks = chunks_of(stream, rng.randrange(1, 40))
        options = {"max_message_size": rng.choice([None, 100, 1000])}
        results = []
        for codec in (python_codec, cython_codec):
            try:
                parser = codec.FrameParser(inflater=Inflater(), **options)
                results.append(feed_all(parser, chunks, ProtocolError))
            except zlib.error as exc:  # a corrupted stream can make the inflater itself fail
                results.append(("zlib.error", str(exc)))
        assert results[0] == results[1]
