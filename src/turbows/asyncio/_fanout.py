"""Batched fan-out: many messages to many connections, one write per connection per batch.

The messages of a batch are framed once (an unmasked :class:`turbows.FrameWriter`: a server
never masks) into one ``bytes``; each connection then gets that object, or the part of it that
fits under its write limit, in one ``send_frames`` call into its sans-I/O connection and one
write to its socket. What does not fit goes by the slow-consumer policy:

- ``"close"``: the connection is closed with :data:`SLOW_CONSUMER` (4008; the close frame
  goes after what is already buffered). A client that resumes (``since=``) loses nothing.
- ``"skip"``: the messages are dropped for that connection; the next message it gets is
  preceded by a gap marker (``gap_marker(count)``, by default ``{"gap": count}``).
- ``"later"``: the messages wait in a per-connection backlog, written as the socket drains;
  a backlog above ``max_backlog`` bytes closes the connection as ``"close"`` does.
- a callable ``policy(ws, delivered)``: the caller handles it (``delivered``: how many of the
  batch's leading messages were written); :mod:`turbows.pubsub` replays the rest from Redis.

Either way a connection's buffered bytes stay within its write limit plus one message (plus
``max_backlog`` with ``"later"``).
"""

from __future__ import annotations

import asyncio
import bisect
import logging
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Union

from .._enums import State
from ..codec import FrameWriter
from ..exceptions import InvalidStateError
from ._exceptions import WebSocketClosed
from ._protocol import Message, WebSocket

__all__ = ["Batch", "Fanout", "FanoutResult", "SLOW_CONSUMER", "broadcast", "fanout"]

logger = logging.getLogger("turbows")

#: The close code sent to a connection the ``"close"`` policy (or an overflowing ``"later"``
#: backlog) drops: it read too slowly to keep up. ``ReconnectingClient(resume=True)`` retries
#: after it and resumes where it stopped.
SLOW_CONSUMER = 4008

_OPEN = State.OPEN
_POLICIES = ("close", "skip", "later")

Outgoing = Union[Message, bytearray, memoryview]


def _default_gap(count: int) -> Message:
    return '{"gap":%d}' % count


def _push(ws: WebSocket) -> None:
    """Write what ``ws``'s connection was given; above the write buffer's high-water mark,
    stop reading from that peer until it drains (the flow-control rule of ``send_nowait``)."""
    ws._push()
    if ws._write_paused:
        ws._pause_for_writes()


class Batch:
    """Messages framed once, to be written to many connections.

    Args:
        messages: ``str`` (text) or bytes-like (binary) messages, in order.
        text: ``True`` sends every message as text (UTF-8 bytes as they are, validated),
            ``False`` every one as binary; None decides by type.

    Attributes:
        frames: the frames of every message, concatenated.
        count: how many messages.

    Raises:
        TypeError: a message is neither ``str`` nor bytes-like.
        ValueError: ``text=True`` and a message is bytes that are not valid UTF-8.
    """

    __slots__ = ("frames", "count", "_starts")

    def __init__(self, messages: Iterable[Outgoing], text: Optional[bool] = None) -> None:
        writer = FrameWriter(mask=False)
        starts = writer.messages(messages, text)  # one codec call frames them all
        self.frames: bytes = writer.take()
        self.count = len(starts)
        self._starts = starts

    def cut(self, room: int, start: int = 0) -> int:
        """Where to stop writing the messages from ``start`` on when ``room`` bytes are left
        under a limit: after every message that starts below it (the last one may cross
        it). Returns a message count: the index of the first message not to write."""
        if start >= self.count:
            return self.count
        begin = self._starts[start]
        if room >= len(self.frames) - begin:
            return self.count
        if room <= 0:
            return start
        return bisect.bisect_left(self._starts, begin + room)

    def head(self, count: int) -> bytes:
        """The frames of the first ``count`` messages."""
        return self.part(0, count)

    def part(self, start: int, stop: int) -> bytes:
        """The frames of the messages from ``start`` to ``stop`` (excluded)."""
        starts = self._starts
        end = len(self.frames) if stop >= self.count else starts[stop]
        if start <= 0:
            return self.frames if end == len(self.frames) else self.frames[:end]
        return self.frames[starts[start] : end] if start < self.count else b""

    def tail(self, count: int) -> bytes:
        """The frames of the messages after the first ``count``."""
        if count <= 0:
            return self.frames
        return self.frames[self._starts[count] :] if count < self.count else b""


