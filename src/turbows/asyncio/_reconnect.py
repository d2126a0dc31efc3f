"""Reconnection: the retry policy, the decision table, and :class:`ReconnectingClient`."""

from __future__ import annotations

import asyncio
import collections
import copy
import email.utils
import logging
import random
import time
from typing import (
    Any,
    AsyncIterator,
    Awaitable,
    Callable,
    Deque,
    Dict,
    Optional,
    Union,
)
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from .._resume import RESET, envelope_channel_id
from ..events import ConnectionClosed
from ..exceptions import TurboWSError
from ._client import ClientWebSocket, Connect
from ._exceptions import ClosedOK, HandshakeError, HandshakeRejected, WebSocketClosed
from ._fanout import SLOW_CONSUMER
from ._protocol import Message, WebSocket

__all__ = [
    "Attempt",
    "ReconnectingClient",
    "RetriesExhausted",
    "RetryPolicy",
    "default_should_retry",
    "parse_retry_after",
]

logger = logging.getLogger("turbows.client")

#: Close codes after which connecting again would fail the same way: the server found our
#: frames or messages unacceptable (RFC 6455 7.4.1). Reconnecting stops and the error is raised.
STOP_CLOSE_CODES = frozenset({1002, 1003, 1007, 1008, 1009, 1010})
#: Close codes of a server that restarts, is deployed or is overloaded: come back later.
#: 1001 "going away" is what every graceful shutdown sends, 1012 "service restart" likewise.
RETRY_CLOSE_CODES = frozenset({1001, 1006, 1011, 1012, 1013, 1014})
#: HTTP statuses worth retrying: the server is (temporarily) unable to serve.
RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})


class RetriesExhausted(TurboWSError):
    """``max_attempts`` attempts in a row failed; ``__cause__`` is the last error.

    Attributes:
        attempts: how many attempts were made.
        last_error: the error of the last attempt.
    """

    def __init__(self, attempts: int, last_error: BaseException) -> None:
        super().__init__(f"gave up after {attempts} failed attempts: {last_error!r}")
        self.attempts = attempts
        self.last_error = last_error


class Attempt:
    """Progress of a (re)connection attempt, passed to ``on_attempt`` before its delay.

    Attributes:
        number: 1 for the very first attempt, then 2, 3, ... while attempts fail or
            connections drop sooner than ``reset_after``; 1 again after a connection that
            stayed open that long (the same count as the backoff level, and as the logs).
        delay: seconds waited before this attempt (0.0 for the very first attempt).
        error: what ended the previous connection or attempt, or None for the first one.
    """

    __slots__ = ("number", "delay", "error")

    def __init__(self, number: int, delay: float, error: Optional[BaseException]) -> None:
        self.number = number
        self.delay = delay
        self.error = error

    def __repr__(self) -> str:
        return f"Attempt(number={self.number}, delay={self.delay:.3f}, error={self.error!r})"


