"""A server for the reconnect tests, run in its own process so that it can be killed.

``python reconnect_server.py PORT [close_code]``: every connection gets ``"<pid> <n>"`` every
20 ms. On SIGTERM the server shuts down gracefully (1001 to every client), as a deploy does.
A client message ``"close CODE"`` makes the server close that connection with CODE.
"""

import asyncio
import os
import signal
import sys

import turbows.asyncio


async def ticker(ws: turbows.asyncio.ServerWebSocket) -> None:
    async def reader() -> None:
        async for message in ws:
            if isinstance(message, str) and message.startswith("close "):
                await ws.close(int(message.split()[1]), "asked to")

    task = asyncio.ensure_future(reader())
    n = 0
    try:
        while not task.done():
            n += 1
            await ws.send(f"{os.getpid()} {n}")
            await asyncio.sleep(0.02)
    finally:
        task.cancel()


async def main(port: int) -> None:
    stop = asyncio.get_running_loop().create_future()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set_result, None)
    async with turbows.asyncio.serve(ticker, "127.0.0.1", port, shutdown_timeout=2.0):
        print("ready", flush=True)
        await stop


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
