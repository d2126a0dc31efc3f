"""A handler for the worker tests: tells the client which process serves it."""

import os


async def whoami(ws):  # type: ignore[no-untyped-def]
    await ws.send(str(os.getpid()))
    async for message in ws:
        await ws.send(message)
