"""turbows.sync against other servers and clients: turbows.asyncio and websockets, both
ways, and wss:// (TLS through ssl's memory buffers) with certificates made by openssl."""

from __future__ import annotations

import asyncio
import ssl
import threading
from pathlib import Path
from typing import Any, List, Tuple

import pytest
from sync_helpers import AsyncioServer, echo, uri, wait_for

import turbows
import turbows.asyncio as fa
import turbows.sync as ts

websockets = pytest.importorskip("websockets")
from websockets.asyncio.server import serve as ws_serve
from websockets.sync.client import connect as ws_connect

MESSAGES = ["hello", "é" * 10_000, b"\x00\xff" * 40_000, ""]


async def aio_echo(ws: Any) -> None:
    async for message in ws:
        await ws.send(message)


@pytest.mark.parametrize("compression", [True, False])
def test_sync_client_against_the_asyncio_server(compression: bool) -> None:
    extensions = None if compression else ()
    with AsyncioServer(lambda: fa.serve(aio_echo, "127.0.0.1", 0, ping_interval=0.05)) as server:
        with ts.connect(uri(server), extensions=extensions) as ws:
            assert bool(ws.extensions) is compression
            for message in MESSAGES:
                ws.send(message)
                assert ws.recv(timeout=5) == message
            ws.send(["frag", "mented"])
            assert ws.recv(timeout=5) == "fragmented"
            assert ws.ping(timeout=5) >= 0.0
    assert ws.close_code == 1000


def test_asyncio_client_against_the_sync_server() -> None:
    with ts.serve(echo, "127.0.0.1", 0) as server:

        async def main() -> None:
            async with fa.connect(uri(server)) as ws:
                assert ws.extensions
                for message in MESSAGES:
                    await ws.send(message)
                    assert await ws.recv() == message
                await ws.ping()

        asyncio.run(asyncio.wait_for(main(), 20))


def test_sync_client_against_the_websockets_server() -> None:
    async def handler(ws: Any) -> None:
        async for message in ws:
            await ws.send(message)

    with AsyncioServer(lambda: ws_serve(handler, "127.0.0.1", 0)) as server:
        with ts.connect(uri(server)) as ws:
            assert ws.extensions  # websockets compresses by default too
            for message in MESSAGES:
                ws.send(message)
                assert ws.recv(timeout=5) == message
            ws.send([b"a", b"b"])
            assert ws.recv(timeout=5) == b"ab"
            assert ws.ping(timeout=5) >= 0.0


def test_websockets_client_against_the_sync_server() -> None:
    seen: List[Any] = []

    def handler(ws: ts.ServerWebSocket) -> None:
        try:
            echo(ws)
        finally:
            seen.append(ws.closed_event)

    with ts.serve(handler, "127.0.0.1", 0) as server:
        with ws_connect(uri(server), open_timeout=5) as ws:
            for message in MESSAGES:
                ws.send(message)
                assert ws.recv(timeout=5) == message
            ws.close(4002, "done")
        wait_for(lambda: bool(seen))
    assert (seen[0].code, seen[0].reason, seen[0].clean) == (4002, "done", True)


def test_the_websockets_server_closing_with_1001() -> None:
    async def handler(ws: Any) -> None:
        await ws.close(1001, "restart")

    with AsyncioServer(lambda: ws_serve(handler, "127.0.0.1", 0)) as server:
        with ts.connect(uri(server)) as ws:
            assert list(ws) == []
    assert (ws.close_code, ws.close_reason) == (1001, "restart")


# ---------------------------------------------------------------------------------------------
# TLS.


def contexts(certificate: Tuple[Path, Path]) -> Tuple[ssl.SSLContext, ssl.SSLContext]:
    cert, key = certificate
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(cert, key)
    client = ssl.create_default_context(cafile=str(cert))
    return server, client


def test_wss_between_the_sync_client_and_the_sync_server(
    tls_certificate: Tuple[Path, Path],
) -> None:
    server_ctx, client_ctx = contexts(tls_certificate)
    with ts.serve(echo, "127.0.0.1", 0, ssl=server_ctx) as server:
        with ts.connect(f"wss://localhost:{server.port}/", ssl=client_ctx) as ws:
            assert ws._tls is not None and ws._tls.obj.version() is not None
            for message in MESSAGES + [b"\x01" * 1_000_000]:
                ws.send(message)
                assert ws.recv(timeout=10) == message

            def sender(n: int) -> None:
                for i in range(50):
                    ws.send(f"{n}-{i}")

            threads = [threading.Thread(target=sender, args=(n,)) for n in range(4)]
            for t in threads:
                t.start()
            got = [ws.recv(timeout=10) for _ in range(200)]
            for t in threads:
                t.join(10)
            for n in range(4):
                assert [m for m in got if m.startswith(f"{n}-")] == [f"{n}-{i}" for i in range(50)]
            assert ws.ping(timeout=5) >= 0.0
    assert ws.closed_event is not None and ws.closed_event.clean


def test_wss_sync_client_against_the_asyncio_server(tls_certificate: Tuple[Path, Path]) -> None:
    server_ctx, client_ctx = contexts(tls_certificate)
    with AsyncioServer(lambda: fa.serve(aio_echo, "127.0.0.1", 0, ssl=server_ctx)) as server:
        with ts.connect(f"wss://localhost:{server.port}/", ssl=client_ctx) as ws:
            for message in MESSAGES:
                ws.send(message)
                assert ws.recv(timeout=5) == message
    assert ws.close_code == 1000


def test_wss_websockets_client_against_the_sync_server(tls_certificate: Tuple[Path, Path]) -> None:
    server_ctx, client_ctx = contexts(tls_certificate)
    with ts.serve(echo, "127.0.0.1", 0, ssl=server_ctx) as server:
        with ws_connect(f"wss://localhost:{server.port}/", ssl=client_ctx, open_timeout=5) as ws:
            ws.send("secure")
            assert ws.recv(timeout=5) == "secure"


def test_a_client_that_does_not_trust_the_certificate_fails(
    tls_certificate: Tuple[Path, Path],
) -> None:
    server_ctx, _ = contexts(tls_certificate)
    with ts.serve(echo, "127.0.0.1", 0, ssl=server_ctx) as server:
        with pytest.raises(ssl.SSLCertVerificationError):
            ts.connect(f"wss://localhost:{server.port}/", open_timeout=5)
        # The server goes on serving after a failed TLS handshake.
        _, client_ctx = contexts(tls_certificate)
        with ts.connect(f"wss://localhost:{server.port}/", ssl=client_ctx) as ws:
            ws.send("ok")
            assert ws.recv(timeout=5) == "ok"


def test_ssl_with_a_ws_uri_is_refused() -> None:
    with pytest.raises(ValueError):
        ts.connect("ws://127.0.0.1:1/", ssl=ssl.create_default_context())


def test_the_state_enum_is_shared() -> None:
    assert ts.WebSocket.state.fget is not None
    assert turbows.State.OPEN.name == "OPEN"