def parse_retry_after(value: Optional[str]) -> Optional[float]:
    """A ``Retry-After`` value (RFC 9110 10.2.3: seconds, or an HTTP date) in seconds."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:  # pragma: no cover - older Pythons return None
        return None
    return max(0.0, when.timestamp() - time.time())


def default_should_retry(error: BaseException) -> bool:
    """The decision table: whether to connect again after ``error``.

    ==========================================  ======================================
    what ended the connection or the attempt    decision
    ==========================================  ======================================
    this side closed (``ws.close()``)           stop, quietly (decided before this table)
    the server closed with 1000                 stop, quietly
    1001, 1006, 1011, 1012, 1013, 1014          retry (a restart, a deploy, a crash, overload)
    1002, 1003, 1007, 1008, 1009, 1010          stop: the error is raised
    4000-4999 (the application's own codes)     stop, unless ``should_retry`` answers
    any other code (1005, 1015, 3000-3999)      retry
    HTTP 408, 425, 429, 500, 502, 503, 504      retry (honouring ``Retry-After``)
    any other HTTP status (401, 403, 404, 426)  stop: :class:`HandshakeRejected` is raised
    an invalid handshake answer, a timeout,     retry
    a network error (``OSError``)
    anything else                               stop: the error is raised
    ==========================================  ======================================
    """
    if isinstance(error, WebSocketClosed):
        code = error.code
        if code in RETRY_CLOSE_CODES:
            return True
        if code == 1000 or code in STOP_CLOSE_CODES or 4000 <= code <= 4999:
            return False
        return True
    if isinstance(error, HandshakeRejected):
        return error.status in RETRY_STATUSES
    return isinstance(error, (HandshakeError, OSError, asyncio.TimeoutError))


def _why_stop(error: BaseException) -> str:
    """Why the decision table stopped after ``error``, for the log and the raised error."""
    if isinstance(error, WebSocketClosed):
        if 4000 <= error.code <= 4999:
            return (
                f"the server closed with the application's code {error.code}"
                f" ({error.reason!r}); RetryPolicy(should_retry=...) decides on these"
            )
        return f"the server closed with {error.code} ({error.reason!r}), which is not retried"
    if isinstance(error, HandshakeRejected):
        return f"the server answered HTTP {error.status}, which is not retried"
    return f"{error!r} is not retried"


class RetryPolicy:
    """How and whether to reconnect.

    The delay before attempt ``n`` (``n`` = 1 after the first failure) is
    ``min(max_delay, initial_delay * factor ** (n - 1))``, multiplied by a random factor in
    ``[1 - jitter, 1 + jitter]`` so that many clients dropped at once do not come back at
    once. A ``Retry-After`` header of a rejection is a floor for the delay (jittered upwards
    only). The very first connection is not delayed.

    Args:
        initial_delay: the first delay, seconds.
        factor: the growth of each further delay.
        max_delay: the cap on the delay (before jitter).
        jitter: the random fraction applied to every delay, 0 to 1.
        max_attempts: give up (:class:`RetriesExhausted`) after this many failed attempts in
            a row; None retries forever. A connection that opens resets the count.
        reset_after: a connection that stayed open this long resets the delay to
            ``initial_delay``; shorter-lived ones keep the delay growing (a server that
            accepts then drops at once is not hammered).
        should_retry: ``fn(error) -> bool | None`` to override :func:`default_should_retry`
            (None keeps the default decision). ``error`` is a :class:`WebSocketClosed` (a
            connection ended), a :class:`HandshakeRejected` (an HTTP status), or the
            exception of a failed attempt.
        on_attempt: ``fn(Attempt)`` called before each attempt, before its delay.
        max_retry_after: the largest ``Retry-After`` honoured, seconds.
    """

    def __init__(
        self,
        initial_delay: float = 0.5,
        factor: float = 2.0,
        max_delay: float = 30.0,
        jitter: float = 0.25,
        max_attempts: Optional[int] = None,
        reset_after: float = 10.0,
        should_retry: Optional[Callable[[BaseException], Optional[bool]]] = None,
        on_attempt: Optional[Callable[[Attempt], Any]] = None,
        max_retry_after: float = 300.0,
    ) -> None:
        if initial_delay < 0 or factor < 1 or max_delay < 0 or not 0 <= jitter <= 1:
            raise ValueError(
                "need initial_delay >= 0, factor >= 1, max_delay >= 0 and 0 <= jitter <= 1"
            )
        if max_attempts is not None and max_attempts < 1:
            raise ValueError("max_attempts must be >= 1 or None")
        self.initial_delay = initial_delay
        self.factor = factor
        self.max_delay = max_delay
        self.jitter = jitter
        self.max_attempts = max_attempts
        self.reset_after = reset_after
        self.should_retry = should_retry
        self.on_attempt = on_attempt
        self.max_retry_after = max_retry_after

    def delay(self, level: int, error: Optional[BaseException] = None) -> float:
        """The jittered delay before a retry at backoff ``level`` (1, 2, ...) after ``error``."""
        base = min(self.max_delay, self.initial_delay * self.factor ** max(0, level - 1))
        delay = base * (1.0 + random.uniform(-self.jitter, self.jitter))
        if isinstance(error, HandshakeRejected):
            after = error.retry_after
            if after is not None:
                after = min(after, self.max_retry_after) * (1.0 + random.uniform(0, self.jitter))
                delay = max(delay, after)
        return max(0.0, delay)

    def decide(self, error: BaseException) -> bool:
        """Whether to retry after ``error``: the callback's answer, else the default table."""
        if self.should_retry is not None:
            answer = self.should_retry(error)
            if answer is not None:
                return bool(answer)
        return default_should_retry(error)


_RETRYABLE_ERRORS = (HandshakeError, OSError, asyncio.TimeoutError)


async def _reconnecting(
    connect: Union[Connect, Callable[[], Connect]], policy: RetryPolicy
) -> AsyncIterator[ClientWebSocket]:
    """Yield a new open connection each time the previous one ended and the policy says retry.

    A connection yielded here ends ``async for message in ws`` quietly whatever its close
    code: this generator decides what comes next. It returns when this side closed the
    connection or the server closed it with 1000, and raises the error (the close, the
    rejection, :class:`RetriesExhausted`) when the policy stops for any other reason. After
    the consumer's iteration, a connection still open is closed with 1000.
    """
    loop = asyncio.get_running_loop()
    failures = 0  # attempts in a row that did not open (for max_attempts)
    level = 0  # the backoff level; back to 0 after a connection that lasted reset_after
    number = 0  # the attempt's number in the logs and Attempt, counted like the level
    error: Optional[BaseException] = None
    while True:
        delay = 0.0 if error is None else policy.delay(level, error)
        number += 1
        attempt = Attempt(number, delay, error)
        factory = connect if isinstance(connect, Connect) else connect()
        uri = factory.uri
        if error is None:
            logger.info("connecting to %s", uri)
        else:
            logger.info(
                "reconnecting to %s: attempt %d in %.2f s after %s", uri, number, delay, error
            )
        if policy.on_attempt is not None:
            policy.on_attempt(attempt)
        if delay > 0:
            await asyncio.sleep(delay)
        try:
            ws = await factory._open()
        except _RETRYABLE_ERRORS as exc:
            if not policy.decide(exc):
                logger.warning("not reconnecting to %s: %s", uri, _why_stop(exc))
                raise
            failures += 1
            level += 1
            if policy.max_attempts is not None and failures >= policy.max_attempts:
                logger.warning(
                    "giving up on %s after %d failed attempts in a row: %s", uri, failures, exc
                )
                raise RetriesExhausted(failures, exc) from exc
            error = exc
            continue
        failures = 0
        opened = loop.time()
        ws._reconnecting = True
        logger.info("connected to %s", uri)
        try:
            yield ws
        finally:
            if ws.closed_event is None:
                await ws.close()
        event = ws.closed_event
        assert event is not None
        if ws._closed_here:
            return  # this side closed: the application is done with the connection
        closed = WebSocketClosed.from_event(event)
        if not policy.decide(closed):
            if closed.code == 1000:
                logger.info("%s closed the connection with 1000: not reconnecting", uri)
                return
            logger.warning("not reconnecting to %s: %s", uri, _why_stop(closed))
            raise closed
        if loop.time() - opened >= policy.reset_after:
            level = 0
            number = 0
        level += 1
        error = closed


class ReconnectingClient:
    """A client connection that reconnects by itself and queues sends while disconnected.

    ::

        async def resubscribe(ws):
            await ws.send(json.dumps({"subscribe": "prices", "since": last_event_id}))

        async with ReconnectingClient(uri, policy=RetryPolicy(max_attempts=20),
                                      on_connect=resubscribe) as client:
            await client.send("hello")          # queued if not connected yet
            async for message in client:        # messages from every connection, in order
                ...

    After each (re)connection, ``on_connect(ws)`` runs first (resubscribe, replay, resume
    from the last event id), then the messages queued by :meth:`send` while disconnected are
    sent in order, then new sends go straight out. Messages handed to a connection that then
    dropped are not resent: replay them from ``on_connect`` if the application needs that.

    Args:
        uri: the server URI.
        policy: the :class:`RetryPolicy` (backoff, attempts, decision, ``on_attempt``).
        on_connect: ``async fn(ws)`` run after each successful handshake; if it raises, the
            connection is closed with 1011 and retried.
        on_disconnect: ``fn(error)`` called when a connection ends (a
            :class:`WebSocketClosed`).
        max_pending: how many sends may wait for a connection; more raise
            :class:`asyncio.QueueFull`.
        resume: resume :mod:`turbows.pubsub` channels after a reconnection: the last id
            received on each channel (from the ``{"id": ...}`` envelopes of its messages, read
            or still queued) goes in the new request's ``since`` query parameter, so that the
            server sends every later message exactly once. A close with
            :data:`turbows.pubsub.RESET` (4010: that point is gone) forgets the ids: the next
            connection starts live, and ``on_disconnect`` tells the application.
        extra_headers: headers for the handshake, or a callable returning them, called before
            each attempt (to send a ``Last-Event-ID``, a fresh token, ...).
        **connect_kwargs: the other options of :func:`connect`.
    """

    def __init__(
        self,
        uri: str,
        *,
        policy: Optional[RetryPolicy] = None,
        on_connect: Optional[Callable[[ClientWebSocket], Awaitable[Any]]] = None,
        on_disconnect: Optional[Callable[[WebSocketClosed], Any]] = None,
        max_pending: int = 1024,
        resume: bool = False,
        extra_headers: Any = (),
        **connect_kwargs: Any,
    ) -> None:
        self.uri = uri
        self.policy = policy if policy is not None else RetryPolicy()
        if resume:
            self.policy = _resuming(self.policy)
        self._on_connect = on_connect
        self._on_disconnect = on_disconnect
        self._max_pending = max_pending
        self._resume = resume
        # The last id received per channel (resume=True), from the messages recv returned.
        self._last_ids: Dict[str, str] = {}
        self._extra_headers = extra_headers
        self._connect_kwargs = connect_kwargs
        self._pending: Deque[Any] = collections.deque()
        self._ws: Optional[ClientWebSocket] = None
        # Connections whose messages recv() has not fully read yet, oldest first: messages
        # that arrived just before a drop are still delivered, in order.
        self._readable: Deque[ClientWebSocket] = collections.deque(maxlen=8)
        self._task: Optional[asyncio.Task[None]] = None
        self._final: Optional[BaseException] = None
        self._changed: Optional[asyncio.Event] = None
        self._closing = False
        self.state = "idle"
        # Fail now on a bad URI or option (without calling an extra_headers callable).
        Connect(
            uri,
            **dict(connect_kwargs, extra_headers=() if callable(extra_headers) else extra_headers),
        )

    def _connect_args(self) -> Any:
        headers = self._extra_headers
        if callable(headers):
            headers = headers()
        return dict(self._connect_kwargs, extra_headers=headers)

    def _make_connect(self) -> Connect:
        uri = self.uri
        if self._resume:
            since = self._resume_since()
            if since:
                uri = _with_query(uri, "since", since)
        return Connect(uri, **self._connect_args())

    def _resume_since(self) -> str:
        """The ``since`` value for the next connection: per channel, the last id among the
        messages returned by recv and those still queued on the connections that ended."""
        ids = dict(self._last_ids)
        for ws in self._readable:
            queue = ws._queue
            for message in queue[ws._head :]:
                found = envelope_channel_id(message)
                if found is not None:
                    ids[found[0]] = found[1]
        if len(ids) == 1:
            return next(iter(ids.values()))
        return ",".join(f"{channel}:{mid}" for channel, mid in ids.items())

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> None:
        """Start connecting in the background (``async with`` does it)."""
        if self._task is None:
            self._changed = asyncio.Event()
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def __aenter__(self) -> "ReconnectingClient":
        self.start()
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        await self.close()

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Stop reconnecting and close the current connection, if any."""
        self._closing = True
        ws = self._ws
        if ws is not None:
            await ws.close(code, reason)
        task = self._task
        if task is not None and not task.done():
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass
        if self._final is None:
            self._final = ClosedOK.from_event(ConnectionClosed(1000, "client closed", True))
        self.state = "closed"
        self._notify()

    @property
    def ws(self) -> Optional[ClientWebSocket]:
        """The current open connection, or None while (re)connecting."""
        return self._ws

    @property
    def connected(self) -> bool:
        """Whether a connection is open and ready (``on_connect`` done, backlog sent)."""
        return self._ws is not None

    async def wait_connected(self) -> ClientWebSocket:
        """Wait until a connection is ready and return it.

        Raises:
            RetriesExhausted, HandshakeRejected, WebSocketClosed: reconnecting stopped.
        """
        while True:
            changed = self._changed
            ws = self._ws
            if ws is not None and ws.closed_event is None:
                return ws
            if self._final is not None:
                raise self._final
            if changed is None:
                raise RuntimeError("the client is not started: use start() or async with")
            await changed.wait()

    # -- messages ----------------------------------------------------------------------------

    async def send(self, message: Message) -> None:
        """Send ``message`` now, or queue it (in order) until a connection is ready.

        Raises:
            asyncio.QueueFull: ``max_pending`` messages are already waiting.
            RetriesExhausted, HandshakeRejected, WebSocketClosed: reconnecting stopped.
        """
        if self._final is not None:
            raise self._final
        ws = self._ws
        if ws is not None and not self._pending:
            try:
                await ws.send(message)
                return
            except WebSocketClosed:
                pass  # not sent: queue it for the next connection
        if len(self._pending) >= self._max_pending:
            raise asyncio.QueueFull(f"{self._max_pending} messages already wait for a connection")
        self._pending.append(message)

    @property
    def pending(self) -> int:
        """How many sends wait for a connection."""
        return len(self._pending)

    async def recv(self) -> Message:
        """Return the next message from the current connection, across reconnections.

        Raises:
            RetriesExhausted, HandshakeRejected, WebSocketClosed: reconnecting stopped.
        """
        readable = self._readable
        while True:
            if readable:
                ws = readable[0]
                try:
                    message = await ws.recv()
                    if self._resume:
                        found = envelope_channel_id(message)
                        if found is not None:
                            self._last_ids[found[0]] = found[1]
                    return message
                except WebSocketClosed:
                    if readable and readable[0] is ws:
                        readable.popleft()
                    continue
            if self._final is not None:
                raise self._final
            changed = self._changed
            if changed is None:
                raise RuntimeError("the client is not started: use start() or async with")
            await changed.wait()

    def __aiter__(self) -> AsyncIterator[Message]:
        return self

    async def __anext__(self) -> Message:
        try:
            return await self.recv()
        except ClosedOK:
            raise StopAsyncIteration from None

    # -- internals ---------------------------------------------------------------------------

    def _forget_ids(self) -> None:
        """After a reset: no resume point, not even from messages still queued."""
        self._last_ids.clear()
        for ws in self._readable:
            del ws._queue[ws._head :]

    def _notify(self) -> None:
        changed = self._changed
        if changed is not None:
            self._changed = asyncio.Event()
            changed.set()

    async def _run(self) -> None:
        policy = self.policy
        self.state = "connecting"
        iterator: Any = _reconnecting(self._make_connect, policy)
        try:
            async for ws in iterator:
                if self._closing:
                    await ws.close()
                    break
                try:
                    if self._on_connect is not None:
                        await self._on_connect(ws)
                    pending = self._pending
                    while pending:
                        await ws.send(pending[0])
                        pending.popleft()
                except WebSocketClosed:
                    pass
                except Exception:
                    logger.exception("on_connect failed")
                    # WebSocket.close, not ws.close: this is no close by the application,
                    # so the decision table sees the 1011 and retries.
                    await WebSocket.close(ws, 1011, "on_connect failed")
                else:
                    self._ws = ws
                    self._readable.append(ws)
                    self.state = "open"
                    self._notify()
                    await ws.wait_closed()
                self._ws = None
                self.state = "connecting"
                event = ws.closed_event
                if event is not None:
                    closed = WebSocketClosed.from_event(event)
                    if self._resume and closed.code == RESET:
                        self._forget_ids()
                    if self._on_disconnect is not None:
                        self._on_disconnect(closed)
                self._notify()
            if self._final is None:
                self._final = ClosedOK.from_event(
                    ConnectionClosed(1000, "reconnection stopped", True)
                )
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            self._final = exc
        finally:
            self._ws = None
            self.state = "closed"
            self._notify()
            await iterator.aclose()


def _with_query(uri: str, name: str, value: str) -> str:
    """``uri`` with the query parameter ``name`` set to ``value`` (replacing it)."""
    parts = urlsplit(uri)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != name]
    query.append((name, value))
    return urlunsplit(parts._replace(query=urlencode(query, safe=":,-")))


def _resuming(policy: RetryPolicy) -> RetryPolicy:
    """``policy`` that also retries after the two close codes a resuming client recovers
    from: :data:`SLOW_CONSUMER` (4008: resume where it stopped) and ``RESET`` (4010: start
    over), which the default table, like every 4000-4999 code, would stop on. The policy's
    own ``should_retry`` still decides first."""
    own = policy.should_retry

    def should_retry(error: BaseException) -> Optional[bool]:
        if own is not None:
            answer = own(error)
            if answer is not None:
                return bool(answer)
        if isinstance(error, WebSocketClosed) and error.code in (SLOW_CONSUMER, RESET):
            return True
        return None

    resuming = copy.copy(policy)
    resuming.should_retry = should_retry
    return resuming
