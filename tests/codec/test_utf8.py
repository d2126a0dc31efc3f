"""validate_utf8 and Utf8Validator (RFC 3629; RFC 6455 8.1 for text messages)."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from codec_reference import utf8_first_dead_byte, utf8_is_valid, utf8_scan


def decodes(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


# Every class of invalid sequence, by name.
OVERLONG_2 = [bytes((a, b)) for a in (0xC0, 0xC1) for b in range(0x80, 0xC0)]
OVERLONG_3 = [b"\xe0\x80\x80", b"\xe0\x80\xaf", b"\xe0\x9f\xbf", b"\xe0\x81\x81"]
OVERLONG_4 = [b"\xf0\x80\x80\x80", b"\xf0\x80\x80\xaf", b"\xf0\x8f\xbf\xbf", b"\xf0\x82\x82\xac"]
SURROGATES = [bytes((0xED, b, c)) for b in range(0xA0, 0xC0) for c in (0x80, 0x9A, 0xBF)]
ABOVE_MAX = [
    b"\xf4\x90\x80\x80",  # U+110000
    b"\xf4\xbf\xbf\xbf",
    b"\xf5\x80\x80\x80",
    b"\xf7\xbf\xbf\xbf",
    b"\xf8\x88\x80\x80\x80",  # old 5-byte form
    b"\xfc\x84\x80\x80\x80\x80",  # old 6-byte form
]
INVALID_LEADS = [bytes((b,)) for b in range(0xF5, 0x100)] + [b"\xc0", b"\xc1"]
LONE_CONTINUATIONS = [bytes((b,)) for b in range(0x80, 0xC0)]
TRUNCATED = [
    b"\xc2",
    b"\xdf",
    b"\xe0\xa0",
    b"\xe1",
    b"\xe2\x82",
    b"\xed\x9f",
    b"\xef\xbf",
    b"\xf0\x90",
    b"\xf0\x90\x80",
    b"\xf3\xbf\xbf",
    b"\xf4",
    b"\xf4\x8f\xbf",
]
INVALID_CLASSES = {
    "overlong-2": OVERLONG_2,
    "overlong-3": OVERLONG_3,
    "overlong-4": OVERLONG_4,
    "surrogate": SURROGATES,
    "above-U+10FFFF": ABOVE_MAX,
    "invalid-lead": INVALID_LEADS,
    "lone-continuation": LONE_CONTINUATIONS,
    "truncated": TRUNCATED,
    "bad-continuation": [b"\xc2\x41", b"\xe2\x82\x41", b"\xf0\x90\x80\xc0", b"\xe2\xc0\x80"],
}

BOUNDARY_CHARACTERS = [
    "\x00",
    "\x7f",
    "\x80",
    "\u07ff",
    "\u0800",
    "\ud7ff",
    "\ue000",
    "\ufffd",
    "\uffff",
    "\U00010000",
    "\U0010ffff",
]

SAMPLES = [
    "hello, world",
    "Grüße, Jürgen: ½ € für café",
    "Привет, мир",
    "Γειά σου Κόσμε",
    "你好，世界",
    "こんにちは世界",
    "안녕하세요 세계",
    "مرحبا بالعالم",
    "שלום עולם",
    "नमस्ते दुनिया",
    "สวัสดีชาวโลก",
    "😀🎉🚀 𝄞 𐍈",
    "a\u0301e\u0301 combining",
]


@pytest.mark.parametrize("name", sorted(INVALID_CLASSES))
def test_validate_utf8_rejects_each_class_of_invalid_sequence_like_bytes_decode(codec, name):
    for seq in INVALID_CLASSES[name]:
        assert not decodes(seq)
        for data in (seq, b"ab" + seq, seq + b"cd", "€".encode() * 20 + seq + b"x" * 40):
            assert codec.validate_utf8(data) is decodes(data), data


def test_validate_utf8_rejects_every_surrogate_code_point(codec):
    for cp in range(0xD800, 0xE000):
        raw = bytes((0xE0 | cp >> 12, 0x80 | (cp >> 6) & 0x3F, 0x80 | cp & 0x3F))
        assert raw[:2] >= b"\xed\xa0"
        assert codec.validate_utf8(raw) is False
        assert codec.validate_utf8(b"x" * 33 + raw) is False


@pytest.mark.parametrize("char", BOUNDARY_CHARACTERS, ids=lambda c: f"U+{ord(c):04X}")
def test_validate_utf8_accepts_the_code_points_at_each_encoding_boundary(codec, char):
    raw = char.encode("utf-8")
    assert codec.validate_utf8(raw) is True
    assert codec.validate_utf8(raw * 70) is True


def test_validate_utf8_agrees_with_bytes_decode_on_every_one_and_two_byte_input(codec):
    validate = codec.validate_utf8
    for a in range(256):
        one = bytes((a,))
        assert validate(one) is decodes(one)
        for b in range(256):
            two = bytes((a, b))
            assert validate(two) is decodes(two), two


def test_validate_utf8_agrees_with_bytes_decode_on_three_byte_inputs_around_the_edges(codec):
    validate = codec.validate_utf8
    edges = list(range(0x7E, 0xC2))
    for lead in (0xC2, 0xDF, 0xE0, 0xE1, 0xEC, 0xED, 0xEE, 0xEF, 0xF0, 0xF1, 0xF4, 0xF5):
        for b in edges:
            for c in edges:
                data = bytes((lead, b, c))
                assert validate(data) is decodes(data), data


def test_validate_utf8_agrees_with_the_rfc_3629_table_on_four_byte_inputs(codec):
    rng = random.Random(4)
    pool = [0x00, 0x41, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0, 0xC2, 0xE0, 0xED, 0xF0]
    pool += [0xF4, 0xF5, 0xFF]
    for a in pool:
        for b in pool:
            for c in pool:
                for d in pool:
                    data = bytes((a, b, c, d))
                    expected = decodes(data)
                    assert utf8_is_valid(data) is expected
                    assert codec.validate_utf8(data) is expected, data
    for _ in range(2000):
        data = rng.randbytes(rng.randrange(1, 12))
        assert codec.validate_utf8(data) is decodes(data)


@pytest.mark.parametrize("base", ["ascii", "mixed"])
def test_validate_utf8_finds_an_invalid_byte_at_every_position_of_1_to_200_byte_buffers(
    codec, base
):
    # Buffers of every length up to 200 cross the 16/32/64-byte block boundaries of the SIMD
    # kernels; a single bad byte at each position must be seen wherever it sits.
    validate = codec.validate_utf8
    bad_bytes = [0xFF, 0xC0, 0x80, 0xF5, 0xC1, 0xBF, 0xFE, 0xF8]
    if base == "ascii":
        source = bytes(range(32, 127)) * 3
    else:
        source = ("añ€😀" * 60).encode("utf-8")
    for n in range(1, 201):
        valid = source[:n]
        # Cut the mixed text at a character boundary; top up with ASCII.
        while not decodes(valid):
            valid = valid[:-1]
        valid = valid + b"z" * (n - len(valid))
        assert validate(valid) is True
        for pos in range(n):
            bad = bytearray(valid)
            bad[pos] = bad_bytes[(n + pos) % len(bad_bytes)]
            bad = bytes(bad)
            assert validate(bad) is decodes(bad), (n, pos)


def test_validate_utf8_finds_a_surrogate_or_overlong_at_every_position(codec):
    validate = codec.validate_utf8
    inserts = [b"\xed\xa0\x80", b"\xe0\x80\x80", b"\xf4\x90\x80\x80", b"\xf0\x8f\xbf\xbf"]
    for n in range(0, 130):
        for pos in range(n + 1):
            seq = inserts[(n + pos) % len(inserts)]
            data = b"q" * pos + seq + b"q" * (n - pos)
            assert validate(data) is False, (n, pos)


def test_validate_utf8_finds_a_truncated_sequence_at_every_position(codec):
    # A multi-byte character cut short, then followed by ASCII, at each offset.
    validate = codec.validate_utf8
    for char in ("é", "€", "😀"):
        raw = char.encode("utf-8")
        for cut in range(1, len(raw)):
            for pos in range(0, 100):
                data = b"a" * pos + raw[:cut] + b"b" * 40
                assert validate(data) is False
                assert validate(b"a" * pos + raw[:cut]) is False
                assert validate(b"a" * pos + raw) is True


@pytest.mark.parametrize("sample", SAMPLES)
def test_validate_utf8_accepts_text_in_many_scripts_at_many_lengths(codec, sample):
    raw = sample.encode("utf-8")
    for times in (1, 2, 3, 17, 100, 1000):
        assert codec.validate_utf8(raw * times) is True
        # Cutting inside a character must be refused exactly when bytes.decode refuses it.
        data = raw * times
        for cut in (1, 2, 3, len(data) // 2 + 1, len(data) - 1):
            assert codec.validate_utf8(data[:cut]) is decodes(data[:cut])


def test_validate_utf8_accepts_empty_input(codec):
    assert codec.validate_utf8(b"") is True


def test_validate_utf8_accepts_bytearray_and_memoryview(codec):
    raw = "naïve €".encode("utf-8")
    assert codec.validate_utf8(bytearray(raw)) is True
    assert codec.validate_utf8(memoryview(raw)) is True
    assert codec.validate_utf8(memoryview(raw)[:3]) is False  # cuts "ï" in half


@pytest.mark.parametrize("bad", [None, 12, "text", 1.5])
def test_validate_utf8_rejects_non_bytes_with_type_error(codec, bad):
    with pytest.raises(TypeError):
        codec.validate_utf8(bad)


@given(st.text())
def test_validate_utf8_accepts_any_encoded_text(codec, text):
    data = text.encode("utf-8", "surrogatepass")
    assert codec.validate_utf8(data) is decodes(data)


@given(st.binary(max_size=300))
def test_validate_utf8_agrees_with_bytes_decode_on_random_bytes(codec, data):
    assert codec.validate_utf8(data) is decodes(data)


# --------------------------------------------------------------------------------------------
# Utf8Validator


def _mutated_text() -> st.SearchStrategy[bytes]:
    """Mostly valid UTF-8 with a few bytes replaced or inserted."""

    @st.composite
    def build(draw):
        data = bytearray(draw(st.text(max_size=40)).encode("utf-8"))
        for _ in range(draw(st.integers(0, 2))):
            pos = draw(st.integers(0, len(data)))
            byte = draw(st.integers(0, 255))
            if draw(st.booleans()) and pos < len(data):
                data[pos] = byte
            else:
                data.insert(pos, byte)
        return bytes(data)

    return build()


FAIL_FAST_CASES = [
    (b"\xed\xa0", 1),  # surrogate: CPython's incremental decoder keeps this pending
    (b"\xed\xbf", 1),
    (b"\xf4\x90", 1),  # above U+10FFFF
    (b"\xe0\x80", 1),  # overlong 3-byte
    (b"\xe0\x9f", 1),
    (b"\xf0\x80", 1),  # overlong 4-byte
    (b"\xf0\x8f", 1),
    (b"\xf5", 0),
    (b"\xff", 0),
    (b"\xc0", 0),
    (b"\xc1", 0),
    (b"\x80", 0),
    (b"abc\xed\xa0", 4),
    (b"\xe2\x82A", 2),
    (b"\xf0\x90\x80\x41", 3),
]


@pytest.mark.parametrize(("data", "dead"), FAIL_FAST_CASES, ids=lambda v: repr(v))
def test_utf8_validator_fails_at_the_first_byte_no_continuation_can_repair(codec, data, dead):
    assert utf8_first_dead_byte(data) == dead
    v = codec.Utf8Validator()
    for i in range(len(data)):
        assert v.feed(data[i : i + 1]) is (i < dead), i
    v = codec.Utf8Validator()
    assert v.feed(data) is False
    assert v.complete is False


@pytest.mark.parametrize("name", sorted(INVALID_CLASSES))
def test_utf8_validator_fed_byte_by_byte_fails_exactly_where_the_reference_says(codec, name):
    for seq in INVALID_CLASSES[name]:
        for prefix in (b"", b"x", "é".encode(), b"0123456789abcdef" * 2 + b"..."):
            data = prefix + seq + b"tail"
            dead = utf8_first_dead_byte(data)
            assert dead is not None
            v = codec.Utf8Validator()
            got = [v.feed(data[i : i + 1]) for i in range(len(data))]
            assert got == [i < dead for i in range(len(data))], data


@given(_mutated_text() | st.binary(max_size=24))
def test_utf8_validator_byte_by_byte_matches_the_reference_on_arbitrary_bytes(codec, data):
    dead, pending = utf8_scan(data)
    v = codec.Utf8Validator()
    for i in range(len(data)):
        assert v.feed(data[i : i + 1]) is (dead is None or i < dead), (data, i)
    assert v.complete is (dead is None and pending == 0)


@given(_mutated_text() | st.binary(max_size=60), st.lists(st.integers(0, 60), max_size=6))
def test_utf8_validator_in_arbitrary_chunks_fails_on_the_chunk_with_the_dead_byte(
    codec, data, cuts
):
    points = sorted(set(min(c, len(data)) for c in cuts))
    bounds = list(zip([0] + points, points + [len(data)]))
    dead = utf8_first_dead_byte(data)
    v = codec.Utf8Validator()
    for start, stop in bounds:
        expected = dead is None or stop <= dead
        assert v.feed(data[start:stop]) is expected, (data, start, stop)
    assert v.complete is utf8_is_valid(data)


def test_utf8_validator_fails_fast_inside_long_chunks_at_every_position(codec):
    # The bad byte sits at each position of chunks up to 200 bytes long: the chunk ending just
    # before it is still fine, the chunk that contains it fails.
    for n in range(0, 200, 3):
        for pos in range(n + 1):
            data = b"k" * pos + b"\xed\xa0" + b"k" * (n - pos)
            v = codec.Utf8Validator()
            assert v.feed(data[:pos]) is True
            assert v.feed(data[pos : pos + 1]) is True  # a lone 0xED may still become valid
            assert v.complete is False
            assert v.feed(data[pos + 1 :]) is False
            # The same bytes in one piece fail too.
            assert codec.Utf8Validator().feed(data) is False


def test_utf8_validator_accepts_a_character_split_across_feeds(codec):
    for char in ("é", "€", "😀", "\U0010ffff", "\ud7ff", "\ue000"):
        raw = char.encode("utf-8")
        v = codec.Utf8Validator()
        for i in range(len(raw)):
            assert v.feed(raw[i : i + 1]) is True
            assert v.complete is (i == len(raw) - 1)


def test_utf8_validator_stays_failed_until_reset(codec):
    v = codec.Utf8Validator()
    assert v.feed(b"ok\xff") is False
    assert v.feed(b"valid ascii") is False
    assert v.feed(b"") is False
    assert v.complete is False
    v.reset()
    assert v.complete is True
    assert v.feed(b"valid ascii") is True
    assert v.complete is True


def test_utf8_validator_complete_is_true_only_without_a_pending_sequence(codec):
    v = codec.Utf8Validator()
    assert v.complete is True
    assert v.feed(b"") is True
    assert v.complete is True
    assert v.feed(b"abc\xf0\x9f") is True
    assert v.complete is False
    assert v.feed(b"") is True
    assert v.complete is False
    assert v.feed(b"\x98") is True
    assert v.complete is False
    assert v.feed(b"\x80") is True
    assert v.complete is True


def test_utf8_validator_reset_forgets_a_pending_sequence(codec):
    v = codec.Utf8Validator()
    assert v.feed(b"\xe2\x82") is True
    v.reset()
    assert v.complete is True
    # Without the reset, b"\xac" would complete "€"; after it, it is a lone continuation.
    assert v.feed(b"\xac") is False


def test_utf8_validator_accepts_bytearray_and_memoryview(codec):
    v = codec.Utf8Validator()
    assert v.feed(bytearray("ü".encode())) is True
    assert v.feed(memoryview("€".encode())[:1]) is True
    assert v.feed(memoryview(b"\x82\xac")) is True
    assert v.complete is True


@pytest.mark.parametrize("bad", [None, 7, "text"])
def test_utf8_validator_feed_rejects_non_bytes_with_type_error(codec, bad):
    with pytest.raises(TypeError):
        codec.Utf8Validator().feed(bad)


@pytest.mark.parametrize("sample", SAMPLES)
def test_utf8_validator_accepts_text_in_many_scripts_fed_in_odd_pieces(codec, sample):
    raw = (sample * 50).encode("utf-8")
    for step in (1, 2, 3, 5, 7, 16, 31, 64, 100):
        v = codec.Utf8Validator()
        for i in range(0, len(raw), step):
            assert v.feed(raw[i : i + step]) is True
        assert v.complete is True
