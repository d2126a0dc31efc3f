"""The WebSocket object, which drives one sans-I/O connection, and the :class:`asyncio.Protocol`
through which a transport drives it (:class:`_Protocol`, kept off the WebSocket's surface).

Data path: ``_data_received`` makes one ``receive_data`` call into the connection, appends the
finished messages to a plain list and wakes the coroutine waiting in ``recv`` (if any). Sending
is one call into the connection and one ``transport.write``. Nothing else runs per message: the
timers (open timeout, heartbeat, close timeout) share one ``loop.call_at`` handle per connection,
re-armed only when the connection's next deadline changes, and control frames, handshake and
close go through a slower path.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import struct
from typing import (
    Any,
    AsyncIterable,
    AsyncIterator,
    Callable,
    Dict,
    Iterable,
    Iterator,
    List,
    Mapping,
    Optional,
    Sequence,
    Tuple,
    Union,
)

from .._enums import State
from ..codec import NO_EXTENSIONS, BinaryMessage, TextMessage, validate_utf8
from ..connection import ServerConnection
from ..events import Accepted, ConnectionClosed, PingAnswered, Rejected, Request
from ..exceptions import InvalidStateError
from ._exceptions import ClosedOK, WebSocketClosed

__all__ = ["WebSocket", "Message", "DEFAULT_MAX_QUEUE", "DEFAULT_WRITE_LIMIT"]

logger = logging.getLogger("turbows")

Message = Union[str, bytes]
#: One message or fragment to send: ``str`` goes as text, bytes-like as binary.
Data = Union[str, bytes, bytearray, memoryview]
#: What :meth:`WebSocket.send` takes: a message, or the fragments of one (a list or tuple,
#: an iterator such as a generator, or an async iterable). A mapping is none of these, so
#: that ``send({"a": 1})`` fails type checking (and raises TypeError): encode it first.
Sendable = Union[Data, Sequence[Data], Iterator[Data], AsyncIterable[Data]]

#: Messages kept for ``recv`` before reading from the socket pauses.
DEFAULT_MAX_QUEUE = 32
#: Write buffer high-water mark in bytes; ``send`` waits above it until the buffer drains to a
#: quarter of it (the low-water mark).
DEFAULT_WRITE_LIMIT = 64 * 1024

#: Bytes read from the socket at most per call (asyncio's selector transport reads 256 KiB).
READ_BUFFER_SIZE = 256 * 1024
#: Seconds a protocol error found after messages waits for the handler to take them (and
#: maybe answer) before the connection fails anyway; see WebSocket._data_received.
FAILURE_GRACE = 1.0

_TEXT = TextMessage
_BINARY = BinaryMessage
_CONNECTING = State.CONNECTING
_OPEN = State.OPEN
_CLOSING = State.CLOSING
_CLOSED = State.CLOSED
_NEG_INF = float("-inf")
_PING_PREFIX = b"fws"
_pack_ping = struct.Struct(">Q").pack


class _Options:
    """Per-server (or per-client) settings of the asyncio layer, shared by its connections."""

    __slots__ = (
        "max_queue",
        "low_queue",
        "write_high",
        "write_low",
        "open_timeout",
        "read_buffer",
    )

    def __init__(
        self,
        max_queue: int = DEFAULT_MAX_QUEUE,
        write_limit: Union[int, Tuple[int, int]] = DEFAULT_WRITE_LIMIT,
        open_timeout: Optional[float] = 10.0,
    ) -> None:
        if max_queue < 1:
            raise ValueError("max_queue must be >= 1")
        if isinstance(write_limit, tuple):
            high, low = write_limit
        else:
            high, low = write_limit, write_limit // 4
        if not 0 <= low <= high:
            raise ValueError("write_limit must satisfy 0 <= low <= high")
        if open_timeout is not None and open_timeout <= 0:
            raise ValueError("open_timeout must be > 0 or None")
        self.max_queue = max_queue
        self.low_queue = max_queue // 4
        self.write_high = high
        self.write_low = low
        self.open_timeout = open_timeout
        # One receive buffer shared by the connections of a server (or a client), made on
        # first use (see BufferedWebSocket).
        self.read_buffer: Optional[memoryview] = None


class WebSocket:
    """One WebSocket connection, server or client side.

    Servers hand it to the connection handler; clients get it from :func:`connect`. Use it
    from one task at a time for receiving (``recv`` / ``async for``); sending may be done from
    several tasks.

    Attributes:
        request: server side, the opening handshake's :class:`turbows.Request` (``path``,
            ``headers``, ``origin``, ``subprotocols``); client side, None.
        response_headers: client side, the headers of the server's 101 response.
    """

    __slots__ = (
        # hot path
        "_conn",
        "_transport",
        "_time",
        "_queue",
        "_head",
        "_waiter",
        "_max_queue",
        "_reading_paused",
        "_write_paused",
        "_paused_for_writes",
        "_on_message",
        "_corked",
        "_draining",
        # slower paths
        "_loop",
        "_options",
        "_timer",
        "_due",
        "_closed",
        "_waiters",
        "_pings",
        "_ping_seq",
        "_task",
        "request",
        "response_headers",
    )

    _conn: Any

    def __init__(self, options: _Options, loop: Optional[asyncio.AbstractEventLoop] = None):
        self._loop = loop if loop is not None else asyncio.get_event_loop()
        self._time = self._loop.time
        self._options = options
        self._max_queue = options.max_queue
        self._transport: Any = None
        self._queue: List[Message] = []
        self._head = 0
        self._waiter: Optional[asyncio.Future[None]] = None
        self._reading_paused = False  # the queue for recv is full
        self._write_paused = False
        # Reading stopped because something was written without waiting while the write
        # buffer was above its high-water mark (see _pause_for_writes).
        self._paused_for_writes = False
        self._on_message: Optional[Callable[[Message], Any]] = None
        # True while on_message callbacks run for one read: their send_nowait calls are
        # framed at once and written together when the read is done.
        self._corked = False
        # close() sent this side's close frame while no on_message callback was set: its
        # own callback (_keep_while_room) reads on to the peer's close frame.
        self._draining = False
        self._timer: Optional[asyncio.TimerHandle] = None
        self._due: Optional[float] = None
        self._closed: Optional[ConnectionClosed] = None
        # Futures for wait_closed, drain and the opening handshake, created only when needed.
        self._waiters: Optional[List[asyncio.Future[Any]]] = None
        self._pings: Optional[Dict[bytes, asyncio.Future[Optional[float]]]] = None
        self._ping_seq = 0
        self._task: Optional[asyncio.Task[Any]] = None
        self.request: Optional[Request] = None
        self.response_headers: Any = None

    # ----------------------------------------------------------------------------------------
    # Public API.

    @property
    def state(self) -> State:
        """CONNECTING, OPEN, CLOSING or CLOSED (:class:`turbows.State`)."""
        return self._conn.state  # type: ignore[no-any-return]

    @property
    def subprotocol(self) -> Optional[str]:
        """The negotiated subprotocol, or None."""
        return self._conn.subprotocol  # type: ignore[no-any-return]

    @property
    def extensions(self) -> Tuple[Any, ...]:
        """The extensions in use, as ``(name, params)`` pairs."""
        return tuple(self._conn.extensions)

    @property
    def latency(self) -> Optional[float]:
        """The round-trip time of the last answered ping (heartbeat or :meth:`ping`), seconds."""
        return self._conn.latency  # type: ignore[no-any-return]

    @property
    def close_code(self) -> Optional[int]:
        """The close code received (1005: none in the frame, 1006: no closing handshake), or
        None while the connection is not closed."""
        closed = self._closed
        return None if closed is None else closed.code

    @property
    def close_reason(self) -> Optional[str]:
        """The close reason received (for 1006, what happened instead), or None while open."""
        closed = self._closed
        return None if closed is None else closed.reason

    @property
    def closed_event(self) -> Optional[ConnectionClosed]:
        """The final :class:`turbows.ConnectionClosed` event once closed (clean, initiator,
        the code sent), else None."""
        return self._closed

    @property
    def remote_address(self) -> Any:
        """The peer's address, as the transport reports it (``peername``)."""
        transport = self._transport
        return None if transport is None else transport.get_extra_info("peername")

    @property
    def local_address(self) -> Any:
        """This end's address (``sockname``)."""
        transport = self._transport
        return None if transport is None else transport.get_extra_info("sockname")

    @property
    def transport(self) -> Any:
        """The underlying :class:`asyncio.Transport`."""
        return self._transport

    async def recv(self) -> Message:
        """Return the next message: ``str`` for text, ``bytes`` for binary.

        Raises:
            ClosedOK: the connection closed normally (1000, 1001 or no code) and every message
                received before the close was returned.
            ClosedError: it closed otherwise.
            RuntimeError: another coroutine is already waiting in ``recv``.
        """
        queue = self._queue
        head = self._head
        if head >= len(queue):
            waiter = self._quick_waiter()
            if waiter is not None:
                await waiter
            if self._head >= len(queue):
                await self._wait_message()
            head = self._head
        message = queue[head]
        head += 1
        if head == len(queue):
            queue.clear()
            head = 0
        self._head = head
        if self._reading_paused:
            self._maybe_resume_reading()
        return message

    def __aiter__(self) -> AsyncIterator[Message]:
        return self

    async def __anext__(self) -> Message:
        """Same as :meth:`recv`, but a normal close ends the iteration (any close, for a
        connection of the ``async for ws in connect(..., reconnect=...)`` form)."""
        # recv's steps repeated (keep them in step): a shared helper for the queue pop cost
        # about 4% of the handler mode's CPU per message (50-connection echo, 7 runs each).
        queue = self._queue
        head = self._head
        if head >= len(queue):
            waiter = self._quick_waiter()
            if waiter is not None:
                await waiter
            if self._head >= len(queue):
                try:
                    await self._wait_message()
                except WebSocketClosed as exc:
                    if type(exc) is ClosedOK or self._ends_quietly():
                        raise StopAsyncIteration from None
                    raise
            head = self._head
        message = queue[head]
        head += 1
        if head == len(queue):
            queue.clear()
            head = 0
        self._head = head
        if self._reading_paused:
            self._maybe_resume_reading()
        return message

    async def send(self, message: Sendable, *, text: Optional[bool] = None) -> None:
        """Send a message: ``str`` as text, bytes-like as binary.

        An iterable or async iterable of ``str`` (or of bytes-like) sends one fragmented
        message, a frame per item (RFC 6455 5.4).

        Waits while the write buffer is above its high-water mark (the peer reads slowly).

        Args:
            message: the message, or its fragments.
            text: ``True`` sends bytes that are already UTF-8 (the output of ``orjson.dumps``,
                say) as a text message, without decoding them (they are validated, in C);
                ``False`` sends a ``str`` as a binary message (UTF-8 encoded). For a whole
                message only.

        Raises:
            ClosedOK, ClosedError: the connection is closing or closed.
            TypeError: the message has an unsupported type, or ``text`` is given with
                fragments.
            ValueError: ``text=True`` and the bytes are not valid UTF-8.
        """
        conn = self._conn
        kind = type(message)
        try:
            if text is not None:
                _frame_as(conn, message, text)
            elif kind is str:
                conn.send_text(message)
            elif kind is bytes or kind is bytearray or kind is memoryview:
                conn.send_binary(message)
            else:
                await self._send_fragments(message)
                return
        except InvalidStateError:
            self._raise_closed()
            raise
        self._push()
        if self._write_paused:
            await self._drain()

    def _push(self) -> None:
        """Write what the connection framed (the compiled twin writes a large frame's payload
        without joining it to its header, on turbows's own transport)."""
        self._transport.write(self._conn.data_to_send())

    def send_nowait(self, message: Data, text: Optional[bool] = None) -> None:
        """Send a whole message at once, without waiting for the write buffer to drain.

        For callbacks (see :attr:`on_message`) and other synchronous code. A slow peer is
        never waited for here, but it cannot make the write buffer grow without limit either:
        when this leaves the buffer above its high-water mark (:attr:`writing_paused`), the
        connection stops reading from the peer until the buffer drains to its low-water mark,
        then reads again. Answers sent per message received (an ``on_message`` echo) thus
        follow the peer's pace, and a peer that sends but never reads makes us hold at most
        the write limit plus what one read brings. Code that sends on its own initiative
        (timers, feeds) should check :attr:`writing_paused`, or use ``await send``, which
        waits for the drain and keeps reading. ``text`` as for
        :meth:`send`.

        Raises:
            ClosedOK, ClosedError: the connection is closing or closed.
            TypeError: the message is neither ``str`` nor bytes-like.
            ValueError: ``text=True`` and the bytes are not valid UTF-8.
        """
        conn = self._conn
        try:
            if text is not None:
                _frame_as(conn, message, text)
            elif type(message) is str:
                conn.send_text(message)
            elif isinstance(message, (bytes, bytearray, memoryview)):
                conn.send_binary(message)
            else:
                raise TypeError(f"cannot send {type(message).__name__}: use str or bytes")
        except InvalidStateError:
            self._raise_closed()
            raise
        if not self._corked:
            self._transport.write(conn.data_to_send())
            if self._write_paused:
                self._pause_for_writes()

    @property
    def writing_paused(self) -> bool:
        """True while the write buffer is above its high-water mark."""
        return self._write_paused

    @property
    def on_message(self) -> Optional[Callable[[Message], None]]:
        """A callback run for each message as it arrives, instead of queuing it for ``recv``.

        The fastest way to consume messages: no task switch per message. The callback runs
        inside the protocol's ``data_received`` and must not block; it may call
        :meth:`send_nowait`, whose frames for this connection are written together once every
        message of the read was handled (one system call rather than one per message).
        Messages already queued stay for ``recv``. An exception it raises
        is logged and closes the connection with 1011. Set it back to None to queue again.

        Backpressure: when what the callbacks sent leaves the write buffer above its
        high-water mark (the peer reads slower than it sends), reading from the peer stops
        until the buffer drains (see :meth:`send_nowait`): ``ws.on_message = ws.send_nowait``
        echoes at the peer's pace and never buffers more than the write limit plus the
        answers to one read.

        Raises:
            TypeError: (on assignment) the callback is a coroutine function: its coroutines
                would never run. Use ``async for message in ws`` for asynchronous handling.
        """
        return None if self._draining else self._on_message

    @on_message.setter
    def on_message(self, callback: Optional[Callable[[Message], None]]) -> None:
        if callback is not None:
            if not callable(callback):
                raise TypeError(f"on_message must be callable, not {type(callback).__name__}")
            if inspect.iscoroutinefunction(callback) or inspect.iscoroutinefunction(
                getattr(callback, "__call__", None)
            ):
                raise TypeError(
                    f"on_message takes a plain function, and {callback!r} is a coroutine"
                    " function: its coroutines would never be awaited. Consume messages with"
                    " `async for message in ws` instead, or start a task from a plain callback"
                )
        self._on_message = callback
        self._draining = False

    async def ping(self, data: Optional[bytes] = None) -> float:
        """Send a ping and wait for its pong.

        Args:
            data: the ping payload (at most 125 bytes); by default a unique 11-byte payload.

        Returns:
            The round-trip time in seconds.

        Raises:
            ClosedOK, ClosedError: the connection closed before the pong arrived.
            ValueError: ``data`` is longer than 125 bytes, or a ping with the same payload is
                already waiting for its pong.
        """
        if data is None:
            self._ping_seq += 1
            data = _PING_PREFIX + _pack_ping(self._ping_seq)
        else:
            data = bytes(data)
        pings = self._pings
        if pings is None:
            pings = self._pings = {}
        if data in pings:
            raise ValueError(f"a ping with payload {data!r} is already waiting for its pong")
        conn = self._conn
        try:
            conn.ping(data, self._time())
        except InvalidStateError:
            self._raise_closed()
            raise
        future: asyncio.Future[Optional[float]] = self._loop.create_future()
        pings[data] = future
        self._flush()
        try:
            rtt = await future
        finally:
            pings.pop(data, None)
        if rtt is None:
            self._raise_closed()
            raise AssertionError("unreachable")  # pragma: no cover
        return rtt

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Close the connection with ``code`` and ``reason`` and wait until it is closed.

        Returns once the closing handshake completed, or the close timeout ran out (then the
        TCP connection is aborted). Does nothing more if the connection is already closing or
        closed. A client still in its opening handshake is aborted.

        Until the peer's close frame comes, reading goes on even if the queue for ``recv`` is
        full; messages that arrive meanwhile are kept for ``recv`` while it has room, and
        dropped beyond it. Messages queued before the call stay.

        Raises:
            ValueError: the code may not be sent (1005, 1006, 1015, ...) or the reason is
                longer than 123 bytes in UTF-8.
        """
        conn = self._conn
        state = conn.state
        if state is _OPEN:
            try:
                conn.close(code, reason, self._time())
            except InvalidStateError:  # a fragmented message is unfinished: cannot close cleanly
                self.abort()
            else:
                self._after()
                self._read_until_close()
        elif state is _CONNECTING:
            self.abort()
        await self.wait_closed()

    def abort(self) -> None:
        """Close the TCP connection at once, without a closing handshake (the code is 1006)."""
        transport = self._transport
        if transport is not None:
            transport.abort()
        else:
            self._conn.receive_data(b"", self._time())
            self._after()

    async def wait_closed(self) -> None:
        """Wait until the connection is closed (its TCP connection too)."""
        while self._closed is None or self._transport is not None:
            await self._new_waiter()

    # ----------------------------------------------------------------------------------------
    # What the transport calls, through _Protocol (asyncio.Protocol's callbacks).

    def _connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport
        options = self._options
        transport.set_write_buffer_limits(options.write_high, options.write_low)  # type: ignore[attr-defined]
        timeout = options.open_timeout
        if timeout is not None:
            self._due = when = self._time() + timeout
            self._timer = self._loop.call_at(when, self._on_timer)
        out = self._conn.data_to_send()  # the client's opening request
        if out:
            transport.write(out)  # type: ignore[attr-defined]

    def _data_received(self, data: Any) -> None:
        conn = self._conn
        conn.receive_data(data, self._time())
        events = conn.events()
        if not events:
            if conn.should_close_transport:
                self._after()
            return
        callback = self._on_message
        append = self._queue.append if callback is None else callback
        other = False
        self._corked = callback is not None
        try:
            for event in events:
                kind = type(event)
                if kind is _TEXT or kind is _BINARY:
                    append(event.data)
                else:
                    other = True
        except Exception as exc:  # from on_message
            self._corked = False
            self._callback_failed(exc)
            return
        if self._corked:
            self._corked = False
            out = conn.data_to_send()
            if out:
                self._transport.write(out)
                if self._write_paused:
                    self._pause_for_writes()
        if other:
            self._dispatch(events)
            self._after()
        elif conn.should_close_transport:
            self._after()
        self._wake()
        if conn._failure is not None:
            # A protocol error came after these messages: the connection fails when the
            # handler sends (data_to_send) or has taken them all (_wait_message), so that its
            # answers go out before the close frame, or after FAILURE_GRACE otherwise.
            self._fail_later()

    def _eof_received(self) -> Optional[bool]:
        self._conn.receive_data(b"", self._time())
        self._after()
        self._wake()
        return None  # let the transport close itself

    def _connection_lost(self, exc: Optional[BaseException]) -> None:
        if self._closed is None:
            self._conn.receive_data(b"", self._time())
            self._after()
            self._wake()
        timer = self._timer
        if timer is not None:
            timer.cancel()
            self._timer = None
        self._transport = None
        self._wake_waiters()
        self._lost()

    def _pause_writing(self) -> None:
        self._write_paused = True
        # At most one unsent pong from now on, however many pings arrive.
        self._conn.throttle_pongs(True)

    def _resume_writing(self) -> None:
        self._write_paused = False
        conn = self._conn
        conn.throttle_pongs(False)
        self._flush()  # the pong held back, if any
        if self._paused_for_writes:
            self._paused_for_writes = False
            if not self._reading_paused:
                transport = self._transport
                if transport is not None and not transport.is_closing():
                    transport.resume_reading()
        self._wake_waiters()

    # ----------------------------------------------------------------------------------------
    # Internals.

    def _lost(self) -> None:
        """Hook: the TCP connection is gone (servers forget the connection here)."""

    def _read_until_close(self) -> None:
        """This side sent its close frame: read on until the peer's comes, even if the
        queue for ``recv`` is full (the application, closing, may not read again; stopping
        would leave the close frame unread until the close timeout, then end with 1006).
        What arrives meanwhile is kept for ``recv`` while the queue has room, and dropped
        beyond it: this side has closed, and memory stays bounded."""
        if self._on_message is None:
            self._on_message = self._keep_while_room
            self._draining = True
        if self._reading_paused:
            self._reading_paused = False
            transport = self._transport
            if transport is not None and not transport.is_closing() and not self._paused_for_writes:
                transport.resume_reading()

    def _keep_while_room(self, message: Message) -> None:
        if len(self._queue) - self._head < self._max_queue:
            self._queue.append(message)

    def _wake(self) -> None:
        queue = self._queue
        if self._head < len(queue):
            waiter = self._waiter
            if waiter is not None:
                self._waiter = None
                if not waiter.done():
                    waiter.set_result(None)
            if (
                len(queue) - self._head >= self._max_queue
                and not self._reading_paused
                and not self._draining
            ):
                transport = self._transport
                if transport is not None and not transport.is_closing():
                    self._reading_paused = True
                    transport.pause_reading()

    def _callback_failed(self, exc: Exception) -> None:
        self._log(logging.ERROR, "on_message callback failed", exc_info=exc)
        self._on_message = None
        conn = self._conn
        if conn.state is _OPEN:
            conn.close(1011, "internal error", self._time())
        conn.events()  # what followed the failing message is dropped: the connection closes
        self._after()

    def _maybe_resume_reading(self) -> None:
        if len(self._queue) - self._head <= self._options.low_queue:
            self._reading_paused = False
            transport = self._transport
            if transport is not None and not transport.is_closing() and not self._paused_for_writes:
                transport.resume_reading()

    def _pause_for_writes(self) -> None:
        """Stop reading from the peer until the write buffer drains (``resume_writing``).

        Called when something was written without waiting (``send_nowait``, so the answers
        of ``on_message`` callbacks and ``broadcast``) while the buffer is above its
        high-water mark: the flow-control rule of every turbows layer, so that a peer that
        sends but does not read cannot make us buffer more than the write limit plus what
        one read brings. ``await send`` waits for the drain instead, and keeps reading."""
        if not self._paused_for_writes:
            self._paused_for_writes = True
            transport = self._transport
            if transport is not None and not transport.is_closing():
                transport.pause_reading()

    def _quick_waiter(self) -> "Optional[asyncio.Future[None]]":
        """The future ``_wait_message`` would wait on first, set as the waiter, when it has
        nothing else to do (the common case): ``recv`` and ``__anext__`` await it without
        ``_wait_message``'s coroutine (about 4% of the handler mode's CPU per message), and
        call that for anything else. None otherwise.

        A waiter is cleared when it is woken; one left set is done only if its wait was
        cancelled, and counts as no waiter (here and in ``_wait_message``)."""
        conn = self._conn
        waiter = self._waiter
        if (
            (waiter is None or waiter.done())
            and self._closed is None
            and conn._failure is None
            and not conn.should_close_transport
        ):
            waiter = self._waiter = self._loop.create_future()
            return waiter
        return None

    async def _wait_message(self) -> None:
        """Wait until a message is queued; raise the close error if none will come."""
        kicked = False
        while self._head >= len(self._queue):
            if self._closed is not None:
                raise WebSocketClosed.from_event(self._closed)
            conn = self._conn
            if not kicked and (conn._failure is not None or conn.should_close_transport):
                # Every message before a protocol error is taken (see data_received): fail,
                # or close the transport after a failure a send acted on.
                kicked = True
                self._fail_now()
                continue
            if self._waiter is not None and not self._waiter.done():
                raise RuntimeError("another coroutine is already waiting for the next message")
            waiter = self._waiter = self._loop.create_future()
            try:
                await waiter
            finally:
                if self._waiter is waiter:
                    self._waiter = None

    def _ends_quietly(self) -> bool:
        """Whether any close, not only a normal one, ends ``async for message in ws``."""
        return False

    def _raise_closed(self) -> None:
        """Raise the close error if the connection is closing or closed."""
        closed = self._closed
        if closed is not None:
            raise WebSocketClosed.from_event(closed)
        if self._conn.state is not _OPEN and self._conn.state is not _CONNECTING:
            # CLOSING: report what is known so far as an error; recv gives the final code.
            raise WebSocketClosed.from_event(
                ConnectionClosed(1006, "the connection is closing", False)
            )

    async def _send_fragments(self, message: Any) -> None:
        conn = self._conn
        send = conn.send_fragment
        if not isinstance(message, (Iterable, AsyncIterable)) or isinstance(message, Mapping):
            raise TypeError(
                f"cannot send {type(message).__name__}: use str or bytes-like, or an iterable"
                " of them for a fragmented message"
            )
        previous: Any = None
        started = False
        try:
            if isinstance(message, AsyncIterable):
                async for item in message:
                    if started:
                        send(previous, False)
                        await self._flush_and_drain()
                    previous, started = item, True
            else:
                for item in message:
                    if started:
                        send(previous, False)
                        await self._flush_and_drain()
                    previous, started = item, True
            if started:
                send(previous, True)
            await self._flush_and_drain()
        except InvalidStateError:
            self._raise_closed()
            raise

    async def _flush_and_drain(self) -> None:
        self._flush()
        if self._write_paused:
            await self._drain()

    async def _drain(self) -> None:
        while self._write_paused:
            if self._closed is not None or self._transport is None:
                self._raise_closed()
                return
            await self._new_waiter()

    def _new_waiter(self) -> "asyncio.Future[Any]":
        waiters = self._waiters
        if waiters is None:
            waiters = self._waiters = []
        future: asyncio.Future[Any] = self._loop.create_future()
        waiters.append(future)
        return future

    def _wake_waiters(self) -> None:
        waiters = self._waiters
        if waiters:
            self._waiters = None
            for future in waiters:
                if not future.done():
                    future.set_result(None)

    def _fail_later(self) -> None:
        self._loop.call_later(FAILURE_GRACE, self._fail_now)

    def _fail_now(self) -> None:
        """Act on a protocol error the connection left pending (see data_received)."""
        self._conn._fail_pending()
        self._after()

    def _flush(self) -> None:
        conn = self._conn
        # Not the pending failure (see data_received): only a send, or _fail_now, acts on it.
        out = conn.data_to_send() if conn._failure is None else conn._take_all()
        transport = self._transport
        if out and transport is not None and not transport.is_closing():
            transport.write(out)

    def _after(self, abort: bool = False) -> None:
        """The slow path after any call into the connection: handle its events, write its
        output, close the transport when it says so, and re-arm the timer."""
        conn = self._conn
        events = conn.events()
        if events:
            callback = self._on_message
            append = self._queue.append if callback is None else callback
            try:
                for event in events:
                    kind = type(event)
                    if kind is _TEXT or kind is _BINARY:
                        append(event.data)
            except Exception as exc:  # from on_message
                self._log(logging.ERROR, "on_message callback failed", exc_info=exc)
                self._on_message = None
                if conn.state is _OPEN:
                    conn.close(1011, "internal error", self._time())
            self._dispatch(events)
            self._wake()
        self._flush()
        transport = self._transport
        if conn.should_close_transport and transport is not None:
            if abort or (
                conn.state is _CLOSED
                and self._closed is not None
                and not self._closed.clean
                and transport.get_write_buffer_size()
            ):
                transport.abort()
            elif not transport.is_closing():
                transport.close()
        if conn.state is not _CONNECTING:
            self._arm()

    def _arm(self) -> None:
        """Point the one timer at the connection's next deadline, if it moved."""
        conn = self._conn
        due = conn.next_deadline()
        if due == _NEG_INF:
            conn.handle_timer(self._time())
            due = conn.next_deadline()
        if due == self._due:
            return
        timer = self._timer
        if timer is not None:
            timer.cancel()
            self._timer = None
        self._due = due
        if due is not None:
            self._timer = self._loop.call_at(due, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._due = None
        conn = self._conn
        if conn.state is _CONNECTING:
            self._open_timed_out()
            return
        before = self._closed
        conn.handle_timer(self._time())
        events_closed = conn.state is _CLOSED and before is None
        self._after(abort=events_closed)

    def _open_timed_out(self) -> None:
        self._log(logging.INFO, "opening handshake timed out")
        transport = self._transport
        if transport is not None:
            transport.abort()

    def _dispatch(self, events: List[Any]) -> None:
        """Handle every event but the data messages (already queued)."""
        for event in events:
            kind = type(event)
            if kind is _TEXT or kind is _BINARY:
                continue
            if kind is PingAnswered:
                pings = self._pings
                if pings:
                    future = pings.get(event.payload)
                    if future is not None and not future.done():
                        future.set_result(event.rtt if event.rtt is not None else 0.0)
            elif kind is ConnectionClosed:
                self._on_closed(event)
            elif kind is Request:
                self._on_request(event)
            elif kind is Accepted:
                self._on_accepted(event)
            elif kind is Rejected:
                self._on_rejected(event)

    def _on_closed(self, event: ConnectionClosed) -> None:
        self._closed = event
        if self._logger.isEnabledFor(logging.DEBUG):
            self._log(logging.DEBUG, "connection closed: %s", WebSocketClosed.from_event(event))
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)
        pings = self._pings
        if pings:
            for future in pings.values():
                if not future.done():
                    future.set_result(None)

    #: The logger of this side: ``turbows.server`` or ``turbows.client``.
    _logger = logger

    def _log_path(self) -> str:
        """The request target, for log records."""
        request = self.request
        return "-" if request is None else request.path

    def _log(self, level: int, msg: str, *args: Any, exc_info: Any = None) -> None:
        """Log about this connection: the message starts with the peer's address and the
        path, which the record also carries as ``remote_address`` and ``path`` (for
        filters and structured formatters)."""
        log = self._logger
        if log.isEnabledFor(level):
            peer = self.remote_address
            path = self._log_path()
            where = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) and len(peer) >= 2 else peer
            log.log(
                level,
                "%s %s: " + msg,
                where,
                path,
                *args,
                exc_info=exc_info,
                extra={"remote_address": peer, "path": path},
            )

    def _on_request(self, event: Request) -> None:  # pragma: no cover - server only
        raise NotImplementedError

    def _on_accepted(self, event: Accepted) -> None:  # pragma: no cover - client only
        raise NotImplementedError

    def _on_rejected(self, event: Rejected) -> None:  # pragma: no cover - client only
        raise NotImplementedError

    def __repr__(self) -> str:
        side = "server" if isinstance(self._conn, ServerConnection) else "client"
        return f"<turbows WebSocket {side} {self._conn.state.name} {self.remote_address}>"


