"""Codec benchmarks (pytest-benchmark), each against the Cython codec and the pure twin.

Inputs come from :mod:`turbows.bench._data`, the generator ``python -m turbows.bench`` uses, so
figures from both tools describe the same bytes. Each benchmark asserts the result it times.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

import pytest

from turbows.bench import _data

MASK_SIZES = [16, 125, 1024, 16 * 1024, 1 << 20]
UTF8_SIZES = [125, 1024, 64 * 1024]
FRAME_SIZES = [16, 125, 1024]
BATCH = 1000


def _size_id(size: int) -> str:
    return _data.human_size(size).replace(" ", "")


@pytest.mark.parametrize("size", MASK_SIZES, ids=_size_id)
def test_apply_mask(benchmark: Any, codec: ModuleType, size: int) -> None:
    data = _data.random_bytes(size)
    benchmark.extra_info["bytes"] = size
    out = benchmark(codec.apply_mask, data, _data.MASK_KEY)
    assert len(out) == size and codec.apply_mask(out, _data.MASK_KEY) == data


@pytest.mark.parametrize("size", MASK_SIZES, ids=_size_id)
def test_apply_mask_inplace(benchmark: Any, codec: ModuleType, size: int) -> None:
    data = _data.random_bytes(size)
    buf = bytearray(data)
    benchmark.extra_info["bytes"] = size
    benchmark(codec.apply_mask_inplace, buf, _data.MASK_KEY)
    # Masking twice restores the data: the buffer went through an even or odd number of XORs.
    assert bytes(buf) in (data, codec.apply_mask(data, _data.MASK_KEY))


@pytest.mark.parametrize("text", ["ascii", "mixed"])
@pytest.mark.parametrize("size", UTF8_SIZES, ids=_size_id)
def test_validate_utf8(benchmark: Any, codec: ModuleType, size: int, text: str) -> None:
    make = _data.ascii_text if text == "ascii" else _data.mixed_text
    data = make(size).encode("utf-8")
    benchmark.extra_info["bytes"] = size
    assert benchmark(codec.validate_utf8, data) is True


@pytest.mark.parametrize("size", FRAME_SIZES, ids=_size_id)
def test_parse_masked_text_stream(benchmark: Any, codec: ModuleType, size: int) -> None:
    stream = _data.masked_text_stream(size, 256 * 1024)
    chunks = stream.chunks

    def parse() -> int:
        parser = codec.FrameParser(require_mask=True, max_message_size=1 << 20)
        count = 0
        for chunk in chunks:
            count += len(parser.feed(chunk))
        return count

    benchmark.extra_info["frames"] = stream.frames
    assert benchmark(parse) == stream.frames


@pytest.mark.parametrize("kind", ["binary", "text"])
@pytest.mark.parametrize("size", FRAME_SIZES, ids=_size_id)
def test_build_frames(benchmark: Any, codec: ModuleType, size: int, kind: str) -> None:
    text = _data.ascii_text(size, salt=1)
    payload: Any = text if kind == "text" else text.encode()
    writer = codec.FrameWriter(mask=False)
    send = writer.text if kind == "text" else writer.binary

    def build() -> bytes:
        for _ in range(BATCH):
            send(payload)
        return writer.take()  # type: ignore[no-any-return]

    benchmark.extra_info["frames"] = BATCH
    opcode = 0x1 if kind == "text" else 0x2
    assert benchmark(build) == _data.encode_frame(opcode, text.encode()) * BATCH


@pytest.mark.parametrize("size", FRAME_SIZES, ids=_size_id)
def test_build_frame_function(benchmark: Any, codec: ModuleType, size: int) -> None:
    payload = _data.random_bytes(size)
    out = benchmark(codec.build_frame, 0x2, payload)
    assert out == _data.encode_frame(0x2, payload)
