"""Differential fuzzer: the C codec against the pure-Python twin on random input.

Run as a script (``python fuzz_codec.py SECONDS SEED``) so that it can be started in a process
whose C extension was built with AddressSanitizer and UndefinedBehaviorSanitizer. Exits 1 and
prints the failing case on the first difference; a sanitizer report aborts the process.
"""

from __future__ import annotations

import os
import random
import sys
import time
import zlib
from typing import Any, List, Tuple

from turbows import _codec_py as P
from turbows import _speedups as C
from turbows.exceptions import ProtocolError


def describe(item: Any) -> Tuple[Any, ...]:
    name = type(item).__name__
    if name in ("TextMessage", "BinaryMessage"):
        return (name, item.data, item.final)
    if name in ("Ping", "Pong"):
        return (name, item.payload)
    return (name, int(item.code), item.reason)


class Inflater:
    """A minimal permessage-deflate receive side for the parser's ``inflater`` hook."""

    def __init__(self) -> None:
        self._d = zlib.decompressobj(-15)

    def feed(self, data: bytes, final: bool, limit: int) -> bytes:
        if final:
            data += b"\x00\x00\xff\xff"
        try:
            return self._d.decompress(data, limit + 1 if limit >= 0 else 0)
        except zlib.error:
            raise ProtocolError(1002, "invalid compressed data") from None


def deflate(data: bytes) -> bytes:
    c = zlib.compressobj(6, zlib.DEFLATED, -15)
    return (c.compress(data) + c.flush(zlib.Z_SYNC_FLUSH))[:-4]


def run_parser(mod: Any, options: dict, chunks: List[bytes]) -> List[Any]:
    options = dict(options)
    if options.pop("compressed", False):
        options["inflater"] = Inflater()
    parser = mod.FrameParser(**options)
    log: List[Any] = []
    for chunk in chunks:
        try:
            items = parser.feed(chunk)
            log.append(("ok", [describe(i) for i in items], parser.controls, parser.buffered))
        except ProtocolError as exc:
            log.append(("error", exc.code, exc.reason, [describe(i) for i in exc.items]))
    log.append(("closed", parser.closed))
    return log


TEXTS = ["", "a", "hello", "żółw", "日本語", "🙂x", "\u07ff\u0800\uffff\U00010000\U0010ffff"]


def random_payload(rng: random.Random, text: bool) -> bytes:
    kind = rng.random()
    if text and kind < 0.93:
        s = "".join(rng.choice(TEXTS) for _ in range(rng.randint(0, 30)))
        return s.encode()
    n = rng.choice([0, 1, 3, 7, 15, 16, 17, 31, 64, 125, 126, 200, 1000, 65535, 65536, 70000])
    n = min(n, rng.randint(0, 70000))
    return rng.randbytes(n)


def random_stream(rng: random.Random, masked: bool, compressed: bool = False) -> bytes:
    out = bytearray()
    for _ in range(rng.randint(1, 12)):
        r = rng.random()
        mask = rng.randbytes(4) if masked else None
        if r < 0.15:
            op = rng.choice([8, 9, 10])
            payload = rng.randbytes(rng.randint(0, 125))
            if op == 8 and rng.random() < 0.7:
                payload = rng.choice([1000, 1001, 1002, 1011, 3000, 4999, 1005, 999, 5000]).to_bytes(2, "big")
                payload += rng.choice(TEXTS).encode()[:20]
            out += P.build_frame(op, payload, mask=mask)
        else:
            text = rng.random() < 0.6
            payload = random_payload(rng, text)
            rsv = 0
            if compressed and rng.random() < 0.7:
                payload = deflate(payload * rng.choice([1, 1, 50]))
                rsv = 0x40
            pieces = rng.randint(1, 4)
            cuts = sorted(rng.randint(0, len(payload)) for _ in range(pieces - 1))
            bounds = [0] + cuts + [len(payload)]
            for i in range(pieces):
                op = (1 if text else 2) if i == 0 else 0
                out += P.build_frame(
                    op, payload[bounds[i] : bounds[i + 1]], fin=i == pieces - 1,
                    rsv=rsv if i == 0 else 0, mask=mask,
                )
                if rng.random() < 0.1:
                    out += P.build_frame(9, b"p", mask=mask)
    data = bytearray(out)
    # Mutate a few bytes now and then.
    for _ in range(rng.choice([0, 0, 0, 1, 2, 5])):
        if data:
            data[rng.randrange(len(data))] = rng.randrange(256)
    if rng.random() < 0.05:
        data = bytearray(rng.randbytes(rng.randint(0, 300)))
    return bytes(data)


