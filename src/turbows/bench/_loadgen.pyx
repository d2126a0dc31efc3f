# cython: language_level=3
"""The compiled loops of the end-to-end client (Linux only; built when it can be).

They do what the Python loops of :mod:`turbows.bench._echo_client` do, with no Python work per
message, so that the client stops being the ceiling of the benchmark:

- :class:`ConcurrentEcho`: one message in flight on each of many non-blocking sockets, driven
  by one ``epoll`` set; every complete reply (counted by its known length) sends the next
  message on its connection until ``n`` messages are sent; at the end no partial reply may be
  left over.
- :func:`round_trip`: one blocking socket, ``n`` times: send the whole frame, receive exactly
  one reply.

Both release the GIL while they run. A short write waits for ``EPOLLOUT`` (or blocks),
``EINTR`` retries after Python's signal handlers had their turn, a closed connection or a
leftover raises :class:`~turbows.bench._peers.BenchCheckError` (the Python loops' error, with
their words), and so does a connection on which nothing moves for ``timeout`` seconds; a
socket error raises :class:`OSError`.
"""

cimport cython
from cpython.exc cimport PyErr_SetFromErrno
from libc.errno cimport errno, EAGAIN, EINTR
from libc.stdint cimport uint32_t, uint64_t
from libc.stdlib cimport calloc, free, malloc
from posix.time cimport clock_gettime, timespec, CLOCK_MONOTONIC

from ._peers import BenchCheckError

cdef extern from "errno.h":
    int EWOULDBLOCK

cdef extern from "Python.h":
    # Declared here without ``except -1``: a handler's exception must stay set, to be raised
    # once the loop has returned (cpython.exc's declaration would report it as unraisable).
    int _check_signals "PyErr_CheckSignals" ()

cdef extern from "sys/types.h":
    ctypedef long ssize_t

cdef extern from "sys/time.h" nogil:
    struct timeval:
        long tv_sec
        long tv_usec

cdef extern from "sys/socket.h" nogil:
    ctypedef unsigned int socklen_t
    int SOL_SOCKET, SO_RCVTIMEO, SO_SNDTIMEO
    int getsockopt(int fd, int level, int name, void *value, socklen_t *length)
    int setsockopt(int fd, int level, int name, const void *value, socklen_t length)
    ssize_t c_recv "recv" (int fd, void *buf, size_t n, int flags)
    ssize_t c_send "send" (int fd, const void *buf, size_t n, int flags)
    int MSG_NOSIGNAL

cdef extern from "sys/epoll.h" nogil:
    int EPOLLIN, EPOLLOUT, EPOLLERR, EPOLLHUP, EPOLL_CTL_ADD, EPOLL_CTL_MOD, EPOLL_CLOEXEC
    ctypedef union epoll_data_t:
        uint64_t u64
    struct epoll_event:
        uint32_t events
        epoll_data_t data
    int epoll_create1(int flags)
    int epoll_ctl(int epfd, int op, int fd, epoll_event *event)
    int epoll_wait(int epfd, epoll_event *events, int maxevents, int timeout)

cdef extern from "poll.h" nogil:
    struct pollfd:
        int fd
        short events
        short revents
    int POLLIN, POLLOUT
    int c_poll "poll" (pollfd *fds, unsigned long nfds, int timeout)

cdef extern from "unistd.h" nogil:
    int c_close "close" (int fd)

cdef extern from *:
    """
    #include <fcntl.h>
    #include <sys/syscall.h>
    #include <unistd.h>
    /* F_GETFL through the system call: under _FILE_OFFSET_BITS=64 (set by Python.h), glibc
       2.28 and later bind fcntl() to their fcntl64 symbol, which makes the wheel need glibc
       2.28 (manylinux_2_28) instead of 2.17 (manylinux2014). syscall() is in every glibc. */
    static int turbows_getfl(int fd) { return (int)syscall(SYS_fcntl, fd, F_GETFL); }
    """
    int O_NONBLOCK
    int turbows_getfl(int fd) nogil

cdef enum:
    # Bytes asked of one recv: as the Python loop asks (sock.recv(65536)).
    READ_SIZE = 65536
    # Events taken from one epoll_wait.
    POLL_BATCH = 64
    # The longest single wait, in ms, between two checks for a stalled run.
    WAIT_MS = 1000

