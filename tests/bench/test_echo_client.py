"""The end-to-end benchmark's client: its Python and compiled loops count the same way.

Both loops of :mod:`turbows.bench._echo_client` (the Python one and the compiled one of
:mod:`turbows.bench._loadgen`) run against a tiny threaded server written here, which counts the
requests it receives and can misbehave on purpose: reply in pieces, send a byte too many, close
the connection instead of replying, or stop replying.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from typing import Iterator, Optional, Union

import pytest

from turbows.bench import _echo_client
from turbows.bench._peers import BenchCheckError

REQUIRE_EXTENSIONS = os.environ.get("TURBOWS_REQUIRE_EXTENSIONS", "") not in ("", "0")

try:
    from turbows.bench import _loadgen
except ImportError:
    _loadgen = None

_HEAD = (
    b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Accept: unchecked\r\n\r\n"
)


def _compiled_or_skip() -> None:
    if _loadgen is not None:
        return
    if REQUIRE_EXTENSIONS and sys.platform.startswith("linux"):
        pytest.fail("turbows.bench._loadgen is not built but TURBOWS_REQUIRE_EXTENSIONS is set")
    pytest.skip("turbows.bench._loadgen is not built (Linux only)")


@pytest.fixture(params=["python", "compiled"])
def compiled(request: pytest.FixtureRequest) -> bool:
    """Run the test once with each loop of the client."""
    if request.param == "compiled":
        _compiled_or_skip()
    return bool(request.param == "compiled")


class TinyServer:
    """A threaded server that answers every whole request of ``request_len`` bytes.

    Args:
        endpoint: gives the request and reply of a ``size``-byte message (and whether to
            answer an opening handshake first).
        size: the message size.
        piece: send each reply in pieces of this many bytes, a little apart.
        extra_at: after the reply to this request (1 is the first on a connection), send one
            byte more.
        close_at: close the connection when this request arrives, instead of replying.
        silent_from: from this request on, do not reply.
        rcvbuf: a small receive buffer, read slowly, so that the client's sends come up short.
    """

    def __init__(
        self,
        websocket: bool,
        size: int,
        *,
        piece: int = 0,
        extra_at: int = 0,
        close_at: int = 0,
        silent_from: int = 0,
        rcvbuf: int = 0,
    ) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        if rcvbuf:
            self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.endpoint = _echo_client.Endpoint(self.listener.getsockname()[1], websocket)
        self.request, self.reply = self.endpoint.exchange(size)
        self.piece = piece
        self.extra_at = extra_at
        self.close_at = close_at
        self.silent_from = silent_from
        self.slow = bool(rcvbuf)
        self.requests = 0
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return  # closed
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with conn:
            try:
                self._exchange(conn)
            except OSError:
                pass  # the client went away

    def _exchange(self, conn: socket.socket) -> None:
        buf = b""
        if self.endpoint.websocket:
            while b"\r\n\r\n" not in buf:
                buf += conn.recv(4096)
            conn.sendall(_HEAD)
            buf = b""
        index = 0
        need = len(self.request)
        while True:
            data = conn.recv(4096 if self.slow else 65536)
            if not data:
                return
            if self.slow:
                time.sleep(0.0005)
            buf += data
            while len(buf) >= need:
                assert buf[:need] == self.request
                buf = buf[need:]
                index += 1
                with self.lock:
                    self.requests += 1
                if index == self.close_at:
                    return
                if self.silent_from and index >= self.silent_from:
                    continue
                out = self.reply + (b"!" if index == self.extra_at else b"")
                step = self.piece or len(out)
                for start in range(0, len(out), step):
                    conn.sendall(out[start : start + step])
                    if self.piece:
                        time.sleep(0.0002)

    def close(self) -> None:
        self.listener.close()


@pytest.fixture
def servers() -> Iterator[list[TinyServer]]:
    made: list[TinyServer] = []
    yield made
    for server in made:
        server.close()


def _server(made: list[TinyServer], websocket: bool, size: int, **how: int) -> TinyServer:
    server = TinyServer(websocket, size, **how)
    made.append(server)
    return server


def _wait_for(server: TinyServer, requests: int) -> int:
    """The server's count once it reached ``requests`` (or after a second, whatever it is)."""
    deadline = time.monotonic() + 1.0
    while server.requests < requests and time.monotonic() < deadline:
        time.sleep(0.001)
    time.sleep(0.02)  # and no more come
    return server.requests


# --------------------------------------------------------------------------------------------
# Counting.


