"""Differential tests: the Cython codec must behave exactly like the pure-Python twin.

Both parsers get the same bytes in the same chunks and must give, call by call, the same
items (type name and every field) or the same ProtocolError (code, reason and items). Bad
arguments must raise the same exception type with the same message.

These tests need both implementations: they are skipped when the extension is not built,
and fail instead under TURBOWS_REQUIRE_EXTENSIONS=1 (see the ``cython_codec`` fixture).
"""

from __future__ import annotations

import itertools
from typing import Any, Callable, List, Tuple

import pytest
from hypothesis import given
from hypothesis import strategies as st

from turbows.exceptions import ProtocolError

from codec_reference import client_frame, feed_all, raw_frame
from codec_strategies import (
    chunkings,
    frame_soups,
    masks,
    mutated,
    parser_options,
    plans,
    serialize,
)


def both_parse(py, cy, chunks: List[bytes], options: dict) -> None:
    expected = feed_all(py.FrameParser(**options), chunks, ProtocolError)
    got = feed_all(cy.FrameParser(**options), chunks, ProtocolError)
    assert got == expected


@given(options=parser_options, stream=st.binary(max_size=300), data=st.data())
def test_both_codecs_agree_on_random_bytes(python_codec, cython_codec, options, stream, data):
    chunks = data.draw(chunkings(stream), label="chunks")
    both_parse(python_codec, cython_codec, chunks, options)


@given(options=parser_options, data=st.data())
def test_both_codecs_agree_on_streams_of_malformed_frames(
    python_codec, cython_codec, options, data
):
    stream = data.draw(frame_soups(options["require_mask"]), label="stream")
    chunks = data.draw(chunkings(stream), label="chunks")
    both_parse(python_codec, cython_codec, chunks, options)


@given(options=parser_options, plan=plans(), key=masks, data=st.data())
def test_both_codecs_agree_on_mutated_valid_streams(
    python_codec, cython_codec, options, plan, key, data
):
    valid = serialize(python_codec, plan, [key] if options["require_mask"] else None)
    stream = data.draw(mutated(valid), label="stream")
    chunks = data.draw(chunkings(stream), label="chunks")
    both_parse(python_codec, cython_codec, chunks, options)


@given(options=parser_options, plan=plans(), key=masks, data=st.data())
def test_both_codecs_agree_on_valid_streams(python_codec, cython_codec, options, plan, key, data):
    stream = serialize(python_codec, plan, [key] if options["require_mask"] else None)
    assert serialize(cython_codec, plan, [key] if options["require_mask"] else None) == stream
    chunks = data.draw(chunkings(stream), label="chunks")
    both_parse(python_codec, cython_codec, chunks, options)


def test_both_codecs_agree_when_a_large_text_message_has_a_bad_byte_anywhere(
    python_codec, cython_codec
):
    # Long payloads take the vectorised paths; the bad byte sits at every block position.
    base = ("ascii and ünïcödé 😀 " * 40).encode("utf-8")
    for pos in range(0, 300, 7):
        payload = base[:pos] + b"\xff" + base[pos:]
        stream = client_frame(1, payload[:150], fin=False) + client_frame(0, payload[150:])
        for step in (len(stream), 64, 17):
            chunks = [stream[i : i + step] for i in range(0, len(stream), step)]
            both_parse(python_codec, cython_codec, chunks, {"max_message_size": None})


@given(data=st.binary(max_size=200), cuts=st.lists(st.integers(0, 200), max_size=5))
def test_both_utf8_validators_agree_on_random_bytes(python_codec, cython_codec, data, cuts):
    assert cython_codec.validate_utf8(data) is python_codec.validate_utf8(data)
    results = []
    for codec in (python_codec, cython_codec):
        v = codec.Utf8Validator()
        start = 0
        got = []
        for cut in sorted(min(c, len(data)) for c in cuts) + [len(data)]:
            got.append(v.feed(data[start:cut]))
            start = cut
        got.append(v.complete)
        results.append(got)
    assert results[0] == results[1]


