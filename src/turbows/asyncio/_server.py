"""The asyncio WebSocket server: :func:`serve` and :class:`Server`."""

from __future__ import annotations

import asyncio
import errno
import inspect
import logging
import os
import socket
from typing import (
    Any,
    Awaitable,
    Callable,
    Dict,
    Generator,
    List,
    Optional,
    Sequence,
    Set,
    Tuple,
    Union,
)

from .._enums import State
from .._http import HeadersLike
from ..codec import NO_EXTENSIONS
from ..connection import ServerConnection
from ..events import Request
from ..handshake import OriginPolicy
from ._exceptions import WebSocketClosed
from ._protocol import (
    DEFAULT_MAX_QUEUE,
    DEFAULT_WRITE_LIMIT,
    WebSocket,
    _Options,
    protocol_for,
)

__all__ = ["Accept", "Reject", "Response", "Server", "ServerWebSocket", "serve"]

logger = logging.getLogger("turbows.server")

Handler = Callable[["ServerWebSocket"], Awaitable[Any]]


class Accept:
    """A ``process_request`` answer: accept the handshake.

    Args:
        subprotocol: the subprotocol to select (one the client offered), or None for the
            server's preferred one among those offered.
        headers: extra response headers (``Set-Cookie``, ...).
        context: anything the handler should have, found while checking the request (the
            authenticated user, a session): the handler reads it as ``ws.context``, so that
            authentication is done once, in the handshake.
    """

    __slots__ = ("subprotocol", "headers", "context")

    def __init__(
        self, subprotocol: Optional[str] = None, headers: HeadersLike = (), context: Any = None
    ) -> None:
        self.subprotocol = subprotocol
        self.headers = headers
        self.context = context


class _HTTPAnswer:
    """An HTTP response that ``process_request`` sends instead of opening a WebSocket."""

    __slots__ = ("status", "headers", "body")

    def __init__(
        self, status: int, headers: HeadersLike = (), body: Union[bytes, str] = b""
    ) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.status}, {self.headers!r}, {self.body!r})"


class Reject(_HTTPAnswer):
    """A ``process_request`` answer: refuse the handshake with an HTTP response.

    Args:
        status: the HTTP status, e.g. 401, 403, 404 or 503.
        headers: response headers (``WWW-Authenticate``, ``Retry-After``, ...).
        body: the response body; ``str`` is sent as UTF-8.
    """

    __slots__ = ()


class Response(_HTTPAnswer):
    """A ``process_request`` answer to a plain HTTP request (``request.upgrade`` is False):
    a health check's ``Response(200, [("Content-Type", "text/plain")], "ok")``, a page, a
    redirect.

    Args:
        status: the HTTP status (200, 301, 404, ...).
        headers: response headers (``Content-Type``, ``Location``, ...).
        body: the response body; ``str`` is sent as UTF-8. A ``HEAD`` gets the head only.
    """

    __slots__ = ()


_Decision = Union[None, Accept, Reject, Response]
ProcessRequest = Callable[[Request], Union[_Decision, Awaitable[_Decision]]]


#: The answer to a plain HTTP request that ``process_request`` let through (None or Accept).
NOT_WEBSOCKET = (
    426,
    [("Upgrade", "websocket"), ("Content-Type", "text/plain; charset=utf-8")],
    b"This is a WebSocket endpoint: connect with a WebSocket client.\n",
)


def answer_request(
    conn: ServerConnection,
    request: Request,
    decision: Any,
    now: float,
    log: Callable[..., None],
) -> bool:
    """Carry out ``process_request``'s decision on ``conn`` (waiting in CONNECTING) and return
    whether the connection opened; the asyncio and the blocking servers share it.

    ``log(level, msg, *args, exc_info=...)`` reports a decision that cannot be carried out,
    which is answered 500."""
    if not request.upgrade and (decision is None or isinstance(decision, Accept)):
        conn.reject(*NOT_WEBSOCKET)  # a plain HTTP request cannot be upgraded
        return False
    if decision is None or isinstance(decision, Accept):
        subprotocol = None if decision is None else decision.subprotocol
        headers = () if decision is None else decision.headers
        try:
            conn.accept(subprotocol, headers, now)
            return True
        except ValueError:
            log(logging.ERROR, "cannot accept the handshake as process_request asked", exc_info=True)
    elif isinstance(decision, _HTTPAnswer):
        try:
            conn.reject(decision.status, decision.headers, decision.body)
            return False
        except ValueError:
            log(
                logging.ERROR,
                "cannot answer with %r as process_request asked",
                decision,
                exc_info=True,
            )
    else:
        log(
            logging.ERROR,
            "process_request returned %r, not None, Accept, Reject or Response",
            decision,
        )
    conn.reject(500, body=b"Internal Server Error")
    return False