@pytest.mark.parametrize("websocket", [True, False], ids=["websocket", "raw"])
@pytest.mark.parametrize("n", [0, 3, 5, 17, 1000])
def test_concurrent_sends_exactly_n_messages_and_waits_for_every_reply(
    servers: list[TinyServer], compiled: bool, websocket: bool, n: int
) -> None:
    server = _server(servers, websocket, 32)
    client = _echo_client.Concurrent(server.endpoint, 32, 5, compiled=compiled)
    try:
        assert server.requests == 5  # one checked echo per connection
        client(n)
        # Every reply is back when the call returns, so the server counted every request.
        assert server.requests == 5 + n
        client(n)
        assert _wait_for(server, 5 + 2 * n) == 5 + 2 * n
    finally:
        client.close()


@pytest.mark.parametrize("piece", [1, 7, 40])
def test_concurrent_counts_replies_that_come_in_pieces(
    servers: list[TinyServer], compiled: bool, piece: int
) -> None:
    server = _server(servers, True, 100, piece=piece)
    client = _echo_client.Concurrent(server.endpoint, 100, 3, compiled=compiled)
    try:
        client(20)
        assert _wait_for(server, 23) == 23
    finally:
        client.close()


@pytest.mark.parametrize("size", [32, 1024, 64 * 1024])
def test_round_trip_makes_n_round_trips_and_keeps_the_last_reply(
    servers: list[TinyServer], compiled: bool, size: int
) -> None:
    server = _server(servers, True, size, piece=4096 if size > 4096 else 0)
    client = _echo_client.RoundTrip(server.endpoint, size, compiled=compiled)
    try:
        assert server.requests == 1
        client.buffer[:] = bytes(len(client.buffer))
        client(25)
        assert server.requests == 26
        assert bytes(client.buffer) == server.reply
        assert _wait_for(server, 26) == 26
    finally:
        client.close()


# --------------------------------------------------------------------------------------------
# Failures: both loops raise BenchCheckError.


def test_concurrent_raises_when_the_server_closes_a_connection(
    servers: list[TinyServer], compiled: bool
) -> None:
    server = _server(servers, True, 32, close_at=3)
    client = _echo_client.Concurrent(server.endpoint, 32, 2, compiled=compiled)
    try:
        with pytest.raises(BenchCheckError, match="server closed a connection"):
            client(100)
    finally:
        client.close()


def test_round_trip_raises_when_the_server_closes_the_connection(
    servers: list[TinyServer], compiled: bool
) -> None:
    server = _server(servers, True, 64 * 1024, close_at=3)
    client = _echo_client.RoundTrip(server.endpoint, 64 * 1024, compiled=compiled)
    try:
        with pytest.raises(BenchCheckError, match="server closed the connection"):
            client(10)
        assert server.requests == 3
    finally:
        client.close()


def test_concurrent_raises_when_a_partial_reply_is_left_over(
    servers: list[TinyServer], compiled: bool
) -> None:
    # One byte too many after the first timed reply: every later reply is counted one byte
    # early, and one byte is left over when the last one is in.
    server = _server(servers, False, 32, extra_at=2)
    client = _echo_client.Concurrent(server.endpoint, 32, 1, compiled=compiled)
    try:
        with pytest.raises(BenchCheckError, match="partial echo was left over"):
            client(5)
    finally:
        client.close()


def test_concurrent_without_leftover_after_a_clean_run_on_the_same_connections(
    servers: list[TinyServer], compiled: bool
) -> None:
    # The counterpart of the test above: the same server without the extra byte passes.
    server = _server(servers, False, 32)
    client = _echo_client.Concurrent(server.endpoint, 32, 1, compiled=compiled)
    try:
        client(5)
        client(5)
    finally:
        client.close()


# --------------------------------------------------------------------------------------------
# Give up on a stalled server, finish short writes.


def test_concurrent_gives_up_on_a_server_that_stops_replying(
    servers: list[TinyServer], compiled: bool
) -> None:
    server = _server(servers, True, 32, silent_from=3)
    client = _echo_client.Concurrent(server.endpoint, 32, 2, compiled=compiled)
    try:
        started = time.monotonic()
        with pytest.raises(BenchCheckError, match=r"no reply for 0\.3 s"):
            client(50, timeout=0.3)
        assert 0.25 < time.monotonic() - started < 3
    finally:
        client.close()


def test_round_trip_gives_up_on_a_server_that_stops_replying_and_restores_the_socket(
    servers: list[TinyServer], compiled: bool
) -> None:
    server = _server(servers, True, 32, silent_from=3)
    client = _echo_client.RoundTrip(server.endpoint, 32, compiled=compiled)
    try:
        sock = client.sock
        before = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, 16)
        started = time.monotonic()
        with pytest.raises(BenchCheckError, match=r"no reply for 0\.3 s"):
            client(10, timeout=0.3)
        assert 0.25 < time.monotonic() - started < 3
        assert server.requests == 3
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, 16) == before
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, 16) == before
    finally:
        client.close()


