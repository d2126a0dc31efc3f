"""Coverage-guided differential fuzzer (atheris/libFuzzer): the C codec against its pure-Python
twin, meant to run against a build of the extension with AddressSanitizer + UBSan.

Four targets (weighted towards the parser), picked by the input's last byte:

* raw parser: the input (after a few option bytes) is the byte stream itself, fed in
  fuzzer-chosen chunks to the C and the pure-Python ``FrameParser``;
* structured parser: the input describes frames (opcode, FIN, RSV, mask key, payload repeated
  up to large sizes, fragmentation, permessage-deflate compression, non-minimal or lying length
  fields) plus byte mutations; the stream is then fed like the raw one;
* send side: ``FrameWriter`` (masked or not), ``build_frame`` and ``encode_close`` with
  fuzzer-chosen opcodes, payloads, payload types, FIN/RSV and masks; C and pure outputs must
  be equal (a masked writer's after unmasking, its keys being random), and parsing the frames
  back must give the payloads back;
* kernels: ``validate_utf8`` and ``Utf8Validator`` (chunked) against CPython's UTF-8 decoder,
  ``apply_mask``/``apply_mask_inplace`` against the pure twin, under every instruction set the
  CPU has (``_force_isa``).

Parser options (require_mask, max_message_size, fragments, text_as_bytes, an inflater), the
chunking, the buffer type of each chunk and the kernels' instruction set come from the input
too. Per chunk, the items, ``controls``, ``buffered`` and ``closed`` must be identical, and so
must errors (type, close code, reason, items completed before the error; ``buffered`` is not
compared after an error).

Build (clang, so that libFuzzer's coverage reaches the C code) in a copy of the sources::

    cp -r src setup.py pyproject.toml README.md /tmp/fzbuild/ && cd /tmp/fzbuild
    CC=clang LDSHARED="clang -shared" TURBOWS_REQUIRE_EXTENSIONS=1 \
      CFLAGS="-fsanitize=address,undefined,fuzzer-no-link -fno-sanitize-recover=undefined \
              -fsanitize-recover=pointer-overflow -fno-omit-frame-pointer -fno-wrapv -g -O1" \
      LDFLAGS="-fsanitize=address,undefined,fuzzer-no-link" \
      python setup.py build_ext --inplace

Run (``asan_with_fuzzer.so``, in the atheris wheel, holds ASan's runtime, UBSan's handlers and
libFuzzer)::

    echo 'pointer-overflow:__cinit__$' > ubsan.supp
    ATHERIS=$(python -c 'import atheris; print(atheris.path())')
    LD_PRELOAD=$ATHERIS/asan_with_fuzzer.so PYTHONMALLOC=malloc PYTHONPATH=/tmp/fzbuild/src \
      ASAN_OPTIONS=detect_leaks=0:abort_on_error=1:allocator_may_return_null=1 \
      UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1:suppressions=$PWD/ubsan.supp \
      python tests/sanitize/atheris_codec.py corpus/ -max_len=8192 -len_control=20 \
        -timeout=60 -rss_limit_mb=6144 -max_total_time=1500 -artifact_prefix=artifacts/

The suppression (hence pointer-overflow made recoverable) is for Cython's generated code, not
ours: with vectorcall ``tp_new`` (Cython 3.3) a class's ``__cinit__`` wrapper is called with
``args == NULL, nargs == 0`` and computes ``args + nargs``, which clang's UBSan reports as
"applying zero offset to null pointer" on every ``FrameParser()``/``FrameWriter()``. A
reproducer is run with the same command and the file (or files) instead of the corpus folder.

Environment: ``TURBOWS_ATHERIS_KEEP_GOING=DIR`` logs differential mismatches into DIR (one
input file per distinct signature, the first few of each) instead of stopping at the first;
``TURBOWS_ATHERIS_PY_COVERAGE=0`` leaves the pure-Python codec uninstrumented (C coverage only).
"""

from __future__ import annotations

import codecs
import hashlib
import os
import sys
import traceback
from typing import Any, Callable, List, Optional, Tuple

import atheris

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "codec"))

import turbows  # noqa: F401 - the package first: only the pure codec is instrumented

if os.environ.get("TURBOWS_ATHERIS_PY_COVERAGE", "1") != "0":
    with atheris.instrument_imports(include=["turbows._codec_py"]):
        from turbows import _codec_py as P
else:
    from turbows import _codec_py as P

from fuzz_codec import Inflater, deflate

from turbows import _speedups as C
from turbows._enums import close_code
from turbows.exceptions import ProtocolError

from codec_reference import describe