class FanoutResult:
    """What a :meth:`Fanout.send` did.

    Attributes:
        delivered: connections that got every message (written or buffered).
        missed: connections that got none because they are not OPEN (or are sending a
            fragmented message of their own).
        slow: connections the slow-consumer policy acted on (closed, skipped from, or with a
            backlog).
    """

    __slots__ = ("delivered", "missed", "slow")

    def __init__(self) -> None:
        self.delivered = 0
        self.missed: List[WebSocket] = []
        self.slow: List[WebSocket] = []


class _Lag:
    """A connection's pending state under the ``"skip"`` and ``"later"`` policies."""

    __slots__ = ("skipped", "backlog", "size", "task")

    def __init__(self) -> None:
        self.skipped = 0
        self.backlog: List[bytes] = []
        self.size = 0
        self.task: Optional[asyncio.Task[None]] = None


class Fanout:
    """Batched fan-out with a slow-consumer policy; keeps the per-connection state that the
    ``"skip"`` and ``"later"`` policies need between batches.

    ::

        fan = Fanout(policy="skip")
        fan.send(server.connections, ["tick 1", "tick 2", "tick 3"])

    Args:
        policy: ``"close"``, ``"skip"``, ``"later"``, or a callable ``policy(ws, delivered)``
            (see the module's docstring).
        close_code, close_reason: how the ``"close"`` policy closes a connection.
        gap_marker: ``fn(count) -> message`` sent before the next delivery to a connection
            that missed ``count`` messages under ``"skip"``.
        max_backlog: bytes a connection may have waiting under ``"later"``; default: its
            write limit.
    """

    def __init__(
        self,
        policy: Union[str, Callable[[WebSocket, int], object]] = "close",
        *,
        close_code: int = SLOW_CONSUMER,
        close_reason: str = "slow consumer",
        gap_marker: Callable[[int], Message] = _default_gap,
        max_backlog: Optional[int] = None,
    ) -> None:
        if not callable(policy) and policy not in _POLICIES:
            raise ValueError(f"policy must be one of {', '.join(_POLICIES)}, not {policy!r}")
        if not (3000 <= close_code <= 4999 or close_code in (1000, 1001, 1008, 1011, 1013)):
            raise ValueError(f"close code {close_code} cannot be sent by an application")
        self.policy = policy
        self.close_code = close_code
        self.close_reason = close_reason
        self.gap_marker = gap_marker
        self.max_backlog = max_backlog
        self._lags: Dict[WebSocket, _Lag] = {}

    def send(
        self, connections: Iterable[WebSocket], messages: Union[Batch, Sequence[Outgoing]]
    ) -> FanoutResult:
        """Write ``messages`` to every connection: one write per connection.

        Args:
            connections: the connections (read once, before anything is sent).
            messages: a :class:`Batch`, or the messages to frame into one.

        Returns:
            A :class:`FanoutResult`.

        Raises:
            TypeError: a message is neither ``str`` nor bytes-like (nothing was sent).
        """
        batch = messages if isinstance(messages, Batch) else Batch(messages)
        result = FanoutResult()
        if batch.count == 0:
            return result
        lags = self._lags
        whole = batch.frames
        for ws in list(connections):
            transport = ws._transport
            if ws._closed is not None or transport is None or ws._conn.state is not _OPEN:
                result.missed.append(ws)
                lags.pop(ws, None)
                continue
            if lags and ws in lags:
                self._send_lagging(ws, batch, result)
                continue
            room = ws._options.write_high - transport.get_write_buffer_size()
            if room >= len(whole):
                try:
                    ws._conn.send_frames(whole)
                except InvalidStateError:
                    result.missed.append(ws)
                    continue
                _push(ws)
                result.delivered += 1
                continue
            self._send_part(ws, batch, batch.cut(room), result)
        return result

    # -- slow connections --------------------------------------------------------------------

    def _send_part(self, ws: WebSocket, batch: Batch, fit: int, result: FanoutResult) -> None:
        """Write the first ``fit`` messages, then as many more as the room the socket made
        by taking them allows; the policy decides about the others.

        A write goes to the socket at once, so a connection that reads keeps its buffer near
        empty and takes a batch bigger than its write limit whole; one that does not gets
        its limit's worth (plus the message crossing it) and no more."""
        done = 0
        while fit > done:
            if not self._write(ws, batch.part(done, fit)):
                if not done:
                    result.missed.append(ws)
                    return
                break
            done = fit
            transport = ws._transport
            if done == batch.count or transport is None:
                break
            fit = batch.cut(ws._options.write_high - transport.get_write_buffer_size(), done)
        fit = done
        if fit == batch.count:
            result.delivered += 1
            return
        result.slow.append(ws)
        policy = self.policy
        if callable(policy):
            policy(ws, fit)
        elif policy == "close":
            self._close(ws)
        elif policy == "skip":
            lag = self._lags.setdefault(ws, _Lag())
            lag.skipped += batch.count - fit
        else:
            self._queue(ws, batch.tail(fit))

    def _send_lagging(self, ws: WebSocket, batch: Batch, result: FanoutResult) -> None:
        lag = self._lags[ws]
        if self.policy == "later":
            result.slow.append(ws)
            self._queue(ws, batch.frames)
            return
        # "skip": room again? Then the gap marker first, then what fits.
        room = ws._options.write_high - ws._transport.get_write_buffer_size()
        if room <= 0:
            lag.skipped += batch.count
            result.slow.append(ws)
            return
        del self._lags[ws]
        try:
            ws._conn.send_text(self.gap_marker(lag.skipped))
        except InvalidStateError:
            result.missed.append(ws)
            return
        self._send_part(ws, batch, batch.cut(room), result)

    def _write(self, ws: WebSocket, frames: bytes) -> bool:
        try:
            ws._conn.send_frames(frames)
        except InvalidStateError:
            return False
        _push(ws)
        return True

    def _close(self, ws: WebSocket) -> None:
        self._lags.pop(ws, None)
        conn = ws._conn
        if conn.state is not _OPEN:
            return
        logger.info("closing slow consumer %s with %d", ws.remote_address, self.close_code)
        try:
            conn.close(self.close_code, self.close_reason, ws._time())
        except InvalidStateError:  # sending a fragmented message of its own
            ws.abort()
            return
        ws._after()

    def _queue(self, ws: WebSocket, frames: bytes) -> None:
        lag = self._lags.get(ws)
        if lag is None:
            lag = self._lags[ws] = _Lag()
        limit = self.max_backlog
        if limit is None:
            limit = ws._options.write_high
        if lag.size + len(frames) > limit:
            logger.info("backlog of %s over %d bytes", ws.remote_address, limit)
            self._close(ws)
            return
        lag.backlog.append(frames)
        lag.size += len(frames)
        if lag.task is None:
            lag.task = ws._loop.create_task(self._feed_later(ws, lag))

    async def _feed_later(self, ws: WebSocket, lag: _Lag) -> None:
        """Write a connection's backlog as its socket drains (the ``"later"`` policy)."""
        try:
            while lag.backlog:
                try:
                    await ws._drain()
                except WebSocketClosed:
                    break
                if self._lags.get(ws) is not lag or ws._conn.state is not _OPEN:
                    break
                frames = b"".join(lag.backlog)
                lag.backlog.clear()
                lag.size = 0
                room = ws._options.write_high - ws._transport.get_write_buffer_size()
                part = frames if room >= len(frames) else frames[: max(room, 0)]
                # Cut anywhere is fine here: the rest follows on the same stream, in order.
                if part and not self._write(ws, part):
                    break
                if len(part) < len(frames):
                    lag.backlog.append(frames[len(part) :])
                    lag.size = len(frames) - len(part)
                    if not ws._write_paused:
                        await asyncio.sleep(0)
        finally:
            lag.task = None
            if self._lags.get(ws) is lag and not lag.backlog:
                del self._lags[ws]
            elif ws._conn.state is not _OPEN:
                self._lags.pop(ws, None)

    def pending(self, ws: WebSocket) -> int:
        """Bytes waiting for ``ws`` in its backlog (``"later"``), else 0."""
        lag = self._lags.get(ws)
        return 0 if lag is None else lag.size

    def skipped(self, ws: WebSocket) -> int:
        """Messages ``ws`` missed since its last delivery (``"skip"``), else 0."""
        lag = self._lags.get(ws)
        return 0 if lag is None else lag.skipped