class _Alarm(Exception):
    pass


def _alarm(signum: int, frame: object) -> None:
    raise _Alarm


@pytest.mark.parametrize("loop", ["concurrent", "round_trip"])
def test_compiled_loops_raise_what_a_signal_handler_raises(
    servers: list[TinyServer], loop: str
) -> None:
    _compiled_or_skip()
    assert _loadgen is not None
    server = _server(servers, True, 32, silent_from=3)
    client: Union[_echo_client.Concurrent, _echo_client.RoundTrip]
    if loop == "concurrent":
        client = _echo_client.Concurrent(server.endpoint, 32, 2, compiled=True)
    else:
        client = _echo_client.RoundTrip(server.endpoint, 32, compiled=True)
    previous = signal.signal(signal.SIGALRM, _alarm)
    try:
        started = time.monotonic()
        signal.setitimer(signal.ITIMER_REAL, 0.2)
        with pytest.raises(_Alarm):
            if isinstance(client, _echo_client.Concurrent):
                assert client.compiled_loop is not None
                client.compiled_loop(50, timeout=5.0)
            else:
                _loadgen.round_trip(client.sock.fileno(), client.frame, client.buffer, 10, 5.0)
        assert time.monotonic() - started < 2
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        client.close()


def test_compiled_round_trip_waits_on_a_non_blocking_socket(servers: list[TinyServer]) -> None:
    _compiled_or_skip()
    assert _loadgen is not None
    server = _server(servers, True, 64 * 1024, piece=4096)
    client = _echo_client.RoundTrip(server.endpoint, 64 * 1024, compiled=True)
    try:
        client.sock.setblocking(False)
        _loadgen.round_trip(client.sock.fileno(), client.frame, client.buffer, 10, 5.0)
        assert server.requests == 11
        assert bytes(client.buffer) == server.reply
    finally:
        client.close()


def test_concurrent_finishes_frames_that_the_socket_takes_in_part(
    servers: list[TinyServer], compiled: bool
) -> None:
    size = 256 * 1024
    server = _server(servers, False, size, rcvbuf=4096)
    client = _echo_client.Concurrent(server.endpoint, size, 2, compiled=compiled)
    try:
        for sock in client.socks:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        client(6)
        assert client.short_writes > 0
        assert _wait_for(server, 8) == 8
    finally:
        client.close()


def test_compiled_loops_reject_empty_frames() -> None:
    _compiled_or_skip()
    assert _loadgen is not None
    with pytest.raises(ValueError):
        _loadgen.ConcurrentEcho([0], b"", 4)
    with pytest.raises(ValueError):
        _loadgen.round_trip(0, b"", bytearray(4), 1)


# --------------------------------------------------------------------------------------------
# Which client a run uses.


def _client_in_subprocess(**env: str) -> str:
    package = os.path.dirname(os.path.dirname(_echo_client.__file__))
    environ = {**os.environ, **env, "PYTHONPATH": os.path.dirname(package)}
    out = subprocess.run(
        [sys.executable, "-c", "from turbows.bench import _echo_client as c; print(c.CLIENT)"],
        capture_output=True,
        text=True,
        env=environ,
        check=True,
    )
    return out.stdout.strip()


def test_turbows_bench_py_client_selects_the_python_loops() -> None:
    assert _client_in_subprocess(TURBOWS_BENCH_PY_CLIENT="1").startswith("Python")
    expected: Optional[str] = "compiled" if _loadgen is not None else "Python"
    assert _client_in_subprocess(TURBOWS_BENCH_PY_CLIENT="0").startswith(expected)


def test_the_report_header_names_the_client() -> None:
    import io

    from turbows.bench import _report
    from turbows.bench._runner import Settings

    info = _report.machine_info()
    assert info["e2e_client"] == _echo_client.CLIENT
    out = io.StringIO()
    _report.describe_machine(info, Settings(min_time=0.1, repeats=3, warmup=0.01), out)
    assert f"end-to-end client: {_echo_client.CLIENT}\n" in out.getvalue()


def test_asking_for_the_compiled_loops_without_them_is_an_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_echo_client, "_loadgen", None)
    with pytest.raises(RuntimeError, match="not available"):
        _echo_client.RoundTrip(_echo_client.Endpoint(1, True), 32, compiled=True)
