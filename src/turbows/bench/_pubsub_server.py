"""Processes of the pubsub benchmark (needs ``turbows[redis]`` and ``redis-server``):

- ``python -m turbows.bench._pubsub_server worker URL``: a turbows server whose every
  connection subscribes to the channel ``bench`` of a :class:`turbows.pubsub.Bus` on ``URL``
  (``with_ids=False``: each delivery is the published text itself); prints ``READY <port>``.
- ``python -m turbows.bench._pubsub_server publisher URL``: reads lines from stdin:
  ``burst N [SIZE]`` publishes N messages of SIZE bytes (default 64) with one
  ``publish_many`` (as fast as the outbox takes them, pipelined), ``burst-each N [SIZE]`` the
  same with one ``publish_nowait`` (and its future) per message, ``paced N RATE [SIZE]`` publishes N messages at RATE per second,
  each carrying its ``time.monotonic_ns()`` (the clock every process of the machine shares)
  zero-padded to SIZE bytes; answers ``DONE``.

Both exit when their standard input closes.
"""

from __future__ import annotations

import asyncio
import sys
import time
from typing import Any

SIZE = 64


async def _worker(url: str) -> None:
    import turbows.asyncio as fa
    from turbows.pubsub import Bus

    async with Bus(url, with_ids=False) as bus:

        async def handler(ws: Any) -> None:
            await bus.subscribe(ws, "bench")
            await ws.wait_closed()

        server = await fa.serve(handler, "127.0.0.1", 0, extensions=(), ping_interval=None)
        print(f"READY {server.port}", flush=True)
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, sys.stdin.buffer.read)
        await server.shutdown(timeout=1.0)


async def _publisher(url: str) -> None:
    from turbows.pubsub import Bus

    loop = asyncio.get_running_loop()
    async with Bus(url, outbox=1 << 20) as bus:
        print("READY 0", flush=True)
        while True:
            line = await loop.run_in_executor(None, sys.stdin.readline)
            if not line:
                break
            words = line.split()
            n = int(words[1])
            if words[0] in ("burst", "burst-each"):
                data = "p" * (int(words[2]) if len(words) > 2 else SIZE)
                if words[0] == "burst":
                    await bus.publish_many("bench", [data] * n)
                else:
                    await asyncio.gather(*[bus.publish_nowait("bench", data) for _ in range(n)])
            else:
                period = 1.0 / float(words[2])
                size = int(words[3]) if len(words) > 3 else SIZE
                start = time.monotonic()
                futures = []
                for i in range(n):
                    delay = start + i * period - time.monotonic()
                    if delay > 0:
                        await asyncio.sleep(delay)
                    stamp = str(time.monotonic_ns())
                    futures.append(bus.publish_nowait("bench", stamp.rjust(size, "0")))
                await asyncio.gather(*futures)
            sys.stdout.write("DONE\n")
            sys.stdout.flush()


def main() -> None:
    role, url = sys.argv[1], sys.argv[2]
    asyncio.run(_worker(url) if role == "worker" else _publisher(url))


if __name__ == "__main__":
    main()
