"""The codec benchmarks: masking, UTF-8 validation, the receive path and the send path.

Each benchmark runs the turbows Cython codec (``turbows._speedups``), its pure-Python twin
(``turbows._codec_py``), every installed peer that has an equivalent, and the physical
reference: a plain copy of the same bytes, the least work any implementation must do.

Benchmarks:
    ``mask``: XOR with a 4-byte key into new bytes (16 B .. 16 MiB).
    ``mask-inplace``: the same, in place in a ``bytearray``.
    ``utf8-ascii`` / ``utf8-mixed``: validation of ASCII and of mixed 1-4 byte text.
    ``receive``: a server parsing a stream of masked text frames, read 64 KiB at a time,
    until every message is a Python object (M frames/s).
    ``send-binary`` / ``send-text``: unmasked server frames appended to an output buffer,
    taken once per 1000 frames (M frames/s).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from itertools import repeat
from types import ModuleType
from typing import Any, Callable

from . import _data, _peers
from ._runner import TURBOWS_C, TURBOWS_PURE, Case, Loop, call_loop

__all__ = ["BENCHMARKS", "CodecOptions", "cases", "load_codecs"]

BENCHMARKS = (
    "mask",
    "mask-inplace",
    "utf8-ascii",
    "utf8-mixed",
    "receive",
    "send-binary",
    "send-text",
)
"""The benchmark names of this suite, in the order they run."""

MASK_SIZES = (16, 125, 1024, 16 * 1024, 1 << 20, 16 << 20)
UTF8_SIZES = (125, 1024, 64 * 1024)
FRAME_SIZES = (16, 125, 1024)

MEMCPY = "memcpy (reference)"
"""The name of the memory-copy reference rows."""


@dataclass(frozen=True)
class CodecOptions:
    """What the codec suite builds.

    Attributes:
        stream_bytes: length of the receive-path stream replayed by one operation.
    """

    stream_bytes: int = 1 << 20


def load_codecs() -> list[tuple[str, str, ModuleType | None, str]]:
    """Import both turbows codecs explicitly.

    Returns:
        ``(implementation name, kind, module or None, note)`` for the Cython codec and for
        the pure-Python twin; the note says why a module is missing.
    """
    out: list[tuple[str, str, ModuleType | None, str]] = []
    for name, kind, module in (
        (TURBOWS_C, "turbows", "turbows._speedups"),
        (TURBOWS_PURE, "pure", "turbows._codec_py"),
    ):
        try:
            out.append((name, kind, importlib.import_module(module), ""))
        except ImportError as exc:
            note = f"{module} not importable ({exc})"
            if module == "turbows._speedups":
                note += "; build it with `python setup.py build_ext --inplace`"
            out.append((name, kind, None, note))
    return out


def _case(
    benchmark: str,
    size: int,
    implementation: str,
    kind: str,
    unit: str,
    work: int,
    prepare: Callable[[], Loop] | None,
    note: str = "",
) -> Case:
    return Case(benchmark, size, implementation, kind, unit, work, prepare, note)


def _checked(loop: Loop, check: Callable[[], None]) -> Callable[[], Loop]:
    def prepare() -> Loop:
        check()
        return loop

    return prepare


def _expect(name: str, got: Any, want: Any) -> None:
    if got != want:
        raise _peers.BenchCheckError(f"{name} gave a wrong result")


# --------------------------------------------------------------------------------------------


def _lazy(make: Callable[[], Any]) -> Callable[[], Any]:
    """Memoise ``make()``: inputs are built when the first case needing them runs."""
    holder: list[Any] = []

    def get() -> Any:
        if not holder:
            holder.append(make())
        return holder[0]

    return get


def _reference_mask(data: bytes, mask: bytes) -> bytes:
    """The expected masking result, from the pure twin (its big-integer XOR is obviously right)."""
    pure = importlib.import_module("turbows._codec_py")
    return pure.apply_mask(data, mask)  # type: ignore[no-any-return]


def _mask_cases(size: int, codecs: list[tuple[str, str, ModuleType | None, str]]) -> list[Case]:
    mask = _data.MASK_KEY
    data = _lazy(lambda: _data.random_bytes(size))
    expected = _lazy(lambda: _reference_mask(data(), mask))
    out: list[Case] = []

    def turbows_prepare(name: str, func: Callable[[bytes, bytes], bytes]) -> Callable[[], Loop]:
        def prepare() -> Loop:
            _expect(name, func(data(), mask), expected())
            return call_loop(func, data(), mask)

        return prepare

    def peer_prepare(name: str, factory: Callable[[bytes, bytes], Loop]) -> Callable[[], Loop]:
        def prepare() -> Loop:
            # Every peer masker takes bytes and returns bytes(-like): check one result.
            func = _PEER_MASK_PROBES.get(name)
            if func is not None:
                _expect(name, bytes(func()(data(), mask)), expected())
            return factory(data(), mask)

        return prepare

    for name, kind, module, note in codecs:
        prepare = None if module is None else turbows_prepare(name, module.apply_mask)
        out.append(_case("mask", size, name, kind, "bytes", size, prepare, note))
    for name, factory, note in _peers.mask_functions():
        prepare = None if factory is None else peer_prepare(name, factory)
        out.append(_case("mask", size, name, "peer", "bytes", size, prepare, note))
    out.append(_copy_case("mask", size, data))
    return out


def _copy_case(benchmark: str, size: int, data: Callable[[], bytes]) -> Case:
    """The physical reference of a byte benchmark: one copy of the same bytes."""
    return _case(
        benchmark,
        size,
        MEMCPY,
        "reference",
        "bytes",
        size,
        lambda: call_loop(bytes, bytearray(data())),
        "bytes(bytearray): one copy",
    )


def _wsproto_masker() -> Callable[[bytes, bytes], bytes]:
    from wsproto.frame_protocol import XorMaskerSimple

    return lambda data, mask: bytes(XorMaskerSimple(mask).process(bytearray(data)))


def _websockets_masker(module: str) -> Callable[[], Callable[[bytes, bytes], bytes]]:
    return lambda: importlib.import_module(module).apply_mask


_PEER_MASK_PROBES: dict[str, Callable[[], Callable[[bytes, bytes], bytes]]] = {
    "websockets (C)": _websockets_masker("websockets.speedups"),
    "websockets (pure)": _websockets_masker("websockets.utils"),
    "wsproto": _wsproto_masker,
}


def _mask_inplace_cases(
    size: int, codecs: list[tuple[str, str, ModuleType | None, str]]
) -> list[Case]:
    mask = _data.MASK_KEY
    data = _lazy(lambda: _data.random_bytes(size))
    out: list[Case] = []

    def check(name: str, loop: Loop, buf: bytearray) -> None:
        # One iteration masks the buffer; the next one unmasks it again (XOR is an involution).
        loop(1)
        _expect(name, bytes(buf), _reference_mask(data(), mask))
        loop(1)
        _expect(name, bytes(buf), data())

    def turbows_prepare(name: str, func: Callable[[bytearray, bytes], None]) -> Callable[[], Loop]:
        def prepare() -> Loop:
            buf = bytearray(data())
            loop = call_loop(func, buf, mask)
            check(name, loop, buf)
            return loop

        return prepare

    def peer_prepare(name: str, factory: Callable[[bytearray, bytes], Loop]) -> Callable[[], Loop]:
        def prepare() -> Loop:
            buf = bytearray(data())
            loop = factory(buf, mask)
            check(name, loop, buf)
            return loop

        return prepare

    for name, kind, module, note in codecs:
        prepare = None if module is None else turbows_prepare(name, module.apply_mask_inplace)
        out.append(_case("mask-inplace", size, name, kind, "bytes", size, prepare, note))
    for name, factory, note in _peers.inplace_mask_functions():
        prepare = None if factory is None else peer_prepare(name, factory)
        out.append(_case("mask-inplace", size, name, "peer", "bytes", size, prepare, note))

    def copy_prepare() -> Loop:
        source = bytearray(data())
        target = bytearray(size)

        def loop(n: int) -> None:
            for _ in repeat(None, n):
                target[:] = source

        return loop

    out.append(
        _case(
            "mask-inplace",
            size,
            MEMCPY,
            "reference",
            "bytes",
            size,
            copy_prepare,
            "bytearray slice assignment: one memmove",
        )
    )
    return out


def _utf8_cases(
    benchmark: str, size: int, codecs: list[tuple[str, str, ModuleType | None, str]]
) -> list[Case]:
    make_text = _data.ascii_text if benchmark == "utf8-ascii" else _data.mixed_text
    text = _lazy(lambda: make_text(size))
    data = _lazy(lambda: text().encode("utf-8"))
    out: list[Case] = []

    def turbows_prepare(name: str, func: Callable[[bytes], bool]) -> Callable[[], Loop]:
        def prepare() -> Loop:
            _expect(name, func(data()), True)
            # A validator that always says True would be fast: make sure it can say False.
            _expect(name, func(data()[:-1] + b"\xff"), False)
            return call_loop(func, data())

        return prepare

    for name, kind, module, note in codecs:
        prepare = None if module is None else turbows_prepare(name, module.validate_utf8)
        out.append(_case(benchmark, size, name, kind, "bytes", size, prepare, note))

    def decode_prepare() -> Loop:
        _expect("bytes.decode", data().decode("utf-8"), text())
        return call_loop(bytes.decode, data(), "utf-8")

    out.append(
        _case(
            benchmark,
            size,
            "CPython bytes.decode",
            "reference",
            "bytes",
            size,
            decode_prepare,
            "what aiohttp, picows, websockets and wsproto rely on (none has a validator)",
        )
    )
    out.append(_copy_case(benchmark, size, data))
    return out


def _receive_turbows(module: ModuleType, stream: _data.FrameStream, text_as_bytes: bool) -> Loop:
    parser_type = module.FrameParser
    chunks = stream.chunks

    parser = parser_type(require_mask=True, max_message_size=1 << 20, text_as_bytes=text_as_bytes)
    messages: list[Any] = []
    for chunk in chunks:
        messages.extend(parser.feed(chunk))
    if len(messages) != stream.frames:
        raise _peers.BenchCheckError(
            f"turbows parsed {len(messages)} messages, expected {stream.frames}"
        )
    last = stream.last_text.encode() if text_as_bytes else stream.last_text
    _expect("turbows", messages[-1].data, last)

    def run(n: int) -> None:
        for _ in repeat(None, n):
            feed = parser_type(
                require_mask=True, max_message_size=1 << 20, text_as_bytes=text_as_bytes
            ).feed
            for chunk in chunks:
                feed(chunk)

    return run


def _receive_cases(
    size: int, stream_bytes: int, codecs: list[tuple[str, str, ModuleType | None, str]]
) -> list[Case]:
    stream: Callable[[], _data.FrameStream] = _lazy(
        lambda: _data.masked_text_stream(size, stream_bytes)
    )

    def turbows_prepare(module: ModuleType, text_as_bytes: bool) -> Callable[[], Loop]:
        return lambda: _receive_turbows(module, stream(), text_as_bytes)

    # The frame count is known without building the stream: every frame has the same size.
    frame_len = 2 + (2 if size >= 126 else 0) + 4 + size
    frames = -(-stream_bytes // frame_len)
    out: list[Case] = []
    for name, kind, module, note in codecs:
        if module is None:
            out.append(_case("receive", size, name, kind, "frames", frames, None, note))
            continue
        out.append(
            _case(
                "receive",
                size,
                name,
                kind,
                "frames",
                frames,
                turbows_prepare(module, False),
            )
        )
    for name, kind, module, _note in codecs:
        if module is not None and kind == "turbows":
            out.append(
                _case(
                    "receive",
                    size,
                    f"{name} (text as bytes)",
                    "turbows",
                    "frames",
                    frames,
                    turbows_prepare(module, True),
                    "turbows: text delivered as validated UTF-8 bytes, no str built",
                )
            )
    for name, factory, note in _peers.receive_drivers():
        prepare = None if factory is None else (lambda f=factory: f(stream()))
        out.append(_case("receive", size, name, "peer", "frames", frames, prepare, note))

    out.append(
        _case(
            "receive",
            size,
            MEMCPY,
            "reference",
            "frames",
            frames,
            chunk_copy(stream),
            "one copy of each 64 KiB chunk",
        )
    )
    return out


def chunk_copy(stream: Callable[[], _data.FrameStream]) -> Callable[[], Loop]:
    """The memory-copy reference of the receive benchmarks: one copy of each chunk."""

    def prepare() -> Loop:
        chunks = [bytearray(c) for c in stream().chunks]

        def loop(n: int) -> None:
            for _ in repeat(None, n):
                for chunk in chunks:
                    bytes(chunk)

        return loop

    return prepare


def _send_turbows(module: ModuleType, payload: Any, text: bool, expected: bytes) -> Loop:
    writer = module.FrameWriter(mask=False)
    send = writer.text if text else writer.binary
    take = writer.take
    batch = _peers.BATCH

    def run(n: int) -> None:
        for _ in repeat(None, n):
            for _ in repeat(None, batch):
                send(payload)
            take()

    for _ in range(batch):
        send(payload)
    _expect("turbows FrameWriter", take(), expected)
    return run


def _send_cases(
    benchmark: str, size: int, codecs: list[tuple[str, str, ModuleType | None, str]]
) -> list[Case]:
    text = benchmark == "send-text"
    payload_text = _data.ascii_text(size, salt=1)
    encoded = payload_text.encode("utf-8")
    payload: Any = payload_text if text else _data.random_bytes(size, salt=1)
    wire = _data.encode_frame(0x1 if text else 0x2, encoded if text else payload)
    expected = wire * _peers.BATCH
    batch = _peers.BATCH

    def turbows_prepare(module: ModuleType) -> Callable[[], Loop]:
        return lambda: _send_turbows(module, payload, text, expected)

    out: list[Case] = []
    for name, kind, module, note in codecs:
        if module is None:
            out.append(_case(benchmark, size, name, kind, "frames", batch, None, note))
            continue
        out.append(
            _case(
                benchmark,
                size,
                name,
                kind,
                "frames",
                batch,
                turbows_prepare(module),
            )
        )
    for name, factory, note in _peers.send_drivers():
        prepare = None if factory is None else (lambda f=factory: f(payload, text, expected))
        out.append(_case(benchmark, size, name, "peer", "frames", batch, prepare, note))

    chunk = bytearray(expected)

    def copy_loop(n: int) -> None:
        for _ in repeat(None, n):
            bytes(chunk)

    out.append(
        _case(
            benchmark,
            size,
            MEMCPY,
            "reference",
            "frames",
            batch,
            lambda: copy_loop,
            "one copy of the batch's wire bytes",
        )
    )
    return out


def cases(options: CodecOptions) -> list[Case]:
    """Build every case of the codec suite (inputs are generated lazily, when a case runs).

    Args:
        options: suite options (the receive-path stream length).
    """
    codecs = load_codecs()
    out: list[Case] = []
    for size in MASK_SIZES:
        out.extend(_mask_cases(size, codecs))
    for size in MASK_SIZES:
        out.extend(_mask_inplace_cases(size, codecs))
    for benchmark in ("utf8-ascii", "utf8-mixed"):
        for size in UTF8_SIZES:
            out.extend(_utf8_cases(benchmark, size, codecs))
    for size in FRAME_SIZES:
        out.extend(_receive_cases(size, options.stream_bytes, codecs))
    for benchmark in ("send-binary", "send-text"):
        for size in FRAME_SIZES:
            out.extend(_send_cases(benchmark, size, codecs))
    return out