class _Protocol(asyncio.Protocol):
    """The :class:`asyncio.Protocol` a transport drives for one :class:`WebSocket`.

    The protocol callbacks live here rather than on the WebSocket, so that what an application
    holds has only the WebSocket API. ``data_received`` is a slot holding the WebSocket's bound
    ``_data_received``: a read costs no extra Python call (asyncio's transports look the
    method up on every read, uvloop's once). The other callbacks run once per connection, or
    per write-buffer crossing, and forward.
    """

    __slots__ = ("ws", "data_received")

    def __init__(self, ws: WebSocket) -> None:
        self.ws = ws
        self.data_received = ws._data_received  # type: ignore[method-assign]

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.ws._connection_made(transport)

    def eof_received(self) -> Optional[bool]:
        return self.ws._eof_received()

    def connection_lost(self, exc: Optional[BaseException]) -> None:
        self.ws._connection_lost(exc)

    def pause_writing(self) -> None:
        self.ws._pause_writing()

    def resume_writing(self) -> None:
        self.ws._resume_writing()

    def __repr__(self) -> str:
        return f"<protocol of {self.ws!r}>"


class _BufferedProtocol(_Protocol, asyncio.BufferedProtocol):
    """A :class:`_Protocol` whose transport reads into one buffer shared by all the
    connections of a server (or a client) instead of making a ``bytes`` per read.

    Used on asyncio's selector loops, where a read otherwise allocates a 256 KiB ``bytes`` and
    shrinks it: glibc serves that with mmap, mremap and munmap, three system calls per read
    (measured with strace: 17 -> 7.5 us of server CPU per 32-byte echo). uvloop reads into
    its own buffer already, and is slower through get_buffer (measured), so it keeps
    ``data_received``.

    Transports (asyncio's, its TLS layer) call ``get_buffer``, fill the buffer and call
    ``buffer_updated`` with nothing in between, and the connection copies what it keeps before
    anything else runs, so one buffer serves every connection and an idle connection holds
    none.
    """

    __slots__ = ("_options",)

    def __init__(self, ws: WebSocket) -> None:
        super().__init__(ws)
        self._options = ws._options

    def get_buffer(self, sizehint: int) -> memoryview:
        buffer = self._options.read_buffer
        if buffer is None:
            buffer = self._options.read_buffer = memoryview(bytearray(READ_BUFFER_SIZE))
        return buffer

    def buffer_updated(self, nbytes: int) -> None:
        self.data_received(self._options.read_buffer[:nbytes])  # type: ignore[arg-type,index]


