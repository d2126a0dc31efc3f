"""turbows.sync through real sockets: echo, fragments, pings and the heartbeat, every close
path, rejections, thread-safe sends and backpressure."""

from __future__ import annotations

import http.client
import socket
import sys
import threading
import time
from typing import Any, List

import pytest
from sync_helpers import RawServer, echo, read_until_closed, uri, wait_for

import turbows
import turbows.sync as ts
from turbows.sync._io import READ_SIZE

# ---------------------------------------------------------------------------------------------
# Echo and fragments.


@pytest.mark.parametrize("compression", [True, False])
def test_echo_of_text_binary_and_large_messages(compression: bool) -> None:
    extensions = None if compression else ()
    with ts.serve(echo, "127.0.0.1", 0, extensions=extensions) as server:
        with ts.connect(uri(server), extensions=extensions) as ws:
            assert bool(ws.extensions) is compression
            for message in ("hello", "żółw " * 1000, b"\x00\xff" * 70_000, b"", ""):
                ws.send(message)
                assert ws.recv(timeout=5) == message
            ws.send(bytearray(b"ba"))
            assert ws.recv(timeout=5) == b"ba"
            ws.send(memoryview(b"mv"))
            assert ws.recv(timeout=5) == b"mv"
        assert ws.state is turbows.State.CLOSED
        assert ws.close_code == 1000 and ws.closed_event is not None and ws.closed_event.clean


def test_iteration_ends_on_a_normal_close_after_every_message() -> None:
    def speaker(ws: ts.ServerWebSocket) -> None:
        for i in range(5):
            ws.send(f"m{i}")
        ws.close(1000, "done")

    with ts.serve(speaker, "127.0.0.1", 0) as server:
        with ts.connect(uri(server)) as ws:
            assert list(ws) == [f"m{i}" for i in range(5)]
            assert (ws.close_code, ws.close_reason) == (1000, "done")
            with pytest.raises(ts.ClosedOK):
                ws.recv()


def test_fragmented_messages_both_ways() -> None:
    received: List[Any] = []

    def handler(ws: ts.ServerWebSocket) -> None:
        for message in ws:
            received.append(message)
            ws.send(iter([message[:2], message[2:4], message[4:]]))  # fragments back

    with ts.serve(handler, "127.0.0.1", 0) as server:
        with ts.connect(uri(server)) as ws:
            ws.send(["hel", "lo ", "wörld"])
            assert ws.recv(timeout=5) == "hello wörld"
            ws.send([b"\x01\x02", b"", b"\x03"])
            assert ws.recv(timeout=5) == b"\x01\x02\x03"
            with pytest.raises(TypeError):
                ws.send(["text", b"then bytes"])  # the mixed message is refused
    assert received == ["hello wörld", b"\x01\x02\x03"]


def test_send_rejects_what_is_not_a_message() -> None:
    with ts.serve(echo, "127.0.0.1", 0) as server:
        with ts.connect(uri(server)) as ws:
            for bad in ({"a": 1}, 42):
                with pytest.raises(TypeError):
                    ws.send(bad)  # type: ignore[arg-type]
            ws.send("still open")
            assert ws.recv(timeout=5) == "still open"


def test_recv_times_out_and_the_connection_stays_usable() -> None:
    with ts.serve(echo, "127.0.0.1", 0) as server:
        with ts.connect(uri(server)) as ws:
            start = time.monotonic()
            with pytest.raises(TimeoutError):
                ws.recv(timeout=0.2)
            assert 0.15 < time.monotonic() - start < 2.0
            ws.send("after")
            assert ws.recv(timeout=5) == "after"


def test_text_as_bytes_delivers_validated_utf8_bytes() -> None:
    with ts.serve(echo, "127.0.0.1", 0) as server:
        with ts.connect(uri(server), text_as_bytes=True) as ws:
            ws.send("żółw")
            assert ws.recv(timeout=5) == "żółw".encode()


# ---------------------------------------------------------------------------------------------
# Threads: sends from many threads, backpressure.


