"""Codec objects used from several threads: misuse is reported, never a crash.

A parser or writer is for one thread at a time; a call that overlaps another one on the same
object raises ConcurrentUseError and leaves the running call undisturbed. The stress runs
happen in a child process (``threaded_stress.py``), so that a crash of the interpreter fails
the test instead of killing the test run.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path
from types import ModuleType
from typing import Any, Callable, List

import pytest

from turbows.exceptions import ConcurrentUseError, ProtocolError

from codec_reference import OP_BINARY, OP_TEXT, client_frame, describe_all

STRESS = Path(__file__).with_name("threaded_stress.py")
RSV1 = 0x40
WAIT = 30  # seconds: a bound on waits that end at once when the code is right


def run_stress(module: str, scenarios: str, seconds: float) -> "subprocess.CompletedProcess[str]":
    """Run ``threaded_stress.py`` in a child process."""
    return subprocess.run(
        [sys.executable, str(STRESS), module, scenarios, str(seconds)],
        capture_output=True,
        text=True,
        timeout=600,
    )


def check_stress(run: "subprocess.CompletedProcess[str]") -> None:
    assert run.returncode == 0, (run.returncode, run.stdout[-2000:], run.stderr[-4000:])
    assert run.stdout.splitlines()[-1] == "ok", run.stdout


@pytest.mark.parametrize("scenario", ["mask_inplace", "functions"])
def test_a_bytearray_another_thread_resizes_while_the_codec_reads_it_never_crashes(
    codec: ModuleType, scenario: str
) -> None:
    # mask_inplace: 64 MiB masked with the GIL released while a second thread clears and
    # refills the bytearray (the segfault of issue 16 before). functions: apply_mask,
    # build_frame, validate_utf8 and a shared Utf8Validator. The codec holds the buffer
    # while it works on it: the resizes fail with BufferError.
    run = run_stress(codec.__name__, scenario, 2)
    check_stress(run)
    assert "BufferError" in run.stdout, run.stdout


@pytest.mark.parametrize("scenario", ["parser", "deflate_parser", "writer"])
def test_codec_objects_hammered_by_several_threads_never_crash(
    codec: ModuleType, scenario: str
) -> None:
    # One parser (plain, or with the permessage-deflate inflater) or one masking writer shared
    # by four threads, with payloads long enough for the C codec to release the GIL: each
    # overlapping call is refused with ConcurrentUseError (a segfault before, 2 of 2).
    run = run_stress(codec.__name__, scenario, 2)
    check_stress(run)
    assert "ConcurrentUseError" in run.stdout, run.stdout


class _Gate:
    """Blocks the thread that calls it until released, and says when one is waiting."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()

    def wait(self) -> None:
        self.entered.set()
        assert self.release.wait(WAIT)


def _in_thread(call: Callable[[], Any]) -> "tuple[threading.Thread, List[Any]]":
    result: List[Any] = []

    def run() -> None:
        try:
            result.append(call())
        except BaseException as exc:
            result.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    return thread, result


def _deflate(data: bytes) -> bytes:
    import zlib

    c = zlib.compressobj(wbits=-15)
    return (c.compress(data) + c.flush(zlib.Z_SYNC_FLUSH))[:-4]


class _BlockingInflater:
    """Inflates (no context takeover), after waiting at ``gate`` once if it is set."""

    def __init__(self) -> None:
        self.gate: Any = None

    def feed(self, data: bytes, final: bool, limit: int) -> bytes:
        import zlib

        if self.gate is not None:
            gate, self.gate = self.gate, None
            gate.wait()
        return zlib.decompressobj(wbits=-15).decompress(data + b"\x00\x00\xff\xff")


def test_a_feed_while_another_thread_is_in_feed_raises_concurrent_use_error(
    codec: ModuleType,
) -> None:
    inflater = _BlockingInflater()
    parser = codec.FrameParser(inflater=inflater)
    inflater.gate = gate = _Gate()
    thread, result = _in_thread(
        lambda: parser.feed(client_frame(OP_TEXT, _deflate(b"first"), rsv=RSV1))
    )
    assert gate.entered.wait(WAIT)
    second = client_frame(OP_BINARY, b"second")
    with pytest.raises(ConcurrentUseError, match=r"FrameParser\.feed\(\) was called while"):
        parser.feed(second)
    with pytest.raises(ConcurrentUseError):
        parser.feed(bytearray(second))
    gate.release.set()
    thread.join(WAIT)
    # The call that was running is undisturbed, and the parser goes on.
    assert describe_all(result[0]) == describe_all([codec.TextMessage("first")])
    assert parser.feed(second) == [codec.BinaryMessage(b"second")]