def protocol_for(ws: WebSocket, loop: asyncio.AbstractEventLoop, compiled: bool = False) -> _Protocol:
    """The protocol object to hand a transport for ``ws`` on ``loop``: one that reads into a
    shared buffer on asyncio's selector loops (see :class:`_BufferedProtocol`), except for
    turbows's ``compiled`` transport, which reads into its own."""
    if not compiled and isinstance(loop, asyncio.selector_events.BaseSelectorEventLoop):
        return _BufferedProtocol(ws)
    return _Protocol(ws)


def _as_kind(message: Any, text: bool) -> Tuple[Any, bool]:
    """A whole message to send as text (``text=True``) or binary (``False``), whatever its
    type: ``(payload, is_text)``. UTF-8 bytes go as text after validation (no ``str`` is
    built); a ``str`` goes as binary UTF-8.

    Raises:
        TypeError: the message is neither ``str`` nor bytes-like.
        ValueError: ``text=True`` and the bytes are not valid UTF-8.
    """
    if type(message) is str:
        return (message, True) if text else (message.encode("utf-8"), False)
    if isinstance(message, (bytes, bytearray, memoryview)):
        if not text:
            return message, False
        if validate_utf8(message):
            return message, True
        # RFC 6455 5.6: a text message is UTF-8; the peer would fail the connection (1007).
        raise ValueError("text=True needs UTF-8 bytes: this message is not valid UTF-8")
    raise TypeError(f"cannot send {type(message).__name__} as one message: use str or bytes-like")


def _frame_as(conn: Any, message: Any, text: bool) -> None:
    """Frame one whole message on ``conn`` as text or binary (see :func:`_as_kind`)."""
    payload, is_text = _as_kind(message, text)
    if is_text:
        conn.send_text(payload)
    else:
        conn.send_binary(payload)


def _install_compiled_send_nowait() -> None:
    """Replace :meth:`WebSocket.send_nowait` and ``_push`` (``send``'s write) by their
    compiled twins when the compiled module of the asyncio layer is there (not with
    ``TURBOWS_NO_EXTENSIONS=1``): an ``on_message`` callback calls the first for every message
    it answers, ``await ws.send()`` the second."""
    if NO_EXTENSIONS:
        return
    try:
        from . import _fastio
        from ._fastio import push, send_nowait
    except ImportError:  # no compiler, or not POSIX
        return
    _fastio._frame_as = _frame_as
    send_nowait.__doc__ = WebSocket.send_nowait.__doc__
    WebSocket.send_nowait = send_nowait  # type: ignore[method-assign]
    WebSocket._push = push  # type: ignore[method-assign]


_install_compiled_send_nowait()
