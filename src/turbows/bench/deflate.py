"""The permessage-deflate benchmarks (issue 4): compressed echo, and zlib back ends.

``deflate-echo``: a server connection, opened in memory with permessage-deflate, receives a
compressed client message and sends it back compressed: ``receive_data(frame)``,
``events()``, ``send_text(message)``, ``data_to_send()`` (k messages/s, and the microseconds
each echo takes). turbows's ``ServerConnection`` on each codec against websockets'
``ServerProtocol``, both with their default compression settings, which are the same: server
window 12 bits, client window 12 bits, memLevel 5, level 6, context takeover both ways. The
client frame is compressed once, by a fresh compressor (so that it can be replayed to a server
that keeps its context), and masked; every server compresses its answer with context
takeover, as it would on a real connection. Inputs: JSON-like text of 1 KiB and 64 KiB.

``deflate-zlib``: the compression back ends on the same text, as a connection uses them: one
compressor and one decompressor kept across messages (context takeover), raw deflate with a
12-bit window and memLevel 5, a sync flush per message; one operation compresses a message and
inflates it again (GB/s of message bytes). The standard library's zlib (what turbows uses)
against zlib-ng (``zlib_ng.zlib_ng``) and ISA-L (``isal.isal_zlib``) when installed; the
compressed sizes are in the notes. ``python -m turbows.bench.deflate`` (or, without runpy's
warning about a module its package already imported, ``python -c "from turbows.bench.deflate
import main; main()"``) prints the back ends side by side with their ratios to the standard
library, their sizes, their memory per connection, and whether each honours a window smaller
than 15 bits (RFC 7692 7.1.2 requires it once a peer asked for one).
"""

from __future__ import annotations

import importlib
import json
import random
import sys
import time
import zlib
from itertools import repeat
from types import ModuleType
from typing import Any, Callable

from . import _peers
from ._runner import Case, Loop
from .codec import load_codecs

__all__ = ["BACKENDS", "BENCHMARKS", "SIZES", "backend_report", "cases", "json_text", "main"]

BENCHMARKS = ("deflate-echo", "deflate-zlib")
"""The benchmark names of this suite, in the order they run."""

SIZES = (1024, 64 * 1024)
"""Message sizes, in bytes of UTF-8 text."""

WINDOW_BITS = 12
MEM_LEVEL = 5
LEVEL = 6
_MASK = bytes((0x37, 0xFA, 0x21, 0x3D))


