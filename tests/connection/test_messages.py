"""Data messages both ways, fragments, limits, protocol errors and state checks."""

from __future__ import annotations

import pytest

from turbows import State
from turbows.events import ConnectionClosed
from turbows.exceptions import InvalidStateError

from conn_helpers import client_frame, exchange, open_client, open_pair, open_server, parse_frames


def test_text_and_binary_messages_both_ways(codec):
    server, client = open_pair(codec)
    client.send_text("héllo")
    client.send_binary(b"\x00\x01")
    server.receive_data(client.data_to_send())
    assert server.events() == [codec.TextMessage("héllo"), codec.BinaryMessage(b"\x00\x01")]
    server.send_text("back")
    server.send_binary(bytearray(b"\xff"))
    client.receive_data(server.data_to_send())
    assert client.events() == [codec.TextMessage("back"), codec.BinaryMessage(b"\xff")]


def test_client_frames_are_masked_and_server_frames_are_not(codec):
    server, client = open_pair(codec)
    client.send_text("x")
    server.send_text("y")
    assert client.data_to_send()[1] & 0x80
    assert not server.data_to_send()[1] & 0x80


def test_many_messages_in_one_chunk_and_split_anywhere(codec):
    server = open_server(codec)
    stream = b"".join(client_frame(codec, 1, f"m{i}") for i in range(300))
    for size in (1, 7, 64, 1000):
        got = []
        for pos in range(0, len(stream), size):
            server.receive_data(stream[pos : pos + size])
            got += server.events()
        assert got == [codec.TextMessage(f"m{i}") for i in range(300)]


def test_events_returns_and_clears(codec):
    server = open_server(codec)
    server.receive_data(client_frame(codec, 2, b"a"))
    assert server.events() == [codec.BinaryMessage(b"a")]
    assert server.events() == []


def test_fragmented_messages_are_assembled_by_default(codec):
    server = open_server(codec)
    server.receive_data(
        client_frame(codec, 1, "ab", fin=False) + client_frame(codec, 0, "cd", fin=False)
    )
    assert server.events() == []
    server.receive_data(client_frame(codec, 0, "e"))
    assert server.events() == [codec.TextMessage("abcde")]


def test_fragments_option_delivers_each_frame_with_utf8_checked_across_them(codec):
    server = open_server(codec, fragments=True)
    euro = "€".encode()
    server.receive_data(
        client_frame(codec, 1, euro[:1], fin=False) + client_frame(codec, 0, euro[1:] + b"!")
    )
    events = server.events()
    assert [e.final for e in events] == [False, True]
    assert "".join(e.data for e in events) == "€!"


def test_fragments_option_fails_invalid_utf8_mid_message(codec):
    server = open_server(codec, fragments=True)
    server.receive_data(
        client_frame(codec, 1, b"ok", fin=False) + client_frame(codec, 0, b"\xff", fin=False)
    )
    events = server.events()
    assert events == [codec.TextMessage("ok", False)]
    assert parse_frames(codec, server.data_to_send(), from_client=False)[0].code == 1007


def test_text_as_bytes_delivers_validated_utf8_bytes(codec):
    server = open_server(codec, text_as_bytes=True)
    server.receive_data(client_frame(codec, 1, "é"))
    assert server.events() == [codec.TextMessage("é".encode())]


def test_send_fragment_streams_a_text_message(codec):
    server, client = open_pair(codec)
    client.send_fragment("ab")
    client.ping(b"between")  # control frames may come between fragments
    client.send_fragment("cd")
    client.send_fragment("", final=True)
    server.receive_data(client.data_to_send())
    assert server.events() == [codec.Ping(b"between"), codec.TextMessage("abcd")]


def test_send_fragment_streams_a_binary_message(codec):
    server, client = open_pair(codec)
    client.send_fragment(b"ab")
    client.send_fragment(memoryview(b"cd"), final=True)
    client.send_fragment(b"one", final=True)
    server.receive_data(client.data_to_send())
    assert server.events() == [codec.BinaryMessage(b"abcd"), codec.BinaryMessage(b"one")]


def test_send_fragment_refuses_a_change_of_kind(codec):
    server = open_server(codec)
    server.send_fragment("text")
    with pytest.raises(TypeError, match="str"):
        server.send_fragment(b"bytes")
    server.send_fragment("more", final=True)


def test_whole_messages_wait_for_the_fragmented_one(codec):
    server = open_server(codec)
    server.send_fragment(b"part")
    with pytest.raises(InvalidStateError, match="fragmented"):
        server.send_text("x")
    with pytest.raises(InvalidStateError, match="fragmented"):
        server.send_binary(b"x")
    server.send_fragment(b"end", final=True)
    server.send_text("x")