class ServerWebSocket(WebSocket):
    """The server side of a connection; see :class:`WebSocket`.

    Attributes:
        request: the opening handshake's :class:`turbows.Request` (``path``, ``query``,
            ``headers``, ``origin``, ``remote_address``, ``tls``).
        context: what ``process_request`` handed over with ``Accept(context=...)``, or None.
    """

    __slots__ = ("_server", "context")

    request: Request
    _logger = logger

    def __init__(self, server: "Server") -> None:
        super().__init__(server._options, server._loop)
        self._server = server
        self._conn = ServerConnection(**server._conn_kwargs)
        self.context: Any = None

    def _connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._server._connections.add(self)
        super()._connection_made(transport)

    def _lost(self) -> None:
        self._server._connections.discard(self)

    def _on_request(self, request: Request) -> None:
        transport = self._transport
        request.remote_address = self.remote_address
        if transport is not None:
            request.tls = transport.get_extra_info("ssl_object")
        self.request = request
        server = self._server
        if server._closing:
            self._answer(Reject(503, [("Retry-After", "5")], b"server shutting down"))
            return
        hook = server._process_request
        if hook is None:
            if not self._answer(None):
                return
        task = server._loop.create_task(self._run(hook))
        self._task = task
        server._tasks.add(task)
        task.add_done_callback(server._tasks.discard)

    def _answer(self, decision: Any) -> bool:
        """Accept or reject the waiting request; return whether the connection opened."""
        conn = self._conn
        if conn.state is not State.CONNECTING:
            return False  # the client left while the request was being processed
        opened = answer_request(conn, self.request, decision, self._time(), self._log)
        if opened:
            self.context = decision.context if decision is not None else None
        self._after()
        if opened:
            self._log(logging.DEBUG, "connection open")
        return opened

    async def _run(self, hook: Optional[ProcessRequest]) -> None:
        try:
            if hook is not None:
                try:
                    decision: Any = hook(self.request)
                    if inspect.isawaitable(decision):
                        decision = await decision
                except Exception:
                    self._log(logging.ERROR, "process_request failed", exc_info=True)
                    decision = Reject(500, body=b"Internal Server Error")
                if not self._answer(decision):
                    return
            try:
                await self._server._handler(self)
            except WebSocketClosed:
                pass  # the closed connection was logged once, when it closed
            except Exception:
                self._log(logging.ERROR, "connection handler failed", exc_info=True)
                await self.close(1011, "internal error")
                return
            await self.close()
        except asyncio.CancelledError:
            self.abort()
            raise


SocketTransport: Any = None
if not NO_EXTENSIONS:  # TURBOWS_NO_EXTENSIONS=1: no compiled code at all
    try:
        from ._fastio import SocketTransport
    except ImportError:  # no compiler, or Windows
        pass

#: Seconds the fast listener stops accepting after running out of a resource (EMFILE, ...),
#: as asyncio's own servers do (``asyncio.constants.ACCEPT_RETRY_DELAY``).
ACCEPT_RETRY_DELAY = 1.0
#: Connections the fast listener accepts at most per wake-up of the event loop (at most
#: ``backlog``). The loop runs everything else between two batches, connections that failed
#: at once (an RST storm) included, so a burst never holds more than this many new
#: connections' objects at a time; the listening socket stays readable, so the next loop
#: iteration accepts the next batch. Measured: 1000 clients that connect and reset at once
#: raise the server's peak RSS by 4.3 MB with batches of 128, 8.7 MB with 1024 (the default
#: backlog); accepting 1000 open connections takes the same time within the noise.
ACCEPT_BATCH = 128
_RESOURCE_ERRORS = frozenset((errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM))

#: The default of ``serve(..., fast_transport=...)``: on; ``TURBOWS_FAST_TRANSPORT=0`` turns it
#: off (the event loop's transports then serve plain TCP too).
FAST_TRANSPORT_DEFAULT = os.environ.get("TURBOWS_FAST_TRANSPORT", "1") != "0"


