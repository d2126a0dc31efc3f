"""The codec gives the same answers whichever instruction set its kernels use.

The Cython codec picks its masking and UTF-8 kernels by CPU feature at import time and lets
tests force another one with ``_force_isa``; every kernel this CPU can run is checked here
through the public API. The pure-Python codec has one implementation, checked once.
"""

from __future__ import annotations

import importlib
import os
import random
from contextlib import contextmanager
from typing import Any, Iterator

import pytest

from turbows.exceptions import ProtocolError

from codec_reference import (
    OP_CONT,
    OP_TEXT,
    client_frame,
    naive_mask,
    server_frame,
    utf8_first_dead_byte,
    utf8_is_valid,
)

ISAS = ("portable", "sse2", "avx2", "avx512bw", "neon")


@contextmanager
def each_kernel(codec: Any) -> Iterator[Any]:
    """Yield the ISA names this CPU supports, with the kernels switched to each in turn."""
    force = getattr(codec, "_force_isa", None)
    if force is None:
        yield [codec.kernel_isa()]
        return
    original = codec.kernel_isa()
    usable = []
    for isa in ISAS:
        try:
            force(isa)
        except ValueError:
            continue
        usable.append(isa)
    force(original)
    assert original in usable
    assert "portable" in usable

    def switched() -> Iterator[str]:
        for isa in usable:
            force(isa)
            assert codec.kernel_isa() == isa
            yield isa

    try:
        yield switched()
    finally:
        force(original)  # even when an assertion failed half-way through


def test_kernel_isa_names_a_known_instruction_set(codec):
    assert codec.kernel_isa() in ISAS + ("python",)


def test_apply_mask_is_the_same_with_every_kernel(codec):
    rng = random.Random(1)
    data = rng.randbytes(700)
    mask = b"\x3c\xa5\x0f\xf0"
    with each_kernel(codec) as isas:
        for isa in isas:
            for start in range(0, 9):
                for n in list(range(0, 140)) + [255, 256, 257, 511, 512, 513, 690]:
                    chunk = data[start : start + n]
                    expected = naive_mask(chunk, mask)
                    assert codec.apply_mask(chunk, mask) == expected, (isa, start, n)
                    buf = bytearray(data)
                    codec.apply_mask_inplace(memoryview(buf)[start : start + n], mask)
                    assert buf[start : start + n] == expected, (isa, start, n)
                    assert buf[:start] == data[:start] and buf[start + n :] == data[start + n :]


def test_validate_utf8_is_the_same_with_every_kernel(codec):
    text = ("plain ascii, ünïcödé, 中文, 😀 " * 20).encode("utf-8")
    bad = [b"\xff", b"\xc0", b"\x80", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xe0\x80\x80"]
    with each_kernel(codec) as isas:
        for isa in isas:
            for n in range(0, 260):
                prefix = text[:n]  # cut anywhere, inside characters too
                assert codec.validate_utf8(prefix) is utf8_is_valid(prefix), (isa, n)
                seq = bad[n % len(bad)]
                assert codec.validate_utf8(b"a" * n + seq + b"z" * 70) is False, (isa, n)
                assert codec.validate_utf8(text[:n] + b"\xff") is False, (isa, n)


def test_utf8_validator_fails_fast_with_every_kernel(codec):
    with each_kernel(codec) as isas:
        for isa in isas:
            for n in range(0, 200, 5):
                for pos in range(0, n + 1, 3):
                    data = "é".encode() * (pos // 2) + b"k" * (pos % 2)
                    data += b"\xed\xa0" + b"q" * (n - pos)
                    dead = utf8_first_dead_byte(data)
                    v = codec.Utf8Validator()
                    assert v.feed(data[:dead]) is True, (isa, n, pos)
                    assert v.complete is False
                    assert v.feed(data[dead:]) is False, (isa, n, pos)
                    assert codec.Utf8Validator().feed(data) is False


def test_the_parser_finds_invalid_utf8_at_every_offset_with_every_kernel(codec):
    base = ("kernel test ✓ " * 30).encode("utf-8")
    with each_kernel(codec) as isas:
        for isa in isas:
            for pos in range(0, 260, 3):
                payload = base[:pos] + b"\xfe" + base[pos:]
                stream = client_frame(OP_TEXT, payload[:100], fin=False) + client_frame(
                    OP_CONT, payload[100:]
                )
                parser = codec.FrameParser()
                try:
                    parser.feed(stream)
                except ProtocolError as exc:
                    assert exc.code == 1007, (isa, pos)
                else:
                    raise AssertionError(f"no 1007 with {isa} at {pos}")
                parser = codec.FrameParser()
                (msg,) = parser.feed(
                    client_frame(OP_TEXT, base[:pos], fin=False) + client_frame(OP_CONT, base[pos:])
                )
                assert msg.data == base.decode("utf-8")


def test_whole_text_messages_are_the_same_with_every_kernel(codec):
    # A whole text frame is unmasked and checked for ASCII in one pass, block by block: put
    # a non-ASCII character (or an invalid byte) before, inside and after the first blocks.
    sizes = (63, 64, 65, 300, 16383, 16384, 16385, 16384 + 300, 50_000)
    with each_kernel(codec) as isas:
        for isa in isas:
            for size in sizes:
                ascii_text = bytes(33 + (i * 7) % 90 for i in range(size))
                places = sorted({0, 1, 63, size // 2, size - 2, min(16384, size - 2)})
                cases = [(ascii_text, True)]
                for pos in places:
                    cases.append((ascii_text[:pos] + "é".encode() + ascii_text[pos + 2 :], True))
                    cases.append((ascii_text[:pos] + b"\xff" + ascii_text[pos + 1 :], False))
                for payload, valid in cases:
                    for masked, as_bytes in ((True, False), (False, False), (True, True)):
                        parser = codec.FrameParser(
                            require_mask=masked, max_message_size=None, text_as_bytes=as_bytes
                        )
                        frame = (client_frame if masked else server_frame)(OP_TEXT, payload)
                        where = (isa, size, masked, as_bytes, payload[:4])
                        if not valid:
                            try:
                                parser.feed(frame)
                            except ProtocolError as exc:
                                assert exc.code == 1007, where
                            else:
                                raise AssertionError(f"no 1007: {where}")
                            continue
                        (msg,) = parser.feed(frame)
                        expected = payload if as_bytes else payload.decode("utf-8")
                        assert msg.data == expected, where
                        assert type(msg.data) is type(expected), where


def test_the_kernel_chosen_for_this_cpu_is_the_expected_one():
    """Run under ``qemu-x86_64 -cpu MODEL`` by tools/test_cpu_models.sh, which says what that
    CPU model must get: the kernel picked at import, and every kernel that can be forced."""
    expected = os.environ.get("TURBOWS_EXPECT_ISA")
    if not expected:
        pytest.skip("TURBOWS_EXPECT_ISA not set (tools/test_cpu_models.sh sets it per CPU model)")
    speedups = importlib.import_module("turbows._speedups")
    assert speedups.kernel_isa() == expected
    usable = set()
    for isa in ISAS:
        try:
            speedups._force_isa(isa)
        except ValueError:
            continue
        usable.add(isa)
    speedups._force_isa(expected)
    assert usable == set(os.environ["TURBOWS_EXPECT_ISAS"].split(","))
