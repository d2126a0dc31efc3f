"""apply_mask and apply_mask_inplace (RFC 6455 5.3)."""

from __future__ import annotations

import array
import random

import pytest

from codec_reference import naive_mask

MASKS = [b"\x00\x00\x00\x00", b"\xff\xff\xff\xff", b"\x01\x02\x03\x04", b"\x37\xfa\x21\x3d"]


def _data(n: int, seed: int = 0) -> bytes:
    return random.Random(n * 7919 + seed).randbytes(n)


def test_apply_mask_matches_the_naive_reference_for_every_length_up_to_300(codec):
    for mask in MASKS:
        for n in range(301):
            data = _data(n)
            assert codec.apply_mask(data, mask) == naive_mask(data, mask), (mask, n)


@pytest.mark.parametrize("n", [4095, 4096, 4097, 65535, 65536, 65537, 1 << 20, (1 << 20) + 3])
def test_apply_mask_matches_the_naive_reference_for_large_payloads(codec, n):
    data = _data(n)
    mask = b"\x9c\x01\xe7\x55"
    # The naive reference is slow: compare a tiled key computed once instead of per byte.
    key = (mask * (n // 4 + 1))[:n]
    expected = bytes(a ^ b for a, b in zip(data, key))
    assert codec.apply_mask(data, mask) == expected


def test_apply_mask_at_unaligned_offsets_of_a_larger_buffer(codec):
    # Slices of a memoryview start at every alignment, so SIMD kernels see unaligned loads.
    base = _data(1200)
    mask = b"\xa5\x5a\xc3\x3c"
    view = memoryview(base)
    for start in range(0, 70):
        for n in (0, 1, 15, 16, 17, 31, 32, 33, 63, 64, 65, 127, 128, 129, 1000):
            chunk = base[start : start + n]
            assert codec.apply_mask(view[start : start + n], mask) == naive_mask(chunk, mask)


def test_apply_mask_returns_bytes_for_bytes_bytearray_and_memoryview_input(codec):
    data = _data(77)
    mask = b"\x10\x20\x30\x40"
    expected = naive_mask(data, mask)
    for value in (data, bytearray(data), memoryview(data), memoryview(bytearray(data))):
        result = codec.apply_mask(value, mask)
        assert type(result) is bytes
        assert result == expected


def test_apply_mask_accepts_the_mask_as_bytearray_or_memoryview(codec):
    data = _data(50)
    mask = b"\x10\x20\x30\x40"
    expected = naive_mask(data, mask)
    assert codec.apply_mask(data, bytearray(mask)) == expected
    assert codec.apply_mask(data, memoryview(mask)) == expected


def test_apply_mask_accepts_any_c_contiguous_buffer(codec):
    values = array.array("I", range(40))
    raw = values.tobytes()
    mask = b"\x01\x02\x03\x04"
    assert codec.apply_mask(values, mask) == naive_mask(raw, mask)


def test_apply_mask_does_not_modify_its_input(codec):
    data = bytearray(_data(100))
    before = bytes(data)
    codec.apply_mask(data, b"\xff\xee\xdd\xcc")
    assert data == before


def test_applying_the_mask_twice_is_the_identity(codec):
    for n in (0, 1, 3, 4, 5, 31, 32, 33, 100, 4096, 10001):
        data = _data(n, seed=1)
        for mask in MASKS:
            assert codec.apply_mask(codec.apply_mask(data, mask), mask) == data


def test_apply_mask_of_empty_data_is_empty_bytes(codec):
    assert codec.apply_mask(b"", b"abcd") == b""
    assert type(codec.apply_mask(bytearray(), b"abcd")) is bytes


@pytest.mark.parametrize("bad", [None, 42, 3.5, "text", ["a"], object()])
def test_apply_mask_rejects_non_bytes_data_with_type_error(codec, bad):
    with pytest.raises(TypeError):
        codec.apply_mask(bad, b"abcd")


@pytest.mark.parametrize("bad", [None, 42, "abcd", [1, 2, 3, 4]])
def test_apply_mask_rejects_a_non_bytes_mask_with_type_error(codec, bad):
    with pytest.raises(TypeError):
        codec.apply_mask(b"data", bad)


@pytest.mark.parametrize("size", [0, 1, 3, 5, 8])
def test_apply_mask_rejects_a_mask_that_is_not_4_bytes_with_value_error(codec, size):
    with pytest.raises(ValueError):
        codec.apply_mask(b"data", b"m" * size)
    with pytest.raises(ValueError):
        codec.apply_mask(b"", b"m" * size)


def test_apply_mask_inplace_matches_the_naive_reference_for_every_length_up_to_300(codec):
    for mask in MASKS:
        for n in range(301):
            data = _data(n, seed=2)
            buf = bytearray(data)
            assert codec.apply_mask_inplace(buf, mask) is None
            assert buf == naive_mask(data, mask), (mask, n)


@pytest.mark.parametrize("n", [4097, 65536, (1 << 20) + 1])
def test_apply_mask_inplace_matches_the_reference_for_large_buffers(codec, n):
    data = _data(n, seed=3)
    mask = b"\x9c\x01\xe7\x55"
    buf = bytearray(data)
    codec.apply_mask_inplace(buf, mask)
    assert bytes(buf) == codec.apply_mask(data, mask)
    codec.apply_mask_inplace(buf, mask)
    assert bytes(buf) == data


def test_apply_mask_inplace_through_a_memoryview_changes_only_the_viewed_bytes(codec):
    data = _data(300, seed=4)
    mask = b"\x01\x80\x7f\xfe"
    for start, stop in [(0, 300), (1, 299), (3, 4), (7, 207), (150, 150)]:
        buf = bytearray(data)
        codec.apply_mask_inplace(memoryview(buf)[start:stop], mask)
        expected = data[:start] + naive_mask(data[start:stop], mask) + data[stop:]
        assert buf == expected


def test_apply_mask_inplace_twice_is_the_identity(codec):
    data = _data(1000, seed=5)
    buf = bytearray(data)
    codec.apply_mask_inplace(buf, b"wxyz")
    assert buf != data
    codec.apply_mask_inplace(buf, b"wxyz")
    assert buf == data


@pytest.mark.parametrize(
    "readonly",
    [b"abcdef", memoryview(b"abcdef"), memoryview(bytearray(b"abcdef")).toreadonly()],
    ids=["bytes", "memoryview-of-bytes", "read-only-memoryview"],
)
def test_apply_mask_inplace_rejects_a_read_only_buffer_with_type_error(codec, readonly):
    with pytest.raises(TypeError):
        codec.apply_mask_inplace(readonly, b"abcd")


@pytest.mark.parametrize("bad", [None, 42, "text", [1, 2]])
def test_apply_mask_inplace_rejects_non_buffers_with_type_error(codec, bad):
    with pytest.raises(TypeError):
        codec.apply_mask_inplace(bad, b"abcd")


@pytest.mark.parametrize("size", [0, 3, 5])
def test_apply_mask_inplace_rejects_a_mask_that_is_not_4_bytes_with_value_error(codec, size):
    buf = bytearray(b"abcdef")
    with pytest.raises(ValueError):
        codec.apply_mask_inplace(buf, b"m" * size)
    assert buf == b"abcdef"


def test_apply_mask_rejects_a_non_contiguous_buffer_with_buffer_error(codec):
    with pytest.raises(BufferError):
        codec.apply_mask(memoryview(b"abcdefgh")[::2], b"abcd")


def test_apply_mask_inplace_rejects_a_writable_non_contiguous_buffer_with_buffer_error(codec):
    buf = bytearray(b"abcdefgh")
    with pytest.raises(BufferError):
        codec.apply_mask_inplace(memoryview(buf)[::2], b"abcd")
    assert buf == b"abcdefgh"


def test_apply_mask_inplace_reports_a_read_only_buffer_before_a_non_contiguous_one(codec):
    # Both checks fail here; the reference (turbows._codec_py) checks writability first.
    with pytest.raises(TypeError, match="writable"):
        codec.apply_mask_inplace(memoryview(b"abcdefgh")[::2], b"abcd")
