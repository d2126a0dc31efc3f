"""Extensions of wsproto's API (``wsproto.extensions``): the interface, and permessage-deflate.

:class:`Extension` is wsproto's frame-level interface, for extensions of one's own.
:class:`PerMessageDeflate` negotiates as wsproto's does (same offers, answers and attributes),
but once enabled its messages are compressed and inflated by turbows's own permessage-deflate
(:class:`turbows.extensions.DeflateSession`), the inflating inside the codec's parser.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Tuple, Type, Union

from ...extensions import DeflateSession
from .frame_protocol import CloseReason, Opcode, RsvBits

if TYPE_CHECKING:
    # The object passed to the hooks as ``proto``: it has ``client`` and ``extensions``.
    Proto = Any

__all__ = ["Extension", "PerMessageDeflate", "SUPPORTED_EXTENSIONS"]


class Extension(ABC):
    """A WebSocket extension, negotiated in the handshake and then run on every frame.

    The handshake calls :meth:`offer` (client) or :meth:`accept` (server), then
    :meth:`finalize` (client) with the server's answer. Once :meth:`enabled` is True the
    connection calls the ``frame_*`` hooks; each may return a :class:`CloseReason` to fail
    the connection with that code.

    Attributes:
        name: the extension's token in ``Sec-WebSocket-Extensions``.
    """

    name: str

    def enabled(self) -> bool:
        """Whether the extension takes part in framing (False until negotiated)."""
        return False

    @abstractmethod
    def offer(self) -> Union[bool, str]:
        """Client side: the parameters to offer (a string), or True/False to offer the bare
        name or nothing."""

    def accept(self, offer: str) -> Union[bool, str, None]:
        """Server side: answer the client's offer (the whole element, name included).

        Returns:
            The response parameters, True for the bare name, or None/False to decline.
        """
        return None

    def finalize(self, offer: str) -> None:
        """Client side: take the server's answer (the whole element, name included)."""
        return None

    def frame_inbound_header(
        self, proto: "Proto", opcode: Opcode, rsv: RsvBits, payload_length: int
    ) -> Union[CloseReason, RsvBits]:
        """A frame header arrived: return the RSV bits this extension owns, or an error."""
        return RsvBits(False, False, False)

    def frame_inbound_payload_data(self, proto: "Proto", data: bytes) -> Union[bytes, CloseReason]:
        """Payload bytes arrived, unmasked: return them transformed, or an error."""
        return data

    def frame_inbound_complete(self, proto: "Proto", fin: bool) -> Union[bytes, CloseReason, None]:
        """A frame ended: return bytes to append to its payload, None, or an error."""
        return None

    def frame_outbound(
        self, proto: "Proto", opcode: Opcode, rsv: RsvBits, data: bytes, fin: bool
    ) -> Tuple[RsvBits, bytes]:
        """A frame is being sent: return its RSV bits and payload, transformed."""
        return (rsv, data)


_CLIENT_BITS = "client_max_window_bits"
_SERVER_BITS = "server_max_window_bits"
_CLIENT_NO_TAKEOVER = "client_no_context_takeover"
_SERVER_NO_TAKEOVER = "server_no_context_takeover"


def _params(element: str) -> List[Tuple[str, Optional[str]]]:
    """The ``name[=value]`` parameters after the extension name, stripped; rubbish kept."""
    out: List[Tuple[str, Optional[str]]] = []
    for part in element.split(";")[1:]:
        name, sep, value = part.strip().partition("=")
        out.append((name.strip(), value.strip() if sep else None))
    return out


