"""A FastAPI application on a real uvicorn process started as a user starts it::

    uvicorn uvicorn_app:app --ws turbows.integrations.uvicorn:WebSocketProtocol --http H --loop L

with ``--http h11`` and ``--http httptools``, ``--loop asyncio`` and ``--loop uvloop``, talked
to over 127.0.0.1 by websockets's client (another library, real sockets) and, where the client
must misbehave (never answer a ping), by a raw socket.
"""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any, Iterator, List, Sequence

import pytest

pytest.importorskip("uvicorn")
pytest.importorskip("fastapi")
pytest.importorskip("httptools")
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

HERE = Path(__file__).parent
WS_CLASS = "turbows.integrations.uvicorn:WebSocketProtocol"
COMBOS = [
    (http, loop)
    for http in ("h11", "httptools")
    for loop in ("asyncio", "uvloop")
    if loop == "asyncio" or sys.platform != "win32"
]
TIMEOUT = 10.0


class UvicornProcess:
    """``python -m uvicorn uvicorn_app:app ...`` (what the ``uvicorn`` command runs) on a free
    port of 127.0.0.1; its log is kept (and drained, so that it never blocks)."""

    def __init__(self, http: str, loop: str, *options: str) -> None:
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "uvicorn_app:app",
                "--app-dir",
                str(HERE),
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--ws",
                WS_CLASS,
                "--http",
                http,
                "--loop",
                loop,
                *options,
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        self.log: List[str] = []
        started = threading.Event()
        self.port = 0

        def drain() -> None:
            assert self.proc.stderr is not None
            for raw in self.proc.stderr:
                line = raw.decode("utf-8", "replace")
                self.log.append(line)
                found = re.search(r"Uvicorn running on http://127\.0\.0\.1:(\d+)", line)
                if found:
                    self.port = int(found.group(1))
                    started.set()
            started.set()

        threading.Thread(target=drain, daemon=True).start()
        if not started.wait(30) or not self.port:
            self.stop()
            raise RuntimeError("uvicorn did not start:\n" + "".join(self.log))

    def url(self, path: str) -> str:
        return f"ws://127.0.0.1:{self.port}{path}"

    def get_json(self, path: str) -> Any:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=TIMEOUT) as r:
            return json.loads(r.read())

    def stop(self, sig: int = signal.SIGINT) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def errors(self) -> List[str]:
        return [line for line in self.log if "Traceback" in line or "Exception in" in line]


@pytest.fixture(scope="module", params=COMBOS, ids=[f"{h}-{lp}" for h, lp in COMBOS])
def server(request: pytest.FixtureRequest) -> Iterator[UvicornProcess]:
    proc = UvicornProcess(*request.param)
    try:
        yield proc
    finally:
        proc.stop()
    assert proc.errors() == [], "".join(proc.log)


def test_echo_text_and_binary(server: UvicornProcess) -> None:
    with connect(server.url("/echo"), open_timeout=TIMEOUT) as ws:
        for text in ("hello", "żółw ✓", "x" * 70000):
            ws.send(text)
            assert ws.recv(TIMEOUT) == text
        ws.send(b"\x00\xff" * 40)
        assert ws.recv(TIMEOUT) == b"\x00\xff" * 40


def test_json_messages(server: UvicornProcess) -> None:
    with connect(server.url("/json"), open_timeout=TIMEOUT) as ws:
        ws.send(json.dumps({"a": [1, 2]}))
        assert json.loads(ws.recv(TIMEOUT)) == {"got": {"a": [1, 2]}}


def test_path_query_subprotocol_and_headers_reach_the_app(server: UvicornProcess) -> None:
    with connect(
        server.url("/items/42?q=x%20y"),
        subprotocols=["one", "two"],  # type: ignore[list-item]
        additional_headers={"Cookie": "session=s1"},
        user_agent_header="turbows-tests",
        open_timeout=TIMEOUT,
    ) as ws:
        assert ws.subprotocol == "two"
        assert ws.response is not None
        headers = ws.response.headers
        assert headers["x-item"] == "42"
        assert headers["server"] == "uvicorn"
        assert len(headers.get_all("date")) == 1
        seen = json.loads(ws.recv(TIMEOUT))
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(TIMEOUT)
    assert seen == {
        "item_id": 42,
        "q": "x y",
        "path": "/items/42",
        "subprotocols": ["one", "two"],
        "user_agent": "turbows-tests",
        "cookie": "s1",
    }
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1000


def test_websocket_exception_before_accept_is_a_403(server: UvicornProcess) -> None:
    with pytest.raises(InvalidStatus) as refused:
        connect(server.url("/forbidden"), open_timeout=TIMEOUT)
    assert refused.value.response.status_code == 403


def test_denial_response_reaches_the_client(server: UvicornProcess) -> None:
    with pytest.raises(InvalidStatus) as refused:
        connect(server.url("/unauthorized"), open_timeout=TIMEOUT)
    response = refused.value.response
    assert response.status_code == 401
    assert response.body == b"log in first"
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.headers["content-length"] == "12"


def test_not_a_websocket_route_is_refused(server: UvicornProcess) -> None:
    with pytest.raises(InvalidStatus) as refused:
        connect(server.url("/nowhere"), open_timeout=TIMEOUT)
    assert refused.value.response.status_code == 403


def test_app_close_code_and_reason_reach_the_client(server: UvicornProcess) -> None:
    with connect(server.url("/close"), open_timeout=TIMEOUT) as ws:
        ws.send("now")
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(TIMEOUT)
    assert closed.value.rcvd is not None
    assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (4001, "bye now")


