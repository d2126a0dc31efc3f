"""The issue's fault, resume and worker targets with worker processes started the way users
start them: ``python -m turbows serve busapp:feed --workers 2`` (turbows.asyncio.run: a
parent that forks two workers, each with its own SO_REUSEPORT listener and its own Bus),
against the real redis-server of the fixtures. Clients and publishers run in this process;
the ``?hello=1`` greeting of busapp tells a client which worker process serves it.

Sizes are scaled for CI; TURBOWS_CI_PUBSUB_FULL=1 runs the issue's: 2 publishers x 10,000
messages to 2 workers x 20 clients, 1,000 connections, 20 hypothesis examples."""

from __future__ import annotations

import asyncio
import collections
import json
import os
import select
import signal
import subprocess
import sys
from typing import Any, Dict, Iterator, List, Optional, Tuple

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import turbows.asyncio as fa

from aio_helpers import run

HERE = os.path.dirname(os.path.abspath(__file__))
FULL = os.environ.get("TURBOWS_CI_PUBSUB_FULL", "") not in ("", "0")
MESSAGES = 10_000 if FULL else 2_000  # per publisher
CLIENTS = 20 if FULL else 10  # per worker
CONNECTIONS = 1_000 if FULL else 400

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="workers need fork")


def children(pid: int) -> List[int]:
    """The processes whose parent is ``pid`` (from /proc)."""
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                out.append(int(entry))
    return out


class Served:
    """``python -m turbows serve busapp:feed --workers N --port 0`` on a Redis URL."""

    def __init__(self, redis_url: str, workers: int = 2) -> None:
        env = dict(os.environ, TURBOWS_TEST_REDIS_URL=redis_url)
        command = [
            sys.executable, "-m", "turbows", "serve", "busapp:feed",
            "--workers", str(workers), "--port", "0", "--app-dir", HERE,
            "--no-compression", "--log-level", "warning",
        ]  # fmt: skip
        self.proc = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            env=env,
            text=True,
        )
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], 30)
        line = self.proc.stdout.readline() if ready else ""
        if not line.startswith("serving on "):
            self.stop()
            raise AssertionError(f"no 'serving on' line: {line!r}")
        self.base = line.split()[2]

    def uri(self, query: str) -> str:
        return f"{self.base}feed?{query}"

    def workers(self) -> List[int]:
        return children(self.proc.pid)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(20)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()

    def __enter__(self) -> "Served":
        return self

    def __exit__(self, *exc: Any) -> None:
        assert self.stop() == 0


@pytest.fixture
def served(redis_server: Any) -> Iterator[Served]:
    """Two worker processes on the AOF-always Redis (shared by hypothesis's examples)."""
    with Served(redis_server.url) as s:
        yield s


async def _hello(uri: str) -> Tuple[Any, int]:
    """A connection and the pid of the worker process that serves it. Its queue holds
    what the tests publish: a client whose queue is full stops reading, and would see the
    server's close frame only after the close timeout."""
    ws = await fa.connect(uri, open_timeout=10, max_queue=1 << 16)
    return ws, int(json.loads(await asyncio.wait_for(ws.recv(), 10))["worker"])


async def _on_other_worker(uri: str, not_pid: int) -> Tuple[Any, int]:
    """A connection served by a worker process other than ``not_pid`` (the kernel spreads
    connections by their address: a few tries find one)."""
    for _ in range(200):
        ws, pid = await _hello(uri)
        if pid != not_pid:
            return ws, pid
        ws.abort()
        await ws.wait_closed()
    raise AssertionError("every connection went to the same worker")


async def _balanced(uri: str, per_worker: int) -> Dict[int, List[Any]]:
    """``per_worker`` connections on each of the two workers."""
    by_pid: Dict[int, List[Any]] = {}
    for _ in range(100 * per_worker):
        ws, pid = await _hello(uri)
        mine = by_pid.setdefault(pid, [])
        if len(mine) < per_worker:
            mine.append(ws)
        else:
            await ws.close()
        if len(by_pid) == 2 and all(len(v) == per_worker for v in by_pid.values()):
            return by_pid
    raise AssertionError(f"could not place {per_worker} connections on each of 2 workers")


async def _marker(url: str, channel: str) -> str:
    """Publish a first message; clients that connect with ``since=`` its id get every later
    one, however long their subscription takes to start."""
    from turbows.pubsub import Bus

    async with Bus(url) as bus:
        return str(await bus.publish(channel, "marker"))


def _publisher(url: str, channel: str, name: str, half: Optional[asyncio.Event]) -> Any:
    from turbows.pubsub import Bus

    async def publish() -> None:
        async with Bus(url, outbox=MESSAGES) as bus:
            pending = []
            for i in range(MESSAGES):
                pending.append(bus.publish_nowait(channel, f"{name}:{i}"))
                if half is not None and i == MESSAGES // 2:
                    half.set()
                if len(pending) >= 100:
                    await asyncio.gather(*pending)
                    pending = []
                await asyncio.sleep(0)
            await asyncio.gather(*pending)

    return asyncio.ensure_future(publish())


