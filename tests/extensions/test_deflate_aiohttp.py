"""permessage-deflate against aiohttp, over 127.0.0.1, both directions.

aiohttp's compression lives inside its asyncio reader and writer, so its real client
(``ClientSession.ws_connect(compress=...)``) talks to our server, and our client talks to its
real server (``web.WebSocketResponse(compress=True)``), through a small asyncio driver of the
sans-I/O connections written here. Each peer echoes what it receives: every message crosses
both compressors and both decompressors. Bytes on the wire are counted to show that both sides
really compressed. Every test is bounded by a timeout.
"""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest

from turbows.connection import ClientConnection, ServerConnection
from turbows.events import Accepted, ConnectionClosed, Request
from turbows.extensions import PerMessageDeflate

from pmd_helpers import NO_TIMERS

aiohttp = pytest.importorskip("aiohttp")
from aiohttp import WSMsgType, web

LIMIT = 4 << 20
MIB = 1 << 20
TIMEOUT = 20.0


def _json_text(n: int, seed: int = 0) -> str:
    rnd = random.Random(seed)
    parts = []
    size = 0
    while size < n:
        part = (
            f'{{"id": {rnd.randrange(10**6)}, "user": "user{rnd.randrange(500)}",'
            f' "price": {rnd.random() * 100:.2f}, "tags": ["a", "b\u00e9", "\u20ac"]}}, '
        )
        parts.append(part)
        size += len(part)
    return "".join(parts)[:n]


BIG_TEXT = _json_text(MIB)
MESSAGES: list[Any] = [
    "hi",
    b"\x00\x01\x02",
    _json_text(5000, 3),
    bytes(300),
    BIG_TEXT,
    random.Random(7).randbytes(MIB),
    "",
    b"",
]
SERIES = [_json_text(600, seed) for seed in range(40)]
# Compressed, every message above could not take much more than this on the wire: the
# random MiB does not shrink, the rest does by far (uncompressed they take > 2.3 MiB).
MAX_COMPRESSED_TOTAL = MIB + 400_000


class Counted:
    """Bytes that crossed the socket, per direction, seen from our side."""

    def __init__(self) -> None:
        self.read = 0
        self.written = 0


async def _drive_turbows(
    conn: Any, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, counted: Counted
) -> None:
    """Run one of our connections over a stream as an echo peer, until it closes."""

    def flush() -> None:
        out = conn.data_to_send()
        if out:
            counted.written += len(out)
            writer.write(out)

    flush()
    while True:
        data = await reader.read(1 << 16)
        counted.read += len(data)
        conn.receive_data(data)
        for event in conn.events():
            if isinstance(event, Request):
                conn.accept()
            elif isinstance(event, ConnectionClosed):
                flush()
                writer.close()
                return
            elif type(event).__name__ == "TextMessage":
                conn.send_text(event.data)
            elif type(event).__name__ == "BinaryMessage":
                conn.send_binary(event.data)
        flush()
        if conn.should_close_transport or not data:
            writer.close()
            return


# --------------------------------------------------------------------------------------------
# aiohttp's client against our server.

# (our server's PerMessageDeflate, aiohttp's ``compress`` window bits)
SERVER_MODES: dict[str, tuple[dict[str, Any], int]] = {
    "defaults": ({}, 15),
    "client-limits-server-window": ({}, 10),
    "server-no-takeover": ({"server_no_context_takeover": True}, 15),
    "client-no-takeover": ({"client_no_context_takeover": True}, 15),
    "both-no-takeover-small": (
        {"server_no_context_takeover": True, "client_no_context_takeover": True},
        9,
    ),
    "small-windows": ({"window_bits": 9, "client_max_window_bits": 9}, 15),
    "window-15": ({"window_bits": 15, "client_max_window_bits": 15}, 15),
}