def fanout(
    connections: Iterable[WebSocket],
    messages: Union[Batch, Sequence[Outgoing]],
    *,
    policy: str = "close",
    close_code: int = SLOW_CONSUMER,
) -> FanoutResult:
    """Send ``messages`` to every connection, one write per connection, framed once.

    A stateless shortcut for ``Fanout(policy).send(...)`` with ``"close"`` (or ``"skip"``
    without a gap marker: keep a :class:`Fanout` to get gap markers and ``"later"``).

    Args:
        connections: the connections (read once).
        messages: the messages (``str``: text, bytes-like: binary), or a :class:`Batch`.
        policy: ``"close"`` or ``"skip"``.
        close_code: the code ``"close"`` sends.

    Returns:
        A :class:`FanoutResult`.
    """
    if policy not in ("close", "skip"):
        raise ValueError('fanout() takes policy "close" or "skip"; use a Fanout for "later"')
    if close_code == SLOW_CONSUMER:
        return _STATELESS[policy].send(connections, messages)
    return Fanout(policy, close_code=close_code).send(connections, messages)


class _StatelessSkip(Fanout):
    """``"skip"`` without memory: no gap marker (nothing is remembered between calls)."""

    def _send_part(self, ws: WebSocket, batch: Batch, fit: int, result: FanoutResult) -> None:
        super()._send_part(ws, batch, fit, result)
        self._lags.pop(ws, None)


