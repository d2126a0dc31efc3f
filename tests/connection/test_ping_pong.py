"""Ping/pong (RFC 6455 5.5.2, 5.5.3), round-trip times and the heartbeat, with a fake clock."""

from __future__ import annotations

import math

import pytest

from turbows import State
from turbows.events import ConnectionClosed, PingAnswered

from conn_helpers import (
    client_frame,
    open_client,
    open_pair,
    open_server,
    parse_frames,
    server_frame,
)


def _sent(codec, conn, from_client=False):
    return parse_frames(codec, conn.data_to_send(), from_client=from_client)


def test_pings_are_answered_with_their_payload_before_later_data(codec):
    server = open_server(codec)
    server.send_text("before")
    server.receive_data(client_frame(codec, 9, b"p1") + client_frame(codec, 9, b""))
    assert server.events() == [codec.Ping(b"p1"), codec.Ping(b"")]
    server.send_text("after")
    assert _sent(codec, server) == [
        codec.TextMessage("before"),
        codec.Pong(b"p1"),
        codec.Pong(b""),
        codec.TextMessage("after"),
    ]


def test_while_pongs_are_throttled_only_the_most_recent_ping_is_answered(codec):
    """RFC 6455 5.5.3: while the I/O layer's write buffer is above its mark, a peer sending
    pings makes the connection hold one pong, the latest ping's, not one per ping."""
    server = open_server(codec)
    server.throttle_pongs(True)
    for i in range(1000):
        server.receive_data(client_frame(codec, 9, b"p%d" % i))
    assert len(server.events()) == 1000  # every ping is still an event
    assert server.data_to_send() == b""
    server.send_text("data")
    server.throttle_pongs(False)
    assert _sent(codec, server) == [codec.TextMessage("data"), codec.Pong(b"p999")]
    server.throttle_pongs(False)  # nothing held any more
    server.receive_data(client_frame(codec, 9, b"again"))
    assert _sent(codec, server) == [codec.Pong(b"again")]


def test_throttled_pong_is_dropped_once_the_closing_handshake_started(codec):
    server = open_server(codec)
    server.throttle_pongs(True)
    server.receive_data(client_frame(codec, 9, b"late"))
    server.close(1000)
    server.throttle_pongs(False)
    assert [type(f) for f in _sent(codec, server)] == [codec.CloseReceived]


def test_a_chunk_of_many_pings_gets_a_bounded_number_of_pongs(codec):
    """Pings in one chunk of data: the first 32 get their own pong, then only the last of
    the rest (RFC 6455 5.5.3), and that pong still leaves before a close frame that follows."""
    client = open_client(codec)
    data = b"".join(server_frame(codec, 9, b"%d" % i) for i in range(5000))
    client.receive_data(data)
    assert _sent(codec, client, from_client=True) == [
        codec.Pong(b"%d" % i) for i in list(range(32)) + [4999]
    ]
    client.receive_data(data + server_frame(codec, 8, codec.encode_close(1000, "")))
    sent = _sent(codec, client, from_client=True)
    assert sent[-2:] == [codec.Pong(b"4999"), codec.CloseReceived(1000, "")]
    assert len(sent) == 34


def test_ping_is_answered_even_between_fragments(codec):
    server = open_server(codec)
    server.receive_data(
        client_frame(codec, 1, "a", fin=False)
        + client_frame(codec, 9, b"x")
        + client_frame(codec, 0, "b")
    )
    assert server.events() == [codec.Ping(b"x"), codec.TextMessage("ab")]
    assert _sent(codec, server) == [codec.Pong(b"x")]


def test_ping_reports_the_round_trip_time(codec):
    server, client = open_pair(codec)
    client.ping(b"abc", now=10.0)
    server.receive_data(client.data_to_send())
    client.receive_data(server.data_to_send(), now=10.25)
    assert client.events() == [codec.Pong(b"abc"), PingAnswered(b"abc", 0.25)]
    assert client.latency == 0.25


def test_rtt_is_none_without_times(codec):
    server, client = open_pair(codec)
    client.ping(b"abc")
    server.receive_data(client.data_to_send())
    client.receive_data(server.data_to_send(), now=3.0)
    assert client.events()[1] == PingAnswered(b"abc", None)


def test_a_pong_answers_every_earlier_ping(codec):
    client = open_client(codec)
    client.ping(b"1", now=1.0)
    client.ping(b"2", now=2.0)
    client.ping(b"3", now=3.0)
    client.receive_data(server_frame(codec, 10, b"2"), now=4.0)
    assert client.events() == [codec.Pong(b"2"), PingAnswered(b"1", 3.0), PingAnswered(b"2", 2.0)]
    client.receive_data(server_frame(codec, 10, b"3"), now=5.0)
    assert client.events() == [codec.Pong(b"3"), PingAnswered(b"3", 2.0)]


