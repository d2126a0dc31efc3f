"""turbows as the testee of the Autobahn|Testsuite.

Two roles, one per mode of ``wstest``:

``server PORT``
    an echo server for ``wstest -m fuzzingclient`` (every message sent back as it came,
    permessage-deflate on, no message size limit below the suite's 16 MiB cases).
``client URL AGENT``
    an echo client for ``wstest -m fuzzingserver``: asks the suite how many cases there are,
    runs each one, then asks it to write its reports. With ``--sync``, the blocking client
    of ``turbows.sync`` instead of the asyncio one.

Run by ``tests/autobahn/suite.py``; usable by hand as well.
"""

from __future__ import annotations

import asyncio
import logging
import sys

import turbows
import turbows.asyncio

MAX_SIZE = 64 * 1024 * 1024  # the suite's largest message is 16 MiB


async def _echo(ws: turbows.asyncio.WebSocket) -> None:
    try:
        async for message in ws:
            await ws.send(message)
    except turbows.asyncio.WebSocketClosed:
        pass


async def serve(port: int) -> None:
    async with turbows.asyncio.serve(
        _echo,
        "127.0.0.1",
        port,
        max_message_size=MAX_SIZE,
        ping_interval=None,
        close_timeout=2.0,
    ) as server:
        loop = type(asyncio.get_running_loop())
        print(f"listening {server.port}, loop {loop.__module__}.{loop.__name__}", flush=True)
        await asyncio.Future()


async def run_client(url: str, agent: str) -> None:
    async with turbows.asyncio.connect(f"{url}/getCaseCount", ping_interval=None) as ws:
        count = int(await ws.recv())
    for case in range(1, count + 1):
        try:
            async with turbows.asyncio.connect(
                f"{url}/runCase?case={case}&agent={agent}",
                max_message_size=MAX_SIZE,
                ping_interval=None,
                close_timeout=2.0,
            ) as ws:
                await _echo(ws)
        except (OSError, turbows.TurboWSError) as exc:
            # A case that breaks the connection on purpose is judged by the suite, not here.
            logging.getLogger("turbows").debug("case %d: %r", case, exc)
    async with turbows.asyncio.connect(
        f"{url}/updateReports?agent={agent}", ping_interval=None
    ) as ws:
        async for _ in ws:
            pass


def run_sync_client(url: str, agent: str) -> None:
    import turbows.sync

    with turbows.sync.connect(f"{url}/getCaseCount", ping_interval=None) as ws:
        count = int(ws.recv(timeout=30))
    for case in range(1, count + 1):
        try:
            with turbows.sync.connect(
                f"{url}/runCase?case={case}&agent={agent}",
                max_message_size=MAX_SIZE,
                ping_interval=None,
                close_timeout=2.0,
            ) as ws:
                for message in ws:
                    ws.send(message)
        except (OSError, turbows.TurboWSError) as exc:
            logging.getLogger("turbows").debug("case %d: %r", case, exc)
    with turbows.sync.connect(f"{url}/updateReports?agent={agent}", ping_interval=None) as ws:
        for _ in ws:
            pass


def main(argv: list[str]) -> None:
    print(f"testee: turbows {turbows.__version__}, codec {turbows.IMPLEMENTATION}", flush=True)
    if argv[:1] == ["server"] and len(argv) == 2:
        asyncio.run(serve(int(argv[1])))
    elif argv[:1] == ["client"] and len(argv) == 3:
        asyncio.run(run_client(argv[1], argv[2]))
    elif argv[:1] == ["sync-client"] and len(argv) == 3:
        print("client: turbows.sync", flush=True)
        run_sync_client(argv[1], argv[2])
    else:
        sys.exit(f"usage: {sys.argv[0]} server PORT | client URL AGENT | sync-client URL AGENT")


if __name__ == "__main__":
    if "--uvloop" in sys.argv:
        import uvloop

        sys.argv.remove("--uvloop")
        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    main(sys.argv[1:])
