"""WebSocket extensions: the interface, and permessage-deflate (RFC 7692).

An extension is configured once (a :class:`PerMessageDeflate` object passed to a connection's
``extensions``) and negotiated per connection, which gives a session object that the connection
uses on its hot paths:

- ``session.rsv``: the RSV bits the extension owns (the parser accepts them only then);
- ``session.inflater``: the receive side, handed to ``FrameParser(inflater=...)``;
- ``session.encode(payload)``: the send side, returning ``(payload, rsv)`` for a whole message.

Server side, :meth:`PerMessageDeflate.negotiate` takes the offers of a client's
``Sec-WebSocket-Extensions`` header and answers with the response parameters and a session, or
None to decline. Client side, :meth:`PerMessageDeflate.offer` gives the header text and
:meth:`PerMessageDeflate.accept_response` checks the server's answer.
"""

from __future__ import annotations

import zlib
from typing import Dict, Final, List, Optional, Sequence, Tuple, Union

from .exceptions import TurboWSError, ProtocolError

__all__ = [
    "ExtensionParams",
    "NegotiationError",
    "PerMessageDeflate",
    "DeflateSession",
    "Inflater",
]

#: The parameters of one extension offer or response: ``(("name", "value" or None), ...)``.
ExtensionParams = Sequence[Tuple[str, Optional[str]]]

# RFC 7692 7.1: the parameters defined by permessage-deflate.
_SERVER_NO_TAKEOVER: Final = "server_no_context_takeover"
_CLIENT_NO_TAKEOVER: Final = "client_no_context_takeover"
_SERVER_MAX_BITS: Final = "server_max_window_bits"
_CLIENT_MAX_BITS: Final = "client_max_window_bits"
_KNOWN: Final = frozenset(
    {_SERVER_NO_TAKEOVER, _CLIENT_NO_TAKEOVER, _SERVER_MAX_BITS, _CLIENT_MAX_BITS}
)
# RFC 7692 7.2.1: removed from the end of each compressed message, added back to inflate it.
_TRAILER: Final = b"\x00\x00\xff\xff"
# Inflated per zlib call when a size limit applies (see Inflater.feed).
_STEP: Final = 1 << 16


class NegotiationError(TurboWSError):
    """A server's extension response that the client cannot accept (the handshake fails)."""


def _window_bits(value: Optional[str]) -> Optional[int]:
    """Parse a window-bits value: "8" to "15" with no leading zero or sign (RFC 7692 7.1.2)."""
    if value is None or not value.isdigit() or not value.isascii() or value[0] == "0":
        return None
    bits = int(value)
    return bits if 8 <= bits <= 15 else None


def _params_dict(params: ExtensionParams) -> Optional[Dict[str, Optional[str]]]:
    """The parameters as a dict, or None if one is unknown or repeated."""
    out: Dict[str, Optional[str]] = {}
    for name, value in params:
        name = name.lower()
        if name not in _KNOWN or name in out:
            return None
        out[name] = value
    return out


def _format(params: Sequence[Tuple[str, Optional[int]]]) -> str:
    parts = ["permessage-deflate"]
    for name, value in params:
        parts.append(name if value is None else f"{name}={value}")
    return "; ".join(parts)


