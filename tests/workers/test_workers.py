"""``python -m turbows serve module:handler --workers N`` (turbows.asyncio.run): worker
processes, spreading, replacement of a dead worker, graceful stop, rolling restart, and the
portable shared-socket mode. Real processes, real signals."""

from __future__ import annotations

import asyncio
import collections
import os
import signal
import subprocess
import sys
import time
from typing import Any, Iterator, List, Tuple

import pytest

import turbows.asyncio as fa

HERE = os.path.dirname(os.path.abspath(__file__))
FULL = os.environ.get("TURBOWS_CI_PUBSUB_FULL", "") not in ("", "0")

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="workers need fork")


class Served:
    """``python -m turbows serve wsapp:whoami`` in a child process."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "turbows", "serve", "wsapp:whoami", "--port", "0", *args],
            cwd=HERE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line.startswith("serving on "):
            self.proc.kill()
            raise AssertionError(f"no 'serving on' line: {line!r} {self.proc.stderr.read()}")
        self.uri = line.split()[2]

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(20)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()


@pytest.fixture
def served(request: pytest.FixtureRequest) -> Iterator[Any]:
    started: List[Served] = []

    def start(*args: str) -> Served:
        s = Served(*args)
        started.append(s)
        return s

    yield start
    for s in started:
        s.stop()


async def _who(uri: str) -> Tuple[Any, int]:
    ws = await fa.connect(uri, open_timeout=5)
    return ws, int(await asyncio.wait_for(ws.recv(), 5))


async def _spread(uri: str, count: int) -> "collections.Counter[int]":
    pids: collections.Counter[int] = collections.Counter()
    for start in range(0, count, 100):
        pairs = await asyncio.gather(*[_who(uri) for _ in range(min(100, count - start))])
        for ws, pid in pairs:
            pids[pid] += 1
        await asyncio.gather(*[ws.close() for ws, _ in pairs])
    return pids


def test_connections_spread_over_two_reuse_port_workers(served: Any) -> None:
    server = served("--workers", "2")
    count = 1000 if FULL else 300
    pids = asyncio.run(_spread(server.uri, count))
    assert len(pids) == 2, pids
    for n in pids.values():
        assert 0.4 * count <= n <= 0.6 * count, pids
    assert server.stop() == 0


def test_a_killed_worker_is_replaced_within_a_second(served: Any) -> None:
    server = served("--workers", "2")

    async def main() -> float:
        pids = await _spread(server.uri, 40)
        assert len(pids) == 2
        victim = next(iter(pids))
        ws, pid = await _who(server.uri)
        os.kill(victim, signal.SIGKILL)
        killed = time.monotonic()
        seen = set()
        while time.monotonic() - killed < 5:
            try:
                other, pid = await _who(server.uri)
            except (OSError, fa.WebSocketClosed, fa.HandshakeError, asyncio.TimeoutError):
                continue
            await other.close()
            if pid not in pids:
                seen.add(pid)
                break
            await asyncio.sleep(0.01)
        assert seen, "no new worker answered"
        await ws.close()
        return time.monotonic() - killed

    elapsed = asyncio.run(main())
    assert elapsed < 1.0, elapsed


def test_sigterm_sends_1001_to_every_client_and_exits_0(served: Any) -> None:
    server = served("--workers", "2")

    async def main() -> None:
        pairs = [await _who(server.uri) for _ in range(10)]
        server.proc.send_signal(signal.SIGTERM)
        for ws, _ in pairs:
            with pytest.raises(fa.ClosedOK):
                await asyncio.wait_for(ws.recv(), 10)
            assert ws.close_code == 1001

    asyncio.run(main())
    assert server.proc.wait(20) == 0


def test_sighup_restarts_every_worker_while_serving(served: Any) -> None:
    server = served("--workers", "2")

    async def main() -> None:
        before = await _spread(server.uri, 40)
        ws, _ = await _who(server.uri)
        server.proc.send_signal(signal.SIGHUP)
        with pytest.raises(fa.ClosedOK):
            await asyncio.wait_for(ws.recv(), 15)
        assert ws.close_code == 1001
        deadline = time.monotonic() + 15
        after: "collections.Counter[int]" = collections.Counter()
        while time.monotonic() < deadline:
            try:
                after = await _spread(server.uri, 40)
            except (OSError, fa.HandshakeError):
                # A connection in the accept queue of a worker that closes its listener is
                # reset (the SO_REUSEPORT caveat; net.ipv4.tcp_migrate_req=1 avoids it).
                continue
            if len(after) == 2 and not set(after) & set(before):
                break
            await asyncio.sleep(0.1)
        assert len(after) == 2 and not set(after) & set(before), (before, after)

    asyncio.run(main())
    assert server.stop() == 0


def test_the_shared_socket_mode_serves_from_every_worker(served: Any) -> None:
    server = served("--workers", "2", "--shared-socket")

    async def main() -> None:
        pids: collections.Counter[int] = collections.Counter()
        for _ in range(20):  # which worker accepts is up to the kernel's wake-ups
            pids += await _spread(server.uri, 50)
            if len(pids) == 2:
                break
        assert len(pids) == 2, pids

    asyncio.run(main())
    assert server.stop() == 0


def test_a_bad_handler_is_a_usage_error() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "turbows", "serve", "wsapp:missing", "--port", "0"],
        cwd=HERE,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 2 and "has no missing" in proc.stderr