class PerMessageDeflate(Extension):
    """permessage-deflate (RFC 7692) with wsproto's negotiation and attributes.

    Args:
        client_no_context_takeover: the client compresses each message on its own.
        client_max_window_bits: the client compressor's window, 9 to 15.
        server_no_context_takeover: the server compresses each message on its own.
        server_max_window_bits: the server compressor's window, 9 to 15.

    Raises:
        ValueError: a window size outside 9 to 15 (zlib cannot compress with 8).
    """

    name = "permessage-deflate"

    DEFAULT_CLIENT_MAX_WINDOW_BITS = 15
    DEFAULT_SERVER_MAX_WINDOW_BITS = 15

    def __init__(
        self,
        client_no_context_takeover: bool = False,
        client_max_window_bits: Optional[int] = None,
        server_no_context_takeover: bool = False,
        server_max_window_bits: Optional[int] = None,
    ) -> None:
        self.client_no_context_takeover = client_no_context_takeover
        self.server_no_context_takeover = server_no_context_takeover
        self._client_max_window_bits = self.DEFAULT_CLIENT_MAX_WINDOW_BITS
        self._server_max_window_bits = self.DEFAULT_SERVER_MAX_WINDOW_BITS
        if client_max_window_bits is not None:
            self.client_max_window_bits = client_max_window_bits
        if server_max_window_bits is not None:
            self.server_max_window_bits = server_max_window_bits
        self._enabled = False

    @staticmethod
    def _check_bits(value: int) -> int:
        if not 9 <= value <= 15:
            raise ValueError("Window size must be between 9 and 15 inclusive")
        return value

    @property
    def client_max_window_bits(self) -> int:
        """The client compressor's window (9 to 15)."""
        return self._client_max_window_bits

    @client_max_window_bits.setter
    def client_max_window_bits(self, value: int) -> None:
        self._client_max_window_bits = self._check_bits(value)

    @property
    def server_max_window_bits(self) -> int:
        """The server compressor's window (9 to 15)."""
        return self._server_max_window_bits

    @server_max_window_bits.setter
    def server_max_window_bits(self, value: int) -> None:
        self._server_max_window_bits = self._check_bits(value)

    def enabled(self) -> bool:
        """True once :meth:`accept` or :meth:`finalize` has agreed on the parameters."""
        return self._enabled

    def offer(self) -> Union[bool, str]:
        """The parameters a client offers: both windows, and the no-takeover flags set."""
        parts = [
            f"{_CLIENT_BITS}={self.client_max_window_bits}",
            f"{_SERVER_BITS}={self.server_max_window_bits}",
        ]
        if self.client_no_context_takeover:
            parts.append(_CLIENT_NO_TAKEOVER)
        if self.server_no_context_takeover:
            parts.append(_SERVER_NO_TAKEOVER)
        return "; ".join(parts)

    def finalize(self, offer: str) -> None:
        """Take the server's answer: its parameters become this side's settings.

        Unknown parameters are ignored, as wsproto does.
        """
        for name, value in _params(offer):
            if name == _CLIENT_NO_TAKEOVER:
                self.client_no_context_takeover = True
            elif name == _SERVER_NO_TAKEOVER:
                self.server_no_context_takeover = True
            elif name == _CLIENT_BITS and value is not None:
                self.client_max_window_bits = int(value)
            elif name == _SERVER_BITS and value is not None:
                self.server_max_window_bits = int(value)
        self._enabled = True

    def accept(self, offer: str) -> Union[bool, str, None]:
        """Answer a client's offer: no-takeover flags and the offered windows, echoed.

        A window parameter without a value is answered with this side's setting. Returns
        None (declines) when an offered window is outside 9 to 15.
        """
        client_bits: Optional[int] = None
        server_bits: Optional[int] = None
        for name, value in _params(offer):
            if name == _CLIENT_NO_TAKEOVER:
                self.client_no_context_takeover = True
            elif name == _SERVER_NO_TAKEOVER:
                self.server_no_context_takeover = True
            elif name == _CLIENT_BITS:
                client_bits = self.client_max_window_bits if value is None else int(value)
            elif name == _SERVER_BITS:
                server_bits = self.server_max_window_bits if value is None else int(value)
        answer = []
        if self.client_no_context_takeover:
            answer.append(_CLIENT_NO_TAKEOVER)
        if self.server_no_context_takeover:
            answer.append(_SERVER_NO_TAKEOVER)
        try:
            if client_bits is not None:
                answer.append(f"{_CLIENT_BITS}={client_bits}")
                self.client_max_window_bits = client_bits
            if server_bits is not None:
                answer.append(f"{_SERVER_BITS}={server_bits}")
                self.server_max_window_bits = server_bits
        except ValueError:
            return None
        self._enabled = True
        return "; ".join(answer)

    def _session(self, client: bool) -> DeflateSession:
        """turbows's permessage-deflate session for the agreed parameters.

        Our compressor uses our side's window and takeover setting; the decompressor always
        has a 15-bit window, which inflates whatever window the peer's compressor uses (so
        a peer that was never told a smaller one cannot break it).
        """
        if client:
            bits, reset = self.client_max_window_bits, self.client_no_context_takeover
            peer_reset = self.server_no_context_takeover
        else:
            bits, reset = self.server_max_window_bits, self.server_no_context_takeover
            peer_reset = self.client_no_context_takeover
        # wsproto compresses every message at zlib's default level and memory; so do we.
        return DeflateSession(
            compress_bits=bits,
            compress_reset=reset,
            decompress_bits=15,
            decompress_reset=peer_reset,
            level=6,
            mem_level=8,
            threshold=0,
        )

    def __repr__(self) -> str:
        parts = [f"{_CLIENT_BITS}={self.client_max_window_bits}"]
        if self.client_no_context_takeover:
            parts.append(_CLIENT_NO_TAKEOVER)
        parts.append(f"{_SERVER_BITS}={self.server_max_window_bits}")
        if self.server_no_context_takeover:
            parts.append(_SERVER_NO_TAKEOVER)
        return f"<{type(self).__name__} {'; '.join(parts)}>"


#: The extensions this package implements, by name.
SUPPORTED_EXTENSIONS: Dict[str, Type[Extension]] = {PerMessageDeflate.name: PerMessageDeflate}