def test_max_message_size_is_answered_with_1009(codec):
    server = open_server(codec, max_message_size=10)
    server.receive_data(client_frame(codec, 2, b"x" * 10))
    assert server.events() == [codec.BinaryMessage(b"x" * 10)]
    server.receive_data(client_frame(codec, 2, b"x" * 11))
    assert server.events() == []
    [close] = parse_frames(codec, server.data_to_send(), from_client=False)
    assert close.code == 1009
    assert server.state is State.CLOSING and server.should_close_transport


def test_max_message_size_counts_fragments_together(codec):
    server = open_server(codec, max_message_size=10)
    server.receive_data(
        client_frame(codec, 2, b"x" * 6, fin=False) + client_frame(codec, 0, b"x" * 6)
    )
    [close] = parse_frames(codec, server.data_to_send(), from_client=False)
    assert close.code == 1009


def test_no_message_size_limit(codec):
    server = open_server(codec, max_message_size=None)
    server.receive_data(client_frame(codec, 2, b"x" * 3_000_000))
    [message] = server.events()
    assert len(message.data) == 3_000_000


@pytest.mark.parametrize(
    "frame, code",
    [
        pytest.param(lambda c: c.build_frame(1, "unmasked"), 1002, id="unmasked-client-frame"),
        pytest.param(lambda c: client_frame(c, 1, b"\xc3\x28"), 1007, id="invalid-utf8"),
        pytest.param(lambda c: client_frame(c, 0, b"x"), 1002, id="orphan-continuation"),
        pytest.param(lambda c: bytes([0x83, 0x80]) + b"abcd", 1002, id="reserved-opcode"),
        pytest.param(lambda c: bytes([0xC1, 0x80]) + b"abcd", 1002, id="rsv1-without-extension"),
        pytest.param(
            lambda c: client_frame(c, 8, b"\x03\xed"), 1002, id="close-code-1005-on-the-wire"
        ),
        pytest.param(lambda c: client_frame(c, 8, b"\x03\xee"), 1002, id="close-code-1006"),
        pytest.param(lambda c: client_frame(c, 8, b"\x03\xec"), 1002, id="close-code-1004"),
        pytest.param(lambda c: client_frame(c, 8, b"\x05\xdf"), 1002, id="close-code-1503"),
        pytest.param(lambda c: client_frame(c, 8, b"\x13\x88"), 1002, id="close-code-5000"),
        pytest.param(lambda c: client_frame(c, 8, b"\x03\xe7"), 1002, id="close-code-999"),
        pytest.param(lambda c: client_frame(c, 8, b"\x03"), 1002, id="one-byte-close"),
        pytest.param(
            lambda c: client_frame(c, 8, b"\x03\xe8\xff"), 1007, id="close-reason-not-utf8"
        ),
    ],
)
def test_protocol_errors_close_with_their_code_after_earlier_messages(codec, frame, code):
    server = open_server(codec)
    server.receive_data(
        client_frame(codec, 1, "before") + client_frame(codec, 9, b"p") + frame(codec)
    )
    assert server.events() == [codec.TextMessage("before"), codec.Ping(b"p")]
    pong, close = parse_frames(codec, server.data_to_send(), from_client=False)
    assert pong == codec.Pong(b"p")
    assert close.code == code and close.reason
    assert server.state is State.CLOSING and server.should_close_transport
    # Nothing more is read, and sending is refused.
    server.receive_data(client_frame(codec, 1, "after"))
    assert server.events() == []
    with pytest.raises(InvalidStateError, match="CLOSING"):
        server.send_text("x")
    server.receive_data(b"")
    [closed] = server.events()
    assert isinstance(closed, ConnectionClosed)
    assert closed.code == 1006 and not closed.clean and closed.initiator == "local"
    assert closed.sent_code == code
    assert server.state is State.CLOSED


def _message_then_violation(codec):
    server = open_server(codec)
    server.receive_data(client_frame(codec, 1, "hello") + bytes([0xC1, 0x80]) + b"abcd")
    assert server.events() == [codec.TextMessage("hello")]
    return server


