"""A headless Chromium runs the chat example's page against the example server.

Skipped when ``/usr/bin/chromium`` (Debian's ``chromium`` package) is not installed.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import pathlib
from typing import Any, List

import pytest

CHROMIUM = "/usr/bin/chromium"
EXAMPLE = pathlib.Path(__file__).parents[2] / "examples" / "chat" / "server.py"

pytestmark = pytest.mark.skipif(not os.access(CHROMIUM, os.X_OK), reason="needs Debian chromium")

from aio_helpers import run  # noqa: E402


def _load_example() -> Any:
    spec = importlib.util.spec_from_file_location("fastws_chat_example", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_chat_page_in_headless_chromium_with_permessage_deflate(tmp_path: pathlib.Path) -> None:
    chat = _load_example()
    room = chat.ChatRoom()
    extensions: List[Any] = []
    handler = room.handler

    async def spying_handler(ws: Any) -> None:
        extensions.append(ws.extensions)
        await handler(ws)

    room.handler = spying_handler

    async def main() -> str:
        loop = asyncio.get_running_loop()
        ready = loop.create_future()
        server = asyncio.ensure_future(chat.run("127.0.0.1", 0, 0, ready, room))
        http_port, ws_port = await ready
        url = (f"http://127.0.0.1:{http_port}/?autotest=1"
               f"&ws=ws://127.0.0.1:{ws_port}/chat")
        proc = await asyncio.create_subprocess_exec(
            CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
            "--no-first-run", f"--user-data-dir={tmp_path}", "--virtual-time-budget=3000",
            "--dump-dom", url,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
        )
        try:
            dom, _ = await asyncio.wait_for(proc.communicate(), 40)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
            server.cancel()
            try:
                await server
            except asyncio.CancelledError:
                pass
        return dom.decode("utf-8", "replace")

    dom = run(main, timeout=50)
    assert 'data-state="open"' in dom, dom[-2000:]
    assert "welcome, guest1" in dom
    assert "guest1: hello from" in dom
    assert extensions and extensions[0][0][0] == "permessage-deflate"
