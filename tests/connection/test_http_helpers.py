"""The HTTP pieces under the handshake: heads, header lists, extension grammar, keys, URIs."""

from __future__ import annotations

import pytest

from turbows._http import (
    Headers,
    HTTPError,
    find_head_end,
    format_extension,
    parse_extensions,
    parse_request_head,
    parse_response_head,
    split_list,
)
from turbows.events import ConnectionClosed, PingAnswered
from turbows.handshake import accept_key, build_response, parse_uri


def test_accept_key_matches_the_rfc_example():
    # RFC 6455 1.3.
    assert accept_key("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def test_headers_are_ordered_and_case_insensitive():
    headers = Headers([("Set-Cookie", "a"), ("Host", "h"), ("set-cookie", "b")])
    assert headers["SET-COOKIE"] == "a"
    assert headers.get("missing") is None and headers.get("missing", "d") == "d"
    assert headers.get_all("Set-Cookie") == ["a", "b"]
    assert "host" in headers and "nope" not in headers and 3 not in headers
    assert list(headers) == [("Set-Cookie", "a"), ("Host", "h"), ("set-cookie", "b")]
    assert len(headers) == 3
    assert headers == Headers(list(headers)) and headers != Headers()
    assert "Host" in repr(headers)
    with pytest.raises(KeyError):
        headers["nope"]


def test_find_head_end_across_chunks():
    buf = bytearray(b"GET / HTTP/1.1\r\nHost: a\r\n\r")
    assert find_head_end(buf) == -1
    start = len(buf)
    buf += b"\nrest"
    assert find_head_end(buf, start) == len(buf) - 4


def test_request_head_values_are_stripped():
    head = b"GET /a?b HTTP/1.1\r\nX:  v \t\r\nY:\r\n\r\n"
    method, target, version, headers = parse_request_head(head, 10)
    assert (method, target, version) == ("GET", "/a?b", "HTTP/1.1")
    assert list(headers) == [("X", "v"), ("Y", "")]


def test_request_head_over_http_1_0_only_when_allowed():
    head = b"OPTIONS / HTTP/1.0\r\n\r\n"
    with pytest.raises(HTTPError) as info:
        parse_request_head(head, 10)
    assert info.value.status == 505
    assert parse_request_head(head, 10, http_1_0=True)[:3] == ("OPTIONS", "/", "HTTP/1.0")
    # Other major versions stay refused either way.
    with pytest.raises(HTTPError) as info:
        parse_request_head(b"GET / HTTP/2.0\r\n\r\n", 10, http_1_0=True)
    assert info.value.status == 505


def test_request_head_asterisk_form_only_for_options():
    # RFC 9112 3.2.4: "*" is the target of a server-wide OPTIONS, and of no other method.
    head = b"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n"
    assert parse_request_head(head, 10)[:3] == ("OPTIONS", "*", "HTTP/1.1")
    for bad in (
        b"GET * HTTP/1.1\r\n\r\n",
        b"OPTIONS ** HTTP/1.1\r\n\r\n",
        b"OPTIONS *x HTTP/1.1\r\n\r\n",
    ):
        with pytest.raises(HTTPError) as info:
            parse_request_head(bad, 10)
        assert info.value.status == 400


@pytest.mark.parametrize(
    "target, path, host",
    [
        ("http://a.example:8080/chat?x=1", "/chat?x=1", "a.example:8080"),
        ("HTTPS://a.example", "/", "a.example"),
        ("http://a.example?q", "/?q", "a.example"),
    ],
)
def test_request_head_absolute_form_becomes_origin_form(target, path, host):
    # RFC 9112 3.2.2: the target's authority is the host; the Host field is ignored (here
    # sent twice, which would otherwise be refused) and its value replaced where it stood.
    head = f"GET {target} HTTP/1.1\r\nX: 1\r\nHost: other\r\nHost: b\r\nY: 2\r\n\r\n"
    _, got, _, headers = parse_request_head(head.encode(), 10)
    assert got == path
    assert list(headers) == [("X", "1"), ("Host", host), ("Y", "2")]
    # Without any Host field, the authority supplies one.
    _, _, _, headers = parse_request_head(f"GET {target} HTTP/1.1\r\n\r\n".encode(), 10)
    assert list(headers) == [("Host", host)]


@pytest.mark.parametrize(
    "target", ["http://user@a.example/", "http:///x", "ftp://a.example/x", "http://a/x#frag", "a/x"]
)
def test_request_head_bad_absolute_form(target):
    with pytest.raises(HTTPError) as info:
        parse_request_head(f"GET {target} HTTP/1.1\r\nHost: a\r\n\r\n".encode(), 10)
    assert info.value.status == 400


def test_response_head_without_reason_phrase():
    status, phrase, headers = parse_response_head(b"HTTP/1.1 101\r\nA: b\r\n\r\n", 10)
    assert (status, phrase, headers["a"]) == (101, "", "b")


@pytest.mark.parametrize(
    "head",
    [b"HTTP/1.1 1011 X\r\n\r\n", b"HTTP/2.0 101 X\r\n\r\n", b"HTTP/1.1 10a X\r\n\r\n"],
)
def test_bad_status_lines(head):
    with pytest.raises(HTTPError):
        parse_response_head(head, 10)


def test_split_list_skips_empty_elements():
    assert split_list(["a, ,b", " c ,", ""]) == ["a", "b", "c"]


def test_extension_grammar():
    value = 'permessage-deflate; client_max_window_bits; server_max_window_bits="10", , x ; a = b'
    offers = parse_extensions([value, "y"])
    assert offers == [
        (
            "permessage-deflate",
            (("client_max_window_bits", None), ("server_max_window_bits", "10")),
        ),
        ("x", (("a", "b"),)),
        ("y", ()),
    ]
    assert format_extension(offers[0]) == (
        "permessage-deflate; client_max_window_bits; server_max_window_bits=10"
    )
    assert parse_extensions(['x; a="\\1\\2"']) == [("x", (("a", "12"),))]


@pytest.mark.parametrize(
    "value", ["x; a=", 'x; a="unterminated', 'x; a="not token"', "x y", "; a", "x; =b"]
)
def test_bad_extension_headers(value):
    with pytest.raises(HTTPError) as info:
        parse_extensions([value])
    assert info.value.status == 400
    assert "400" in str(info.value)


def test_build_response_keeps_given_framing_headers():
    data = build_response(404, [("Content-Length", "2"), ("Connection", "keep-alive")], b"no")
    assert data.count(b"Content-Length") == 1 and data.count(b"Connection") == 1
    assert b"Content-Type: text/plain" in data
    assert build_response(599, []).startswith(b"HTTP/1.1 599 \r\n")
    with pytest.raises(ValueError):
        build_response(1000, [])


def test_idn_hosts_are_sent_in_ascii():
    assert parse_uri("ws://b\u00fccher.example/").host == "xn--bcher-kva.example"


def test_event_equality_and_repr():
    closed = ConnectionClosed(1000, "bye", True, "peer", 1000, "")
    assert closed == ConnectionClosed(1000, "bye", True, "peer", 1000, "")
    assert closed != ConnectionClosed(1001, "bye", True, "peer", 1000, "")
    assert closed != PingAnswered(b"", None)
    assert repr(closed).startswith("ConnectionClosed(code=1000, reason='bye'")


def test_long_reasons_are_cut_at_a_character_boundary():
    from turbows.connection import _truncate_reason

    assert _truncate_reason("short") == "short"
    cut = _truncate_reason("é" * 100)
    assert cut == "é" * 61 and len(cut.encode()) == 122


def test_chunked_bodies():
    from turbows.connection import _dechunk

    assert _dechunk(b"3\r\nabc\r\n0\r\n\r\n") == (b"abc", True)
    assert _dechunk(b"3\r\nab") == (b"ab", False)
    assert _dechunk(b"3\r\nabc\r\nzz\r\n") == (b"abc", True)  # broken: keep what was decoded
    assert _dechunk(b"3") == (b"", False)