_STATELESS: Dict[str, Fanout] = {"close": Fanout("close"), "skip": _StatelessSkip("skip")}


def broadcast(
    connections: Iterable[WebSocket],
    message: Outgoing,
    *,
    skip_slow: bool = False,
    text: Optional[bool] = None,
) -> List[WebSocket]:
    """Send one message to many connections at once, without waiting for any of them.

    The message is framed once (:class:`Batch`) and each OPEN connection gets those frames in
    one write, as :func:`fanout` does; ``str`` goes as text, bytes-like as binary. Nothing
    waits: what a socket does not take waits in that connection's write buffer, so a slow
    reader's buffer grows with what the others send, unless ``skip_slow``; and, as with
    ``send_nowait``, a connection whose buffer this takes above its high-water mark stops
    being read until it drains (a peer whose own messages are relayed to everyone cannot
    grow the server past its write limit by sending and never reading). To send several
    messages, one :func:`fanout` call writes them all at once (one system call per connection
    instead of one per message), within each connection's write limit.

    Args:
        connections: the connections, in any iterable (a server's ``connections`` set, a
            room's members, ...); it is read once, before anything is sent.
        message: the message.
        skip_slow: skip the connections whose write buffer is above its high-water mark
            (:attr:`WebSocket.writing_paused`) instead of adding to it.
        text: as for :meth:`WebSocket.send`: ``True`` sends UTF-8 bytes (``orjson.dumps``
            output) as a text message without decoding them, ``False`` a ``str`` as binary.

    Returns:
        The connections that did not get the message: not OPEN (still opening, closing or
        closed), in the middle of sending a fragmented message of their own, or skipped as
        slow.

    Raises:
        TypeError: the message is neither ``str`` nor bytes-like (nothing was sent).
        ValueError: ``text=True`` and the bytes are not valid UTF-8 (nothing was sent).
    """
    frames = Batch((message,), text).frames
    missed: List[WebSocket] = []
    for ws in list(connections):
        if (
            ws._closed is not None
            or ws._transport is None
            or ws._conn.state is not _OPEN
            or (skip_slow and ws._write_paused)
        ):
            missed.append(ws)
            continue
        try:
            ws._conn.send_frames(frames)
        except InvalidStateError:  # a fragmented message of its own is being sent
            missed.append(ws)
            continue
        _push(ws)
    return missed
