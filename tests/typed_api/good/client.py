"""Clients as users write them: one-shot, reconnecting loop, reconnecting client."""

import asyncio

import turbows.asyncio


async def once(uri: str) -> str:
    async with turbows.asyncio.connect(uri, open_timeout=5.0) as ws:
        await ws.send("hello")
        message = await ws.recv()
        latency: float = await ws.ping()
        print(latency)
        return message if isinstance(message, str) else message.decode()


async def feed(uri: str) -> None:
    policy = turbows.asyncio.RetryPolicy(initial_delay=0.5, max_attempts=10)
    async for ws in turbows.asyncio.connect(uri, reconnect=policy):
        async for message in ws:
            print(message)


async def queued(uri: str) -> None:
    async with turbows.asyncio.ReconnectingClient(uri) as client:
        await client.send("queued until connected")
        async for message in client:
            print(message)
            break


async def errors(uri: str) -> None:
    try:
        await turbows.asyncio.connect(uri)
    except turbows.asyncio.HandshakeRejected as exc:
        print(exc.status, exc.retry_after)
    except turbows.asyncio.ClosedError as exc:
        print(exc.code, exc.reason, exc.clean)


if __name__ == "__main__":
    asyncio.run(once("ws://127.0.0.1:8765/"))
