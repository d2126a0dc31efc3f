"""FrameParser: every RFC 6455 rule and configured limit that makes a stream a protocol error."""

from __future__ import annotations

import pytest

from turbows.exceptions import ProtocolError

from codec_reference import (
    OP_BINARY,
    OP_CLOSE,
    OP_CONT,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    client_frame,
    raw_frame,
    server_frame,
)


def expect_error(parser, data: bytes, code: int) -> ProtocolError:
    with pytest.raises(ProtocolError) as info:
        parser.feed(data)
    exc = info.value
    assert exc.code == code, exc
    assert isinstance(exc.reason, str) and exc.reason
    # The reason is meant to be sent as the close reason (RFC 6455 5.5: <= 123 bytes).
    assert len(exc.reason.encode("utf-8")) <= 123
    return exc


# --------------------------------------------------------------------------------------------
# Frame header rules (RFC 6455 5.2).


@pytest.mark.parametrize("rsv", [0x40, 0x20, 0x10, 0x70])
@pytest.mark.parametrize("opcode", [OP_TEXT, OP_BINARY, OP_PING, OP_CLOSE])
def test_reserved_bits_set_without_an_extension_are_a_protocol_error(codec, rsv, opcode):
    parser = codec.FrameParser()
    expect_error(parser, client_frame(opcode, b"x", rsv=rsv), 1002)


def test_reserved_bits_on_a_continuation_frame_are_a_protocol_error(codec):
    parser = codec.FrameParser()
    assert parser.feed(client_frame(OP_TEXT, b"a", fin=False)) == []
    expect_error(parser, client_frame(OP_CONT, b"b", rsv=0x40), 1002)


def test_reserved_bits_are_detected_from_the_first_two_bytes(codec):
    parser = codec.FrameParser()
    frame = client_frame(OP_BINARY, b"payload", rsv=0x20)
    expect_error(parser, frame[:2], 1002)


@pytest.mark.parametrize("opcode", [3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF])
def test_reserved_opcodes_are_a_protocol_error(codec, opcode):
    parser = codec.FrameParser()
    expect_error(parser, client_frame(opcode, b"data"), 1002)
    parser = codec.FrameParser(require_mask=False)
    expect_error(parser, server_frame(opcode)[:2], 1002)


@pytest.mark.parametrize("opcode", [3, 7, 0xB, 0xF])
def test_reserved_opcode_inside_a_fragmented_message_is_a_protocol_error(codec, opcode):
    parser = codec.FrameParser()
    assert parser.feed(client_frame(OP_BINARY, b"a", fin=False)) == []
    expect_error(parser, client_frame(opcode, b"b", fin=False), 1002)


@pytest.mark.parametrize("opcode", [OP_CLOSE, OP_PING, OP_PONG])
def test_fragmented_control_frame_is_a_protocol_error(codec, opcode):
    # RFC 6455 5.5: control frames MUST NOT be fragmented.
    parser = codec.FrameParser()
    expect_error(parser, client_frame(opcode, b"", fin=False), 1002)


@pytest.mark.parametrize("opcode", [OP_CLOSE, OP_PING, OP_PONG])
@pytest.mark.parametrize("length", [126, 127, 1000, 65536])
def test_control_frame_longer_than_125_bytes_is_a_protocol_error(codec, opcode, length):
    # RFC 6455 5.5: control frames MUST have a payload length of 125 bytes or less.
    payload = b"\x03\xe8" + b"r" * (length - 2)
    parser = codec.FrameParser()
    expect_error(parser, client_frame(opcode, payload), 1002)


@pytest.mark.parametrize("opcode", [OP_PING, OP_PONG])
def test_control_frame_of_exactly_125_bytes_is_accepted(codec, opcode):
    parser = codec.FrameParser()
    (item,) = parser.feed(client_frame(opcode, bytes(range(125))))
    assert item.payload == bytes(range(125))


def test_oversized_control_frame_is_detected_from_the_first_two_bytes(codec):
    parser = codec.FrameParser()
    expect_error(parser, client_frame(OP_PING, b"p" * 126)[:2], 1002)


def test_continuation_frame_without_a_message_is_a_protocol_error(codec):
    parser = codec.FrameParser()
    expect_error(parser, client_frame(OP_CONT, b"orphan"), 1002)


