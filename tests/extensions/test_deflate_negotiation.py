"""permessage-deflate negotiation (RFC 7692 section 7), on both sides.

The server's answer to every offer shape and the client's verdict on every response shape
are checked against a small model of the RFC written here, for every configuration; then
malformed offers and responses, several offers in one header, and the handshake through the
connections.
"""

from __future__ import annotations

import itertools
from typing import Any, Optional

import pytest

from turbows import State
from turbows._http import parse_extensions
from turbows.connection import ClientConnection, ServerConnection
from turbows.events import Accepted, ConnectionClosed
from turbows.extensions import NegotiationError, PerMessageDeflate

from pmd_helpers import (
    frames,
    header_value,
    open_pair,
    request_head,
    request_key,
    response_head,
    server_answer,
    session_view,
)

SNCT = "server_no_context_takeover"
CNCT = "client_no_context_takeover"
SMWB = "server_max_window_bits"
CMWB = "client_max_window_bits"

Params = tuple[tuple[str, Optional[str]], ...]

# Every offer shape: each no-takeover flag present or not, server_max_window_bits absent or
# 8/10/15, client_max_window_bits absent, without a value, or 8/10/15.
_ABSENT = object()
OFFERS: list[Params] = []
for snct, cnct, smwb, cmwb in itertools.product(
    (False, True), (False, True), (_ABSENT, "8", "10", "15"), (_ABSENT, None, "8", "10", "15")
):
    params: list[tuple[str, str | None]] = []
    if snct:
        params.append((SNCT, None))
    if cnct:
        params.append((CNCT, None))
    if smwb is not _ABSENT:
        params.append((SMWB, smwb))  # type: ignore[arg-type]
    if cmwb is not _ABSENT:
        params.append((CMWB, cmwb))  # type: ignore[arg-type]
    OFFERS.append(tuple(params))

SERVER_CONFIGS: dict[str, dict[str, Any]] = {
    "default": {},
    "snct": {"server_no_context_takeover": True},
    "cnct": {"client_no_context_takeover": True},
    "smwb10": {"server_max_window_bits": 10},
    "cmwb9": {"client_max_window_bits": 9},
    "wbits15": {"window_bits": 15},
    "all": {
        "server_no_context_takeover": True,
        "client_no_context_takeover": True,
        "server_max_window_bits": 11,
        "client_max_window_bits": 10,
        "window_bits": 14,
    },
}


def _name(params: Params) -> str:
    return "; ".join(n if v is None else f"{n}={v}" for n, v in params) or "bare"


def expected_server_answer(config: dict[str, Any], offer: Params) -> dict[str, Any]:
    """What RFC 7692 section 7 and the documented policy say the server answers."""
    got = dict(offer)
    window_bits = config.get("window_bits", 12)
    response: list[tuple[str, int | None]] = []
    # 7.1.1.1: a server_no_context_takeover offer must be honoured; the server may add it.
    if SNCT in got or config.get("server_no_context_takeover"):
        response.append((SNCT, None))
    # 7.1.1.2: the server may always ask the client not to take over context.
    if config.get("client_no_context_takeover"):
        response.append((CNCT, None))
    # 7.1.2.1: the same or a smaller value than the offer.
    if SMWB in got:
        response.append((SMWB, min(int(got[SMWB]), config.get("server_max_window_bits") or 15)))
    # 7.1.2.2: only a client that offered the parameter may be given a window, at most its
    # hint; what the server asks for is client_max_window_bits, else its window_bits.
    if CMWB in got:
        hint = 15 if got[CMWB] is None else int(got[CMWB])
        response.append((CMWB, min(config.get("client_max_window_bits") or window_bits, hint)))
    text = "; ".join(["permessage-deflate"] + [n if v is None else f"{n}={v}" for n, v in response])
    answered = dict(response)
    ours = min(answered.get(SMWB) or 15, config.get("server_max_window_bits") or 15, window_bits)
    session = {
        "compress_bits": max(ours, 9),
        "compress_reset": SNCT in answered,
        # zlib inflates an 8-bit window with a 9-bit one.
        "decompress_bits": max(answered.get(CMWB) or 15, 9),
        "decompress_reset": CNCT in answered,
        # zlib cannot compress with an 8-bit window: such a session sends uncompressed.
        "compresses": ours >= 9,
    }
    return {"text": text, "session": session}