# --------------------------------------------------------------------------------------------
# Bad arguments: same exception type and message.


def outcome(call: Callable[[], Any]) -> Tuple[Any, ...]:
    try:
        result = call()
    except Exception as exc:
        return ("raised", type(exc).__name__, str(exc))
    return ("returned", result)


def _not_contiguous() -> memoryview:
    return memoryview(b"abcdefgh")[::2]


DATA_VALUES = [
    b"",
    b"payload",
    bytearray(b"payload"),
    memoryview(b"payload"),
    "text",
    42,
    None,
    [1, 2],
    _not_contiguous(),
]
MASK_VALUES = [b"abcd", bytearray(b"abcd"), b"", b"abc", b"abcde", "abcd", 7, None]
MASK_VALUES.append(_not_contiguous())


def test_apply_mask_raises_the_same_errors_in_both_codecs(python_codec, cython_codec):
    mismatches = []
    for data, mask in itertools.product(DATA_VALUES, MASK_VALUES):
        expected = outcome(lambda: python_codec.apply_mask(data, mask))
        got = outcome(lambda: cython_codec.apply_mask(data, mask))
        if got != expected:
            mismatches.append(((data, mask), expected, got))
    assert mismatches == []


def test_apply_mask_inplace_raises_the_same_errors_in_both_codecs(python_codec, cython_codec):
    values = DATA_VALUES + [memoryview(b"ro"), memoryview(bytearray(b"rw")).toreadonly()]
    mismatches = []
    for buf, mask in itertools.product(values, MASK_VALUES):
        # Each call gets its own copy, so both see the same contents.
        def run(codec, buf=buf, mask=mask):
            target = bytearray(buf) if isinstance(buf, bytearray) else buf
            return codec.apply_mask_inplace(target, mask)

        expected = outcome(lambda: run(python_codec))
        got = outcome(lambda: run(cython_codec))
        if got != expected:
            mismatches.append(((buf, mask), expected, got))
    assert mismatches == []


def test_validate_utf8_and_validator_raise_the_same_errors_in_both_codecs(
    python_codec, cython_codec
):
    for data in DATA_VALUES:
        assert outcome(lambda: cython_codec.validate_utf8(data)) == outcome(
            lambda: python_codec.validate_utf8(data)
        )
        assert outcome(lambda: cython_codec.Utf8Validator().feed(data)) == outcome(
            lambda: python_codec.Utf8Validator().feed(data)
        )
        assert outcome(lambda: cython_codec.FrameParser().feed(data)) == outcome(
            lambda: python_codec.FrameParser().feed(data)
        )


BUILD_OPCODES = [0, 1, 2, 3, 7, 8, 9, 10, 11, 15, 16, -1, 255]
BUILD_PAYLOADS = [
    b"",
    b"x" * 125,
    b"x" * 126,
    "é" * 63,
    "ok",
    "\ud800",
    bytearray(b"ba"),
    memoryview(b"mv"),
    42,
    None,
    _not_contiguous(),
]
BUILD_FINS = [True, False]
BUILD_RSVS = [0, 0x40, 0x70, 0x80, 0x01, -1]
BUILD_MASKS = [None, b"abcd", b"abc", "abcd", 42]


def test_build_frame_raises_the_same_errors_in_both_codecs(python_codec, cython_codec):
    mismatches = []
    for opcode, payload, fin, rsv, mask in itertools.product(
        BUILD_OPCODES, BUILD_PAYLOADS, BUILD_FINS, BUILD_RSVS, BUILD_MASKS
    ):

        def build(codec):
            return codec.build_frame(opcode, payload, fin=fin, rsv=rsv, mask=mask)

        expected = outcome(lambda: build(python_codec))
        got = outcome(lambda: build(cython_codec))
        if got != expected:
            mismatches.append(((opcode, payload, fin, rsv, mask), expected, got))
    assert mismatches == []


