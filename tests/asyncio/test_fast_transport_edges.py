"""The compiled transport's edge cases: writes from flow-control callbacks, the loop's
lifetime, exceptions mid-batch, failed registrations, fork, the clock, slot reads."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import socket
import threading
import time
import warnings
import weakref
from typing import Any, Iterator

import pytest

import turbows.asyncio._server as server_module

from aio_helpers import open_fds, run

pytestmark = pytest.mark.skipif(
    server_module.SocketTransport is None, reason="the compiled transport is not built"
)


@pytest.fixture(autouse=True)
def server_transport() -> Iterator[str]:
    """These tests drive the compiled transport directly: no server, one run each."""
    yield "turbows"


def _read_all(sock: socket.socket, size: int, got: list[int], timeout: float) -> None:
    """Read from ``sock`` until ``size`` bytes came or nothing came for ``timeout`` s."""
    sock.settimeout(timeout)
    total = 0
    try:
        while total < size:
            chunk = sock.recv(1 << 16)
            if not chunk:
                break
            total += len(chunk)
    except OSError:  # socket.timeout: the writer stalled
        pass
    got.append(total)


@pytest.mark.parametrize("use_uvloop", [False, True])
def test_a_write_from_resume_writing_is_sent_whole(use_uvloop: bool) -> None:
    """The standard asyncio producer writes its next chunk from resume_writing: the transport
    must keep watching the socket for what that write left queued (it decided from the size
    read before the callback that the buffer was empty, and stopped writing)."""
    from turbows.asyncio._fastio import SocketTransport

    chunk, chunks = 1 << 20, 8

    class Producer(asyncio.Protocol):
        def __init__(self) -> None:
            self.left = chunks

        def connection_made(self, transport: Any) -> None:
            self.transport = transport
            # resume_writing only once the buffer is empty: the case that stalled.
            transport.set_write_buffer_limits(high=64 * 1024, low=0)
            self.produce()

        def produce(self) -> None:
            self.left -= 1
            self.transport.write(b"x" * chunk)

        def pause_writing(self) -> None:
            pass

        def resume_writing(self) -> None:
            if self.left:
                self.produce()

    async def main() -> None:
        loop = asyncio.get_running_loop()
        ours, theirs = socket.socketpair()
        ours.setblocking(False)
        got: list[int] = []
        reader = threading.Thread(target=_read_all, args=(theirs, chunk * chunks, got, 2.0))
        reader.start()
        transport = SocketTransport(loop, ours, Producer())
        transport.start()
        while reader.is_alive():
            await asyncio.sleep(0.01)
        transport.abort()
        theirs.close()
        assert got == [chunk * chunks]

    run(main, use_uvloop=use_uvloop)


class _Reader(asyncio.Protocol):
    """A plain protocol that keeps what it reads and how it ended."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.data = bytearray()
        self.lost: asyncio.Future[Any] = loop.create_future()

    def data_received(self, data: bytes) -> None:
        self.data += data

    def connection_lost(self, exc: Any) -> None:
        if not self.lost.done():
            self.lost.set_result(exc)


def _new_loop(use_uvloop: bool) -> asyncio.AbstractEventLoop:
    if use_uvloop:
        import uvloop

        return uvloop.new_event_loop()  # type: ignore[no-any-return]
    return asyncio.new_event_loop()


def _start_readers(
    loop: asyncio.AbstractEventLoop, count: int, factory: Any = _Reader
) -> tuple[list[Any], list[Any], list[socket.socket]]:
    """``count`` compiled transports reading socket pairs on ``loop`` (from two on, their
    reads go through the loop's epoll set), started; and the peers' ends."""
    from turbows.asyncio._fastio import SocketTransport

    transports, protocols, peers = [], [], []
    for _ in range(count):
        ours, theirs = socket.socketpair()
        ours.setblocking(False)
        protocol = factory(loop)
        transport = SocketTransport(loop, ours, protocol)
        transport.start()
        transports.append(transport)
        protocols.append(protocol)
        peers.append(theirs)
    loop.run_until_complete(asyncio.sleep(0.01))  # connection_made: they read
    return transports, protocols, peers


