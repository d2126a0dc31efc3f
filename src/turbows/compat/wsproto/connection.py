"""The frame-level connection of wsproto's API (``wsproto.connection``).

:class:`Connection` is an open WebSocket connection without its HTTP/1.1 handshake: what
:class:`~turbows.compat.wsproto.WSConnection` runs once the handshake is over, and what a
server uses directly when the handshake happened elsewhere (an HTTP/2 extended CONNECT,
RFC 8441). Frames are parsed, unmasked, checked (RFC 6455 5), reassembled and validated as
UTF-8 by turbows's codec, and built and masked by its frame writer.

As in wsproto, nothing is answered on the application's behalf: a received ``Ping`` or
``CloseConnection`` is reported, and the application sends the ``Pong`` or the
``CloseConnection`` back.
"""

from __future__ import annotations

from collections import deque
from enum import Enum
from typing import Any, Deque, Iterator, List, Optional, Sequence, Union

from ... import codec
from ..._enums import is_valid_close_code
from ...connection import _truncate_reason
from ...exceptions import ProtocolError
from .events import (
    BytesMessage,
    CloseConnection,
    Event,
    Message,
    Ping,
    Pong,
    TextMessage,
)
from .extensions import Extension, PerMessageDeflate
from .frame_protocol import (
    LOCAL_ONLY_CLOSE_REASONS,
    CloseReason,
    Opcode,
    RsvBits,
    rsv_bits,
    rsv_int,
)
from .utilities import LocalProtocolError

__all__ = ["CLIENT", "SERVER", "Connection", "ConnectionState", "ConnectionType"]

#: The largest message accepted by default (64 MiB), so that a peer cannot make a connection
#: buffer without bound (the codec assembles each frame before handing it over; wsproto
#: hands frames over in pieces and leaves the limit to the application). Received larger,
#: the connection fails with 1009.
DEFAULT_MAX_MESSAGE_SIZE = 64 * 1024 * 1024


class ConnectionState(Enum):
    """The state of a connection (RFC 6455 4 and 7)."""

    #: The opening handshake is in progress.
    CONNECTING = 0
    #: The opening handshake is complete.
    OPEN = 1
    #: The peer started the closing handshake.
    REMOTE_CLOSING = 2
    #: This endpoint started the closing handshake.
    LOCAL_CLOSING = 3
    #: The closing handshake is complete, or the connection was lost.
    CLOSED = 4
    #: The server is sending a rejection's body.
    REJECTING = 5


class ConnectionType(Enum):
    """The side of a connection."""

    #: This endpoint is the client.
    CLIENT = 1
    #: This endpoint is the server.
    SERVER = 2


CLIENT = ConnectionType.CLIENT
SERVER = ConnectionType.SERVER

_OPEN = ConnectionState.OPEN
_LOCAL_CLOSING = ConnectionState.LOCAL_CLOSING
_REMOTE_CLOSING = ConnectionState.REMOTE_CLOSING
_CLOSED = ConnectionState.CLOSED

_OP_CONT = int(Opcode.CONTINUATION)
_OP_TEXT = int(Opcode.TEXT)
_OP_BINARY = int(Opcode.BINARY)
_OP_CLOSE = int(Opcode.CLOSE)
_OP_PING = int(Opcode.PING)
_OP_PONG = int(Opcode.PONG)

_CodecText = codec.TextMessage
_CodecBinary = codec.BinaryMessage
_CodecPing = codec.Ping
_CodecPong = codec.Pong

_new = object.__new__
_REASONS = {int(member): member for member in CloseReason}


def _close_reason(code: int) -> int:
    """The :class:`CloseReason` member for ``code``, or ``code`` itself (as wsproto)."""
    return _REASONS.get(int(code), int(code))


class _FrameContext:
    """What the ``proto`` argument of an extension's hooks offers: the side, the extensions."""

    __slots__ = ("client", "extensions")

    def __init__(self, client: bool, extensions: List[Extension]) -> None:
        self.client = client
        self.extensions = extensions


