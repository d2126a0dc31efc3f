"""The issue's fault targets against a real redis-server: kill -9 with AOF always (exactly
once, in order per publisher), a client dropping at a random k and resuming on the other
worker (hypothesis), the reconnecting client's resume=True.

Message counts are scaled for CI; TURBOWS_CI_PUBSUB_FULL=1 runs the issue's sizes
(2 publishers x 10,000 messages, 2 workers x 20 clients)."""

from __future__ import annotations

import asyncio
import json
import os
from typing import Any, List

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_bus import Worker, _connected, _recv_json

import turbows.asyncio as fa

from aio_helpers import run

FULL = os.environ.get("TURBOWS_CI_PUBSUB_FULL", "") not in ("", "0")
MESSAGES = 10_000 if FULL else 1_500
CLIENTS = 20 if FULL else 5


def test_redis_killed_mid_run_and_back_after_1s_loses_and_duplicates_nothing(
    redis_server: Any,
) -> None:
    from turbows.pubsub import Bus

    async def main() -> None:
        async with Worker(redis_server) as a, Worker(redis_server) as b:
            clients = [
                await fa.connect(w.uri(), max_queue=4096) for w in (a, b) for _ in range(CLIENTS)
            ]
            await _connected(a, CLIENTS)
            await _connected(b, CLIENTS)
            received: List[List[str]] = [[] for _ in clients]
            total = 2 * MESSAGES

            async def read(i: int) -> None:
                while len(received[i]) < total:
                    received[i].append((await _recv_json(clients[i], 30))["data"])

            readers = [asyncio.ensure_future(read(i)) for i in range(len(clients))]
            half = asyncio.Event()

            async def publisher(name: str) -> None:
                async with Bus(redis_server.url, outbox=MESSAGES) as bus:
                    pending = []
                    for i in range(MESSAGES):
                        pending.append(bus.publish_nowait("news", f"{name}:{i}"))
                        if i == MESSAGES // 2:
                            half.set()
                        if len(pending) >= 100:
                            await asyncio.gather(*pending)
                            pending = []
                        await asyncio.sleep(0)
                    await asyncio.gather(*pending)

            publishers = [asyncio.ensure_future(publisher(n)) for n in ("p1", "p2")]
            await half.wait()
            redis_server.kill()
            await asyncio.sleep(1.0)
            redis_server.start()
            await asyncio.wait_for(asyncio.gather(*publishers), 120)
            await asyncio.wait_for(asyncio.gather(*readers), 120)
            for got in received:
                assert len(got) == total  # nothing more arrived (checked below: no extras)
                assert len(set(got)) == total  # exactly once
                for name in ("p1", "p2"):
                    mine = [int(m.split(":")[1]) for m in got if m.startswith(name + ":")]
                    assert mine == list(range(MESSAGES))  # every one, in order
            for client in clients:
                with pytest.raises(asyncio.TimeoutError):
                    await asyncio.wait_for(client.recv(), 0.05)
                await client.close()

    run(main, timeout=300)


@settings(
    max_examples=20 if FULL else 6,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],  # one Redis, a channel each
)
@given(k=st.integers(min_value=0, max_value=60), extra=st.integers(min_value=0, max_value=30))
def test_a_client_dropping_at_k_resumes_on_the_other_worker_with_exactly_the_rest(
    redis_server: Any, k: int, extra: int
) -> None:
    async def main() -> None:
        async with Worker(redis_server) as a, Worker(redis_server) as b:
            channel = f"prop{os.urandom(4).hex()}"
            first = await fa.connect(a.uri(f"channel={channel}"))
            await _connected(a, 1)
            stop = asyncio.Event()
            published: List[str] = []

            async def publish() -> None:  # publishing goes on during the drop
                while not stop.is_set():
                    published.append(str(await a.bus.publish(channel, str(len(published)))))
                    await asyncio.sleep(0.001)

            task = asyncio.ensure_future(publish())
            got = [await _recv_json(first) for _ in range(k + 1)]
            last = got[-1]["id"]
            await first.close()
            second = await fa.connect(b.uri(f"channel={channel}&since={last}"))
            rest = [await _recv_json(second) for _ in range(extra + 1)]
            stop.set()
            await task
            ids = [g["id"] for g in got + rest]
            assert ids == published[: len(ids)]  # k+1, k+2, ...: no gap, no duplicate
            await second.close()

    run(main, timeout=30)


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