# How a loop ended, when it did not end well (the GIL is not held where these are set).
cdef enum Outcome:
    DONE = 0
    SOCKET_ERROR = 1    # errno says which
    PYTHON_ERROR = 2    # a signal handler raised
    CLOSED = 3
    STALLED = 4
    LEFTOVER = 5


cdef struct Conn:
    int fd
    Py_ssize_t received    # bytes of the reply under way
    Py_ssize_t owed        # frames to send on this connection, the one under way included
    Py_ssize_t offset      # bytes of the frame under way already sent
    bint watching_out      # registered for EPOLLOUT, waiting to finish a short write


cdef inline double _now() noexcept nogil:
    cdef timespec ts
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return ts.tv_sec + ts.tv_nsec * 1e-9


cdef inline int _interrupted() noexcept nogil:
    """After EINTR: let Python's signal handlers run; PYTHON_ERROR if one raised."""
    with gil:
        if _check_signals() < 0:
            return PYTHON_ERROR
    return DONE


cdef int _raise(int outcome, int saved_errno, str what) except -1:
    if outcome == SOCKET_ERROR:
        errno = saved_errno
        PyErr_SetFromErrno(OSError)
        return -1
    if outcome == PYTHON_ERROR:
        return -1  # the handler's exception is already set
    raise BenchCheckError(what)


