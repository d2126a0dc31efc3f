"""A WebSocket echo server.

Run it, then talk to it with any client::

    python examples/echo_server.py --port 8765
    python -m turbows ws://127.0.0.1:8765/      # type lines; each comes back
"""

from __future__ import annotations

import argparse
import asyncio
import logging

import turbows.asyncio


async def echo(ws: turbows.asyncio.ServerWebSocket) -> None:
    """Send every message back as it came."""
    async for message in ws:
        await ws.send(message)


async def main(host: str, port: int) -> None:
    async with turbows.asyncio.serve(echo, host, port) as server:
        logging.getLogger("turbows").info("echo server on ws://%s:%s/", host, server.port)
        await asyncio.Future()  # until Ctrl-C; the server then shuts down gracefully


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--uvloop", action="store_true", help="run on uvloop")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if args.uvloop:
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    try:
        asyncio.run(main(args.host, args.port))
    except KeyboardInterrupt:
        pass