class Inflater:
    """The receive side of a permessage-deflate session (the parser's ``inflater`` hook).

    Args:
        window_bits: the LZ77 window of the peer's compressor (8 to 15).
        no_context_takeover: the peer starts each message with an empty window.
    """

    __slots__ = ("_bits", "_reset", "_d")

    def __init__(self, window_bits: int = 15, no_context_takeover: bool = False) -> None:
        # zlib cannot inflate with an 8-bit window; 9 reads everything an 8-bit peer writes.
        self._bits = max(window_bits, 9)
        self._reset = no_context_takeover
        # Made on the first compressed message: an idle connection holds no zlib state.
        self._d: Optional["zlib._Decompress"] = None

    def feed(self, data: bytes, final: bool, limit: int) -> bytes:
        """Inflate the next piece of a compressed message.

        Args:
            data: compressed bytes, unmasked.
            final: this piece ends the message.
            limit: the most bytes the message may still inflate to, or -1 for no limit.
                At most ``limit + 1`` bytes are returned, so that a few KiB that would
                inflate to gigabytes never get the chance to (the parser fails with 1009).

        Raises:
            ProtocolError: (1007) the data is not a valid deflate stream; (1009) it inflates
                past ``limit`` (raised here rather than returning ``limit + 1`` bytes, so that
                a bomb costs about the limit in memory, not twice).
        """
        if final:
            data += _TRAILER
        d = self._d
        if d is None:
            d = self._d = zlib.decompressobj(-self._bits)
        try:
            if limit < 0:
                out = d.decompress(data)
            else:
                # In steps: one call with max_length=limit + 1 builds the output in blocks and
                # then copies them into one bytes object, about twice the limit at its peak for
                # a bomb. A step that fills its buffer may leave input (unconsumed_tail) or
                # output pending in zlib; one that does not has inflated everything.
                step = min(limit + 1, _STEP)
                out = d.decompress(data, step)
                if len(out) == step:
                    parts = [out]
                    size = step
                    while len(out) == step:
                        if size > limit:
                            break
                        out = d.decompress(d.unconsumed_tail, step)
                        parts.append(out)
                        size += len(out)
                    if size > limit:
                        raise ProtocolError(
                            1009,
                            f"compressed message inflates past the size limit ({limit} more"
                            " bytes allowed)",
                        )
                    out = b"".join(parts)
        except zlib.error as exc:
            raise ProtocolError(1007, f"compressed message cannot be inflated: {exc}") from None
        if final and (self._reset or d.eof):
            # Without context takeover, or after a peer ended its deflate stream (BFINAL), the
            # next message starts a new stream: free the window until it comes.
            self._d = None
        return out


class DeflateSession:
    """permessage-deflate as negotiated on one connection.

    Args:
        compress_bits: window bits of our compressor (what the peer allowed, capped by ours).
        compress_reset: we start every message with an empty window (no context takeover).
        decompress_bits: window bits the peer's compressor uses at most.
        decompress_reset: the peer starts every message with an empty window.
        level, mem_level, threshold: as for :class:`PerMessageDeflate`.
    """

    rsv: Final = 0x40
    __slots__ = ("inflater", "_c", "_bits", "_reset", "_level", "_mem", "threshold", "params")

    def __init__(
        self,
        *,
        compress_bits: int,
        compress_reset: bool,
        decompress_bits: int,
        decompress_reset: bool,
        level: int,
        mem_level: int,
        threshold: int,
        params: str = "",
    ) -> None:
        self.inflater = Inflater(decompress_bits, decompress_reset)
        self._bits = compress_bits
        self._reset = compress_reset
        self._level = level
        self._mem = mem_level
        self.threshold = threshold
        #: The negotiated header text (the server's response).
        self.params = params
        self._c: Optional["zlib._Compress"] = None

    def encode(self, payload: bytes) -> Tuple[bytes, int]:
        """Compress one whole message.

        Returns:
            ``(data, rsv)``: the compressed payload and RSV1, or the payload unchanged and 0
            when it is shorter than the threshold or compression is off (a threshold of -1):
            RFC 7692 lets any message go uncompressed.
        """
        if len(payload) < self.threshold or self.threshold < 0:
            return payload, 0
        c = self._c
        if c is None or self._reset:
            c = self._c = zlib.compressobj(self._level, zlib.DEFLATED, -self._bits, self._mem)
        data = c.compress(payload) + c.flush(zlib.Z_SYNC_FLUSH)
        # RFC 7692 7.2.1: a sync flush ends with 00 00 ff ff, which is left off on the wire.
        return data[:-4], 0x40