def test_continuation_frame_after_a_finished_message_is_a_protocol_error(codec):
    parser = codec.FrameParser()
    assert parser.feed(client_frame(OP_TEXT, b"a", fin=False)) == []
    (msg,) = parser.feed(client_frame(OP_CONT, b"b"))
    assert msg.data == "ab"
    expect_error(parser, client_frame(OP_CONT, b"c"), 1002)


@pytest.mark.parametrize(
    ("first", "second"),
    [(OP_TEXT, OP_TEXT), (OP_TEXT, OP_BINARY), (OP_BINARY, OP_TEXT), (OP_BINARY, OP_BINARY)],
)
@pytest.mark.parametrize("second_fin", [True, False])
def test_new_data_frame_during_a_fragmented_message_is_a_protocol_error(
    codec, first, second, second_fin
):
    parser = codec.FrameParser()
    assert parser.feed(client_frame(first, b"part", fin=False)) == []
    expect_error(parser, client_frame(second, b"new", fin=second_fin), 1002)


@pytest.mark.parametrize("opcode", [OP_TEXT, OP_BINARY, OP_PING, OP_PONG, OP_CLOSE])
def test_unmasked_frame_from_a_client_is_a_protocol_error(codec, opcode):
    # RFC 6455 5.1: a client MUST mask all frames it sends; the server MUST close on an
    # unmasked frame.
    parser = codec.FrameParser(require_mask=True)
    expect_error(parser, server_frame(opcode, b""), 1002)


@pytest.mark.parametrize("opcode", [OP_TEXT, OP_BINARY, OP_PING, OP_PONG, OP_CLOSE])
def test_masked_frame_from_a_server_is_a_protocol_error(codec, opcode):
    # RFC 6455 5.1: a server MUST NOT mask any frames it sends.
    parser = codec.FrameParser(require_mask=False)
    expect_error(parser, client_frame(opcode, b""), 1002)


def test_masking_rule_applies_to_continuation_frames(codec):
    parser = codec.FrameParser(require_mask=True)
    assert parser.feed(client_frame(OP_TEXT, b"a", fin=False)) == []
    expect_error(parser, server_frame(OP_CONT, b"b"), 1002)
    parser = codec.FrameParser(require_mask=False)
    assert parser.feed(server_frame(OP_TEXT, b"a", fin=False)) == []
    expect_error(parser, client_frame(OP_CONT, b"b"), 1002)


def test_the_parser_requires_masking_by_default(codec):
    parser = codec.FrameParser()
    expect_error(parser, server_frame(OP_TEXT, b"hi"), 1002)


@pytest.mark.parametrize("max_size", [None, 1 << 20])
@pytest.mark.parametrize("length", [1 << 63, (1 << 64) - 1, (1 << 63) + 5])
def test_64_bit_length_with_the_most_significant_bit_set_is_a_protocol_error(
    codec, max_size, length
):
    # RFC 6455 5.2: "the most significant bit MUST be 0".
    parser = codec.FrameParser(max_message_size=max_size)
    expect_error(parser, client_frame(OP_BINARY, b"", length=length, length_bits=64), 1002)


def test_64_bit_length_just_below_the_msb_is_not_a_protocol_error(codec):
    parser = codec.FrameParser(max_message_size=None)
    header = client_frame(OP_BINARY, b"", length=(1 << 63) - 1, length_bits=64)
    assert parser.feed(header + b"some payload") == []


# --------------------------------------------------------------------------------------------
# max_message_size (close code 1009).


@pytest.mark.parametrize("max_size", [1 << 62, 1 << 63, 1 << 80])
def test_limits_beyond_2_to_the_62_are_capped_there_in_both_codecs(codec, max_size):
    # Found by the coverage-guided fuzzer: the C parser caps the limit at 2**62 (a long long);
    # the pure one kept it as given and waited for the payload where C failed with 1009.
    parser = codec.FrameParser(max_message_size=max_size)
    header = client_frame(OP_BINARY, b"", length=(1 << 62) + 1, length_bits=64)
    expect_error(parser, header, 1009)


def test_buffered_is_zero_after_an_error(codec):
    # Found by the coverage-guided fuzzer: a split header finished in the C parser's slow path
    # left the bytes counted after a 1007.
    parser = codec.FrameParser()
    assert parser.feed(client_frame(OP_TEXT, b"\xff\xfe\xfd\xfc\xfb")[:1]) == []
    expect_error(parser, client_frame(OP_TEXT, b"\xff\xfe\xfd\xfc\xfb")[1:], 1007)
    assert parser.buffered == 0


