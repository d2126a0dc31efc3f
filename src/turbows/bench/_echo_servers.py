"""Echo servers for the end-to-end suite, one per process: ``python -m
turbows.bench._echo_servers IMPL LOOP CORE``.

``IMPL`` is ``raw`` (a plain asyncio Protocol that writes back what it reads: the physical
reference), ``turbows`` (a handler task; ``turbows-cb``: the ``on_message`` callback mode;
both on the default transport, turbows's compiled one unless ``TURBOWS_FAST_TRANSPORT=0``;
``turbows-loop`` and ``turbows-cb-loop``: the same on the event loop's transport),
``websockets``, ``aiohttp`` or ``picows``; or uvicorn (``--http httptools``) running an ASGI
echo app with a WebSocket protocol class: ``uvicorn-turbows``
(``turbows.integrations.uvicorn:WebSocketProtocol``), ``uvicorn-websockets-sansio`` or
``uvicorn-wsproto`` (uvicorn's own); ``LOOP`` is ``asyncio`` or
``uvloop``; ``CORE`` the CPU the process is pinned to (-1: not pinned). Every WebSocket server
is the application its library documents for an echo: each message becomes a Python object
(text as ``str``) handed to the application, which sends it back; pings from the server,
compression and access logs are off, so the only traffic is the echo.

The process listens on 127.0.0.1 only, prints ``READY <port>`` on stdout and serves until its
standard input closes (the parent exited or stopped it) or ``--lifetime`` seconds pass, so it
always stops by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import threading
from collections.abc import Awaitable
from typing import Any, Callable

HOST = "127.0.0.1"
IMPLEMENTATIONS = (
    "raw",
    "turbows",
    "turbows-cb",
    "turbows-loop",
    "turbows-cb-loop",
    "websockets",
    "aiohttp",
    "picows",
    "uvicorn-turbows",
    "uvicorn-websockets-sansio",
    "uvicorn-wsproto",
)
MAX_MESSAGE = 1 << 20

#: uvicorn's ``--ws`` value for each uvicorn server.
UVICORN_WS = {
    "uvicorn-turbows": "turbows.integrations.uvicorn:WebSocketProtocol",
    "uvicorn-websockets-sansio": "websockets-sansio",
    "uvicorn-wsproto": "wsproto",
}


class _RawEcho(asyncio.Protocol):
    """Writes back every chunk it reads: what any echo server must at least do."""

    transport: Any = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.transport.write(data)


async def _raw() -> Any:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(_RawEcho, HOST, 0)
    return server, server.sockets[0].getsockname()[1]


async def _turbows(callback: bool = False, fast_transport: bool | None = None) -> Any:
    """turbows's echo: a handler task (``async for`` + ``send``), or with ``callback`` the
    ``on_message`` callback mode (each message sent back with ``send_nowait`` from inside the
    read, no task switch); ``fast_transport`` picks the server transport (None: the default,
    which ``TURBOWS_FAST_TRANSPORT`` sets)."""
    import turbows.asyncio

    if callback:

        async def echo(ws: Any) -> None:
            ws.on_message = ws.send_nowait
            await ws.wait_closed()

    else:

        async def echo(ws: Any) -> None:
            async for message in ws:
                await ws.send(message)

    server = turbows.asyncio.serve(
        echo,
        HOST,
        0,
        ping_interval=None,
        extensions=(),
        max_message_size=MAX_MESSAGE,
        fast_transport=fast_transport,
    )
    await server.start()
    return server, server.port


async def _websockets() -> Any:
    from websockets.asyncio.server import serve

    async def echo(ws: Any) -> None:
        async for message in ws:
            await ws.send(message)

    server = await serve(echo, HOST, 0, ping_interval=None, compression=None, max_size=MAX_MESSAGE)
    return server, server.sockets[0].getsockname()[1]


async def _aiohttp() -> Any:
    from aiohttp import WSMsgType, web

    async def echo(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(compress=False, max_msg_size=MAX_MESSAGE)
        await ws.prepare(request)
        async for message in ws:
            if message.type is WSMsgType.TEXT:
                await ws.send_str(message.data)
            elif message.type is WSMsgType.BINARY:
                await ws.send_bytes(message.data)
        return ws

    app = web.Application()
    app.router.add_get("/{tail:.*}", echo)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, HOST, 0)
    await site.start()
    server: Any = site._server  # the asyncio server, for its port
    return runner, server.sockets[0].getsockname()[1]


async def _picows() -> Any:
    import picows

    class Echo(picows.WSListener):
        """picows's documented echo, with the text as ``str`` like every other server."""

        def on_ws_frame(self, transport: Any, frame: Any) -> None:
            if frame.msg_type == picows.WSMsgType.TEXT:
                transport.send(picows.WSMsgType.TEXT, frame.get_payload_as_utf8_text())
            elif frame.msg_type == picows.WSMsgType.BINARY:
                transport.send(picows.WSMsgType.BINARY, frame.get_payload_as_bytes())
            elif frame.msg_type == picows.WSMsgType.CLOSE:
                transport.send_close(frame.get_close_code())
                transport.disconnect()

    server = await picows.ws_create_server(
        lambda request: Echo(), HOST, 0, max_frame_size=MAX_MESSAGE
    )
    return server, server.sockets[0].getsockname()[1]


