"""The end-to-end benchmarks: echo servers over 127.0.0.1 (issue 5, "Speed it must reach").

Each server runs in its own process pinned to core 0 (``os.sched_setaffinity``), with the
default asyncio loop or with uvloop; the client is this process, pinned to core 1 while the
suite runs, and is the same for every server (:mod:`turbows.bench._echo_client`: plain sockets,
pre-built masked frames). Its loops are compiled (:mod:`turbows.bench._loadgen`, Linux: epoll
and send/recv from C, no Python per message) where that extension is built, so that the client
does not cap the fastest servers (with the Python loops, the raw TCP echo on uvloop stops at
about the client's own speed); ``TURBOWS_BENCH_PY_CLIENT=1`` selects the Python loops, and the
report's header says which client ran. The physical reference is a raw TCP echo: an asyncio
Protocol that writes back what it reads, on the same loop, driven by the same client with the
same bytes.

Benchmarks (``LOOP`` is ``asyncio`` or ``uvloop``):
    ``e2e-rr/LOOP``: one connection, request/response of a text message (32 B, 1 KiB, 64 KiB);
    k messages/s and microseconds per round trip. With server and client on separate cores,
    a round trip includes waking each side's idle core, which on a virtual machine can cost
    more than either side's work (about 80 us per round trip on the 2-vCPU VM these figures
    come from) and then hides the differences between servers; hence:
    ``e2e-rr-1core/LOOP``: the same, with the server pinned to the client's core: the two
    take turns on it, so that a round trip is the sum of their work (no idle core to wake).
    ``e2e-50conn/LOOP``: 50 connections echoing 32 B messages, one in flight on each;
    messages/s.
    ``e2e-50conn-cpu/LOOP``: the same load, timed by the server process's CPU clock (the sum
    of its threads' on-CPU time from ``/proc/<pid>/task/*/schedstat``, in ns): the server's
    CPU time per message.
    ``e2e-uvicorn/uvloop`` and ``e2e-uvicorn-cpu/uvloop``: the same 50-connection load on
    uvicorn (uvloop, ``--http httptools``) running an ASGI echo app, with turbows's WebSocket
    class (``turbows.integrations.uvicorn:WebSocketProtocol``, named turbows C here) and with
    uvicorn's own ``websockets-sansio`` and ``wsproto`` classes: messages/s, and the server's
    CPU time per message (issue 15).
    ``e2e-idle-rss/LOOP``: growth of the server's resident memory (``VmRSS``) per open idle
    connection, over 2,000 connections (1,000 with ``--quick``), after a warm-up connection.

Servers are started once per implementation and loop, shared by the benchmarks, and stopped by
:func:`stop_servers` (also at exit; and each stops by itself when this process goes away).
"""

from __future__ import annotations

import atexit
import importlib.util
import os
import resource
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Callable

from . import _echo_client, _peers
from ._runner import TURBOWS_C, TURBOWS_PURE, Case, Loop

__all__ = ["BENCHMARKS", "RAW_TCP", "E2EOptions", "cases", "stop_servers"]

RAW_TCP = "raw TCP echo (reference)"

LOOPS = ("asyncio", "uvloop")
RR_SIZES = (32, 1024, 64 * 1024)
CONCURRENCY = 50
CONC_SIZE = 32
SERVER_CORE = 0
CLIENT_CORE = 1

UVICORN_LOOP = "uvloop"
UVICORN_BENCHMARKS = (f"e2e-uvicorn/{UVICORN_LOOP}", f"e2e-uvicorn-cpu/{UVICORN_LOOP}")

BENCHMARKS = (
    *(
        f"{name}/{loop}"
        for loop in LOOPS
        for name in ("e2e-rr", "e2e-rr-1core", "e2e-50conn", "e2e-50conn-cpu", "e2e-idle-rss")
    ),
    *UVICORN_BENCHMARKS,
)


