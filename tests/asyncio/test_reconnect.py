"""Reconnection against servers that drop, refuse (503 + Retry-After) and reject (403)."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from typing import Any, List

import pytest

import turbows
import turbows.asyncio as fa

from aio_helpers import echo, free_port, run, uri

FAST = dict(initial_delay=0.01, factor=2.0, max_delay=0.05, jitter=0.1)


def test_backoff_delays_grow_are_capped_and_jittered() -> None:
    policy = fa.RetryPolicy(initial_delay=1.0, factor=2.0, max_delay=5.0, jitter=0.2)
    for level, base in [(1, 1.0), (2, 2.0), (3, 4.0), (4, 5.0), (10, 5.0)]:
        delays = {policy.delay(level) for _ in range(50)}
        assert all(base * 0.8 <= d <= base * 1.2 for d in delays)
        assert len(delays) > 1  # jittered
    rejected = fa.HandshakeRejected(503, turbows._http.Headers([("Retry-After", "3")]))
    assert all(3.0 <= policy.delay(1, rejected) <= 3.6 for _ in range(20))


def closed(code: int, reason: str = "") -> fa.WebSocketClosed:
    return fa.WebSocketClosed.from_event(turbows.ConnectionClosed(code, reason, code != 1006))


def rejected(status: int) -> fa.HandshakeRejected:
    return fa.HandshakeRejected(status, turbows._http.Headers())


@pytest.mark.parametrize(
    "error, retry",
    [
        # A deploy, a restart, a crash, an overloaded server: come back.
        *[(closed(code), True) for code in (1001, 1006, 1011, 1012, 1013, 1014)],
        # Anything else the RFC or IANA defines but does not forbid again: retry.
        *[(closed(code), True) for code in (1005, 1015, 3000, 3999)],
        # A normal close, and what would only fail the same way again: stop.
        *[(closed(code), False) for code in (1000, 1002, 1003, 1007, 1008, 1009, 1010)],
        # The application's own codes go to the callback; without one: stop.
        *[(closed(code), False) for code in (4000, 4001, 4999)],
        *[(rejected(status), True) for status in (408, 425, 429, 500, 502, 503, 504)],
        *[(rejected(status), False) for status in (400, 401, 403, 404, 426, 301)],
        (ConnectionRefusedError(), True),
        (fa.OpenTimeout(), True),
        (fa.HandshakeFailed("not a WebSocket answer"), True),
        (ValueError(), False),
    ],
    ids=repr,
)
def test_decision_table_row(error: BaseException, retry: bool) -> None:
    assert fa.default_should_retry(error) is retry


def test_the_callback_overrides_the_table_and_none_keeps_it() -> None:
    override = fa.RetryPolicy(
        should_retry=lambda e: True if getattr(e, "code", 0) == 4001 else None
    )
    assert override.decide(closed(4001))
    assert not override.decide(closed(4002))
    assert not override.decide(closed(1000)) and override.decide(closed(1001))


def test_parse_retry_after() -> None:
    assert fa.parse_retry_after("120") == 120.0
    assert fa.parse_retry_after(None) is None
    assert fa.parse_retry_after("soon") is None
    assert fa.parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0


def test_async_for_reconnects_after_the_server_drops() -> None:
    connections = 0

    async def dropper(ws: fa.ServerWebSocket) -> None:
        nonlocal connections
        connections += 1
        await ws.send(f"hello {connections}")
        if connections < 3:
            ws.transport.abort()  # 1006 for the client: retry
        else:
            await ws.close(1000)  # normal close: stop

    async def main() -> None:
        attempts: List[fa.Attempt] = []
        async with fa.serve(dropper, "127.0.0.1", 0) as server:
            greetings = []
            policy = fa.RetryPolicy(**FAST, on_attempt=attempts.append)
            async for ws in fa.connect(uri(server), reconnect=policy):
                greetings.append(await ws.recv())
                await ws.wait_closed()
            assert greetings == ["hello 1", "hello 2", "hello 3"]
        assert [a.error is None for a in attempts] == [True, False, False]
        assert all(a.delay > 0 for a in attempts[1:])
        assert isinstance(attempts[1].error, fa.ClosedError) and attempts[1].error.code == 1006

    run(main)


def test_503_with_retry_after_is_honoured_then_connects(caplog: Any) -> None:
    refusals = 2

    def hook(request: turbows.Request) -> Any:
        nonlocal refusals
        if refusals:
            refusals -= 1
            return fa.Reject(503, [("Retry-After", "1")], b"busy")
        return None

    async def main() -> None:
        attempts: List[fa.Attempt] = []
        loop = asyncio.get_running_loop()
        async with fa.serve(echo, "127.0.0.1", 0, process_request=hook) as server:
            policy = fa.RetryPolicy(**FAST, on_attempt=attempts.append)
            start = loop.time()
            async for ws in fa.connect(uri(server), reconnect=policy):
                elapsed = loop.time() - start
                await ws.send("through")
                assert await ws.recv() == "through"
                break
            await ws.close()
        assert elapsed >= 2.0  # two Retry-After: 1 waits
        assert [round(a.delay) for a in attempts] == [0, 1, 1]
        assert all(a.error.status == 503 for a in attempts[1:])  # type: ignore[union-attr]

    with caplog.at_level(logging.INFO, logger="turbows"):
        run(main)
    assert sum("reconnecting" in r.getMessage() for r in caplog.records) == 2


def test_403_stops_at_once_unless_the_callback_says_otherwise() -> None:
    calls = 0

    def hook(request: turbows.Request) -> Any:
        nonlocal calls
        calls += 1
        return fa.Reject(403, body=b"no") if calls < 3 else None

    async def main() -> None:
        async with fa.serve(echo, "127.0.0.1", 0, process_request=hook) as server:
            with pytest.raises(fa.HandshakeRejected) as info:
                async for _ in fa.connect(uri(server), reconnect=fa.RetryPolicy(**FAST)):
                    pass
            assert info.value.status == 403 and calls == 1
            policy = fa.RetryPolicy(
                **FAST, should_retry=lambda e: True if getattr(e, "status", 0) == 403 else None
            )
            async for ws in fa.connect(uri(server), reconnect=policy):
                await ws.close()
            assert calls == 3

    run(main)


def test_max_attempts_then_raise() -> None:
    async def main() -> None:
        attempts: List[fa.Attempt] = []
        policy = fa.RetryPolicy(**FAST, max_attempts=4, on_attempt=attempts.append)
        with pytest.raises(fa.RetriesExhausted) as info:
            async for _ in fa.connect(f"ws://127.0.0.1:{free_port()}/", reconnect=policy):
                pass
        assert info.value.attempts == 4 and isinstance(info.value.__cause__, OSError)
        assert len(attempts) == 4

    run(main)


def test_reconnecting_client_queues_sends_and_restores_state() -> None:
    received: List[Any] = []
    connections = 0

    async def handler(ws: fa.ServerWebSocket) -> None:
        nonlocal connections
        connections += 1
        mine = connections
        async for message in ws:
            received.append(message)
            if message == "drop" and mine == 1:
                ws.transport.abort()
                return
            await ws.send(f"ack {message}")

    async def main() -> None:
        hooks: List[int] = []

        async def on_connect(ws: fa.ClientWebSocket) -> None:
            hooks.append(len(hooks) + 1)
            await ws.send(f"subscribe since={len(received)}")

        async with fa.serve(handler, "127.0.0.1", 0) as server:
            client = fa.ReconnectingClient(
                uri(server), policy=fa.RetryPolicy(**FAST), on_connect=on_connect, max_pending=3
            )
            async with client:
                # Sent before any connection exists: queued, flushed in order after on_connect.
                await client.send("a")
                await client.send("b")
                assert client.pending == 2
                assert await client.recv() == "ack subscribe since=0"
                assert await client.recv() == "ack a"
                assert await client.recv() == "ack b"
                await client.send("drop")
                # The server dropped: the client reconnects and resubscribes by itself.
                assert (await client.recv()).startswith("ack subscribe since=")
                await client.send("c")
                assert await client.recv() == "ack c"
                assert client.connected and client.state == "open"
            assert client.state == "closed"
            with pytest.raises(fa.ClosedOK):
                await client.send("late")
        assert hooks == [1, 2]
        assert received[:4] == ["subscribe since=0", "a", "b", "drop"]
        assert received[-1] == "c"

    run(main)


def test_reconnecting_client_pending_queue_is_bounded() -> None:
    async def main() -> None:
        client = fa.ReconnectingClient(
            f"ws://127.0.0.1:{free_port()}/",
            policy=fa.RetryPolicy(initial_delay=5),
            max_pending=2,
        )
        async with client:
            await client.send("1")
            await client.send("2")
            with pytest.raises(asyncio.QueueFull):
                await client.send("3")

    run(main)


def test_reconnecting_client_stops_on_403_and_reports_it() -> None:
    async def main() -> None:
        hook = lambda request: fa.Reject(403)  # noqa: E731
        async with fa.serve(echo, "127.0.0.1", 0, process_request=hook) as server:
            async with fa.ReconnectingClient(uri(server), policy=fa.RetryPolicy(**FAST)) as client:
                with pytest.raises(fa.HandshakeRejected):
                    await client.recv()
                assert client.state == "closed"

    run(main)


def test_reconnecting_client_sends_fresh_headers_each_attempt() -> None:
    seen: List[Any] = []

    def hook(request: turbows.Request) -> Any:
        seen.append(request.headers.get("Last-Event-ID"))
        return None

    async def drop_after_one(ws: fa.ServerWebSocket) -> None:
        await ws.send("event")
        ws.transport.abort()

    async def main() -> None:
        counter = iter(range(100))
        async with fa.serve(drop_after_one, "127.0.0.1", 0, process_request=hook) as server:
            client = fa.ReconnectingClient(
                uri(server),
                policy=fa.RetryPolicy(**FAST),
                extra_headers=lambda: [("Last-Event-ID", str(next(counter)))],
            )
            async with client:
                for _ in range(3):
                    assert await client.recv() == "event"
        assert seen[:3] == ["0", "1", "2"]

    run(main)


SERVER = os.path.join(os.path.dirname(__file__), "reconnect_server.py")


async def start_server(port: int) -> "asyncio.subprocess.Process":
    """The ticking server of reconnect_server.py in a process of its own, once it listens."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, SERVER, str(port), stdout=asyncio.subprocess.PIPE
    )
    assert proc.stdout is not None
    assert await asyncio.wait_for(proc.stdout.readline(), 10) == b"ready\n"
    return proc


