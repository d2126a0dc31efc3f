"""A server as users write one: token check in the handshake, context, health check."""

import asyncio
from typing import Dict, Optional, Union

import turbows
import turbows.asyncio

USERS: Dict[str, str] = {"s3cret": "ada"}
Decision = Union[turbows.asyncio.Accept, turbows.asyncio.Reject, turbows.asyncio.Response, None]


def process_request(request: turbows.Request) -> Decision:
    if not request.upgrade:
        return turbows.asyncio.Response(200, [("Content-Type", "text/plain")], "ok\n")
    user: Optional[str] = USERS.get(request.query.get("token", ""))
    if user is None:
        return turbows.asyncio.Reject(401, body="login first")
    return turbows.asyncio.Accept(context=user)


async def handler(ws: turbows.asyncio.ServerWebSocket) -> None:
    path: str = ws.request.path  # not Optional inside a server handler
    await ws.send(f"hello {ws.context} on {path}")
    await ws.send(b"\x00\x01")
    await ws.send(["frag", "ments"])
    async for message in ws:
        await ws.send(message)


async def fast(ws: turbows.asyncio.ServerWebSocket) -> None:
    ws.on_message = ws.send_nowait
    await ws.wait_closed()


async def main() -> None:
    async with turbows.asyncio.serve(
        handler, "127.0.0.1", 0, process_request=process_request, ping_interval=20.0
    ) as server:
        turbows.asyncio.broadcast(server.connections, "news")


if __name__ == "__main__":
    asyncio.run(main())