class _FastListener:
    """Listening TCP sockets whose connections get turbows's own :class:`SocketTransport`.

    Stands in for the ``asyncio.Server`` that ``loop.create_server`` returns (``sockets``,
    ``close``, ``is_serving``, ``wait_closed``).
    """

    def __init__(
        self, loop: Any, factory: Callable[[], Any], sockets: List[socket.socket], backlog: int
    ) -> None:
        self._loop = loop
        self._factory = factory
        self.sockets = sockets
        self._backlog = backlog
        self._serving = True
        self._retry: Dict[int, asyncio.TimerHandle] = {}
        for sock in sockets:
            sock.setblocking(False)
            loop.add_reader(sock.fileno(), self._accept, sock)

    def _accept(self, listener: socket.socket) -> None:
        for _ in range(min(self._backlog, ACCEPT_BATCH)):
            try:
                sock, addr = listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except ConnectionAbortedError:
                continue  # the client left before its connection was accepted
            except OSError as exc:
                # Out of descriptors or memory (EMFILE, ENFILE, ENOBUFS, ENOMEM), or anything
                # else: the socket stays readable, so stop watching it for a while instead of
                # failing again at once, in a loop (asyncio's servers do the same).
                level = logging.ERROR if exc.errno in _RESOURCE_ERRORS else logging.WARNING
                logger.log(
                    level,
                    "accept failed on %s: %s; pausing accepts for %.1f s",
                    listener.getsockname(),
                    exc,
                    ACCEPT_RETRY_DELAY,
                )
                self._pause(listener)
                return
            try:
                sock.setblocking(False)
                if sock.family in (socket.AF_INET, socket.AF_INET6):
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                SocketTransport(self._loop, sock, self._factory(), {"peername": addr}).start()
            except Exception:
                logger.exception("cannot set up an accepted connection")
                sock.close()

    def _pause(self, listener: socket.socket) -> None:
        fd = listener.fileno()
        if fd in self._retry:
            return
        self._loop.remove_reader(fd)
        self._retry[fd] = self._loop.call_later(ACCEPT_RETRY_DELAY, self._resume, listener)

    def _resume(self, listener: socket.socket) -> None:
        self._retry.pop(listener.fileno(), None)
        if self._serving:
            self._loop.add_reader(listener.fileno(), self._accept, listener)

    def is_serving(self) -> bool:
        return self._serving

    def close(self) -> None:
        if not self._serving:
            return
        self._serving = False
        for handle in self._retry.values():
            handle.cancel()
        self._retry.clear()
        for sock in self.sockets:
            self._loop.remove_reader(sock.fileno())
            sock.close()

    async def wait_closed(self) -> None:
        return None


async def _listening_sockets(
    loop: Any,
    host: Optional[Union[str, Sequence[str]]],
    port: Optional[int],
    backlog: int,
    reuse_port: Optional[bool],
) -> List[socket.socket]:
    """Bind and listen like ``loop.create_server`` does for ``host`` and ``port``: every
    address ``getaddrinfo`` gives (``AI_PASSIVE``; no host: every interface, IPv4 and IPv6),
    ``SO_REUSEADDR``, ``SO_REUSEPORT`` when asked, IPv6 sockets IPv6-only (so that the IPv4
    socket on the same port can bind), and the same error when an address cannot be bound."""
    if reuse_port and not hasattr(socket, "SO_REUSEPORT"):
        raise ValueError("reuse_port not supported by socket module")
    hosts: Sequence[Optional[str]]
    if host is None or host == "":
        hosts = [None]
    elif isinstance(host, str):
        hosts = [host]
    else:
        hosts = list(host)
    infos = set()
    for name in hosts:
        for info in await loop.getaddrinfo(
            name, port, family=socket.AF_UNSPEC, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        ):
            infos.add(info)
    sockets: List[socket.socket] = []
    try:
        for family, kind, proto, _, address in sorted(infos, key=repr):
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if reuse_port:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            if family == socket.AF_INET6 and hasattr(socket, "IPPROTO_IPV6"):
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            try:
                sock.bind(address)
            except OSError as err:
                raise OSError(
                    err.errno,
                    f"error while attempting to bind on address {address!r}: "
                    f"{(err.strerror or str(err)).lower()}",
                ) from None
            sock.listen(backlog)
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    if not sockets:
        raise OSError(f"no address to listen on for host {host!r}")
    return sockets