def test_the_documented_loop_survives_kill_9_a_restart_and_a_deploy_without_try() -> None:
    """The README's loop, as written there (no try/except): the server is killed with
    SIGKILL (the client sees 1006), restarted, then deployed (SIGTERM: 1001 to the client) and
    started again; the client follows all three processes and ends when it closes."""
    port = free_port()

    async def main() -> None:
        procs = [await start_server(port)]
        seen: List[str] = []  # the pid of each server that sent a message, in order
        policy = fa.RetryPolicy(initial_delay=0.05, factor=1.5, max_delay=0.3, jitter=0.1)
        try:
            async for ws in fa.connect(f"ws://127.0.0.1:{port}/", reconnect=policy):
                async for message in ws:
                    pid, n = message.split()
                    if not seen or seen[-1] != pid:
                        seen.append(pid)
                    if n != "3":
                        continue
                    if len(seen) == 1:
                        procs[0].kill()  # kill -9
                        await procs[0].wait()
                        procs.append(await start_server(port))
                    elif len(seen) == 2:
                        procs[1].terminate()  # a deploy: 1001 "going away"
                        await procs[1].wait()
                        procs.append(await start_server(port))
                    else:
                        await ws.close()  # this side is done: the outer loop ends quietly
            assert seen == [str(p.pid) for p in procs]
            assert procs[0].returncode == -signal.SIGKILL and procs[1].returncode == 0
        finally:
            for proc in procs:
                if proc.returncode is None:
                    proc.terminate()
                    await proc.wait()

    run(main, timeout=30)


