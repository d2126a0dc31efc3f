"""Publishing through turbows.pubsub.Bus against a real redis-server: a batch whose answer is
lost is retried without storing anything twice, Redis keeps no key per message, and one
message's failure does not fail or break the numbering of the others."""

from __future__ import annotations

import asyncio
import os
import tempfile
from typing import Any, List

import pytest
import redis.asyncio as aioredis

from aio_helpers import run


class AnswerDropper:
    """A Unix-socket relay in front of Redis that passes everything through, except that the
    first time Redis runs a client's ``EVALSHA`` (not answering ``NOSCRIPT``) it closes the
    client's connection instead of passing the answer on: the answer is lost after the work
    is done."""

    def __init__(self, redis_socket: str) -> None:
        self.redis_socket = redis_socket
        self.path = os.path.join(tempfile.mkdtemp(prefix="twsrelay-"), "relay.sock")
        self.dropped = 0
        self._server: Any = None
        self._sessions: "set[asyncio.Task[Any]]" = set()

    async def __aenter__(self) -> "AnswerDropper":
        self._server = await asyncio.start_unix_server(self._relay, self.path)
        return self

    async def __aexit__(self, *exc: Any) -> None:
        self._server.close()
        for task in self._sessions:
            task.cancel()
        await asyncio.gather(*self._sessions, return_exceptions=True)
        await self._server.wait_closed()

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_unix_connection(self.redis_socket)
        drop = asyncio.Event()

        async def upstream() -> None:
            while True:
                data = await reader.read(65536)
                if not data:
                    break
                if not self.dropped and b"EVALSHA" in data:
                    self.dropped += 1
                    drop.set()
                up_writer.write(data)
                await up_writer.drain()
            up_writer.close()

        async def downstream() -> None:
            while True:
                data = await up_reader.read(65536)
                if not data:
                    break
                if drop.is_set() and data.startswith(b"-NOSCRIPT"):
                    drop.clear()  # not run: the client loads the script and sends it again
                    self.dropped -= 1
                elif drop.is_set():
                    await asyncio.sleep(0.2)  # let Redis finish the script, then lose its answer
                    writer.close()
                    up_writer.close()
                    return
                writer.write(data)
                await writer.drain()
            writer.close()

        session = asyncio.ensure_future(
            asyncio.gather(upstream(), downstream(), return_exceptions=True)
        )
        self._sessions.add(session)
        try:
            await session
        finally:
            self._sessions.discard(session)
            writer.close()
            up_writer.close()


def test_a_batch_whose_answer_is_lost_is_retried_without_duplicates(redis_server: Any) -> None:
    from turbows.pubsub import Bus

    async def main() -> None:
        async with AnswerDropper(redis_server.socket) as relay:
            async with Bus(f"unix://{relay.path}", max_delay=0.1) as bus:
                futures = [bus.publish_nowait("news", f"m{i}") for i in range(300)]
                ids = await asyncio.wait_for(asyncio.gather(*futures), 20)
            assert relay.dropped == 1
        assert [i.seq for i in ids] == list(range(1, 301))
        assert len({i.epoch for i in ids}) == 1
        client = aioredis.Redis(unix_socket_path=redis_server.socket)
        entries = await client.xrange("turbows:s:news")
        await client.aclose()
        assert [e[1][b"d"].decode() for e in entries] == [f"m{i}" for i in range(300)]
        assert [e[0] for e in entries] == [f"{i}-0".encode() for i in range(1, 301)]

    run(main, timeout=40)


def test_publishing_without_keys_leaves_no_key_per_message_in_redis(redis_server: Any) -> None:
    from turbows.pubsub import Bus

    async def main() -> None:
        async with Bus(redis_server.url) as bus:
            for _ in range(10):
                await asyncio.gather(*[bus.publish_nowait("news", "x") for _ in range(500)])
            await bus.publish("news", "keyed", key="order-1")
        client = aioredis.Redis(unix_socket_path=redis_server.socket)
        keys = sorted(k.decode() for k in await client.keys("*"))
        await client.aclose()
        # The epoch, the bus's batch key, the channel's counter and stream, the one key given.
        assert len(keys) == 5, keys
        assert [k for k in keys if k.startswith("turbows:k:")] == ["turbows:k:order-1"]

    run(main, timeout=30)


def test_one_failing_message_fails_alone_and_leaves_the_numbering_contiguous(
    redis_server: Any,
) -> None:
    from redis.exceptions import ResponseError

    from turbows.pubsub import Bus

    async def main() -> None:
        client = aioredis.Redis(unix_socket_path=redis_server.socket)
        await client.set("turbows:s:broken", "not a stream")  # XADD answers WRONGTYPE
        async with Bus(redis_server.url) as bus:
            await bus.publish("news", "first")
            futures = [
                bus.publish_nowait("news", "a"),
                bus.publish_nowait("broken", "b"),
                bus.publish_nowait("news", "c", key="k"),
                bus.publish_nowait("news", "c again", key="k"),  # the same key: stored once
                bus.publish_nowait("broken", "d"),
            ]
            results: List[Any] = await asyncio.gather(*futures, return_exceptions=True)
            assert [r.seq for r in (results[0], results[2], results[3])] == [2, 3, 3]
            for failed in (results[1], results[4]):
                assert isinstance(failed, ResponseError) and "WRONGTYPE" in str(failed)
            assert (await bus.publish("news", "last")).seq == 4
            assert await client.get("turbows:n:broken") in (None, b"0")
            await client.delete("turbows:s:broken")
            assert (await bus.publish("broken", "works now")).seq == 1
        entries = await client.xrange("turbows:s:news")
        await client.aclose()
        assert [e[1][b"d"] for e in entries] == [b"first", b"a", b"c", b"last"]

    run(main, timeout=30)


def test_an_idempotency_ttl_redis_cannot_keep_is_refused() -> None:
    from turbows.pubsub import Bus

    for ttl in (0, 0.0001, -1):
        with pytest.raises(ValueError, match="idempotency_ttl"):
            Bus("redis://127.0.0.1:1/0", idempotency_ttl=ttl)
