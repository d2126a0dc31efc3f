"""A chat room: WebSocket messages broadcast to everyone, and the web page that uses it.

    python examples/chat/server.py --port 8000
    open http://127.0.0.1:8000/

One port serves both: a plain HTTP ``GET /`` gets the page (``process_request`` answers
requests that are not WebSocket handshakes), and the page connects to ``ws://.../chat``.
Each message a browser sends is a JSON object ``{"text": ...}``; the server adds the
sender's name and broadcasts it to every member.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import pathlib
from typing import List, Set

import turbows
import turbows.asyncio

PAGE = pathlib.Path(__file__).with_name("index.html")
log = logging.getLogger("turbows.examples.chat")


class ChatRoom:
    """The members of the room, and the broadcast."""

    def __init__(self) -> None:
        self.members: Set[turbows.asyncio.ServerWebSocket] = set()
        self.counter = 0
        self.history: List[dict] = []  # the last 100 messages, replayed to newcomers
        self.changed = asyncio.Event()

    async def broadcast(self, payload: dict) -> None:
        self.history = self.history[-99:] + [payload]
        self.changed.set()
        self.changed = asyncio.Event()
        # One pass, no waiting; a member whose connection is closing is left to its handler.
        turbows.asyncio.broadcast(self.members, json.dumps(payload))

    async def handler(self, ws: turbows.asyncio.ServerWebSocket) -> None:
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


def process_request(
    request: turbows.Request,
) -> "turbows.asyncio.Response | turbows.asyncio.Reject | None":
    """The page for plain HTTP GETs of ``/``; the WebSocket handshake only on ``/chat``."""
    path = request.path.split("?", 1)[0]
    if not request.upgrade:
        if path != "/":
            return turbows.asyncio.Response(404, [("Content-Type", "text/plain")], "not found\n")
        return turbows.asyncio.Response(
            200,
            [("Content-Type", "text/html; charset=utf-8"), ("Cache-Control", "no-store")],
            PAGE.read_bytes(),
        )
    if path != "/chat":
        return turbows.asyncio.Reject(404, body="no such room")
    return None  # accept


async def run(
    host: str,
    port: int,
    ready: "asyncio.Future[int] | None" = None,
    room: "ChatRoom | None" = None,
) -> None:
    room = room or ChatRoom()
    async with turbows.asyncio.serve(
        room.handler, host, port, process_request=process_request
    ) as server:
        log.info("chat page on http://%s:%s/ (WebSocket on /chat)", host, server.port)
        if ready is not None:
            ready.set_result(server.port)
        await asyncio.Future()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="turbows chat example")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    try:
        asyncio.run(run(args.host, args.port))
    except KeyboardInterrupt:
        pass