@dataclass(frozen=True)
class E2EOptions:
    """What the end-to-end suite builds.

    Attributes:
        idle_connections: connections held open for the idle-memory figure.
        min_time: the shortest sample of a throughput case, in seconds.
        idle_loops: the loops the idle-memory figure is taken on.
    """

    idle_connections: int = 2000
    min_time: float = 0.2
    idle_loops: tuple[str, ...] = LOOPS


# --------------------------------------------------------------------------------------------
# Server processes.


class ServerProcess:
    """One echo server in a child process (see :mod:`turbows.bench._echo_servers`)."""

    def __init__(self, impl: str, loop: str, pure: bool = False, core: int = SERVER_CORE) -> None:
        env = dict(os.environ)
        if pure:
            env["TURBOWS_NO_EXTENSIONS"] = "1"
        src = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [src, env.get("PYTHONPATH")]))
        if not _can_pin():
            core = -1
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "turbows.bench._echo_servers", impl, loop, str(core)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().decode()
        if not line.startswith("READY "):
            self.stop()
            raise _peers.BenchCheckError(f"{impl} server on {loop} did not start: {line!r}")
        self.port = int(line.split()[1])
        self.pid = self.proc.pid
        self._warm_up(impl != "raw")

    def _warm_up(self, websocket: bool) -> None:
        """Echo on one throwaway connection, then close it, before anything is measured.

        Measured here: on a fresh server, the connections opened while its very first one is
        still open cost about 3x the server CPU per round trip (17 us instead of 6 us for the
        raw TCP echo, kernel time included) for as long as they live; connections opened
        after the first one closed do not. Whatever the cause, no figure should depend on
        which benchmark happened to open the first connection.
        """
        first = _echo_client.RoundTrip(_echo_client.Endpoint(self.port, websocket), 32)
        first(200)
        first.close()

    def cpu_time(self) -> float:
        """Seconds the server's threads have spent on a CPU (nanosecond resolution)."""
        return cpu_seconds(self.pid)

    def rss(self) -> int:
        """The server's resident set size, in bytes."""
        with open(f"/proc/{self.pid}/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        raise _peers.BenchCheckError("no VmRSS in /proc/<pid>/status")

    def stop(self) -> None:
        """Close the server's stdin (it exits by itself), then make sure it is gone."""
        if self.proc.stdin is not None and not self.proc.stdin.closed:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def cpu_seconds(pid: int) -> float:
    """Seconds the threads of process ``pid`` have spent on a CPU (from
    ``/proc/<pid>/task/*/schedstat``, nanosecond resolution)."""
    total = 0
    base = f"/proc/{pid}/task"
    for tid in os.listdir(base):
        try:
            with open(f"{base}/{tid}/schedstat", "rb") as f:
                total += int(f.read().split()[0])
        except (FileNotFoundError, ProcessLookupError):
            pass  # a thread that just ended
    return total / 1e9


_servers: dict[tuple[str, str, int], ServerProcess] = {}
_saved_affinity: list[set[int]] = []


def _can_pin() -> bool:
    """True if the server and the client can each have their own core.

    Asked of the CPUs this process had before :func:`_pin_client` narrowed them to the
    client's core: a server started after that must still be pinned to its own core (else it
    inherits the client's one core, and the two share it).
    """
    if not hasattr(os, "sched_setaffinity"):
        return False
    cpus = _saved_affinity[0] if _saved_affinity else os.sched_getaffinity(0)
    return {SERVER_CORE, CLIENT_CORE} <= cpus


def _pin_client() -> None:
    """Pin this process to the client core for as long as the suite runs."""
    if not _saved_affinity and _can_pin():
        _saved_affinity.append(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {CLIENT_CORE})


def _shared_server(impl: str, loop: str, core: int = SERVER_CORE) -> ServerProcess:
    key = (impl, loop, core)
    server = _servers.get(key)
    if server is None or server.proc.poll() is not None:
        name, pure = (impl[:-5], True) if impl.endswith("-pure") else (impl, False)
        server = _servers[key] = ServerProcess(name, loop, pure, core)
    return server


def stop_servers() -> None:
    """Stop every shared server and give this process its CPUs back."""
    while _servers:
        _, server = _servers.popitem()
        server.stop()
    if _saved_affinity:
        os.sched_setaffinity(0, _saved_affinity.pop())


atexit.register(stop_servers)


# --------------------------------------------------------------------------------------------
# Cases.


def _implementations() -> list[tuple[str, str, str, str]]:
    """``(name in the table, server key, kind, why skipped or "")`` for every server."""
    out = [(RAW_TCP, "raw", "reference", "")]
    for name, key, kind, module in (
        (TURBOWS_C, "turbows", "turbows", "turbows.asyncio"),
        (TURBOWS_C + ", on_message", "turbows-cb", "turbows", "turbows.asyncio"),
        (TURBOWS_C + ", loop transport", "turbows-loop", "turbows", "turbows.asyncio"),
        (TURBOWS_C + ", on_message, loop transport", "turbows-cb-loop", "turbows", "turbows.asyncio"),
        (TURBOWS_PURE, "turbows-pure", "pure", "turbows.asyncio"),
        ("picows", "picows", "peer", "picows"),
        ("aiohttp", "aiohttp", "peer", "aiohttp.web"),
        ("websockets", "websockets", "peer", "websockets.asyncio.server"),
    ):
        try:
            found = importlib.util.find_spec(module) is not None
        except ImportError:
            found = False
        if found and key.startswith("turbows") and key != "turbows-pure":
            found = importlib.util.find_spec("turbows._speedups") is not None
        out.append((name, key, kind, "" if found else f"{module} is not available"))
    return out


_NOTES = {
    "raw": "asyncio Protocol writing back each chunk it reads; same client, same frames",
    "turbows": "turbows.asyncio.serve (default transport), handler: async for msg in ws:"
    " await ws.send(msg)",
    "turbows-cb": "the same server, callback mode: ws.on_message = ws.send_nowait",
    "turbows-loop": "the handler server on the event loop's transport (fast_transport=False)",
    "turbows-cb-loop": "callback mode (on_message = send_nowait) on the event loop's transport",
    "turbows-pure": (
        "the same server with TURBOWS_NO_EXTENSIONS=1 (no compiled code: the pure-Python"
        " codec on the event loop's transport)"
    ),
    "picows": "ws_create_server, listener sends back frame.get_payload_as_utf8_text()",
    "aiohttp": "web.WebSocketResponse, async for msg in ws: await ws.send_str(msg.data)",
    "websockets": "websockets.asyncio.server.serve, async for msg in ws: await ws.send(msg)",
    "uvicorn-turbows": "uvicorn --ws turbows.integrations.uvicorn:WebSocketProtocol"
    " --http httptools, ASGI echo app (receive, send back)",
    "uvicorn-websockets-sansio": "uvicorn --ws websockets-sansio --http httptools, the same app",
    "uvicorn-wsproto": "uvicorn --ws wsproto --http httptools, the same app",
}


def _uvicorn_implementations() -> list[tuple[str, str, str, str]]:
    """The uvicorn servers: ``(name in the table, server key, kind, why skipped or "")``."""
    out = []
    for name, key, kind, modules in (
        (TURBOWS_C, "uvicorn-turbows", "turbows", ("turbows._speedups",)),
        ("uvicorn websockets-sansio", "uvicorn-websockets-sansio", "peer", ("websockets",)),
        ("uvicorn wsproto", "uvicorn-wsproto", "peer", ("wsproto",)),
    ):
        why = ""
        for module in ("uvicorn", "httptools", "uvloop", *modules):
            try:
                found = importlib.util.find_spec(module) is not None
            except ImportError:
                found = False
            if not found:
                why = f"{module} is not available"
                break
        out.append((name, key, kind, why))
    return out


def _rr_prepare(key: str, loop: str, size: int, core: int = SERVER_CORE) -> Callable[[], Loop]:
    def prepare() -> Loop:
        _pin_client()
        server = _shared_server(key, loop, core)
        return _echo_client.RoundTrip(_echo_client.Endpoint(server.port, key != "raw"), size)

    return prepare


def _conc_prepare(key: str, loop: str) -> Callable[[], Loop]:
    def prepare() -> Loop:
        _pin_client()
        server = _shared_server(key, loop)
        endpoint = _echo_client.Endpoint(server.port, key != "raw")
        return _echo_client.Concurrent(endpoint, CONC_SIZE, CONCURRENCY)

    return prepare


def _cpu_clock(key: str, loop: str) -> Callable[[], float]:
    return lambda: _shared_server(key, loop).cpu_time()


def _idle_measure(key: str, loop: str, count: int) -> Callable[[], float]:
    def measure() -> float:
        _pin_client()
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        need = count + 256
        if soft < need:
            resource.setrlimit(resource.RLIMIT_NOFILE, (min(need, hard), hard))
        # A fresh server, so that no earlier benchmark's buffers count.
        server = ServerProcess(key.removesuffix("-pure"), loop, key.endswith("-pure"))
        try:
            endpoint = _echo_client.Endpoint(server.port, key != "raw")
            warm = _echo_client.RoundTrip(endpoint, CONC_SIZE)
            warm(10)
            time.sleep(0.2)
            before = server.rss()
            socks = _echo_client.open_idle(endpoint, count)
            time.sleep(0.5)
            after = server.rss()
            for sock in socks:
                _echo_client.hang_up(sock, endpoint.websocket)
            warm.close()
        finally:
            server.stop()
        return (after - before) / count

    return measure


def cases(options: E2EOptions) -> list[Case]:
    """Build every case of the end-to-end suite (servers start when their first case runs)."""
    impls = _implementations()
    have_uvloop = importlib.util.find_spec("uvloop") is not None
    out: list[Case] = []
    for loop in LOOPS:
        missing = "" if loop == "asyncio" or have_uvloop else "uvloop is not installed"
        groups: list[tuple[str, int, str]] = [(f"e2e-rr/{loop}", s, "messages") for s in RR_SIZES]
        groups += [(f"e2e-rr-1core/{loop}", s, "messages") for s in RR_SIZES]
        groups.append((f"e2e-50conn/{loop}", CONC_SIZE, "messages"))
        groups.append((f"e2e-50conn-cpu/{loop}", CONC_SIZE, "cpu-messages"))
        for bench, size, unit in groups:
            for name, key, kind, why in impls:
                skip = why or missing
                prepare: Callable[[], Loop] | None = None
                clock: Callable[[], float] | None = None
                if not skip and bench.startswith("e2e-rr/"):
                    prepare = _rr_prepare(key, loop, size)
                elif not skip and bench.startswith("e2e-rr-1core/"):
                    prepare = _rr_prepare(key, loop, size, CLIENT_CORE)
                elif not skip:
                    prepare = _conc_prepare(key, loop)
                if unit == "cpu-messages":
                    clock = _cpu_clock(key, loop)
                out.append(
                    Case(
                        bench,
                        size,
                        name,
                        kind,
                        unit,
                        1,
                        prepare,
                        skip or _NOTES[key],
                        clock=clock,
                        min_time=options.min_time,
                    )
                )
        if loop == UVICORN_LOOP:
            for bench, unit in zip(UVICORN_BENCHMARKS, ("messages", "cpu-messages")):
                for name, key, kind, why in _uvicorn_implementations():
                    ready = not why
                    out.append(
                        Case(
                            bench,
                            CONC_SIZE,
                            name,
                            kind,
                            unit,
                            1,
                            _conc_prepare(key, loop) if ready else None,
                            why or _NOTES[key],
                            clock=_cpu_clock(key, loop) if ready and unit != "messages" else None,
                            min_time=options.min_time,
                        )
                    )
        if loop not in options.idle_loops:
            continue
        for name, key, kind, why in impls:
            skip = why or missing
            measure = None if skip else _idle_measure(key, loop, options.idle_connections)
            out.append(
                Case(
                    f"e2e-idle-rss/{loop}",
                    0,
                    name,
                    kind,
                    "B/conn",
                    1,
                    None,
                    skip or _NOTES[key],
                    measure=measure,
                    max_samples=1,
                )
            )
    return out