def test_sends_from_many_threads_arrive_whole_and_in_each_threads_order() -> None:
    got: List[str] = []
    done = threading.Event()

    def collector(ws: ts.ServerWebSocket) -> None:
        for message in ws:
            got.append(message)  # type: ignore[arg-type]
            if len(got) == 8 * 200:
                done.set()

    with ts.serve(collector, "127.0.0.1", 0) as server:
        with ts.connect(uri(server), extensions=()) as ws:

            def sender(n: int) -> None:
                for i in range(200):
                    if i % 50 == 0:
                        ws.send([f"{n}:", f"{i}:", "x" * 3000])  # fragmented, whole
                    else:
                        ws.send(f"{n}:{i}:" + "x" * (i * 37 % 5000))

            threads = [threading.Thread(target=sender, args=(n,)) for n in range(8)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(30)
            assert done.wait(20)
    for n in range(8):
        mine = [m.split(":") for m in got if m.startswith(f"{n}:")]
        assert [int(i) for _, i, _ in mine] == list(range(200))
        for _, i, body in mine:
            assert body == "x" * (3000 if int(i) % 50 == 0 else int(i) * 37 % 5000)


def test_a_client_that_does_not_recv_stops_reading_at_max_queue() -> None:
    sent = threading.Event()

    def flood(ws: ts.ServerWebSocket) -> None:
        for i in range(300):
            ws.send(f"{i:08d}" + "y" * 65536)
        sent.set()
        for _ in ws:
            pass

    with ts.serve(flood, "127.0.0.1", 0) as server:
        with ts.connect(uri(server), max_queue=4, extensions=()) as ws:
            time.sleep(0.5)
            # Reading stops once max_queue messages wait (one read may bring more: at most
            # READ_SIZE bytes of them); the rest waits in the socket buffers and the server's
            # send blocks (300 messages of 64 KiB do not fit in them).
            assert 4 <= len(ws._queue) <= 4 + READ_SIZE // 65536
            assert not sent.is_set()
            for i in range(300):
                assert ws.recv(timeout=5)[:8] == f"{i:08d}"
            assert sent.wait(5)


# ---------------------------------------------------------------------------------------------
# Pings and the heartbeat.


def test_ping_returns_the_round_trip_time() -> None:
    with ts.serve(echo, "127.0.0.1", 0) as server:
        with ts.connect(uri(server)) as ws:
            rtt = ws.ping(timeout=5)
            assert 0.0 < rtt < 5.0
            assert ws.latency == rtt
            assert ws.ping(b"custom", timeout=5) >= 0.0


def test_ping_times_out_when_the_peer_does_not_answer() -> None:
    stop = threading.Event()

    def deaf(sock: socket.socket, conn: turbows.ServerConnection) -> None:
        stop.wait(10)  # reads nothing, answers nothing

    with RawServer(deaf) as server:
        ws = ts.connect(uri(server), ping_interval=None, close_timeout=0.5)
        try:
            with pytest.raises(TimeoutError):
                ws.ping(timeout=0.3)
        finally:
            stop.set()
            ws.close()
        assert ws.close_code == 1006  # the peer never answered the close either


def test_the_heartbeat_aborts_a_dead_peer() -> None:
    stop = threading.Event()

    def deaf(sock: socket.socket, conn: turbows.ServerConnection) -> None:
        stop.wait(10)

    with RawServer(deaf) as server:
        ws = ts.connect(uri(server), ping_interval=0.2, ping_timeout=0.3)
        start = time.monotonic()
        try:
            with pytest.raises(ts.ClosedError) as info:
                ws.recv(timeout=5)
        finally:
            stop.set()
        assert 0.4 < time.monotonic() - start < 3.0
        assert info.value.code == 1006 and info.value.reason == "keepalive ping timeout"
        assert ws.closed_event is not None and ws.closed_event.sent_code == 1011
        ws.close()  # nothing more to do


def test_the_heartbeat_keeps_a_live_connection_open_and_measures_latency() -> None:
    with ts.serve(echo, "127.0.0.1", 0, ping_interval=0.05, ping_timeout=1.0) as server:
        with ts.connect(uri(server), ping_interval=0.05, ping_timeout=1.0) as ws:
            time.sleep(0.5)
            assert ws.state is turbows.State.OPEN
            assert ws.latency is not None and ws.latency >= 0.0
            ws.send("alive")
            assert ws.recv(timeout=5) == "alive"


def test_the_server_heartbeat_aborts_a_client_that_stops_answering() -> None:
    closed: List[Any] = []

    def handler(ws: ts.ServerWebSocket) -> None:
        try:
            for _ in ws:
                pass
        finally:
            closed.append(ws.closed_event)

    with ts.serve(handler, "127.0.0.1", 0, ping_interval=0.2, ping_timeout=0.3) as server:
        conn = turbows.ClientConnection(uri(server), ping_interval=None)
        with socket.create_connection(("127.0.0.1", server.port)) as sock:
            sock.sendall(conn.data_to_send())
            conn.receive_data(sock.recv(65536))
            assert isinstance(conn.events()[0], turbows.Accepted)
            wait_for(lambda: bool(closed), 5)  # read nothing: no pong goes back
    assert closed[0].code == 1006 and closed[0].reason == "keepalive ping timeout"


def test_pings_from_the_peer_are_answered() -> None:
    def pinger(sock: socket.socket, conn: turbows.ServerConnection) -> None:
        conn.ping(b"are you there")
        sock.sendall(conn.data_to_send())
        sock.settimeout(5)
        while True:
            conn.receive_data(sock.recv(65536))
            if any(isinstance(e, turbows.PingAnswered) for e in conn.events()):
                break
        conn.close(1000)
        sock.sendall(conn.data_to_send())
        read_until_closed(sock, conn)

    with RawServer(pinger) as server:
        with ts.connect(uri(server)) as ws:
            with pytest.raises(ts.ClosedOK):
                ws.recv(timeout=5)


# ---------------------------------------------------------------------------------------------
# Closing.


@pytest.mark.parametrize(
    ("code", "reason", "error"),
    [(1000, "bye", ts.ClosedOK), (1001, "", ts.ClosedOK), (4000, "app", ts.ClosedError)],
)
def test_the_server_closes_with_a_code(code: int, reason: str, error: type) -> None:
    def closer(ws: ts.ServerWebSocket) -> None:
        ws.close(code, reason)

    with ts.serve(closer, "127.0.0.1", 0) as server:
        with ts.connect(uri(server)) as ws:
            with pytest.raises(error) as info:
                ws.recv(timeout=5)
            assert (info.value.code, info.value.reason, info.value.clean) == (code, reason, True)
            with pytest.raises(error):
                ws.send("too late")
            with pytest.raises(error):
                ws.ping()


def test_the_client_closes_and_the_handler_sees_it() -> None:
    seen: List[Any] = []

    def handler(ws: ts.ServerWebSocket) -> None:
        with pytest.raises(ts.ClosedError):  # 4001 is not a normal close
            for _ in ws:
                pass
        seen.append(ws.closed_event)

    with ts.serve(handler, "127.0.0.1", 0) as server:
        ws = ts.connect(uri(server))
        ws.close(4001, "leaving")
        ws.close()  # a second close does nothing
        wait_for(lambda: bool(seen))
    assert (ws.close_code, ws.closed_event.initiator) == (4001, "local")  # type: ignore[union-attr]
    assert (seen[0].code, seen[0].reason, seen[0].clean) == (4001, "leaving", True)


def test_a_handler_that_raises_closes_with_1011() -> None:
    def broken(ws: ts.ServerWebSocket) -> None:
        raise RuntimeError("boom")

    with ts.serve(broken, "127.0.0.1", 0) as server:
        with ts.connect(uri(server)) as ws:
            with pytest.raises(ts.ClosedError) as info:
                ws.recv(timeout=5)
    assert (info.value.code, info.value.reason) == (1011, "internal error")


def test_a_handler_that_returns_closes_with_1000() -> None:
    with ts.serve(lambda ws: None, "127.0.0.1", 0) as server:
        with ts.connect(uri(server)) as ws:
            assert list(ws) == []
    assert ws.close_code == 1000


def test_the_peer_dropping_tcp_is_1006() -> None:
    def dropper(sock: socket.socket, conn: turbows.ServerConnection) -> None:
        sock.shutdown(socket.SHUT_RDWR)

    with RawServer(dropper) as server:
        with ts.connect(uri(server)) as ws:
            with pytest.raises(ts.ClosedError) as info:
                ws.recv(timeout=5)
    assert (info.value.code, info.value.clean) == (1006, False)


@pytest.mark.parametrize("closing_side", ["client", "server"])
def test_closing_with_a_full_queue_reads_on_to_the_peers_close_frame(closing_side: str) -> None:
    # A side whose queue is full has stopped reading; its close() must still read the
    # peer's close frame, not wait for the close timeout and end with 1006. What was queued
    # stays for recv; what comes after the close beyond the queue is dropped.
    filler = "x" * 2000  # 300 of them are more than one read brings
    seen: List[Any] = []

    def flood(ws: Any) -> None:
        for i in range(300):
            ws.send(f"m{i}:{filler}")
        with pytest.raises(turbows.TurboWSError):
            while True:
                ws.recv(timeout=10)

    def close_and_drain(ws: Any) -> None:
        time.sleep(0.3)  # the peer's messages fill the queue
        start = time.monotonic()
        ws.close()
        elapsed = time.monotonic() - start
        got = []
        with pytest.raises(ts.ClosedOK):
            while True:
                got.append(ws.recv(timeout=1))
        seen.append((elapsed, ws.close_code, got))

    handler = close_and_drain if closing_side == "server" else flood
    with ts.serve(handler, "127.0.0.1", 0, max_queue=4, close_timeout=5) as server:
        with ts.connect(uri(server), max_queue=4, close_timeout=5) as ws:
            if closing_side == "client":
                close_and_drain(ws)
            else:
                flood(ws)
        wait_for(lambda: bool(seen))
    elapsed, code, got = seen[0]
    assert code == 1000 and elapsed < 2, (code, elapsed)
    assert got == [f"m{i}:{filler}" for i in range(len(got))] and 4 <= len(got) < 300


def test_the_close_timeout_aborts_a_peer_that_never_answers_the_close() -> None:
    stop = threading.Event()

    def deaf(sock: socket.socket, conn: turbows.ServerConnection) -> None:
        stop.wait(10)

    with RawServer(deaf) as server:
        ws = ts.connect(uri(server), close_timeout=0.3, ping_interval=None)
        start = time.monotonic()
        ws.close()
        stop.set()
        assert 0.25 < time.monotonic() - start < 3.0
    assert (ws.close_code, ws.close_reason) == (1006, "close timeout")


def test_a_peer_that_answers_the_close_but_keeps_tcp_open_is_closed_cleanly() -> None:
    def lingering(sock: socket.socket, conn: turbows.ServerConnection) -> None:
        sock.settimeout(5)
        while conn.state is turbows.State.OPEN:
            conn.receive_data(sock.recv(65536))
        sock.sendall(conn.data_to_send())  # the echoed close frame
        time.sleep(1.0)  # the TCP close comes late: the client's close timeout ends it

    with RawServer(lingering) as server:
        ws = ts.connect(uri(server), close_timeout=0.3)
        ws.close(1000)
    assert ws.closed_event is not None and ws.closed_event.clean and ws.close_code == 1000


def test_a_protocol_error_from_the_server_closes_with_1002() -> None:
    def unmasked_from_client_side(sock: socket.socket, conn: turbows.ServerConnection) -> None:
        # A masked frame from a server is a protocol error (RFC 6455 5.1).
        sock.sendall(turbows.build_frame(turbows.Opcode.TEXT, "hi", mask=b"abcd"))
        read_until_closed(sock, conn)

    with RawServer(unmasked_from_client_side) as server:
        with ts.connect(uri(server)) as ws:
            with pytest.raises(ts.ClosedError) as info:
                ws.recv(timeout=5)
    assert ws.closed_event is not None and ws.closed_event.sent_code == 1002
    assert info.value.code in (1002, 1006)


def test_a_protocol_error_from_the_client_closes_the_server_side_with_1002() -> None:
    seen: List[Any] = []

    def handler(ws: ts.ServerWebSocket) -> None:
        try:
            for _ in ws:
                pass
        finally:
            seen.append(ws.closed_event)

    with ts.serve(handler, "127.0.0.1", 0) as server:
        conn = turbows.ClientConnection(uri(server), ping_interval=None)
        with socket.create_connection(("127.0.0.1", server.port)) as sock:
            sock.sendall(conn.data_to_send())
            conn.receive_data(sock.recv(65536))
            sock.sendall(b"\x81\x02hi")  # unmasked client frame
            events = read_until_closed(sock, conn)
        wait_for(lambda: bool(seen))
    assert events[-1].code == 1002
    assert seen[0].sent_code == 1002


def test_close_refuses_a_reserved_code() -> None:
    with ts.serve(echo, "127.0.0.1", 0) as server:
        with ts.connect(uri(server)) as ws:
            with pytest.raises(ValueError):
                ws.close(1006)
            ws.send("open")
            assert ws.recv(timeout=5) == "open"


def test_abort_is_1006_at_once() -> None:
    with ts.serve(echo, "127.0.0.1", 0) as server:
        ws = ts.connect(uri(server))
        ws.abort()
        assert ws.wait_closed(5)
        assert ws.close_code == 1006


def test_close_from_another_thread_ends_a_blocked_recv() -> None:
    with ts.serve(echo, "127.0.0.1", 0) as server:
        with ts.connect(uri(server)) as ws:
            threading.Timer(0.2, ws.close).start()
            with pytest.raises(ts.ClosedOK):
                ws.recv()


def test_server_shutdown_sends_1001_to_every_client() -> None:
    server = ts.serve(echo, "127.0.0.1", 0).start()
    clients = [ts.connect(uri(server)) for _ in range(3)]
    wait_for(lambda: len(server.connections) == 3)
    server.shutdown()
    for ws in clients:
        with pytest.raises(ts.ClosedOK):
            ws.recv(timeout=5)
        assert ws.close_code == 1001
        ws.close()
    with pytest.raises(OSError):
        ts.connect(uri(server), open_timeout=2)


def test_serve_forever_returns_after_shutdown_from_a_handler() -> None:
    server = ts.serve(lambda ws: server.shutdown(timeout=1), "127.0.0.1", 0)
    threading.Timer(0.2, lambda: ts.connect(uri(server)).close()).start()
    start = time.monotonic()
    server.serve_forever()
    assert time.monotonic() - start < 5


# ---------------------------------------------------------------------------------------------
# The opening handshake.


def test_process_request_rejects_with_a_status() -> None:
    def auth(request: turbows.Request) -> Any:
        if request.headers.get("Authorization") != "Bearer s3cret":
            return ts.Reject(401, [("WWW-Authenticate", "Bearer")], "login first")
        return None

    with ts.serve(echo, "127.0.0.1", 0, process_request=auth) as server:
        with pytest.raises(ts.HandshakeRejected) as info:
            ts.connect(uri(server))
        assert info.value.status == 401 and info.value.body == b"login first"
        assert info.value.headers.get("WWW-Authenticate") == "Bearer"
        with ts.connect(uri(server), extra_headers=[("Authorization", "Bearer s3cret")]) as ws:
            ws.send("in")
            assert ws.recv(timeout=5) == "in"


def test_process_request_answers_a_health_check_over_plain_http() -> None:
    def health(request: turbows.Request) -> Any:
        if not request.upgrade:
            return ts.Response(200, [("Content-Type", "text/plain")], "ok\n")
        return None

    with ts.serve(echo, "127.0.0.1", 0, process_request=health) as server:
        client = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
        client.request("GET", "/health")
        response = client.getresponse()
        assert (response.status, response.read()) == (200, b"ok\n")
        client.close()


def test_process_request_sees_peer_and_query_and_hands_context_to_the_handler() -> None:
    def auth(request: turbows.Request) -> Any:
        if request.query.get("token") != "s3cret" or request.tls is not None:
            return ts.Reject(401)
        return ts.Accept(context=("ada", request.remote_address[0]))

    def handler(ws: ts.ServerWebSocket) -> None:
        ws.send(f"{ws.context[0]} from {ws.context[1]}")

    with ts.serve(handler, "127.0.0.1", 0, process_request=auth) as server:
        with ts.connect(uri(server) + "?token=s3cret") as ws:
            assert ws.recv(timeout=5) == "ada from 127.0.0.1"


def test_accept_picks_a_subprotocol_and_adds_headers() -> None:
    def pick(request: turbows.Request) -> Any:
        return ts.Accept("chat.v2", [("X-Server", "sync")])

    def handler(ws: ts.ServerWebSocket) -> None:
        ws.send(f"{ws.subprotocol} {ws.request.path}")

    with ts.serve(
        handler, "127.0.0.1", 0, subprotocols=["chat.v2"], process_request=pick
    ) as server:
        with ts.connect(uri(server, "/room?id=1"), subprotocols=["chat.v1", "chat.v2"]) as ws:
            assert ws.subprotocol == "chat.v2"
            assert ws.response_headers.get("X-Server") == "sync"
            assert ws.recv(timeout=5) == "chat.v2 /room?id=1"


def test_an_origin_not_allowed_gets_403() -> None:
    with ts.serve(echo, "127.0.0.1", 0, origins=["https://good.example"]) as server:
        with pytest.raises(ts.HandshakeRejected) as info:
            ts.connect(uri(server), origin="https://evil.example")
        assert info.value.status == 403
        with ts.connect(uri(server), origin="https://good.example") as ws:
            assert ws.state is turbows.State.OPEN


def test_a_server_that_is_not_a_websocket_server() -> None:
    def plain(sock: socket.socket) -> None:
        sock.recv(65536)
        sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello")

    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def run() -> None:
        sock, _ = listener.accept()
        with sock:
            plain(sock)

    t = threading.Thread(target=run)
    t.start()
    try:
        with pytest.raises(ts.HandshakeRejected) as info:
            ts.connect(f"ws://127.0.0.1:{port}/")
        assert info.value.status == 200 and info.value.body == b"hello"
    finally:
        t.join(5)
        listener.close()


def test_open_timeout_against_a_server_that_says_nothing() -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    try:
        start = time.monotonic()
        with pytest.raises(ts.OpenTimeout):
            ts.connect(f"ws://127.0.0.1:{listener.getsockname()[1]}/", open_timeout=0.3)
        assert time.monotonic() - start < 3
        conn, _ = listener.accept()
        conn.close()
    finally:
        listener.close()


def test_a_client_that_never_finishes_its_handshake_is_dropped() -> None:
    with ts.serve(echo, "127.0.0.1", 0, open_timeout=0.3) as server:
        with socket.create_connection(("127.0.0.1", server.port)) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\n")
            sock.settimeout(5)
            assert sock.recv(100) == b""  # closed by the server


def test_a_bad_uri_or_option_fails_before_connecting() -> None:
    with pytest.raises(ValueError):
        ts.connect("http://127.0.0.1/")
    with pytest.raises(ValueError):
        ts.connect("ws://127.0.0.1:1/", max_queue=0)
    with pytest.raises(ValueError):
        ts.serve(echo, "127.0.0.1", 0, ping_interval=-1)


def test_connection_refused_is_an_oserror() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(ConnectionRefusedError):
        ts.connect(f"ws://127.0.0.1:{port}/")


# ---------------------------------------------------------------------------------------------
# Peers that never read.


@pytest.mark.skipif(
    not hasattr(socket, "MSG_DONTWAIT") or sys.platform == "win32",
    reason="the background thread writes with MSG_DONTWAIT (and resource is POSIX)",
)
def test_a_peer_that_floods_pings_and_never_reads_cannot_grow_the_client() -> None:
    """The client answers pings with pongs; a peer that never reads them must not make it
    buffer without bound: once its pongs cannot be written, the client stops reading, and
    its heartbeat (still running) finds the peer dead."""
    flooded = []
    stop = threading.Event()
    ping = turbows.build_frame(turbows.Opcode.PING, b"p" * 125)
    chunk = ping * 512

    def flood(sock: socket.socket, conn: turbows.ServerConnection) -> None:
        sock.setblocking(False)
        total = 0
        end = time.monotonic() + 3.0
        view = memoryview(b"")
        while time.monotonic() < end and not stop.is_set():
            if not view:
                view = memoryview(chunk)  # whole frames only: a partial send resumes
            try:
                sent = sock.send(view)
                total += sent
                view = view[sent:]
            except BlockingIOError:
                time.sleep(0.01)
            except OSError:
                break  # the client gave up on us
        flooded.append(total)

    import resource

    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    with RawServer(flood) as server:
        # Small socket buffers on both sides, so that the client's pongs (a few KiB per read
        # of pings, the connection answering a bounded number per read) fill them quickly.
        server._listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        sock.connect(("127.0.0.1", server.port))
        ws = ts.connect(
            uri(server), sock=sock, ping_interval=0.3, ping_timeout=0.3, close_timeout=0.3
        )
        start = time.monotonic()
        try:
            with pytest.raises(ts.ClosedError) as info:
                ws.recv(timeout=10)
            assert time.monotonic() - start < 3.0
        finally:
            stop.set()
    assert info.value.reason == "keepalive ping timeout"
    # The peer pushed tens of MB of pings; the process's peak memory barely moved.
    assert flooded[0] > 4 * 1024 * 1024, flooded
    growth = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_before
    assert growth < 64 * 1024, f"peak RSS grew by {growth} KiB"
