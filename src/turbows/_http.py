"""The small piece of HTTP/1.1 the opening handshake needs: heads, headers and header lists.

Only what RFC 6455 4 relies on: a request or status line, header fields (RFC 9110 5 and
RFC 9112 5), comma-separated lists, and the ``Sec-WebSocket-Extensions`` grammar
(RFC 6455 9.1). Parsing is strict: anything this module does not understand is an error that
names the HTTP status to answer with.
"""

from __future__ import annotations

import re
from typing import Final, Iterable, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

__all__ = [
    "ExtensionOffer",
    "HTTPError",
    "Headers",
    "HeadersLike",
    "check_header",
    "find_head_end",
    "format_extension",
    "is_token",
    "parse_extensions",
    "parse_request_head",
    "parse_response_head",
    "split_list",
]

#: ``(name, params)`` of one entry of ``Sec-WebSocket-Extensions``; a param value is None
#: when the parameter has no ``=value`` part.
ExtensionOffer = Tuple[str, Tuple[Tuple[str, Optional[str]], ...]]

HeadersLike = Union["Headers", Mapping[str, str], Iterable[Tuple[str, str]]]

# RFC 9110 5.6.2: token = 1*tchar.
_TOKEN: Final = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# RFC 9110 5.5: field values are visible characters, spaces, tabs and obs-text; never CR, LF
# or NUL (the bytes that would let a value smuggle another header in).
_FIELD_VALUE: Final = re.compile(r"[\t\x20-\x7e\x80-\xff]*")
_QUOTED: Final = re.compile(r'"((?:[^"\\]|\\.)*)"')
_HTTP_VERSION: Final = re.compile(r"HTTP/(\d)\.(\d)")
# RFC 9112 3.2.2: the absolute form of a request target, "http://authority/path?query" (RFC
# 6455 4.2.1 allows it for the handshake): the authority, then the path and query, if any.
_ABSOLUTE_FORM: Final = re.compile(r"(?i:https?)://([^/?#@]+)([/?][^#]*)?")


class HTTPError(Exception):
    """A request or response head that cannot be accepted.

    Attributes:
        status: the HTTP status a server answers with (400, 431, ...).
        reason: what was wrong, for the response body and for logs.
    """

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(status, reason)
        self.status = status
        self.reason = reason

    def __str__(self) -> str:
        return f"{self.reason} (HTTP {self.status})"


class Headers:
    """An ordered, case-insensitive view of HTTP header fields.

    Iterating yields ``(name, value)`` pairs in the order received, with names as sent.
    ``headers["Host"]`` and ``headers.get("host")`` give the first value;
    ``get_all`` gives every value of a repeated field.
    """

    __slots__ = ("_items",)

    def __init__(self, items: Iterable[Tuple[str, str]] = ()) -> None:
        self._items: Tuple[Tuple[str, str], ...] = tuple(items)

    def get(self, name: str, default: Optional[str] = None) -> Optional[str]:
        """Return the first value of ``name`` (any case), or ``default``."""
        name = name.lower()
        for key, value in self._items:
            if key.lower() == name:
                return value
        return default

    def get_all(self, name: str) -> List[str]:
        """Return every value of ``name`` (any case), in order."""
        name = name.lower()
        return [value for key, value in self._items if key.lower() == name]

    def __getitem__(self, name: str) -> str:
        value = self.get(name)
        if value is None:
            raise KeyError(name)
        return value

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None

    def __iter__(self) -> Iterator[Tuple[str, str]]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Headers):
            return self._items == other._items
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Headers({list(self._items)!r})"


def as_header_list(headers: HeadersLike) -> List[Tuple[str, str]]:
    """Turn a mapping, a ``Headers`` or pairs into a checked list of ``(name, value)`` pairs.

    Raises:
        ValueError: a name is not a token or a value holds CR, LF, NUL or other controls.
    """
    items: Iterable[Tuple[str, str]]
    if isinstance(headers, Mapping):
        items = headers.items()
    else:
        items = headers
    out = []
    for name, value in items:
        check_header(name, value)
        out.append((name, value))
    return out


def check_header(name: str, value: str) -> None:
    """Refuse a header that would break the head it is written into.

    Raises:
        ValueError: the name is not an RFC 9110 token, or the value holds CR, LF, NUL or
            another control character (header injection).
    """
    if not isinstance(name, str) or not _TOKEN.fullmatch(name):
        raise ValueError(f"invalid header name {name!r}")
    if not isinstance(value, str) or not _FIELD_VALUE.fullmatch(value):
        raise ValueError(f"invalid value for header {name}: {value!r}")