class Mismatch(AssertionError):
    """The C codec and the reference disagree; ``sig`` groups alike mismatches."""

    def __init__(self, message: str, sig: str = "") -> None:
        super().__init__(message)
        self.sig = sig or message.splitlines()[0]


class ClampedInflater(Inflater):
    """fuzz_codec's inflater, with ``limit`` kept within what zlib takes as ``max_length`` (a
    huge max_message_size would make it raise OverflowError: an artifact of the test inflater,
    whereas turbows.extensions' inflater inflates in steps of at most 64 KiB)."""

    def feed(self, data: bytes, final: bool, limit: int) -> bytes:
        return super().feed(data, final, min(limit, (1 << 62)))


# ---------------------------------------------------------------------------------------------
# Helpers.

DEFAULT_ISA = C.kernel_isa()
ISAS: List[str] = []
for _isa in ("portable", "sse2", "avx2", "avx512bw", "neon"):
    try:
        C._force_isa(_isa)
    except ValueError:
        continue
    ISAS.append(_isa)
C._force_isa(DEFAULT_ISA)

TEXTS = ["", "a", "hello", "żółw", "日本語", "🙂x", "\u07ff\u0800\uffff\U00010000\U0010ffff"]
MAX_SIZES = [
    None,
    0,
    1,
    2,
    10,
    125,
    126,
    127,
    1000,
    4096,
    65535,
    65536,
    1 << 20,
    (1 << 62) - 1,
    1 << 62,
    (1 << 62) + 1,
    (1 << 63) - 1,
    1 << 63,
    1 << 64,
]
SMALL_REPEATS = [2, 3, 4, 16, 17, 64, 130]
LARGE_REPEATS = [1024, 4097, 8193, 16385, 70000, 300000]
STREAM_BUDGET = 600_000
CLOSE_CODES = [
    1000,
    1001,
    1002,
    1005,
    1006,
    1011,
    1015,
    1016,
    2999,
    3000,
    4999,
    5000,
    999,
    0,
    65535,
]


def outcome(fn: Callable[[], Any]) -> Tuple[str, Any]:
    """Call ``fn``; return ("ok", result) or ("raise", (type, message))."""
    try:
        return ("ok", fn())
    except ProtocolError as exc:
        return ("raise", ("ProtocolError", exc.code, exc.reason))
    except Exception as exc:
        return ("raise", (type(exc).__name__, str(exc)))


def wrap(chunk: bytes, kind: int) -> Any:
    """The chunk as bytes, bytearray, memoryview, or a misaligned memoryview slice."""
    if kind == 1:
        return bytearray(chunk)
    if kind == 2:
        return memoryview(chunk)
    if kind == 3:
        return memoryview(b"\xa5" * 3 + chunk + b"\x5a")[3:-1]
    if kind == 4:
        return memoryview(bytearray(chunk))
    return chunk


def xor(data: bytes, key: bytes) -> bytes:
    return P._xor(data, key)


def check(cond: bool, what: str, *details: Any) -> None:
    if not cond:
        raise Mismatch(what + "\n" + "\n".join(repr(d)[:4000] for d in details))


# ---------------------------------------------------------------------------------------------
# Parser.


def parser_options(fdp: atheris.FuzzedDataProvider) -> dict:
    return {
        "require_mask": fdp.ConsumeBool(),
        "max_message_size": fdp.PickValueInList(MAX_SIZES),
        "fragments": fdp.ConsumeBool(),
        "text_as_bytes": fdp.ConsumeBool(),
        "compressed": fdp.ConsumeIntInRange(0, 2) == 2,
    }


def chunk_plan(fdp: atheris.FuzzedDataProvider) -> Tuple[List[int], List[int]]:
    """Chunk lengths (applied cyclically) and the buffer type of each chunk."""
    mode = fdp.ConsumeIntInRange(0, 3)
    if mode == 0:
        lengths: List[int] = []
    elif mode == 1:
        lengths = [fdp.PickValueInList([1, 2, 3, 4, 5, 7, 13, 14, 15, 64, 100, 4096, 65536])]
    else:
        lengths = [
            fdp.ConsumeIntInRange(0, 300 if mode == 2 else 20)
            for _ in range(fdp.ConsumeIntInRange(1, 8))
        ]
    kinds = [
        fdp.ConsumeIntInRange(0, 4) if fdp.ConsumeIntInRange(0, 3) == 0 else 0
        for _ in range(fdp.ConsumeIntInRange(1, 3))
    ]
    return lengths, kinds


def split(data: bytes, lengths: List[int], most: int = 1000) -> List[bytes]:
    """``data`` cut into pieces of the given lengths in turn (at most ``most`` pieces, the
    last one holding the rest)."""
    if not lengths or sum(lengths) == 0:
        return [data]
    chunks = []
    pos = i = 0
    while pos < len(data) and len(chunks) < most - 1:
        step = lengths[i % len(lengths)]
        chunks.append(data[pos : pos + step])
        pos += step
        i += 1
    if pos < len(data):
        chunks.append(data[pos:])
    if lengths[0] == 0:
        chunks.append(b"")
    return chunks


