"""The asyncio API as a new user meets it: errors at once for the common mistakes."""

from __future__ import annotations

import asyncio
import functools
import logging
from typing import Any

import pytest

import turbows.asyncio as fa

from aio_helpers import run


def test_serve_names_itself_for_a_misspelled_option() -> None:
    with pytest.raises(TypeError, match=r"serve\(\) got an unexpected keyword argument 'ping_intervall'"):
        fa.serve(lambda ws: None, "127.0.0.1", 0, ping_intervall=5)  # type: ignore[call-arg]


async def _coroutine_callback(message: Any) -> None:
    pass


class _AsyncCallable:
    async def __call__(self, message: Any) -> None:
        pass


@pytest.mark.parametrize(
    "callback",
    [_coroutine_callback, functools.partial(_coroutine_callback), _AsyncCallable()],
    ids=["coroutine function", "partial of one", "object with async __call__"],
)
def test_assigning_a_coroutine_function_to_on_message_raises_at_once(callback: Any) -> None:
    async def handler(ws: fa.ServerWebSocket) -> None:
        with pytest.raises(TypeError, match="coroutine function"):
            ws.on_message = callback
        assert ws.on_message is None
        ws.on_message = ws.send_nowait  # a plain callable is fine
        await ws.wait_closed()

    async def main() -> None:
        async with fa.serve(handler, "127.0.0.1", 0) as server:
            async with fa.connect(f"ws://127.0.0.1:{server.port}/") as ws:
                await ws.send("echoed by the plain callback")
                assert await ws.recv() == "echoed by the plain callback"

    run(main)


def test_on_message_must_be_callable() -> None:
    async def handler(ws: fa.ServerWebSocket) -> None:
        with pytest.raises(TypeError, match="must be callable"):
            ws.on_message = "echo"  # type: ignore[assignment]

    async def main() -> None:
        async with fa.serve(handler, "127.0.0.1", 0) as server:
            async with fa.connect(f"ws://127.0.0.1:{server.port}/") as ws:
                await ws.wait_closed()

    run(main)


def test_public_classes_show_as_turbows_asyncio_names() -> None:
    for name in ("ClosedError", "ClosedOK", "HandshakeRejected", "RetriesExhausted", "Server"):
        cls = getattr(fa, name)
        assert cls.__module__ == "turbows.asyncio", name
    assert repr(fa.ClosedError).startswith("<class 'turbows.asyncio.ClosedError'")


def test_each_side_logs_under_its_name_with_peer_and_path_and_once_open_once_closed(
    caplog: Any,
) -> None:
    async def handler(ws: fa.ServerWebSocket) -> None:
        await ws.send("hi")

    async def main() -> None:
        async with fa.serve(handler, "127.0.0.1", 0) as server:
            async with fa.connect(f"ws://127.0.0.1:{server.port}/room?x=1") as ws:
                assert await ws.recv() == "hi"
                client_address = ws.local_address
                await ws.wait_closed()
        return client_address

    with caplog.at_level(logging.DEBUG, logger="turbows"):
        client_address = run(main)
    connection_records = [r for r in caplog.records if hasattr(r, "remote_address")]
    for side, peer in (("turbows.server", tuple(client_address)), ("turbows.client", None)):
        records = [r for r in connection_records if r.name == side]
        messages = [r.getMessage().split(": ", 1)[1] for r in records]
        assert [m.split(":")[0] for m in messages] == ["connection open", "connection closed"]
        assert all(r.path == "/room?x=1" and r.levelno == logging.DEBUG for r in records)
        if peer is not None:
            assert all(tuple(r.remote_address) == peer for r in records)
            assert records[0].getMessage().startswith(f"127.0.0.1:{peer[1]} /room?x=1: ")


def test_the_documented_raises_of_recv_send_and_send_nowait_hold() -> None:
    async def handler(ws: fa.ServerWebSocket) -> None:
        await ws.wait_closed()

    async def main() -> None:
        async with fa.serve(handler, "127.0.0.1", 0) as server:
            ws = await fa.connect(f"ws://127.0.0.1:{server.port}/")
            first = asyncio.ensure_future(ws.recv())
            await asyncio.sleep(0)
            with pytest.raises(RuntimeError, match="already waiting"):
                await ws.recv()
            for bad in ({"a": 1}, 42, None):
                with pytest.raises(TypeError, match="cannot send"):
                    await ws.send(bad)  # type: ignore[arg-type]
                with pytest.raises(TypeError, match="cannot send"):
                    ws.send_nowait(bad)  # type: ignore[arg-type]
            with pytest.raises(ValueError, match="limit is 125"):
                await ws.ping(b"x" * 126)
            waiting = asyncio.ensure_future(ws.ping(b"same"))
            await asyncio.sleep(0)
            with pytest.raises(ValueError, match="already waiting"):
                await ws.ping(b"same")
            await waiting
            for code, reason, match in ((1005, "", "may not be sent"), (1000, "é" * 62, "limit is 123")):
                with pytest.raises(ValueError, match=match):
                    await ws.close(code, reason)
            await ws.close()
            with pytest.raises(fa.ClosedOK):
                await ws.ping()
            with pytest.raises(fa.ClosedOK):
                await first
            with pytest.raises(fa.ClosedOK):
                await ws.send("late")
            with pytest.raises(fa.ClosedOK):
                ws.send_nowait("late")

    run(main)