@pytest.mark.parametrize("code", [1008, 1002, 4001])
def test_a_stop_code_is_raised_with_the_reason_and_logged_as_a_warning(
    code: int, caplog: Any
) -> None:
    async def closer(ws: fa.ServerWebSocket) -> None:
        await ws.close(code, "go away for good")

    async def main() -> None:
        attempts: List[fa.Attempt] = []
        async with fa.serve(closer, "127.0.0.1", 0) as server:
            policy = fa.RetryPolicy(**FAST, on_attempt=attempts.append)
            with pytest.raises(fa.ClosedError) as info:
                async for ws in fa.connect(uri(server), reconnect=policy):
                    async for _ in ws:
                        pass
            assert info.value.code == code and info.value.reason == "go away for good"
            assert len(attempts) == 1

    with caplog.at_level(logging.INFO, logger="turbows"):
        run(main)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and str(code) in warnings[0].getMessage()


def test_a_server_1000_ends_the_loop_quietly_and_1012_is_retried() -> None:
    connections = 0

    async def handler(ws: fa.ServerWebSocket) -> None:
        nonlocal connections
        connections += 1
        await ws.close(1012 if connections < 3 else 1000)

    async def main() -> None:
        async with fa.serve(handler, "127.0.0.1", 0) as server:
            async for ws in fa.connect(uri(server), reconnect=fa.RetryPolicy(**FAST)):
                async for _ in ws:
                    pass
        assert connections == 3

    run(main)


