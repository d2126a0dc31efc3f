"""The blocking WebSocket server: :func:`serve` and :class:`Server`, a thread per connection."""

from __future__ import annotations

import logging
import socket
import ssl as ssl_module
import threading
import time
from typing import Any, Callable, Optional, Sequence, Set, Union

from .._enums import State
from ..asyncio._exceptions import WebSocketClosed
from ..asyncio._server import Accept, Reject, Response, answer_request
from ..connection import DEFAULT_MAX_HEADER_SIZE, DEFAULT_MAX_HEADERS, ServerConnection
from ..events import Request
from ..handshake import OriginPolicy
from ._io import TLS, wait_readable
from ._websocket import DEFAULT_MAX_QUEUE, WebSocket

__all__ = ["Server", "ServerWebSocket", "serve"]

logger = logging.getLogger("turbows")

Handler = Callable[["ServerWebSocket"], Any]
ProcessRequest = Callable[[Request], Union[Accept, Reject, Response, None]]


class ServerWebSocket(WebSocket):
    """The server side of a connection; see :class:`WebSocket`.

    Attributes:
        request: the opening handshake's :class:`turbows.Request` (``path``, ``query``,
            ``headers``, ``origin``, ``remote_address``, ``tls``).
        context: what ``process_request`` handed over with ``Accept(context=...)``, or None.
    """

    request: Request
    context: Any = None

    def _read_request(self, deadline: Optional[float]) -> bool:
        """Read until the request arrived; False if the connection ended or timed out."""
        if not self._receive_until(lambda: self.request is not None, deadline):
            logger.info("opening handshake timed out with %s", self.remote_address)
            return False
        self._flush(True)  # an automatic rejection (400, 403, 426, ...)
        return self.request is not None and self._closed is None

    def _answer(self, decision: Any) -> bool:
        """Accept or reject the waiting request; return whether the connection opened."""
        conn = self._conn
        with self._lock:
            opened = answer_request(conn, self.request, decision, time.monotonic(), logger.log)
            if opened:
                self.context = decision.context if decision is not None else None
            self._handle(conn.events())
        self._flush(True)
        return opened