def test_text_true_sends_utf8_bytes_as_text_and_text_false_sends_str_as_binary() -> None:
    async def handler(ws: fa.ServerWebSocket) -> None:
        encoded = '{"naïve": 1}'.encode()
        await ws.send(encoded, text=True)
        ws.send_nowait(bytearray(encoded), text=True)
        await ws.send("bin", text=False)
        ws.send_nowait(memoryview(b"raw"), text=False)
        for send in (ws.send, ws.send_nowait):
            with pytest.raises(ValueError, match="not valid UTF-8"):
                result = send(b"\xff\xfe", text=True)
                if asyncio.iscoroutine(result):
                    await result
        with pytest.raises(TypeError, match="as one message"):
            await ws.send(["a", "b"], text=True)
        await ws.send("still open")

    async def main() -> None:
        async with fa.serve(handler, "127.0.0.1", 0) as server:
            async with fa.connect(f"ws://127.0.0.1:{server.port}/") as ws:
                got = [await ws.recv() for _ in range(5)]
        assert got == ['{"naïve": 1}', '{"naïve": 1}', b"bin", b"raw", "still open"]

    run(main)


def test_broadcast_takes_text_too() -> None:
    async def handler(ws: fa.ServerWebSocket) -> None:
        await ws.wait_closed()

    async def main() -> None:
        async with fa.serve(handler, "127.0.0.1", 0) as server:
            clients = [await fa.connect(f"ws://127.0.0.1:{server.port}/") for _ in range(3)]
            while len(server.connections) < 3:
                await asyncio.sleep(0.01)
            assert fa.broadcast(server.connections, '{"é": 1}'.encode(), text=True) == []
            assert fa.broadcast(server.connections, "as bytes", text=False) == []
            with pytest.raises(ValueError, match="not valid UTF-8"):
                fa.broadcast(server.connections, b"\xc3", text=True)
            for ws in clients:
                assert [await ws.recv(), await ws.recv()] == ['{"é": 1}', b"as bytes"]
                await ws.close()

    run(main)


_PROTOCOL_CALLBACKS = (
    "connection_made",
    "data_received",
    "eof_received",
    "connection_lost",
    "pause_writing",
    "resume_writing",
    "get_buffer",
    "buffer_updated",
)
#: The documented API of a connection (docs/asyncio.md and the class docstrings).
_WEBSOCKET_API = {
    "recv", "send", "send_nowait", "ping", "close", "abort", "wait_closed", "on_message",
    "state", "subprotocol", "extensions", "latency", "close_code", "close_reason",
    "closed_event", "remote_address", "local_address", "transport", "writing_paused",
    "request", "response_headers",
}  # fmt: skip


def _public(obj: Any) -> set:
    return {name for name in dir(obj) if not name.startswith("_")}


@pytest.mark.parametrize("use_uvloop", [False, True], ids=["asyncio", "uvloop"])
def test_a_websocket_shows_its_api_and_no_asyncio_protocol_callbacks(use_uvloop: bool) -> None:
    # Both server transports: tests/asyncio/conftest.py runs every test on each.
    if use_uvloop:
        pytest.importorskip("uvloop")
    seen: dict = {}

    async def handler(ws: fa.ServerWebSocket) -> None:
        seen["server"] = ws
        async for message in ws:
            await ws.send(message)

    async def main() -> None:
        server = fa.serve(handler, "127.0.0.1", 0)
        async with server:
            async with fa.connect(f"ws://127.0.0.1:{server.port}/") as ws:
                await ws.send("through the protocol object")
                assert await ws.recv() == "through the protocol object"
                seen["client"] = ws
                for side, obj in seen.items():
                    for name in _PROTOCOL_CALLBACKS:
                        assert not hasattr(obj, name), (side, name)
                    assert not isinstance(obj, asyncio.BaseProtocol), side
                    # The transport drives another object, not the connection itself.
                    assert obj.transport.get_protocol() is not obj, side
                assert _public(seen["server"]) == _WEBSOCKET_API | {"context"}
                assert _public(ws) == _WEBSOCKET_API
                assert _public(fa.WebSocket) == _WEBSOCKET_API

    run(main, use_uvloop=use_uvloop)
