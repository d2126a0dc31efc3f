"""examples/feed on two real worker processes and a real Redis: a killed worker is replaced
and its clients (ReconnectingClient(resume=True)) resume with nothing lost or repeated."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from typing import Any, List

from test_processes import children

import turbows.asyncio as fa

from aio_helpers import run

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EXAMPLE = os.path.join(ROOT, "examples", "feed", "server.py")


def test_feed_example_two_workers_a_worker_killed_its_clients_resume(redis_server: Any) -> None:
    proc = subprocess.Popen(
        [sys.executable, EXAMPLE, "--workers", "2", "--port", "0", "--redis", redis_server.url],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("serving on http://"), line
        base = line.split()[2].replace("http://", "ws://") + "feed"

        async def main() -> None:
            drops: List[int] = []
            clients = [
                fa.ReconnectingClient(
                    base,
                    resume=True,
                    policy=fa.RetryPolicy(initial_delay=0.05, max_delay=0.2),
                    on_disconnect=lambda exc: drops.append(exc.code),
                )
                for _ in range(10)
            ]
            for client in clients:
                client.start()
                await client.wait_connected()
            await asyncio.sleep(0.3)  # subscriptions start

            async def say(texts: List[str]) -> None:
                for _ in range(100):
                    try:
                        async with fa.connect(base) as ws:
                            for text in texts:
                                await ws.send(json.dumps({"text": text}))
                            await asyncio.sleep(0.2)
                            return
                    except (OSError, fa.WebSocketClosed, fa.HandshakeError):
                        await asyncio.sleep(0.05)

            got: List[List[str]] = [[] for _ in clients]

            async def take(i: int, n: int) -> None:
                while len(got[i]) < n:
                    delivery = json.loads(await asyncio.wait_for(clients[i].recv(), 20))
                    got[i].append(json.loads(delivery["data"])["text"])

            await say([f"a{i}" for i in range(30)])
            await asyncio.gather(*[take(i, 30) for i in range(len(clients))])
            workers = children(proc.pid)
            assert len(workers) == 2, workers
            os.kill(workers[0], signal.SIGKILL)
            await say([f"b{i}" for i in range(30)])
            await asyncio.gather(*[take(i, 60) for i in range(len(clients))])
            expected = [f"a{i}" for i in range(30)] + [f"b{i}" for i in range(30)]
            for texts in got:
                assert texts == expected
            assert drops and set(drops) == {1006}  # the killed worker's clients resumed
            # The parent replaces the killed worker; the clients may have resumed on the other
            # one before that (a loaded machine), so wait for it a little.
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 5
            replaced = children(proc.pid)
            while len(replaced) < 2 and loop.time() < deadline:
                await asyncio.sleep(0.05)
                replaced = children(proc.pid)
            assert len(replaced) == 2 and workers[0] not in replaced
            for client in clients:
                await client.close()

        run(main, timeout=60)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