class Server:
    """A WebSocket server, returned by :func:`serve`.

    Start it with ``async with serve(...) as server:`` (shut down gracefully at the end of
    the block) or ``server = await serve(...)``.
    """

    def __init__(
        self,
        handler: Handler,
        host: Optional[Union[str, Sequence[str]]] = None,
        port: Optional[int] = None,
        *,
        sock: Optional[socket.socket] = None,
        unix: Optional[str] = None,
        ssl: Any = None,
        process_request: Optional[ProcessRequest] = None,
        subprotocols: Sequence[str] = (),
        origins: OriginPolicy = None,
        extensions: Optional[Sequence[Any]] = None,
        max_message_size: Optional[int] = 1 << 20,
        max_queue: int = DEFAULT_MAX_QUEUE,
        write_limit: Union[int, Tuple[int, int]] = DEFAULT_WRITE_LIMIT,
        open_timeout: Optional[float] = 10.0,
        ping_interval: Optional[float] = 20.0,
        ping_timeout: Optional[float] = 20.0,
        max_missed_pongs: int = 1,
        close_timeout: Optional[float] = 10.0,
        max_header_size: int = 16384,
        max_headers: int = 128,
        text_as_bytes: bool = False,
        shutdown_timeout: float = 10.0,
        backlog: int = 1024,
        reuse_port: Optional[bool] = None,
        fast_transport: Optional[bool] = None,
    ) -> None:
        self._loop: Any = None
        if fast_transport is None:
            fast_transport = FAST_TRANSPORT_DEFAULT
        self._fast_transport = fast_transport
        self._handler = handler
        self._host = host
        self._port = port
        self._sock = sock
        self._unix = unix
        self._ssl = ssl
        self._backlog = backlog
        self._reuse_port = reuse_port
        self._process_request = process_request
        self._options = _Options(max_queue, write_limit, open_timeout)
        if extensions is None:
            extensions = _default_extensions()
        self._conn_kwargs: Dict[str, Any] = dict(
            max_message_size=max_message_size,
            subprotocols=tuple(subprotocols),
            extensions=tuple(extensions),
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
        ServerConnection(**self._conn_kwargs)  # fail now on a bad option, not per connection
        self._shutdown_timeout = shutdown_timeout
        self._server: Optional[asyncio.AbstractServer] = None
        self._connections: Set[ServerWebSocket] = set()
        self._tasks: Set[asyncio.Task[Any]] = set()
        self._closing = False
        self._shutdown: Optional[asyncio.Task[None]] = None
        # Whether connections come through turbows's compiled transport (see protocol_for).
        self._compiled = False

    # -- starting ------------------------------------------------------------------------------

    async def start(self) -> "Server":
        """Start listening. Returns the server itself."""
        if self._server is not None:
            return self
        self._loop = asyncio.get_running_loop()
        factory = self._factory
        if self._unix is not None or (
            self._sock is not None and self._sock.family == getattr(socket, "AF_UNIX", None)
        ):
            self._server = await self._loop.create_unix_server(
                factory, self._unix, sock=self._sock, ssl=self._ssl, backlog=self._backlog
            )
        elif self._uses_fast_transport():
            self._compiled = True
            if self._sock is not None:
                self._sock.listen(self._backlog)  # as loop.create_server does
                sockets = [self._sock]
            else:
                sockets = await _listening_sockets(
                    self._loop, self._host, self._port, self._backlog, self._reuse_port
                )
            self._server = _FastListener(self._loop, factory, sockets, self._backlog)  # type: ignore[assignment]
        else:
            self._server = await self._loop.create_server(
                factory,
                self._host,
                self._port,
                sock=self._sock,
                ssl=self._ssl,
                backlog=self._backlog,
                reuse_port=self._reuse_port,
            )
        logger.info("server listening on %s", ", ".join(str(s.getsockname()) for s in self.sockets))
        return self

    def _uses_fast_transport(self) -> bool:
        """Plain TCP with the compiled transport: turbows does the socket I/O itself."""
        return bool(self._fast_transport) and self._ssl is None and SocketTransport is not None

    def _factory(self) -> asyncio.BaseProtocol:
        return protocol_for(ServerWebSocket(self), self._loop, self._compiled)

    def __await__(self) -> Generator[Any, None, "Server"]:
        return self.start().__await__()

    async def __aenter__(self) -> "Server":
        return await self.start()

    async def __aexit__(self, *exc_info: Any) -> None:
        await self.shutdown()

    # -- information -------------------------------------------------------------------------

    @property
    def sockets(self) -> List[socket.socket]:
        """The listening sockets."""
        server = self._server
        return [] if server is None else list(server.sockets)  # type: ignore[attr-defined]

    @property
    def port(self) -> Optional[int]:
        """The TCP port of the first listening socket (handy with ``port=0``)."""
        for sock in self.sockets:
            if sock.family in (socket.AF_INET, socket.AF_INET6):
                return int(sock.getsockname()[1])
        return None

    @property
    def connections(self) -> Set[ServerWebSocket]:
        """The open connections (a copy)."""
        return set(self._connections)

    def is_serving(self) -> bool:
        """Whether the server accepts new connections."""
        return self._server is not None and self._server.is_serving()

    # -- shutting down -----------------------------------------------------------------------

    def close(
        self,
        code: int = 1001,
        reason: str = "server shutting down",
        timeout: Optional[float] = None,
    ) -> None:
        """Start a graceful shutdown; :meth:`wait_closed` waits for its end.

        Stops accepting connections, sends a close frame with ``code`` (1001, going away) to
        every open connection, waits up to ``timeout`` (default: ``shutdown_timeout``) for
        the closing handshakes and the handlers to finish, then aborts the remaining TCP
        connections and cancels the remaining handlers.
        """
        if self._shutdown is None:
            if timeout is None:
                timeout = self._shutdown_timeout
            self._shutdown = self._loop.create_task(self._do_shutdown(code, reason, timeout))

    async def wait_closed(self) -> None:
        """Wait until a shutdown started with :meth:`close` is complete."""
        if self._shutdown is None:
            raise RuntimeError("call close() first")
        await asyncio.shield(self._shutdown)

    async def shutdown(
        self,
        code: int = 1001,
        reason: str = "server shutting down",
        timeout: Optional[float] = None,
    ) -> None:
        """:meth:`close` then :meth:`wait_closed`."""
        self.close(code, reason, timeout)
        await self.wait_closed()

    async def serve_forever(self) -> None:
        """Serve until cancelled, then shut down gracefully."""
        await self.start()
        try:
            await asyncio.Future()
        finally:
            await self.shutdown()

    async def _do_shutdown(self, code: int, reason: str, timeout: float) -> None:
        self._closing = True
        server = self._server
        if server is not None:
            server.close()
        logger.info("server shutting down: %d connections", len(self._connections))
        for ws in list(self._connections):
            state = ws._conn.state
            if state is State.OPEN:
                try:
                    ws._conn.close(code, reason, ws._time())
                except Exception:  # a fragmented message is unfinished
                    ws.abort()
                else:
                    ws._after()
            elif state is State.CONNECTING:
                ws.abort()
        pending: Set[Any] = {asyncio.ensure_future(ws.wait_closed()) for ws in self._connections}
        pending |= self._tasks
        if pending:
            done, pending = await asyncio.wait(pending, timeout=timeout)
        if pending:
            logger.warning(
                "shutdown timeout: aborting %d connections and cancelling %d handlers",
                len(self._connections),
                len(self._tasks),
            )
            for ws in list(self._connections):
                ws.abort()
            for item in pending:
                item.cancel()
            await asyncio.wait(pending, timeout=1.0)
        if server is not None:
            await server.wait_closed()
        logger.info("server closed")


def _default_extensions() -> Tuple[Any, ...]:
    """The extensions offered or accepted when not told otherwise: permessage-deflate
    (RFC 7692) with its default parameters. Pass ``extensions=()`` to disable it."""
    from ..extensions import PerMessageDeflate

    return (PerMessageDeflate(),)


def serve(
    handler: Handler,
    host: Optional[Union[str, Sequence[str]]] = None,
    port: Optional[int] = None,
    *,
    sock: Optional[socket.socket] = None,
    unix: Optional[str] = None,
    ssl: Any = None,
    process_request: Optional[ProcessRequest] = None,
    subprotocols: Sequence[str] = (),
    origins: OriginPolicy = None,
    extensions: Optional[Sequence[Any]] = None,
    max_message_size: Optional[int] = 1 << 20,
    max_queue: int = DEFAULT_MAX_QUEUE,
    write_limit: Union[int, Tuple[int, int]] = DEFAULT_WRITE_LIMIT,
    open_timeout: Optional[float] = 10.0,
    ping_interval: Optional[float] = 20.0,
    ping_timeout: Optional[float] = 20.0,
    max_missed_pongs: int = 1,
    close_timeout: Optional[float] = 10.0,
    max_header_size: int = 16384,
    max_headers: int = 128,
    text_as_bytes: bool = False,
    shutdown_timeout: float = 10.0,
    backlog: int = 1024,
    reuse_port: Optional[bool] = None,
    fast_transport: Optional[bool] = None,
) -> Server:
    """Create a WebSocket server; start it with ``async with`` or ``await``.

    Args:
        handler: ``async def handler(ws)``, run in its own task for each connection once the
            handshake is accepted. When it returns, the connection is closed with 1000; when
            it raises, with 1011 (and the error is logged).
        host, port: where to listen (``port=0`` picks a free port: read ``server.port``).
        sock: listen on this already bound socket instead (TCP or Unix).
        unix: listen on this Unix socket path instead.
        ssl: an :class:`ssl.SSLContext` for ``wss://``.
        process_request: ``fn(request)`` (plain or ``async``) called with each
            :class:`turbows.Request` before the handler: return None or :class:`Accept` to
            accept (with a subprotocol and extra headers), or :class:`Reject` to refuse with an
            HTTP status, headers and body (401, 403, 404, 503, ...). If it raises: 500.
            ``request`` carries the peer's ``remote_address``, the ``tls`` object of a
            ``wss://`` connection and the parsed ``query``; ``Accept(context=...)`` hands
            per-connection state to the handler as ``ws.context``.
            It also sees plain HTTP ``GET``, ``HEAD`` and ``OPTIONS`` requests, over HTTP/1.1
            or HTTP/1.0 (``request.upgrade`` is False: health checks, browsers), which it
            answers with a :class:`~turbows.asyncio.Response` of any status, 200 included; None or
            :class:`Accept` there gets 426 Upgrade Required. Other methods get 405. Without
            ``process_request``, a plain GET gets 426 Upgrade Required with a short body that
            says what the URL is (405 if not GET, 505 over HTTP/1.0).
        subprotocols: the subprotocols this server speaks, in its order of preference.
        origins: an allow-list of ``Origin`` values (include None to allow clients that send
            none), or a callable ``origin -> bool``; other origins get 403. None allows all.
        extensions: extension objects; default ``[PerMessageDeflate()]`` (negotiated only
            when the client offers it); ``()`` disables compression.
        max_message_size: the largest incoming message, bytes (larger: close 1009).
        max_queue: messages buffered for ``recv``; reading from the socket pauses when it is
            full and resumes when it is down to a quarter.
        write_limit: the write buffer high-water mark (low mark a quarter of it), or a
            ``(high, low)`` pair; ``send`` waits while the buffer is above the high mark.
        open_timeout: seconds a client has to complete its opening handshake.
        ping_interval, ping_timeout, max_missed_pongs: the heartbeat (None disables it).
        close_timeout: seconds the closing handshake may take before the TCP connection is
            aborted.
        max_header_size, max_headers: limits on the request head.
        text_as_bytes: deliver text messages as UTF-8 ``bytes`` (validated) instead of ``str``.
        shutdown_timeout: how long a graceful shutdown waits before aborting.
        backlog, reuse_port: passed to the event loop.
        fast_transport: plain TCP connections (no ``ssl``) use turbows's compiled socket
            transport instead of the event loop's: turbows accepts the connections and does
            the non-blocking ``recv``/``send`` itself through ``loop.add_reader`` and
            ``add_writer`` (asyncio's loops and uvloop). Default: on, unless the
            ``TURBOWS_FAST_TRANSPORT=0`` environment variable is set. Ignored without the
            compiled extension (Windows, pure-Python installs).

    Returns:
        The :class:`Server`, not yet listening.
    """
    return Server(
        handler,
        host,
        port,
        sock=sock,
        unix=unix,
        ssl=ssl,
        process_request=process_request,
        subprotocols=subprotocols,
        origins=origins,
        extensions=extensions,
        max_message_size=max_message_size,
        max_queue=max_queue,
        write_limit=write_limit,
        open_timeout=open_timeout,
        ping_interval=ping_interval,
        ping_timeout=ping_timeout,
        max_missed_pongs=max_missed_pongs,
        close_timeout=close_timeout,
        max_header_size=max_header_size,
        max_headers=max_headers,
        text_as_bytes=text_as_bytes,
        shutdown_timeout=shutdown_timeout,
        backlog=backlog,
        reuse_port=reuse_port,
        fast_transport=fast_transport,
    )
