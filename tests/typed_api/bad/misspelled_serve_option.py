import turbows.asyncio


async def handler(ws: turbows.asyncio.ServerWebSocket) -> None:
    pass


server = turbows.asyncio.serve(handler, "127.0.0.1", 0, ping_intervall=5.0)  # expect: call-arg