class Server:
    """A blocking WebSocket server listening on a socket; made by :func:`serve`.

    ``with serve(...) as server:`` accepts connections in a background thread for the
    duration of the block and shuts down at its end; ``server.serve_forever()`` blocks
    until :meth:`shutdown` is called (from a handler or another thread).

    Attributes:
        socket: the listening socket.
        connections: the open connections.
    """

    def __init__(
        self,
        handler: Handler,
        sock: socket.socket,
        *,
        ssl: Optional[ssl_module.SSLContext],
        process_request: Optional[ProcessRequest],
        open_timeout: Optional[float],
        max_queue: int,
        conn_kwargs: Any,
    ) -> None:
        self._handler = handler
        self.socket = sock
        self._ssl = ssl
        self._process_request = process_request
        self._open_timeout = open_timeout
        self._max_queue = max_queue
        self._conn_kwargs = conn_kwargs
        self.connections: Set[ServerWebSocket] = set()
        self._lock = threading.Lock()
        self._threads: Set[threading.Thread] = set()
        self._closing = False
        self._accepting: Optional[threading.Thread] = None
        self._stopped = threading.Event()
        self._wake_r, self._wake_w = socket.socketpair()
        ServerConnection(**conn_kwargs)  # fail now on a bad option

    @property
    def port(self) -> int:
        """The port the server listens on (useful with ``port=0``)."""
        return int(self.socket.getsockname()[1])

    def serve_forever(self) -> None:
        """Accept connections until :meth:`shutdown` is called.

        Called inside ``with serve(...)``, where a background thread already accepts, it
        waits until the server is shut down.
        """
        accepting = self._accepting
        if accepting is not None and accepting is not threading.current_thread():
            self._stopped.wait()
            return
        try:
            while not self._closing:
                ready = wait_readable([self.socket, self._wake_r], None)
                if self._closing:
                    break
                if self.socket not in ready:
                    continue
                try:
                    sock, address = self.socket.accept()
                except OSError as exc:
                    # Out of descriptors or a connection reset before accept: go on.
                    logger.warning("accept failed: %r", exc)
                    time.sleep(0.1)
                    continue
                thread = threading.Thread(
                    target=self._connection,
                    args=(sock, address),
                    name=f"turbows-server-{address}",
                    daemon=True,
                )
                with self._lock:
                    self._threads.add(thread)
                thread.start()
        finally:
            self._stopped.set()

    def start(self) -> "Server":
        """Accept connections in a background thread and return at once."""
        if self._accepting is None:
            self._accepting = threading.Thread(
                target=self.serve_forever, name="turbows-server", daemon=True
            )
            self._accepting.start()
        return self

    def shutdown(
        self, code: int = 1001, reason: str = "server shutting down", timeout: float = 10.0
    ) -> None:
        """Stop accepting, close every connection with ``code`` (1001: going away), and
        wait up to ``timeout`` seconds for the handlers to return."""
        self._closing = True
        try:
            self._wake_w.send(b"\0")
        except OSError:
            pass
        accepting = self._accepting
        if accepting is not None and accepting is not threading.current_thread():
            accepting.join(timeout)
        self.socket.close()
        with self._lock:
            connections = list(self.connections)
        closers = [
            threading.Thread(target=ws.close, args=(code, reason), daemon=True)
            for ws in connections
        ]
        for closer in closers:
            closer.start()
        end = time.monotonic() + timeout
        for closer in closers:
            closer.join(max(0.0, end - time.monotonic()))
        with self._lock:
            threads = list(self._threads)
        for thread in threads:
            if thread is not threading.current_thread():
                thread.join(max(0.0, end - time.monotonic()))
        for ws in connections:
            if ws.state is not State.CLOSED:
                ws.abort()
        self._wake_r.close()
        self._wake_w.close()

    def __enter__(self) -> "Server":
        return self.start()

    def __exit__(self, *exc_info: Any) -> None:
        self.shutdown()

    def _connection(self, sock: socket.socket, address: Any) -> None:
        try:
            self._serve_connection(sock)
        except Exception:
            logger.exception("connection from %s failed", address)
        finally:
            with self._lock:
                self._threads.discard(threading.current_thread())

    def _serve_connection(self, sock: socket.socket) -> None:
        deadline = None if self._open_timeout is None else time.monotonic() + self._open_timeout
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        tls = None
        if self._ssl is not None:
            tls = TLS(self._ssl, True)
            try:
                tls.handshake(sock, deadline)
            except (OSError, TimeoutError) as exc:
                logger.info("TLS handshake failed: %r", exc)
                sock.close()
                return
        ws = ServerWebSocket(
            sock, ServerConnection(**self._conn_kwargs), tls=tls, max_queue=self._max_queue
        )
        if not ws._read_request(deadline):
            ws.abort()
            return
        if self._closing:
            opened = ws._answer(Reject(503, [("Retry-After", "5")], b"server shutting down"))
        else:
            decision: Any = None
            if self._process_request is not None:
                try:
                    decision = self._process_request(ws.request)
                except Exception:
                    logger.exception("process_request failed")
                    decision = Reject(500, body=b"Internal Server Error")
            opened = ws._answer(decision)
        if not opened:
            ws.abort()
            return
        with self._lock:
            self.connections.add(ws)
        ws._start()
        try:
            self._handler(ws)
        except WebSocketClosed as exc:
            logger.debug("handler ended on a closed connection: %s", exc)
        except Exception:
            logger.exception("connection handler failed")
            ws.close(1011, "internal error")
        else:
            ws.close()
        finally:
            ws.wait_closed()
            with self._lock:
                self.connections.discard(ws)


