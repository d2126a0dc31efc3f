"""A live feed on two worker processes and Redis, with a page that reconnects and resumes.

    redis-server --appendonly yes --appendfsync always     # or any Redis 7
    pip install "turbows[redis]"
    python examples/feed/server.py --workers 2 --port 8000 --redis redis://127.0.0.1:6379/0
    open http://127.0.0.1:8000/    (in several tabs: each may land on either worker)

Every message a page sends (``{"text": ...}``) is published on the ``feed`` channel of a
:class:`turbows.pubsub.Bus`; each worker's reader fans it out to its own connections. Each
delivery carries its id (``{"id": "E-S", "channel": "feed", "data": ...}``); the page keeps
the last one and reconnects with ``?since=E-S`` after any drop (a worker restart, the network),
whichever worker it reaches: it gets what it missed exactly once, then live messages. A close
with 4010 (reset: that point of history is gone) makes it start over. ``GET /health`` answers
200 while Redis is reachable, 503 otherwise.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import pathlib
from typing import Any, Optional

import turbows
import turbows.asyncio
from turbows.pubsub import Bus

PAGE = pathlib.Path(__file__).with_name("index.html")
log = logging.getLogger("turbows.examples.feed")

# Made in the parent, started lazily in each worker (its first subscribe or publish).
bus = Bus(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"), maxlen=10_000)
health = bus.health_check("/health")


async def handler(ws: turbows.asyncio.ServerWebSocket) -> None:
    """Subscribe to the feed (resuming from ``?since=``), publish what the page sends."""
    if not await bus.subscribe(ws, "feed"):
        return  # reset: closed with 4010
    async for message in ws:
        try:
            text = str(json.loads(message)["text"])[:1000]
        except (ValueError, KeyError, TypeError):
            continue
        payload = json.dumps({"text": text, "worker": os.getpid()})
        await bus.publish("feed", payload)


def process_request(request: turbows.Request) -> Optional[Any]:
    """The page on ``GET /``, the health check on ``GET /health``, WebSockets on ``/feed``."""
    answer = health(request)
    if answer is not None:
        return answer
    path = request.path.split("?", 1)[0]
    if not request.upgrade:
        if path != "/":
            return turbows.asyncio.Reject(404, [("Content-Type", "text/plain")], "not found\n")
        return turbows.asyncio.Reject(
            200,
            [("Content-Type", "text/html; charset=utf-8"), ("Cache-Control", "no-store")],
            PAGE.read_bytes(),
        )
    if path != "/feed":
        return turbows.asyncio.Reject(404, [("Content-Type", "text/plain")], "not found\n")
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--redis", help="Redis URL (default: $REDIS_URL or localhost)")
    args = parser.parse_args()
    if args.redis:
        bus.url = args.redis
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(process)d %(message)s")

    def ready(address: Any) -> None:
        print(f"serving on http://{address[0]}:{address[1]}/", flush=True)

    turbows.asyncio.run(
        handler,
        args.host,
        args.port,
        workers=args.workers,
        process_request=process_request,
        on_ready=ready,
    )


if __name__ == "__main__":
    main()