def _is_native_deflate(ext: Extension) -> bool:
    """True for our PerMessageDeflate (not a subclass that changed its frame hooks)."""
    cls = type(ext)
    return isinstance(ext, PerMessageDeflate) and all(
        getattr(cls, hook) is getattr(Extension, hook)
        for hook in (
            "frame_inbound_header",
            "frame_inbound_payload_data",
            "frame_inbound_complete",
            "frame_outbound",
        )
    )


class _InboundChain:
    """The codec's ``inflater`` hook for messages whose first frame has RSV1 set.

    Our permessage-deflate inflates there (turbows's :class:`~turbows.extensions.Inflater`);
    a foreign extension's ``frame_inbound_payload_data`` and ``frame_inbound_complete``
    run there too, in the order the extensions were negotiated.
    """

    __slots__ = ("_stages", "_proto")

    def __init__(self, stages: List[Any], proto: _FrameContext) -> None:
        self._stages = stages
        self._proto = proto

    def feed(self, data: bytes, final: bool, limit: int) -> bytes:
        for stage in self._stages:
            if not isinstance(stage, Extension):
                data = stage.feed(data, final, limit)
                continue
            out = stage.frame_inbound_payload_data(self._proto, data)
            if isinstance(out, CloseReason):
                raise ProtocolError(int(out), f"error in extension {stage.name}")
            data = bytes(out)
            if final:
                tail = stage.frame_inbound_complete(self._proto, True)
                if isinstance(tail, CloseReason):
                    raise ProtocolError(int(tail), f"error in extension {stage.name}")
                if tail:
                    data += bytes(tail)
        return data