def run_parser(mod: Any, options: dict, chunks: List[bytes], kinds: List[int]) -> List[Any]:
    options = dict(options)
    if options.pop("compressed", False):
        options["inflater"] = ClampedInflater()
    made = outcome(lambda: mod.FrameParser(**options))
    if made[0] != "ok":
        return [made]
    parser = made[1]
    log: List[Any] = []
    for i, chunk in enumerate(chunks):
        arg = wrap(chunk, kinds[i % len(kinds)])
        try:
            items = parser.feed(arg)
            log.append(
                (
                    "ok",
                    [describe(x) for x in items],
                    parser.controls,
                    parser.buffered,
                    parser.closed,
                )
            )
        except ProtocolError as exc:
            # Not ``buffered``: after an error it is not specified (it keeps the size of the
            # failed message in one implementation or path and not in another).
            log.append(
                (
                    "error",
                    exc.code,
                    exc.reason,
                    [describe(x) for x in exc.items],
                    parser.controls,
                    parser.closed,
                )
            )
        except Exception as exc:
            log.append(("exception", type(exc).__name__, str(exc)))
    return log


def diff_logs(a: List[Any], b: List[Any]) -> str:
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return f"first difference at chunk {i}:\n  python: {x!r:.3000}\n  C:      {y!r:.3000}"
    return f"lengths {len(a)} vs {len(b)}"


def diff_sig(a: List[Any], b: List[Any]) -> str:
    """A short signature of the first difference: the kind of entry on each side (and the
    error's code or type), and which field differs when both are ok."""
    for x, y in zip(a, b):
        if x != y:
            if x[0] == y[0] == "ok":
                fields = ("items", "controls", "buffered", "closed")
                return "ok/ok differ in " + ",".join(
                    f for f, u, v in zip(fields, x[1:], y[1:]) if u != v
                )
            return f"python {x[0]} {x[1] if x[0] != 'ok' else ''} / C {y[0]} {y[1] if y[0] != 'ok' else ''}"
    return "length"


def check_parser(options: dict, data: bytes, lengths: List[int], kinds: List[int]) -> None:
    chunks = split(data, lengths)
    a = run_parser(P, options, chunks, kinds)
    b = run_parser(C, options, chunks, kinds)
    if a != b:
        raise Mismatch(
            f"parser mismatch\noptions={options!r}\nchunk lengths={[len(c) for c in chunks][:60]}"
            f"\ndata[:400]={data[:400]!r}\n{diff_logs(a, b)}",
            "parser mismatch: " + diff_sig(a, b),
        )


def target_raw_parser(fdp: atheris.FuzzedDataProvider) -> None:
    options = parser_options(fdp)
    lengths, kinds = chunk_plan(fdp)
    data = fdp.ConsumeBytes(fdp.remaining_bytes())
    check_parser(options, data, lengths, kinds)


def repeat(fdp: atheris.FuzzedDataProvider) -> int:
    """How many times a payload is repeated: mostly once, now and then up to large sizes
    (SIMD loops, 4 KiB alignment in the masking kernels, FrameWriter's 8 KiB paths, the
    16 KiB blocks of turbows_mask_ascii, the 256 KiB GIL-release threshold)."""
    r = fdp.ConsumeIntInRange(0, 15)
    if r < 10:
        return 1
    if r < 14:
        return fdp.PickValueInList(SMALL_REPEATS)
    return fdp.PickValueInList(LARGE_REPEATS)