cdef class ConcurrentEcho:
    """Many non-blocking connections, one message in flight on each, one epoll set.

    Args:
        fds: the sockets' descriptors (non-blocking; the caller owns and closes them).
        frame: the bytes of one message, sent as they are.
        reply: the length in bytes of one reply.

    Calling it with ``n`` sends ``n`` messages in all (a first one on each connection, then
    one more each time a reply is complete) and returns when every reply is back.
    ``short_writes`` counts the sends cut short that waited for the socket to be writable.
    """

    cdef int _efd
    cdef Conn *_conns
    cdef Py_ssize_t _count
    cdef bytes _frame           # owns the bytes that _data points into
    cdef const char *_data
    cdef Py_ssize_t _size
    cdef Py_ssize_t _reply
    cdef char *_buf
    cdef readonly Py_ssize_t short_writes

    def __cinit__(self, fds, bytes frame not None, Py_ssize_t reply):
        cdef epoll_event ev
        cdef Py_ssize_t i
        self._efd = -1
        fds = list(fds)
        if not fds:
            raise ValueError("no connections")
        if not frame or reply <= 0:
            raise ValueError("the frame and the reply must not be empty")
        self._count = len(fds)
        self._frame = frame
        self._data = frame
        self._size = len(frame)
        self._reply = reply
        self._conns = <Conn *>calloc(self._count, sizeof(Conn))
        self._buf = <char *>malloc(READ_SIZE)
        if self._conns == NULL or self._buf == NULL:
            raise MemoryError()
        self._efd = epoll_create1(EPOLL_CLOEXEC)
        if self._efd < 0:
            PyErr_SetFromErrno(OSError)
        for i in range(self._count):
            self._conns[i].fd = fds[i]
            ev.events = EPOLLIN
            ev.data.u64 = <uint64_t>i  # the connection's index, not its descriptor
            if epoll_ctl(self._efd, EPOLL_CTL_ADD, self._conns[i].fd, &ev) < 0:
                PyErr_SetFromErrno(OSError)

    def __dealloc__(self):
        if self._efd >= 0:
            c_close(self._efd)
        free(self._conns)
        free(self._buf)

    def close(self):
        """Close the epoll set (not the sockets)."""
        if self._efd >= 0:
            c_close(self._efd)
            self._efd = -1

    def __call__(self, Py_ssize_t n, double timeout=10.0):
        """Send ``n`` messages in all and wait for every reply.

        Args:
            n: the number of messages.
            timeout: seconds without a byte moving on any connection before giving up.

        Raises:
            BenchCheckError: a connection was closed, a partial reply was left over, or
                nothing moved for ``timeout`` seconds.
            OSError: a socket error.
        """
        cdef int outcome
        cdef int saved_errno = 0
        if self._efd < 0:
            raise ValueError("the loop is closed")
        if n <= 0:
            return
        with nogil:
            outcome = self._run(n, timeout, &saved_errno)
        if outcome != DONE:
            _raise(outcome, saved_errno, {
                CLOSED: "server closed a connection",
                STALLED: f"no reply for {timeout:g} s",
                LEFTOVER: "a partial echo was left over",
            }.get(outcome, ""))

    # C division is safe: both operands are positive (the reply length is checked > 0).
    @cython.cdivision(True)
    cdef int _run(self, Py_ssize_t n, double timeout, int *saved_errno) noexcept nogil:
        cdef epoll_event events[POLL_BATCH]
        cdef Conn *conn
        cdef Py_ssize_t i, got, replies
        cdef Py_ssize_t sent = 0
        cdef Py_ssize_t done = 0
        cdef int ready, j, outcome
        cdef double last = _now()
        cdef int wait_ms = WAIT_MS
        if timeout * 1000 < WAIT_MS:
            wait_ms = <int>(timeout * 1000) + 1
        for i in range(self._count):
            conn = &self._conns[i]
            conn.received = 0
            conn.offset = 0
            conn.owed = 0
            if sent < n:
                conn.owed = 1
                sent += 1
                outcome = self._flush(conn, saved_errno)
                if outcome != DONE:
                    return outcome
        while done < n:
            ready = epoll_wait(self._efd, events, POLL_BATCH, wait_ms)
            if ready < 0:
                if errno != EINTR:
                    saved_errno[0] = errno
                    return SOCKET_ERROR
                outcome = _interrupted()
                if outcome != DONE:
                    return outcome
                continue
            if ready == 0:
                if _now() - last >= timeout:
                    return STALLED
                continue
            last = _now()
            for j in range(ready):
                # The index was stored at registration and is < self._count.
                conn = &self._conns[events[j].data.u64]
                if events[j].events & (EPOLLIN | EPOLLERR | EPOLLHUP):
                    got = c_recv(conn.fd, self._buf, READ_SIZE, 0)
                    if got == 0:
                        return CLOSED
                    if got < 0:
                        if errno == EINTR:
                            outcome = _interrupted()
                            if outcome != DONE:
                                return outcome
                        elif errno != EAGAIN and errno != EWOULDBLOCK:
                            saved_errno[0] = errno
                            return SOCKET_ERROR
                    else:
                        got += conn.received
                        replies = got // self._reply
                        conn.received = got - replies * self._reply
                        done += replies
                        if replies > n - sent:
                            replies = n - sent
                        conn.owed += replies
                        sent += replies
                if conn.owed:
                    outcome = self._flush(conn, saved_errno)
                    if outcome != DONE:
                        return outcome
        for i in range(self._count):
            if self._conns[i].received:
                return LEFTOVER
        return DONE

    cdef int _flush(self, Conn *conn, int *saved_errno) noexcept nogil:
        """Send what ``conn`` owes; on a short write, wait for EPOLLOUT to send the rest."""
        cdef const char *frame = self._data
        cdef Py_ssize_t size = self._size
        cdef ssize_t put
        cdef int outcome
        while conn.owed:
            put = c_send(conn.fd, frame + conn.offset, size - conn.offset, MSG_NOSIGNAL)
            if put < 0:
                if errno == EINTR:
                    outcome = _interrupted()
                    if outcome != DONE:
                        return outcome
                    continue
                if errno != EAGAIN and errno != EWOULDBLOCK:
                    saved_errno[0] = errno
                    return SOCKET_ERROR
                put = 0
            conn.offset += put
            if conn.offset == size:
                conn.offset = 0
                conn.owed -= 1
                continue
            # A short write: the rest goes when the socket is writable again.
            self.short_writes += 1
            if not conn.watching_out:
                return self._watch_out(conn, True, saved_errno)
            return DONE
        if conn.watching_out:
            return self._watch_out(conn, False, saved_errno)
        return DONE

    cdef int _watch_out(self, Conn *conn, bint on, int *saved_errno) noexcept nogil:
        """Have epoll report ``conn``'s socket writable too (``on``), or no longer."""
        cdef epoll_event ev
        ev.events = (EPOLLIN | EPOLLOUT) if on else EPOLLIN
        ev.data.u64 = <uint64_t>(conn - self._conns)
        if epoll_ctl(self._efd, EPOLL_CTL_MOD, conn.fd, &ev) < 0:
            saved_errno[0] = errno
            return SOCKET_ERROR
        conn.watching_out = on
        return DONE