def chunked(rng: random.Random, data: bytes) -> List[bytes]:
    chunks = []
    pos = 0
    while pos < len(data):
        step = rng.choice([1, 2, 3, 7, 13, 100, 4096, 65536, len(data)])
        chunks.append(data[pos : pos + step])
        pos += step
    if rng.random() < 0.2:
        chunks.insert(rng.randint(0, len(chunks)), b"")
    return chunks


def check_parser(rng: random.Random) -> None:
    masked = rng.random() < 0.7
    options = {
        "require_mask": masked if rng.random() < 0.95 else not masked,
        "max_message_size": rng.choice([None, 0, 10, 125, 1000, 1 << 20]),
        "fragments": rng.random() < 0.3,
        "text_as_bytes": rng.random() < 0.3,
        "compressed": rng.random() < 0.25,
    }
    data = random_stream(rng, masked, options["compressed"])
    chunks = chunked(rng, data)
    a = run_parser(P, options, chunks)
    b = run_parser(C, options, [bytearray(c) if rng.random() < 0.1 else c for c in chunks])
    if a != b:
        print("parser mismatch", options, data.hex(), [len(c) for c in chunks], sep="\n")
        print("python:", a, "cython:", b, sep="\n")
        sys.exit(1)


def check_kernels(rng: random.Random) -> None:
    n = rng.choice([0, 1, 5, 31, 64, 65, 127, 300, 4096, 70000])
    data = rng.randbytes(n)
    mask = rng.randbytes(4)
    assert C.apply_mask(data, mask) == P.apply_mask(data, mask)
    buf = bytearray(data)
    C.apply_mask_inplace(buf, mask)
    assert buf == P.apply_mask(data, mask)
    text = "".join(rng.choice(TEXTS) for _ in range(rng.randint(0, 50))).encode()
    mutated = bytearray(text)
    for _ in range(rng.randint(0, 2)):
        if mutated:
            mutated[rng.randrange(len(mutated))] = rng.randrange(256)
    for sample in (text, bytes(mutated), data):
        assert C.validate_utf8(sample) == P.validate_utf8(sample), sample.hex()
        va, vb = C.Utf8Validator(), P.Utf8Validator()
        for piece in chunked(rng, sample):
            assert va.feed(piece) == vb.feed(piece), sample.hex()
        assert va.complete == vb.complete, sample.hex()
    wa, wb = C.FrameWriter(), P.FrameWriter()
    for _ in range(rng.randint(0, 5)):
        payload = rng.choice(TEXTS) * rng.randint(0, 3000)
        wa.text(payload)
        wb.text(payload)
    assert wa.take() == wb.take()


def main() -> None:
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 10.0
    seed = int(sys.argv[2]) if len(sys.argv) > 2 else int.from_bytes(os.urandom(4), "big")
    rng = random.Random(seed)
    deadline = time.monotonic() + seconds
    cases = 0
    while time.monotonic() < deadline:
        check_parser(rng)
        if cases % 4 == 0:
            check_kernels(rng)
        cases += 1
    print(f"seed {seed}: {cases} cases, no difference")


if __name__ == "__main__":
    main()