def test_header_alone_then_payload(codec):
    # A chunk that ends right after a data frame's header (an empty payload piece: the C parser
    # must not touch its message buffer, which is not allocated yet; clang's UBSan caught it).
    parser = codec.FrameParser()
    frame = client_frame(OP_BINARY, b"hello")
    assert parser.feed(frame[:6]) == []
    [message] = parser.feed(frame[6:])
    assert message.data == b"hello"


def test_frame_announcing_more_than_max_message_size_fails_with_1009_from_its_header(codec):
    parser = codec.FrameParser(max_message_size=1000)
    header = client_frame(OP_BINARY, b"", length=1001)
    # No payload byte was sent: the header alone is enough to refuse the message.
    expect_error(parser, header, 1009)


@pytest.mark.parametrize("length", [126, 65535, 65536, 1 << 40])
def test_1009_is_raised_for_every_length_encoding(codec, length):
    parser = codec.FrameParser(max_message_size=125)
    expect_error(parser, client_frame(OP_TEXT, b"", length=length), 1009)


def test_1009_is_raised_in_the_call_that_completes_the_header(codec):
    parser = codec.FrameParser(max_message_size=100)
    header = client_frame(OP_BINARY, b"", length=70000)
    for i in range(1, len(header)):
        assert parser.feed(header[i - 1 : i]) == []
    expect_error(parser, header[-1:], 1009)


@pytest.mark.parametrize("opcode", [OP_TEXT, OP_BINARY])
def test_message_exactly_at_max_message_size_is_accepted(codec, opcode):
    parser = codec.FrameParser(max_message_size=300)
    (msg,) = parser.feed(client_frame(opcode, b"m" * 300))
    assert len(msg.data) == 300


def test_fragmented_message_exactly_at_max_message_size_is_accepted(codec):
    parser = codec.FrameParser(max_message_size=300)
    stream = (
        client_frame(OP_BINARY, b"a" * 100, fin=False)
        + client_frame(OP_CONT, b"b" * 150, fin=False)
        + client_frame(OP_CONT, b"c" * 50)
    )
    (msg,) = parser.feed(stream)
    assert msg.data == b"a" * 100 + b"b" * 150 + b"c" * 50


def test_fragments_that_add_up_to_more_than_max_message_size_fail_with_1009(codec):
    parser = codec.FrameParser(max_message_size=300)
    assert parser.feed(client_frame(OP_TEXT, b"a" * 200, fin=False)) == []
    assert parser.feed(client_frame(OP_CONT, b"b" * 100, fin=False)) == []
    # The total would reach 301: refused as soon as this header is read, before its payload.
    expect_error(parser, client_frame(OP_CONT, b"", length=1, fin=True)[:6], 1009)


def test_fragment_overflow_is_reported_with_the_items_completed_before_it(codec):
    parser = codec.FrameParser(max_message_size=10)
    stream = (
        client_frame(OP_TEXT, b"12345", fin=False)
        + client_frame(OP_PING, b"p")
        + client_frame(OP_CONT, b"678901")
    )
    exc = expect_error(parser, stream, 1009)
    assert [type(i).__name__ for i in exc.items] == ["Ping"]


def test_max_message_size_is_per_message(codec):
    parser = codec.FrameParser(max_message_size=64)
    stream = b"".join(client_frame(OP_BINARY, bytes([i]) * 64) for i in range(5))
    assert [m.data for m in parser.feed(stream)] == [bytes([i]) * 64 for i in range(5)]


def test_control_frames_do_not_count_towards_max_message_size(codec):
    parser = codec.FrameParser(max_message_size=4)
    stream = (
        client_frame(OP_TEXT, b"ab", fin=False)
        + client_frame(OP_PING, b"p" * 125)
        + client_frame(OP_CONT, b"cd")
    )
    items = parser.feed(stream)
    assert [type(i).__name__ for i in items] == ["Ping", "TextMessage"]
    assert items[1].data == "abcd"


def test_max_message_size_none_means_unlimited(codec):
    size = (1 << 20) + 4096  # above the default limit
    parser = codec.FrameParser(max_message_size=None)
    (msg,) = parser.feed(client_frame(OP_BINARY, b"\x07" * size))
    assert len(msg.data) == size