def test_answers_to_messages_before_a_protocol_error_go_out_before_the_close(codec):
    # The Autobahn suite's strict verdict (cases 3.2, 4.1.3, 5.15, ...): the failure waits
    # until the I/O layer takes the data to send, after the application's answers.
    server = _message_then_violation(codec)
    assert server.failure_pending and server.state is State.OPEN
    assert not server.should_close_transport
    server.send_text("hello")  # the echo
    echo, close = parse_frames(codec, server.data_to_send(), from_client=False)
    assert echo == codec.TextMessage("hello")
    assert close.code == 1002
    assert not server.failure_pending
    assert server.state is State.CLOSING and server.should_close_transport
    with pytest.raises(InvalidStateError, match="CLOSING"):
        server.send_text("too late")


def test_a_pending_failure_acts_at_close_timer_and_eof(codec):
    # close(): the peer's protocol error wins, its code is the one sent.
    server = _message_then_violation(codec)
    server.close(1000, "bye")
    [close] = parse_frames(codec, server.data_to_send(), from_client=False)
    assert close.code == 1002 and server.should_close_transport
    # A timer.
    server = _message_then_violation(codec)
    server.handle_timer(1.0)
    assert server.state is State.CLOSING and not server.failure_pending
    # The peer closing TCP: the close frame is sent first (for form's sake), then CLOSED.
    server = _message_then_violation(codec)
    server.receive_data(b"")
    [closed] = server.events()
    assert closed.code == 1006 and closed.sent_code == 1002
    # More data: discarded, the failure still waits for the answers.
    server = _message_then_violation(codec)
    server.receive_data(client_frame(codec, 1, "after"))
    assert server.events() == [] and server.failure_pending


def test_a_protocol_error_alone_fails_at_once(codec):
    server = open_server(codec)
    server.receive_data(bytes([0xC1, 0x80]) + b"abcd")
    assert not server.failure_pending
    assert server.state is State.CLOSING and server.should_close_transport


def test_protocol_error_on_the_client_side(codec):
    client = open_client(codec)
    client.receive_data(client_frame(codec, 1, "masked"))  # a server must not mask
    [close] = parse_frames(codec, client.data_to_send(), from_client=True)
    assert close.code == 1002
    assert client.should_close_transport


def test_protocol_error_after_our_close_sends_no_second_close(codec):
    server = open_server(codec)
    server.close(now=0.0)
    server.data_to_send()
    server.receive_data(client_frame(codec, 1, b"\xff"))
    assert server.data_to_send() == b""
    assert server.should_close_transport


def test_protocol_error_reason_fits_a_close_frame(codec):
    server = open_server(codec, max_message_size=1)
    server.receive_data(client_frame(codec, 2, b"x" * 100))
    [close] = parse_frames(codec, server.data_to_send(), from_client=False)
    assert len(close.reason.encode()) <= 123


def test_sending_after_close_names_the_state(codec):
    server, client = open_pair(codec)
    client.close()
    for call in (
        lambda: client.send_text("x"),
        lambda: client.send_binary(b"x"),
        lambda: client.send_fragment(b"x"),
        lambda: client.ping(),
        lambda: client.pong(),
        lambda: client.close(),
    ):
        with pytest.raises(InvalidStateError, match="CLOSING"):
            call()
    exchange(client, server)
    client.receive_data(b"")
    assert client.state is State.CLOSED
    with pytest.raises(InvalidStateError, match="CLOSED"):
        client.send_text("x")


def test_receive_data_after_closed_is_ignored(codec):
    server = open_server(codec)
    server.receive_data(b"")
    server.events()
    server.receive_data(client_frame(codec, 1, "late"))
    server.receive_data(b"")
    assert server.events() == []


def test_data_received_while_closing_is_still_delivered(codec):
    server = open_server(codec)
    server.close()
    server.receive_data(client_frame(codec, 1, "in flight"))
    assert server.events() == [codec.TextMessage("in flight")]


def test_send_text_takes_bytes_already_encoded_as_utf8(codec):
    # For JSON encoders that produce bytes; the caller vouches for the encoding.
    server, client = open_pair(codec)
    client.send_text('{"a": "é"}'.encode())
    server.receive_data(client.data_to_send())
    assert server.events() == [codec.TextMessage('{"a": "é"}')]


@pytest.mark.parametrize("wrap", [bytearray, memoryview], ids=["bytearray", "memoryview"])
def test_receive_data_takes_any_bytes_like(codec, wrap):
    from turbows.connection import ServerConnection

    from conn_helpers import request_head

    server = ServerConnection(_codec=codec)
    server.receive_data(wrap(request_head()))
    server.events()
    server.accept()
    server.receive_data(wrap(client_frame(codec, 1, "x")))
    assert server.events() == [codec.TextMessage("x")]