@pytest.mark.parametrize("config_name", list(SERVER_CONFIGS))
def test_server_answers_every_offer_shape_as_rfc_7692_says(config_name):
    config = SERVER_CONFIGS[config_name]
    pmd = PerMessageDeflate(**config)
    for offer in OFFERS:
        answer = pmd.negotiate([offer])
        assert answer is not None, f"{config_name}: declined {_name(offer)}"
        text, session = answer
        want = expected_server_answer(config, offer)
        assert text == want["text"], f"{config_name}: {_name(offer)}"
        assert session.params == text
        assert session_view(session) == want["session"], f"{config_name}: {_name(offer)}"


# --------------------------------------------------------------------------------------------
# Client side: every configuration against every response shape.

CLIENT_CONFIGS: dict[str, dict[str, Any]] = {
    "default": {},
    "snct": {"server_no_context_takeover": True},
    "cnct": {"client_no_context_takeover": True},
    "smwb10": {"server_max_window_bits": 10},
    "cmwb-novalue": {"client_max_window_bits": True},
    "cmwb10": {"client_max_window_bits": 10},
    "all": {
        "server_no_context_takeover": True,
        "client_no_context_takeover": True,
        "server_max_window_bits": 11,
        "client_max_window_bits": 10,
        "window_bits": 14,
    },
}

RESPONSES: list[Params] = []
for snct, cnct, smwb, cmwb in itertools.product(
    (False, True), (False, True), (_ABSENT, "9", "10", "11", "15"), (_ABSENT, "9", "10", "15")
):
    params = []
    if snct:
        params.append((SNCT, None))
    if cnct:
        params.append((CNCT, None))
    if smwb is not _ABSENT:
        params.append((SMWB, smwb))  # type: ignore[arg-type]
    if cmwb is not _ABSENT:
        params.append((CMWB, cmwb))  # type: ignore[arg-type]
    RESPONSES.append(tuple(params))


def expected_client_verdict(config: dict[str, Any], response: Params) -> dict[str, Any] | None:
    """The session a client makes of a response, or None when it must fail the connection."""
    got = dict(response)
    offered_smwb = config.get("server_max_window_bits")
    offered_cmwb = config.get("client_max_window_bits")
    # 7.1.1.1: an offered server_no_context_takeover must be in the response.
    if config.get("server_no_context_takeover") and SNCT not in got:
        return None
    # 7.1.2.1: an offered server_max_window_bits must be answered with the same or less; the
    # server may also name one that was not offered.
    if SMWB in got:
        if offered_smwb is not None and int(got[SMWB]) > offered_smwb:
            return None
    elif offered_smwb is not None:
        return None
    # 7.1.2.2: client_max_window_bits only if offered, and at most the offered value.
    if CMWB in got:
        if not offered_cmwb:
            return None
        if offered_cmwb is not True and int(got[CMWB]) > offered_cmwb:
            return None
    own_cap = offered_cmwb if offered_cmwb not in (None, True) else 15
    ours = min(int(got.get(CMWB) or 15), own_cap, config.get("window_bits", 12))
    return {
        "compress_bits": max(ours, 9),
        "compress_reset": CNCT in got or bool(config.get("client_no_context_takeover")),
        "decompress_bits": int(got.get(SMWB) or 15),
        "decompress_reset": SNCT in got,
        "compresses": ours >= 9,
    }


@pytest.mark.parametrize("config_name", list(CLIENT_CONFIGS))
def test_client_accepts_or_refuses_every_response_shape_as_rfc_7692_says(config_name):
    config = CLIENT_CONFIGS[config_name]
    pmd = PerMessageDeflate(**config)
    for response in RESPONSES:
        want = expected_client_verdict(config, response)
        if want is None:
            with pytest.raises(NegotiationError):
                pmd.accept_response(response)
            continue
        session = pmd.accept_response(response)
        assert session_view(session) == want, f"{config_name}: {_name(response)}"


