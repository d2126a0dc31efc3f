"""The compatibility layers' benchmarks: wsproto's API through turbows against wsproto itself
(issue 15, "Speed it must reach": >= 10x on the receive and send paths at 16 B, 125 B, 1 KiB).

Both run in this process side by side: turbows's layer is imported as
``turbows.compat.wsproto`` (not through the ``wsproto`` alias), the genuine wsproto as
``wsproto``. Each is a ``WSConnection`` on the server side, opened by an in-memory handshake.

Benchmarks:
    ``wsproto-api-receive``: bytes in, events out: ``receive_data(frame)`` with one masked
    text frame per call (a message as a socket read delivers it), then every event of
    ``events()``, its ``data`` kept (M messages/s).
    ``wsproto-api-send``: event in, bytes out: ``send(TextMessage)`` of one event built
    beforehand (building it costs the same with either), the bytes kept (M messages/s).
"""

from __future__ import annotations

from functools import partial
from itertools import repeat
from types import ModuleType
from typing import Any

from . import _data, _peers
from ._peer_connections import UPGRADE_REQUEST
from ._runner import TURBOWS_C, TURBOWS_PURE, Case, Loop

__all__ = ["BENCHMARKS", "SIZES", "cases"]

BENCHMARKS = ("wsproto-api-receive", "wsproto-api-send")
"""The benchmark names of this suite, in the order they run."""

SIZES = (16, 125, 1024)
MESSAGES = 1000
_MASK = b"\x37\xfa\x21\x3d"


def _open(lib: ModuleType) -> Any:
    """A server-side ``WSConnection`` of ``lib`` (wsproto or turbows's), after a handshake."""
    conn = lib.WSConnection(lib.ConnectionType.SERVER)
    conn.receive_data(UPGRADE_REQUEST)
    events = list(conn.events())
    if len(events) != 1 or type(events[0]).__name__ != "Request":
        raise _peers.BenchCheckError(f"{lib.__name__} did not see the request: {events!r}")
    if b" 101 " not in conn.send(lib.events.AcceptConnection()):
        raise _peers.BenchCheckError(f"{lib.__name__} did not accept the in-memory handshake")
    return conn


def _receive(lib: ModuleType, size: int) -> Loop:
    conn = _open(lib)
    receive = conn.receive_data
    events = conn.events
    text = _data.ascii_text(size, salt=2)
    frames = [_data.encode_frame(0x1, text.encode(), _MASK) for _ in range(MESSAGES)]
    out: list[Any] = []
    append = out.append

    def run(n: int) -> None:
        for _ in repeat(None, n):
            out.clear()
            for frame in frames:
                receive(frame)
                for event in events():
                    append(event.data)

    run(1)
    if len(out) != MESSAGES or out[-1] != text:
        raise _peers.BenchCheckError(f"{lib.__name__} delivered {len(out)} messages or a wrong one")
    return run


def _send(lib: ModuleType, size: int) -> Loop:
    conn = _open(lib)
    send = conn.send
    text = _data.ascii_text(size, salt=1)
    event = lib.events.TextMessage(data=text)
    expected = _data.encode_frame(0x1, text.encode())
    out: list[bytes] = []
    append = out.append

    def run(n: int) -> None:
        for _ in repeat(None, n):
            out.clear()
            for _ in repeat(None, MESSAGES):
                append(send(event))

    run(1)
    if len(out) != MESSAGES or any(data != expected for data in out):
        raise _peers.BenchCheckError(f"{lib.__name__} wrote unexpected bytes")
    return run


def _genuine_wsproto() -> tuple[Any, str]:
    lib, why = _peers._try_import("wsproto")
    if lib is not None and lib.__name__ != "wsproto":
        return None, "wsproto is turbows's alias in this process (TURBOWS_WSPROTO=1): unset it"
    if lib is not None:
        _peers._try_import("wsproto.events")
    return lib, why


def cases() -> list[Case]:
    """Build every case of the compat suite (inputs are built when a case runs)."""
    import turbows
    from turbows.compat import wsproto as ours

    name = TURBOWS_C if turbows.IMPLEMENTATION == "cython" else TURBOWS_PURE
    kind = "turbows" if name == TURBOWS_C else "pure"
    genuine, why = _genuine_wsproto()
    note = "turbows.compat.wsproto: WSConnection after the handshake"
    peer_note = f"wsproto {getattr(genuine, '__version__', '')}: WSConnection after the handshake"
    out: list[Case] = []
    for bench, driver in (("wsproto-api-receive", _receive), ("wsproto-api-send", _send)):
        for size in SIZES:
            out.append(
                Case(
                    bench,
                    size,
                    name,
                    kind,
                    "frames",
                    MESSAGES,
                    partial(driver, ours, size),
                    note,
                )
            )
            prepare = None if genuine is None else partial(driver, genuine, size)
            out.append(
                Case(
                    bench,
                    size,
                    "wsproto",
                    "peer",
                    "frames",
                    MESSAGES,
                    prepare,
                    peer_note if genuine is not None else why,
                )
            )
    return out
