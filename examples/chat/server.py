"""A chat room: WebSocket messages broadcast to everyone, and the web page that uses it.

    python examples/chat/server.py --port 8000
    open http://127.0.0.1:8000/

The page is served over plain HTTP on ``--port`` and the WebSocket server listens on
``--port + 1`` (``--ws-port``). Each message a browser sends is a JSON object
``{"text": ...}``; the server adds the sender's name and broadcasts it to every member.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import pathlib
from typing import List, Set

import fastws.asyncio

PAGE = pathlib.Path(__file__).with_name("index.html")
log = logging.getLogger("fastws.examples.chat")


class ChatRoom:
    """The members of the room, and the broadcast."""

    def __init__(self) -> None:
        self.members: Set[fastws.asyncio.ServerWebSocket] = set()
        self.counter = 0
        self.history: List[dict] = []  # the last 100 messages, replayed to newcomers
        self.changed = asyncio.Event()

    async def broadcast(self, payload: dict) -> None:
        self.history = self.history[-99:] + [payload]
        self.changed.set()
        self.changed = asyncio.Event()
        text = json.dumps(payload)
        for member in list(self.members):
            try:
                await member.send(text)
            except fastws.asyncio.WebSocketClosed:
                self.members.discard(member)

    async def handler(self, ws: fastws.asyncio.ServerWebSocket) -> None:
        self.counter += 1
        name = f"guest{self.counter}"
        self.members.add(ws)
        log.info("%s joined (extensions: %s)", name, ws.extensions)
        try:
            await ws.send(
                json.dumps(
                    {"system": f"welcome, {name}", "extensions": [e[0] for e in ws.extensions]}
                )
            )
            for past in self.history:
                await ws.send(json.dumps(past))
            await self.broadcast({"system": f"{name} joined"})
            async for message in ws:
                try:
                    text = str(json.loads(message)["text"])[:1000]
                except (ValueError, KeyError, TypeError):
                    continue
                await self.broadcast({"from": name, "text": text})
        finally:
            self.members.discard(ws)
            await self.broadcast({"system": f"{name} left"})


async def serve_page(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """A minimal HTTP/1.1 server for the one page (every path gets it)."""
    try:
        await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        body = PAGE.read_bytes()
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\n"
            b"Cache-Control: no-store\r\nConnection: close\r\n"
            b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
        )
        await writer.drain()
    except (asyncio.TimeoutError, asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


async def run(
    host: str,
    port: int,
    ws_port: int,
    ready: "asyncio.Future[tuple] | None" = None,
    room: "ChatRoom | None" = None,
) -> None:
    room = room or ChatRoom()
    http = await asyncio.start_server(serve_page, host, port)
    async with fastws.asyncio.serve(room.handler, host, ws_port) as ws_server:
        http_port = http.sockets[0].getsockname()[1]
        log.info(
            "chat page on http://%s:%s/ , WebSocket on port %s", host, http_port, ws_server.port
        )
        if ready is not None:
            ready.set_result((http_port, ws_server.port))
        try:
            await asyncio.Future()
        finally:
            http.close()
            await http.wait_closed()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="fastws chat example")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--ws-port", type=int, default=None)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    try:
        asyncio.run(
            run(args.host, args.port, args.ws_port if args.ws_port is not None else args.port + 1)
        )
    except KeyboardInterrupt:
        pass
