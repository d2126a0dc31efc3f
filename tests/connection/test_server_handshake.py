"""Server side of the opening handshake (RFC 6455 4.2)."""

from __future__ import annotations

import pytest

from turbows import State
from turbows.connection import ServerConnection
from turbows.events import ConnectionClosed, Request
from turbows.exceptions import InvalidStateError

from conn_helpers import RFC_ACCEPT, RFC_KEY, client_frame, request_head, server_with_request


def _status(data: bytes) -> int:
    return int(data.split(b" ", 2)[1])


def _head_lines(data: bytes) -> list:
    return data.split(b"\r\n\r\n", 1)[0].split(b"\r\n")


def _auto_rejected(codec, request: bytes, **kw):
    server = ServerConnection(_codec=codec, **kw)
    server.receive_data(request)
    events = server.events()
    assert len(events) == 1 and isinstance(events[0], ConnectionClosed), events
    assert events[0].code == 1006 and not events[0].clean
    assert server.state is State.CLOSED
    assert server.should_close_transport
    return server.data_to_send()


def test_a_valid_request_becomes_a_request_event_with_its_details(codec):
    server, request = server_with_request(
        codec,
        request_head(
            "Origin: http://example.com",
            "Sec-WebSocket-Protocol: chat, superchat",
            "Sec-WebSocket-Protocol: v3",
            'Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits, x-foo; a="1"',
            "Cookie: a=b",
            path="/chat?room=1",
        ),
    )
    assert request.path == "/chat?room=1"
    assert request.host == "server.example.com"
    assert request.origin == "http://example.com"
    assert request.subprotocols == ("chat", "superchat", "v3")
    assert request.extensions == (
        ("permessage-deflate", (("client_max_window_bits", None),)),
        ("x-foo", (("a", "1"),)),
    )
    assert request.headers["cookie"] == "a=b"
    assert request.headers.get_all("Sec-WebSocket-Protocol") == ["chat, superchat", "v3"]
    assert request.subprotocol is None
    assert server.state is State.CONNECTING
    assert server.data_to_send() == b""


def test_accept_sends_101_with_the_rfc_accept_key(codec):
    server, _ = server_with_request(codec)
    server.accept()
    response = server.data_to_send()
    assert response.startswith(b"HTTP/1.1 101 Switching Protocols\r\n")
    lines = _head_lines(response)
    assert b"Upgrade: websocket" in lines
    assert b"Connection: Upgrade" in lines
    assert f"Sec-WebSocket-Accept: {RFC_ACCEPT}".encode() in lines
    assert not any(line.lower().startswith(b"sec-websocket-protocol") for line in lines)
    assert server.state is State.OPEN
    assert server.subprotocol is None


def test_accept_adds_the_chosen_subprotocol_and_extra_headers(codec):
    server, _ = server_with_request(codec, request_head("Sec-WebSocket-Protocol: a, b"))
    server.accept(subprotocol="b", extra_headers=[("Set-Cookie", "id=1"), ("Set-Cookie", "x=2")])
    lines = _head_lines(server.data_to_send())
    assert b"Sec-WebSocket-Protocol: b" in lines
    assert lines.count(b"Set-Cookie: id=1") == 1 and b"Set-Cookie: x=2" in lines
    assert server.subprotocol == "b"


def test_accept_takes_extra_headers_as_a_mapping(codec):
    server, _ = server_with_request(codec)
    server.accept(extra_headers={"X-Server": "turbows"})
    assert b"X-Server: turbows" in _head_lines(server.data_to_send())


def test_server_subprotocols_option_picks_its_preferred_offered_one(codec):
    server, request = server_with_request(
        codec, request_head("Sec-WebSocket-Protocol: a, b, c"), subprotocols=["c", "b"]
    )
    assert request.subprotocol == "c"
    server.accept()
    assert b"Sec-WebSocket-Protocol: c" in _head_lines(server.data_to_send())
    assert server.subprotocol == "c"


def test_no_common_subprotocol_accepts_without_one(codec):
    server, request = server_with_request(
        codec, request_head("Sec-WebSocket-Protocol: a"), subprotocols=["z"]
    )
    assert request.subprotocol is None
    server.accept()
    assert b"Sec-WebSocket-Protocol" not in server.data_to_send()