class PerMessageDeflate:
    """permessage-deflate (RFC 7692): configuration for one side, negotiation, sessions.

    Memory per connection: the compressor takes about ``2 ** (window_bits + 2) +
    2 ** (mem_level + 9)`` bytes plus about 6 KiB of state (defaults: 16 KiB + 16 KiB, 38 KiB
    measured; zlib's own defaults 15 and 8 take 262 KiB), the decompressor about
    ``2 ** window_bits`` plus 7 KiB (11 KiB with a 12-bit window), where the window is
    what the peer's compressor uses: a server asks clients that allow it (browsers do) for
    ``client_max_window_bits``, so both sides stay small. Each is made with the first message
    it handles, so a connection that sent or received nothing compressed holds neither.

    Args:
        server_no_context_takeover: the server compresses each message on its own (less memory
            kept between messages, worse ratio). Client side: ask the server for it.
        client_no_context_takeover: the same for the client's compressor. Server side: ask
            the client for it.
        server_max_window_bits: the server compressor's window (8 to 15). Client side: ask the
            server for it; server side: our own cap, announced in the response.
        client_max_window_bits: the client compressor's window. Client side: ``True`` offers
            the parameter without a value (we can use any window the server names), an int
            offers that limit. Server side: the window to ask of clients that allow it.
        window_bits: the cap on our own compressor's window when nothing smaller is negotiated.
        level: zlib compression level (1 fastest to 9 smallest).
        mem_level: zlib memLevel (1 to 9): memory of the compressor's internal state.
        threshold: messages shorter than this many bytes are sent uncompressed.
    """

    name: Final = "permessage-deflate"

    def __init__(
        self,
        *,
        server_no_context_takeover: bool = False,
        client_no_context_takeover: bool = False,
        server_max_window_bits: Optional[int] = None,
        client_max_window_bits: Union[bool, int, None] = None,
        window_bits: int = 12,
        level: int = 6,
        mem_level: int = 5,
        threshold: int = 128,
    ) -> None:
        if server_max_window_bits is not None and not 8 <= server_max_window_bits <= 15:
            raise ValueError(f"window bits must be 8 to 15, got {server_max_window_bits}")
        if not 9 <= window_bits <= 15:
            # zlib cannot compress with an 8-bit window (it silently uses 9).
            raise ValueError(f"window_bits must be 9 to 15, got {window_bits}")
        if (
            client_max_window_bits not in (None, True, False)
            and not 8 <= int(client_max_window_bits) <= 15
        ):
            raise ValueError(f"window bits must be 8 to 15, got {client_max_window_bits}")
        if not 1 <= mem_level <= 9:
            raise ValueError(f"mem_level must be 1 to 9, got {mem_level}")
        if not -1 <= level <= 9:
            raise ValueError(f"level must be -1 to 9, got {level}")
        self.server_no_context_takeover = server_no_context_takeover
        self.client_no_context_takeover = client_no_context_takeover
        self.server_max_window_bits = server_max_window_bits
        self.client_max_window_bits = client_max_window_bits
        self.window_bits = window_bits
        self.level = level
        self.mem_level = mem_level
        self.threshold = threshold

    def __repr__(self) -> str:
        return f"PerMessageDeflate({self.offer()!r})"

    def _session(
        self, params: Dict[str, Optional[str]], *, server: bool, text: str
    ) -> DeflateSession:
        server_bits = _window_bits(params.get(_SERVER_MAX_BITS)) or 15
        client_bits = _window_bits(params.get(_CLIENT_MAX_BITS)) or 15
        server_reset = _SERVER_NO_TAKEOVER in params
        client_reset = _CLIENT_NO_TAKEOVER in params
        if server:
            ours, theirs = server_bits, client_bits
            ours_reset = server_reset or self.server_no_context_takeover
            theirs_reset = client_reset
            own_cap = self.server_max_window_bits or 15
        else:
            ours, theirs = client_bits, server_bits
            ours_reset = client_reset or self.client_no_context_takeover
            theirs_reset = server_reset
            wanted = self.client_max_window_bits
            own_cap = wanted if isinstance(wanted, int) and not isinstance(wanted, bool) else 15
        compress_bits = min(ours, own_cap, self.window_bits)
        # zlib silently widens an 8-bit deflate window to 9 bits, which a peer that asked for 8
        # could not inflate: with 8 bits negotiated we send every message uncompressed, which
        # RFC 7692 allows (RSV1 is set per message).
        threshold = self.threshold if compress_bits >= 9 else -1
        return DeflateSession(
            compress_bits=max(compress_bits, 9),
            compress_reset=ours_reset,
            decompress_bits=theirs,
            decompress_reset=theirs_reset,
            level=self.level,
            mem_level=self.mem_level,
            threshold=threshold,
            params=text,
        )

    # Server side ------------------------------------------------------------------------------

    def negotiate(self, offers: Sequence[ExtensionParams]) -> Optional[Tuple[str, DeflateSession]]:
        """Answer a client's permessage-deflate offers (RFC 7692 5 and 7).

        Args:
            offers: the parameters of each permessage-deflate offer, in the client's order of
                preference.

        Returns:
            ``(response header element, session)`` for the first offer that can be accepted,
            or None to decline them all. Offers with unknown, repeated or invalid parameters
            are declined, never failed.
        """
        for offer in offers:
            answer = self._answer(offer)
            if answer is not None:
                return answer
        return None

    def _answer(self, offer: ExtensionParams) -> Optional[Tuple[str, DeflateSession]]:
        params = _params_dict(offer)
        if params is None:
            return None
        for name in (_SERVER_NO_TAKEOVER, _CLIENT_NO_TAKEOVER):
            if params.get(name) is not None:
                return None  # these parameters take no value (RFC 7692 7.1.1)
        response: List[Tuple[str, Optional[int]]] = []
        # 7.1.1.1: asked for, we must honour it; we may also impose it ourselves.
        if _SERVER_NO_TAKEOVER in params or self.server_no_context_takeover:
            response.append((_SERVER_NO_TAKEOVER, None))
        # 7.1.1.2: the server may always ask the client not to take over context.
        if self.client_no_context_takeover:
            response.append((_CLIENT_NO_TAKEOVER, None))
        # 7.1.2.1: the client's cap on our window; we answer with it or a smaller one.
        if _SERVER_MAX_BITS in params:
            asked = _window_bits(params[_SERVER_MAX_BITS])
            if asked is None:
                return None
            response.append((_SERVER_MAX_BITS, min(asked, self.server_max_window_bits or 15)))
        # 7.1.2.2: only a client that offered client_max_window_bits can be given a window;
        # its value, if any, is a hint that our answer must not exceed.
        if _CLIENT_MAX_BITS in params:
            value = params[_CLIENT_MAX_BITS]
            hint = 15
            if value is not None:
                parsed = _window_bits(value)
                if parsed is None:
                    return None
                hint = parsed
            wanted = self.client_max_window_bits
            if not isinstance(wanted, int) or isinstance(wanted, bool):
                wanted = self.window_bits
            response.append((_CLIENT_MAX_BITS, min(wanted, hint)))
        text = _format(response)
        negotiated = {name: (None if v is None else str(v)) for name, v in response}
        return text, self._session(negotiated, server=True, text=text)

    # Client side ------------------------------------------------------------------------------

    def offer(self) -> str:
        """The ``Sec-WebSocket-Extensions`` element a client sends."""
        params: List[Tuple[str, Optional[int]]] = []
        if self.server_no_context_takeover:
            params.append((_SERVER_NO_TAKEOVER, None))
        if self.client_no_context_takeover:
            params.append((_CLIENT_NO_TAKEOVER, None))
        if self.server_max_window_bits is not None:
            params.append((_SERVER_MAX_BITS, self.server_max_window_bits))
        if self.client_max_window_bits is True:
            params.append((_CLIENT_MAX_BITS, None))
        elif self.client_max_window_bits:
            params.append((_CLIENT_MAX_BITS, int(self.client_max_window_bits)))
        return _format(params)

    def accept_response(self, params: ExtensionParams) -> DeflateSession:
        """Check the server's permessage-deflate response to our offer.

        Raises:
            NegotiationError: the response has unknown, repeated or invalid parameters, or
                does not honour what we offered.
        """
        found = _params_dict(params)
        if found is None:
            raise NegotiationError(f"invalid permessage-deflate response parameters: {params!r}")
        for name in (_SERVER_NO_TAKEOVER, _CLIENT_NO_TAKEOVER):
            if name in found and found[name] is not None:
                raise NegotiationError(f"{name} takes no value")
        if self.server_no_context_takeover and _SERVER_NO_TAKEOVER not in found:
            raise NegotiationError("the server did not accept server_no_context_takeover")
        if _SERVER_MAX_BITS in found:
            bits = _window_bits(found[_SERVER_MAX_BITS])
            if bits is None:
                raise NegotiationError("invalid server_max_window_bits in the response")
            if self.server_max_window_bits is not None and bits > self.server_max_window_bits:
                raise NegotiationError("server_max_window_bits above what we offered")
        elif self.server_max_window_bits is not None:
            raise NegotiationError("the server did not accept server_max_window_bits")
        if _CLIENT_MAX_BITS in found:
            if not self.client_max_window_bits:
                raise NegotiationError("client_max_window_bits in the response but not offered")
            bits = _window_bits(found[_CLIENT_MAX_BITS])
            if bits is None:
                raise NegotiationError("invalid client_max_window_bits in the response")
            if self.client_max_window_bits is not True and bits > int(self.client_max_window_bits):
                raise NegotiationError("client_max_window_bits above what we offered")
        text = _format([(n, None if v is None else int(v)) for n, v in found.items()])
        return self._session(found, server=False, text=text)