def _stop(loop: asyncio.AbstractEventLoop, transports: list[Any], peers: list[Any]) -> None:
    """Abort ``transports`` (their connection_lost runs) and close the peers' ends."""
    for transport in transports:
        transport.abort()
    loop.run_until_complete(asyncio.sleep(0))
    for peer in peers:
        peer.close()


def _epoll_descriptors() -> int:
    """How many epoll instances this process has open."""
    count = 0
    for name in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            count += os.readlink(f"/proc/self/fd/{name}") == "anon_inode:[eventpoll]"
    return count


@pytest.mark.parametrize("use_uvloop", [False, True])
def test_closing_a_loop_with_connections_open_lets_go_of_it(use_uvloop: bool) -> None:
    """Nothing module-wide holds a loop: closing it with connections open releases its
    epoll descriptor at once, and the loop, its sockets and its buffer once they are
    garbage (as asyncio's own transports do)."""
    _new_loop(use_uvloop).close()  # uvloop's process-wide pipe pair is not a leak
    gc.collect()
    fds, epolls = open_fds(), _epoll_descriptors()
    loop = _new_loop(use_uvloop)
    transports, protocols, peers = _start_readers(loop, 5)
    for peer in peers:
        peer.sendall(b"x")
    loop.run_until_complete(asyncio.sleep(0.05))
    assert [bytes(p.data) for p in protocols] == [b"x"] * 5
    assert _epoll_descriptors() >= epolls + 1  # the loop's own and the transports' set
    loop.close()
    assert _epoll_descriptors() == epolls  # at once, before any collection
    for peer in peers:
        peer.close()
    ref = weakref.ref(loop)
    del loop, transports, protocols, peers
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)  # the unclosed sockets, collected
        gc.collect()
    assert ref() is None, "the closed loop is still referenced"
    assert open_fds() == fds


@pytest.mark.parametrize("exc_type", [KeyboardInterrupt, SystemExit])
def test_an_interrupt_in_a_read_keeps_the_rest_of_the_batch(exc_type: type) -> None:
    """KeyboardInterrupt out of one read leaves the loop; the sockets epoll reported with it
    are read when the loop runs again (their edge-triggered events were not lost)."""
    raised: list[_Reader] = []

    class Interrupting(_Reader):
        def data_received(self, data: bytes) -> None:
            self.data += data
            if not raised:  # the first read of the batch
                raised.append(self)
                raise exc_type

    loop = asyncio.new_event_loop()
    try:
        transports, protocols, peers = _start_readers(loop, 4, Interrupting)
        for peer in peers:
            peer.sendall(b"x")  # all four in one epoll batch
        with pytest.raises(exc_type):
            loop.run_until_complete(asyncio.sleep(1))
        assert len(raised) == 1
        loop.run_until_complete(asyncio.sleep(0.1))
        assert [bytes(p.data) for p in protocols] == [b"x"] * 4
        _stop(loop, transports, peers)
    finally:
        loop.close()


class _RegularFile:
    """A regular file with the socket methods the transport calls: the kernel refuses to
    watch it (epoll_ctl and the loop's selector fail with EPERM), for real."""

    def __init__(self, path: Any) -> None:
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT)

    def fileno(self) -> int:
        return self._fd

    def getsockname(self) -> Any:
        return None

    getpeername = getsockname

    def shutdown(self, how: int) -> None:
        pass

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