def test_client_close_code_and_reason_reach_the_app(server: UvicornProcess) -> None:
    with connect(server.url("/echo"), open_timeout=TIMEOUT) as ws:
        ws.send("x")
        ws.recv(TIMEOUT)
        ws.close(4002, "done here")
    deadline = time.monotonic() + TIMEOUT
    while {"code": 4002, "reason": "done here"} not in server.get_json("/disconnects"):
        assert time.monotonic() < deadline, server.get_json("/disconnects")
        time.sleep(0.02)


def test_permessage_deflate_is_negotiated_and_used(server: UvicornProcess) -> None:
    # websockets's client offers permessage-deflate; uvicorn's --ws-per-message-deflate is on
    # by default.
    with connect(server.url("/echo"), open_timeout=TIMEOUT) as ws:
        assert ws.response is not None
        assert "permessage-deflate" in ws.response.headers["sec-websocket-extensions"]
        text = "compressible " * 10000
        ws.send(text)
        assert ws.recv(TIMEOUT) == text


def test_a_lagging_app_stops_the_reads_and_loses_nothing(server: UvicornProcess) -> None:
    """The app reads nothing until told: the server stops reading, the kernel buffers fill and
    the client's send blocks (nothing piles up in the server); then every message arrives in
    order."""
    chunk = 256 * 1024
    count = 128  # 32 MiB: more than both sockets' buffers can hold
    with connect(
        server.url("/lagging"), open_timeout=TIMEOUT, max_size=None, compression=None
    ) as ws:
        sent: List[int] = []

        def send_all() -> None:
            for i in range(count):
                ws.send(i.to_bytes(4, "big") + bytes(chunk - 4))
                sent.append(i)

        sender = threading.Thread(target=send_all, daemon=True)
        sender.start()
        time.sleep(1.0)
        assert sender.is_alive(), "every message was taken in although the app reads nothing"
        assert len(sent) < count
        assert server.get_json("/go") == "going"
        sender.join(TIMEOUT * 3)
        assert not sender.is_alive()
        ws.send(b"end")
        assert ws.recv(TIMEOUT) == f"{count} {count * chunk}"


# --------------------------------------------------------------------------------------------
# Options: --ws-max-size, --ws-ping-interval / --ws-ping-timeout, and shutdown.

LIMITS = [("h11", "asyncio"), ("httptools", "uvloop")]


@pytest.fixture(scope="module", params=LIMITS, ids=[f"{h}-{lp}" for h, lp in LIMITS])
def limited(request: pytest.FixtureRequest) -> Iterator[UvicornProcess]:
    proc = UvicornProcess(
        *request.param,
        "--ws-max-size",
        "4096",
        "--ws-ping-interval",
        "0.2",
        "--ws-ping-timeout",
        "0.3",
    )
    try:
        yield proc
    finally:
        proc.stop()
    assert proc.errors() == [], "".join(proc.log)


def test_message_over_ws_max_size_closes_with_1009(limited: UvicornProcess) -> None:
    with connect(limited.url("/echo"), open_timeout=TIMEOUT, compression=None) as ws:
        ws.send(b"x" * 4096)
        assert ws.recv(TIMEOUT) == b"x" * 4096
        with pytest.raises(ConnectionClosed) as closed:
            ws.send(b"x" * 4097)
            ws.recv(TIMEOUT)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009


def test_a_client_that_answers_pings_stays_connected(limited: UvicornProcess) -> None:
    with connect(limited.url("/echo"), open_timeout=TIMEOUT, ping_interval=None) as ws:
        time.sleep(1.2)  # six heartbeat intervals, each ping answered by the client
        ws.send("still here")
        assert ws.recv(TIMEOUT) == "still here"


def _raw_handshake(port: int, path: str) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        (
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        data = sock.recv(1)
        assert data, head
        head += data
    assert head.startswith(b"HTTP/1.1 101 "), head
    return sock


def _read_frames(sock: socket.socket) -> List[Sequence[Any]]:
    """Every frame the server sends until it closes the connection: (opcode, payload)."""
    data = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    frames = []
    while data:
        opcode, length = data[0] & 0x0F, data[1] & 0x7F
        assert length < 126 and not data[1] & 0x80  # small and unmasked from a server
        frames.append((opcode, data[2 : 2 + length]))
        data = data[2 + length :]
    return frames


def test_missing_pongs_close_with_1011(limited: UvicornProcess) -> None:
    sock = _raw_handshake(limited.port, "/echo")
    started = time.monotonic()
    with sock:
        frames = _read_frames(sock)  # never answering the pings
    assert time.monotonic() - started < 5
    assert frames[0][0] == 0x9  # a ping
    opcode, payload = frames[-1]
    assert opcode == 0x8
    assert struct.unpack("!H", payload[:2])[0] == 1011
    assert payload[2:] == b"keepalive ping timeout"
    deadline = time.monotonic() + TIMEOUT
    while {"code": 1011, "reason": "keepalive ping timeout"} not in limited.get_json(
        "/disconnects"
    ):
        assert time.monotonic() < deadline, limited.get_json("/disconnects")
        time.sleep(0.02)


@pytest.mark.parametrize("http,loop", LIMITS, ids=[f"{h}-{lp}" for h, lp in LIMITS])
def test_server_shutdown_closes_with_1012(http: str, loop: str) -> None:
    proc = UvicornProcess(http, loop)
    try:
        with connect(proc.url("/echo"), open_timeout=TIMEOUT) as ws:
            ws.send("x")
            assert ws.recv(TIMEOUT) == "x"
            proc.proc.send_signal(signal.SIGINT)
            with pytest.raises(ConnectionClosed) as closed:
                ws.recv(TIMEOUT)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1012
        assert proc.proc.wait(TIMEOUT) == 0
    finally:
        proc.stop()
    assert proc.errors() == [], "".join(proc.log)