def gen_payload(fdp: atheris.FuzzedDataProvider, budget: int) -> bytes:
    kind = fdp.ConsumeIntInRange(0, 3)
    n = fdp.ConsumeIntInRange(0, 40)
    if kind == 0:
        raw = fdp.ConsumeBytes(n)
    elif kind == 1:
        raw = fdp.ConsumeUnicode(n).encode("utf-8", "surrogatepass")
    elif kind == 2:
        raw = "".join(fdp.PickValueInList(TEXTS) for _ in range(n)).encode()
    else:
        raw = b"a" * n + fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 4))
    rep = repeat(fdp)
    if raw and len(raw) * rep > budget:
        rep = max(1, budget // len(raw))
    return raw * rep


def header(b0: int, n: int, key: Optional[bytes], form: int, lie: int) -> bytes:
    mbit = 0x80 if key is not None else 0
    if form == 3:  # a length field that does not match the payload
        n = lie
        form = 2 if n >= 0x10000 else (1 if n >= 126 else 0)
    if form == 0 and n < 126:
        out = bytes((b0, mbit | n))
    elif form <= 1 and n < 0x10000:
        out = bytes((b0, mbit | 126)) + n.to_bytes(2, "big")
    else:
        out = bytes((b0, mbit | 127)) + (n & ((1 << 64) - 1)).to_bytes(8, "big")
    return out + (key or b"")


def gen_stream(fdp: atheris.FuzzedDataProvider, masked: bool, compressed: bool) -> bytes:
    """Rare actions are tied to the largest value of a choice: once the input is used up,
    every choice is its smallest value, which must mean the common case."""
    out = bytearray()
    for _ in range(fdp.ConsumeIntInRange(1, 10)):
        if fdp.remaining_bytes() == 0 or len(out) >= STREAM_BUDGET:
            break
        budget = STREAM_BUDGET - len(out)
        flip = fdp.ConsumeIntInRange(0, 31) == 31
        use_mask = masked != flip

        def key() -> Optional[bytes]:
            if not use_mask:
                return None
            k = fdp.ConsumeBytes(4)
            return k + b"\0" * (4 - len(k))

        form = fdp.ConsumeIntInRange(0, 7)
        form = form if form <= 3 else 0
        lie = (
            fdp.PickValueInList(
                [
                    0,
                    1,
                    125,
                    126,
                    127,
                    65535,
                    65536,
                    (1 << 63) - 1,
                    1 << 63,
                    (1 << 64) - 1,
                    1 << 62,
                    (1 << 62) + 1,
                ]
            )
            if form == 3
            else 0
        )
        kind = fdp.ConsumeIntInRange(0, 9)
        if kind <= 6:  # a data message, maybe fragmented and compressed, pings in between
            text = fdp.ConsumeBool()
            payload = gen_payload(fdp, budget)
            rsv = 0
            if compressed and fdp.ConsumeBool():
                payload = deflate(payload)
                rsv = 0x40
            pieces = fdp.ConsumeIntInRange(1, 4)
            cuts = sorted(fdp.ConsumeIntInRange(0, len(payload)) for _ in range(pieces - 1))
            bounds = [0] + cuts + [len(payload)]
            for i in range(pieces):
                op = (1 if text else 2) if i == 0 else 0
                piece = payload[bounds[i] : bounds[i + 1]]
                k = key()
                b0 = (0x80 if i == pieces - 1 else 0) | (rsv if i == 0 else 0) | op
                out += header(b0, len(piece), k, form if i == 0 else 0, lie)
                out += xor(piece, k) if k else piece
                if fdp.ConsumeIntInRange(0, 7) == 7:
                    k = key()
                    ping = fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 5))
                    out += header(0x89, len(ping), k, 0, 0) + (xor(ping, k) if k else ping)
        elif kind == 7:  # a control frame
            op = fdp.PickValueInList([8, 9, 10])
            if op == 8 and fdp.ConsumeBool():
                payload = fdp.PickValueInList(CLOSE_CODES).to_bytes(2, "big")
                payload += gen_payload(fdp, 123)[:123]
            else:
                payload = fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 130))
            k = key()
            out += header(0x80 | op, len(payload), k, form, lie) + (
                xor(payload, k) if k else payload
            )
        elif kind == 8:  # any header bits at all
            b0 = fdp.ConsumeIntInRange(0, 255)
            payload = gen_payload(fdp, budget)
            k = key()
            out += header(b0, len(payload), k, form, lie) + (xor(payload, k) if k else payload)
        else:  # raw bytes
            out += fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 32))
    for _ in range(fdp.PickValueInList([0, 0, 0, 0, 0, 0, 1, 1, 2, 4])):
        if out:
            out[fdp.ConsumeIntInRange(0, len(out) - 1)] = fdp.ConsumeIntInRange(0, 255)
    if out and fdp.ConsumeIntInRange(0, 15) == 15:
        del out[fdp.ConsumeIntInRange(0, len(out) - 1) :]
    return bytes(out)


def target_structured_parser(fdp: atheris.FuzzedDataProvider) -> None:
    options = parser_options(fdp)
    lengths, kinds = chunk_plan(fdp)
    data = gen_stream(fdp, options["require_mask"], options["compressed"])
    check_parser(options, data, lengths, kinds)


# ---------------------------------------------------------------------------------------------
# Send side.


