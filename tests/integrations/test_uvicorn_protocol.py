"""turbows.integrations.uvicorn.WebSocketProtocol driven in-process, with uvicorn's Config and
ServerState, a transport that records what it is asked, and turbows's ClientConnection as the
peer: the behaviours uvicorn's own tests do not pin (flow control by ws_max_queue and by the
write buffer, disconnect codes of failures, receive after the disconnect, invalid messages)."""

from __future__ import annotations

import asyncio
import struct
from typing import Any, Awaitable, Callable, Dict, List, Optional

import pytest

pytest.importorskip("uvicorn")
from uvicorn.config import Config
from uvicorn.server import ServerState

from turbows import ClientConnection
from turbows.events import Accepted, BinaryMessage, Pong, Rejected, TextMessage
from turbows.integrations.uvicorn import WebSocketProtocol

App = Callable[[Any, Any, Any], Awaitable[None]]


class RecordingTransport:
    """What uvicorn's transports offer the protocol, recording the calls."""

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.closed = False
        self.reading_paused = False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"sockname": ("127.0.0.1", 8000), "peername": ("127.0.0.1", 50000)}.get(
            name, default
        )

    def write(self, data: bytes) -> None:
        assert not self.closed, "write after close"
        self.buffer += data

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def pause_reading(self) -> None:
        self.reading_paused = True

    def resume_reading(self) -> None:
        self.reading_paused = False


class Peer:
    """A server protocol with its transport, and a turbows client talking to it."""

    def __init__(self, app: App, **options: Any) -> None:
        config = Config(app=app, lifespan="off", ws_ping_interval=None, **options)
        config.load()
        self.state = ServerState()
        self.protocol = WebSocketProtocol(config=config, server_state=self.state, app_state={})
        self.transport = RecordingTransport()
        self.client = ClientConnection("ws://127.0.0.1/", ping_interval=None)
        self.protocol.connection_made(self.transport)  # type: ignore[arg-type]
        self.protocol.data_received(self.client.data_to_send())
        self._read = 0
        self._pending: List[Any] = []

    def events(self) -> List[Any]:
        """What the client received since the last call."""
        data = bytes(self.transport.buffer[self._read :])
        self._read = len(self.transport.buffer)
        if data:  # b"" would tell the client that TCP ended
            self.client.receive_data(data)
        events = self._pending + self.client.events()
        self._pending = []
        return events

    def send(self, *frames: Callable[[ClientConnection], None]) -> None:
        """Send frames from the client, all in one read of the server."""
        self._pending = self.events()
        for frame in frames:
            frame(self.client)
        self.protocol.data_received(self.client.data_to_send())

    async def app_done(self) -> None:
        await asyncio.wait_for(asyncio.gather(*self.state.tasks), 5)


def run(main: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(main(), 10))


async def refused(send: Any, message: Dict[str, Any], kind: type, errors: List[str]) -> None:
    """``send(message)``, which must raise ``kind``: its message goes to ``errors``."""
    try:
        await send(message)
    except kind as exc:
        errors.append(str(exc))