def test_unsolicited_pongs_are_just_events(codec):
    server = open_server(codec)
    server.ping(b"mine")
    server.receive_data(client_frame(codec, 10, b"other"))
    assert server.events() == [codec.Pong(b"other")]
    assert server.data_to_send()  # the ping; no reply to a pong


def test_pong_sends_an_unsolicited_pong(codec):
    server = open_server(codec)
    server.pong(b"beat")
    assert _sent(codec, server) == [codec.Pong(b"beat")]


def test_control_payloads_over_125_bytes_are_refused(codec):
    server = open_server(codec)
    with pytest.raises(ValueError):
        server.ping(b"x" * 126)
    with pytest.raises(ValueError):
        server.pong(b"x" * 126)
    server.ping(b"x" * 125)


def test_heartbeat_defaults_20s_interval_20s_timeout_one_missed_pong(codec):
    server = open_server(codec, now=100.0)
    assert server.next_deadline() == 120.0
    server.handle_timer(119.9)
    assert server.data_to_send() == b""
    server.handle_timer(120.0)
    [ping] = _sent(codec, server)
    assert isinstance(ping, codec.Ping) and len(ping.payload) == 4
    assert server.next_deadline() == 140.0  # both the pong deadline and the next ping
    server.handle_timer(140.0)
    [closed] = server.events()
    assert isinstance(closed, ConnectionClosed)
    assert closed.code == 1006 and closed.reason == "keepalive ping timeout"
    assert not closed.clean and closed.initiator == "local"
    assert server.state is State.CLOSED and server.should_close_transport
    assert server.next_deadline() is None
    [close] = _sent(codec, server)
    assert close.code == 1011


def test_a_pong_keeps_the_heartbeat_going(codec):
    server = open_server(codec, now=0.0, ping_interval=10.0, ping_timeout=5.0)
    for tick in range(1, 6):
        now = tick * 10.0
        assert server.next_deadline() == now
        server.handle_timer(now)
        [ping] = _sent(codec, server)
        assert server.next_deadline() == now + 5.0
        server.receive_data(client_frame(codec, 10, ping.payload), now=now + 1.0)
        assert server.events() == [codec.Pong(ping.payload)]  # heartbeat pongs are not PingAnswered
        assert server.latency == 1.0
        assert server.next_deadline() == now + 10.0
    assert server.state is State.OPEN


def test_max_missed_pongs_tolerates_late_pongs(codec):
    server = open_server(codec, now=0.0, ping_interval=10.0, ping_timeout=10.0, max_missed_pongs=3)
    for now in (10.0, 20.0, 30.0):
        server.handle_timer(now)
        assert server.state is State.OPEN
    server.handle_timer(40.0)
    assert server.state is State.CLOSED


def test_a_late_pong_resets_the_missed_count(codec):
    server = open_server(codec, now=0.0, ping_interval=10.0, ping_timeout=5.0, max_missed_pongs=2)
    server.handle_timer(10.0)
    [ping] = _sent(codec, server)
    server.handle_timer(15.0)  # one missed
    server.receive_data(client_frame(codec, 10, ping.payload))
    server.handle_timer(20.0)
    server.handle_timer(25.0)  # missed again, but the count restarted
    assert server.state is State.OPEN
    server.handle_timer(30.0)
    server.handle_timer(35.0)
    assert server.state is State.CLOSED


def test_heartbeat_disabled(codec):
    server = open_server(codec, ping_interval=None)
    assert server.next_deadline() is None
    server.handle_timer(1e9)
    assert server.data_to_send() == b""


def test_heartbeat_without_pong_timeout_never_aborts(codec):
    server = open_server(codec, now=0.0, ping_interval=1.0, ping_timeout=None)
    for now in range(1, 200):
        server.handle_timer(float(now))
    assert server.state is State.OPEN
    assert len(_sent(codec, server)) == 199


def test_heartbeat_waits_for_the_time_when_opened_without_it(codec):
    server = open_server(codec, now=None)
    assert server.next_deadline() == -math.inf
    server.handle_timer(50.0)
    assert server.data_to_send() == b""
    assert server.next_deadline() == 70.0


def test_client_heartbeat_too(codec):
    client = open_client(codec, now=0.0, ping_interval=5.0)
    client.handle_timer(5.0)
    [ping] = parse_frames(codec, client.data_to_send(), from_client=True)
    assert isinstance(ping, codec.Ping)


def test_no_heartbeat_while_closing(codec):
    server = open_server(codec, now=0.0)
    server.close(now=1.0)
    server.data_to_send()
    assert server.next_deadline() == 11.0
    server.handle_timer(10.5)
    assert server.data_to_send() == b""


@pytest.mark.parametrize(
    "kw",
    [{"ping_interval": 0}, {"ping_timeout": -1}, {"close_timeout": -1}, {"max_missed_pongs": 0}],
)
def test_invalid_timer_options(codec, kw):
    from turbows.connection import ServerConnection

    with pytest.raises(ValueError):
        ServerConnection(_codec=codec, **kw)