def test_accept_refuses_a_subprotocol_the_client_did_not_offer(codec):
    server, _ = server_with_request(codec, request_head("Sec-WebSocket-Protocol: a"))
    with pytest.raises(ValueError, match="did not offer"):
        server.accept(subprotocol="b")
    assert server.state is State.CONNECTING


def test_accept_refuses_header_injection(codec):
    server, _ = server_with_request(codec)
    with pytest.raises(ValueError):
        server.accept(extra_headers=[("X-A", "1\r\nX-Evil: 2")])
    with pytest.raises(ValueError):
        server.accept(extra_headers=[("Bad Name", "1")])


def test_extension_offers_without_a_configured_extension_are_not_answered(codec):
    server, request = server_with_request(
        codec, request_head("Sec-WebSocket-Extensions: permessage-deflate")
    )
    assert request.extensions == (("permessage-deflate", ()),)
    server.accept()
    assert b"Sec-WebSocket-Extensions" not in server.data_to_send()
    assert server.extensions == ()


def test_configured_permessage_deflate_answers_the_offer(codec):
    from turbows import PerMessageDeflate

    server, request = server_with_request(
        codec,
        request_head(
            "Sec-WebSocket-Extensions: x-unknown, permessage-deflate; client_max_window_bits"
        ),
        extensions=[PerMessageDeflate()],
    )
    server.accept()
    assert b"Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits=12\r\n" in (
        server.data_to_send()
    )
    assert server.extensions == (("permessage-deflate", (("client_max_window_bits", "12"),)),)


@pytest.mark.parametrize("status", [401, 403, 404, 503, 302])
def test_reject_sends_any_status_with_headers_and_body(codec, status):
    server, _ = server_with_request(codec)
    server.reject(status, headers=[("WWW-Authenticate", "Basic")], body=b"nope")
    data = server.data_to_send()
    assert _status(data) == status
    lines = _head_lines(data)
    assert b"WWW-Authenticate: Basic" in lines
    assert b"Content-Length: 4" in lines
    assert data.endswith(b"\r\n\r\nnope")
    assert server.state is State.CLOSED
    assert server.should_close_transport
    [closed] = server.events()
    assert isinstance(closed, ConnectionClosed) and closed.code == 1006 and not closed.clean


def test_reject_with_a_text_body_and_own_content_length(codec):
    server, _ = server_with_request(codec)
    server.reject(503, headers={"Retry-After": "5"}, body="busy")
    data = server.data_to_send()
    assert b"Retry-After: 5" in data and data.endswith(b"busy")


@pytest.mark.parametrize("status", [101, 99, 600])
def test_reject_refuses_101_and_invalid_statuses(codec, status):
    server, _ = server_with_request(codec)
    with pytest.raises(ValueError):
        server.reject(status)


def test_accept_and_reject_need_a_pending_request(codec):
    server = ServerConnection(_codec=codec)
    with pytest.raises(InvalidStateError, match="CONNECTING"):
        server.accept()
    with pytest.raises(InvalidStateError, match="CONNECTING"):
        server.reject(403)
    server.receive_data(request_head())
    server.events()
    server.accept()
    with pytest.raises(InvalidStateError, match="OPEN"):
        server.accept()
    with pytest.raises(InvalidStateError, match="OPEN"):
        server.reject(403)


def test_request_split_into_single_bytes(codec):
    server = ServerConnection(_codec=codec)
    for byte in request_head("Origin: http://a"):
        assert server.events() == []
        server.receive_data(bytes([byte]))
    [request] = server.events()
    assert isinstance(request, Request) and request.origin == "http://a"


def test_frames_sent_right_behind_the_request_are_read_after_accept(codec):
    frames = client_frame(codec, 1, "early") + client_frame(codec, 1, "bird")
    server = ServerConnection(_codec=codec)
    server.receive_data(request_head() + frames[:5])
    [_request] = server.events()
    server.receive_data(frames[5:])
    assert server.events() == []
    server.accept()
    assert server.events() == [codec.TextMessage("early"), codec.TextMessage("bird")]


