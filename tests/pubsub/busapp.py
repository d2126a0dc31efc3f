"""The app the process tests serve with ``python -m turbows serve busapp:feed --workers N``:
each connection subscribes to ``?channel=`` (default ``news``) of a Bus on
``$TURBOWS_TEST_REDIS_URL``, resuming from ``?since=``. With ``?hello=1`` it first gets
``{"worker": pid}``, so that a test knows which worker process serves it."""

import json
import os
from urllib.parse import parse_qs, urlsplit

from turbows.pubsub import Bus

# Made in the parent, started lazily in each worker (its first subscribe).
bus = Bus(os.environ.get("TURBOWS_TEST_REDIS_URL", "redis://127.0.0.1:6379/0"))


async def feed(ws):  # type: ignore[no-untyped-def]
    query = parse_qs(urlsplit(ws.request.path).query)
    if "hello" in query:
        await ws.send(json.dumps({"worker": os.getpid()}))
    if await bus.subscribe(ws, query.get("channel", ["news"])):
        await ws.wait_closed()