@pytest.mark.parametrize("use_uvloop", [False, True])
@pytest.mark.parametrize("position", [0, 2])
def test_a_socket_that_cannot_be_watched_fails_its_connection(
    use_uvloop: bool, position: int, tmp_path: Any
) -> None:
    """A socket the loop (position 0: the first reader is watched by the loop) or the epoll
    set (position 2) refuses: its connection is lost with the error, the others read on."""
    from turbows.asyncio._fastio import SocketTransport

    loop = _new_loop(use_uvloop)
    try:
        transports, protocols, peers = _start_readers(loop, position)
        bad = _Reader(loop)
        bad_transport = SocketTransport(loop, _RegularFile(tmp_path / "file"), bad)
        bad_transport.start()
        more, more_protocols, more_peers = _start_readers(loop, 2)
        lost = loop.run_until_complete(asyncio.wait_for(bad.lost, 2))
        assert isinstance(lost, OSError) and bad_transport.is_closing()
        for peer in peers + more_peers:
            peer.sendall(b"x")
        loop.run_until_complete(asyncio.sleep(0.05))
        assert [bytes(p.data) for p in protocols + more_protocols] == [b"x"] * (position + 2)
        _stop(loop, transports + more, peers + more_peers)
    finally:
        loop.close()


def test_a_forked_child_does_not_change_the_parents_epoll_set() -> None:
    """The child of a fork gets an epoll set of its own: what it does with the inherited
    transports (here: abort one, which unregisters its socket) leaves the parent's reads
    alone, and the child's own reads work."""
    loop = asyncio.new_event_loop()
    try:
        transports, protocols, peers = _start_readers(loop, 3)
        pid = os.fork()
        if pid == 0:  # the child: report through the exit status, never return
            status = 1
            try:
                transports[0].abort()
                peers[1].sendall(b"c")
                loop.run_until_complete(asyncio.sleep(0.05))
                status = 0 if bytes(protocols[1].data) == b"c" else 2
            finally:
                os._exit(status)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        for peer in peers:
            peer.sendall(b"p")
        loop.run_until_complete(asyncio.sleep(0.05))
        assert [bytes(p.data) for p in protocols] == [b"p"] * 3
        _stop(loop, transports, peers)
    finally:
        loop.close()


def test_the_transports_clock_is_time_monotonic() -> None:
    """The connection's deadlines are set with the loop's time (time.monotonic() on asyncio's
    loops) and checked with the transport's clock, read from C: they must be one clock.
    (On macOS CLOCK_MONOTONIC, which the transport read before, counts the time asleep and
    time.monotonic() does not; that case cannot be run here.)"""
    from turbows.asyncio._fastio import _monotonic

    for _ in range(1000):
        before = time.monotonic()
        now = _monotonic()
        after = time.monotonic()
        assert before - 1e-6 <= now <= after + 1e-6


class _Slotted:
    __slots__ = ("a", "b")


class _Borrower:
    """Holds another class's slot descriptor: at its offset, this class keeps ``x``."""

    __slots__ = ("x", "y")
    a = _Slotted.a  # type: ignore[assignment]


class _ShadowingChild(_Slotted):
    __slots__ = ("z",)
    b = _Borrower.y  # type: ignore[assignment]


def test_a_slot_descriptor_of_another_class_is_read_with_getattr() -> None:
    """A member descriptor found on a class that is not its owner's subclass says nothing
    of where that class keeps the value: the read falls back to getattr (which raises
    TypeError), instead of reading whatever lies at the borrowed offset."""
    from turbows.asyncio._fastio import _is_slot_read, _read_attribute

    borrower = _Borrower()
    borrower.x = "x, at a's offset in _Slotted"
    assert not _is_slot_read(_Borrower, "a")
    with pytest.raises(TypeError):
        _read_attribute(borrower, "a")
    child = _ShadowingChild()
    child.a, child.z = "a", "z"
    assert _is_slot_read(_ShadowingChild, "a") and _is_slot_read(_ShadowingChild, "z")
    assert not _is_slot_read(_ShadowingChild, "b")
    with pytest.raises(TypeError):
        _read_attribute(child, "b")
    assert _read_attribute(child, "a") == "a"