def find_head_end(buf: Union[bytes, bytearray], start: int = 0) -> int:
    """Return the offset just past the blank line that ends a head, or -1 if not there yet."""
    end = buf.find(b"\r\n\r\n", max(0, start - 3))
    return -1 if end < 0 else end + 4


def _parse_fields(lines: Sequence[bytes], max_headers: int) -> Headers:
    if len(lines) > max_headers:
        raise HTTPError(431, f"more than {max_headers} header fields")
    items = []
    for raw in lines:
        # RFC 9112 5.2: obsolete line folding is rejected with 400 by a server.
        if raw[:1] in (b" ", b"\t"):
            raise HTTPError(400, "obsolete line folding in the header section")
        line = raw.decode("latin-1")
        name, sep, value = line.partition(":")
        if not sep or not _TOKEN.fullmatch(name):
            # RFC 9112 5.1: no whitespace is allowed between the field name and the colon.
            raise HTTPError(400, f"invalid header line {line[:64]!r}")
        value = value.strip(" \t")
        if not _FIELD_VALUE.fullmatch(value):
            raise HTTPError(400, f"invalid characters in header {name}")
        items.append((name, value))
    return Headers(items)


def _split_head(head: bytes) -> List[bytes]:
    # The head ends with CRLF CRLF; drop it and split on CRLF. A bare CR or LF left inside a
    # line would let a field hide another one, so it is an error.
    lines = head[:-4].split(b"\r\n")
    for line in lines:
        if b"\r" in line or b"\n" in line or b"\x00" in line:
            raise HTTPError(400, "bare CR, LF or NUL in the head")
    return lines


def _check_version(version: str, http_1_0: bool = False) -> None:
    match = _HTTP_VERSION.fullmatch(version)
    if match is None:
        raise HTTPError(400, f"invalid HTTP version {version[:16]!r}")
    # RFC 6455 4.1: the opening handshake is an HTTP/1.1 (or later 1.x) GET request.
    if match.group(1) != "1" or (match.group(2) == "0" and not http_1_0):
        raise HTTPError(505, f"unsupported HTTP version {version}")


def parse_request_head(
    head: bytes, max_headers: int, *, http_1_0: bool = False
) -> Tuple[str, str, str, Headers]:
    """Parse a request head (request line, fields, blank line).

    Args:
        head: the bytes up to and including the CRLF CRLF that ends the head.
        max_headers: the largest number of header fields accepted.
        http_1_0: accept HTTP/1.0 too (for plain HTTP requests; the caller decides what a
            WebSocket handshake over it gets).

    Returns:
        ``(method, target, version, headers)``; ``version`` as sent, e.g. ``"HTTP/1.1"``. A
        target in absolute form (``http://host/path?query``) comes back in origin form
        (``/path?query``), and its authority replaces the ``Host`` field (RFC 9112 3.2.2:
        the server uses the target's authority and ignores ``Host``).

    Raises:
        HTTPError: the head is malformed (400), has too many fields (431) or is not HTTP/1.1
            or later 1.x, nor HTTP/1.0 when that is allowed (505).
    """
    lines = _split_head(head)
    parts = lines[0].decode("latin-1").split(" ")
    if len(parts) != 3 or not all(parts):
        raise HTTPError(400, f"invalid request line {lines[0][:64]!r}")
    method, target, version = parts
    if not _TOKEN.fullmatch(method):
        raise HTTPError(400, f"invalid method {method[:16]!r}")
    _check_version(version, http_1_0)
    absolute = _ABSOLUTE_FORM.fullmatch(target)
    authority = None
    if absolute is not None:
        authority = absolute.group(1)
        target = absolute.group(2) or "/"
        if target.startswith("?"):
            target = "/" + target
    # The origin form ("/path?query"), or the asterisk form of a server-wide OPTIONS (RFC
    # 9112 3.2.4), which some health checks send.
    if not (target == "*" and method == "OPTIONS") and (
        not target.startswith("/") or not _FIELD_VALUE.fullmatch(target) or "\t" in target
    ):
        raise HTTPError(400, f"invalid request target {target[:64]!r}")
    headers = _parse_fields(lines[1:], max_headers)
    if authority is not None:
        if not _FIELD_VALUE.fullmatch(authority) or "\t" in authority:
            raise HTTPError(400, f"invalid request target {parts[1][:64]!r}")
        items = [(name, value) for name, value in headers if name.lower() != "host"]
        first = next((i for i, (name, _) in enumerate(headers) if name.lower() == "host"), 0)
        items.insert(first, ("Host", authority))
        headers = Headers(items)
    return method, target, version, headers