def json_text(size: int, salt: int = 0) -> str:
    """JSON-like text of exactly ``size`` ASCII characters: records of a feed, the same on
    every run (numbers, repeated keys, short strings: what compression sees in practice)."""
    rnd = random.Random(0x6455 + salt)
    words = ["alpha", "beta", "gamma", "delta", "order", "trade", "quote", "user", "ok"]
    records = []
    length = 0
    while length < size:
        record = json.dumps(
            {
                "id": rnd.randrange(10**9),
                "type": rnd.choice(words),
                "symbol": "".join(rnd.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ") for _ in range(4)),
                "price": round(rnd.uniform(1, 1000), 2),
                "qty": rnd.randrange(1, 10_000),
                "ts": 1_700_000_000_000 + rnd.randrange(10**8),
                "tags": rnd.sample(words, 2),
            }
        )
        records.append(record)
        length += len(record) + 1
    return "\n".join(records)[:size]


def _client_frame(text: str) -> bytes:
    """A masked, compressed text frame as a client sends it (RFC 7692 7.2.1), built here
    without either library: a fresh raw-deflate compressor, sync flush, trailer removed."""
    c = zlib.compressobj(LEVEL, zlib.DEFLATED, -WINDOW_BITS, MEM_LEVEL)
    payload = (c.compress(text.encode()) + c.flush(zlib.Z_SYNC_FLUSH))[:-4]
    n = len(payload)
    b0 = 0x80 | 0x40 | 0x1  # FIN, RSV1, text
    if n < 126:
        head = bytes((b0, 0x80 | n))
    elif n < 1 << 16:
        head = bytes((b0, 0x80 | 126)) + n.to_bytes(2, "big")
    else:
        head = bytes((b0, 0x80 | 127)) + n.to_bytes(8, "big")
    masked = bytes(b ^ _MASK[i & 3] for i, b in enumerate(payload))
    return head + _MASK + masked


# --------------------------------------------------------------------------------------------
# deflate-echo


def _turbows_pair(codec: ModuleType) -> tuple[Any, Any]:
    import turbows

    client = turbows.ClientConnection(
        "ws://localhost/bench",
        extensions=[turbows.PerMessageDeflate(client_max_window_bits=True)],
        ping_interval=None,
        _codec=codec,
    )
    server = turbows.ServerConnection(
        extensions=[turbows.PerMessageDeflate()], ping_interval=None, _codec=codec
    )
    server.receive_data(client.data_to_send())
    server.events()
    server.accept()
    client.receive_data(server.data_to_send())
    answer = client.events()
    if not answer or not isinstance(answer[0], turbows.Accepted) or not client.extensions:
        raise _peers.BenchCheckError("turbows did not negotiate permessage-deflate")
    return server, client


def _turbows_echo(codec: ModuleType, text: str) -> Loop:
    server, client = _turbows_pair(codec)
    frame = _client_frame(text)
    receive = server.receive_data
    events = server.events
    send_text = server.send_text
    data_to_send = server.data_to_send

    # Check: the message arrives whole and its echo, compressed, reads back the same.
    receive(frame)
    [message] = events()
    send_text(message.data)
    out = data_to_send()
    client.receive_data(out)
    [echo] = client.events()
    if message.data != text or echo.data != text or not out[0] & 0x40:
        raise _peers.BenchCheckError("turbows echo is wrong or not compressed")

    def run(n: int) -> None:
        for _ in repeat(None, n):
            receive(frame)
            for event in events():
                send_text(event.data)
            data_to_send()

    return run


def _websockets_echo(text: str) -> Loop:
    from websockets.client import ClientProtocol
    from websockets.extensions.permessage_deflate import (
        enable_client_permessage_deflate,
        enable_server_permessage_deflate,
    )
    from websockets.frames import Opcode
    from websockets.server import ServerProtocol
    from websockets.uri import parse_uri

    # Any: the peers' event unions are not what is measured here.
    client: Any = ClientProtocol(
        parse_uri("ws://localhost/bench"),
        extensions=enable_client_permessage_deflate(None),
        max_size=None,
    )
    server: Any = ServerProtocol(extensions=enable_server_permessage_deflate(None), max_size=None)
    client.send_request(client.connect())
    server.receive_data(b"".join(client.data_to_send()))
    [request] = server.events_received()
    server.send_response(server.accept(request))
    client.receive_data(b"".join(server.data_to_send()))
    client.events_received()
    if not server.extensions or not client.extensions:
        raise _peers.BenchCheckError("websockets did not negotiate permessage-deflate")
    frame = _client_frame(text)
    receive = server.receive_data
    events = server.events_received
    send_text = server.send_text
    data_to_send = server.data_to_send
    text_op = Opcode.TEXT

    receive(frame)
    [message] = events()
    # websockets hands out frames; an application decodes text to str, as turbows does.
    send_text(message.data.decode().encode())
    out = b"".join(data_to_send())
    client.receive_data(out)
    [echo] = client.events_received()
    if message.data.decode() != text or echo.data.decode() != text or not out[0] & 0x40:
        raise _peers.BenchCheckError("websockets echo is wrong or not compressed")

    def run(n: int) -> None:
        for _ in repeat(None, n):
            receive(frame)
            for event in events():
                if event.opcode is text_op:
                    send_text(event.data.decode().encode())
            data_to_send()

    return run


def _echo_cases() -> list[Case]:
    bench = "deflate-echo"
    out: list[Case] = []
    codecs = load_codecs()
    versions = _peers.peer_versions()
    for size in SIZES:
        text = json_text(size)
        for name, kind, module, note in codecs:
            prepare = None if module is None else (lambda m=module, t=text: _turbows_echo(m, t))
            out.append(Case(bench, size, name, kind, "messages", 1, prepare, note))
        version = versions.get("websockets")
        name = f"websockets {version}" if version else "websockets"
        peer = None if version is None else (lambda t=text: _websockets_echo(t))
        note = "" if version else "websockets is not installed"
        out.append(Case(bench, size, name, "peer", "messages", 1, peer, note))
    return out


# --------------------------------------------------------------------------------------------
# deflate-zlib: back ends

BACKENDS: tuple[tuple[str, str, int], ...] = (
    ("zlib (stdlib)", "zlib", LEVEL),
    ("zlib (stdlib)", "zlib", 1),
    ("zlib-ng", "zlib_ng.zlib_ng", LEVEL),
    ("zlib-ng", "zlib_ng.zlib_ng", 1),
    ("isal", "isal.isal_zlib", 1),
    ("isal", "isal.isal_zlib", 2),
)
"""(name, module, level) of each back end measured; ISA-L has levels 0 to 3 only."""


def _load(module: str) -> tuple[ModuleType | None, str]:
    try:
        mod = importlib.import_module(module)
    except ImportError as exc:
        return None, f"not installed ({exc.name}); pip install zlib-ng isal"
    return mod, ""


def _backend_label(name: str, module: ModuleType, level: int) -> str:
    version = getattr(module, "ZLIBNG_VERSION", None) or getattr(module, "ZLIB_VERSION", "")
    if name == "isal":
        version = getattr(importlib.import_module("isal"), "__version__", "")
    return f"{name} {version} L{level}".replace("  ", " ")


def _roundtrip(module: ModuleType, level: int, messages: list[bytes]) -> tuple[Loop, int]:
    """A loop that compresses and inflates each message through one kept compressor and
    decompressor (context takeover), and the compressed size of the messages."""
    compressor = module.compressobj(level, module.DEFLATED, -WINDOW_BITS, MEM_LEVEL)
    decompressor = module.decompressobj(-WINDOW_BITS)
    sync = module.Z_SYNC_FLUSH
    compress = compressor.compress
    flush = compressor.flush
    decompress = decompressor.decompress
    total = 0
    for message in messages:
        data = compress(message) + flush(sync)
        total += len(data) - 4
        if decompress(data) != message:
            raise _peers.BenchCheckError(f"{module.__name__} did not round-trip")

    def run(n: int) -> None:
        for _ in repeat(None, n):
            for message in messages:
                decompress(compress(message) + flush(sync))

    return run, total


def _messages(size: int) -> list[bytes]:
    # Several different messages per operation, so that context takeover sees a feed.
    count = max(1, (256 * 1024) // size)
    return [json_text(size, salt).encode() for salt in range(min(count, 64))]


def _backend_cases() -> list[Case]:
    bench = "deflate-zlib"
    inputs = {size: _messages(size) for size in SIZES}
    out: list[Case] = []
    for size in SIZES:
        messages = inputs[size]
        work = sum(len(m) for m in messages)
        for name, module_name, level in BACKENDS:
            module, note = _load(module_name)
            if module is None:
                out.append(Case(bench, size, f"{name} L{level}", "peer", "bytes", work, None, note))
                continue
            # The table prints one note per row name: it gives the sizes at every message size.
            ratios = []
            for each in SIZES:
                _, compressed = _roundtrip(module, level, inputs[each])
                ratios.append(
                    f"{100 * compressed / sum(map(len, inputs[each])):.1f}% at {each // 1024} KiB"
                )
            note = "compressed size " + ", ".join(ratios)

            def prepare(m: Any = module, lv: int = level, ms: Any = messages) -> Any:
                return _roundtrip(m, lv, ms)[0]

            out.append(
                Case(
                    bench,
                    size,
                    _backend_label(name, module, level),
                    "peer",
                    "bytes",
                    work,
                    prepare,
                    note,
                )
            )
    return out


def cases(quick: bool = False) -> list[Case]:
    """Build every case of the deflate suite (inputs are built when a case runs)."""
    del quick  # the inputs are small either way
    return _echo_cases() + _backend_cases()


# --------------------------------------------------------------------------------------------
# The back-end report: python -m turbows.bench.deflate


def _honours_small_window(module: ModuleType) -> bool:
    """True if the back end's output at a 9-bit window inflates with a 9-bit window when the
    messages are inflated one call each (zlib only checks distances against its window then).
    """
    block = random.Random(3).randbytes(2000)
    c = module.compressobj(1, module.DEFLATED, -9, MEM_LEVEL)
    d = zlib.decompressobj(-9)
    try:
        for _ in range(3):
            d.decompress(c.compress(block) + c.flush(module.Z_SYNC_FLUSH))
    except zlib.error:
        return False
    return True


def _pair_memory(module: ModuleType, level: int) -> float:
    """Bytes a compressor and a decompressor hold once a message went through them (what
    one connection keeps), from tracemalloc over 100 pairs kept alive."""
    import gc
    import tracemalloc

    message = json_text(1024).encode()

    def pair() -> Any:
        c = module.compressobj(level, module.DEFLATED, -WINDOW_BITS, MEM_LEVEL)
        d = module.decompressobj(-WINDOW_BITS)
        d.decompress(c.compress(message) + c.flush(module.Z_SYNC_FLUSH))
        return c, d

    gc.collect()
    tracemalloc.start()
    try:
        kept = [pair() for _ in range(100)]
        current, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    del kept
    return current / 100


def _time(loop: Loop, min_time: float = 0.2) -> float:
    n = 1
    while True:
        t0 = time.perf_counter()
        loop(n)
        elapsed = time.perf_counter() - t0
        if elapsed >= min_time:
            return elapsed / n
        n *= 2


def backend_report(out: Callable[[str], Any] = print, repeats: int = 5) -> None:
    """Print each back end's round-trip speed, its ratio to the standard library at the same
    level, its compressed size, and whether it honours small windows."""
    out(
        "deflate back ends: compress + inflate per message, context takeover, window 12, memLevel 5"
    )
    out(f"{'size':>6}  {'back end':<26} {'GB/s':>6} {'vs stdlib':>9} {'compressed':>10}")
    for size in SIZES:
        messages = _messages(size)
        work = sum(len(m) for m in messages)
        baseline: dict[int, float] = {}
        for name, module_name, level in BACKENDS:
            module, note = _load(module_name)
            if module is None:
                out(f"{size:>6}  {name + f' L{level}':<26} {note}")
                continue
            loop, compressed = _roundtrip(module, level, messages)
            best = min(_time(loop) for _ in range(repeats))
            rate = work / best / 1e9
            if module_name == "zlib":
                baseline[level] = rate
            base = baseline.get(level) or baseline.get(LEVEL)
            ratio = f"{rate / base:.2f}x" if base else "-"
            out(
                f"{size:>6}  {_backend_label(name, module, level):<26} {rate:6.3f} {ratio:>9}"
                f" {100 * compressed / work:9.1f}%"
            )
    out("(isal is compared with stdlib at the same level number, or L6 when stdlib has none)")
    for name, module_name, level in BACKENDS[::2]:
        module, _ = _load(module_name)
        if module is not None:
            verdict = "yes" if _honours_small_window(module) else "NO (distances past the window)"
            kib = _pair_memory(module, level) / 1024
            out(
                f"{name}: honours a 9-bit window (RFC 7692 7.1.2): {verdict}; memory per"
                f" connection (compressor + decompressor, window 12, memLevel 5): {kib:.0f} KiB"
            )


def main() -> int:
    """``python -m turbows.bench.deflate``: the back-end report."""
    backend_report()
    return 0


if __name__ == "__main__":
    sys.exit(main())
