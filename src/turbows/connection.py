"""Sans-I/O WebSocket connections (RFC 6455): bytes and calls in, events and bytes out.

A connection never touches a socket, a clock or a thread. The I/O layer that drives it:

- feeds every chunk it reads to ``receive_data(data)``, and ``receive_data(b"")`` when the
  TCP connection ends for any reason (including when it closed the connection itself);
- writes out ``data_to_send()`` after every call, and closes the TCP connection once
  ``should_close_transport`` is True and that data is written (RFC 6455 7.1.1: the server
  closes first; the client closes only when the server does not). When a protocol error
  follows complete messages in one chunk, the messages come out of ``events()`` and the
  connection fails (close frame, ``should_close_transport``) at the next ``data_to_send()``:
  an I/O layer that handles the events before taking the data to send gets its answers to
  them out first (``failure_pending`` is True meanwhile);
- calls ``handle_timer(now)`` when ``next_deadline()`` is reached. A deadline of ``-inf`` means
  "call me now": the connection needs the current time to start a timer because it was told
  about a state change (the connection opening, a close starting) without ``now``.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any, Callable, Final, List, Optional, Sequence, Tuple, Union

from . import codec as _default_codec
from ._enums import MAX_CLOSE_REASON, Opcode, State
from ._http import (
    ExtensionOffer,
    Headers,
    HeadersLike,
    HTTPError,
    as_header_list,
    find_head_end,
    parse_extensions,
    parse_request_head,
    parse_response_head,
)
from .events import (
    LOCAL,
    PEER,
    Accepted,
    ConnectionClosed,
    PingAnswered,
    Rejected,
    Request,
)
from .exceptions import InvalidStateError, ProtocolError
from .extensions import NegotiationError
from .handshake import (
    InvalidHandshake,
    OriginPolicy,
    build_request,
    build_response,
    check_request,
    check_response,
    extension_offer,
    generate_key,
    parse_uri,
    rejection,
    wants_upgrade,
)

__all__ = ["ClientConnection", "Data", "InvalidStateError", "ServerConnection"]

Data = Union[str, bytes, bytearray, memoryview]

_CONNECTING: Final = State.CONNECTING
_OPEN: Final = State.OPEN
_CLOSING: Final = State.CLOSING
_CLOSED: Final = State.CLOSED

_OP_CONT: Final = int(Opcode.CONTINUATION)
_OP_TEXT: Final = int(Opcode.TEXT)
_OP_BINARY: Final = int(Opcode.BINARY)
_OP_CLOSE: Final = int(Opcode.CLOSE)
_OP_PING: Final = int(Opcode.PING)
_OP_PONG: Final = int(Opcode.PONG)

#: A deadline that needs the current time before it can start (see the module docstring).
_UNANCHORED: Final = float("-inf")
#: Unanswered pings remembered for matching; older ones are forgotten beyond this.
_MAX_PINGS: Final = 64
#: Pings of one chunk of data answered each with its own pong; beyond this the rest get one
#: pong, for the last of them (RFC 6455 5.5.3), so that a chunk full of tiny pings cannot
#: make the connection frame a pong per ping (a 256 KiB read holds 131072 of a server's
#: empty pings, whose masked pongs would take 768 KiB).
_PONGS_PER_CHUNK: Final = 32
#: ``_pong_hold`` while pongs are throttled and no pong is held (see throttle_pongs).
_NO_PONG: Final = False
#: Bytes a client may send after its request and before the server's answer. RFC 6455 4.1
#: says it MUST wait for the response; a little pipelining is tolerated, not a flood.
_MAX_EARLY_DATA: Final = 1 << 16
#: The methods of the plain HTTP requests a server takes when asked (``http_requests=True``).
_PLAIN_METHODS: Final = ("GET", "HEAD", "OPTIONS")
_PLAIN_ALLOW: Final = (("Allow", ", ".join(_PLAIN_METHODS)),)

DEFAULT_MAX_HEADER_SIZE: Final = 16384
DEFAULT_MAX_HEADERS: Final = 128


def _truncate_reason(reason: str) -> str:
    """Cut ``reason`` to 123 UTF-8 bytes without splitting a character (RFC 6455 5.5)."""
    raw = reason.encode("utf-8")
    if len(raw) <= MAX_CLOSE_REASON:
        return reason
    return raw[:MAX_CLOSE_REASON].decode("utf-8", "ignore")


def _start(now: Optional[float], delay: Optional[float]) -> Optional[float]:
    if delay is None:
        return None
    if now is None:
        return _UNANCHORED
    return now + delay


class _Connection:
    """What servers and clients share: the OPEN/CLOSING/CLOSED state machine."""

    __slots__ = (
        # hot path first
        "_fast",
        "send_text",
        "send_binary",
        "data_to_send",
        "_feed",
        "_parser",
        "_events",
        "_text",
        "_binary",
        "_take",
        "_out",
        # frames and state
        "_frame",
        "_codec",
        "_state",
        "_frag_op",
        "_inbuf",
        "_options",
        # timers
        "_ping_due",
        "_pong_due",
        "_close_due",
        "_pings",
        "_pong_hold",
        "_missed",
        "_seq",
        "latency",
        # closing
        "_close_sent",
        "_close_received",
        "_initiator",
        "should_close_transport",
        "_failure",
        "subprotocol",
        "extensions",
    )

    _is_server = False

    def __init__(
        self,
        *,
        max_message_size: Optional[int],
        fragments: bool,
        text_as_bytes: bool,
        ping_interval: Optional[float],
        ping_timeout: Optional[float],
        max_missed_pongs: int,
        close_timeout: Optional[float],
        max_header_size: int,
        max_headers: int,
        _codec: Optional[ModuleType],
    ) -> None:
        codec = _default_codec if _codec is None else _codec
        if ping_interval is not None and ping_interval <= 0:
            raise ValueError("ping_interval must be > 0 or None")
        if ping_timeout is not None and ping_timeout <= 0:
            raise ValueError("ping_timeout must be > 0 or None")
        if close_timeout is not None and close_timeout < 0:
            raise ValueError("close_timeout must be >= 0 or None")
        if max_missed_pongs < 1:
            raise ValueError("max_missed_pongs must be >= 1")
        if max_header_size < 64 or max_headers < 1:
            raise ValueError("max_header_size must be >= 64 and max_headers >= 1")
        self._codec = codec
        parser = codec.FrameParser(
            require_mask=self._is_server,
            max_message_size=max_message_size,
            fragments=fragments,
            text_as_bytes=text_as_bytes,
        )
        writer = codec.FrameWriter(mask=not self._is_server)
        self._parser = parser
        self._feed = parser.feed
        self._text = writer.text
        self._binary = writer.binary
        self._take = writer.take
        self._frame = writer.frame
        # Options only the slow paths read share one tuple: fewer slots, a smaller object.
        self._options: Tuple[Any, ...] = (
            ping_interval,
            ping_timeout,
            max_missed_pongs,
            close_timeout,
            max_header_size,
            max_headers,
            max_message_size,
            fragments,
            text_as_bytes,
        )
        self._events: List[Any] = []
        self._out = b""
        self.data_to_send = self._take
        self._fast = False
        self._allow_sending(False)
        self._state = _CONNECTING
        self._frag_op = 0
        self._inbuf: Optional[bytearray] = bytearray()
        self._ping_due: Optional[float] = None
        self._pong_due: Optional[float] = None
        self._close_due: Optional[float] = None
        self._pings: List[Tuple[bytes, Optional[float], bool]] = []
        # None: pings are answered at once; else throttle_pongs is on, and this is the
        # payload of the one pong held back (bytes) or _NO_PONG.
        self._pong_hold: Union[bool, bytes, None] = None
        self._missed = 0
        self._seq = 0
        self.latency: Optional[float] = None
        self._close_sent: Optional[Tuple[int, str]] = None
        self._close_received: Any = None
        self._initiator: Optional[str] = None
        self.should_close_transport = False
        # A protocol error found after messages, not acted on yet: (error, time). See
        # _protocol_error.
        self._failure: Optional[Tuple[ProtocolError, Optional[float]]] = None
        self.subprotocol: Optional[str] = None
        self.extensions: Tuple[ExtensionOffer, ...] = ()

    # ----------------------------------------------------------------------------------------
    # The three calls of the sans-I/O contract.

    @property
    def state(self) -> State:
        """The connection's :class:`turbows.State`."""
        return self._state

    def receive_data(
        self, data: Union[bytes, bytearray, memoryview], now: Optional[float] = None
    ) -> None:
        """Feed bytes received from the peer; ``b""`` means the TCP connection ended.

        Args:
            data: the next chunk, any size, split anywhere.
            now: the current time, if the caller has it at hand: it times the round trip of
                pings and starts the close timeout when the peer starts the close.

        Never raises for what the peer sends: protocol errors close the connection with the
        right close code (1002, 1007, 1009) and show in ``events()``.
        """
        if self._fast and data:
            try:
                items = self._feed(data)
            except ProtocolError as exc:
                self._protocol_error(exc, now)
                return
            if self._parser.controls:
                self._handle_items(items, now)
            elif self._events:
                self._events += items
            else:
                # feed() returns a new list each call: keep it rather than copy it.
                self._events = items
            return
        self._receive_slow(data, now)

    def receive_events(
        self, data: Union[bytes, bytearray, memoryview], now: Optional[float] = None
    ) -> List[Any]:
        """``receive_data(data, now)`` then ``events()``, in one call (for I/O layers that
        take the events after every read: it saves a call per read on the hot path)."""
        # turbows.asyncio._fastio (SocketTransport._deliver) repeats this fast path in C:
        # keep the two in step.
        if self._fast and data and not self._events:
            try:
                items = self._feed(data)
            except ProtocolError as exc:
                self._protocol_error(exc, now)
                return self.events()
            if self._parser.controls:
                self._handle_items(items, now)
                return self.events()
            return items  # type: ignore[no-any-return]
        self.receive_data(data, now)
        return self.events()

    def events(self) -> List[Any]:
        """Return the events produced since the last call, in order, and forget them."""
        events = self._events
        self._events = []
        return events

    # data_to_send() returns the bytes to write to the peer since the last call, and forgets
    # them. It is an instance attribute, not a method: the frame writer's own take() (one C
    # call per write) while only frames wait; _send_head switches it while an HTTP head
    # (the handshake request or response) waits in front of them.
    data_to_send: Callable[[], bytes]

    def _data_to_send_head(self) -> bytes:
        self.data_to_send = self._take
        return self._take_all()

    def _take_all(self) -> bytes:
        """The queued HTTP head, if any, and frames, leaving ``data_to_send`` as it is (the
        asyncio layer takes its output so while a failure is pending)."""
        out = self._out
        self._out = b""
        return out + self._take()  # type: ignore[no-any-return]

    def _send_head(self, head: bytes) -> None:
        """Queue an HTTP head (handshake) to go out before any frame."""
        self._out += head
        self.data_to_send = self._data_to_send_head

    # ----------------------------------------------------------------------------------------
    # Sending.

    # send_text(data) and send_binary(data) are instance attributes, not methods: while the
    # connection may send they are the frame writer's own methods (one C call per message);
    # otherwise they refuse. _allow_sending switches them with the state.
    send_text: Callable[[Union[str, bytes]], None]
    send_binary: Callable[[Union[bytes, bytearray, memoryview]], None]

    def _allow_sending(self, allowed: bool) -> None:
        if allowed:
            self.send_text = self._text
            self.send_binary = self._binary
        else:
            self.send_text = self._refuse_text
            self.send_binary = self._refuse_binary

    def _refuse_text(self, data: Union[str, bytes]) -> None:
        self._refuse("send_text")

    def _refuse_binary(self, data: Union[bytes, bytearray, memoryview]) -> None:
        self._refuse("send_binary")

    def send_frames(self, frames: bytes) -> None:
        """Send whole messages framed beforehand, for many connections at once.

        ``frames`` holds complete, unfragmented data frames built by an unmasked
        :class:`turbows.FrameWriter` (frames built once, written to many connections: see
        :func:`turbows.asyncio.fanout`); they go out after everything sent before, as they
        are. Messages sent this way are not compressed, which RFC 7692 allows on a
        connection that negotiated permessage-deflate (RSV1 clear: the peer's decompressor
        is not involved, and context takeover is unaffected).

        Raises:
            InvalidStateError: the connection is not OPEN, or a fragmented message is being
                sent (as for ``send_text``).
            ValueError: on the client side, where every frame must be masked with its own key
                (RFC 6455 5.3), so frames cannot be shared.
        """
        if self._state is not _OPEN or self._frag_op:
            self._refuse("send_frames")
        if not self._is_server:
            raise ValueError("a client masks each frame with its own key: frames cannot be shared")
        queued = self._take()
        if self._out or queued:
            self._out = self._out + queued + frames
        else:
            self._out = frames
        # _out is sent ahead of the writer's buffer (as an HTTP head is): keep the order.
        self.data_to_send = self._data_to_send_head

    def send_fragment(self, data: Data, final: bool = False) -> None:
        """Send one fragment of a message streamed in pieces (RFC 6455 5.4).

        The first fragment decides the message type: ``str`` for text, bytes-like for binary;
        the following fragments must be of the same kind. ``final=True`` ends the message.
        Control frames (``ping``, ``pong``, ``close``) may be sent between fragments; whole
        messages (``send_text``, ``send_binary``) may not.

        Raises:
            InvalidStateError: the connection is not OPEN.
            TypeError: a fragment's kind differs from the message's.
        """
        if self._state is not _OPEN:
            self._refuse("send_fragment")
        kind = _OP_TEXT if isinstance(data, str) else _OP_BINARY
        current = self._frag_op
        if current and kind != current:
            expected = "str" if current == _OP_TEXT else "bytes"
            raise TypeError(
                f"the message being sent is {'text' if current == _OP_TEXT else 'binary'}: "
                f"its next fragment must be {expected}, not {type(data).__name__}"
            )
        self._frame(_OP_CONT if current else kind, data, final)
        if final:
            self._frag_op = 0
            self._allow_sending(True)
        else:
            self._frag_op = kind
            self._allow_sending(False)

    def ping(
        self, payload: Union[bytes, bytearray, memoryview] = b"", now: Optional[float] = None
    ) -> None:
        """Send a ping (RFC 6455 5.5.2).

        When a pong with the same payload comes back, a :class:`turbows.events.PingAnswered`
        event follows its :class:`Pong` event (with the round-trip time when ``now`` was given
        here and to ``receive_data``). A pong also answers every earlier unanswered ping.

        Raises:
            InvalidStateError: the connection is not OPEN.
            ValueError: the payload is longer than 125 bytes.
        """
        if self._state is not _OPEN:
            self._refuse("ping")
        payload = bytes(payload)
        self._frame(_OP_PING, payload)
        self._remember_ping(payload, now, True)

    def pong(self, payload: Union[bytes, bytearray, memoryview] = b"") -> None:
        """Send an unsolicited pong, a one-way heartbeat (RFC 6455 5.5.3).

        Pings are answered by themselves; this is only for sending a pong of one's own.

        Raises:
            InvalidStateError: the connection is not OPEN.
            ValueError: the payload is longer than 125 bytes.
        """
        if self._state is not _OPEN:
            self._refuse("pong")
        self._frame(_OP_PONG, payload)

    def throttle_pongs(self, throttled: bool) -> None:
        """Hold back the answers to pings while the peer does not take what is sent.

        The I/O layer turns this on when its write buffer goes above its high-water mark and
        off when the buffer has drained. While on, pings are still received (``Ping`` events)
        but at most one pong waits, the most recent ping's (RFC 6455 5.5.3 allows answering
        only that one), instead of a pong per ping: a peer that sends pings and never reads
        cannot make the connection buffer without limit. Turning it off frames that pong, if
        any, for the next ``data_to_send()`` (unless the closing handshake has started).

        Args:
            throttled: True to hold pongs back, False to answer pings at once again.
        """
        if throttled:
            if self._pong_hold is None:
                self._pong_hold = _NO_PONG
            return
        held = self._pong_hold
        self._pong_hold = None
        if type(held) is bytes and self._state is _OPEN:
            self._frame(_OP_PONG, held)

    def close(
        self, code: Optional[int] = 1000, reason: str = "", now: Optional[float] = None
    ) -> None:
        """Start the closing handshake (RFC 6455 7.1.2).

        Args:
            code: the close code; None sends a close frame without one (the peer sees 1005).
                1005, 1006, 1015 and other reserved codes are refused.
            reason: at most 123 bytes once encoded as UTF-8.
            now: the current time, to start the close timeout (else it starts at the next
                ``handle_timer``).

        Raises:
            InvalidStateError: the connection is not OPEN (the server answers a handshake
                with ``reject``, and a close already started cannot start again).
            ValueError: the code may not be sent, or the reason is too long.
        """
        if self._failure is not None:
            # The peer's protocol error wins: its close code is sent instead.
            self._fail_pending()
            return
        if self._state is not _OPEN:
            self._refuse("close")
        payload = self._codec.encode_close(code, reason)
        self._frame(_OP_CLOSE, payload)
        self._close_sent = (1005 if code is None else int(code), reason)
        self._initiator = LOCAL
        self._enter_closing(now)

    # ----------------------------------------------------------------------------------------
    # Timers.

    def next_deadline(self) -> Optional[float]:
        """When ``handle_timer`` must be called next, or None when no timer runs.

        ``-inf`` means at once: a timer waits for the current time to start.
        """
        best = self._close_due
        for due in (self._ping_due, self._pong_due):
            if due is not None and (best is None or due < best):
                best = due
        return best

    def handle_timer(self, now: float) -> None:
        """Act on every deadline reached at ``now``: send a heartbeat ping, count a missed
        pong (and abort after ``max_missed_pongs``), or abort a close that timed out."""
        if self._failure is not None:
            self._fail_pending()
        due = self._close_due
        if due is not None:
            if due == _UNANCHORED:
                # Only set while close_timeout is not None.
                self._close_due = now + (self._options[3] or 0.0)
            elif now >= due:
                self._close_timed_out()
                return
        if self._state is not _OPEN:
            return
        due = self._pong_due
        if due is not None and now >= due:
            self._pong_due = None
            self._missed += 1
            if self._missed >= self._options[2]:
                self._keepalive_failed()
                return
        due = self._ping_due
        if due is not None:
            # Only set while ping_interval is not None.
            interval = self._options[0] or 0.0
            if due == _UNANCHORED:
                self._ping_due = now + interval
            elif now >= due:
                self._seq = seq = (self._seq + 1) & 0xFFFFFFFF
                payload = seq.to_bytes(4, "big")
                self._frame(_OP_PING, payload)
                self._remember_ping(payload, now, False)
                timeout = self._options[1]
                if timeout is not None and self._pong_due is None:
                    self._pong_due = now + timeout
                self._ping_due = now + interval

    # ----------------------------------------------------------------------------------------
    # Internals.

    def _refuse(self, what: str) -> None:
        state = self._state
        if state is _OPEN and self._frag_op:
            raise InvalidStateError(
                f"cannot {what}() while a fragmented message is being sent:"
                " finish it with send_fragment(..., final=True) first"
            )
        hint = {
            _CONNECTING: "the opening handshake is not complete",
            _CLOSING: "the closing handshake has started",
            _CLOSED: "the connection is closed",
        }.get(state, "")
        raise InvalidStateError(f"cannot {what}() in state {state.name}: {hint}")

    def _use_extensions(self, sessions: List[Any]) -> None:
        """Run the negotiated extensions' sessions (before any frame is parsed or sent)."""
        if not sessions:
            return
        # One extension owning RSV1 (permessage-deflate) is all that is implemented; the
        # negotiation never accepts two that claim the same bits.
        (session,) = sessions
        options = self._options
        parser = self._codec.FrameParser(
            require_mask=self._is_server,
            max_message_size=options[6],
            fragments=options[7],
            text_as_bytes=options[8],
            inflater=session.inflater,
        )
        self._parser = parser
        self._feed = parser.feed
        encode = session.encode
        frame = self._frame

        # Whole messages go through the compressor; fragments and control frames do not
        # (RFC 7692 lets a message go uncompressed, and control frames never are).
        def text(data: Union[str, bytes]) -> None:
            payload, rsv = encode(data.encode("utf-8") if isinstance(data, str) else data)
            frame(_OP_TEXT, payload, True, rsv)

        def binary(data: Union[bytes, bytearray, memoryview]) -> None:
            payload, rsv = encode(bytes(data))
            frame(_OP_BINARY, payload, True, rsv)

        self._text = text
        self._binary = binary

    def _remember_ping(self, payload: bytes, now: Optional[float], user: bool) -> None:
        pings = self._pings
        pings.append((payload, now, user))
        if len(pings) > _MAX_PINGS:
            del pings[0]

    def _opened(self, now: Optional[float]) -> None:
        self._state = _OPEN
        self._fast = True
        self._allow_sending(True)
        interval = self._options[0]
        self._ping_due = _start(now, interval)

    def _receive_slow(self, data: Any, now: Optional[float]) -> None:
        if not data and self._failure is not None:
            self._fail_pending()  # the peer closed TCP: the failure's close frame first
        state = self._state
        if state is _CLOSED:
            return
        if not data:
            self._eof()
        elif state is _CONNECTING:
            self._receive_handshake(data, now)
        # else OPEN/CLOSING after a close frame or a protocol error: nothing more is read.

    def _receive_handshake(self, data: Any, now: Optional[float]) -> None:
        raise NotImplementedError

    def _handle_items(self, items: List[Any], now: Optional[float]) -> None:
        codec = self._codec
        ping_cls = codec.Ping
        pong_cls = codec.Pong
        close_cls = codec.CloseReceived
        append = self._events.append
        answered = 0
        late: Optional[bytes] = None  # the last ping past _PONGS_PER_CHUNK, not answered yet
        for item in items:
            kind = type(item)
            append(item)
            if kind is ping_cls:
                # RFC 6455 5.5.2: answer with a pong carrying the same payload. It goes to the
                # writer now, so it leaves before any data the application sends later.
                if self._close_received is not None:
                    continue
                if self._pong_hold is not None:
                    # Throttled: RFC 6455 5.5.3 allows answering only the most recent ping.
                    self._pong_hold = bytes(item.payload)
                elif answered < _PONGS_PER_CHUNK:
                    self._frame(_OP_PONG, item.payload)
                    answered += 1
                else:
                    late = item.payload
            elif kind is pong_cls:
                if self._pings:
                    self._match_pong(item.payload, now)
            elif kind is close_cls:
                if late is not None:
                    self._frame(_OP_PONG, late)  # before the close frame, not after it
                    late = None
                self._close_frame(item, now)
        if late is not None:
            self._frame(_OP_PONG, late)

    def _match_pong(self, payload: bytes, now: Optional[float]) -> None:
        pings = self._pings
        for index, (sent, _, _) in enumerate(pings):  # noqa: B007 (index read below)
            if sent == payload:
                break
        else:
            return  # an unsolicited pong (RFC 6455 5.5.3): nothing to match
        answered = pings[: index + 1]
        del pings[: index + 1]
        # The peer is alive: the heartbeat's count of missed pongs starts again.
        self._missed = 0
        self._pong_due = None
        append = self._events.append
        for sent, at, user in answered:
            rtt = None if now is None or at is None else now - at
            if user:
                append(PingAnswered(sent, rtt))
        at = answered[-1][1]
        if now is not None and at is not None:
            self.latency = now - at

    def _close_frame(self, item: Any, now: Optional[float]) -> None:
        self._close_received = item
        self._fast = False
        if self._close_sent is None:
            # RFC 6455 5.5.1: the peer started; echo its status code.
            code = int(item.code)
            payload = b"" if code == 1005 else self._codec.encode_close(code, "")
            self._frame(_OP_CLOSE, payload)
            self._close_sent = (code, "")
            self._initiator = PEER
            self._enter_closing(now)
        if self._is_server:
            # RFC 6455 7.1.1: the server closes the TCP connection first, at once.
            self._finish(int(item.code), item.reason, True)
        # The client waits for the server's TCP close, until the close timeout.

    def _enter_closing(self, now: Optional[float]) -> None:
        self._state = _CLOSING
        self._allow_sending(False)
        self._ping_due = None
        self._pong_due = None
        if self._close_due is None:
            self._close_due = _start(now, self._options[3])

    @property
    def failure_pending(self) -> bool:
        """A protocol error came after messages in the same data: they are delivered
        (``events()``) and the connection fails at the next ``data_to_send()``, so that what
        the application sends in answer to them goes out before the close frame."""
        return self._failure is not None

    def _protocol_error(self, exc: ProtocolError, now: Optional[float]) -> None:
        self._fast = False
        if exc.items:
            # Messages completed before the violation are delivered first, and the connection
            # fails only when the I/O layer next takes the data to send: answers to them (the
            # echo the Autobahn suite's strict verdict expects) go out before the close frame.
            self._handle_items(exc.items, now)
            if self._state is _OPEN and self._close_sent is None:
                self._failure = (exc, now)
                self.data_to_send = self._data_to_send_failing
                return
        self._fail(exc, now)

    def _data_to_send_failing(self) -> bytes:
        self._fail_pending()
        return self.data_to_send()

    def _fail_pending(self) -> None:
        """Act on the protocol error _protocol_error left pending, if any."""
        failure = self._failure
        if failure is not None:
            self._failure = None
            self.data_to_send = self._data_to_send_head if self._out else self._take
            self._fail(*failure)

    def _fail(self, exc: ProtocolError, now: Optional[float]) -> None:
        if self._close_sent is None:
            # RFC 6455 7.1.7: fail the connection, sending a close frame with the code first.
            reason = _truncate_reason(exc.reason)
            self._frame(_OP_CLOSE, self._codec.encode_close(exc.code, reason))
            self._close_sent = (exc.code, reason)
            self._initiator = LOCAL
        self._enter_closing(now)
        # Nothing more can be read, so there is no close frame to wait for: close TCP now.
        self.should_close_transport = True

    def _eof(self) -> None:
        state = self._state
        if state is _CONNECTING:
            self._eof_in_handshake()
        elif self._close_sent is not None and self._close_received is not None:
            received = self._close_received
            self._finish(int(received.code), received.reason, True)
        else:
            # RFC 6455 7.1.5: no close frame received, the close code is 1006.
            self._finish(1006, "connection lost", False, self._initiator or PEER)

    def _eof_in_handshake(self) -> None:
        self._finish(1006, "connection closed during the opening handshake", False, PEER)

    def _close_timed_out(self) -> None:
        received = self._close_received
        if received is not None and self._close_sent is not None:
            # The handshake is complete; only the server's TCP close never came.
            self._finish(int(received.code), received.reason, True)
        else:
            self._finish(1006, "close timeout", False)

    def _keepalive_failed(self) -> None:
        # The peer does not answer: send a 1011 close for form's sake, and do not wait for it.
        self._frame(_OP_CLOSE, self._codec.encode_close(1011, "keepalive ping timeout"))
        self._close_sent = (1011, "keepalive ping timeout")
        self._finish(1006, "keepalive ping timeout", False, LOCAL)

    def _finish(self, code: int, reason: str, clean: bool, initiator: Optional[str] = None) -> None:
        self._state = _CLOSED
        self._fast = False
        self._allow_sending(False)
        self._frag_op = 0
        self._ping_due = self._pong_due = self._close_due = None
        self._inbuf = None
        self.should_close_transport = True
        sent = self._close_sent
        self._events.append(
            ConnectionClosed(
                code,
                reason,
                clean,
                initiator or self._initiator or LOCAL,
                None if sent is None else sent[0],
                "" if sent is None else sent[1],
            )
        )