@pytest.mark.parametrize(
    ("config", "offer"),
    [
        ({}, "permessage-deflate"),
        ({"server_no_context_takeover": True}, "permessage-deflate; server_no_context_takeover"),
        ({"client_no_context_takeover": True}, "permessage-deflate; client_no_context_takeover"),
        ({"server_max_window_bits": 10}, "permessage-deflate; server_max_window_bits=10"),
        ({"client_max_window_bits": True}, "permessage-deflate; client_max_window_bits"),
        ({"client_max_window_bits": 9}, "permessage-deflate; client_max_window_bits=9"),
        (
            {
                "server_no_context_takeover": True,
                "client_no_context_takeover": True,
                "server_max_window_bits": 8,
                "client_max_window_bits": 15,
            },
            (
                "permessage-deflate; server_no_context_takeover; client_no_context_takeover;"
                " server_max_window_bits=8; client_max_window_bits=15"
            ),
        ),
    ],
)
def test_client_offer_names_each_configured_parameter(config, offer):
    assert PerMessageDeflate(**config).offer() == offer


def test_every_client_offer_is_accepted_by_every_server_configuration():
    """A turbows client and server agree whatever each side is configured with."""
    for client_config, server_config in itertools.product(
        CLIENT_CONFIGS.values(), SERVER_CONFIGS.values()
    ):
        client = PerMessageDeflate(**client_config)
        [(_, offer)] = parse_extensions([client.offer()])
        answer = PerMessageDeflate(**server_config).negotiate([offer])
        assert answer is not None, (client_config, server_config)
        [(_, response)] = parse_extensions([answer[0]])
        server_side = session_view(answer[1])
        client_side = session_view(client.accept_response(response))
        # Each side's compressor fits the other's decompressor.
        assert client_side["compress_bits"] <= server_side["decompress_bits"]
        assert server_side["compress_bits"] <= client_side["decompress_bits"]
        assert client_side["compress_reset"] or not server_side["decompress_reset"]
        assert server_side["compress_reset"] or not client_side["decompress_reset"]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"server_max_window_bits": 7},
        {"server_max_window_bits": 16},
        {"client_max_window_bits": 7},
        {"client_max_window_bits": 16},
        {"window_bits": 8},
        {"window_bits": 16},
        {"mem_level": 0},
        {"mem_level": 10},
        {"level": 10},
    ],
)
def test_out_of_range_configuration_is_refused(kwargs):
    with pytest.raises(ValueError):
        PerMessageDeflate(**kwargs)


# --------------------------------------------------------------------------------------------
# Malformed offers: declined by the server, failing the handshake on the client.

MALFORMED: dict[str, Params] = {
    "unknown param": (("x_foo", None),),
    "unknown param with value": ((SNCT, None), ("mystery", "1")),
    "duplicate snct": ((SNCT, None), (SNCT, None)),
    "duplicate cnct": ((CNCT, None), (CNCT, None)),
    "duplicate smwb": ((SMWB, "10"), (SMWB, "10")),
    "duplicate cmwb": ((CMWB, "10"), (CMWB, "11")),
    "duplicate with other case": ((SMWB, "10"), ("Server_Max_Window_Bits", "10")),
    "value on snct": ((SNCT, "1"),),
    "value on cnct": ((CNCT, "true"),),
    "smwb missing value": ((SMWB, None),),
}
for bad in ("7", "16", "08", "+9", "a", "", "9a", "0x9", " 9", "\u0669"):
    MALFORMED[f"smwb={bad!r}"] = ((SMWB, bad),)
    MALFORMED[f"cmwb={bad!r}"] = ((CMWB, bad),)


@pytest.mark.parametrize("offer", list(MALFORMED.values()), ids=list(MALFORMED))
@pytest.mark.parametrize("config_name", ["default", "all"])
def test_server_declines_a_malformed_offer(offer, config_name):
    assert PerMessageDeflate(**SERVER_CONFIGS[config_name]).negotiate([offer]) is None


# A response carrying a value that is not a window size, for each parameter that takes one.
MALFORMED_RESPONSES = dict(MALFORMED)
MALFORMED_RESPONSES["cmwb missing value"] = ((CMWB, None),)


@pytest.mark.parametrize(
    "response", list(MALFORMED_RESPONSES.values()), ids=list(MALFORMED_RESPONSES)
)
def test_client_refuses_a_malformed_response(response):
    with pytest.raises(NegotiationError):
        PerMessageDeflate(client_max_window_bits=True).accept_response(response)


def _header_text(params: Params) -> str:
    parts = ["permessage-deflate"]
    for name, value in params:
        parts.append(name if value is None else f"{name}={value}")
    return "; ".join(parts)