def _per_publisher(got: List[str], name: str) -> List[int]:
    return [int(m.split(":")[1]) for m in got if m.startswith(name + ":")]


class _Run:
    """What the clients of :func:`_kill_redis_mid_run` got."""

    def __init__(self, clients: List[Any], workers: List[int]) -> None:
        self.clients = clients
        self.workers = workers
        self.received: List[List[str]] = [[] for _ in clients]
        self.codes: List[Optional[int]] = [None] * len(clients)  # how each one was closed
        self.closed_at: List[float] = [0.0] * len(clients)
        self.back = 0.0  # when Redis answered again


async def _kill_redis_mid_run(redis: Any, served: Served, channel: str) -> _Run:
    """2 publishers x MESSAGES to 2 workers x CLIENTS clients; ``kill -9`` of Redis once
    half is published, started again 1 s later. Each client reads until it got every
    message or was closed."""
    marker = await _marker(redis.url, channel)
    uri = served.uri(f"channel={channel}&since={marker}&hello=1")
    by_pid = await _balanced(uri, CLIENTS)
    out = _Run([ws for group in by_pid.values() for ws in group], sorted(by_pid))
    loop = asyncio.get_running_loop()

    async def read(i: int) -> None:
        client = out.clients[i]
        try:
            while len(out.received[i]) < 2 * MESSAGES:
                message = await asyncio.wait_for(client.recv(), 60)
                out.received[i].append(json.loads(message)["data"])
        except fa.ClosedError as exc:
            out.codes[i] = exc.code

    async def closing(i: int) -> None:
        await out.clients[i].wait_closed()
        out.closed_at[i] = loop.time()

    readers = [asyncio.ensure_future(read(i)) for i in range(len(out.clients))]
    watchers = [asyncio.ensure_future(closing(i)) for i in range(len(out.clients))]
    half = asyncio.Event()
    publishers = [_publisher(redis.url, channel, n, half) for n in ("p1", "p2")]
    await half.wait()
    redis.kill()
    await asyncio.sleep(1.0)
    redis.start()
    out.back = loop.time()
    await asyncio.wait_for(asyncio.gather(*readers), 300)
    await asyncio.wait_for(asyncio.gather(*publishers), 300)
    for client in out.clients:
        if client.close_code is None:  # and nothing more arrived
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(client.recv(), 0.05)
            await client.close()
    await asyncio.gather(*watchers)
    return out


def test_redis_killed_mid_run_and_back_after_1s_two_worker_processes_lose_and_repeat_nothing(
    redis_server: Any, served: Served
) -> None:
    async def main() -> None:
        run_ = await _kill_redis_mid_run(redis_server, served, "kill9")
        for got, code in zip(run_.received, run_.codes):
            assert code is None  # never closed
            assert len(got) == 2 * MESSAGES
            assert len(set(got)) == 2 * MESSAGES  # exactly once
            for name in ("p1", "p2"):
                assert _per_publisher(got, name) == list(range(MESSAGES))  # all, in order
        assert sorted(served.workers()) == run_.workers  # the same two processes throughout

    run(main, timeout=900 if FULL else 240)


def test_redis_without_persistence_resets_every_client_of_both_worker_processes_within_2s(
    volatile_redis: Any,
) -> None:
    from turbows.pubsub import RESET

    with Served(volatile_redis.url) as served:

        async def main() -> None:
            run_ = await _kill_redis_mid_run(volatile_redis, served, "volatile")
            for got, code, at in zip(run_.received, run_.codes, run_.closed_at):
                assert code == RESET
                assert at - run_.back < 2.0, at - run_.back  # within 2 s of Redis returning
                assert got  # it was receiving before the loss
                for name in ("p1", "p2"):  # never a silent gap: a prefix, then the reset
                    mine = _per_publisher(got, name)
                    assert mine == list(range(len(mine)))

        run(main, timeout=300)


@settings(
    max_examples=20 if FULL else 10,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],  # one server, a channel each
)
@given(k=st.integers(min_value=0, max_value=60), extra=st.integers(min_value=0, max_value=30))
def test_a_client_dropping_at_k_resumes_on_the_other_worker_process_with_exactly_the_rest(
    redis_server: Any, served: Served, k: int, extra: int
) -> None:
    from turbows.pubsub import Bus

    async def main() -> None:
        channel = f"prop{os.urandom(4).hex()}"
        marker = await _marker(redis_server.url, channel)
        async with Bus(redis_server.url) as bus:
            first, pid = await _hello(served.uri(f"channel={channel}&since={marker}&hello=1"))
            stop = asyncio.Event()
            published: List[str] = []

            async def publish() -> None:  # publishing goes on during the drop
                while not stop.is_set():
                    published.append(str(await bus.publish(channel, str(len(published)))))
                    await asyncio.sleep(0.001)

            task = asyncio.ensure_future(publish())
            try:
                got = [json.loads(await asyncio.wait_for(first.recv(), 10)) for _ in range(k + 1)]
                last = got[-1]["id"]
                await first.close()
                second, other = await _on_other_worker(
                    served.uri(f"channel={channel}&since={last}&hello=1"), pid
                )
                rest = [
                    json.loads(await asyncio.wait_for(second.recv(), 10)) for _ in range(extra + 1)
                ]
            finally:
                stop.set()
                await task
            ids = [g["id"] for g in got + rest]
            assert ids == published[: len(ids)]  # k+1, k+2, ...: no gap, no duplicate
            assert other != pid and {pid, other} <= set(served.workers())
            await second.close()

    run(main, timeout=60)


