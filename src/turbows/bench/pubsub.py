"""The pubsub benchmarks (issue 19): turbows.pubsub through a real ``redis-server``.

Needs ``turbows[redis]`` and ``redis-server`` on the PATH (else the cases are skipped). Redis
runs on a Unix socket in a temporary directory; two worker processes
(:mod:`turbows.bench._pubsub_server`) serve 50 connections each, subscribed to one channel
(``with_ids=False``); a publisher process publishes on command; this process reads the 100
connections with one ``epoll`` loop.

- ``pubsub-2w50c/asyncio``, 64 B: deliveries per second from the publisher's burst of N
  messages (one ``publish_many``) until the last byte reached every connection. Rows: ``turbows C`` (through Redis,
  AOF ``appendfsync always``), and ``in-process Fanout (reference)``: the fan-out suite's
  server, 100 connections in one process, no Redis, in the same run.
- ``pubsub-latency/asyncio``, 64 B: the 99th percentile of publish-to-receive latency, 500
  messages per second for 2 s (1 s with ``--quick``) to the 100 connections across the two
  workers (a cost: lower is better), in milliseconds.
- ``pubsub-ingest/asyncio``, 64 B: a worker's CPU time per message (its process's CPU clock)
  with one connection: what taking a message from Redis costs (``XREAD``, framing, one
  write).
- ``pubsub-slow-consumer/asyncio``, 1 KiB: the 99th percentile of publish-to-receive latency
  of 2 workers x 20 reading connections while 10,000 messages are published at 2,000 per
  second (one sample with ``--quick``), with one more connection (on the first worker) that
  stops reading (row ``turbows C, one client not reading``), against the same run without it
  (row ``turbows C``), the samples interleaved; the target is the ratio (<= 1.2x). The
  non-reading connection is opened anew for each sample; once the sample is taken it reads
  again and must get every message of the sample, in order (the default policy,
  ``"later"``, catches it up from Redis), else the case fails; the case fails too if the
  kernel's socket buffers held all of it (then no policy was at work).
- ``pubsub-publish/asyncio``, 64 B: publishes per second of one pipelined publisher
  (``publish_many``), with Redis's AOF ``appendfsync always``, ``everysec``, and no
  persistence: the price of zero loss; and with ``appendfsync always``, one
  ``publish_nowait`` and its future per message.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

from . import _echo_client, _peers, fanout
from ._redis import RedisServer
from ._runner import TURBOWS_C, Case, Loop
from .e2e import cpu_seconds

__all__ = ["BENCHMARKS", "IN_PROCESS", "cases", "stop"]

SIZE = 64
FRAME = 2 + SIZE
PER_WORKER = 50
IN_PROCESS = "in-process Fanout (reference)"
BENCHMARKS = (
    "pubsub-2w50c/asyncio",
    "pubsub-latency/asyncio",
    "pubsub-publish/asyncio",
    "pubsub-ingest/asyncio",
    "pubsub-slow-consumer/asyncio",
)
SLOW = TURBOWS_C + ", one client not reading"
SLOW_SIZE = 1024
SLOW_FRAME = 4 + SLOW_SIZE  # 126, then a 16-bit length
SLOW_RATE = 2000
SLOW_PER_WORKER = 20
_PERSISTENCE = {
    TURBOWS_C: (True, "always", "burst"),
    TURBOWS_C + ", AOF everysec": (True, "everysec", "burst"),
    TURBOWS_C + ", no persistence": (False, "no", "burst"),
    TURBOWS_C + ", a future per message": (True, "always", "burst-each"),
}


def _env() -> dict[str, str]:
    env = dict(os.environ)
    src = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [src, env.get("PYTHONPATH")]))
    return env


class _Process:
    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "turbows.bench._pubsub_server", *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=_env(),
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().decode()
        if not line.startswith("READY "):
            self.stop()
            raise _peers.BenchCheckError(f"{args[0]} did not start: {line!r}")
        self.port = int(line.split()[1])

    def command(self, text: str) -> None:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(text.encode() + b"\n")
        self.proc.stdin.flush()

    def done(self) -> None:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if line != b"DONE\n":
            raise _peers.BenchCheckError(f"publisher: {line!r}")

    def stop(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class _Setup:
    """Redis, its publisher, and ``workers`` workers with ``per_worker`` reading connections
    each."""

    def __init__(self, persistent: bool, fsync: str, workers: int, per_worker: int) -> None:
        self.directory = Path(tempfile.mkdtemp(prefix="twsbench-"))
        self.redis = RedisServer(self.directory, persistent, fsync)
        self.redis.start()
        self.processes: list[_Process] = []
        self.publisher = self._spawn("publisher", self.redis.url)
        self.readers: fanout.Readers | None = None
        self.workers: list[_Process] = []
        if workers:
            socks = []
            for _ in range(workers):
                worker = self._spawn("worker", self.redis.url)
                self.workers.append(worker)
                endpoint = _echo_client.Endpoint(worker.port, True)
                socks += _echo_client.open_idle(endpoint, per_worker)
            self.readers = fanout.Readers(socks)
            time.sleep(0.5)  # the subscriptions start
            self.burst(3)  # check once: every connection gets the bytes published
            for sock in socks:
                sock.setblocking(True)
                data = b""
                while len(data) < 3 * FRAME:
                    data += sock.recv(65536)
                sock.setblocking(False)
                if data != (bytes([0x81, SIZE]) + b"p" * SIZE) * 3:
                    raise _peers.BenchCheckError(f"wrong delivery: {data[:20]!r}")

    def _spawn(self, *args: str) -> _Process:
        process = _Process(*args)
        self.processes.append(process)
        return process

    def burst(self, n: int, command: str = "burst") -> None:
        self.publisher.command(f"{command} {n}")
        self.publisher.done()

    def stop(self) -> None:
        if self.readers is not None:
            for sock in self.readers.socks:
                sock.close()
        for process in self.processes:
            process.stop()
        self.redis.kill()
        shutil.rmtree(self.directory, ignore_errors=True)


_setups: dict[tuple[bool, str, int, int], _Setup] = {}


def _setup(persistent: bool, fsync: str, workers: int = 2, per_worker: int = PER_WORKER) -> _Setup:
    key = (persistent, fsync, workers, per_worker)
    if key not in _setups:
        import atexit

        _setups[key] = _Setup(persistent, fsync, workers, per_worker)
        atexit.register(stop)
    return _setups[key]


def stop() -> None:
    """Stop every process the suite started."""
    while _setups:
        _setups.popitem()[1].stop()


def _bursts(workers: int = 2, per_worker: int = PER_WORKER) -> Callable[[], Loop]:
    """A loop that publishes ``n`` messages in one burst and reads them on every connection
    of ``workers`` x ``per_worker``."""

    def prepare() -> Loop:
        setup = _setup(True, "always", workers, per_worker)
        readers = setup.readers
        assert readers is not None

        def loop(n: int) -> None:
            setup.publisher.command(f"burst {n}")
            readers.receive(n * FRAME, timeout=30.0)
            setup.publisher.done()

        return loop

    return prepare


def _ingest_clock() -> float:
    return cpu_seconds(_setup(True, "always", 1, 1).workers[0].proc.pid)


def _in_process() -> Loop:
    return fanout._prepare("fanout")()


def _publish(persistent: bool, fsync: str, command: str) -> Callable[[], Loop]:
    def prepare() -> Loop:
        setup = _setup(persistent, fsync, 0, 0)
        return lambda n: setup.burst(n, command)

    return prepare


def _latency(seconds: float) -> Callable[[], float]:
    def measure() -> float:
        setup = _setup(True, "always")
        readers = setup.readers
        assert readers is not None
        count = int(500 * seconds)
        setup.publisher.command(f"paced {count} 500")
        got = readers.frames(count, FRAME)
        setup.publisher.done()
        lags = sorted(at - int(payload) / 1e9 for at, payload in got)
        return lags[int(len(lags) * 0.99) - 1] * 1000

    return measure


def _check_stamps(payloads: list[bytes], count: int) -> None:
    """Every message of the paced run, once, in order: increasing time stamps."""
    stamps = [int(p) for p in payloads]
    if len(stamps) != count or any(b <= a for a, b in zip(stamps, stamps[1:])):
        raise _peers.BenchCheckError(
            f"the non-reading client got {len(stamps)} of {count} messages, or out of order"
        )


def _read_frames(
    sock: socket.socket, count: int, frame: int, header: int, timeout: float
) -> list[bytes]:
    """Read ``count`` frames of ``frame`` bytes (``header`` of them the frame's header)
    from ``sock``; return their payloads."""
    sock.settimeout(timeout)
    data = bytearray()
    try:
        while len(data) < count * frame:
            chunk = sock.recv(1 << 20)
            if not chunk:
                raise _peers.BenchCheckError("the server closed the non-reading client")
            data += chunk
    except socket.timeout:
        raise _peers.BenchCheckError(
            f"the non-reading client got {len(data) // frame} of {count} messages"
        ) from None
    return [bytes(data[i + header : i + frame]) for i in range(0, len(data), frame)]


def _kernel_queued(sock: socket.socket, server_port: int) -> int:
    """Bytes the kernel holds for ``sock``'s connection to 127.0.0.1:``server_port``: in
    its receive queue and in the server side's send queue (from ``/proc/net/tcp``)."""
    mine = sock.getsockname()[1]
    total = 0
    with open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            fields = line.split()
            local = int(fields[1].rsplit(":", 1)[1], 16)
            remote = int(fields[2].rsplit(":", 1)[1], 16)
            tx, rx = (int(x, 16) for x in fields[4].split(":"))
            if local == mine and remote == server_port:
                total += rx
            elif local == server_port and remote == mine:
                total += tx
    return total


def _slow_consumer(count: int, with_slow: bool) -> Callable[[], float]:
    def measure() -> float:
        setup = _setup(True, "always", 2, SLOW_PER_WORKER)
        readers = setup.readers
        assert readers is not None
        slow = None
        if with_slow:
            endpoint = _echo_client.Endpoint(setup.workers[0].port, True)
            (slow,) = _echo_client.open_idle(endpoint, 1)
        # One message to every connection until the new one got one: it is subscribed
        # before the paced run (then it stops reading).
        for attempt in range(50):
            setup.publisher.command("burst 1")
            readers.receive(FRAME, timeout=30.0)
            setup.publisher.done()
            if slow is None:
                break
            try:
                _read_frames(slow, 1, FRAME, 2, 0.2)
                break
            except _peers.BenchCheckError:
                if attempt == 49:
                    raise
        try:
            setup.publisher.command(f"paced {count} {SLOW_RATE} {SLOW_SIZE}")
            got = readers.frames(count, SLOW_FRAME, 60.0, 4)
            setup.publisher.done()
            if slow is not None:
                # More than the kernel's buffers hold was published to it: the rest was
                # the slow-consumer policy's to handle.
                queued = _kernel_queued(slow, setup.workers[0].port)
                if queued >= count * SLOW_FRAME:
                    raise _peers.BenchCheckError(
                        f"the kernel's buffers held all {queued} bytes: publish more"
                    )
                # It reads again: everything, once, in order.
                _check_stamps(_read_frames(slow, count, SLOW_FRAME, 4, 60.0), count)
        finally:
            if slow is not None:
                slow.close()
        lags = sorted(at - int(payload) / 1e9 for at, payload in got)
        return lags[int(len(lags) * 0.99) - 1] * 1000

    return measure


def cases(quick: bool = False) -> list[Case]:
    """The pubsub cases (Redis and the processes start when the first one runs)."""
    why = ""
    if shutil.which("redis-server") is None:
        why = "redis-server is not installed"
    elif importlib.util.find_spec("redis") is None:
        why = "the redis extra is not installed (pip install 'turbows[redis]')"
    elif sys.platform != "linux" or importlib.util.find_spec("turbows._speedups") is None:
        why = "needs the compiled extension and Linux (epoll)"
    out = [
        Case(
            BENCHMARKS[0],
            SIZE,
            TURBOWS_C,
            "turbows",
            "deliveries",
            2 * PER_WORKER,
            None if why else _bursts(),
            why or "2 workers x 50 connections through Redis (AOF always), with_ids=False",
            min_time=0.2,
        ),
        Case(
            BENCHMARKS[0],
            SIZE,
            IN_PROCESS,
            "reference",
            "deliveries",
            fanout.CONNECTIONS,
            None if why else _in_process,
            why or "the fan-out suite's server: 100 connections in one process, no Redis",
            min_time=0.2,
        ),
        Case(
            BENCHMARKS[1],
            SIZE,
            TURBOWS_C,
            "turbows",
            "ms",
            1,
            None,
            why or "p99 publish-to-receive, 500 msg/s to 2 workers x 50 connections",
            measure=None if why else _latency(1.0 if quick else 2.0),
            max_samples=3,
        ),
    ]
    out.append(
        Case(
            BENCHMARKS[3],
            SIZE,
            TURBOWS_C,
            "turbows",
            "cpu-messages",
            1,
            None if why else _bursts(1, 1),
            why or "a worker's CPU time per message, one connection (XREAD to write)",
            clock=None if why else _ingest_clock,
            min_time=0.2,
        )
    )
    slow_count = 10_000  # x 1 KiB: more than the kernel buffers of a connection hold
    for name, with_slow in ((TURBOWS_C, False), (SLOW, True)):
        out.append(
            Case(
                BENCHMARKS[4],
                SLOW_SIZE,
                name,
                "turbows",
                "ms",
                1,
                None,
                why
                or (
                    f"p99 publish-to-receive of 2 workers x {SLOW_PER_WORKER} reading clients,"
                    f" {slow_count} messages at {SLOW_RATE}/s"
                    + (", one more client not reading" if with_slow else "")
                ),
                measure=None if why else _slow_consumer(slow_count, with_slow),
                max_samples=1 if quick else 5,
            )
        )
    for name, (persistent, fsync, command) in _PERSISTENCE.items():
        out.append(
            Case(
                BENCHMARKS[2],
                SIZE,
                name,
                "turbows",
                "messages",
                1,
                None if why else _publish(persistent, fsync, command),
                why
                or f"one pipelined publisher ({command}), Redis appendfsync {fsync}",
                min_time=0.2,
            )
        )
    return out