async def _asgi_echo(scope: Any, receive: Any, send: Any) -> None:
    """The ASGI echo: every message goes back as it came (text as ``str``)."""
    if scope["type"] != "websocket":
        return
    await receive()  # websocket.connect
    await send({"type": "websocket.accept"})
    while True:
        message = await receive()
        if message["type"] != "websocket.receive":
            return
        text = message.get("text")
        if text is not None:
            await send({"type": "websocket.send", "text": text})
        else:
            await send({"type": "websocket.send", "bytes": message["bytes"]})


async def _uvicorn(ws: str) -> Any:
    """uvicorn serving :func:`_asgi_echo` with the WebSocket class ``ws``, on the running loop
    (the process's asyncio or uvloop) and httptools; heartbeat and compression off as for the
    other servers, no access log."""
    import socket

    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((HOST, 0))
    config = uvicorn.Config(
        _asgi_echo,
        http="httptools",
        ws=ws,
        lifespan="off",
        access_log=False,
        log_level="critical",
        ws_max_size=MAX_MESSAGE,
        ws_ping_interval=None,
        ws_per_message_deflate=False,
    )
    server = uvicorn.Server(config)
    task = asyncio.get_running_loop().create_task(server.serve(sockets=[sock]))
    while not server.started:
        if task.done():
            task.result()
            raise RuntimeError("uvicorn stopped before it started")
        await asyncio.sleep(0.01)
    return (server, task), sock.getsockname()[1]


STARTERS: dict[str, Callable[[], Awaitable[Any]]] = {
    "raw": _raw,
    "turbows": _turbows,
    "turbows-cb": lambda: _turbows(callback=True),
    "turbows-loop": lambda: _turbows(fast_transport=False),
    "turbows-cb-loop": lambda: _turbows(callback=True, fast_transport=False),
    "websockets": _websockets,
    "aiohttp": _aiohttp,
    "picows": _picows,
    **{name: (lambda ws=ws: _uvicorn(ws)) for name, ws in UVICORN_WS.items()},
}


async def _serve(impl: str, lifetime: float) -> None:
    loop = asyncio.get_running_loop()
    stop = loop.create_future()

    def finish() -> None:
        if not stop.done():
            stop.set_result(None)

    def wait_stdin() -> None:
        sys.stdin.buffer.read()  # returns at EOF: the parent closed the pipe or exited
        loop.call_soon_threadsafe(finish)

    _server, port = await STARTERS[impl]()
    threading.Thread(target=wait_stdin, daemon=True).start()
    loop.call_later(lifetime, finish)
    print(f"READY {port}", flush=True)
    await stop


def main(argv: list[str] | None = None) -> None:
    """Run one echo server until stdin closes or its lifetime ends."""
    parser = argparse.ArgumentParser(prog="python -m turbows.bench._echo_servers")
    parser.add_argument("impl", choices=IMPLEMENTATIONS)
    parser.add_argument("loop", choices=("asyncio", "uvloop"))
    parser.add_argument("core", type=int)
    parser.add_argument("--lifetime", type=float, default=900.0)
    args = parser.parse_args(argv)
    if args.core >= 0:
        os.sched_setaffinity(0, {args.core})
    # The client may drop connections without a closing handshake: that is not news.
    logging.basicConfig(level=logging.CRITICAL)
    if args.loop == "uvloop":
        import uvloop

        runner: Callable[..., Any] = uvloop.run
    else:
        runner = asyncio.run
    # Exit without the graceful shutdowns: the parent has gone, nothing is left to echo.
    runner(_serve(args.impl, args.lifetime))
    os._exit(0)


if __name__ == "__main__":
    main()