@pytest.mark.parametrize("kind", ["trimmed", "epoch", "future", "garbage"])
def test_a_trimmed_or_foreign_id_gets_a_reset_from_either_worker_process(
    redis_server: Any, served: Served, kind: str
) -> None:
    from turbows.pubsub import RESET, Bus

    async def main() -> None:
        channel = f"trim{kind}"
        async with Bus(redis_server.url, maxlen=10) as bus:
            ids = await asyncio.gather(*[bus.publish_nowait(channel, "x" * 10) for _ in range(600)])
        since = {
            "trimmed": str(ids[0]),
            "epoch": f"{ids[0].epoch + 1}-{ids[-1].seq}",
            "future": f"{ids[0].epoch}-{ids[-1].seq + 5}",
            "garbage": "not-an-id",
        }[kind]
        codes: Dict[int, int] = {}
        for _ in range(200):
            ws, pid = await _hello(served.uri(f"channel={channel}&since={since}&hello=1"))
            with pytest.raises(fa.ClosedError) as info:
                await asyncio.wait_for(ws.recv(), 10)
            codes[pid] = info.value.code
            if len(codes) == 2:
                break
        assert codes == dict.fromkeys(served.workers(), RESET)

    run(main, timeout=60)


def test_1000_connections_spread_a_killed_worker_is_replaced_within_1s_its_clients_resume(
    redis_server: Any, served: Served
) -> None:
    from turbows.pubsub import Bus

    channel = "spread"
    before = 20

    async def main() -> None:
        marker = await _marker(redis_server.url, channel)
        uri = served.uri(f"channel={channel}&since={marker}&hello=1")
        drops: List[List[int]] = [[] for _ in range(CONNECTIONS)]
        clients = [
            fa.ReconnectingClient(
                uri,
                resume=True,
                policy=fa.RetryPolicy(initial_delay=0.05, max_delay=0.2),
                on_disconnect=lambda exc, i=i: drops[i].append(exc.code),
                open_timeout=20,
            )
            for i in range(CONNECTIONS)
        ]
        pids: List[List[int]] = [[] for _ in clients]
        data: List[List[str]] = [[] for _ in clients]
        changed = asyncio.Event()

        async def read(i: int) -> None:
            while True:
                message = json.loads(await clients[i].recv())
                if "worker" in message:
                    pids[i].append(message["worker"])
                else:
                    data[i].append(message["data"])
                changed.set()

        async def until(condition: Any, timeout: float) -> None:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + timeout
            while not condition():
                changed.clear()
                await asyncio.wait_for(changed.wait(), max(0.01, deadline - loop.time()))

        for client in clients:
            client.start()
        readers = [asyncio.ensure_future(read(i)) for i in range(len(clients))]
        try:
            await until(lambda: all(pids), 60)
            spread = collections.Counter(p[0] for p in pids)
            assert sorted(spread) == sorted(served.workers()), spread
            for count in spread.values():
                assert 0.4 * CONNECTIONS <= count <= 0.6 * CONNECTIONS, spread
            async with Bus(redis_server.url) as bus:
                for i in range(before):
                    await bus.publish(channel, f"m{i}")
                await until(lambda: all(len(d) == before for d in data), 30)
                victim = min(spread)
                os.kill(victim, signal.SIGKILL)
                loop = asyncio.get_running_loop()
                killed = loop.time()
                # Published while its clients are away: they get these when they resume.
                after = [bus.publish_nowait(channel, f"m{i}") for i in range(before, 2 * before)]

                async def replacement() -> float:  # a new worker process answers
                    while True:
                        try:
                            ws, pid = await _hello(served.uri("channel=probe&hello=1"))
                        except (OSError, fa.WebSocketClosed, fa.HandshakeError):
                            continue
                        await ws.close()
                        if pid not in spread:
                            return loop.time() - killed
                        await asyncio.sleep(0.01)

                replaced = await asyncio.wait_for(replacement(), 10)
                await asyncio.gather(*after)
                await until(lambda: all(len(d) >= 2 * before for d in data), 60)
            assert replaced < 1.0, replaced
            expected = [f"m{i}" for i in range(2 * before)]
            for i in range(len(clients)):
                assert data[i] == expected  # each one once, in order
                if pids[i][0] == victim:  # dropped (1006), resumed on a live worker
                    assert drops[i] == [1006] and len(pids[i]) == 2 and pids[i][1] != victim
                else:
                    assert drops[i] == [] and len(pids[i]) == 1
            assert victim not in served.workers() and len(served.workers()) == 2
        finally:
            for task in readers:
                task.cancel()
            await asyncio.gather(*readers, return_exceptions=True)
            await asyncio.gather(*[client.close() for client in clients])

    run(main, timeout=240 if FULL else 120)
