"""fastws's own socket transport: used when asked, for plain TCP only."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import socket
import ssl
from typing import Any

import pytest

import fastws.asyncio as fa
import fastws.asyncio._server as server_module

from aio_helpers import run, uri

pytestmark = pytest.mark.skipif(
    server_module.SocketTransport is None, reason="the compiled transport is not built"
)


@pytest.mark.parametrize("use_uvloop", [False, True])
def test_fast_transport_serves_plain_tcp_connections(use_uvloop: bool) -> None:
    seen: list[str] = []

    async def handler(ws: Any) -> None:
        seen.append(type(ws.transport).__name__)
        async for message in ws:
            await ws.send(message)

    async def main() -> None:
        async with fa.serve(handler, "127.0.0.1", 0, fast_transport=True) as server:
            async with fa.connect(uri(server)) as ws:
                for i in range(100):
                    await ws.send(f"m{i}")
                    assert await ws.recv() == f"m{i}"
                await ws.send(b"\x00" * 300_000)
                assert await ws.recv() == b"\x00" * 300_000

    run(main, use_uvloop=use_uvloop)
    assert seen == ["SocketTransport"]


def test_tls_servers_keep_the_loop_transport() -> None:
    server = fa.serve(
        fa.WebSocket, "127.0.0.1", 0, ssl=ssl.create_default_context(), fast_transport=True
    )
    assert not server._uses_fast_transport()


def test_fast_transport_follows_the_default_unless_told(server_transport: str) -> None:
    server = fa.serve(fa.WebSocket, "127.0.0.1", 0)
    assert server._uses_fast_transport() == (server_transport == "fastws")
    assert not fa.serve(fa.WebSocket, "127.0.0.1", 0, fast_transport=False)._uses_fast_transport()


def test_peer_reset_on_the_fast_transport_ends_with_1006() -> None:
    codes: list[Any] = []

    async def handler(ws: Any) -> None:
        with contextlib.suppress(fa.WebSocketClosed):
            await ws.recv()
        codes.append(ws.close_code)

    async def main() -> None:
        async with fa.serve(handler, "127.0.0.1", 0, fast_transport=True) as server:
            ws = await fa.connect(uri(server))
            ws.abort()
            for _ in range(100):
                if codes:
                    break
                await asyncio.sleep(0.01)

    run(main)
    assert codes == [1006]


@pytest.mark.parametrize("use_uvloop", [False, True])
def test_callback_echo_answers_pipelined_messages_in_order(use_uvloop: bool) -> None:
    """Many messages in one read are echoed by on_message = send_nowait, in order, on many
    connections at once (one shared epoll set reads them all)."""

    async def handler(ws: Any) -> None:
        ws.on_message = ws.send_nowait
        await ws.wait_closed()

    async def client(server: Any, n: int) -> None:
        async with fa.connect(uri(server)) as ws:
            messages = [f"{n}-{i}" if i % 2 else f"{n}-{i}".encode() for i in range(200)]
            for message in messages:  # no await between them: they leave in few writes
                ws.send_nowait(message)
            for message in messages:
                assert await ws.recv() == message

    async def main() -> None:
        async with fa.serve(handler, "127.0.0.1", 0, fast_transport=True) as server:
            await asyncio.gather(*(client(server, n) for n in range(20)))

    run(main, use_uvloop=use_uvloop)


def test_a_failing_on_message_closes_with_1011_on_the_fast_transport() -> None:
    closed: list[Any] = []

    async def handler(ws: Any) -> None:
        def fail(message: Any) -> None:
            raise RuntimeError("boom")

        ws.on_message = fail
        await ws.wait_closed()

    async def main() -> None:
        async with fa.serve(handler, "127.0.0.1", 0, fast_transport=True) as server:
            async with fa.connect(uri(server)) as ws:
                await ws.send("x")
                with pytest.raises(fa.WebSocketClosed):
                    await ws.recv()
                closed.append(ws.close_code)

    run(main)
    assert closed == [1011]


class _FailingListener:
    """A listening socket whose accept() always fails with EMFILE."""

    def __init__(self, sock: Any) -> None:
        self.sock = sock
        self.calls = 0

    def fileno(self) -> int:
        return int(self.sock.fileno())

    def setblocking(self, flag: bool) -> None:
        self.sock.setblocking(flag)

    def getsockname(self) -> Any:
        return self.sock.getsockname()

    def accept(self) -> Any:
        self.calls += 1
        raise OSError(errno.EMFILE, "Too many open files")

    def close(self) -> None:
        self.sock.close()


def test_accept_running_out_of_descriptors_backs_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(server_module, "ACCEPT_RETRY_DELAY", 0.2)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        fake = _FailingListener(sock)
        listener = server_module._FastListener(loop, lambda: None, [fake], 8)  # type: ignore[list-item]
        client = socket.create_connection(sock.getsockname())
        try:
            await asyncio.sleep(0.1)
            assert fake.calls == 1  # not retried in a loop while the socket stays readable
            await asyncio.sleep(0.25)
            assert fake.calls == 2  # watched again after the delay
        finally:
            listener.close()
            client.close()

    run(main)


def test_fast_listener_binds_like_create_server() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        reference = await loop.create_server(asyncio.Protocol, "localhost", 0)
        expected = sorted(s.family for s in reference.sockets)
        reference.close()
        await reference.wait_closed()
        async with fa.serve(fa.WebSocket, "localhost", 0, fast_transport=True) as server:
            assert sorted(s.family for s in server.sockets) == expected
            for sock in server.sockets:
                assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR)
                if sock.family == socket.AF_INET6:
                    assert sock.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY)
            taken = next(s.getsockname()[1] for s in server.sockets if s.family == socket.AF_INET)
            with pytest.raises(OSError, match="error while attempting to bind on address"):
                await fa.serve(fa.WebSocket, "127.0.0.1", taken, fast_transport=True).start()

    run(main)
