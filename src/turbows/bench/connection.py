"""The connection benchmarks: the sans-I/O ``ServerConnection``'s receive and send paths, and
its footprint (issue 3, "Speed it must reach").

turbows runs through ``turbows.ServerConnection`` on each codec (``_codec=turbows._speedups`` and
``_codec=turbows._codec_py``), opened by an in-memory handshake: a request built by
``turbows.ClientConnection`` is fed to the server, which accepts it. Against it:

- websockets' ``ServerProtocol`` and wsproto's ``WSConnection``, opened by a handshake too;
- aiohttp's Cython ``WebSocketReader`` and picows's ``WSProtocol``, through the codec suite's
  drivers (neither has a sans-I/O connection; those drivers feed the objects their event-loop
  integration feeds). Every implementation hands each message out as a Python object with
  its text as ``str``.

Benchmarks:
    ``conn-receive``: ``receive_data`` on 64 KiB chunks of masked text frames, then
    ``events()``, until every message is an event (M frames/s).
    ``conn-send-text``: ``send_text`` of 125 B messages, ``data_to_send()`` once per 1000
    (M frames/s).
    ``conn-footprint``: bytes per connection in OPEN state with no message in flight, from
    tracemalloc over 100 connections kept alive (lower is better).
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import repeat
from types import ModuleType
from typing import Any, Callable

from . import _data, _peer_connections, _peers
from ._runner import Case, Loop
from .codec import FRAME_SIZES, MEMCPY, chunk_copy, load_codecs

__all__ = ["BENCHMARKS", "ConnectionOptions", "cases", "open_server"]

BENCHMARKS = ("conn-receive", "conn-send-text", "conn-footprint")
"""The benchmark names of this suite, in the order they run."""

SEND_SIZE = 125


@dataclass(frozen=True)
class ConnectionOptions:
    """What the connection suite builds.

    Attributes:
        stream_bytes: length of the receive-path stream replayed by one operation.
    """

    stream_bytes: int = 1 << 20


def open_server(codec: ModuleType | None = None, **options: Any) -> Any:
    """Return a ``turbows.ServerConnection`` in OPEN state, opened in memory.

    Args:
        codec: the codec module underneath (None: turbows's default).
        options: more keyword arguments of ``ServerConnection``.

    Raises:
        BenchCheckError: the handshake did not complete.
    """
    import turbows

    client = turbows.ClientConnection("ws://localhost/bench", _codec=codec)
    server = turbows.ServerConnection(_codec=codec, **options)
    server.receive_data(client.data_to_send())
    events = server.events()
    if len(events) != 1 or not isinstance(events[0], turbows.Request):
        raise _peers.BenchCheckError(f"turbows server did not see the request: {events!r}")
    server.accept()
    client.receive_data(server.data_to_send())
    answer = client.events()
    if server.state is not turbows.State.OPEN or not isinstance(answer[0], turbows.Accepted):
        raise _peers.BenchCheckError("turbows did not complete the in-memory handshake")
    return server


def _turbows_receive(codec: ModuleType, stream: _data.FrameStream) -> Loop:
    server = open_server(codec)
    receive = server.receive_data
    events = server.events
    chunks = stream.chunks

    messages: list[Any] = []
    for chunk in chunks:
        receive(chunk)
        messages.extend(events())
    if len(messages) != stream.frames or messages[-1].data != stream.last_text:
        raise _peers.BenchCheckError(f"turbows delivered {len(messages)} messages or a wrong one")

    def run(n: int) -> None:
        for _ in repeat(None, n):
            for chunk in chunks:
                receive(chunk)
                events()

    return run


def _turbows_send(codec: ModuleType, payload: str, expected: bytes) -> Loop:
    server = open_server(codec)
    send_text = server.send_text
    data_to_send = server.data_to_send
    batch = _peers.BATCH

    def run(n: int) -> None:
        for _ in repeat(None, n):
            for _ in repeat(None, batch):
                send_text(payload)
            data_to_send()

    for _ in range(batch):
        send_text(payload)
    if data_to_send() != expected:
        raise _peers.BenchCheckError("turbows ServerConnection wrote unexpected bytes")
    return run


def _lazy(make: Callable[[], Any]) -> Callable[[], Any]:
    holder: list[Any] = []

    def get() -> Any:
        if not holder:
            holder.append(make())
        return holder[0]

    return get


def _receive_cases(size: int, stream_bytes: int, codecs: list[Any]) -> list[Case]:
    bench = "conn-receive"
    stream: Callable[[], _data.FrameStream] = _lazy(
        lambda: _data.masked_text_stream(size, stream_bytes)
    )
    frame_len = 2 + (2 if size >= 126 else 0) + 4 + size
    frames = -(-stream_bytes // frame_len)
    out: list[Case] = []
    for name, kind, module, note in codecs:
        prepare = None if module is None else (lambda m=module: _turbows_receive(m, stream()))
        out.append(Case(bench, size, name, kind, "frames", frames, prepare, note))
    # aiohttp and picows: the codec suite's drivers (their protocol objects, fed in memory).
    codec_level = {name: (factory, note) for name, factory, note in _peers.receive_drivers()}
    for name in ("aiohttp (Cython)", "picows"):
        factory, note = codec_level.get(name, (None, f"{name}: no driver"))
        prepare = None if factory is None else (lambda f=factory: f(stream()))
        out.append(Case(bench, size, name, "peer", "frames", frames, prepare, note))
    for name, rfactory, note in _peer_connections.receive_drivers():
        prepare = None if rfactory is None else (lambda f=rfactory: f(stream()))
        out.append(Case(bench, size, name, "peer", "frames", frames, prepare, note))

    out.append(
        Case(
            bench,
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


def _send_cases(size: int, codecs: list[Any]) -> list[Case]:
    bench = "conn-send-text"
    payload = _data.ascii_text(size, salt=1)
    expected = _data.encode_frame(0x1, payload.encode()) * _peers.BATCH
    batch = _peers.BATCH
    out: list[Case] = []
    for name, kind, module, note in codecs:
        prepare = None if module is None else (lambda m=module: _turbows_send(m, payload, expected))
        out.append(Case(bench, size, name, kind, "frames", batch, prepare, note))
    codec_level = {name: (factory, note) for name, factory, note in _peers.send_drivers()}
    for name in ("picows", "aiohttp"):
        factory, note = codec_level.get(name, (None, f"{name}: no driver"))
        prepare = None if factory is None else (lambda f=factory: f(payload, True, expected))
        out.append(Case(bench, size, name, "peer", "frames", batch, prepare, note))
    for name, sfactory, note in _peer_connections.send_drivers():
        prepare = None if sfactory is None else (lambda f=sfactory: f(payload, expected))
        out.append(Case(bench, size, name, "peer", "frames", batch, prepare, note))
    return out


def _footprint_cases(codecs: list[Any]) -> list[Case]:
    bench = "conn-footprint"
    out: list[Case] = []
    for name, kind, module, note in codecs:
        measure = (
            None
            if module is None
            else (
                lambda m=module: _peer_connections.traced_bytes_per_object(lambda: open_server(m))
            )
        )
        out.append(
            Case(
                bench,
                0,
                name,
                kind,
                "B/conn",
                1,
                None,
                note or "turbows: ServerConnection in OPEN state (tracemalloc, 100 kept alive)",
                measure=measure,
                max_samples=3,
            )
        )
    for name, factory, note in _peer_connections.footprint_drivers():
        measure = (
            None
            if factory is None
            else (lambda f=factory: _peer_connections.traced_bytes_per_object(f()))
        )
        out.append(
            Case(bench, 0, name, "peer", "B/conn", 1, None, note, measure=measure, max_samples=3)
        )
    return out


def cases(options: ConnectionOptions) -> list[Case]:
    """Build every case of the connection suite (inputs are built when a case runs)."""
    codecs = load_codecs()
    out: list[Case] = []
    for size in FRAME_SIZES:
        out.extend(_receive_cases(size, options.stream_bytes, codecs))
    out.extend(_send_cases(SEND_SIZE, codecs))
    out.extend(_footprint_cases(codecs))
    return out
