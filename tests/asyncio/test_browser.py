"""A headless Chromium runs the chat example's page against the example server.

Skipped when ``/usr/bin/chromium`` (Debian's ``chromium`` package) is not installed. The page,
in its ``autotest`` mode, says hello once connected and acknowledges its own message when
the broadcast brings it back; the test watches the room for both.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import pathlib
from typing import Any, List

import pytest

from aio_helpers import run

CHROMIUM = "/usr/bin/chromium"
EXAMPLE = pathlib.Path(__file__).parents[2] / "examples" / "chat" / "server.py"

pytestmark = pytest.mark.skipif(not os.access(CHROMIUM, os.X_OK), reason="needs Debian chromium")


def _load_example() -> Any:
    spec = importlib.util.spec_from_file_location("turbows_chat_example", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_chat_page_in_headless_chromium_with_permessage_deflate(tmp_path: pathlib.Path) -> None:
    chat = _load_example()
    extensions: List[Any] = []
    history: List[Any] = []

    def texts() -> List[str]:
        return [m.get("text", "") for m in history]

    async def main() -> List[str]:
        # Made inside the loop: on Python 3.9 an asyncio.Event binds to the loop current
        # when it is created.
        room = chat.ChatRoom()
        handler = room.handler

        async def spying_handler(ws: Any) -> None:
            extensions.append(ws.extensions)
            await handler(ws)

        room.handler = spying_handler
        loop = asyncio.get_running_loop()
        ready = loop.create_future()
        server = asyncio.ensure_future(chat.run("127.0.0.1", 0, ready, room))
        port = await ready
        url = f"http://127.0.0.1:{port}/?autotest=1"  # the page, then WebSocket on /chat
        proc = await asyncio.create_subprocess_exec(
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={tmp_path}",
            "--remote-debugging-port=0",  # keeps the browser running until killed
            url,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        try:
            while True:
                history[:] = room.history
                if any(t.startswith("ack ") for t in texts()):
                    break
                await asyncio.wait_for(room.changed.wait(), 30)
        finally:
            proc.kill()
            await proc.wait()
            server.cancel()
            try:
                await server
            except asyncio.CancelledError:
                pass
        return texts()

    seen = run(main, timeout=45)
    assert any(t.startswith("hello from") for t in seen), seen
    ack = [t for t in seen if t.startswith("ack ")][0]
    assert "state=open" in ack and "permessage-deflate" in ack, ack
    assert extensions and extensions[0][0][0] == "permessage-deflate"