def unframe(buf: bytes) -> Tuple[List[Tuple[int, int, bool, bytes]], bytes]:
    """Split built frames: (b0, length form, masked, unmasked payload) each, and leftover."""
    frames = []
    pos = 0
    while pos + 2 <= len(buf):
        b0, b1 = buf[pos], buf[pos + 1]
        n = b1 & 0x7F
        h = 2
        if n == 126:
            n = int.from_bytes(buf[pos + 2 : pos + 4], "big")
            h = 4
        elif n == 127:
            n = int.from_bytes(buf[pos + 2 : pos + 10], "big")
            h = 10
        masked = bool(b1 & 0x80)
        key = buf[pos + h : pos + h + 4] if masked else b""
        h += len(key)
        if pos + h + n > len(buf):
            break
        payload = buf[pos + h : pos + h + n]
        frames.append((b0, b1 & 0x7F, masked, xor(payload, key) if masked else payload))
        pos += h + n
    return frames, buf[pos:]


def gen_send_payload(fdp: atheris.FuzzedDataProvider, as_text: bool) -> Any:
    """A payload argument: str (ASCII, non-ASCII, with lone surrogates) or bytes-like."""
    if as_text or fdp.ConsumeIntInRange(0, 5) == 0:
        kind = fdp.ConsumeIntInRange(0, 4)
        n = fdp.ConsumeIntInRange(0, 30)
        if kind == 0:
            s = "x" * n
        elif kind == 1:
            s = "".join(fdp.PickValueInList(TEXTS) for _ in range(n))
        elif kind == 2:
            s = fdp.ConsumeUnicodeNoSurrogates(n)
        elif kind == 3:
            s = fdp.ConsumeUnicode(n)  # may hold lone surrogates: not encodable
        else:
            s = "".join(chr(fdp.ConsumeIntInRange(0, 0x7F)) for _ in range(n))
        rep = repeat(fdp)
        if s and len(s) * rep > 300_000:
            rep = max(1, 300_000 // len(s))
        return s * rep
    raw = gen_payload(fdp, 300_000)
    t = fdp.ConsumeIntInRange(0, 5)
    if t == 5:
        return memoryview(raw + raw)[::2]  # not C-contiguous: BufferError
    if t == 1:
        return bytearray(raw)
    if t == 2:
        return memoryview(raw)
    if t == 3:
        return memoryview(b"\x00" + raw)[1:]
    return raw


def payload_bytes(payload: Any) -> bytes:
    if isinstance(payload, str):
        return payload.encode("utf-8")
    return bytes(payload)


def join_parts(parts: Any) -> bytes:
    if isinstance(parts, tuple):
        head, body = parts
        check(type(head) is bytes and type(body) in (bytes, str), "_take_parts types", parts[:1])
        return head + (body.encode("ascii") if isinstance(body, str) else body)
    return parts


class Expect:
    """What a parser (fragments mode or not, no limit, no inflater) must return for the frames
    written so far, while they form a valid stream."""

    def __init__(self) -> None:
        self.valid = True
        self.items_frag: List[Any] = []
        self.items_whole: List[Any] = []
        self.msg: Optional[int] = None  # opcode of the message in progress
        self.parts: List[bytes] = []
        self.validator = P.Utf8Validator()
        self.closed = False

    def frame(self, opcode: int, data: bytes, fin: bool, rsv: int) -> None:
        if not self.valid or self.closed:
            return
        if rsv:
            self.valid = False
            return
        if opcode >= 8:
            if opcode == 8:
                try:
                    item = describe(P._parse_close(data))
                except ProtocolError:
                    self.valid = False
                    return
                self.closed = True
            else:
                item = ("Ping" if opcode == 9 else "Pong", "bytes", data)
            self.items_frag.append(item)
            self.items_whole.append(item)
            return
        if (opcode == 0) != (self.msg is not None):
            self.valid = False
            return
        if opcode:
            self.msg = opcode
            self.validator.reset()
        text = self.msg == 1
        if text and not (self.validator.feed(data) and (not fin or self.validator.complete)):
            self.valid = False
            return
        name = "TextMessage" if text else "BinaryMessage"
        self.items_frag.append((name, "bytes", data, fin))
        self.parts.append(data)
        if fin:
            self.items_whole.append((name, "bytes", b"".join(self.parts), True))
            self.parts = []
            self.msg = None


def target_send(fdp: atheris.FuzzedDataProvider) -> None:
    masked = fdp.ConsumeBool()
    wc, wp = C.FrameWriter(mask=masked), P.FrameWriter(mask=masked)
    out_c = bytearray()
    out_p = bytearray()
    expect = Expect()
    for _ in range(fdp.ConsumeIntInRange(1, 8)):
        op = fdp.ConsumeIntInRange(0, 7)
        if op <= 2:
            if op == 0:
                payload = gen_send_payload(fdp, fdp.ConsumeIntInRange(0, 7) != 7)
                args: Tuple[Any, ...] = (payload,)
                name = "text"
                opcode, fin, rsv = 1, True, 0
            elif op == 1:
                payload = gen_send_payload(fdp, False)
                args = (payload,)
                name = "binary"
                opcode, fin, rsv = 2, True, 0
            else:
                opcode = fdp.PickValueInList(
                    [0, 0, 1, 2, 8, 9, 10, 9, 8, 3, 7, 11, 15, 16, -1, True]
                )
                fin = fdp.ConsumeIntInRange(0, 3) != 3
                rsv = fdp.PickValueInList([0, 0, 0, 0, 0x40, 0x20, 0x10, 0x70, 0x80, 1, -1])
                if opcode == 8 and fdp.ConsumeBool():
                    payload = (
                        fdp.PickValueInList(CLOSE_CODES).to_bytes(2, "big")
                        + gen_payload(fdp, 130)[:130]
                    )
                else:
                    payload = gen_send_payload(fdp, fdp.ConsumeIntInRange(0, 3) == 0)
                args = (opcode, payload, fin, rsv)
                name = "frame"
            rc = outcome(lambda: getattr(wc, name)(*args))
            rp = outcome(lambda: getattr(wp, name)(*args))
            check(
                rc == rp,
                f"FrameWriter.{name} outcome",
                args[:1] if name != "frame" else (opcode, fin, rsv),
                rc,
                rp,
            )
            if rc[0] == "ok":
                expect.frame(int(opcode), payload_bytes(payload), fin, rsv)
        elif op == 3:
            check(len(wc) == len(wp), "len(FrameWriter)", len(wc), len(wp))
        elif op == 4:
            a, b = join_parts(wc._take_parts()), wp._take_parts()
            check(len(a) == len(b), "_take_parts length", len(a), len(b))
            out_c += a
            out_p += b
        elif op == 5:
            a, b = wc.take(), wp.take()
            check(type(a) is bytes and len(a) == len(b), "take length", len(a), len(b))
            out_c += a
            out_p += b
        elif op == 6:
            target_build_one(fdp)
        else:
            target_encode_close(fdp)
    check(len(wc) == len(wp), "len(FrameWriter)", len(wc), len(wp))
    out_c += wc.take()
    out_p += wp.take()
    check(len(wc) == 0 and wc.take() == b"", "writer not empty after take")
    out_c = bytes(out_c)
    out_p = bytes(out_p)
    if not masked:
        check(out_c == out_p, "FrameWriter output", out_c[:200], out_p[:200])
    else:
        fc, rest_c = unframe(out_c)
        fp, rest_p = unframe(out_p)
        check(
            fc == fp and rest_c == rest_p == b"",
            "masked FrameWriter frames",
            [f[:3] for f in fc][:20],
            [f[:3] for f in fp][:20],
        )
        check(all(f[2] for f in fc), "a frame of a masking writer is not masked")
    # Parse the frames back with both parsers, whole messages and fragments.
    for fragments in (True, False):
        options = {
            "require_mask": masked,
            "max_message_size": None,
            "fragments": fragments,
            "text_as_bytes": True,
        }
        lengths = [fdp.ConsumeIntInRange(0, 70)] if fdp.ConsumeBool() else []
        chunks = split(out_c, lengths, 64)
        a = run_parser(P, options, chunks, [0])
        b = run_parser(C, options, chunks, [0])
        check(a == b, "parser mismatch on built frames", options, diff_logs(a, b))
        if expect.valid:
            got = [x for entry in b if entry[0] == "ok" for x in entry[1]]
            want = expect.items_frag if fragments else expect.items_whole
            check(
                all(entry[0] == "ok" for entry in b) and got == want,
                "built frames do not parse back to their payloads",
                options,
                b[-1:],
                want[-3:],
            )


def target_build_one(fdp: atheris.FuzzedDataProvider) -> None:
    opcode = fdp.PickValueInList([0, 1, 2, 8, 9, 10, 1, 2, 3, 11, 15, -1, True])
    fin = fdp.ConsumeIntInRange(0, 3) != 3
    rsv = fdp.PickValueInList([0, 0, 0, 0x40, 0x20, 0x10, 0x70, 0x80, 1, -1, 1 << 70])
    payload = gen_send_payload(fdp, fdp.ConsumeIntInRange(0, 3) == 0)
    mk = fdp.ConsumeIntInRange(0, 7)
    if mk == 0:
        mask: Any = None
    else:
        key = fdp.ConsumeBytes(4).ljust(4, b"\0")
        mask = [key, key, key, bytearray(key), memoryview(key), key[:3], key + b"!", 1234][mk]
    ra = outcome(lambda: C.build_frame(opcode, payload, fin=fin, rsv=rsv, mask=mask))
    rb = outcome(lambda: P.build_frame(opcode, payload, fin=fin, rsv=rsv, mask=mask))
    check(
        ra == rb,
        "build_frame",
        (opcode, fin, rsv, mask),
        ra[1] if ra[0] == "raise" else ra[1][:100],
        rb[1] if rb[0] == "raise" else rb[1][:100],
    )
    if ra[0] != "ok":
        return
    frames, rest = unframe(ra[1])
    data = payload_bytes(payload)
    check(
        len(frames) == 1
        and rest == b""
        and frames[0][3] == data
        and frames[0][0] == (0x80 if fin else 0) | rsv | int(opcode)
        and frames[0][2] == (mask is not None),
        "build_frame does not round-trip",
    )
    # The parser must take it back (as a data frame that opens or continues a message).
    if rsv == 0 and int(opcode) in (1, 2, 9, 10):
        options = {
            "require_mask": mask is not None,
            "max_message_size": None,
            "fragments": True,
            "text_as_bytes": True,
        }
        a = run_parser(P, options, [ra[1]], [0])
        b = run_parser(C, options, [ra[1]], [0])
        check(a == b, "parser mismatch on build_frame output", diff_logs(a, b))
        if int(opcode) >= 9 or P.validate_utf8(data) or int(opcode) == 2:
            check(
                b[0][0] == "ok" and len(b[0][1]) == 1 and b[0][1][0][2] == data,
                "build_frame output does not parse back",
                b[0],
            )


def target_encode_close(fdp: atheris.FuzzedDataProvider) -> None:
    code = fdp.PickValueInList(CLOSE_CODES + [None, 1007, 4000])
    reason = gen_send_payload(fdp, True) if fdp.ConsumeIntInRange(0, 3) != 3 else ""
    if len(reason) > 200:
        reason = reason[: fdp.ConsumeIntInRange(0, 200)]
    ra = outcome(lambda: C.encode_close(code, reason))
    rb = outcome(lambda: P.encode_close(code, reason))
    check(ra == rb, "encode_close", code, reason, ra, rb)
    if ra[0] == "ok":
        want = b"" if code is None else code.to_bytes(2, "big") + reason.encode()
        check(ra[1] == want, "encode_close payload", code, reason, ra[1])
        # Sent in a close frame, it parses back to the same code and reason.
        log = run_parser(C, {"require_mask": False}, [C.build_frame(8, ra[1])], [0])
        check(
            log[0][0] == "ok"
            and log[0][1]
            == [
                (
                    "CloseReceived",
                    type(close_code(1005 if code is None else code)).__name__,
                    1005 if code is None else code,
                    reason,
                )
            ],
            "encode_close output does not parse back",
            code,
            reason,
            log,
        )


# ---------------------------------------------------------------------------------------------
# Kernels.


def valid_prefix(buf: bytes) -> bool:
    """Reference: can ``buf`` be extended into valid UTF-8 (CPython's decoder decides)?"""
    try:
        buf.decode("utf-8")
        return True
    except UnicodeDecodeError as exc:
        if exc.start < len(buf) - 3:
            return False
        start = exc.start
    head, tail = buf[:start], buf[start:]
    try:
        head.decode("utf-8")
    except UnicodeDecodeError:
        return False
    for extra in range(1, 4):
        try:
            (tail + b"\x80" * extra).decode("utf-8")
            return True
        except UnicodeDecodeError:
            pass
    for second in range(0x80, 0xC0):
        for extra in range(0, 3):
            try:
                (tail + bytes((second,)) + b"\x80" * extra).decode("utf-8")
                return True
            except UnicodeDecodeError:
                pass
    return False


def target_kernels(fdp: atheris.FuzzedDataProvider) -> None:
    pad_before = fdp.PickValueInList(
        [0, 0, 1, 3, 13, 15, 16, 17, 31, 32, 33, 61, 63, 64, 65, 127, 128, 129]
    )
    pad_after = fdp.PickValueInList([0, 0, 1, 2, 3, 15, 16, 31, 63, 64])
    core = gen_payload(fdp, 70_000)
    if fdp.ConsumeBool():
        core = core[: fdp.ConsumeIntInRange(0, len(core))]
    fill = fdp.PickValueInList([b"a", b"\xc3\xa9", b"\xe6\x97\xa5"])
    data = fill * pad_before + core + b"z" * pad_after
    want = _decodes(data)
    prefix_ok = valid_prefix(data)
    check(P.validate_utf8(data) == want, "pure validate_utf8 vs CPython", data[:300])
    lengths, kinds = chunk_plan(fdp)
    chunks = split(data, lengths, 300)
    # Reference answers for the chunked validator: being a valid prefix is inherited by
    # shorter prefixes, so one binary search finds the longest valid prefix.
    lo, hi = 0, len(data)
    if prefix_ok:
        lo = hi
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if valid_prefix(data[:mid]):
            lo = mid
        else:
            hi = mid - 1
    ref_feed = []
    end = 0
    for piece in chunks:
        end += len(piece)
        ref_feed.append(end <= lo)
    complete_ref = want
    offset = fdp.ConsumeIntInRange(0, 63)
    key = fdp.ConsumeBytes(4).ljust(4, b"\0")
    masked_ref = P.apply_mask(data, key)
    for isa in ISAS:
        C._force_isa(isa)
        got = C.validate_utf8(data)
        check(got == want, f"validate_utf8 [{isa}] vs CPython", len(data), data[:300], got)
        check(C.validate_utf8(bytearray(data)) == want, f"validate_utf8(bytearray) [{isa}]")
        check(
            C.validate_utf8(memoryview(b"\xff" * offset + data)[offset:]) == want,
            f"validate_utf8(slice) [{isa}]",
            offset,
        )
        v = C.Utf8Validator()
        res = [v.feed(wrap(piece, kinds[i % len(kinds)])) for i, piece in enumerate(chunks)]
        check(
            res == ref_feed,
            f"Utf8Validator.feed [{isa}] vs CPython",
            [len(c) for c in chunks][:50],
            res[:50],
            ref_feed[:50],
            data[:300],
        )
        check(v.complete == complete_ref, f"Utf8Validator.complete [{isa}]", data[:300])
        v.reset()
        check(
            v.feed(data) == prefix_ok and v.complete == want,
            f"Utf8Validator after reset [{isa}]",
            data[:300],
        )
        # Masking.
        check(C.apply_mask(data, key) == masked_ref, f"apply_mask [{isa}]", len(data))
        buf = bytearray(data)
        C.apply_mask_inplace(buf, key)
        check(buf == masked_ref, f"apply_mask_inplace [{isa}]", len(data))
        big = bytearray(b"\x11" * offset + data + b"\x22")
        view = memoryview(big)[offset : offset + len(data)]
        C.apply_mask_inplace(view, key)
        view.release()
        check(
            big[:offset] == b"\x11" * offset
            and big[-1:] == b"\x22"
            and big[offset:-1] == masked_ref,
            f"apply_mask_inplace(slice) [{isa}]",
            offset,
        )
        check(
            C.apply_mask(memoryview(b"\x00" * offset + data)[offset:], key) == masked_ref,
            f"apply_mask(slice) [{isa}]",
            offset,
        )
    # The pure validator too, against the same reference.
    v = P.Utf8Validator()
    res = [v.feed(piece) for piece in chunks]
    check(
        res == ref_feed and v.complete == complete_ref,
        "pure Utf8Validator vs CPython",
        res[:50],
        ref_feed[:50],
        data[:300],
    )
    C._force_isa(DEFAULT_ISA)


def _decodes(data: bytes) -> bool:
    try:
        codecs.utf_8_decode(data, "strict", True)
        return True
    except UnicodeDecodeError:
        return False


# ---------------------------------------------------------------------------------------------

# Weighted: the parser has the most states to reach.
TARGETS = [
    target_raw_parser,
    target_raw_parser,
    target_structured_parser,
    target_structured_parser,
    target_structured_parser,
    target_send,
    target_send,
    target_kernels,
]
KEEP_GOING = os.environ.get("TURBOWS_ATHERIS_KEEP_GOING", "")
_seen: dict = {}


def TestOneInput(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    target = TARGETS[fdp.ConsumeIntInRange(0, len(TARGETS) - 1)]
    isa = ISAS[fdp.ConsumeIntInRange(0, len(ISAS) - 1)]
    C._force_isa(isa)
    try:
        target(fdp)
    except Mismatch as exc:
        if not KEEP_GOING:
            raise
        signature = f"{target.__name__}: {exc.sig}"
        count = _seen.get(signature, 0)
        _seen[signature] = count + 1
        if count < 3:
            name = hashlib.sha1(data).hexdigest()
            os.makedirs(KEEP_GOING, exist_ok=True)
            with open(os.path.join(KEEP_GOING, f"mismatch-{name}"), "wb") as f:
                f.write(data)
            with open(os.path.join(KEEP_GOING, f"mismatch-{name}.txt"), "w") as f:
                f.write(signature + "\n" + str(exc) + "\n" + traceback.format_exc())
            print(f"\n=== MISMATCH ({count + 1}) {signature} -> mismatch-{name}", flush=True)
    finally:
        C._force_isa(DEFAULT_ISA)


def main() -> None:
    print(f"turbows C codec: {C.__file__}; instruction sets: {ISAS}", flush=True)
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