class ServerConnection(_Connection):
    """The server side of one WebSocket connection.

    The first event is a :class:`turbows.events.Request`; answer it with :meth:`accept` or
    :meth:`reject`. Requests that cannot be accepted are answered by the connection itself:
    400 (malformed), 405 (not GET), 426 with ``Upgrade: websocket`` and a readable body (a
    plain GET: a browser visiting the URL), 426 with ``Sec-WebSocket-Version: 13`` (another
    protocol version), 403 (origin not allowed), 431 (head too large or too many headers), 505 (not
    HTTP/1.1, or a handshake over HTTP/1.0 with ``http_requests``); the application then sees
    only the :class:`ConnectionClosed` event.

    Args:
        max_message_size: the largest message accepted, in bytes (None: no limit); a larger
            one closes the connection with 1009.
        subprotocols: the subprotocols this server speaks, in its order of preference;
            ``accept()`` picks the first one the client offers.
        extensions: the extensions this server runs, such as :class:`turbows.PerMessageDeflate`,
            in its order of preference; ``accept()`` answers the client's offers with them
            (RFC 7692 for permessage-deflate) and runs what was agreed.
        origins: None to allow any origin; an allow-list of ``Origin`` values (include None to
            allow requests without one); or a callable ``origin -> bool``. Refused: 403.
        fragments: deliver data frames as they arrive (``final`` marks the last one of a
            message) instead of whole messages; text stays validated across fragments.
        text_as_bytes: deliver text as validated UTF-8 ``bytes`` rather than ``str``.
        ping_interval: seconds (or whatever unit ``now`` is in) between heartbeat pings; None
            disables the heartbeat.
        ping_timeout: how long a heartbeat ping may wait for its pong; None for forever.
        max_missed_pongs: the connection aborts when this many heartbeat pongs in a row
            are late.
        close_timeout: how long the closing handshake may take before the connection aborts;
            None for forever.
        max_header_size: the largest request head, in bytes.
        max_headers: the largest number of header fields.
        http_requests: also hand plain HTTP requests to the application as a
            :class:`Request` whose ``upgrade`` is False, to be answered with ``reject`` (a
            health check's 200, a redirect, a page), rather than answering them itself (426,
            405 or 505). Plain means a ``GET`` without ``Upgrade: websocket``, or any ``HEAD``
            or ``OPTIONS`` (only a GET can open a WebSocket; ``OPTIONS *`` too), over
            HTTP/1.1 or HTTP/1.0, as load balancers' health checks often send (HAProxy:
            ``OPTIONS / HTTP/1.0``). The
            answer still says HTTP/1.1 and closes the connection. Other methods get 405 with
            ``Allow: GET, HEAD, OPTIONS``; a WebSocket handshake over HTTP/1.0 still gets 505.

    Sending whole messages:
        ``send_text(data)`` sends a text message in one frame; ``data`` is ``str``, or
        ``bytes`` already encoded as UTF-8 (from a JSON encoder, say), sent without being
        validated. ``send_binary(data)`` sends any bytes-like object as a binary message.
        Both raise :class:`InvalidStateError` when the connection is not OPEN or while a
        fragmented message is being sent (see ``send_fragment``). They are attributes that
        the connection switches with its state, so that a send costs one call into the codec.

    Attributes:
        state: CONNECTING, OPEN, CLOSING or CLOSED (:class:`turbows.State`).
        should_close_transport: True once the I/O layer must close the TCP connection after
            writing out ``data_to_send()`` (RFC 6455 7.1.1 and 7.1.7).
        failure_pending: a protocol error came after the messages ``events()`` returned;
            the connection fails at the next ``data_to_send()``, ``close()``,
            ``handle_timer()`` or end of the TCP connection (see the module's docstring).
        subprotocol: the subprotocol in use, or None.
        extensions: the extensions in use, as ``(name, params)`` pairs from the response.
        latency: the round-trip time of the last answered ping (heartbeat or ``ping()``), or
            None.
    """

    __slots__ = (
        "_request",
        "_accept",
        "_origins",
        "_subprotocols",
        "_extension_factories",
        "_http_requests",
    )

    _is_server = True

    def __init__(
        self,
        *,
        max_message_size: Optional[int] = 1 << 20,
        subprotocols: Sequence[str] = (),
        extensions: Sequence[Any] = (),
        origins: OriginPolicy = None,
        fragments: bool = False,
        text_as_bytes: bool = False,
        ping_interval: Optional[float] = 20.0,
        ping_timeout: Optional[float] = 20.0,
        max_missed_pongs: int = 1,
        close_timeout: Optional[float] = 10.0,
        max_header_size: int = DEFAULT_MAX_HEADER_SIZE,
        max_headers: int = DEFAULT_MAX_HEADERS,
        http_requests: bool = False,
        _codec: Optional[ModuleType] = None,
    ) -> None:
        super().__init__(
            max_message_size=max_message_size,
            fragments=fragments,
            text_as_bytes=text_as_bytes,
            ping_interval=ping_interval,
            ping_timeout=ping_timeout,
            max_missed_pongs=max_missed_pongs,
            close_timeout=close_timeout,
            max_header_size=max_header_size,
            max_headers=max_headers,
            _codec=_codec,
        )
        if isinstance(subprotocols, str):
            raise TypeError("subprotocols must be a sequence of strings, not a string")
        self._request: Optional[Request] = None
        self._accept = ""
        self._origins = origins
        self._subprotocols = tuple(subprotocols)
        # Kept for the extension interface (a later addition): nothing is negotiated yet.
        self._extension_factories = tuple(extensions)
        self._http_requests = bool(http_requests)

    def accept(
        self,
        subprotocol: Optional[str] = None,
        extra_headers: HeadersLike = (),
        now: Optional[float] = None,
    ) -> None:
        """Accept the request: send the 101 response and open the connection.

        Args:
            subprotocol: the subprotocol to select; one the client offered. None selects
                :attr:`Request.subprotocol` (the server's preferred one that the client
                offered, if any).
            extra_headers: more response headers (``Set-Cookie``, ...), a mapping or pairs.
            now: the current time, to start the heartbeat (else it starts at the next
                ``handle_timer``).

        Raises:
            InvalidStateError: no request is waiting for an answer, or it is a plain HTTP
                request (``Request.upgrade`` is False), which only ``reject`` answers.
            ValueError: the client did not offer ``subprotocol``, or a header is invalid.
        """
        request = self._request
        if request is None or self._state is not _CONNECTING:
            raise InvalidStateError(
                f"cannot accept() in state {self._state.name}: no request is waiting"
            )
        if not request.upgrade:
            raise InvalidStateError(
                "cannot accept() a plain HTTP request (no Upgrade: websocket): reject() it"
            )
        if subprotocol is None:
            subprotocol = request.subprotocol
        elif subprotocol not in request.subprotocols:
            raise ValueError(f"the client did not offer subprotocol {subprotocol!r}")
        headers = [
            ("Upgrade", "websocket"),
            ("Connection", "Upgrade"),
            ("Sec-WebSocket-Accept", self._accept),
        ]
        if subprotocol is not None:
            headers.append(("Sec-WebSocket-Protocol", subprotocol))
        answers, sessions = self._negotiate(request)
        if answers:
            headers.append(("Sec-WebSocket-Extensions", ", ".join(answers)))
        headers.extend(as_header_list(extra_headers))
        self._send_head(build_response(101, headers))
        self._request = None
        self.subprotocol = subprotocol
        self.extensions = tuple(parse_extensions(answers))
        self._use_extensions(sessions)
        self._opened(now)
        early = self._inbuf
        self._inbuf = None
        if early:
            self.receive_data(bytes(early), now)

    def _negotiate(self, request: Request) -> Tuple[List[str], List[Any]]:
        """Answer the client's extension offers with the configured extensions, in order."""
        answers: List[str] = []
        sessions: List[Any] = []
        used_rsv = 0
        for factory in self._extension_factories:
            offers = [params for name, params in request.extensions if name == factory.name]
            if not offers:
                continue
            answer = factory.negotiate(offers)
            if answer is None:
                continue
            text, session = answer
            if session.rsv & used_rsv:
                continue  # two extensions cannot own the same RSV bit
            used_rsv |= session.rsv
            answers.append(text)
            sessions.append(session)
        return answers, sessions

    def reject(
        self,
        status: int,
        headers: HeadersLike = (),
        body: Union[bytes, str] = b"",
    ) -> None:
        """Refuse the request with an HTTP response, for instance 401, 403, 404 or 503.

        A ``Content-Length`` and ``Connection: close`` are added unless given. The connection
        is then CLOSED and ``should_close_transport`` is True.

        Raises:
            InvalidStateError: no request is waiting for an answer.
            ValueError: ``status`` is 101 or not a valid status, or a header is invalid.
        """
        if self._request is None or self._state is not _CONNECTING:
            raise InvalidStateError(
                f"cannot reject() in state {self._state.name}: no request is waiting"
            )
        if status == 101 or not 100 <= status <= 599:
            raise ValueError(f"cannot reject with status {status}")
        if isinstance(body, str):
            body = body.encode("utf-8")
        response = build_response(status, as_header_list(headers), bytes(body))
        if self._request.method == "HEAD" and body:
            response = response[: len(response) - len(body)]  # the head only, as for GET
        self._send_head(response)
        self._request = None
        self._finish(1006, f"handshake rejected with HTTP {status}", False, LOCAL)

    def _receive_handshake(self, data: Any, now: Optional[float]) -> None:
        buf = self._inbuf
        assert buf is not None
        start = len(buf)
        buf += data
        if self._request is not None:
            if len(buf) > _MAX_EARLY_DATA:
                self._request = None
                self._finish(1006, "too much data sent before the handshake completed", False, PEER)
            return
        max_size = self._options[4]
        end = find_head_end(buf, start)
        if end < 0 or end > max_size:
            if len(buf) > max_size:
                self._auto_reject(
                    InvalidHandshake(f"request head larger than {max_size} bytes", 431)
                )
            return
        head = bytes(buf[:end])
        del buf[:end]
        try:
            method, target, version, headers = parse_request_head(
                head, self._options[5], http_1_0=self._http_requests
            )
            plain = False
            if self._http_requests:
                if method not in _PLAIN_METHODS:
                    raise InvalidHandshake(f"method {method} is not allowed", 405, _PLAIN_ALLOW)
                # RFC 6455 4.1: only a GET opens a WebSocket. The Upgrade header of a HEAD or
                # OPTIONS is ignored (RFC 9110 7.8: a server MAY ignore it) and the request
                # answered as plain HTTP.
                plain = method != "GET" or not wants_upgrade(headers)
                if not plain and version == "HTTP/1.0":
                    # RFC 6455 4.1: the handshake is HTTP/1.1 or later, as without http_requests.
                    raise InvalidHandshake(f"unsupported HTTP version {version}", 505)
            if plain:
                # Plain HTTP: a Request the application answers itself (reject, any status).
                host = headers.get("Host") or ""
                request = Request(target, headers, host=host, upgrade=False, method=method)
                accept = ""
            else:
                request, accept = check_request(
                    method, target, headers, origins=self._origins, subprotocols=self._subprotocols
                )
        except HTTPError as exc:
            self._auto_reject(InvalidHandshake(exc.reason, exc.status))
            return
        except InvalidHandshake as exc:
            self._auto_reject(exc)
            return
        if (headers.get("Content-Length") or "0").strip() != "0" or "Transfer-Encoding" in headers:
            self._auto_reject(InvalidHandshake(f"a {method} request cannot have a body", 400))
            return
        self._request = request
        self._accept = accept
        self._events.append(request)

    def _auto_reject(self, exc: InvalidHandshake) -> None:
        self._send_head(rejection(exc))
        self._finish(1006, f"handshake rejected with HTTP {exc.status}: {exc.reason}", False, LOCAL)


