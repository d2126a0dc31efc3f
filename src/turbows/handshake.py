"""The opening handshake (RFC 6455 4): building and checking requests and responses.

Pure functions over parsed heads; :mod:`turbows.connection` owns the buffering and the states.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from typing import (
    Any,
    Callable,
    Collection,
    Final,
    NamedTuple,
    Optional,
    Sequence,
    Tuple,
    Union,
)
from urllib.parse import unquote, urlsplit

from ._http import (
    ExtensionOffer,
    Headers,
    HeadersLike,
    HTTPError,
    as_header_list,
    check_header,
    is_token,
    parse_extensions,
    split_list,
    split_tokens,
)
from .events import Request
from .exceptions import TurboWSError

__all__ = [
    "GUID",
    "HandshakeRejected",
    "InvalidHandshake",
    "OriginPolicy",
    "WebSocketURI",
    "accept_key",
    "build_request",
    "build_response",
    "check_request",
    "check_response",
    "extension_offer",
    "generate_key",
    "parse_uri",
    "wants_upgrade",
]

#: RFC 6455 1.3: the GUID appended to the key before hashing.
GUID: Final = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#: RFC 6455 4.1: the only protocol version this library speaks.
VERSION: Final = "13"

OriginPolicy = Union[Collection[Optional[str]], Callable[[Optional[str]], bool], None]

_REASONS: Final = {
    101: "Switching Protocols",
    200: "OK",
    204: "No Content",
    301: "Moved Permanently",
    302: "Found",
    307: "Temporary Redirect",
    308: "Permanent Redirect",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    409: "Conflict",
    410: "Gone",
    426: "Upgrade Required",
    429: "Too Many Requests",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    505: "HTTP Version Not Supported",
}


class InvalidHandshake(TurboWSError):
    """The opening handshake failed.

    Attributes:
        reason: what was wrong.
        status: on the server, the HTTP status the rejection is sent with; on the client, the
            status received (or None when the response could not be parsed).
        headers: extra headers for the server's rejection (``Sec-WebSocket-Version: 13``).
    """

    def __init__(
        self,
        reason: str,
        status: Optional[int] = None,
        headers: Sequence[Tuple[str, str]] = (),
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.headers = list(headers)


class HandshakeRejected(InvalidHandshake):
    """The server answered the client with another status than 101."""


class WebSocketURI(NamedTuple):
    """A parsed ``ws://`` or ``wss://`` URI (RFC 6455 3)."""

    secure: bool
    host: str
    port: int
    resource: str
    user_info: Optional[Tuple[str, str]]

    @property
    def host_header(self) -> str:
        """The ``Host`` header value: the host, with the port when it is not the default."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        if self.port == (443 if self.secure else 80):
            return host
        return f"{host}:{self.port}"


def accept_key(key: str) -> str:
    """Compute ``Sec-WebSocket-Accept`` for a ``Sec-WebSocket-Key`` (RFC 6455 4.2.2)."""
    digest = hashlib.sha1((key + GUID).encode("ascii")).digest()
    return base64.b64encode(digest).decode("ascii")


def generate_key() -> str:
    """Return a fresh ``Sec-WebSocket-Key``: 16 random bytes, base64 (RFC 6455 4.1)."""
    return base64.b64encode(os.urandom(16)).decode("ascii")


def parse_uri(uri: str) -> WebSocketURI:
    """Parse a WebSocket URI.

    Raises:
        ValueError: not a ``ws``/``wss`` URI, no host, a bad port, or a fragment
            (RFC 6455 3: fragment identifiers MUST NOT be used).
    """
    parts = urlsplit(uri)
    scheme = parts.scheme.lower()
    if scheme not in ("ws", "wss"):
        raise ValueError(f"{uri!r} is not a ws:// or wss:// URI")
    if parts.fragment or uri.endswith("#"):
        raise ValueError(f"{uri!r} has a fragment; WebSocket URIs cannot have one")
    if not parts.hostname:
        raise ValueError(f"{uri!r} has no host")
    secure = scheme == "wss"
    try:
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"{uri!r} has an invalid port") from exc
    if port is None:
        port = 443 if secure else 80
    resource = parts.path or "/"
    if parts.query:
        resource += "?" + parts.query
    user_info = None
    if parts.username is not None:
        user_info = (unquote(parts.username), unquote(parts.password or ""))
    # urlsplit lower-cases the host; IDNs are sent in their ASCII form.
    host = parts.hostname
    if not host.isascii():
        host = host.encode("idna").decode("ascii")
    return WebSocketURI(secure, host, port, resource, user_info)


def extension_offer(extension: Any) -> str:
    """The ``Sec-WebSocket-Extensions`` text a client offers for one ``extensions`` item.

    An item is either the offer text itself (``"permessage-deflate;
    client_max_window_bits"``), which the server may not accept since nothing here could run
    it, or an extension object such as :class:`turbows.PerMessageDeflate` whose ``offer()``
    gives the text and whose ``accept_response()`` takes the server's answer.
    """
    if isinstance(extension, str):
        text = extension
    else:
        text = extension.offer()
    parse_extensions([text])  # raises on a malformed offer
    return text


def build_request(
    uri: WebSocketURI,
    key: str,
    *,
    origin: Optional[str] = None,
    subprotocols: Sequence[str] = (),
    extensions: Sequence[str] = (),
    extra_headers: HeadersLike = (),
) -> bytes:
    """Build the client's opening handshake (RFC 6455 4.1).

    Raises:
        ValueError: a header, subprotocol or origin would make an invalid request.
    """
    lines = [
        f"GET {uri.resource} HTTP/1.1",
        f"Host: {uri.host_header}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {key}",
        f"Sec-WebSocket-Version: {VERSION}",
    ]
    extra = as_header_list(extra_headers)
    if origin is not None:
        check_header("Origin", origin)
        lines.append(f"Origin: {origin}")
    if subprotocols:
        for subprotocol in subprotocols:
            # RFC 6455 4.1: each subprotocol is a token (so no commas or spaces either).
            if not isinstance(subprotocol, str) or not is_token(subprotocol):
                raise ValueError(f"invalid subprotocol {subprotocol!r}: it must be a token")
        lines.append("Sec-WebSocket-Protocol: " + ", ".join(subprotocols))
    if extensions:
        lines.append("Sec-WebSocket-Extensions: " + ", ".join(extensions))
    if uri.user_info is not None and not any(n.lower() == "authorization" for n, _ in extra):
        user, password = uri.user_info
        token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
        lines.append(f"Authorization: Basic {token}")
    lines.extend(f"{name}: {value}" for name, value in extra)
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def wants_upgrade(headers: Headers) -> bool:
    """Whether a request asks to switch to WebSocket (its ``Upgrade`` header names it)."""
    return _has_token(headers, "Upgrade", "websocket")


def _has_token(headers: Headers, name: str, token: str) -> bool:
    return any(item.lower() == token for item in split_list(headers.get_all(name)))


def _single(headers: Headers, name: str) -> Optional[str]:
    values = headers.get_all(name)
    if len(values) > 1:
        raise InvalidHandshake(f"more than one {name} header", 400)
    return values[0] if values else None


def _origin_allowed(policy: OriginPolicy, origin: Optional[str]) -> bool:
    if policy is None:
        return True
    if callable(policy):
        return bool(policy(origin))
    return origin in policy


def check_request(
    method: str,
    target: str,
    headers: Headers,
    *,
    origins: OriginPolicy = None,
    subprotocols: Sequence[str] = (),
) -> Tuple[Request, str]:
    """Validate a client's opening handshake (RFC 6455 4.2.1).

    Args:
        method, target, headers: the parsed request head.
        origins: None to allow every origin; a collection of allowed ``Origin`` values (put
            None in it to allow requests without one); or a callable that takes the origin (or
            None) and returns whether it is allowed.
        subprotocols: the server's subprotocols in its order of preference.

    Returns:
        The :class:`Request` event and the ``Sec-WebSocket-Accept`` value to answer with.

    Raises:
        InvalidHandshake: with the status to answer with: 400 (malformed), 405 (not GET),
            426 (a plain GET, without ``Upgrade`` and key, with ``Upgrade: websocket``; or another
            protocol version, with ``Sec-WebSocket-Version: 13``), 403 (origin).
    """
    if method != "GET":
        # RFC 6455 4.1: the handshake MUST be a GET request.
        raise InvalidHandshake(f"method {method} is not GET", 405, [("Allow", "GET")])
    try:
        host = _single(headers, "Host")
        if host is None:
            raise InvalidHandshake("missing Host header", 400)
        # RFC 6455 4.2.1: an Upgrade header containing "websocket" (case-insensitive) and a
        # Connection header containing the "Upgrade" token.
        if "Upgrade" not in headers and "Sec-WebSocket-Key" not in headers:
            # Not a broken handshake but a plain GET: a browser (or curl) visiting the URL.
            # RFC 9110 15.5.22: 426 Upgrade Required
            # with the protocol to upgrade to, and a body that a person can read.
            raise InvalidHandshake(
                "this URL is a WebSocket endpoint, and the request did not ask for an upgrade"
                " (no Upgrade: websocket header); open it with a WebSocket client",
                426,
                [("Upgrade", "websocket")],
            )
        if not _has_token(headers, "Upgrade", "websocket"):
            raise InvalidHandshake("missing or invalid Upgrade header: expected websocket", 400)
        if not _has_token(headers, "Connection", "upgrade"):
            raise InvalidHandshake("missing or invalid Connection header: expected Upgrade", 400)
        # The version is checked before the key: a client of another version may use another
        # key format, and deserves the 426 that tells it which version to retry with.
        version = _single(headers, "Sec-WebSocket-Version")
        if version is None:
            raise InvalidHandshake("missing Sec-WebSocket-Version header", 400)
        if version.strip() != VERSION:
            # RFC 6455 4.2.2: answer with the versions this server understands.
            raise InvalidHandshake(
                f"unsupported Sec-WebSocket-Version {version!r}: expected 13",
                426,
                [("Sec-WebSocket-Version", VERSION)],
            )
        key = _single(headers, "Sec-WebSocket-Key")
        if key is None:
            raise InvalidHandshake("missing Sec-WebSocket-Key header", 400)
        key = key.strip()
        try:
            raw = base64.b64decode(key.encode("ascii"), validate=True)
        except (binascii.Error, UnicodeEncodeError):
            raw = b""
        # RFC 6455 4.1: the key is a base64-encoded 16-byte value.
        if len(raw) != 16:
            raise InvalidHandshake(f"invalid Sec-WebSocket-Key {key[:32]!r}", 400)
        offered = tuple(split_tokens(headers.get_all("Sec-WebSocket-Protocol"), "subprotocol"))
        extensions = tuple(parse_extensions(headers.get_all("Sec-WebSocket-Extensions")))
        origin = _single(headers, "Origin")
    except HTTPError as exc:
        raise InvalidHandshake(exc.reason, exc.status) from None
    # RFC 6455 10.2: the Origin header lets a server refuse scripts from other sites.
    if not _origin_allowed(origins, origin):
        raise InvalidHandshake(f"origin {origin!r} is not allowed", 403)
    chosen = next((p for p in subprotocols if p in offered), None)
    request = Request(target, headers, offered, extensions, origin, host, chosen)
    return request, accept_key(key)


def build_response(
    status: int,
    headers: Sequence[Tuple[str, str]] = (),
    body: bytes = b"",
    reason_phrase: Optional[str] = None,
) -> bytes:
    """Build a response head (and body): the 101, or a rejection.

    A rejection always carries ``Content-Length`` (and ``Connection: close``) so that the
    client knows where the body ends.
    """
    if not 100 <= status <= 999:
        raise ValueError(f"invalid HTTP status {status}")
    phrase = _REASONS.get(status, "") if reason_phrase is None else reason_phrase
    lines = [f"HTTP/1.1 {status} {phrase}"]
    names = {name.lower() for name, _ in headers}
    for name, value in headers:
        check_header(name, value)
        lines.append(f"{name}: {value}")
    if status != 101:
        if "content-length" not in names:
            lines.append(f"Content-Length: {len(body)}")
        if "connection" not in names:
            lines.append("Connection: close")
        if body and "content-type" not in names:
            lines.append("Content-Type: text/plain; charset=utf-8")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def check_response(
    status: int,
    headers: Headers,
    key: str,
    *,
    subprotocols: Sequence[str] = (),
    extensions: Sequence[ExtensionOffer] = (),
) -> Tuple[Optional[str], Tuple[ExtensionOffer, ...]]:
    """Check the server's 101 response (RFC 6455 4.1, the client's checks).

    Args:
        status: must be 101 here (other statuses are rejections, handled by the caller).
        key: the ``Sec-WebSocket-Key`` that was sent.
        subprotocols: the subprotocols offered.
        extensions: the extensions offered.

    Returns:
        The selected subprotocol (or None) and the extensions in use.

    Raises:
        InvalidHandshake: the response does not complete the handshake.
    """
    if status != 101:
        raise InvalidHandshake(f"expected status 101, got {status}", status)
    try:
        if not _has_token(headers, "Upgrade", "websocket"):
            raise InvalidHandshake("missing or invalid Upgrade header in the 101 response", 101)
        if not _has_token(headers, "Connection", "upgrade"):
            raise InvalidHandshake("missing or invalid Connection header in the 101 response", 101)
        accept = _single(headers, "Sec-WebSocket-Accept")
        if accept is None:
            raise InvalidHandshake("missing Sec-WebSocket-Accept header", 101)
        if accept.strip() != accept_key(key):
            raise InvalidHandshake(f"wrong Sec-WebSocket-Accept {accept[:40]!r}", 101)
        selected = split_tokens(headers.get_all("Sec-WebSocket-Protocol"), "subprotocol")
        chosen_exts = tuple(parse_extensions(headers.get_all("Sec-WebSocket-Extensions")))
    except HTTPError as exc:
        raise InvalidHandshake(exc.reason, 101) from None
    subprotocol = None
    if selected:
        # RFC 6455 4.1: the server selects one of the offered subprotocols, or none.
        if len(selected) > 1:
            raise InvalidHandshake(f"server selected several subprotocols: {selected}", 101)
        subprotocol = selected[0]
        if subprotocol not in subprotocols:
            raise InvalidHandshake(f"server selected subprotocol {subprotocol!r}, not offered", 101)
    offered_names = {name for name, _ in extensions}
    seen = set()
    for name, _ in chosen_exts:
        # RFC 6455 4.1: an extension not present in the client's handshake fails the connection.
        if name not in offered_names:
            raise InvalidHandshake(f"server accepted extension {name!r}, not offered", 101)
        if name in seen:
            raise InvalidHandshake(f"server accepted extension {name!r} twice", 101)
        seen.add(name)
    return subprotocol, chosen_exts


def rejection(exc: InvalidHandshake) -> bytes:
    """Build the response for a request that failed :func:`check_request`."""
    status = exc.status or 400
    body = f"Failed to open a WebSocket connection: {exc.reason}.\n".encode()
    return build_response(status, exc.headers, body)