@pytest.mark.parametrize("mode", list(SERVER_MODES))
def test_aiohttp_client_against_our_server(codec, mode):
    ours, compress = SERVER_MODES[mode]
    counted = Counted()

    async def main() -> None:
        done = asyncio.get_running_loop().create_future()

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            conn = ServerConnection(
                extensions=[PerMessageDeflate(**ours)],
                max_message_size=LIMIT,
                _codec=codec,
                **NO_TIMERS,
            )
            try:
                await _drive_turbows(conn, reader, writer, counted)
            finally:
                done.set_result(None)

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        async with (
            aiohttp.ClientSession() as session,
            session.ws_connect(
                f"ws://127.0.0.1:{port}/", compress=compress, max_msg_size=LIMIT
            ) as ws,
        ):
            assert ws.compress, "aiohttp did not agree to permessage-deflate"
            for message in MESSAGES:
                if isinstance(message, str):
                    await ws.send_str(message)
                else:
                    await ws.send_bytes(message)
                echo = await ws.receive()
                assert echo.type is (
                    WSMsgType.TEXT if isinstance(message, str) else WSMsgType.BINARY
                )
                assert echo.data == message
            for text in SERIES:
                await ws.send_str(text)
            for text in SERIES:
                echo = await ws.receive()
                assert echo.data == text
            await ws.close()
        await done
        server.close()
        await server.wait_closed()

    asyncio.run(asyncio.wait_for(main(), TIMEOUT))
    assert counted.read < MAX_COMPRESSED_TOTAL, "aiohttp's messages were not compressed"
    assert counted.written < MAX_COMPRESSED_TOTAL, "our messages were not compressed"


# --------------------------------------------------------------------------------------------
# Our client against aiohttp's server.

CLIENT_MODES: dict[str, dict[str, Any]] = {
    "defaults": {},
    "server-no-takeover": {"server_no_context_takeover": True},
    "server-window-10": {"server_max_window_bits": 10},
    "client-no-takeover-window-9": {
        "client_no_context_takeover": True,
        "client_max_window_bits": 9,
    },
    "window-15": {"window_bits": 15, "client_max_window_bits": True},
}


@pytest.mark.parametrize("mode", list(CLIENT_MODES))
def test_our_client_against_aiohttp_server(codec, mode):
    ours = CLIENT_MODES[mode]
    counted = Counted()
    echoed: list[Any] = []

    async def echo(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(compress=True, max_msg_size=LIMIT)
        await ws.prepare(request)
        assert ws.compress, "aiohttp's server did not accept permessage-deflate"
        async for msg in ws:
            if msg.type is WSMsgType.TEXT:
                await ws.send_str(msg.data)
            elif msg.type is WSMsgType.BINARY:
                await ws.send_bytes(msg.data)
        return ws

    async def main() -> None:
        app = web.Application()
        app.router.add_get("/", echo)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            conn = ClientConnection(
                f"ws://127.0.0.1:{port}/",
                extensions=[PerMessageDeflate(**ours)],
                max_message_size=LIMIT,
                _codec=codec,
                **NO_TIMERS,
            )
            pending: list[Any] = []

            def flush() -> None:
                out = conn.data_to_send()
                counted.written += len(out)
                writer.write(out)

            async def next_event() -> Any:
                while not pending:
                    data = await reader.read(1 << 16)
                    counted.read += len(data)
                    conn.receive_data(data)
                    pending.extend(conn.events())
                return pending.pop(0)

            flush()
            accepted = await next_event()
            assert isinstance(accepted, Accepted), accepted
            assert [name for name, _ in accepted.extensions] == ["permessage-deflate"]
            for message in MESSAGES:
                if isinstance(message, str):
                    conn.send_text(message)
                else:
                    conn.send_binary(message)
                flush()
                echoed.append((await next_event()).data)
            for text in SERIES:
                conn.send_text(text)
            flush()
            for _ in SERIES:
                echoed.append((await next_event()).data)
            conn.close()
            flush()
            while not isinstance(await next_event(), ConnectionClosed):
                pass
            writer.close()
        finally:
            await runner.cleanup()

    asyncio.run(asyncio.wait_for(main(), TIMEOUT))
    assert echoed == MESSAGES + SERIES
    assert counted.read < MAX_COMPRESSED_TOTAL, "aiohttp's messages were not compressed"
    assert counted.written < MAX_COMPRESSED_TOTAL, "our messages were not compressed"