def serve(
    handler: Handler,
    host: Optional[str] = None,
    port: Optional[int] = None,
    *,
    sock: Optional[socket.socket] = None,
    ssl: Optional[ssl_module.SSLContext] = None,
    process_request: Optional[ProcessRequest] = None,
    subprotocols: Sequence[str] = (),
    origins: OriginPolicy = None,
    extensions: Optional[Sequence[Any]] = None,
    open_timeout: Optional[float] = 10.0,
    ping_interval: Optional[float] = 20.0,
    ping_timeout: Optional[float] = 20.0,
    max_missed_pongs: int = 1,
    close_timeout: Optional[float] = 10.0,
    max_message_size: Optional[int] = 1 << 20,
    max_queue: int = DEFAULT_MAX_QUEUE,
    max_header_size: int = DEFAULT_MAX_HEADER_SIZE,
    max_headers: int = DEFAULT_MAX_HEADERS,
    text_as_bytes: bool = False,
    backlog: int = 128,
) -> Server:
    """Create a blocking WebSocket server, listening at once; a thread per connection.

    For tests and small tools (for many connections, use :func:`turbows.asyncio.serve`)::

        def echo(ws):
            for message in ws:
                ws.send(message)

        with turbows.sync.serve(echo, "127.0.0.1", 0) as server:
            ...  # connect to server.port; connections are accepted in the background

    Args:
        handler: ``handler(ws)``, run in the connection's thread once the handshake is
            accepted. When it returns, the connection is closed with 1000; when it raises,
            with 1011 (and the error is logged).
        host, port: where to listen (``port=0`` picks a free port: read ``server.port``).
        sock: listen on this bound socket instead.
        ssl: an :class:`ssl.SSLContext` for ``wss://``.
        process_request: ``fn(request)`` called with each :class:`turbows.Request` before
            the handler: return None or :class:`turbows.asyncio.Accept` to accept, or
            :class:`turbows.asyncio.Reject` to refuse with an HTTP status (as
            :func:`turbows.asyncio.serve`'s hook, which also sees plain HTTP requests).
        subprotocols: the subprotocols this server speaks, in its order of preference.
        origins: an allow-list of ``Origin`` values, or a callable; others get 403.
        extensions: extension objects; default ``[PerMessageDeflate()]``; ``()`` for none.
        open_timeout: seconds a client has for TLS and the opening handshake.
        ping_interval, ping_timeout, max_missed_pongs: the heartbeat (None disables it).
        close_timeout: seconds the closing handshake may take before aborting.
        max_message_size: the largest incoming message (larger: close 1009).
        max_queue: messages kept for ``recv`` before the connection stops reading.
        max_header_size, max_headers: limits on the request head.
        text_as_bytes: deliver text messages as UTF-8 ``bytes`` instead of ``str``.
        backlog: the listening socket's backlog.

    Returns:
        The listening :class:`Server`.
    """
    if max_queue < 1:
        raise ValueError("max_queue must be >= 1")
    if extensions is None:
        from ..extensions import PerMessageDeflate

        extensions = (PerMessageDeflate(),)
    conn_kwargs = dict(
        max_message_size=max_message_size,
        subprotocols=subprotocols,
        extensions=extensions,
        origins=origins,
        text_as_bytes=text_as_bytes,
        ping_interval=ping_interval,
        ping_timeout=ping_timeout,
        max_missed_pongs=max_missed_pongs,
        close_timeout=close_timeout,
        max_header_size=max_header_size,
        max_headers=max_headers,
        http_requests=process_request is not None,
    )
    if sock is None:
        if port is None:
            raise ValueError("serve() needs a port (0 for any free one) or a sock")
        sock = socket.create_server((host or "", port), backlog=backlog)
    try:
        return Server(
            handler,
            sock,
            ssl=ssl,
            process_request=process_request,
            open_timeout=open_timeout,
            max_queue=max_queue,
            conn_kwargs=conn_kwargs,
        )
    except BaseException:
        sock.close()
        raise