class Connection:
    """An open WebSocket connection, without the HTTP/1.1 handshake.

    Args:
        connection_type: ``CLIENT`` (frames sent are masked, frames received must not be)
            or ``SERVER``.
        extensions: the negotiated extensions; those whose ``enabled()`` is False are left out.
        trailing_data: bytes already received after the handshake.
        max_message_size: the largest message accepted, in bytes, or None for no limit
            (a turbows addition, see :data:`DEFAULT_MAX_MESSAGE_SIZE`).
    """

    def __init__(
        self,
        connection_type: ConnectionType,
        extensions: Optional[Sequence[Extension]] = None,
        trailing_data: bytes = b"",
        *,
        max_message_size: Optional[int] = DEFAULT_MAX_MESSAGE_SIZE,
    ) -> None:
        self.client = client = connection_type is ConnectionType.CLIENT
        self._state = _OPEN
        self._events: Deque[Event] = deque()
        self._failed = False
        # The peer's close event, until events() yields it (the state changes then).
        self._peer_close: Optional[CloseConnection] = None
        enabled = [ext for ext in extensions or () if ext.enabled()]
        proto = _FrameContext(client, enabled)
        self._proto = proto
        # Outbound, each extension in reverse order (as wsproto): our permessage-deflate as a
        # turbows session, a foreign extension through its frame_outbound hook.
        self._outbound: List[Any] = []
        inbound: List[Any] = []
        for ext in enabled:
            if _is_native_deflate(ext):
                assert isinstance(ext, PerMessageDeflate)
                session = ext._session(client)
                inbound.append(session.inflater)
                self._outbound.append(session)
            else:
                inbound.append(ext)
                self._outbound.append(ext)
        self._outbound.reverse()
        self._parser = codec.FrameParser(
            require_mask=not client,
            max_message_size=max_message_size,
            fragments=True,
            inflater=_InboundChain(inbound, proto) if inbound else None,
        )
        self._feed = self._parser.feed
        writer = codec.FrameWriter(mask=client)
        self._frame = writer.frame
        self._text = writer.text
        self._binary = writer.binary
        self._take = writer.take
        # The opcode of the message being sent in pieces, None between messages.
        self._sending: Optional[int] = None
        # Whole messages go straight to the frame writer: no extension, no message in pieces.
        self._plain = not self._outbound
        if trailing_data:
            self.receive_data(trailing_data)

    @property
    def state(self) -> ConnectionState:
        """The :class:`ConnectionState`."""
        return self._state

    # ----------------------------------------------------------------------------------------
    # Sending.

    def send(self, event: Event) -> bytes:
        """Return the bytes that send ``event`` to the peer.

        Args:
            event: a :class:`Message` (``TextMessage``, ``BytesMessage``: the type of its
                ``data`` decides the opcode), ``Ping``, ``Pong`` or ``CloseConnection``.

        Raises:
            LocalProtocolError: the event cannot be sent in this state.
            TypeError: a message's data is neither ``str`` nor bytes-like, or a piece of a
                message has another type than its first piece.
            ValueError: a ping or pong payload longer than 125 bytes.
        """
        state = self._state
        if state is _OPEN:
            kind = type(event)
            if (
                (kind is TextMessage or kind is BytesMessage)
                and self._plain
                and event.message_finished  # type: ignore[attr-defined]
            ):
                # The common case: a whole message, no extension (the Event ABC makes
                # isinstance slow, so the exact classes are tested first).
                data = event.data  # type: ignore[attr-defined]
                kind = type(data)
                if kind is str:
                    self._text(data)
                    return self._take()
                if kind is bytes or kind is bytearray or kind is memoryview:
                    self._binary(data)
                    return self._take()
            if isinstance(event, Message):
                return self._send_data(event.data, event.message_finished)
            if isinstance(event, Ping):
                return self._send_frame(_OP_PING, event.payload, True)
            if isinstance(event, Pong):
                return self._send_frame(_OP_PONG, event.payload, True)
        if isinstance(event, CloseConnection) and (state is _OPEN or state is _REMOTE_CLOSING):
            data = self._send_close(event.code, event.reason)
            self._state = _CLOSED if state is _REMOTE_CLOSING else _LOCAL_CLOSING
            return data
        raise LocalProtocolError(f"Event {event} cannot be sent in state {state}.")

    def _send_data(self, data: Union[str, bytes, bytearray, memoryview], fin: bool) -> bytes:
        if isinstance(data, (bytes, bytearray, memoryview)):
            opcode = _OP_BINARY
        elif isinstance(data, str):
            opcode = _OP_TEXT
        else:
            raise TypeError("Must provide bytes or text")
        first = self._sending is None
        if first:
            self._sending = opcode
        elif self._sending != opcode:
            raise TypeError("Data type mismatch inside message")
        else:
            opcode = _OP_CONT
        self._sending = None if fin else self._sending
        self._plain = self._sending is None and not self._outbound
        # A whole message in one frame may be compressed; a message sent in pieces goes
        # uncompressed (RFC 7692 6: RSV1 is set per message, and need not be).
        return self._send_frame(opcode, data, fin, whole=first and fin)

    def _send_frame(self, opcode: int, payload: Any, fin: bool, whole: bool = False) -> bytes:
        if self._outbound:
            if isinstance(payload, str):
                payload = payload.encode("utf-8")
            rsv = 0
            for stage in self._outbound:
                if isinstance(stage, Extension):
                    bits, payload = stage.frame_outbound(
                        self._proto, Opcode(opcode), rsv_bits(rsv), bytes(payload), fin
                    )
                    rsv = rsv_int(RsvBits(*bits))
                elif whole:
                    payload, bit = stage.encode(bytes(payload))
                    rsv |= bit
            self._frame(opcode, payload, fin, rsv)
        else:
            self._frame(opcode, payload, fin)
        return self._take()

    def _send_close(self, code: Optional[int], reason: Optional[str]) -> bytes:
        if code is CloseReason.NO_STATUS_RCVD:
            code = None
        if code is None:
            if reason:
                raise TypeError("cannot specify a reason without a code")
            return self._send_frame(_OP_CLOSE, b"", True)
        if code in LOCAL_ONLY_CLOSE_REASONS:
            # 1005, 1006 and 1015 report what happened locally and MUST NOT be sent (RFC
            # 6455 7.4.1): as wsproto, the close frame says 1000 instead.
            code = CloseReason.NORMAL_CLOSURE
        elif not is_valid_close_code(int(code)):
            # wsproto sends any integer; RFC 6455 7.4.2 reserves these for the protocol.
            raise LocalProtocolError(f"close code {int(code)} may not be sent in a close frame")
        # As wsproto, a reason too long for the close frame is cut (at a character boundary).
        payload = codec.encode_close(int(code), _truncate_reason(reason or ""))
        return self._send_frame(_OP_CLOSE, payload, True)

    # ----------------------------------------------------------------------------------------
    # Receiving.

    def receive_data(self, data: Optional[bytes]) -> None:
        """Feed bytes received from the peer; None means the connection was lost.

        The events they complete are then in :meth:`events`. A protocol error shows as a
        ``CloseConnection`` event with the code to close with (1002, 1007, 1009), after
        which the state is ``REMOTE_CLOSING`` (send its ``response()``); what follows it is
        ignored.

        Raises:
            LocalProtocolError: the connection is already CLOSED.
        """
        if data is None:
            # RFC 6455 7.1.5: a connection lost without a close frame is closed with 1006.
            self._events.append(CloseConnection(code=CloseReason.ABNORMAL_CLOSURE))
            self._state = _CLOSED
            return
        state = self._state
        if state is _OPEN or state is _LOCAL_CLOSING:
            if self._failed:
                return
            try:
                items = self._feed(data)
            except ProtocolError as exc:
                self._deliver(exc.items)
                self._failed = True
                # RFC 6455 7.1.7: failing the connection, an endpoint SHOULD send a close
                # frame with the code. The error reads as a close from the peer: once its
                # event is yielded the state is REMOTE_CLOSING, and an application that
                # answers the peer's close sends response(), with that code. (wsproto leaves
                # the state OPEN, and its users then drop the connection without a close.)
                close = CloseConnection(code=_close_reason(exc.code), reason=exc.reason)
                self._peer_close = close
                self._events.append(close)
                return
            if items:
                self._deliver(items)
        elif state is _CLOSED:
            raise LocalProtocolError("Connection already closed.")

    def _deliver(self, items: List[Any]) -> None:
        append = self._events.append
        for item in items:
            kind = type(item)
            if kind is _CodecText or kind is _CodecBinary:
                # The event dataclasses are frozen: filling the instance dict directly skips
                # the generated __init__ and its three object.__setattr__ calls per message
                # (the same fields, the same object; measured 2.5x faster).
                event: Any = _new(TextMessage if kind is _CodecText else BytesMessage)
                fields = event.__dict__
                fields["data"] = item.data
                fields["frame_finished"] = True
                fields["message_finished"] = item.final
                append(event)
            elif kind is _CodecPing:
                append(Ping(payload=item.payload))
            elif kind is _CodecPong:
                append(Pong(payload=item.payload))
            else:  # the close frame, the last item the parser gives
                close = CloseConnection(code=_close_reason(item.code), reason=item.reason)
                self._peer_close = close
                append(close)

    def events(self) -> Iterator[Event]:
        """Yield the events received so far, in order; an event is forgotten once yielded.

        The peer's close changes the state when its event is yielded, as in wsproto: the
        events before it (a ping that arrived with it, say) are answered while still OPEN.
        """
        events = self._events
        while events:
            event = events.popleft()
            if event is self._peer_close:
                self._close_yielded()
            yield event

    def _close_yielded(self) -> None:
        """The peer's close (or a protocol error) was handed out: the state follows now."""
        self._peer_close = None
        self._state = _CLOSED if self._state is _LOCAL_CLOSING else _REMOTE_CLOSING