def test_attempts_are_counted_alike_in_logs_and_callbacks_while_connections_drop(
    caplog: Any,
) -> None:
    """Connections that drop at once do not reset the count: the log says attempt 2, 3, 4
    with growing delays, never attempt 1 again."""
    connections = 0

    async def dropper(ws: fa.ServerWebSocket) -> None:
        nonlocal connections
        connections += 1
        if connections < 4:
            ws.transport.abort()
        else:
            await ws.close(1000)

    async def main() -> None:
        attempts: List[fa.Attempt] = []
        async with fa.serve(dropper, "127.0.0.1", 0) as server:
            policy = fa.RetryPolicy(
                initial_delay=0.01, factor=2.0, max_delay=1.0, jitter=0.0,
                on_attempt=attempts.append,
            )
            async for ws in fa.connect(uri(server), reconnect=policy):
                await ws.wait_closed()
        assert [a.number for a in attempts] == [1, 2, 3, 4]
        assert [a.delay for a in attempts] == [0.0, 0.01, 0.02, 0.04]

    with caplog.at_level(logging.INFO, logger="turbows"):
        run(main)
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("reconnecting")]
    assert [line.split("attempt ")[1].split(" in ")[0] for line in lines] == ["2", "3", "4"]


def test_reconnecting_client_comes_back_after_a_deploy_1001() -> None:
    connections = 0

    async def handler(ws: fa.ServerWebSocket) -> None:
        nonlocal connections
        connections += 1
        await ws.send(f"hello {connections}")
        if connections == 1:
            await ws.close(1001, "deploying")
        else:
            await ws.wait_closed()

    async def main() -> None:
        async with fa.serve(handler, "127.0.0.1", 0) as server:
            async with fa.ReconnectingClient(uri(server), policy=fa.RetryPolicy(**FAST)) as client:
                assert await client.recv() == "hello 1"
                assert await client.recv() == "hello 2"
                assert client.state == "open"

    run(main)
