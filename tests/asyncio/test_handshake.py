"""Opening handshakes: hooks, rejections as a client sees them, origins, limits, timeouts."""

from __future__ import annotations

import asyncio
from typing import Any, Callable, List, Optional

import pytest

import turbows
import turbows.asyncio as fa

from aio_helpers import echo, run, uri


def _hook(request: turbows.Request) -> Optional[Any]:
    if request.path == "/401":
        return fa.Reject(401, [("WWW-Authenticate", 'Bearer realm="x"')], "login first")
    if request.path == "/403":
        return fa.Reject(403, body=b"forbidden")
    if request.path == "/404":
        return fa.Reject(404, body="no such room")
    if request.path == "/503":
        return fa.Reject(503, [("Retry-After", "7")], b"busy")
    if request.path == "/chat":
        return fa.Accept("chat.v2", [("Set-Cookie", "s=1")])
    if request.path == "/crash":
        raise RuntimeError("hook bug")
    if request.path == "/bad":
        return "nonsense"
    return None


@pytest.mark.parametrize(
    "path,status,body",
    [
        ("/401", 401, b"login first"),
        ("/403", 403, b"forbidden"),
        ("/404", 404, b"no such room"),
        ("/503", 503, b"busy"),
        ("/crash", 500, b"Internal Server Error"),
        ("/bad", 500, b"Internal Server Error"),
    ],
)
def test_process_request_rejections_reach_the_client(path: str, status: int, body: bytes) -> None:
    async def main() -> None:
        async with fa.serve(echo, "127.0.0.1", 0, process_request=_hook) as server:
            with pytest.raises(fa.HandshakeRejected) as info:
                await fa.connect(uri(server, path))
            assert info.value.status == status
            assert info.value.body == body
            if status == 401:
                assert info.value.headers.get("WWW-Authenticate") == 'Bearer realm="x"'
            if status == 503:
                assert info.value.retry_after == 7.0

    run(main)


def test_process_request_accepts_with_subprotocol_and_headers() -> None:
    async def handler(ws: fa.ServerWebSocket) -> None:
        await ws.send(ws.subprotocol or "")

    async def main() -> None:
        async with fa.serve(handler, "127.0.0.1", 0, process_request=_hook) as server:
            async with fa.connect(uri(server, "/chat"), subprotocols=["chat.v1", "chat.v2"]) as ws:
                assert ws.subprotocol == "chat.v2"
                assert await ws.recv() == "chat.v2"
                assert ws.response_headers.get("Set-Cookie") == "s=1"

    run(main)


def test_async_process_request() -> None:
    async def hook(request: turbows.Request) -> Any:
        await asyncio.sleep(0.01)
        return None if request.headers.get("Authorization") else fa.Reject(401)

    async def main() -> None:
        async with fa.serve(echo, "127.0.0.1", 0, process_request=hook) as server:
            with pytest.raises(fa.HandshakeRejected):
                await fa.connect(uri(server))
            async with fa.connect(uri(server), extra_headers=[("Authorization", "x")]) as ws:
                await ws.send("in")
                assert await ws.recv() == "in"

    run(main)


def test_server_subprotocol_preference() -> None:
    async def main() -> None:
        async with fa.serve(echo, "127.0.0.1", 0, subprotocols=["b", "a"]) as server:
            async with fa.connect(uri(server), subprotocols=["a", "b"]) as ws:
                assert ws.subprotocol == "b"
            async with fa.connect(uri(server)) as ws:
                assert ws.subprotocol is None

    run(main)


def test_origin_allow_list() -> None:
    async def main() -> None:
        origins = ["https://good.example", None]
        async with fa.serve(echo, "127.0.0.1", 0, origins=origins) as server:
            async with fa.connect(uri(server), origin="https://good.example"):
                pass
            async with fa.connect(uri(server)):
                pass
            with pytest.raises(fa.HandshakeRejected) as info:
                await fa.connect(uri(server), origin="https://evil.example")
            assert info.value.status == 403

    run(main)


def test_oversized_handshake_is_refused_with_431() -> None:
    async def main() -> None:
        async with fa.serve(echo, "127.0.0.1", 0, max_header_size=1024) as server:
            with pytest.raises(fa.HandshakeRejected) as info:
                await fa.connect(uri(server), extra_headers=[("X-Big", "a" * 2000)])
            assert info.value.status == 431

    run(main)


