import turbows.asyncio


async def on_message(message: turbows.asyncio.Message) -> None:
    pass


async def handler(ws: turbows.asyncio.ServerWebSocket) -> None:
    ws.on_message = on_message  # expect: assignment