def test_frame_writer_raises_the_same_errors_in_both_codecs(python_codec, cython_codec):
    mismatches = []
    for opcode, payload, fin, rsv in itertools.product(
        BUILD_OPCODES, BUILD_PAYLOADS, BUILD_FINS, BUILD_RSVS
    ):

        def write(codec):
            writer = codec.FrameWriter()
            writer.frame(opcode, payload, fin=fin, rsv=rsv)
            return writer.take()

        expected = outcome(lambda: write(python_codec))
        got = outcome(lambda: write(cython_codec))
        if got != expected:
            mismatches.append(((opcode, payload, fin, rsv), expected, got))
    assert mismatches == []


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        (None, ""),
        (None, "reason"),
        (1000, "r" * 123),
        (1000, "r" * 124),
        (1000, "€" * 42),
        (1005, ""),
        (999, "x"),
        (5000, ""),
        (3000, "\ud800"),
        (-1, ""),
    ],
)
def test_encode_close_raises_the_same_errors_in_both_codecs(
    python_codec, cython_codec, code, reason
):
    expected = outcome(lambda: python_codec.encode_close(code, reason))
    assert outcome(lambda: cython_codec.encode_close(code, reason)) == expected


@pytest.mark.parametrize("max_message_size", [-1, -100])
def test_frame_parser_constructor_raises_the_same_errors_in_both_codecs(
    python_codec, cython_codec, max_message_size
):
    expected = outcome(lambda: python_codec.FrameParser(max_message_size=max_message_size))
    got = outcome(lambda: cython_codec.FrameParser(max_message_size=max_message_size))
    assert got == expected


def test_items_compare_equal_across_their_fields_in_both_codecs(python_codec, cython_codec):
    for codec in (python_codec, cython_codec):
        assert codec.TextMessage("a") == codec.TextMessage("a", True)
        assert codec.TextMessage("a") != codec.TextMessage("a", False)
        assert codec.TextMessage("a") != codec.BinaryMessage("a")
        assert codec.Ping(b"x") == codec.Ping(b"x") and codec.Ping(b"x") != codec.Pong(b"x")
        assert codec.CloseReceived(1000, "r") == codec.CloseReceived(1000, "r")
        assert codec.CloseReceived(1000, "r") != codec.CloseReceived(1001, "r")
    for args in [("TextMessage", ("t",)), ("BinaryMessage", (b"b", False)), ("Ping", (b"p",))]:
        name, values = args
        assert repr(getattr(cython_codec, name)(*values)) == repr(
            getattr(python_codec, name)(*values)
        )
    assert repr(cython_codec.CloseReceived(1000, "bye")) == repr(
        python_codec.CloseReceived(1000, "bye")
    )


def test_close_frame_payloads_give_the_same_result_for_every_code(python_codec, cython_codec):
    for code in itertools.chain(range(0, 1100), range(2990, 3010), range(4990, 5010), [65535]):
        frame = raw_frame(8, code.to_bytes(2, "big") + b"why", mask=b"\x00\x01\x02\x03")
        both_parse(python_codec, cython_codec, [frame], {})


_BATCH_MESSAGES = st.one_of(
    st.text(max_size=40),
    st.binary(max_size=40),
    st.binary(max_size=40).map(bytearray),
    st.sampled_from([b"\xed\xa0\x80", b"\xc3", "\ud800", 7, None, _not_contiguous()]),
)


@given(
    messages=st.lists(_BATCH_MESSAGES, max_size=8),
    text=st.sampled_from([None, True, False]),
    before=st.binary(max_size=20),
)
def test_frame_writer_messages_is_the_same_in_both_codecs(
    python_codec, cython_codec, messages, text, before
):
    def write(codec):
        writer = codec.FrameWriter()
        writer.binary(before)
        result = outcome(lambda: writer.messages(messages, text))
        return result, writer.take()

    assert write(cython_codec) == write(python_codec)
