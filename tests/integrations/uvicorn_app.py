"""A FastAPI application with WebSocket routes, served by a real uvicorn process in
test_uvicorn_server.py (``uvicorn uvicorn_app:app --ws
turbows.integrations.uvicorn:WebSocketProtocol``). Nothing in it knows about turbows: it is
how a FastAPI application is written for any uvicorn WebSocket class."""

from __future__ import annotations

import asyncio
from typing import Any, Dict, List

from fastapi import FastAPI, WebSocket, WebSocketDisconnect, WebSocketException
from starlette.responses import PlainTextResponse

app = FastAPI()

#: The websocket.disconnect codes and reasons the routes saw, newest last.
disconnects: List[Dict[str, Any]] = []
#: Set by GET /go: the /lagging route starts reading.
go = asyncio.Event()


@app.get("/disconnects")
async def get_disconnects() -> List[Dict[str, Any]]:
    return disconnects


@app.get("/go")
async def get_go() -> str:
    go.set()
    return "going"


@app.websocket("/echo")
async def echo(websocket: WebSocket) -> None:
    await websocket.accept()
    try:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                disconnects.append({"code": message["code"], "reason": message.get("reason")})
                return
            if message.get("text") is not None:
                await websocket.send_text(message["text"])
            else:
                await websocket.send_bytes(message["bytes"])
    except WebSocketDisconnect as exc:  # pragma: no cover - receive() returns it above
        disconnects.append({"code": exc.code, "reason": exc.reason})


@app.websocket("/json")
async def json_echo(websocket: WebSocket) -> None:
    await websocket.accept()
    try:
        while True:
            data = await websocket.receive_json()
            await websocket.send_json({"got": data})
    except WebSocketDisconnect:
        pass


@app.websocket("/items/{item_id}")
async def scope_info(websocket: WebSocket, item_id: int, q: str = "") -> None:
    """Accepts with the client's last subprotocol and a header, then tells what it saw."""
    offered = websocket.scope["subprotocols"]
    await websocket.accept(
        subprotocol=offered[-1] if offered else None, headers=[(b"x-item", str(item_id).encode())]
    )
    await websocket.send_json(
        {
            "item_id": item_id,
            "q": q,
            "path": websocket.url.path,
            "subprotocols": offered,
            "user_agent": websocket.headers.get("user-agent"),
            "cookie": websocket.cookies.get("session"),
        }
    )
    await websocket.close()


@app.websocket("/forbidden")
async def forbidden(websocket: WebSocket) -> None:
    raise WebSocketException(code=1008, reason="no entry")


@app.websocket("/unauthorized")
async def unauthorized(websocket: WebSocket) -> None:
    await websocket.send_denial_response(
        PlainTextResponse("log in first", status_code=401, headers={"www-authenticate": "Bearer"})
    )


@app.websocket("/close")
async def close_after_one(websocket: WebSocket) -> None:
    await websocket.accept()
    text = await websocket.receive_text()
    await websocket.close(code=4001, reason=f"bye {text}")


@app.websocket("/lagging")
async def lagging(websocket: WebSocket) -> None:
    """Reads nothing until GET /go, then counts what arrived and reports it."""
    await websocket.accept()
    await go.wait()
    count = 0
    size = 0
    while True:
        data = await websocket.receive_bytes()
        if data == b"end":
            break
        if data[:4] != count.to_bytes(4, "big"):
            await websocket.send_text(f"out of order at {count}")
            return
        count += 1
        size += len(data)
    await websocket.send_text(f"{count} {size}")
    await websocket.close()