def recorder(got: List[Dict[str, Any]], count: int) -> App:
    """An app that accepts, then records the next ``count`` messages it receives."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        for _ in range(count):
            got.append(await asyncio.wait_for(receive(), 5))

    return app


def test_reads_pause_when_the_app_lags_and_resume_below_ws_max_queue() -> None:
    async def main() -> None:
        go = asyncio.Event()
        got: List[Dict[str, Any]] = []
        pause_seen: List[bool] = []
        peer: Optional[Peer] = None

        async def app(scope: Any, receive: Any, send: Any) -> None:
            await receive()
            await send({"type": "websocket.accept"})
            await go.wait()
            for _ in range(5):
                got.append(await receive())
                assert peer is not None
                pause_seen.append(peer.transport.reading_paused)

        peer = Peer(app, ws_max_queue=3)
        await asyncio.sleep(0.01)
        assert isinstance(peer.events()[0], Accepted)
        assert not peer.transport.reading_paused
        peer.send(*(lambda c, i=i: c.send_text(f"m{i}") for i in range(5)))
        assert peer.transport.reading_paused  # five wait, nobody reads
        go.set()
        await peer.app_done()
        assert [m["text"] for m in got] == [f"m{i}" for i in range(5)]
        # Taken one by one: 4, 3 still waiting (paused), then 2 < 3 (reading again).
        assert pause_seen == [True, True, False, False, False]

    run(main)


def test_a_message_taken_by_a_waiting_receive_does_not_pause_reads() -> None:
    async def main() -> None:
        got: List[Dict[str, Any]] = []
        peer = Peer(recorder(got, 1))
        await asyncio.sleep(0.01)
        peer.send(lambda c: c.send_binary(b"\x00\x01"))
        assert not peer.transport.reading_paused
        await peer.app_done()
        assert got == [{"type": "websocket.receive", "bytes": b"\x00\x01"}]

    run(main)


def test_a_paused_write_buffer_pauses_reads_and_sends() -> None:
    async def main() -> None:
        release = asyncio.Event()
        sent = asyncio.Event()

        async def app(scope: Any, receive: Any, send: Any) -> None:
            await receive()
            await send({"type": "websocket.accept"})
            await release.wait()
            await send({"type": "websocket.send", "text": "after"})
            sent.set()

        peer = Peer(app)
        await asyncio.sleep(0.01)
        peer.protocol.pause_writing()
        assert peer.transport.reading_paused
        release.set()
        for _ in range(5):
            await asyncio.sleep(0)
        assert not sent.is_set()
        peer.protocol.resume_writing()
        assert not peer.transport.reading_paused
        await asyncio.wait_for(sent.wait(), 5)
        assert [e.data for e in peer.events() if isinstance(e, TextMessage)] == ["after"]

    run(main)


def test_pings_are_answered_in_the_read() -> None:
    async def main() -> None:
        async def app(scope: Any, receive: Any, send: Any) -> None:
            await receive()
            await send({"type": "websocket.accept"})
            await receive()

        peer = Peer(app)
        await asyncio.sleep(0.01)
        peer.events()
        peer.send(lambda c: c.ping(b"tick"))
        pongs = [e for e in peer.events() if isinstance(e, Pong)]
        assert [p.payload for p in pongs] == [b"tick"]
        peer.send(lambda c: c.close(1000))
        await peer.app_done()

    run(main)


def test_a_protocol_error_closes_with_its_code_and_tells_the_app() -> None:
    async def main() -> None:
        got: List[Dict[str, Any]] = []
        peer = Peer(recorder(got, 2))
        await asyncio.sleep(0.01)
        peer.events()
        # A text message that is not UTF-8 (RFC 6455 8.1: close with 1007).
        peer.send(lambda c: c.send_text(b"ok"))
        peer.protocol.data_received(b"\x81\x82\x00\x00\x00\x00\xff\xfe")
        assert peer.transport.closed
        wire = bytes(peer.transport.buffer[peer._read :])
        assert wire[:2] == b"\x88" + bytes([len(wire) - 2])
        assert struct.unpack("!H", wire[2:4])[0] == 1007
        peer.protocol.connection_lost(None)
        await peer.app_done()
        assert got[0] == {"type": "websocket.receive", "text": "ok"}
        assert got[1]["type"] == "websocket.disconnect" and got[1]["code"] == 1007
        assert got[1]["reason"]  # what was wrong, as sent to the peer

    run(main)


def test_receive_after_the_disconnect_returns_it_again() -> None:
    async def main() -> None:
        got: List[Dict[str, Any]] = []
        peer = Peer(recorder(got, 2))
        await asyncio.sleep(0.01)
        peer.send(lambda c: c.close(4000, "bye"))
        assert peer.transport.closed  # the server closes TCP once the handshake is done
        await peer.app_done()
        assert got == [{"type": "websocket.disconnect", "code": 4000, "reason": "bye"}] * 2

    run(main)


def test_an_invalid_close_code_is_refused_and_the_connection_stays_usable() -> None:
    async def main() -> None:
        errors: List[str] = []

        async def app(scope: Any, receive: Any, send: Any) -> None:
            await receive()
            await send({"type": "websocket.accept"})
            await refused(send, {"type": "websocket.close", "code": 1005}, RuntimeError, errors)
            await send({"type": "websocket.send", "text": "still open"})
            await send({"type": "websocket.close", "code": 4001})

        peer = Peer(app)
        await peer.app_done()
        assert len(errors) == 1 and "1005" in errors[0]
        events = peer.events()
        assert [e.data for e in events if isinstance(e, TextMessage)] == ["still open"]
        assert not peer.transport.closed  # waiting for the client's close frame
        peer.send(lambda c: None)  # the client's events answer the close frame by themselves
        peer.protocol.data_received(peer.client.data_to_send())
        assert peer.transport.closed

    run(main)


def test_shutdown_before_accept_answers_500_and_after_closes_with_1012() -> None:
    async def main() -> None:
        waiting = asyncio.Event()

        async def app(scope: Any, receive: Any, send: Any) -> None:
            await receive()
            await waiting.wait()

        peer = Peer(app)
        await asyncio.sleep(0.01)
        peer.protocol.shutdown()
        events = peer.events()
        assert isinstance(events[0], Rejected) and events[0].status == 500
        assert peer.transport.closed
        peer.protocol.connection_lost(None)
        waiting.set()
        await peer.app_done()

        got: List[Dict[str, Any]] = []
        peer = Peer(recorder(got, 1))
        await asyncio.sleep(0.01)
        peer.protocol.shutdown()
        await peer.app_done()
        assert got == [{"type": "websocket.disconnect", "code": 1012}]
        closes = [e for e in peer.events() if type(e).__name__ == "CloseReceived"]
        assert [c.code for c in closes] == [1012]

    run(main)


def test_binary_and_text_go_out_as_sent() -> None:
    async def main() -> None:
        async def app(scope: Any, receive: Any, send: Any) -> None:
            await receive()
            await send({"type": "websocket.accept"})
            await send({"type": "websocket.send", "bytes": b"\x00" * 3})
            await send({"type": "websocket.send", "text": "żółw"})
            await send({"type": "websocket.send", "bytes": None, "text": "t"})

        peer = Peer(app)
        await peer.app_done()
        data = [e.data for e in peer.events() if isinstance(e, (TextMessage, BinaryMessage))]
        assert data == [b"\x00" * 3, "żółw", "t"]

    run(main)


def test_text_that_is_not_str_is_refused() -> None:
    async def main() -> None:
        errors: List[str] = []

        async def app(scope: Any, receive: Any, send: Any) -> None:
            await receive()
            await send({"type": "websocket.accept"})
            await refused(send, {"type": "websocket.send", "text": b"\xff"}, TypeError, errors)

        peer = Peer(app)
        await peer.app_done()
        assert errors == ["'websocket.send' text must be str, not bytes"]
        assert [e for e in peer.events() if isinstance(e, TextMessage)] == []

    run(main)


def test_pings_while_the_write_buffer_is_full_get_one_pong_once_it_drains() -> None:
    async def main() -> None:
        peer = Peer(recorder([], 1))
        await asyncio.sleep(0.01)
        peer.events()
        peer.protocol.pause_writing()
        peer.send(*(lambda c, i=i: c.ping(b"p%d" % i) for i in range(100)))
        assert [e for e in peer.events() if isinstance(e, Pong)] == []
        peer.protocol.resume_writing()
        assert [e.payload for e in peer.events() if isinstance(e, Pong)] == [b"p99"]
        peer.send(lambda c: c.close(1000))
        await peer.app_done()

    run(main)