# Shapes that pass the HTTP grammar of RFC 6455 9.1 (values are tokens), so they reach the
# extension; an empty or spaced value is refused by the header parser before that (400).
GRAMMATICAL = {
    k: v
    for k, v in MALFORMED.items()
    if all(value is None or (value and value.strip() == value) for _, value in v)
    and "\u0669" not in k
}


@pytest.mark.parametrize("offer", list(GRAMMATICAL.values()), ids=list(GRAMMATICAL))
def test_server_connection_accepts_without_compression_on_a_malformed_offer(codec, offer):
    server, head = server_answer(codec, _header_text(offer), PerMessageDeflate())
    assert head.startswith(b"HTTP/1.1 101 ")
    assert header_value(head, "Sec-WebSocket-Extensions") is None
    assert server.state is State.OPEN and server.extensions == ()


def test_server_connection_rejects_an_empty_parameter_value_as_bad_http(codec):
    """``server_max_window_bits=`` breaks the header grammar: 400, not a declined offer."""
    server = ServerConnection(_codec=codec, extensions=[PerMessageDeflate()])
    server.receive_data(
        request_head("Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=")
    )
    assert server.data_to_send().startswith(b"HTTP/1.1 400 ")
    assert isinstance(server.events()[-1], ConnectionClosed)


@pytest.mark.parametrize(
    "response",
    list(GRAMMATICAL.values()) + [((CMWB, None),)],
    ids=list(GRAMMATICAL) + ["cmwb missing value"],
)
def test_client_connection_fails_the_handshake_on_a_malformed_response(codec, response):
    client = ClientConnection(
        "ws://server.example.com/",
        extensions=[PerMessageDeflate(client_max_window_bits=True)],
        _codec=codec,
    )
    key = request_key(client.data_to_send())
    client.receive_data(response_head(key, f"Sec-WebSocket-Extensions: {_header_text(response)}"))
    [closed] = client.events()
    assert isinstance(closed, ConnectionClosed)
    assert closed.code == 1006 and not closed.clean
    assert "permessage-deflate" in closed.reason
    assert client.state is State.CLOSED


@pytest.mark.parametrize(
    ("config", "response", "why"),
    [
        ({"server_no_context_takeover": True}, "permessage-deflate", "server_no_context_takeover"),
        ({"server_max_window_bits": 10}, "permessage-deflate", "server_max_window_bits"),
        (
            {"server_max_window_bits": 10},
            "permessage-deflate; server_max_window_bits=11",
            "above what we offered",
        ),
        ({}, "permessage-deflate; client_max_window_bits=10", "not offered"),
        (
            {"client_max_window_bits": 10},
            "permessage-deflate; client_max_window_bits=11",
            "above what we offered",
        ),
    ],
)
def test_client_connection_fails_when_the_answer_ignores_the_offer(codec, config, response, why):
    client = ClientConnection(
        "ws://server.example.com/", extensions=[PerMessageDeflate(**config)], _codec=codec
    )
    key = request_key(client.data_to_send())
    client.receive_data(response_head(key, f"Sec-WebSocket-Extensions: {response}"))
    [closed] = client.events()
    assert isinstance(closed, ConnectionClosed) and closed.code == 1006
    assert why in closed.reason


def test_client_connection_fails_on_a_second_permessage_deflate_in_the_answer(codec):
    client = ClientConnection(
        "ws://server.example.com/", extensions=[PerMessageDeflate()], _codec=codec
    )
    key = request_key(client.data_to_send())
    client.receive_data(
        response_head(key, "Sec-WebSocket-Extensions: permessage-deflate, permessage-deflate")
    )
    events = client.events()
    assert isinstance(events[-1], ConnectionClosed) and events[-1].code == 1006
    assert client.state is State.CLOSED


def test_client_connection_fails_on_permessage_deflate_it_did_not_offer(codec):
    client = ClientConnection("ws://server.example.com/", _codec=codec)
    key = request_key(client.data_to_send())
    client.receive_data(response_head(key, "Sec-WebSocket-Extensions: permessage-deflate"))
    [closed] = client.events()
    assert isinstance(closed, ConnectionClosed) and closed.code == 1006


# --------------------------------------------------------------------------------------------
# Several offers in one header: the first acceptable one is chosen.