def test_default_max_message_size_is_one_mebibyte(codec):
    parser = codec.FrameParser()
    (msg,) = parser.feed(client_frame(OP_BINARY, b"\x01" * (1 << 20)))
    assert len(msg.data) == 1 << 20
    parser = codec.FrameParser()
    expect_error(parser, client_frame(OP_BINARY, b"", length=(1 << 20) + 1), 1009)


def test_max_message_size_zero_accepts_only_empty_messages(codec):
    parser = codec.FrameParser(max_message_size=0)
    assert [m.data for m in parser.feed(client_frame(OP_TEXT, b""))] == [""]
    (ping,) = parser.feed(client_frame(OP_PING, b"still fine"))
    assert ping.payload == b"still fine"
    expect_error(parser, client_frame(OP_BINARY, b"x"), 1009)


def test_max_message_size_applies_in_fragments_mode(codec):
    parser = codec.FrameParser(max_message_size=10, fragments=True)
    (first,) = parser.feed(client_frame(OP_BINARY, b"x" * 8, fin=False))
    assert first.data == b"x" * 8 and first.final is False
    expect_error(parser, client_frame(OP_CONT, b"yyy"), 1009)


def test_negative_max_message_size_is_rejected(codec):
    with pytest.raises(ValueError):
        codec.FrameParser(max_message_size=-1)


# --------------------------------------------------------------------------------------------
# UTF-8 in text messages (close code 1007, RFC 6455 8.1).


@pytest.mark.parametrize(
    "payload",
    [b"\xff", b"abc\xc0\xaf", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"ok\x80ok", b"\xe0\x80\x80"],
)
def test_invalid_utf8_in_a_text_message_fails_with_1007(codec, payload):
    parser = codec.FrameParser()
    expect_error(parser, client_frame(OP_TEXT, payload), 1007)


def test_invalid_utf8_in_a_binary_message_is_accepted(codec):
    parser = codec.FrameParser()
    (msg,) = parser.feed(client_frame(OP_BINARY, b"\xff\xed\xa0\x80"))
    assert msg.data == b"\xff\xed\xa0\x80"


def test_invalid_utf8_in_a_fragment_fails_before_the_message_ends(codec):
    parser = codec.FrameParser()
    assert parser.feed(client_frame(OP_TEXT, "€uro".encode(), fin=False)) == []
    # The second, non-final fragment carries the bad byte: no need to wait for the last one.
    expect_error(parser, client_frame(OP_CONT, b"fine\xfe", fin=False), 1007)


def test_invalid_utf8_fails_at_the_feed_call_that_carries_the_bad_byte(codec):
    payload = b"a" * 50 + b"\xff" + b"b" * 49
    frame = client_frame(OP_TEXT, payload)
    header_len = len(frame) - len(payload)
    bad_at = header_len + 50
    parser = codec.FrameParser()
    assert parser.feed(frame[:bad_at]) == []
    exc = expect_error(parser, frame[bad_at : bad_at + 1], 1007)
    assert exc.items == []


def test_a_surrogate_split_across_fragments_fails_at_the_fragment_that_makes_it_invalid(codec):
    parser = codec.FrameParser()
    assert parser.feed(client_frame(OP_TEXT, b"x\xed", fin=False)) == []
    expect_error(parser, client_frame(OP_CONT, b"\xa0", fin=False), 1007)


def test_a_surrogate_prefix_fails_without_waiting_for_its_third_byte(codec):
    # b"\xed\xa0" can only start a surrogate: fail fast, even in the middle of a frame.
    payload = b"abc\xed\xa0\x80def"
    frame = client_frame(OP_TEXT, payload)
    cut = len(frame) - len(payload) + 5
    parser = codec.FrameParser()
    assert parser.feed(frame[: cut - 1]) == []
    expect_error(parser, frame[cut - 1 : cut], 1007)


@pytest.mark.parametrize("tail", [b"\xc3", b"\xe2\x82", b"\xf0\x9f\x98"])
def test_incomplete_utf8_at_the_end_of_a_text_message_fails_with_1007(codec, tail):
    parser = codec.FrameParser()
    expect_error(parser, client_frame(OP_TEXT, b"text" + tail), 1007)
    parser = codec.FrameParser()
    assert parser.feed(client_frame(OP_TEXT, b"text", fin=False)) == []
    assert parser.feed(client_frame(OP_CONT, tail, fin=False)) == []
    expect_error(parser, client_frame(OP_CONT, b""), 1007)