def test_an_inflater_that_feeds_its_own_parser_gets_concurrent_use_error(
    codec: ModuleType,
) -> None:
    class Reentering:
        def feed(self, data: bytes, final: bool, limit: int) -> bytes:
            return parser.feed(client_frame(OP_BINARY, b"inner"))  # type: ignore[no-any-return]

    parser = codec.FrameParser(inflater=Reentering())
    with pytest.raises(ConcurrentUseError):
        parser.feed(client_frame(OP_BINARY, b"\x00", rsv=RSV1))
    # The outer call was interrupted half-way: the parser cannot go on.
    with pytest.raises(ProtocolError) as info:
        parser.feed(client_frame(OP_BINARY, b"next"))
    assert info.value.code == 1011


@pytest.mark.parametrize(
    "call",
    [
        lambda w: w.take(),
        lambda w: w._take_parts(),
        lambda w: w.text("other"),
        lambda w: w.binary(b"other"),
        lambda w: w.frame(OP_BINARY, b"other"),
        lambda w: w.messages(["other", b"more"]),
    ],
    ids=["take", "_take_parts", "text", "binary", "frame", "messages"],
)
def test_a_writer_call_while_another_thread_draws_a_masking_key_raises_concurrent_use_error(
    codec: ModuleType, monkeypatch: pytest.MonkeyPatch, call: Callable[[Any], Any]
) -> None:
    gate = _Gate()

    def slow_urandom(n: int) -> bytes:  # os.urandom releases the GIL too
        gate.wait()
        return os.urandom(n)

    monkeypatch.setattr(codec, "_urandom", slow_urandom)
    codec._reset_mask_pool()
    writer = codec.FrameWriter(mask=True)
    thread, result = _in_thread(lambda: writer.binary(b"first" * 100))
    assert gate.entered.wait(WAIT)
    with pytest.raises(ConcurrentUseError, match=r"FrameWriter\.\w+\(\) was called while"):
        call(writer)
    gate.release.set()
    thread.join(WAIT)
    assert result == [None]
    parser = codec.FrameParser()
    assert parser.feed(writer.take()) == [codec.BinaryMessage(b"first" * 100)]
    codec._reset_mask_pool()


def test_the_two_codecs_word_concurrent_use_the_same_way(python_codec, cython_codec) -> None:
    messages = []
    for codec in (python_codec, cython_codec):

        class Reentering:
            def feed(self, data: bytes, final: bool, limit: int) -> bytes:
                return parser.feed(b"")  # type: ignore[no-any-return]

        parser = codec.FrameParser(inflater=Reentering())
        with pytest.raises(ConcurrentUseError) as info:
            parser.feed(client_frame(OP_BINARY, b"\x00", rsv=RSV1))
        messages.append(str(info.value))
    assert messages[0] == messages[1]


def _keys(codec: ModuleType, count: int) -> List[bytes]:
    writer = codec.FrameWriter(mask=True)
    for _ in range(count):
        writer.binary(b"")
    out = writer.take()
    return [out[i + 2 : i + 6] for i in range(0, len(out), 6)]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
def test_parent_and_child_draw_different_masking_keys_after_fork(codec: ModuleType) -> None:
    _keys(codec, 1)  # the pool is full: the next keys would be the same in both processes
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            os.write(write, b"".join(_keys(codec, 64)))
        finally:
            os._exit(0)
    os.close(write)
    mine = _keys(codec, 64)
    theirs = b""
    while True:
        chunk = os.read(read, 4096)
        if not chunk:
            break
        theirs += chunk
    os.close(read)
    assert os.waitpid(pid, 0)[1] == 0
    assert len(theirs) == 256
    theirs_keys = {theirs[i : i + 4] for i in range(0, 256, 4)}
    assert not theirs_keys & set(mine)
