"""Hammer the codec's objects from several threads at once (run as a script, in a child
process, so that a crash is a failed test rather than a dead test run).

    python threaded_stress.py MODULE SCENARIO[,SCENARIO...] SECONDS

MODULE is ``turbows._speedups`` or ``turbows._codec_py``. Every scenario shares one object
between several threads with payloads large enough for the C codec to release the GIL, and
resizes or empties buffers meanwhile. The only errors allowed are the ones that report the
misuse: ``ConcurrentUseError`` (a codec object used by two threads at once), ``BufferError``
(a bytearray resized while the codec works on it) and ``ProtocolError`` (a parser fed
interleaved streams). Anything else, or a crash, fails. Prints ``ok`` and what each scenario
saw.
"""

from __future__ import annotations

import importlib
import os
import sys
import threading
import time
import zlib
from collections import Counter
from types import ModuleType
from typing import Any, Callable, Dict, List

from turbows.exceptions import ConcurrentUseError, ProtocolError
from turbows.extensions import Inflater

THREADS = 4
BIG = 1 << 20  # well past the size from which the C kernels release the GIL
KEY = b"\x9c\x01\xe7\x55"
EXPECTED = (ConcurrentUseError, BufferError, ProtocolError)


def _run_threads(work: Callable[[int, Counter], None], seconds: float) -> Counter:
    """Run ``work(index, counts)`` in THREADS threads until ``seconds`` have passed."""
    deadline = time.monotonic() + seconds
    counts: Counter = Counter()
    failures: List[BaseException] = []

    def loop(index: int) -> None:
        try:
            while time.monotonic() < deadline:
                try:
                    work(index, counts)
                    counts["ok"] += 1
                except EXPECTED as exc:
                    counts[type(exc).__name__] += 1
        except BaseException as exc:  # reported by the main thread
            failures.append(exc)

    threads = [threading.Thread(target=loop, args=(i,)) for i in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if failures:
        raise failures[0]
    return counts


def mask_inplace(codec: ModuleType, seconds: float) -> Counter:
    """apply_mask_inplace on a large bytearray while other threads empty and refill it."""
    size = 64 << 20 if codec.__name__.endswith("_speedups") else 4 << 20
    ba = bytearray(size)

    def work(index: int, counts: Counter) -> None:
        if index % 2 == 0:
            codec.apply_mask_inplace(ba, KEY)
        else:
            ba.clear()  # BufferError while the other thread masks it
            ba.extend(bytes(size))

    return _run_threads(work, seconds)


def _masked_frames(codec: ModuleType) -> List[bytes]:
    big = os.urandom(BIG)
    return [
        codec.build_frame(2, big, mask=KEY),
        codec.build_frame(1, "é" * (BIG // 2), mask=KEY),
        codec.build_frame(2, big, fin=False, mask=KEY),
        codec.build_frame(0, big[:1000], mask=KEY),
        codec.build_frame(9, b"ping", mask=KEY),
        codec.build_frame(0, big, fin=True, mask=KEY),
    ]


def parser(codec: ModuleType, seconds: float) -> Counter:
    """One FrameParser fed large masked messages, whole and in pieces, by several threads."""
    frames = _masked_frames(codec)
    stream = b"".join(frames)
    pieces = [stream[i : i + 300_001] for i in range(0, len(stream), 300_001)]
    shared: List[Any] = [codec.FrameParser(max_message_size=None)]

    def work(index: int, counts: Counter) -> None:
        p = shared[0]
        try:
            if index % 2 == 0:
                for piece in pieces:
                    p.feed(piece)
            else:
                p.feed(bytearray(stream))
        except ProtocolError:
            shared[0] = codec.FrameParser(max_message_size=None)
            raise

    return _run_threads(work, seconds)


def deflate_parser(codec: ModuleType, seconds: float) -> Counter:
    """A FrameParser with a permessage-deflate inflater, fed compressed messages."""
    c = zlib.compressobj(6, zlib.DEFLATED, -15)
    plain = os.urandom(BIG // 4) * 4
    data = (c.compress(plain) + c.flush(zlib.Z_SYNC_FLUSH))[:-4]
    frame = codec.build_frame(2, data, rsv=0x40, mask=KEY)
    shared: List[Any] = [codec.FrameParser(max_message_size=None, inflater=Inflater())]

    def work(index: int, counts: Counter) -> None:
        p = shared[0]
        try:
            for i in range(0, len(frame), 65_536):
                p.feed(frame[i : i + 65_536])
        except ProtocolError:
            shared[0] = codec.FrameParser(max_message_size=None, inflater=Inflater())
            raise

    return _run_threads(work, seconds)


def writer(codec: ModuleType, seconds: float) -> Counter:
    """One masking FrameWriter: large frames appended while other threads take them out."""
    big = os.urandom(BIG)
    text = "x" * BIG
    w = codec.FrameWriter(mask=True)

    def work(index: int, counts: Counter) -> None:
        if index == 0:
            w.binary(big)
            w.text(text)
        elif index == 1:
            w.frame(2, bytearray(big), fin=False)
            w.frame(0, memoryview(big), fin=True)
        elif index == 2:
            w.take()
        else:
            w._take_parts()
            len(w)

    return _run_threads(work, seconds)


def functions(codec: ModuleType, seconds: float) -> Counter:
    """apply_mask, build_frame, validate_utf8 and one shared Utf8Validator reading a large
    bytearray while other threads empty and refill it."""
    size = 4 << 20
    ba = bytearray(b"a" * size)
    validator = codec.Utf8Validator()

    def work(index: int, counts: Counter) -> None:
        if index == 0:
            codec.apply_mask(ba, KEY)
            codec.build_frame(2, ba, mask=KEY)
        elif index == 1:
            codec.validate_utf8(ba)
            validator.feed(ba)
            validator.complete  # noqa: B018
        else:
            ba.clear()
            ba.extend(b"a" * size)

    return _run_threads(work, seconds)


SCENARIOS: Dict[str, Callable[[ModuleType, float], Counter]] = {
    "mask_inplace": mask_inplace,
    "functions": functions,
    "parser": parser,
    "deflate_parser": deflate_parser,
    "writer": writer,
}


def main() -> None:
    codec = importlib.import_module(sys.argv[1])
    names = list(SCENARIOS) if sys.argv[2] == "all" else sys.argv[2].split(",")
    seconds = float(sys.argv[3])
    sys.setswitchinterval(1e-5)  # switch threads as often as possible
    for name in names:
        counts = SCENARIOS[name](codec, seconds)
        print(name, dict(counts), flush=True)
    print("ok")


if __name__ == "__main__":
    main()