# Safe: the only indexing is [0] of both buffers, after their lengths were checked non-zero.
@cython.boundscheck(False)
def round_trip(int fd, const unsigned char[::1] frame, unsigned char[::1] reply,
               Py_ssize_t n, double timeout=10.0):
    """``n`` round trips on one blocking socket: send ``frame``, receive one whole reply.

    Args:
        fd: the socket's descriptor (blocking; the caller owns and closes it).
        frame: the bytes of one message, sent as they are.
        reply: a buffer as long as one reply: it holds the last reply on return.
        n: the number of round trips.
        timeout: seconds without a byte moving before giving up.

    Raises:
        BenchCheckError: the connection was closed, or nothing moved for ``timeout`` seconds.
        OSError: a socket error.
    """
    cdef int outcome = DONE
    cdef int saved_errno = 0
    cdef timeval limit, old_rcv, old_snd
    cdef socklen_t length = sizeof(timeval)
    if frame.shape[0] == 0 or reply.shape[0] == 0:
        raise ValueError("the frame and the reply must not be empty")
    if n <= 0:
        return
    # A blocking send or recv that moves nothing for this long fails with EAGAIN, so that a
    # stalled server cannot hang the run, at no cost per message (a poll() before each recv
    # would add a syscall to every round trip).
    limit.tv_sec = <long>timeout
    limit.tv_usec = <long>((timeout - limit.tv_sec) * 1e6)
    cdef int flags = turbows_getfl(fd)
    if (flags < 0
            or getsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &old_rcv, &length) < 0
            or getsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &old_snd, &length) < 0
            or setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof(timeval)) < 0
            or setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &limit, sizeof(timeval)) < 0):
        PyErr_SetFromErrno(OSError)
    try:
        with nogil:
            outcome = _round_trips(fd, not (flags & O_NONBLOCK), &frame[0], frame.shape[0],
                                   &reply[0], reply.shape[0], n, timeout, &saved_errno)
    finally:
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &old_rcv, sizeof(timeval))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &old_snd, sizeof(timeval))
    if outcome != DONE:
        _raise(outcome, saved_errno, {
            CLOSED: "server closed the connection",
            STALLED: f"no reply for {timeout:g} s",
        }.get(outcome, ""))


cdef int _wait(int fd, bint blocking, short events, int timeout_ms,
               int *saved_errno) noexcept nogil:
    """After EAGAIN: wait for ``fd`` to be ready; STALLED if it is not within the timeout.

    On a blocking socket EAGAIN means that the socket's own timeout already ran out; on a
    non-blocking one it comes at once, and this is the wait.
    """
    cdef pollfd p
    cdef int ready
    if blocking:
        return STALLED
    p.fd = fd
    p.events = events
    p.revents = 0
    ready = c_poll(&p, 1, timeout_ms)
    if ready < 0:
        if errno == EINTR:
            return _interrupted()
        saved_errno[0] = errno
        return SOCKET_ERROR
    return DONE if ready else STALLED


cdef int _after_failure(int fd, bint blocking, short events, int timeout_ms,
                        int *saved_errno) noexcept nogil:
    """After a send or recv that failed: DONE to try again (interrupted, or the socket is
    ready now), else how the run ends."""
    if errno == EINTR:
        return _interrupted()
    if errno == EAGAIN or errno == EWOULDBLOCK:
        return _wait(fd, blocking, events, timeout_ms, saved_errno)
    saved_errno[0] = errno
    return SOCKET_ERROR


cdef int _round_trips(int fd, bint blocking, const unsigned char *frame, Py_ssize_t size, unsigned char *reply,
                      Py_ssize_t reply_size, Py_ssize_t n, double timeout,
                      int *saved_errno) noexcept nogil:
    cdef int timeout_ms = <int>(timeout * 1000) + 1
    cdef Py_ssize_t k, offset, got
    cdef ssize_t r
    cdef int outcome
    for k in range(n):
        offset = 0
        while offset < size:
            r = c_send(fd, frame + offset, size - offset, MSG_NOSIGNAL)
            if r >= 0:
                offset += r
                continue
            outcome = _after_failure(fd, blocking, POLLOUT, timeout_ms, saved_errno)
            if outcome != DONE:
                return outcome
        got = 0
        while got < reply_size:
            r = c_recv(fd, reply + got, reply_size - got, 0)
            if r > 0:
                got += r
                continue
            if r == 0:
                return CLOSED
            outcome = _after_failure(fd, blocking, POLLIN, timeout_ms, saved_errno)
            if outcome != DONE:
                return outcome
    return DONE