def parse_response_head(
    head: bytes, max_headers: int, *, http_1_0: bool = False
) -> Tuple[int, str, Headers]:
    """Parse a response head (status line, fields, blank line).

    ``http_1_0`` accepts an HTTP/1.0 status line too (a plain HTTP server's answer).

    Returns:
        ``(status, reason_phrase, headers)``.

    Raises:
        HTTPError: the head is malformed or has too many fields.
    """
    lines = _split_head(head)
    line = lines[0].decode("latin-1")
    version, _, rest = line.partition(" ")
    status, _, phrase = rest.partition(" ")
    _check_version(version, http_1_0)
    if len(status) != 3 or not status.isdigit() or not status.isascii():
        raise HTTPError(400, f"invalid status line {line[:64]!r}")
    return int(status), phrase, _parse_fields(lines[1:], max_headers)


def is_token(value: str) -> bool:
    """Tell whether ``value`` is an RFC 9110 token."""
    return _TOKEN.fullmatch(value) is not None


def split_list(values: Iterable[str]) -> List[str]:
    """Split comma-separated list headers (RFC 9110 5.6.1), skipping empty elements."""
    out = []
    for value in values:
        for item in value.split(","):
            item = item.strip(" \t")
            if item:
                out.append(item)
    return out


def split_tokens(values: Iterable[str], what: str) -> List[str]:
    """Split comma-separated token lists; raise ``HTTPError(400)`` on a non-token."""
    items = split_list(values)
    for item in items:
        if not _TOKEN.fullmatch(item):
            raise HTTPError(400, f"invalid {what} {item[:32]!r}")
    return items


def parse_extensions(values: Iterable[str]) -> List[ExtensionOffer]:
    """Parse ``Sec-WebSocket-Extensions`` values (RFC 6455 9.1).

    ``permessage-deflate; client_max_window_bits, x-foo; a="1"`` gives
    ``[("permessage-deflate", (("client_max_window_bits", None),)), ("x-foo", (("a", "1"),))]``.

    Raises:
        HTTPError: (400) the value does not follow the grammar.
    """
    out: List[ExtensionOffer] = []
    for value in values:
        pos = 0
        end = len(value)
        while True:
            pos = _skip_ows(value, pos)
            if pos < end and value[pos] == ",":  # empty list element
                pos += 1
                continue
            if pos >= end:
                break
            name, pos = _token_at(value, pos, "extension name")
            params = []
            pos = _skip_ows(value, pos)
            while pos < end and value[pos] == ";":
                pos = _skip_ows(value, pos + 1)
                pname, pos = _token_at(value, pos, "extension parameter")
                pos = _skip_ows(value, pos)
                pvalue: Optional[str] = None
                if pos < end and value[pos] == "=":
                    pos = _skip_ows(value, pos + 1)
                    if pos < end and value[pos] == '"':
                        match = _QUOTED.match(value, pos)
                        if match is None:
                            raise HTTPError(400, "unterminated quoted string in extensions")
                        pvalue = re.sub(r"\\(.)", r"\1", match.group(1))
                        # RFC 6455 9.1: a quoted value must still be a token once unquoted.
                        if not _TOKEN.fullmatch(pvalue):
                            raise HTTPError(400, f"invalid extension parameter value {pvalue!r}")
                        pos = match.end()
                    else:
                        pvalue, pos = _token_at(value, pos, "extension parameter value")
                    pos = _skip_ows(value, pos)
                params.append((pname, pvalue))
            out.append((name, tuple(params)))
            if pos >= end:
                break
            if value[pos] != ",":
                raise HTTPError(400, f"unexpected {value[pos]!r} in extensions")
            pos += 1
    return out


def format_extension(offer: ExtensionOffer) -> str:
    """Write one ``(name, params)`` entry back as it appears in the header."""
    name, params = offer
    parts = [name]
    for pname, pvalue in params:
        parts.append(pname if pvalue is None else f"{pname}={pvalue}")
    return "; ".join(parts)


def _skip_ows(value: str, pos: int) -> int:
    end = len(value)
    while pos < end and value[pos] in " \t":
        pos += 1
    return pos


def _token_at(value: str, pos: int, what: str) -> Tuple[str, int]:
    match = _TOKEN.match(value, pos)
    if match is None:
        raise HTTPError(400, f"expected {what} at {value[pos : pos + 16]!r}")
    return match.group(), match.end()