def test_plain_http_server_is_a_rejection() -> None:
    async def main() -> None:
        async def http(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello")
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(http, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        with pytest.raises(fa.HandshakeRejected) as info:
            await fa.connect(f"ws://127.0.0.1:{port}/")
        assert info.value.status == 200 and info.value.body == b"hello"
        server.close()
        await server.wait_closed()

    run(main)


def test_slow_client_is_dropped_by_the_open_timeout() -> None:
    async def main() -> None:
        async with fa.serve(echo, "127.0.0.1", 0, open_timeout=0.2) as server:
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(b"GET / HTTP/1.1\r\n")  # and never the rest
            start = asyncio.get_running_loop().time()
            assert await asyncio.wait_for(reader.read(), 3) == b""
            assert asyncio.get_running_loop().time() - start < 2
            assert not server.connections
            writer.close()
            await writer.wait_closed()

    run(main)


def test_client_open_timeout_against_a_silent_server() -> None:
    async def main() -> None:
        async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.read()
            writer.close()

        server = await asyncio.start_server(silent, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        with pytest.raises(fa.OpenTimeout):
            await fa.connect(f"ws://127.0.0.1:{port}/", open_timeout=0.2)
        server.close()
        await server.wait_closed()

    run(main)


def test_connection_refused_is_an_oserror() -> None:
    from aio_helpers import free_port

    async def main() -> None:
        with pytest.raises(OSError):
            await fa.connect(f"ws://127.0.0.1:{free_port()}/")

    run(main)


def test_bad_uri_and_options_fail_early() -> None:
    with pytest.raises(ValueError):
        fa.connect("http://example.com/")
    with pytest.raises(ValueError):
        fa.serve(echo, "127.0.0.1", 0, max_queue=0)


async def _http_get(
    port: int, path: str, method: str = "GET", version: str = "HTTP/1.1", *lines: str
) -> bytes:
    """A plain HTTP request, as a load balancer's health check sends it; the whole answer.

    HTTP/1.1 requests carry a ``Host``; HTTP/1.0 ones only ``lines``, as HAProxy sends them.
    """
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    if version == "HTTP/1.1":
        lines = (f"Host: 127.0.0.1:{port}", *lines)
    head = "".join(f"{line}\r\n" for line in (f"{method} {path} {version}", *lines))
    writer.write(f"{head}\r\n".encode())
    answer = await asyncio.wait_for(reader.read(), 3)  # the server closes after answering
    writer.close()
    await writer.wait_closed()
    return answer


def _health_hook(seen: list[Any]) -> Callable[[turbows.Request], Optional[Any]]:
    """A process_request hook that answers ``/health`` with 200 and lets everything else
    through; it records each request's ``(method, path, upgrade)`` in ``seen``."""

    def hook(request: turbows.Request) -> Optional[Any]:
        seen.append((request.method, request.path, request.upgrade))
        if request.path == "/health":
            return fa.Response(200, [("Content-Type", "text/plain")], "ok\n")
        return None

    return hook


@pytest.mark.parametrize("fast_transport", [True, False])
def test_process_request_answers_plain_http_requests(fast_transport: bool) -> None:
    seen: list[Any] = []
    hook = _health_hook(seen)

    async def main() -> None:
        async with fa.serve(
            echo, "127.0.0.1", 0, process_request=hook, fast_transport=fast_transport
        ) as server:
            answer = await _http_get(server.port, "/health")
            assert answer.startswith(b"HTTP/1.1 200 OK\r\n")
            assert b"\r\nContent-Type: text/plain\r\n" in answer
            assert answer.endswith(b"\r\n\r\nok\n")
            answer = await _http_get(server.port, "/health", "HEAD")
            assert answer.startswith(b"HTTP/1.1 200 OK\r\n") and answer.endswith(b"\r\n\r\n")
            assert b"\r\nContent-Length: 3\r\n" in answer
            # Let through (None) but not an upgrade: 426, naming the protocol to upgrade to.
            answer = await _http_get(server.port, "/")
            assert answer.startswith(b"HTTP/1.1 426 ")
            assert b"\r\nUpgrade: websocket\r\n" in answer
            # WebSocket clients are served as before, by the same hook.
            async with fa.connect(uri(server, "/chat")) as ws:
                await ws.send("hi")
                assert await ws.recv() == "hi"

    run(main)
    assert seen == [
        ("GET", "/health", False),
        ("HEAD", "/health", False),
        ("GET", "/", False),
        ("GET", "/chat", True),
    ]


def test_a_browser_visiting_the_url_gets_426_and_a_readable_body() -> None:
    async def main() -> None:
        async with fa.serve(echo, "127.0.0.1", 0) as server:
            answer = await _http_get(server.port, "/health")
            assert answer.startswith(b"HTTP/1.1 426 Upgrade Required\r\n")
            assert b"open it with a WebSocket client" in answer

    run(main)


_UPGRADE = (
    "Upgrade: websocket",
    "Connection: Upgrade",
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
    "Sec-WebSocket-Version: 13",
)


@pytest.mark.parametrize("fast_transport", [True, False])
def test_process_request_answers_plain_requests_over_http_1_0_and_options(
    fast_transport: bool,
) -> None:
    seen: list[Any] = []
    hook = _health_hook(seen)

    async def main() -> None:
        async with fa.serve(
            echo, "127.0.0.1", 0, process_request=hook, fast_transport=fast_transport
        ) as server:
            for method in ("GET", "HEAD", "OPTIONS"):
                answer = await _http_get(server.port, "/health", method, "HTTP/1.0")
                # The server's own version in the status line, then it closes (read() ended).
                assert answer.startswith(b"HTTP/1.1 200 OK\r\n")
                assert b"\r\nConnection: close\r\n" in answer
                assert b"\r\nContent-Length: 3\r\n" in answer
                assert answer.endswith(b"\r\n\r\n" if method == "HEAD" else b"\r\n\r\nok\n")
            # OPTIONS let through, over either version: the 426 a plain GET gets.
            for version in ("HTTP/1.1", "HTTP/1.0"):
                answer = await _http_get(server.port, "/", "OPTIONS", version)
                assert answer.startswith(b"HTTP/1.1 426 ")
                assert b"\r\nUpgrade: websocket\r\n" in answer
            # Other methods never reach the hook.
            answer = await _http_get(server.port, "/health", "POST", "HTTP/1.0")
            assert answer.startswith(b"HTTP/1.1 405 ")
            assert b"\r\nAllow: GET, HEAD, OPTIONS\r\n" in answer
            # Nor does a WebSocket handshake over HTTP/1.0 (RFC 6455 4.1: HTTP/1.1 or later).
            answer = await _http_get(server.port, "/chat", "GET", "HTTP/1.0", *_UPGRADE)
            assert answer.startswith(b"HTTP/1.1 505 ")
            assert not server.connections

    run(main)
    assert seen == [
        ("GET", "/health", False),
        ("HEAD", "/health", False),
        ("OPTIONS", "/health", False),
        ("OPTIONS", "/", False),
        ("OPTIONS", "/", False),
    ]


def test_options_and_http_1_0_are_refused_as_before_without_process_request() -> None:
    async def main() -> None:
        async with fa.serve(echo, "127.0.0.1", 0) as server:
            answer = await _http_get(server.port, "/", "OPTIONS")
            assert answer.startswith(b"HTTP/1.1 405 ")
            assert b"\r\nAllow: GET\r\n" in answer
            for method in ("GET", "HEAD", "OPTIONS"):
                answer = await _http_get(server.port, "/health", method, "HTTP/1.0")
                assert answer.startswith(b"HTTP/1.1 505 ")
            answer = await _http_get(server.port, "/chat", "GET", "HTTP/1.0", *_UPGRADE)
            assert answer.startswith(b"HTTP/1.1 505 ")

    run(main)


def test_client_offers_client_max_window_bits_by_default() -> None:
    # As browsers do: the server may then choose the window of the client's compressor.
    offers: list[Any] = []

    def hook(request: turbows.Request) -> None:
        offers.extend(request.extensions)

    async def main() -> None:
        async with fa.serve(echo, "127.0.0.1", 0, process_request=hook) as server:
            async with fa.connect(uri(server)) as ws:
                assert ws.extensions == (
                    ("permessage-deflate", (("client_max_window_bits", "12"),)),
                )
                await ws.send("x" * 1000)  # compressed both ways
                assert await ws.recv() == "x" * 1000

    run(main)
    assert offers == [("permessage-deflate", (("client_max_window_bits", None),))]


def test_a_client_that_reaches_a_plain_http_server_says_so_with_the_status() -> None:
    import http.server
    import threading

    class Page(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            self.wfile.write(b"<html>a page</html>")

        def log_message(self, *args: Any) -> None:
            pass

    httpd = http.server.HTTPServer(("127.0.0.1", 0), Page)  # answers in HTTP/1.0
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()

    async def main() -> None:
        with pytest.raises(fa.HandshakeRejected) as info:
            await fa.connect(f"ws://127.0.0.1:{httpd.server_address[1]}/")
        assert info.value.status == 200
        assert str(info.value) == (
            "not a WebSocket server: it answered the handshake with HTTP 200"
        )

    try:
        run(main)
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_process_request_sees_the_peer_and_the_query_and_hands_context_to_the_handler() -> None:
    seen: List[Any] = []

    def hook(request: turbows.Request) -> Any:
        seen.append((request.remote_address, request.tls, request.query))
        token = request.query.get("token")
        if token != "s3 cret":
            return fa.Reject(401, body="login first")
        return fa.Accept(context={"user": "ada"})

    async def handler(ws: fa.ServerWebSocket) -> None:
        await ws.send(f"{ws.context['user']} from {ws.request.remote_address[0]}")

    async def main() -> None:
        async with fa.serve(handler, "127.0.0.1", 0, process_request=hook) as server:
            async with fa.connect(uri(server, "/feed?token=s3%20cret&since=4")) as ws:
                local = ws.local_address
                assert await ws.recv() == "ada from 127.0.0.1"
            with pytest.raises(fa.HandshakeRejected) as info:
                await fa.connect(uri(server, "/feed?token=wrong"))
            assert info.value.status == 401
        assert seen[0] == (tuple(local), None, {"token": "s3 cret", "since": "4"})
        assert seen[1][2] == {"token": "wrong"}

    run(main)


def test_a_response_with_an_invalid_status_is_a_500_not_a_crash() -> None:
    async def main() -> None:
        hook = lambda request: fa.Response(101)  # noqa: E731 - 101 cannot be an HTTP answer
        async with fa.serve(echo, "127.0.0.1", 0, process_request=hook) as server:
            answer = await _http_get(server.port, "/")
            assert answer.startswith(b"HTTP/1.1 500 ")

    run(main)
