import turbows.asyncio


async def handler(ws: turbows.asyncio.ServerWebSocket) -> None:
    await ws.send({"a": 1})  # expect: arg-type
