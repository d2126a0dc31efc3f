"""The fan-out benchmark's server, one process: ``python -m turbows.bench._fanout_server CORE``.

A turbows server (default transport, on asyncio) whose connections only receive. Each line
``MODE N`` on its standard input makes it send N text messages of 64 bytes to every open
connection, then answer ``DONE`` on stdout; ``MODE`` is:

- ``fanout``: :class:`turbows.asyncio.Fanout` (policy ``"later"``), 64 messages per batch:
  one write per connection per batch;
- ``broadcast``: :func:`turbows.asyncio.broadcast`, one call per message (one write per
  connection per message);
- ``send_nowait``: ``ws.send_nowait(message)`` for each connection and message, the loop
  that ``broadcast()`` was before batching (the reference).

Between two batches (or messages) it waits for the connections whose write buffer is over
its high-water mark, so that every mode keeps up with its readers instead of buffering
without bound. It listens on 127.0.0.1 only, prints ``READY <port>`` and exits when its
standard input closes.
"""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Any, List

BATCH = 64
SIZE = 64


async def _serve() -> None:
    import turbows.asyncio as fa

    loop = asyncio.get_running_loop()

    async def park(ws: Any) -> None:
        await ws.wait_closed()

    server = await fa.serve(park, "127.0.0.1", 0, extensions=(), ping_interval=None)
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    message = "m" * SIZE
    batch = [message] * BATCH
    fan = fa.Fanout("later", max_backlog=1 << 24)
    print(f"READY {server.port}", flush=True)

    async def drained(conns: List[Any]) -> None:
        for ws in conns:
            while ws.writing_paused or fan.pending(ws):
                await ws._drain()
                if fan.pending(ws):
                    await asyncio.sleep(0)

    while True:
        line = await reader.readline()
        if not line:
            break
        mode, count = line.split()
        n = int(count)
        conns = [ws for ws in server.connections if ws.state.name == "OPEN"]
        if mode == b"fanout":
            for i in range(0, n, BATCH):
                fan.send(conns, batch if n - i >= BATCH else batch[: n - i])
                await drained(conns)
        elif mode == b"broadcast":
            for _ in range(n):
                fa.broadcast(conns, message)
                await drained(conns)
        elif mode == b"send_nowait":
            for _ in range(n):
                for ws in conns:
                    ws.send_nowait(message)
                await drained(conns)
        sys.stdout.write("DONE\n")
        sys.stdout.flush()
    await server.shutdown(timeout=1.0)


def main() -> None:
    core = int(sys.argv[1]) if len(sys.argv) > 1 else -1
    if core >= 0:
        os.sched_setaffinity(0, {core})
    asyncio.run(_serve())


if __name__ == "__main__":
    main()
