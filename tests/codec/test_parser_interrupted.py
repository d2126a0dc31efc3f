"""A parser (or writer) call interrupted by an exception that is not a protocol error.

MemoryError, a KeyboardInterrupt raised by a signal handler, or any error from the inflater
can stop ``feed`` half-way through a chunk: part of it consumed, the items it completed lost
with the call. No later call can resume such a stream, so the parser stays failed: every
later ``feed`` raises ProtocolError with 1011 (internal error), for the connection to close
with. An error raised before the parser touched its state (a bad argument) changes nothing.
"""

from __future__ import annotations

import signal
import time
import zlib
from types import ModuleType
from typing import Any

import pytest

from turbows.exceptions import ProtocolError

from codec_reference import OP_BINARY, OP_TEXT, client_frame

RSV1 = 0x40


class _Failing:
    """An inflater that raises ``exc`` on its first call."""

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc

    def feed(self, data: bytes, final: bool, limit: int) -> bytes:
        raise self.exc


def _assert_failed_for_good(parser: Any, name: str) -> None:
    assert parser.buffered == 0
    for data in (client_frame(OP_BINARY, b"next"), bytearray(client_frame(OP_TEXT, b"x"))):
        with pytest.raises(ProtocolError) as info:
            parser.feed(data)
        assert info.value.code == 1011
        assert info.value.reason == (
            f"parser unusable: an earlier feed() was interrupted by {name}"
        )


@pytest.mark.parametrize("exc", [MemoryError(), KeyboardInterrupt(), RuntimeError("zlib")])
@pytest.mark.parametrize("split", [False, True])
def test_an_exception_from_the_inflater_leaves_the_parser_failed_with_1011(
    codec: ModuleType, exc: BaseException, split: bool
) -> None:
    parser = codec.FrameParser(inflater=_Failing(exc))
    head = client_frame(OP_BINARY, b"before")
    frame = client_frame(OP_TEXT, b"\x00" * 300, rsv=RSV1)
    with pytest.raises(type(exc)):
        parser.feed(head + (frame[:200] if split else frame))
    _assert_failed_for_good(parser, type(exc).__name__)


@pytest.mark.skipif(not hasattr(signal, "setitimer"), reason="needs setitimer")
def test_a_keyboard_interrupt_from_a_signal_handler_leaves_the_parser_failed_with_1011(
    codec: ModuleType,
) -> None:
    class Slow:
        def feed(self, data: bytes, final: bool, limit: int) -> bytes:
            time.sleep(30)  # the signal handler raises in here
            return b""

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    parser = codec.FrameParser(inflater=Slow())
    previous = signal.signal(signal.SIGALRM, interrupt)
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.05)
        with pytest.raises(KeyboardInterrupt):
            parser.feed(client_frame(OP_BINARY, b"\x00" * 100, rsv=RSV1))
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    _assert_failed_for_good(parser, "KeyboardInterrupt")


def test_an_inflater_returning_something_else_than_bytes_fails_the_parser(
    codec: ModuleType,
) -> None:
    class Broken:
        def feed(self, data: bytes, final: bool, limit: int) -> Any:
            return bytearray(b"not bytes")

    parser = codec.FrameParser(inflater=Broken())
    with pytest.raises(TypeError, match=r"inflater\.feed\(\) returned bytearray, not bytes"):
        parser.feed(client_frame(OP_BINARY, b"\x00", rsv=RSV1))
    _assert_failed_for_good(parser, "TypeError")


def test_a_bad_argument_to_feed_leaves_the_parser_usable(codec: ModuleType) -> None:
    parser = codec.FrameParser()
    assert parser.feed(client_frame(OP_BINARY, b"ab")[:3]) == []
    with pytest.raises(TypeError):
        parser.feed(12345)  # type: ignore[arg-type]
    assert parser.feed(client_frame(OP_BINARY, b"ab")[3:]) == [codec.BinaryMessage(b"ab")]


def test_a_good_stream_after_a_failed_inflater_call_is_still_refused(codec: ModuleType) -> None:
    # The inflater fails once, then would work: the parser does not pretend to resume.
    class Once:
        calls = 0

        def feed(self, data: bytes, final: bool, limit: int) -> bytes:
            self.calls += 1
            if self.calls == 1:
                raise MemoryError
            return zlib.decompressobj(wbits=-15).decompress(data + b"\x00\x00\xff\xff")

    parser = codec.FrameParser(inflater=Once())
    with pytest.raises(MemoryError):
        parser.feed(client_frame(OP_BINARY, b"\x00" * 10, rsv=RSV1, fin=False))
    _assert_failed_for_good(parser, "MemoryError")


def test_a_masking_key_that_cannot_be_drawn_leaves_no_partial_frame(
    codec: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    def interrupted(n: int) -> bytes:
        raise KeyboardInterrupt

    writer = codec.FrameWriter(mask=True)
    writer.text("kept")
    size = len(writer)
    monkeypatch.setattr(codec, "_urandom", interrupted)
    codec._reset_mask_pool()
    with pytest.raises(KeyboardInterrupt):
        writer.binary(b"lost" * 1000)
    assert len(writer) == size
    monkeypatch.undo()
    writer.binary(b"next")
    assert codec.FrameParser().feed(writer.take()) == [
        codec.TextMessage("kept"),
        codec.BinaryMessage(b"next"),
    ]