def test_incomplete_utf8_at_the_end_of_a_text_fragment_fails_in_fragments_mode(codec):
    parser = codec.FrameParser(fragments=True)
    (first,) = parser.feed(client_frame(OP_TEXT, b"ok\xe2\x82", fin=False))
    assert first.data == "ok"
    expect_error(parser, client_frame(OP_CONT, b""), 1007)


def test_invalid_utf8_fails_with_1007_when_text_is_kept_as_bytes(codec):
    parser = codec.FrameParser(text_as_bytes=True)
    expect_error(parser, client_frame(OP_TEXT, b"\xc1\xbf"), 1007)
    parser = codec.FrameParser(text_as_bytes=True, fragments=True)
    assert parser.feed(client_frame(OP_TEXT, b"ok", fin=False))[0].data == b"ok"
    expect_error(parser, client_frame(OP_CONT, b"\xf5"), 1007)


def test_text_validation_restarts_with_each_message(codec):
    parser = codec.FrameParser()
    # The first message ends cleanly; a continuation byte starting the next one is invalid
    # on its own and must not be glued to the previous message.
    assert parser.feed(client_frame(OP_TEXT, "é".encode()))[0].data == "é"
    expect_error(parser, client_frame(OP_TEXT, b"\xa9"), 1007)


def test_text_validation_is_not_confused_by_an_interleaved_binary_message(codec):
    parser = codec.FrameParser()
    stream = (
        client_frame(OP_BINARY, b"\xff\xff")
        + client_frame(OP_TEXT, "😀".encode()[:2], fin=False)
        + client_frame(OP_PING, b"\xf0")
        + client_frame(OP_CONT, "😀".encode()[2:])
    )
    items = parser.feed(stream)
    assert [type(i).__name__ for i in items] == ["BinaryMessage", "Ping", "TextMessage"]
    assert items[2].data == "😀"


# --------------------------------------------------------------------------------------------
# After an error.


def test_exc_items_holds_the_items_completed_before_the_error_in_the_same_call(codec):
    parser = codec.FrameParser()
    assert [m.data for m in parser.feed(client_frame(OP_TEXT, b"earlier call"))] == ["earlier call"]
    stream = (
        client_frame(OP_TEXT, b"one")
        + client_frame(OP_PING, b"p")
        + client_frame(OP_BINARY, b"two")
        + client_frame(5, b"bad")
        + client_frame(OP_TEXT, b"never")
    )
    exc = expect_error(parser, stream, 1002)
    assert [type(i).__name__ for i in exc.items] == ["TextMessage", "Ping", "BinaryMessage"]
    assert exc.items[0].data == "one"
    assert exc.items[1].payload == b"p"
    assert exc.items[2].data == b"two"


def test_exc_items_is_empty_when_the_error_comes_first(codec):
    parser = codec.FrameParser()
    exc = expect_error(parser, client_frame(OP_TEXT, b"\xff") + client_frame(OP_PING), 1007)
    assert exc.items == []


@pytest.mark.parametrize(
    ("bad", "code"),
    [
        (client_frame(OP_TEXT, b"x", rsv=0x40), 1002),
        (client_frame(OP_TEXT, b"\xff"), 1007),
        (client_frame(OP_BINARY, b"", length=5000), 1009),
        (client_frame(OP_CLOSE, b"\x03\xe8\xff"), 1007),
        (client_frame(OP_CLOSE, b"\x03"), 1002),
    ],
    ids=["rsv", "utf8", "too-big", "close-reason", "close-1-byte"],
)
def test_the_parser_stays_failed_and_repeats_the_same_error(codec, bad, code):
    parser = codec.FrameParser(max_message_size=4096)
    first = expect_error(parser, bad, code)
    for later in (client_frame(OP_TEXT, b"valid"), b"", bad, b"\x00"):
        again = expect_error(parser, later, code)
        assert again.reason == first.reason
        assert again.items == []
    assert parser.closed is False


def test_feed_rejects_non_bytes_with_type_error(codec):
    parser = codec.FrameParser()
    for bad in ("text", None, 12):
        with pytest.raises(TypeError):
            parser.feed(bad)
    # A bad argument is not a protocol error: the parser still works.
    (msg,) = parser.feed(client_frame(OP_TEXT, b"after"))
    assert msg.data == "after"


def test_an_error_in_a_server_frame_is_reported_for_the_client_side_too(codec):
    parser = codec.FrameParser(require_mask=False)
    expect_error(parser, raw_frame(OP_TEXT, b"\xff"), 1007)
