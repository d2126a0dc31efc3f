"""The reconnecting client against a real redis-server and in-process workers: resume=True
on another worker, and a reset that makes it start over. The issue's fault targets (kill -9,
the random drop at k, worker replacement) run with worker processes in test_processes.py."""

from __future__ import annotations

import asyncio
import json
from typing import Any, List

import pytest
from test_bus import Worker, _connected

import turbows.asyncio as fa

from aio_helpers import run


def test_the_reconnecting_client_resumes_by_itself_on_another_worker(redis_server: Any) -> None:
    async def main() -> None:
        async with Worker(redis_server) as a, Worker(redis_server) as b:
            workers = [a, b]
            turn = [0]

            client = fa.ReconnectingClient(
                a.uri(),
                resume=True,
                policy=fa.RetryPolicy(initial_delay=0.01, max_delay=0.05),
            )
            # each (re)connection goes to the other worker
            original = client._make_connect

            def alternate() -> Any:
                client.uri = workers[turn[0] % 2].uri()
                turn[0] += 1
                return original()

            client._make_connect = alternate  # type: ignore[method-assign]
            disconnects: List[int] = []
            client._on_disconnect = lambda exc: disconnects.append(exc.code)
            async with client:
                await client.wait_connected()
                await _connected(a, 1)
                ids = [str(await a.bus.publish("news", f"m{i}")) for i in range(20)]
                got = [json.loads(await client.recv()) for _ in range(5)]
                # the server drops it (a deploy): code 1012, retried
                (server_side,) = a.server.connections
                await server_side.close(1012, "restart")
                ids += [str(await a.bus.publish("news", f"m{i}")) for i in range(20, 30)]
                got += [json.loads(await client.recv()) for _ in range(25)]
                assert [g["id"] for g in got] == ids
                assert turn[0] >= 2 and len(b.server.connections) == 1
                with pytest.raises(asyncio.TimeoutError):
                    await asyncio.wait_for(client.recv(), 0.3)
            assert disconnects and disconnects[0] == 1012

    run(main, timeout=30)


def test_a_reset_makes_the_reconnecting_client_forget_its_ids(volatile_redis: Any) -> None:
    from turbows.pubsub import RESET

    async def main() -> None:
        async with Worker(volatile_redis) as a:
            codes: List[int] = []
            async with fa.ReconnectingClient(
                a.uri(),
                resume=True,
                policy=fa.RetryPolicy(initial_delay=0.05, max_delay=0.2),
                on_disconnect=lambda exc: codes.append(exc.code),
            ) as client:
                await client.wait_connected()
                await _connected(a, 1)
                await a.bus.publish("news", "old")
                assert json.loads(await client.recv())["data"] == "old"
                volatile_redis.kill()
                await asyncio.sleep(0.3)
                volatile_redis.start()
                for _ in range(100):
                    if codes and client.connected and a.bus._subscribers.get("news"):
                        break
                    await asyncio.sleep(0.05)
                assert codes == [RESET]
                fresh = await a.bus.publish("news", "new")
                message = json.loads(await asyncio.wait_for(client.recv(), 5))
                assert message == {"id": str(fresh), "channel": "news", "data": "new"}
                assert fresh.seq == 1  # a new dataset: the client started live, not resumed

    run(main, timeout=30)
