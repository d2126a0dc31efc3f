"""turbows.pubsub.Bus against a real redis-server: ids, delivery, resume, resets, outbox,
idempotency, health."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from typing import Any, Dict, List, Optional, Tuple

import pytest

import turbows.asyncio as fa

from aio_helpers import run


def _bus(server: Any, **kwargs: Any) -> Any:
    from turbows.pubsub import Bus

    return Bus(server.url, **kwargs)


class Worker:
    """A turbows server whose connections subscribe to ``?channel=`` (default ``news``) on
    its own Bus, resuming from ``?since=``: what one worker process runs."""

    def __init__(self, redis: Any, **bus_kwargs: Any) -> None:
        self.bus = _bus(redis, **bus_kwargs)
        self.server: Any = None

    async def handler(self, ws: Any) -> None:
        from urllib.parse import parse_qs, urlsplit

        query = parse_qs(urlsplit(ws.request.path).query)
        channels = query.get("channel", ["news"])
        await self.bus.subscribe(ws, channels)
        await ws.wait_closed()

    async def __aenter__(self) -> "Worker":
        await self.bus.start()
        self.server = await fa.serve(self.handler, "127.0.0.1", 0, **self.serve_kwargs)
        return self

    serve_kwargs: Dict[str, Any] = {}  # noqa: RUF012 - set per instance by the tests

    async def __aexit__(self, *exc: Any) -> None:
        await self.server.shutdown(timeout=2)
        await self.bus.close()

    def uri(self, query: str = "") -> str:
        return f"ws://127.0.0.1:{self.server.port}/feed{('?' + query) if query else ''}"


async def _recv_json(ws: Any, timeout: float = 5.0) -> Dict[str, Any]:
    return json.loads(await asyncio.wait_for(ws.recv(), timeout))  # type: ignore[no-any-return]


async def _connected(worker: Worker, count: int) -> None:
    for _ in range(500):
        if sum(len(m) for m in worker.bus._subscribers.values()) >= count:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("subscriptions did not start")


def test_published_messages_reach_subscribers_with_increasing_ids(redis_server: Any) -> None:
    async def main() -> None:
        async with Worker(redis_server) as worker:
            clients = [await fa.connect(worker.uri()) for _ in range(3)]
            await _connected(worker, 3)
            ids = [await worker.bus.publish("news", f"n{i}") for i in range(50)]
            assert [i.seq for i in ids] == sorted(i.seq for i in ids)
            assert len({i.epoch for i in ids}) == 1
            for client in clients:
                got = [await _recv_json(client) for _ in range(50)]
                assert [g["data"] for g in got] == [f"n{i}" for i in range(50)]
                assert [g["id"] for g in got] == [str(i) for i in ids]
                assert {g["channel"] for g in got} == {"news"}
                await client.close()

    run(main, timeout=30)


def test_resume_on_another_worker_gets_every_later_message_once_then_live(
    redis_server: Any,
) -> None:
    async def main() -> None:
        async with Worker(redis_server) as a, Worker(redis_server) as b:
            first = await fa.connect(a.uri())
            await _connected(a, 1)
            ids = [await a.bus.publish("news", f"m{i}") for i in range(30)]
            got = [await _recv_json(first) for _ in range(10)]
            await first.close()
            last = got[-1]["id"]
            assert last == str(ids[9])
            ids += [await a.bus.publish("news", f"m{i}") for i in range(30, 40)]
            second = await fa.connect(b.uri(f"since={last}"))
            ids += [await b.bus.publish("news", f"m{i}") for i in range(40, 45)]
            rest = [await _recv_json(second) for _ in range(35)]
            assert [r["data"] for r in rest] == [f"m{i}" for i in range(10, 45)]
            assert [r["id"] for r in rest] == [str(i) for i in ids[10:]]
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(second.recv(), 0.3)  # nothing twice
            await second.close()

    run(main, timeout=30)


@pytest.mark.parametrize("kind", ["trimmed", "future", "epoch", "garbage"])
def test_an_id_history_cannot_honour_gets_a_reset(redis_server: Any, kind: str) -> None:
    from turbows.pubsub import RESET

    async def main() -> None:
        async with Worker(redis_server, maxlen=10) as worker:
            ids = [await worker.bus.publish("news", "x" * 10) for _ in range(600)]
            since = {
                "trimmed": str(ids[0]),
                "future": f"{ids[0].epoch}-{ids[-1].seq + 5}",
                "epoch": f"{ids[0].epoch + 1}-{ids[-1].seq}",
                "garbage": "not-an-id",
            }[kind]
            client = await fa.connect(worker.uri(f"since={since}"))
            with pytest.raises(fa.ClosedError) as info:
                await asyncio.wait_for(client.recv(), 5)
            assert info.value.code == RESET
            # the latest id is still fine
            ok = await fa.connect(worker.uri(f"since={ids[-1]}"))
            await _connected(worker, 1)
            new = await worker.bus.publish("news", "fresh")
            assert (await _recv_json(ok))["id"] == str(new)
            await ok.close()

    run(main, timeout=30)


def test_idempotency_keys_make_retries_duplicate_free(redis_server: Any) -> None:
    async def main() -> None:
        async with Worker(redis_server) as worker:
            client = await fa.connect(worker.uri())
            await _connected(worker, 1)
            one = await worker.bus.publish("news", "once", key="order-17")
            two = await worker.bus.publish("news", "once", key="order-17")
            three = await worker.bus.publish("news", "other")
            assert one == two and three.seq > one.seq
            got = [await _recv_json(client) for _ in range(2)]
            assert [g["data"] for g in got] == ["once", "other"]
            await client.close()

    run(main, timeout=30)


def test_outbox_holds_publishes_while_redis_is_down_and_raises_when_full(
    redis_server: Any,
) -> None:
    from turbows.pubsub import OutboxFull

    async def main() -> None:
        async with Worker(redis_server, outbox=20) as worker:
            client = await fa.connect(worker.uri())
            await _connected(worker, 1)
            await worker.bus.publish("news", "before")
            redis_server.kill()
            futures = [worker.bus.publish_nowait("news", f"held{i}") for i in range(20)]
            with pytest.raises(OutboxFull):
                worker.bus.publish_nowait("news", "one too many")
            await asyncio.sleep(0.5)
            assert not worker.bus.healthy
            assert worker.bus.health()["redis"] == "unreachable"
            redis_server.start()
            ids = await asyncio.wait_for(asyncio.gather(*futures), 10)
            assert [i.seq for i in ids] == sorted(i.seq for i in ids)
            got = [await _recv_json(client, 10) for _ in range(21)]
            assert [g["data"] for g in got] == ["before"] + [f"held{i}" for i in range(20)]
            for _ in range(100):
                if worker.bus.healthy:
                    break
                await asyncio.sleep(0.05)
            assert worker.bus.healthy
            await client.close()

    run(main, timeout=40)


def test_health_check_answers_200_then_503_while_redis_is_down(redis_server: Any) -> None:
    async def main() -> None:
        worker = Worker(redis_server)
        worker.serve_kwargs = {"process_request": worker.bus.health_check()}
        async with worker:
            client = await fa.connect(worker.uri())
            await _connected(worker, 1)
            await worker.bus.publish("news", "x")

            async def status() -> Tuple[int, Dict[str, Any]]:
                reader, writer = await asyncio.open_connection("127.0.0.1", worker.server.port)
                writer.write(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
                data = await reader.read()
                writer.close()
                head, _, body = data.partition(b"\r\n\r\n")
                return int(head.split()[1]), json.loads(body)

            code, body = await status()
            assert code == 200 and body["redis"] == "ok"
            redis_server.kill()
            for _ in range(100):
                code, body = await status()
                if code == 503:
                    break
                await asyncio.sleep(0.05)
            assert code == 503 and body["redis"] == "unreachable"
            redis_server.start()
            for _ in range(100):
                code, body = await status()
                if code == 200:
                    break
                await asyncio.sleep(0.05)
            assert code == 200
            await client.close()

    run(main, timeout=40)


def test_redis_losing_its_data_resets_every_subscriber_within_2_s(volatile_redis: Any) -> None:
    from turbows.pubsub import RESET

    async def main() -> None:
        async with Worker(volatile_redis) as a, Worker(volatile_redis) as b:
            clients = [await fa.connect(w.uri()) for w in (a, b, a, b)]
            await _connected(a, 2)
            await _connected(b, 2)
            await a.bus.publish("news", "before")
            for client in clients:
                assert (await _recv_json(client))["data"] == "before"
            volatile_redis.kill()
            await asyncio.sleep(1.0)
            volatile_redis.start()
            back = asyncio.get_running_loop().time()
            for client in clients:
                with pytest.raises(fa.ClosedError) as info:
                    await asyncio.wait_for(client.recv(), 5)
                assert info.value.code == RESET
            assert asyncio.get_running_loop().time() - back < 2.0

    run(main, timeout=40)


@pytest.mark.parametrize("policy", ["later", "close"])
def test_a_slow_consumer_stays_within_its_limit_and_then_resumes_without_loss(
    redis_server: Any, policy: str
) -> None:
    from turbows.pubsub import SLOW_CONSUMER

    TOTAL = 10_000  # x 1 KiB: more than the kernel's socket buffers hold

    async def main() -> None:
        limit = 64 * 1024
        # lag_timeout: long enough that the reading client never lags that long on a loaded machine
        worker = Worker(redis_server, policy=policy, lag_timeout=2.0)
        worker.serve_kwargs = {"write_limit": limit}
        async with worker:
            fast = await fa.connect(worker.uri())
            slow = await fa.connect(worker.uri(), max_queue=1)
            await _connected(worker, 2)
            slow.transport.pause_reading()  # stops reading: the server's buffer fills
            (slow_ws,) = [
                ws
                for ws in worker.server.connections
                if ws.remote_address[1] == slow.local_address[1]
            ]
            payload = "k" * 1024
            peak = 0
            ids: List[Any] = []

            async def read_all() -> List[Dict[str, Any]]:
                return [await _recv_json(fast, 30) for _ in range(TOTAL)]

            reading = asyncio.ensure_future(read_all())
            for chunk in range(0, TOTAL, 250):
                futures = [
                    worker.bus.publish_nowait("news", f"{i:05d}{payload}")
                    for i in range(chunk, chunk + 250)
                ]
                ids += await asyncio.gather(*futures)
                transport = slow_ws.transport
                if transport is not None:
                    peak = max(peak, transport.get_write_buffer_size())
            got = await reading
            assert [g["id"] for g in got] == [str(i) for i in ids]
            assert peak <= limit + 1100, peak
            if policy == "later":
                # still open: it gets everything, in order, once it reads again
                assert slow_ws._conn._close_sent is None
                slow.transport.resume_reading()
                received = [await _recv_json(slow, 20) for _ in range(TOTAL)]
                assert [g["id"] for g in received] == [str(i) for i in ids]
                await slow.close()
                await fast.close()
                return
            for _ in range(200):  # closed once it has lagged for lag_timeout
                if slow_ws._conn._close_sent is not None:
                    break
                await asyncio.sleep(0.05)
            assert slow_ws._conn._close_sent is not None
            assert slow_ws._conn._close_sent[0] == SLOW_CONSUMER
            # the slow client reads what reached it, then resumes from its last id
            slow.transport.resume_reading()
            received = []
            with pytest.raises(fa.ClosedError) as info:
                while True:
                    received.append(await _recv_json(slow, 10))
            assert info.value.code == SLOW_CONSUMER
            last: Optional[str] = received[-1]["id"] if received else None
            again = await fa.connect(worker.uri(f"since={last}" if last else ""))
            rest = [await _recv_json(again, 10) for _ in range(TOTAL - len(received))]
            assert [g["id"] for g in received + rest] == [str(i) for i in ids]
            await again.close()
            await fast.close()

    run(main, timeout=60)


def test_a_channel_rewound_behind_the_reader_resets_its_subscribers(redis_server: Any) -> None:
    """An acknowledged write lost (appendfsync everysec and a crash) rewinds the channel's
    sequence behind what subscribers already got: they are reset, not left waiting for ids
    that will be reused (simulated: the counter set back while Redis restarts)."""
    import redis.asyncio as aioredis

    from turbows.pubsub import RESET

    async def main() -> None:
        async with Worker(redis_server) as worker:
            client = await fa.connect(worker.uri())
            await _connected(worker, 1)
            for i in range(5):
                await worker.bus.publish("news", f"n{i}")
            assert [(await _recv_json(client))["data"] for _ in range(5)] == [
                f"n{i}" for i in range(5)
            ]
            redis_server.kill()
            await asyncio.sleep(0.3)
            redis_server.start()
            raw = aioredis.Redis.from_url(redis_server.url)
            await raw.set("turbows:n:news", 2)  # before the reader is back
            await raw.xdel("turbows:s:news", "3-0", "4-0", "5-0")  # the lost writes
            await raw.aclose()
            with pytest.raises(fa.ClosedError) as info:
                await asyncio.wait_for(client.recv(), 10)
            assert info.value.code == RESET

    run(main, timeout=30)


def test_an_entry_with_other_fields_is_delivered_by_its_field_d_live_and_on_resume(
    redis_server: Any,
) -> None:
    """The reader takes the bus's own entries (``[b"d", data]``) without a lookup; an entry
    written by hand with more fields is still delivered by its field ``d``."""

    async def main() -> None:
        async with Worker(redis_server) as worker:
            bus = worker.bus
            client = await fa.connect(worker.uri())
            await _connected(worker, 1)
            first = await bus.publish("news", "before")
            seq = await bus._publisher.incr(bus._seq_key("news"))
            fields = {"x": "1", "d": "by hand", "z": "2"}
            await bus._publisher.xadd(bus._stream("news"), fields, id=f"{seq}-0")
            got = [await _recv_json(client) for _ in range(2)]
            assert [g["data"] for g in got] == ["before", "by hand"]
            assert got[1]["id"] == f"{first.epoch}-{seq}"
            again = await fa.connect(worker.uri(f"since={first}"))
            replayed = await _recv_json(again)
            assert (replayed["data"], replayed["id"]) == ("by hand", got[1]["id"])
            await client.close()
            await again.close()

    run(main, timeout=30)


def test_a_redis_that_stops_answering_is_reported_then_reading_resumes(
    redis_server: Any,
) -> None:
    """Redis frozen (SIGSTOP: the socket stays open, nothing answers): the reader's XREAD
    times out, health says unreachable, and once Redis answers again delivery goes on."""

    async def main() -> None:
        async with Worker(redis_server) as worker:
            client = await fa.connect(worker.uri())
            await _connected(worker, 1)
            await worker.bus.publish("news", "before")
            assert (await _recv_json(client))["data"] == "before"
            os.kill(redis_server.pid, signal.SIGSTOP)
            try:
                for _ in range(300):  # the reader's timeout is 5 s
                    if not worker.bus.healthy:
                        break
                    await asyncio.sleep(0.05)
                assert worker.bus.health()["redis"] == "unreachable"
            finally:
                os.kill(redis_server.pid, signal.SIGCONT)
            await worker.bus.publish("news", "after")
            assert (await _recv_json(client, timeout=10))["data"] == "after"
            await client.close()

    run(main, timeout=40)


def test_close_ends_even_when_a_redis_call_swallowed_the_cancellation(
    redis_server: Any,
) -> None:
    """redis-py can swallow the cancellation of a task caught in its first requests to a
    fresh server (seen about once in 20 rounds of a new redis-server, start, publish,
    close): close() then waited for ever on the reader, left waiting for a subscriber, and
    took its own caller's cancellation for the reader's. Here the reader's first request
    swallows it every time."""

    async def main() -> None:
        bus = _bus(redis_server)

        async def swallowing() -> None:
            try:
                await asyncio.sleep(30)
            except asyncio.CancelledError:
                pass  # as redis-py did

        bus._check_epoch = swallowing  # type: ignore[method-assign]
        await bus.start()
        await bus.publish("news", "x")
        loop = asyncio.get_running_loop()
        began = loop.time()
        closing = asyncio.ensure_future(bus.close())
        done, _ = await asyncio.wait([closing], timeout=5)
        assert done, "close() did not end"
        assert loop.time() - began < 1.0

    run(main, timeout=30)


def test_many_subscribers_at_once_wait_for_a_redis_connection_instead_of_failing(
    redis_server: Any,
) -> None:
    """A reconnection storm (a worker's clients all resuming on another one): every
    subscription's catch-up needs a Redis connection at once. redis-py's pool refused
    the 101st ("Too many connections"), which the bus took for Redis being down: a
    warning, an unhealthy worker and backoff for those subscribers. They now wait for
    one of a bounded set of connections."""

    async def main() -> None:
        async with Worker(redis_server) as worker:
            first = await worker.bus.publish("news", "m0")
            clients = await asyncio.gather(
                *[fa.connect(worker.uri(f"since={first}")) for _ in range(250)]
            )
            await _connected(worker, len(clients))
            await worker.bus.publish("news", "m1")
            for client in clients:
                assert (await _recv_json(client, 20))["data"] == "m1"
            assert worker.bus._last_error is None and worker.bus.healthy
            await asyncio.gather(*[client.close() for client in clients])

    run(main, timeout=60)
