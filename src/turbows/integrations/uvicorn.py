"""uvicorn's WebSocket protocol class on turbows: ``uvicorn app:app --ws
turbows.integrations.uvicorn:WebSocketProtocol``.

uvicorn's HTTP protocol (``--http h11`` or ``--http httptools``) reads the upgrade request,
builds this class with ``(config=..., server_state=..., app_state=...)``, calls
``connection_made(transport)`` and ``data_received(request_bytes)`` (the request head written
out again), then hands it the transport with ``transport.set_protocol``. From there this class
is the transport's :class:`asyncio.Protocol` and runs the ASGI application with the
``websocket`` scope.

Everything about the protocol is :class:`turbows.ServerConnection`'s: handshake validation
(400, 426, ...), permessage-deflate negotiation, frame parsing and building, UTF-8, sizes,
ping answers, the heartbeat and its timeout, the closing handshake and its timeout. This class
only moves bytes between it and the transport, turns its events into ASGI messages and ASGI
messages into calls on it, and keeps uvicorn's contract:

- registration in ``server_state.connections`` (for ``shutdown()``) and of the application task
  in ``server_state.tasks``; ``server_state.default_headers`` (``server``, ``date``) on the 101
  and on rejections;
- ``shutdown()`` closes an open connection with 1012 (service restart) and answers a handshake
  still waiting for the application with 500;
- flow control: reading pauses when the application lags (a message waits that it has not
  asked for) and resumes once fewer than ``ws_max_queue`` wait; ``send`` waits while the
  transport is paused for writing, and reading pauses too meanwhile, so that a peer that
  does not read cannot make us buffer pongs without end;
- ``ws_max_size`` (larger messages close with 1009), ``ws_ping_interval`` and
  ``ws_ping_timeout`` (the connection's heartbeat: a late pong closes with 1011), and
  ``ws_per_message_deflate``.

The data path per message is one call into the connection (``receive_events``) and one dict
handed to the waiting ``receive()``; a ``websocket.send`` is one call into the frame writer and
one ``transport.write``. Timers are one ``call_at`` handle, moved only when the connection's
next deadline changes (accept, close, the timer itself), never per message.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import Any, Deque, Dict, List, Optional, Tuple
from urllib.parse import unquote

from uvicorn.logging import TRACE_LOG_LEVEL
from uvicorn.protocols.utils import (
    ClientDisconnected,
    get_client_addr,
    get_local_addr,
    get_path_with_query_string,
    get_remote_addr,
    is_ssl,
)

from .._enums import State
from ..codec import BinaryMessage, TextMessage
from ..connection import ServerConnection
from ..events import LOCAL, ConnectionClosed, Request
from ..exceptions import InvalidStateError
from ..extensions import PerMessageDeflate

__all__ = ["WebSocketProtocol"]

_TEXT = TextMessage
_BINARY = BinaryMessage
_CONNECTING = State.CONNECTING
_OPEN = State.OPEN
_CLOSING = State.CLOSING
_CLOSED = State.CLOSED

#: Seconds the closing handshake may take once started (uvicorn's built-in classes use 10).
CLOSE_TIMEOUT = 10.0

_SERVER_ERROR_HEADERS = (("Content-Type", "text/plain; charset=utf-8"), ("Connection", "close"))
_SERVER_ERROR_BODY = b"Internal Server Error"


def _str_headers(raw: Any) -> List[Tuple[str, str]]:
    """ASGI headers (pairs of bytes) as the str pairs the connection takes (latin-1 is
    HTTP's byte-for-byte encoding)."""
    return [(bytes(name).decode("latin-1"), bytes(value).decode("latin-1")) for name, value in raw]


class WebSocketProtocol(asyncio.Protocol):
    """uvicorn's WebSocket protocol on :class:`turbows.ServerConnection`.

    Give it to uvicorn as ``--ws turbows.integrations.uvicorn:WebSocketProtocol`` (or
    ``uvicorn.run(app, ws=WebSocketProtocol)``, ``Config(ws=...)``); uvicorn builds one per
    upgraded connection.

    Args:
        config: uvicorn's ``Config`` (loaded here if it is not yet).
        server_state: uvicorn's ``ServerState`` (connections, tasks, default headers).
        app_state: the lifespan state, copied into each scope's ``"state"``.
        _loop: the event loop (default: the running one).

    Attributes:
        transport: the transport, once ``connection_made`` has run.
        scope: the ASGI ``websocket`` scope, once the request has been read.
        close_timeout: seconds the closing handshake may take; read when the connection
            starts (``connection_made``).
    """

    __slots__ = (
        # hot path first
        "_conn",
        "_receive_events",
        "_write",
        "_waiter",
        "_queue",
        "_max_queue",
        "_queue_paused",
        "_write_paused",
        "_reading_paused",
        "_writable",
        "_accepted",
        "_closing",
        "_lost",
        "_disconnect",
        "transport",
        "_loop",
        # the rest
        "config",
        "app",
        "logger",
        "root_path",
        "asgi_version",
        "app_state",
        "connections",
        "tasks",
        "server_state",
        "server",
        "client",
        "scheme",
        "scope",
        "close_timeout",
        "_response",
        "_timer",
    )

    def __init__(
        self,
        config: Any,
        server_state: Any,
        app_state: Dict[str, Any],
        _loop: Optional[asyncio.AbstractEventLoop] = None,
    ) -> None:
        if not config.loaded:
            config.load()
        self.config = config
        self.app = config.loaded_app
        self._loop = _loop or asyncio.get_event_loop()
        self.logger = logging.getLogger("uvicorn.error")
        self.root_path: str = config.root_path
        self.asgi_version: str = config.asgi_version
        self.app_state = app_state
        self.server_state = server_state
        self.connections = server_state.connections
        self.tasks = server_state.tasks
        self.transport: Any = None
        self.server: Optional[Tuple[str, Optional[int]]] = None
        self.client: Optional[Tuple[str, int]] = None
        self.scheme = "ws"
        self.scope: Dict[str, Any] = {}
        self.close_timeout: Optional[float] = CLOSE_TIMEOUT
        self._conn: Any = None
        self._receive_events: Any = None
        self._write: Any = None
        self._waiter: Optional[asyncio.Future[Dict[str, Any]]] = None
        self._queue: Deque[Dict[str, Any]] = deque()
        self._max_queue = max(1, int(config.ws_max_queue or 1))
        self._queue_paused = False
        self._write_paused = False
        self._reading_paused = False
        self._writable: Optional[asyncio.Future[None]] = None
        self._accepted = False
        # The application sent websocket.close (or the server is shutting down): what it
        # sends afterwards is refused and what arrives is dropped, as in uvicorn's classes.
        self._closing = False
        self._lost = False
        #: The websocket.disconnect message, once there is one; receive() repeats it.
        self._disconnect: Optional[Dict[str, Any]] = None
        #: A denial response: [status, headers, body parts, head sent, body ended].
        self._response: Optional[List[Any]] = None
        self._timer: Optional[asyncio.TimerHandle] = None

    # ----------------------------------------------------------------------------------------
    # asyncio.Protocol callbacks.

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        config = self.config
        interval = config.ws_ping_interval
        timeout = config.ws_ping_timeout
        close_timeout = self.close_timeout
        self._conn = conn = ServerConnection(
            max_message_size=config.ws_max_size,
            extensions=(
                [PerMessageDeflate(client_max_window_bits=12)]
                if config.ws_per_message_deflate
                else ()
            ),
            # uvicorn's 0 (or None) turns the heartbeat off; the connection wants None.
            ping_interval=interval if interval else None,
            ping_timeout=timeout if timeout else None,
            close_timeout=None if close_timeout is None else max(0.0, close_timeout),
            # uvicorn's HTTP parser has bounded the request head already.
            max_header_size=1 << 18,
            max_headers=1024,
        )
        self._receive_events = conn.receive_events
        self.connections.add(self)
        self.transport = transport
        self._write = transport.write  # type: ignore[attr-defined]
        self.server = get_local_addr(transport)  # type: ignore[arg-type]
        self.client = get_remote_addr(transport)  # type: ignore[arg-type]
        self.scheme = "wss" if is_ssl(transport) else "ws"  # type: ignore[arg-type]
        if self.logger.level <= TRACE_LOG_LEVEL:
            self.logger.log(TRACE_LOG_LEVEL, "%sWebSocket connection made", self._prefix())

    def data_received(self, data: bytes) -> None:
        conn = self._conn
        events = self._receive_events(data)
        # Pongs, the echo of a close frame, the close frame of a protocol error.
        out = conn.data_to_send()
        if out:
            self._write(out)
        for event in events:
            kind = type(event)
            if kind is _TEXT:
                message = {"type": "websocket.receive", "text": event.data}
            elif kind is _BINARY:
                message = {"type": "websocket.receive", "bytes": event.data}
            else:
                self._event(event)
                continue
            if self._closing:
                continue  # the application has closed: nobody will read it
            if not self._deliver(message) and not self._queue_paused:
                # The application lags: stop reading until it catches up.
                self._queue_paused = True
                self._update_reading()
        if conn.should_close_transport:
            self._close_transport()

    def eof_received(self) -> Optional[bool]:
        # The transport closes itself (returning None): connection_lost tells the connection.
        return None

    def connection_lost(self, exc: Optional[Exception]) -> None:
        self._lost = True
        self.connections.discard(self)
        timer = self._timer
        if timer is not None:
            timer.cancel()
            self._timer = None
        conn = self._conn
        conn.receive_data(b"")
        conn.data_to_send()  # nothing can be written any more
        for event in conn.events():
            self._event(event)
        writable = self._writable
        if writable is not None:
            # asyncio does not call resume_writing on a transport lost while paused.
            self._writable = None
            if not writable.done():
                writable.set_result(None)
        if self.logger.level <= TRACE_LOG_LEVEL:
            self.logger.log(TRACE_LOG_LEVEL, "%sWebSocket connection lost", self._prefix())
        if exc is None:
            self.transport.close()

    def pause_writing(self) -> None:
        """The transport's write buffer is above its high-water mark: ``send`` waits, and
        reading stops and the connection holds pongs back to the latest ping's (what a peer
        that sends pings and never reads could otherwise pile up)."""
        self._write_paused = True
        conn = self._conn
        if conn is not None:
            conn.throttle_pongs(True)
        self._update_reading()

    def resume_writing(self) -> None:
        """The write buffer drained below its low-water mark: ``send`` and reading go on, and
        the pong held back, if any, goes out."""
        self._write_paused = False
        conn = self._conn
        if conn is not None and not self._lost:
            conn.throttle_pongs(False)
            out = conn.data_to_send()
            if out:
                self._write(out)
        writable = self._writable
        if writable is not None:
            self._writable = None
            if not writable.done():
                writable.set_result(None)
        self._update_reading()

    # ----------------------------------------------------------------------------------------
    # uvicorn's calls.

    def shutdown(self) -> None:
        """The server is stopping: close with 1012 (service restart), or answer a handshake the
        application has not answered yet with 500, then close the transport."""
        conn = self._conn
        if conn is None or self._lost:
            return
        state = conn.state
        if state is _OPEN:
            self._set_disconnect({"type": "websocket.disconnect", "code": 1012})
            conn.close(1012, "", self._loop.time())
        elif state is _CONNECTING:
            self._server_error()
        self._flush()
        self._close_transport()

    # ----------------------------------------------------------------------------------------
    # The ASGI application.

    async def run_asgi(self) -> None:
        """Run the application for this connection; close the transport when it returns
        (unless a closing handshake it started is still waiting for the peer)."""
        try:
            result = await self.app(self.scope, self.receive, self.send)
        except ClientDisconnected:
            pass
        except BaseException:
            self.logger.exception("Exception in ASGI application\n")
            self._server_error()
        else:
            if not self._accepted and not self._responded():
                self.logger.error("ASGI callable returned without completing handshake.")
                self._server_error()
            elif result is not None:
                self.logger.error("ASGI callable should return None, but returned '%s'.", result)
        if self._lost:
            return
        if self._conn.state is _CLOSING and self._closing:
            return  # the close timeout or the peer's reply closes the transport
        self._close_transport()

    async def receive(self) -> Dict[str, Any]:
        """The ASGI ``receive``: the next message; after ``websocket.disconnect``, that
        message again."""
        queue = self._queue
        if queue:
            message = queue.popleft()
            if self._queue_paused and len(queue) < self._max_queue:
                self._queue_paused = False
                self._update_reading()
            return message
        disconnect = self._disconnect
        if disconnect is not None:
            return disconnect
        waiter: asyncio.Future[Dict[str, Any]] = self._loop.create_future()
        self._waiter = waiter
        return await waiter

    async def send(self, message: Dict[str, Any]) -> None:
        """The ASGI ``send``.

        Raises:
            ClientDisconnected: (an ``OSError``) the peer has gone or closed the connection.
            RuntimeError: the message is not one the connection's state allows, or invalid.
        """
        if self._write_paused:
            await self._wait_writable()
        if self._lost:
            raise ClientDisconnected()
        kind = message["type"]
        if self._accepted:
            if self._closing:
                raise RuntimeError(
                    f"Unexpected ASGI message '{kind}', after sending 'websocket.close'."
                )
            conn = self._conn
            if kind == "websocket.send":
                data = message.get("bytes")
                try:
                    if data is not None:
                        conn.send_binary(data)
                    else:
                        text = message.get("text")
                        if text is not None:
                            if type(text) is not str:
                                # send_text would take bytes as UTF-8 without checking them.
                                raise TypeError(
                                    f"'websocket.send' text must be str, not {type(text).__name__}"
                                )
                            conn.send_text(text)
                except InvalidStateError:
                    raise ClientDisconnected() from None
                self._write(conn.data_to_send())
            elif kind == "websocket.close":
                self._app_close(message)
            else:
                raise RuntimeError(
                    "Expected ASGI message 'websocket.send' or 'websocket.close',"
                    f" but got '{kind}'."
                )
        elif self._response is not None:
            self._send_response(kind, message)
        elif self._disconnect is not None:
            raise RuntimeError(
                f"Unexpected ASGI message '{kind}', after sending 'websocket.close'."
            )
        elif kind == "websocket.accept":
            self._accept(message)
        elif kind == "websocket.close":
            self._deny(403, [], b"")
        elif kind == "websocket.http.response.start":
            self._start_response(message)
        else:
            raise RuntimeError(
                "Expected ASGI message 'websocket.accept', 'websocket.close' or"
                f" 'websocket.http.response.start' but got '{kind}'."
            )

    # ----------------------------------------------------------------------------------------
    # Handshake.

    def _on_request(self, request: Request) -> None:
        raw_path, _, query = request.path.partition("?")
        headers = [
            (name.lower().encode("latin-1"), value.encode("latin-1"))
            for name, value in request.headers
        ]
        root_path = self.root_path
        self.scope = {
            "type": "websocket",
            "asgi": {"version": self.asgi_version, "spec_version": "2.4"},
            "http_version": "1.1",
            "scheme": self.scheme,
            "server": self.server,
            "client": self.client,
            "root_path": root_path,
            "path": root_path + unquote(raw_path),
            "raw_path": root_path.encode("ascii") + raw_path.encode("latin-1"),
            "query_string": query.encode("latin-1"),
            "headers": headers,
            "subprotocols": list(request.subprotocols),
            "state": self.app_state.copy(),
            "extensions": {"websocket.http.response": {}},
        }
        self._queue.append({"type": "websocket.connect"})
        task = self._loop.create_task(self.run_asgi())
        task.add_done_callback(self.tasks.discard)
        self.tasks.add(task)

    def _default_headers(self) -> List[Tuple[str, str]]:
        return _str_headers(self.server_state.default_headers)

    def _accept(self, message: Dict[str, Any]) -> None:
        self.logger.info(
            '%s - "WebSocket %s" [accepted]',
            get_client_addr(self.scope),  # type: ignore[arg-type]
            get_path_with_query_string(self.scope),  # type: ignore[arg-type]
        )
        conn = self._conn
        if conn.state is not _CONNECTING:
            return  # the client gave up meanwhile; connection_lost tells the application
        headers = self._default_headers() + _str_headers(message.get("headers") or ())
        try:
            conn.accept(message.get("subprotocol"), headers, self._loop.time())
        except ValueError as exc:
            raise RuntimeError(f"Invalid 'websocket.accept': {exc}") from None
        self._accepted = True
        self._flush()
        self._arm()

    def _deny(self, status: int, headers: List[Tuple[str, str]], body: bytes) -> None:
        """Refuse the handshake with an HTTP response; the application is told 1006."""
        self._set_disconnect({"type": "websocket.disconnect", "code": 1006})
        self.logger.info(
            '%s - "WebSocket %s" %d',
            get_client_addr(self.scope),  # type: ignore[arg-type]
            get_path_with_query_string(self.scope),  # type: ignore[arg-type]
            status,
        )
        conn = self._conn
        if conn.state is _CONNECTING:
            conn.reject(status, self._default_headers() + headers, body)
            self._flush()
        self._close_transport()

    def _start_response(self, message: Dict[str, Any]) -> None:
        status = message["status"]
        if not 100 <= status < 600 or status == 101:
            raise RuntimeError("Invalid HTTP status code '%d' in response." % status)
        try:
            headers = _str_headers(message.get("headers") or ())
        except (TypeError, ValueError) as exc:
            raise RuntimeError(f"Invalid 'websocket.http.response.start' headers: {exc}") from None
        names = {name.lower() for name, _ in headers}
        # A framing the application chose is kept only with a Content-Length: then the head
        # leaves now and the body as it comes. Otherwise the body is collected and sent with
        # its length (a Transfer-Encoding of its own would need chunks it does not write).
        headers = [(n, v) for n, v in headers if n.lower() != "transfer-encoding"]
        self._response = response = [status, headers, [], False, False]
        if "content-length" in names:
            conn = self._conn
            if conn.state is _CONNECTING:
                try:
                    conn.reject(status, self._default_headers() + headers, b"")
                except ValueError as exc:
                    self._response = None
                    raise RuntimeError(f"Invalid 'websocket.http.response.start': {exc}") from None
                self._flush(close=False)
            response[3] = True
        self.logger.info(
            '%s - "WebSocket %s" %d',
            get_client_addr(self.scope),  # type: ignore[arg-type]
            get_path_with_query_string(self.scope),  # type: ignore[arg-type]
            status,
        )

    def _send_response(self, kind: str, message: Dict[str, Any]) -> None:
        response = self._response
        assert response is not None
        if kind != "websocket.http.response.body":
            raise RuntimeError(
                f"Expected ASGI message 'websocket.http.response.body' but got '{kind}'."
            )
        if response[4]:
            raise RuntimeError(
                "Unexpected ASGI message 'websocket.http.response.body', after the response"
                " body ended."
            )
        body = bytes(message.get("body", b""))
        if response[3]:
            if body and not self.transport.is_closing():
                self._write(body)
        else:
            response[2].append(body)
        if message.get("more_body", False):
            return
        response[4] = True
        if not response[3]:
            conn = self._conn
            if conn.state is _CONNECTING:
                status, headers, parts = response[0], response[1], response[2]
                try:
                    conn.reject(status, self._default_headers() + headers, b"".join(parts))
                except ValueError as exc:
                    self._response = None  # nothing went out: the 500 can
                    raise RuntimeError(f"Invalid 'websocket.http.response.start': {exc}") from None
                response[3] = True
                self._flush(close=False)
        self._set_disconnect({"type": "websocket.disconnect", "code": 1006})
        self._close_transport()

    def _responded(self) -> bool:
        """A denial response has been started (its head sent or being collected)."""
        return self._response is not None or self._disconnect is not None

    def _server_error(self) -> None:
        """Answer 500 if the handshake has not been answered yet (nor a response started)."""
        conn = self._conn
        if conn is None or conn.state is not _CONNECTING or self._lost:
            return
        response = self._response
        if response is not None and response[3]:
            return  # its head is out: too late for another status
        self._response = None
        conn.reject(500, self._default_headers() + list(_SERVER_ERROR_HEADERS), _SERVER_ERROR_BODY)
        self._flush()

    # ----------------------------------------------------------------------------------------
    # Closing.

    def _app_close(self, message: Dict[str, Any]) -> None:
        code = message.get("code")
        if code is None:
            code = 1000
        reason = message.get("reason") or ""
        conn = self._conn
        self._closing = True
        if conn.state is not _OPEN:
            return  # the peer closed first: the application has its websocket.disconnect
        try:
            conn.close(code, reason, self._loop.time())
        except ValueError as exc:
            self._closing = False
            raise RuntimeError(f"Invalid 'websocket.close': {exc}") from None
        self._set_disconnect({"type": "websocket.disconnect", "code": code, "reason": reason})
        # Messages still queued stay readable; new ones are dropped, so reading goes on until
        # the peer's close frame comes.
        self._queue_paused = False
        self._update_reading()
        self._flush()
        self._arm()

    def _event(self, event: Any) -> None:
        """Every event but a data message."""
        kind = type(event)
        if kind is Request:
            self._on_request(event)
        elif kind is ConnectionClosed:
            if event.clean or event.initiator != LOCAL or event.sent_code is None:
                if event.clean:
                    message = {
                        "type": "websocket.disconnect",
                        "code": event.code,
                        "reason": event.reason,
                    }
                else:
                    message = {"type": "websocket.disconnect", "code": 1006}
            else:
                # We failed the connection (a protocol error, a late pong): its close code.
                message = {
                    "type": "websocket.disconnect",
                    "code": event.sent_code,
                    "reason": event.sent_reason,
                }
            self._set_disconnect(message)
        # Ping, Pong, PingAnswered: the connection has answered or matched them.

    def _set_disconnect(self, message: Dict[str, Any]) -> None:
        """Hand the application its websocket.disconnect (the first one decided counts)."""
        if self._disconnect is not None:
            return
        self._disconnect = message
        self._deliver(message)

    def _deliver(self, message: Dict[str, Any]) -> bool:
        """Give ``message`` to the waiting ``receive()``, or queue it; True if it was taken."""
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():  # else its receive() was cancelled
                waiter.set_result(message)
                return True
        self._queue.append(message)
        return False

    def _close_transport(self) -> None:
        transport = self.transport
        if transport is None or transport.is_closing() or self._lost:
            return
        transport.close()
        # The connection's timers are moot now; what is left is making sure the transport
        # goes (close() waits for the write buffer to drain, for ever if the peer never reads).
        timer = self._timer
        if timer is not None:
            timer.cancel()
        self._timer = self._loop.call_later(CLOSE_TIMEOUT, self._abort)

    # ----------------------------------------------------------------------------------------
    # Internals.

    def _flush(self, close: bool = True) -> None:
        """Write what the connection has to send, act on the events it produced, and close
        the transport when the connection says so (unless ``close`` is False: the body of a
        denial response is still to come)."""
        conn = self._conn
        out = conn.data_to_send()
        if out and not self._lost:
            self._write(out)
        events = conn.events()
        for event in events:
            self._event(event)
        if close and conn.should_close_transport:
            self._close_transport()

    def _update_reading(self) -> None:
        """Pause or resume reading: paused while the application lags or writing is paused."""
        paused = (self._queue_paused and not self._closing) or self._write_paused
        if paused is self._reading_paused:
            return
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        self._reading_paused = paused
        if paused:
            transport.pause_reading()
        else:
            transport.resume_reading()

    async def _wait_writable(self) -> None:
        while self._write_paused and not self._lost:
            writable = self._writable
            if writable is None:
                writable = self._writable = self._loop.create_future()
            await writable

    def _arm(self) -> None:
        """Point the one timer at the connection's next deadline (called when it may have
        moved: accept, close, the timer itself; never per message)."""
        timer = self._timer
        if timer is not None:
            timer.cancel()
            self._timer = None
        due = self._conn.next_deadline()
        if due is None or self._lost:
            return
        # -inf: a deadline waiting for the current time to start; handle_timer gives it one.
        self._timer = self._loop.call_at(max(due, self._loop.time()), self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        conn = self._conn
        conn.handle_timer(self._loop.time())
        self._flush()
        if conn.state is not _CLOSED and not self._lost:
            self._arm()

    def _abort(self) -> None:
        """The transport was closed but is still not gone (a peer that does not read keeps
        the write buffer full): drop it."""
        self._timer = None
        if not self._lost:
            abort = getattr(self.transport, "abort", None)
            if abort is not None:
                abort()

    @property
    def close_timer(self) -> Optional[asyncio.TimerHandle]:
        """The timer of a closing handshake waiting for the peer's close frame, or None."""
        conn = self._conn
        if conn is None or conn.state is not _CLOSING or self._lost:
            return None
        if self.transport.is_closing():
            return None
        return self._timer

    def _prefix(self) -> str:
        return "%s:%d - " % self.client if self.client else ""