def test_server_picks_the_first_acceptable_of_several_offers():
    pmd = PerMessageDeflate()
    offers: list[Params] = [
        ((SMWB, "7"),),
        (("x_unknown", None),),
        ((SMWB, "10"), (CNCT, None)),
        ((SNCT, None),),
    ]
    text, _ = pmd.negotiate(offers)  # type: ignore[misc]
    assert text == "permessage-deflate; server_max_window_bits=10"
    assert pmd.negotiate(offers[:2]) is None
    text, _ = pmd.negotiate(offers[3:] + offers[2:3])  # type: ignore[misc]
    assert text == "permessage-deflate; server_no_context_takeover"


def test_server_connection_answers_the_first_acceptable_offer_of_one_header(codec):
    header = (
        "permessage-deflate; server_max_window_bits=16, x-webkit-deflate-frame,"
        " permessage-deflate; client_max_window_bits=9; server_no_context_takeover,"
        " permessage-deflate"
    )
    server, head = server_answer(codec, header, PerMessageDeflate())
    assert header_value(head, "Sec-WebSocket-Extensions") == (
        "permessage-deflate; server_no_context_takeover; client_max_window_bits=9"
    )
    assert server.extensions == (("permessage-deflate", ((SNCT, None), (CMWB, "9"))),)


def test_server_connection_reads_offers_spread_over_several_header_lines(codec):
    server = ServerConnection(_codec=codec, extensions=[PerMessageDeflate()])
    server.receive_data(
        request_head(
            "Sec-WebSocket-Extensions: permessage-deflate; foo",
            "Sec-WebSocket-Extensions: permessage-deflate; client_no_context_takeover",
        )
    )
    server.events()
    server.accept()
    head = server.data_to_send()
    assert header_value(head, "Sec-WebSocket-Extensions") == "permessage-deflate"


def test_server_without_the_extension_ignores_the_offer(codec):
    server = ServerConnection(_codec=codec)
    server.receive_data(request_head("Sec-WebSocket-Extensions: permessage-deflate"))
    server.events()
    server.accept()
    assert header_value(server.data_to_send(), "Sec-WebSocket-Extensions") is None


def test_server_with_the_extension_answers_no_offer_with_nothing(codec):
    server, head = server_answer(codec, None, PerMessageDeflate())
    assert header_value(head, "Sec-WebSocket-Extensions") is None
    assert server.extensions == ()


# --------------------------------------------------------------------------------------------
# The full handshake through ServerConnection and ClientConnection.


@pytest.mark.parametrize("server_name", ["default", "snct", "cnct", "smwb10", "cmwb9", "all"])
@pytest.mark.parametrize(
    "client_name", ["default", "snct", "cnct", "smwb10", "cmwb-novalue", "cmwb10", "all"]
)
def test_full_handshake_agrees_and_messages_flow_both_ways(codec, server_name, client_name):
    server_pmd = PerMessageDeflate(**SERVER_CONFIGS[server_name])
    client_pmd = PerMessageDeflate(**CLIENT_CONFIGS[client_name])
    server, client = open_pair(codec, server_pmd, client_pmd)
    assert server.extensions == client.extensions
    [(name, _)] = server.extensions
    assert name == "permessage-deflate"
    text = '{"event": "tick", "values": [1, 2, 3]} ' * 40
    for _ in range(3):  # context takeover spans messages
        client.send_text(text)
        client.send_binary(text.encode())
        data = client.data_to_send()
        server.receive_data(data)
        assert server.events() == [codec.TextMessage(text), codec.BinaryMessage(text.encode())]
        server.send_text(text)
        client.receive_data(server.data_to_send())
        assert client.events() == [codec.TextMessage(text)]
    # Both of the client's messages went compressed (RSV1), and shrank.
    sent = frames(codec, data, from_client=True)
    assert [b0 & 0x40 for b0, _, _ in sent] == [0x40, 0x40]
    assert all(len(payload) < len(text) // 4 for _, _, payload in sent)


def test_accepted_event_reports_the_negotiated_extension(codec):
    client = ClientConnection(
        "ws://server.example.com/",
        extensions=[PerMessageDeflate(client_max_window_bits=True)],
        _codec=codec,
    )
    request = client.data_to_send()
    assert header_value(request, "Sec-WebSocket-Extensions") == (
        "permessage-deflate; client_max_window_bits"
    )
    client.receive_data(
        response_head(
            request_key(request),
            "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits=10",
        )
    )
    [accepted] = client.events()
    assert isinstance(accepted, Accepted)
    assert list(accepted.extensions) == [("permessage-deflate", ((CMWB, "10"),))]
    assert client.state is State.OPEN
