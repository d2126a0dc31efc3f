"""Property-based tests: build then parse gives back the same conversation."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from codec_reference import describe_all, naive_mask, raw_frame, split_at
from codec_strategies import chunkings, masks, plans, serialize


def parse(codec, chunks, **options):
    parser = codec.FrameParser(max_message_size=None, **options)
    items = []
    for chunk in chunks:
        items.extend(parser.feed(chunk))
    return parser, items


@given(plan=plans(), keys=st.lists(masks, min_size=1, max_size=4), data=st.data())
def test_masked_conversations_round_trip_through_the_parser_in_any_chunking(
    codec, plan, keys, data
):
    stream = serialize(codec, plan, keys)
    chunks = data.draw(chunkings(stream), label="chunks")
    parser, items = parse(codec, chunks, require_mask=True)
    assert describe_all(items) == plan.expected(fragments=False, text_as_bytes=False)
    assert parser.closed is (bool(plan.messages) and plan.messages[-1][0] == "CloseReceived")


@given(plan=plans(), data=st.data())
def test_unmasked_conversations_round_trip_on_the_client_side(codec, plan, data):
    stream = serialize(codec, plan, None)
    chunks = data.draw(chunkings(stream), label="chunks")
    _, items = parse(codec, chunks, require_mask=False)
    assert describe_all(items) == plan.expected(fragments=False, text_as_bytes=False)


@given(
    plan=plans(),
    key=masks,
    fragments=st.booleans(),
    text_as_bytes=st.booleans(),
    data=st.data(),
)
def test_round_trip_in_fragments_and_text_as_bytes_modes(
    codec, plan, key, fragments, text_as_bytes, data
):
    stream = serialize(codec, plan, [key])
    chunks = data.draw(chunkings(stream), label="chunks")
    _, items = parse(codec, chunks, fragments=fragments, text_as_bytes=text_as_bytes)
    assert describe_all(items) == plan.expected(fragments=fragments, text_as_bytes=text_as_bytes)


@given(plan=plans(), data=st.data())
def test_bytes_after_a_close_frame_never_reach_the_application(codec, plan, data):
    stream = serialize(codec, plan, [b"\x01\x02\x03\x04"])
    close = codec.build_frame(8, b"\x03\xe8", mask=b"wxyz")
    trailer = data.draw(st.binary(max_size=40), label="trailer")
    chunks = data.draw(chunkings(stream + close + trailer), label="chunks")
    parser, items = parse(codec, chunks)
    assert parser.closed is True
    # The plan's own close frame, if it has one, or ours: either way one close, and last.
    names = [type(i).__name__ for i in items]
    assert names.count("CloseReceived") == 1
    assert names[-1] == "CloseReceived"
    assert describe_all(items)[:-1] == plan.expected(fragments=False, text_as_bytes=False)[
        : len(items) - 1
    ]


@given(plan=plans(), data=st.data())
def test_frame_writer_output_round_trips_through_the_parser(codec, plan, data):
    writer = codec.FrameWriter(mask=True)
    for opcode, payload, fin in plan.frames:
        writer.frame(opcode, payload, fin=fin)
    stream = writer.take()
    chunks = data.draw(chunkings(stream), label="chunks")
    _, items = parse(codec, chunks)
    assert describe_all(items) == plan.expected(fragments=False, text_as_bytes=False)


@given(payload=st.binary(max_size=300), key=masks, opcode=st.sampled_from([0, 1, 2]))
def test_build_frame_matches_the_reference_frame_layout(codec, payload, key, opcode):
    assert codec.build_frame(opcode, payload, mask=key) == raw_frame(opcode, payload, mask=key)
    assert codec.build_frame(opcode, payload) == raw_frame(opcode, payload)


@given(data=st.binary(max_size=2000), key=masks, start=st.integers(0, 64))
def test_apply_mask_matches_the_reference_on_random_data_and_alignments(codec, data, key, start):
    view = memoryview(data)[min(start, len(data)) :]
    expected = naive_mask(bytes(view), key)
    assert codec.apply_mask(view, key) == expected
    buf = bytearray(data)
    codec.apply_mask_inplace(memoryview(buf)[min(start, len(data)) :], key)
    assert bytes(buf[min(start, len(data)) :]) == expected
    assert codec.apply_mask(expected, key) == bytes(view)


@given(text=st.text(max_size=200), cuts=st.lists(st.integers(0, 800), max_size=6))
def test_utf8_validator_accepts_any_text_in_any_pieces(codec, text, cuts):
    raw = text.encode("utf-8")
    v = codec.Utf8Validator()
    for piece in split_at(raw, cuts):
        assert v.feed(piece) is True
    assert v.complete is True
    assert codec.validate_utf8(raw) is True