def test_a_flood_before_accept_ends_the_connection(codec):
    server, _ = server_with_request(codec)
    server.receive_data(b"\x00" * 70000)
    [closed] = server.events()
    assert isinstance(closed, ConnectionClosed) and server.state is State.CLOSED
    with pytest.raises(InvalidStateError):
        server.accept()


def test_eof_during_the_handshake(codec):
    server = ServerConnection(_codec=codec)
    server.receive_data(request_head()[:20])
    server.receive_data(b"")
    [closed] = server.events()
    assert isinstance(closed, ConnectionClosed)
    assert closed.code == 1006 and not closed.clean and closed.initiator == "peer"
    assert server.state is State.CLOSED


def test_eof_while_the_application_decides(codec):
    server, _ = server_with_request(codec)
    server.receive_data(b"")
    [closed] = server.events()
    assert isinstance(closed, ConnectionClosed) and server.state is State.CLOSED


@pytest.mark.parametrize(
    "request_bytes",
    [
        pytest.param(request_head(drop=("host",)), id="no-host"),
        pytest.param(request_head("Host: other"), id="two-hosts"),
        pytest.param(request_head(drop=("upgrade",)), id="no-upgrade"),
        pytest.param(request_head("Upgrade: h2c", drop=("upgrade",)), id="upgrade-not-websocket"),
        pytest.param(request_head(drop=("connection",)), id="no-connection"),
        pytest.param(
            request_head("Connection: keep-alive", drop=("connection",)),
            id="connection-without-upgrade",
        ),
        pytest.param(request_head(drop=("sec-websocket-key",)), id="no-key"),
        pytest.param(
            request_head("Sec-WebSocket-Key: c2hvcnQ=", drop=("sec-websocket-key",)), id="short-key"
        ),
        pytest.param(
            request_head(
                "Sec-WebSocket-Key: !!!!notbase64!!!!!!!!!==", drop=("sec-websocket-key",)
            ),
            id="non-base64-key",
        ),
        pytest.param(request_head(f"Sec-WebSocket-Key: {RFC_KEY}"), id="two-keys"),
        pytest.param(request_head(drop=("sec-websocket-version",)), id="no-version"),
        pytest.param(request_head(" folded"), id="obs-fold"),
        pytest.param(request_head("No colon here"), id="line-without-colon"),
        pytest.param(request_head("Bad Name: x"), id="space-in-name"),
        pytest.param(request_head("X: a\x00b"), id="nul-in-value"),
        pytest.param(request_head("X: a\rb"), id="bare-cr"),
        pytest.param(request_head("Content-Length: 3"), id="body"),
        pytest.param(request_head("Transfer-Encoding: chunked"), id="chunked-body"),
        pytest.param(request_head("Sec-WebSocket-Protocol: a b"), id="subprotocol-not-token"),
        pytest.param(request_head("Sec-WebSocket-Extensions: ;x"), id="bad-extensions"),
        pytest.param(b"GET /chat\r\nHost: a\r\n\r\n", id="short-request-line"),
        pytest.param(b"GET  /chat HTTP/1.1\r\n\r\n", id="double-space"),
        pytest.param(request_head(path="chat"), id="target-not-origin-form"),
        pytest.param(request_head(version="HTTQ/1.1"), id="bad-version"),
        pytest.param(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n", id="tls-hello"),
    ],
)
def test_malformed_requests_get_400(codec, request_bytes):
    response = _auto_rejected(codec, request_bytes)
    assert _status(response) == 400
    assert b"Content-Length: " in response and b"Connection: close" in response


def test_upgrade_and_connection_tokens_are_case_insensitive_and_listed(codec):
    server, _ = server_with_request(
        codec,
        request_head(
            "Upgrade: WebSocket",
            "Connection: keep-alive, UPGRADE",
            drop=("upgrade", "connection"),
        ),
    )
    server.accept()
    assert server.state is State.OPEN


def test_other_methods_get_405(codec):
    response = _auto_rejected(codec, request_head(method="POST"))
    assert _status(response) == 405
    assert b"Allow: GET" in _head_lines(response)


def test_http_1_0_gets_505(codec):
    assert _status(_auto_rejected(codec, request_head(version="HTTP/1.0"))) == 505


@pytest.mark.parametrize("version", ["8", "12", "14", "13, 8"])
def test_other_protocol_versions_get_426_with_version_13(codec, version):
    response = _auto_rejected(
        codec, request_head(f"Sec-WebSocket-Version: {version}", drop=("sec-websocket-version",))
    )
    assert _status(response) == 426
    assert b"Sec-WebSocket-Version: 13" in _head_lines(response)


def test_origin_allow_list(codec):
    allowed = ["https://good.example"]
    _server, request = server_with_request(
        codec, request_head("Origin: https://good.example"), origins=allowed
    )
    assert request.origin == "https://good.example"
    assert (
        _status(
            _auto_rejected(codec, request_head("Origin: https://evil.example"), origins=allowed)
        )
        == 403
    )
    # A missing Origin is refused unless None is in the list.
    assert _status(_auto_rejected(codec, request_head(), origins=allowed)) == 403
    server_with_request(codec, request_head(), origins=allowed + [None])


def test_origin_callable(codec):
    seen = []

    def policy(origin):
        seen.append(origin)
        return origin is not None and origin.endswith(".good.example")

    server_with_request(codec, request_head("Origin: https://a.good.example"), origins=policy)
    assert (
        _status(_auto_rejected(codec, request_head("Origin: https://bad.example"), origins=policy))
        == 403
    )
    assert seen == ["https://a.good.example", "https://bad.example"]


def test_two_origin_headers_get_400(codec):
    response = _auto_rejected(codec, request_head("Origin: http://a", "Origin: http://b"))
    assert _status(response) == 400


def test_request_head_over_the_size_limit_gets_431(codec):
    big = request_head("X-Big: " + "a" * 5000)
    assert _status(_auto_rejected(codec, big, max_header_size=4096)) == 431
    server_with_request(codec, big, max_header_size=8192)


def test_unfinished_head_over_the_size_limit_gets_431_before_it_ends(codec):
    server = ServerConnection(_codec=codec, max_header_size=1024)
    server.receive_data(b"GET / HTTP/1.1\r\nX: " + b"a" * 600)
    assert server.events() == []
    server.receive_data(b"a" * 600)
    [closed] = server.events()
    assert isinstance(closed, ConnectionClosed)
    assert _status(server.data_to_send()) == 431


def test_too_many_headers_get_431(codec):
    lines = [f"X-H{i}: v" for i in range(20)]
    assert _status(_auto_rejected(codec, request_head(*lines), max_headers=20)) == 431
    server_with_request(codec, request_head(*lines), max_headers=25)


def test_sending_before_accept_names_the_state(codec):
    server, _ = server_with_request(codec)
    for call in (
        lambda: server.send_text("x"),
        lambda: server.send_binary(b"x"),
        lambda: server.send_fragment("x"),
        lambda: server.ping(),
        lambda: server.pong(),
        lambda: server.close(),
    ):
        with pytest.raises(InvalidStateError, match="CONNECTING"):
            call()


def test_no_deadline_before_the_connection_opens(codec):
    server, _ = server_with_request(codec)
    assert server.next_deadline() is None
    server.handle_timer(100.0)
    assert server.data_to_send() == b""


def test_invalid_value_characters_and_methods_get_400(codec):
    assert _status(_auto_rejected(codec, request_head("X: a\x01b"))) == 400
    assert _status(_auto_rejected(codec, request_head(method="G(T"))) == 400


@pytest.mark.parametrize(
    "kw", [{"max_header_size": 10}, {"max_headers": 0}, {"subprotocols": "chat"}]
)
def test_invalid_server_options(codec, kw):
    with pytest.raises((ValueError, TypeError)):
        ServerConnection(_codec=codec, **kw)


# --------------------------------------------------------------------------------------------
# Plain HTTP requests (http_requests=True): health checks and browsers visiting the URL.

PLAIN_GET = b"GET /health?full=1 HTTP/1.1\r\nHost: server.example.com\r\nAccept: */*\r\n\r\n"


def test_plain_get_is_answered_426_with_a_readable_body_unless_asked_for(codec):
    # A browser visiting the WebSocket URL: 426 Upgrade Required names the protocol
    # (RFC 9110 15.5.22) and the body tells a person what the URL is for.
    response = _auto_rejected(codec, PLAIN_GET)
    assert _status(response) == 426
    assert b"\r\nUpgrade: websocket\r\n" in response
    assert b"WebSocket endpoint" in response.split(b"\r\n\r\n", 1)[1]


def test_plain_get_reaches_the_application_when_asked_for(codec):
    server, request = server_with_request(codec, PLAIN_GET, http_requests=True)
    assert request.upgrade is False and request.method == "GET"
    assert request.path == "/health?full=1"
    assert request.host == "server.example.com"
    assert request.headers["Accept"] == "*/*"
    assert request.subprotocols == () and request.extensions == ()
    with pytest.raises(InvalidStateError, match="plain HTTP"):
        server.accept()
    assert server.state is State.CONNECTING  # still waiting for its answer
    server.reject(200, [("Content-Type", "text/plain")], "ok\n")
    response = server.data_to_send()
    assert _status(response) == 200
    assert b"Content-Type: text/plain" in _head_lines(response)
    assert response.endswith(b"\r\n\r\nok\n")
    [closed] = server.events()
    assert isinstance(closed, ConnectionClosed) and server.should_close_transport


def test_upgrade_requests_are_unchanged_when_plain_ones_are_asked_for(codec):
    server, request = server_with_request(codec, request_head(), http_requests=True)
    assert request.upgrade is True and request.method == "GET"
    server.accept()
    assert _status(server.data_to_send()) == 101 and server.state is State.OPEN
    # A broken upgrade request is still answered by the connection itself.
    broken = request_head(drop=("sec-websocket-key",))
    assert _status(_auto_rejected(codec, broken, http_requests=True)) == 400


@pytest.mark.parametrize(
    "request_bytes, status",
    [
        (b"POST /health HTTP/1.1\r\nHost: a\r\n\r\n", 405),
        (b"GET /health HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nhi", 400),
        (b"OPTIONS / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
        (b"GET /health HTTP/2.0\r\nHost: a\r\n\r\n", 505),
    ],
)
def test_plain_requests_the_connection_cannot_take_are_still_refused(codec, request_bytes, status):
    assert _status(_auto_rejected(codec, request_bytes, http_requests=True)) == status


@pytest.mark.parametrize("method", ["GET", "HEAD", "OPTIONS"])
def test_plain_requests_over_http_1_0_reach_the_application(codec, method):
    # As load balancers send them: HAProxy's default check is "OPTIONS / HTTP/1.0", no Host.
    head = f"{method} /health HTTP/1.0\r\nUser-Agent: check\r\n\r\n".encode()
    server, request = server_with_request(codec, head, http_requests=True)
    assert request.upgrade is False and request.method == method
    assert request.path == "/health" and request.host == ""
    server.reject(200, [("Content-Type", "text/plain")], "ok\n")
    response = server.data_to_send()
    # The server answers with its own version (RFC 9110 6.2) and closes, as HTTP/1.0 expects.
    assert response.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"Connection: close" in _head_lines(response)
    assert b"Content-Length: 3" in _head_lines(response)
    assert response.endswith(b"\r\n\r\n" if method == "HEAD" else b"\r\n\r\nok\n")
    [closed] = server.events()
    assert isinstance(closed, ConnectionClosed) and server.should_close_transport


def test_plain_options_reaches_the_application_with_its_body_answered(codec):
    head = PLAIN_GET.replace(b"GET ", b"OPTIONS ", 1)
    server, request = server_with_request(codec, head, http_requests=True)
    assert request.upgrade is False and request.method == "OPTIONS"
    assert request.host == "server.example.com"
    server.reject(200, [("Allow", "GET, HEAD, OPTIONS")], "ok\n")
    response = server.data_to_send()
    assert _status(response) == 200
    assert b"Allow: GET, HEAD, OPTIONS" in _head_lines(response)
    assert response.endswith(b"\r\n\r\nok\n")  # unlike HEAD, the body is sent


def test_handshake_with_an_absolute_target(codec):
    # RFC 6455 4.2.1: the Request-URI may be an absolute HTTP URI holding the resource name.
    head = request_head(path="http://ws.example.com/chat?room=1")
    server, request = server_with_request(codec, head)
    assert request.path == "/chat?room=1" and request.host == "ws.example.com"
    server.accept()
    assert _status(server.data_to_send()) == 101 and server.state is State.OPEN


def test_server_wide_options_reaches_the_application(codec):
    # "OPTIONS * HTTP/1.0": the asterisk form (RFC 9112 3.2.4), as some health checks send.
    server, request = server_with_request(codec, b"OPTIONS * HTTP/1.0\r\n\r\n", http_requests=True)
    assert request.upgrade is False and request.method == "OPTIONS" and request.path == "*"
    server.reject(200, [("Allow", "GET, HEAD, OPTIONS")], "")
    assert _status(server.data_to_send()) == 200


def test_server_wide_options_without_plain_requests_is_not_a_handshake(codec):
    head = b"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n"
    assert _status(_auto_rejected(codec, head)) == 405
    assert _status(_auto_rejected(codec, head.replace(b"OPTIONS", b"GET"))) == 400


@pytest.mark.parametrize("method", ["HEAD", "OPTIONS"])
def test_only_a_get_with_upgrade_is_a_handshake_when_plain_requests_are_asked_for(codec, method):
    # A HEAD or OPTIONS asking for websocket cannot open one (RFC 6455 4.1: a GET); its
    # Upgrade header is ignored (RFC 9110 7.8) and it is answered as plain HTTP.
    server, request = server_with_request(codec, request_head(method=method), http_requests=True)
    assert request.upgrade is False and request.method == method
    assert request.headers["Upgrade"] == "websocket"
    with pytest.raises(InvalidStateError, match="plain HTTP"):
        server.accept()
    # Without http_requests they are failed handshakes, as before.
    response = _auto_rejected(codec, request_head(method=method))
    assert _status(response) == 405 and b"Allow: GET" in _head_lines(response)


@pytest.mark.parametrize("version", ["HTTP/1.1", "HTTP/1.0"])
@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH"])
def test_other_methods_get_405_naming_the_plain_methods(codec, method, version):
    head = f"{method} /health {version}\r\nHost: a\r\n\r\n".encode()
    response = _auto_rejected(codec, head, http_requests=True)
    assert _status(response) == 405
    assert b"Allow: GET, HEAD, OPTIONS" in _head_lines(response)


def test_a_websocket_handshake_over_http_1_0_is_still_refused_with_505(codec):
    # RFC 6455 4.1: the opening handshake is HTTP/1.1 or later, plain requests or not.
    response = _auto_rejected(codec, request_head(version="HTTP/1.0"), http_requests=True)
    assert _status(response) == 505
    assert b"Connection: close" in _head_lines(response)


@pytest.mark.parametrize(
    "request_bytes, status",
    [
        (b"OPTIONS / HTTP/1.1\r\nHost: a\r\n\r\n", 405),
        (b"OPTIONS / HTTP/1.0\r\n\r\n", 505),
        (b"GET /health HTTP/1.0\r\nHost: a\r\n\r\n", 505),
        (b"HEAD /health HTTP/1.0\r\nHost: a\r\n\r\n", 505),
        (b"POST /health HTTP/1.0\r\nHost: a\r\n\r\n", 505),
    ],
)
def test_without_http_requests_options_and_http_1_0_are_refused_as_before(
    codec, request_bytes, status
):
    response = _auto_rejected(codec, request_bytes)
    assert _status(response) == status
    if status == 405:
        assert b"Allow: GET" in _head_lines(response)


def test_plain_head_is_answered_without_its_body(codec):
    head = PLAIN_GET.replace(b"GET ", b"HEAD ", 1)
    server, request = server_with_request(codec, head, http_requests=True)
    assert request.upgrade is False and request.method == "HEAD"
    server.reject(200, [("Content-Type", "text/plain")], "ok\n")
    response = server.data_to_send()
    assert _status(response) == 200
    assert b"Content-Length: 3" in _head_lines(response)  # the length a GET would get
    assert response.endswith(b"\r\n\r\n")  # and no body
    # Without http_requests, HEAD is refused as before: the handshake must be a GET.
    assert _status(_auto_rejected(codec, head)) == 405