class ClientConnection(_Connection):
    """The client side of one WebSocket connection.

    The opening request is in ``data_to_send()`` right after construction. The first event is
    :class:`turbows.events.Accepted` (the connection is OPEN), or :class:`Rejected` (another
    status than 101; its body follows once read) followed by :class:`ConnectionClosed`. A 101
    that fails the checks of RFC 6455 4.1 ends in :class:`ConnectionClosed` with the reason.

    Args:
        uri: ``ws://`` or ``wss://`` URI; user info becomes a Basic ``Authorization`` header.
        subprotocols: the subprotocols to offer, in order of preference.
        extensions: the extensions to offer, such as :class:`turbows.PerMessageDeflate`; the
            server's answer is checked by the extension and what it agreed runs. (A plain
            ``str`` offer is sent as it is, but a server accepting it fails the handshake.)
        origin: the ``Origin`` header to send, if any.
        extra_headers: more request headers (``Cookie``, ``Authorization``, ...).
        max_body_size: the largest rejection body kept, in bytes.

    The other options, and the attributes, are those of :class:`ServerConnection`.
    """

    __slots__ = ("_key", "_offered", "_rejection", "_extension_factories")

    def __init__(
        self,
        uri: str,
        *,
        subprotocols: Sequence[str] = (),
        extensions: Sequence[Any] = (),
        origin: Optional[str] = None,
        extra_headers: HeadersLike = (),
        max_message_size: Optional[int] = 1 << 20,
        fragments: bool = False,
        text_as_bytes: bool = False,
        ping_interval: Optional[float] = 20.0,
        ping_timeout: Optional[float] = 20.0,
        max_missed_pongs: int = 1,
        close_timeout: Optional[float] = 10.0,
        max_header_size: int = DEFAULT_MAX_HEADER_SIZE,
        max_headers: int = DEFAULT_MAX_HEADERS,
        max_body_size: int = 1 << 16,
        _codec: Optional[ModuleType] = None,
    ) -> None:
        super().__init__(
            max_message_size=max_message_size,
            fragments=fragments,
            text_as_bytes=text_as_bytes,
            ping_interval=ping_interval,
            ping_timeout=ping_timeout,
            max_missed_pongs=max_missed_pongs,
            close_timeout=close_timeout,
            max_header_size=max_header_size,
            max_headers=max_headers,
            _codec=_codec,
        )
        if isinstance(subprotocols, str):
            raise TypeError("subprotocols must be a sequence of strings, not a string")
        parsed = parse_uri(uri)
        offers = [extension_offer(ext) for ext in extensions]
        # The objects that can check an answer, by the extension name their offer carries.
        self._extension_factories = {
            parse_extensions([text])[0][0]: ext
            for ext, text in zip(extensions, offers)
            if not isinstance(ext, str)
        }
        self._key = generate_key()
        self._send_head(
            build_request(
                parsed,
                self._key,
                origin=origin,
                subprotocols=tuple(subprotocols),
                extensions=offers,
                extra_headers=extra_headers,
            )
        )
        self._offered: Optional[Tuple[Tuple[str, ...], List[ExtensionOffer], int]] = (
            tuple(subprotocols),
            parse_extensions(offers),
            max_body_size,
        )
        self._rejection: Optional[List[Any]] = None

    def _receive_handshake(self, data: Any, now: Optional[float]) -> None:
        buf = self._inbuf
        assert buf is not None
        start = len(buf)
        buf += data
        if self._rejection is not None:
            self._read_body()
            return
        max_size = self._options[4]
        end = find_head_end(buf, start)
        if end < 0 or end > max_size:
            if len(buf) > max_size:
                self._failed_handshake(f"response head larger than {max_size} bytes")
            return
        head = bytes(buf[:end])
        del buf[:end]
        try:
            # An HTTP/1.0 answer is no handshake, but it is a server's answer: a plain HTTP
            # server's, which the application should see as such (Rejected with its status).
            status, phrase, headers = parse_response_head(head, self._options[5], http_1_0=True)
            if status == 101 and head.startswith(b"HTTP/1.0 "):
                raise HTTPError(505, "a 101 over HTTP/1.0")
        except HTTPError as exc:
            self._failed_handshake(f"invalid response: {exc.reason}")
            return
        if status != 101:
            self._start_body(status, phrase, headers)
            return
        offered = self._offered
        assert offered is not None
        try:
            subprotocol, extensions = check_response(
                status, headers, self._key, subprotocols=offered[0], extensions=offered[1]
            )
            sessions = [self._accept_extension(name, params) for name, params in extensions]
        except InvalidHandshake as exc:
            self._failed_handshake(exc.reason)
            return
        self._extension_factories = {}
        self.subprotocol = subprotocol
        self.extensions = extensions
        self._use_extensions(sessions)
        self._offered = None
        self._key = ""
        self._inbuf = None
        self._opened(now)
        self._events.append(Accepted(subprotocol, extensions, headers))
        if len(buf):
            # Frames the server sent right behind its 101.
            self.receive_data(bytes(buf), now)

    def _accept_extension(self, name: str, params: Any) -> Any:
        factory = self._extension_factories.get(name)
        if factory is None:
            raise InvalidHandshake(
                f"server accepted extension {name!r}, which turbows cannot run", 101
            )
        try:
            return factory.accept_response(params)
        except NegotiationError as exc:
            raise InvalidHandshake(f"{name}: {exc}", 101) from None

    def _failed_handshake(self, reason: str) -> None:
        self._finish(1006, f"invalid handshake response: {reason}", False, LOCAL)

    def _start_body(self, status: int, phrase: str, headers: Headers) -> None:
        length: Optional[int] = None
        chunked = False
        if status < 200 or status in (204, 304):
            length = 0
        elif any(v.strip().lower() == "chunked" for v in headers.get_all("Transfer-Encoding")):
            chunked = True
        else:
            value = headers.get("Content-Length")
            if value is not None:
                value = value.strip()
                length = int(value) if value.isdigit() and value.isascii() else None
        self._rejection = [status, phrase, headers, length, chunked]
        self._read_body()

    def _read_body(self, eof: bool = False) -> None:
        rejection = self._rejection
        buf = self._inbuf
        assert rejection is not None and buf is not None and self._offered is not None
        status, phrase, headers, length, chunked = rejection
        limit = self._offered[2]
        if chunked:
            body, done = _dechunk(bytes(buf))
        elif length is not None:
            body, done = bytes(buf[:length]), len(buf) >= length
        else:
            body, done = bytes(buf), False
        if len(body) >= limit:
            body, done = body[:limit], True
        if not (done or eof):
            return
        self._events.append(Rejected(status, headers, body, phrase))
        self._finish(1006, f"handshake rejected with HTTP {status}", False, PEER)

    def _eof_in_handshake(self) -> None:
        if self._rejection is not None:
            self._read_body(eof=True)
        else:
            super()._eof_in_handshake()


def _dechunk(data: bytes) -> Tuple[bytes, bool]:
    """Decode as much of a chunked body (RFC 9112 7.1) as has arrived.

    Returns:
        The body so far, and whether the last chunk was seen (or the encoding is broken, in
        which case what was decoded is all there will be).
    """
    parts: List[bytes] = []
    pos = 0
    while True:
        eol = data.find(b"\r\n", pos)
        if eol < 0:
            return b"".join(parts), False
        size_text = data[pos:eol].split(b";", 1)[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            return b"".join(parts), True
        if size == 0:
            return b"".join(parts), True
        start = eol + 2
        parts.append(data[start : start + size])
        if len(data) < start + size + 2:
            return b"".join(parts), False
        pos = start + size + 2
