# cython: language_level=3
"""Compiled helpers of the asyncio layer (POSIX only; the pure-Python path is the fallback).

- :class:`SocketTransport`: an asyncio transport for a plain TCP socket that does its own
  non-blocking I/O with ``recv``/``send`` from C, driven by ``loop.add_reader`` /
  ``loop.add_writer`` (works on asyncio's selector loops and on uvloop). It writes straight to
  the socket and buffers only what a partial write leaves, honours the write high/low marks,
  pauses and resumes reading, and follows asyncio's close/abort/EOF semantics:
  ``connection_lost`` always runs from the loop, once, after ``connection_made``.
  On Linux the reads of every transport on a loop go through one epoll set (:class:`_Poller`),
  and a read for a turbows WebSocket is delivered from C (``_deliver``).
- It is the default for plain-TCP servers (``TURBOWS_FAST_TRANSPORT=0`` turns it off).
"""

cimport cython
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.buffer cimport PyObject_GetBuffer, PyBuffer_Release, PyBUF_SIMPLE
from cpython.list cimport PyList_GET_SIZE
from cpython.object cimport PyObject
from libc.errno cimport errno, EAGAIN, EINTR
from libc.string cimport memcpy, memset

import asyncio
import os
import socket as _socket
import weakref

from ..codec import BinaryMessage, TextMessage
from ..exceptions import InvalidStateError, ProtocolError
from .._speedups import FrameParser as _CompiledParser, FrameWriter as _CompiledWriter
from .._speedups cimport _DataMessage, writer_buffered, writer_consumed
from ._protocol import WebSocket, _Protocol

# C globals: compared for every message in _deliver (no module dict lookup).
cdef object _TEXT = TextMessage
cdef object _BINARY = BinaryMessage
# The codec's message types are the compiled ones (whose data is read from C), not the
# pure-Python twins.
cdef bint _COMPILED_MESSAGES = issubclass(_TEXT, _DataMessage) and issubclass(_BINARY, _DataMessage)

# asyncio's selector loops tell the time with time.monotonic(): the same clock is read here
# from C (turbows_monotonic). Other loops (uvloop keeps its own cached clock) are asked.
cdef object _monotonic_loop_time = asyncio.BaseEventLoop.time

cdef extern from *:
    """
    #include <time.h>
    /* time.monotonic(), in seconds: the clock CPython reads on each platform. Not
       CLOCK_MONOTONIC everywhere: on macOS it counts the time the machine slept, while
       time.monotonic() (mach_absolute_time, CLOCK_UPTIME_RAW) does not, so deadlines
       would drift by every sleep. */
    static double turbows_monotonic(void) {
    #if PY_VERSION_HEX >= 0x030D0000
        PyTime_t t;
        if (PyTime_MonotonicRaw(&t) == 0) return PyTime_AsSecondsDouble(t);
        return 0.0;  /* cannot fail once time.monotonic() has worked (import time) */
    #elif defined(__APPLE__)
        return (double)clock_gettime_nsec_np(CLOCK_UPTIME_RAW) * 1e-9;
    #else
        struct timespec ts;
    #ifdef CLOCK_HIGHRES
        clock_gettime(CLOCK_HIGHRES, &ts);  /* Solaris, as CPython */
    #else
        clock_gettime(CLOCK_MONOTONIC, &ts);
    #endif
        return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
    #endif
    }
    """
    double turbows_monotonic() nogil


def _monotonic():
    """The transport's clock, which must be ``time.monotonic()``'s (for the tests)."""
    return turbows_monotonic()

# ``_protocol._frame_as``, set when ``_protocol`` installs send_nowait: frames a message with
# an explicit ``text=`` (not on the hot path).
_frame_as = None

def send_nowait(self, message, text=None):
    """The compiled twin of :meth:`WebSocket.send_nowait` (same steps, same errors), which
    ``turbows.asyncio._protocol`` installs on the class when this module imports: it runs
    once per message sent from ``on_message`` callbacks, and here without a Python frame."""
    cdef SocketTransport fast = None
    transport = self._transport
    if type(transport) is SocketTransport and (<SocketTransport>transport)._ws is self:
        fast = <SocketTransport>transport
        conn = fast._conn  # self._conn, bound by the transport
    else:
        conn = self._conn
    try:
        if text is not None:
            _frame_as(conn, message, text)
        elif type(message) is str:
            if fast is not None:
                fast._conn_attr(fast._o_send_text, "send_text")(message)
            else:
                conn.send_text(message)
        elif isinstance(message, (bytes, bytearray, memoryview)):
            conn.send_binary(message)
        else:
            raise TypeError(f"cannot send {type(message).__name__}: use str or bytes")
    except InvalidStateError:
        self._raise_closed()
        raise
    if fast is not None:
        # Corked while _deliver runs the on_message callbacks: it writes what they framed.
        if not fast._corked:
            fast._send_frames()
            if fast._writing_paused:
                self._pause_for_writes()
    elif not self._corked:
        transport.write(conn.data_to_send())
        if self._write_paused:
            self._pause_for_writes()


def push(self):
    """The compiled twin of ``WebSocket._push``, which ``send`` calls after framing: on this
    module's transport, bound to the connection, a large frame goes out as its header and
    payload in one ``sendmsg`` (``_send_frames``) instead of being joined first."""
    conn = self._conn
    transport = self._transport
    if type(transport) is SocketTransport and (<SocketTransport>transport)._conn is conn:
        (<SocketTransport>transport)._send_frames()
    else:
        transport.write(conn.data_to_send())


cdef extern from "Python.h":
    char *PyByteArray_AS_STRING(object)
    int PyByteArray_Resize(object, Py_ssize_t) except -1
    bint PyUnicode_IS_ASCII(object)
    void *PyUnicode_DATA(object)
    Py_ssize_t PyUnicode_GET_LENGTH(object)
    object PyMemoryView_FromMemory(char *mem, Py_ssize_t size, int flags)
    int PyBUF_READ

cdef extern from "errno.h":
    int EWOULDBLOCK

# Reading a ``__slots__`` attribute from C: the hot path reads several attributes of the
# connection and the WebSocket per message, and each generic lookup (type lookup, descriptor,
# member read) costs more than the pointer load it ends in.
cdef extern from *:
    """
    #if PY_VERSION_HEX >= 0x030C0000
    #define TURBOWS_T_OBJECT_EX Py_T_OBJECT_EX
    #define TURBOWS_READONLY Py_READONLY
    #else
    #include "structmember.h"
    #define TURBOWS_T_OBJECT_EX T_OBJECT_EX
    #define TURBOWS_READONLY READONLY
    #endif
    /* Where a slot member descriptor keeps its value in an instance of cls, or -1 if descr
       is anything else (a property, a method, a read-only or non-object member) or belongs
       to a class cls does not derive from (a descriptor copied from another class: its
       offset means nothing in cls's layout, and getattr raises TypeError). */
    static Py_ssize_t turbows_slot_offset(PyObject *descr, PyObject *cls) {
        PyMemberDef *m;
        if (Py_TYPE(descr) != &PyMemberDescr_Type || !PyType_Check(cls)) return -1;
        if (!PyType_IsSubtype((PyTypeObject *)cls, ((PyDescrObject *)descr)->d_type))
            return -1;
        m = ((PyMemberDescrObject *)descr)->d_member;
        if (m->type != TURBOWS_T_OBJECT_EX || (m->flags & TURBOWS_READONLY) || m->offset <= 0)
            return -1;
        return m->offset;
    }
    /* The value of the slot at offset off of obj (borrowed), or NULL if it is unset. */
    static inline PyObject *turbows_slot(PyObject *obj, Py_ssize_t off) {
        return *(PyObject **)((char *)obj + off);
    }
    """
    Py_ssize_t turbows_slot_offset(object descr, object cls)
    PyObject *turbows_slot(PyObject *obj, Py_ssize_t off)


cdef Py_ssize_t _slot_offset(type cls, str name) except -2:
    """Where instances of ``cls`` keep the attribute ``name``, if it is a plain ``__slots__``
    slot that the generic lookup would read; else -1 (read it with ``getattr``)."""
    if cls.__getattribute__ is not object.__getattribute__:
        return -1
    # A data descriptor found on the class (a slot member is one) wins over everything
    # else in an instance lookup; getattr on the class finds it in MRO order, as it does.
    return turbows_slot_offset(getattr(cls, name, None), cls)


cdef inline object _slot(object obj, type cls, Py_ssize_t off, str name):
    """``obj.name``, read from its slot when ``obj`` is a ``cls`` and ``off`` its offset."""
    cdef PyObject *value
    if off >= 0 and type(obj) is cls:
        value = turbows_slot(<PyObject *>obj, off)
        if value is not NULL:
            return <object>value
    return getattr(obj, name)  # also raises AttributeError for an unset slot


def _read_attribute(obj, str name):
    """``getattr(obj, name)`` the way the data path reads attributes (for the tests)."""
    cls = type(obj)
    return _slot(obj, cls, _slot_offset(cls, name), name)


def _is_slot_read(cls, str name):
    """Whether the data path reads ``name`` of a ``cls`` from its slot (for the tests)."""
    return _slot_offset(cls, name) >= 0


cdef extern from "sys/types.h":
    ctypedef long ssize_t

cdef extern from "sys/uio.h" nogil:
    struct iovec:
        void *iov_base
        size_t iov_len

cdef extern from "sys/socket.h" nogil:
    struct msghdr:
        void *msg_name
        int msg_namelen
        iovec *msg_iov
        size_t msg_iovlen
        void *msg_control
        size_t msg_controllen
        int msg_flags
    ssize_t c_recv "recv" (int fd, void *buf, size_t n, int flags)
    ssize_t c_send "send" (int fd, const void *buf, size_t n, int flags)
    ssize_t c_sendmsg "sendmsg" (int fd, const msghdr *msg, int flags)
    int MSG_NOSIGNAL

cdef extern from *:
    """
    #ifdef __linux__
    #include <sys/epoll.h>
    #define TURBOWS_HAVE_EPOLL 1
    #else
    #include <errno.h>
    #include <stdint.h>
    #define TURBOWS_HAVE_EPOLL 0
    #define EPOLLIN 1
    #define EPOLLERR 8
    #define EPOLLHUP 16
    #define EPOLLRDHUP 0x2000
    #define EPOLLET (1u << 31)
    #define EPOLL_CTL_ADD 1
    #define EPOLL_CTL_DEL 2
    #define EPOLL_CTL_MOD 3
    #define EPOLL_CLOEXEC 0
    typedef union epoll_data { int fd; uint64_t u64; } epoll_data_t;
    struct epoll_event { uint32_t events; epoll_data_t data; };
    static int epoll_create1(int f) { errno = ENOSYS; return -1; }
    static int epoll_ctl(int e, int op, int fd, struct epoll_event *ev) { errno = ENOSYS; return -1; }
    static int epoll_wait(int e, struct epoll_event *ev, int n, int t) { errno = ENOSYS; return -1; }
    #endif
    """
    int TURBOWS_HAVE_EPOLL
    int EPOLLIN, EPOLLERR, EPOLLHUP, EPOLLRDHUP, EPOLL_CTL_ADD, EPOLL_CTL_DEL, EPOLL_CTL_MOD
    int EPOLL_CLOEXEC
    unsigned int EPOLLET
    ctypedef union epoll_data_t:
        int fd
    struct epoll_event:
        unsigned int events
        epoll_data_t data
    int epoll_create1(int flags) nogil
    int epoll_ctl(int epfd, int op, int fd, epoll_event *event) nogil
    int epoll_wait(int epfd, epoll_event *events, int maxevents, int timeout) nogil

cdef extern from "unistd.h" nogil:
    int c_close "close" (int fd)

cdef extern from *:
    """
    #include <fcntl.h>
    #if !defined(__linux__)
    static int dup3(int o, int n, int f) { errno = ENOSYS; return -1; }
    #endif
    """
    int dup3(int oldfd, int newfd, int flags) nogil
    int O_CLOEXEC

# Bytes read per recv. Transports read into their loop's buffer (_Poller._buf); the one
# below serves those without a _Poller, whose reads are always copied into bytes before
# anything else can run.
cdef enum:
    READ_SIZE = 262144
    # From this many bytes, a read for a WebSocket goes to its parser as a view of the
    # loop's read buffer rather than as a bytes copy (below, the copy costs less than the
    # view's creation and release).
    VIEW_MIN = 2048
cdef char _read_buffer[READ_SIZE]   # for transports without a _Poller


cdef enum:
    POLL_BATCH = 256


# id(loop) -> the loop's _Poller. Weak: nothing here keeps a loop, its epoll descriptor, its
# buffer or its sockets alive (the loop owns its _Poller, see _PollerWatch; while an entry
# exists its _Poller holds the loop, so the id is not reused).
cdef object _pollers = weakref.WeakValueDictionary()


cdef class _Poller:
    """One epoll set per event loop for the reads of every :class:`SocketTransport` on it.

    The loop watches the epoll descriptor alone (``add_reader``); when it is readable, one
    callback asks epoll which sockets are readable and reads them all from C. This replaces a
    loop callback per socket (the selector loop's Python bookkeeping per ready socket, or
    uvloop's handle per socket) by one per loop iteration. Linux only; elsewhere transports
    register with the loop themselves.

    Edge-triggered: a level-triggered set polls every reported socket a second time in the
    next ``epoll_wait`` only to find it drained (measured: about a tenth of the server's
    kernel time in a 50-connection echo). A socket is reported again only when something
    new arrives, so a read that may have left data behind re-arms it (``EPOLL_CTL_MOD``
    queues it again if it is still readable): a read that filled the buffer, and any read
    after the peer shut down or failed (its EOF or error is then read in the next round).
    Adding a socket (also on resume_reading) reports what is already waiting.

    While a single socket is reading, it is watched by the loop directly (``add_reader``):
    the epoll set would only add an ``epoll_wait`` per read for it (measured on one
    connection's round trips). The second reader moves it into the set; when one is left
    again, it moves back.
    """

    cdef object __weakref__
    cdef object _loop
    cdef int _efd
    cdef dict _readers            # fd -> SocketTransport in the epoll set
    cdef SocketTransport _direct  # the one reader watched by the loop itself, or None
    cdef Py_ssize_t _users        # transports attached (alive)
    cdef epoll_event _ready[POLL_BATCH]
    # This loop's read buffer. One per loop, not one per process: a parser may release the
    # GIL while it reads a view of it (long payloads, zlib), and another thread's loop must
    # not overwrite it meanwhile.
    cdef bytearray _buf
    cdef char *_bufp

    def __init__(self, loop):
        self._loop = loop
        self._buf = bytearray(READ_SIZE)
        self._bufp = PyByteArray_AS_STRING(self._buf)
        self._readers = {}
        self._direct = None
        self._efd = epoll_create1(EPOLL_CLOEXEC)
        if self._efd < 0:
            raise OSError(errno, os.strerror(errno))
        try:
            loop.add_reader(self._efd, _PollerWatch(self))
        except BaseException:
            c_close(self._efd)
            self._efd = -1
            raise

    cdef int add(self, int fd, SocketTransport transport) except -1:
        """Watch ``fd`` for ``transport``; raises (OSError, ValueError) if it cannot be."""
        cdef SocketTransport direct = self._direct
        if direct is not None:
            # A second reader: both go into the epoll set.
            self._direct = None
            self._loop.remove_reader(direct._fd)
            try:
                self._epoll_add(direct._fd, direct)
            except OSError as exc:
                direct._unwatched(exc)
        if not self._readers:
            self._loop.add_reader(fd, transport._on_readable_cb)
            self._direct = transport
            return 0
        self._epoll_add(fd, transport)
        return 0

    cdef int _epoll_add(self, int fd, SocketTransport transport) except -1:
        cdef epoll_event ev
        ev.events = EPOLLIN | EPOLLRDHUP | EPOLLET
        ev.data.fd = fd
        if epoll_ctl(self._efd, EPOLL_CTL_ADD, fd, &ev) < 0:
            raise OSError(errno, os.strerror(errno))
        self._readers[fd] = transport
        return 0

    cdef rearm(self, int fd, SocketTransport transport):
        """Have ``fd`` reported again in the next round if it is still readable."""
        cdef epoll_event ev
        cdef int err
        ev.events = EPOLLIN | EPOLLRDHUP | EPOLLET
        ev.data.fd = fd
        if epoll_ctl(self._efd, EPOLL_CTL_MOD, fd, &ev) < 0:
            # The socket would never be reported again (closed behind the transport's
            # back, or no memory): the connection fails rather than hang.
            err = errno
            transport._unwatched(OSError(err, os.strerror(err)))

    cdef remove(self, int fd):
        cdef epoll_event ev
        cdef SocketTransport last
        if self._direct is not None and self._direct._fd == fd:
            self._direct = None
            self._loop.remove_reader(fd)
            return
        if self._readers.pop(fd, None) is not None:
            epoll_ctl(self._efd, EPOLL_CTL_DEL, fd, &ev)  # fails only if fd is closed: fine
            if len(self._readers) == 1:
                # One reader left: the loop watches it directly (level-triggered, so what
                # is already waiting on it is reported). If the loop cannot, it stays in
                # the set, which reads it as well.
                for fd, last in self._readers.items():
                    try:
                        self._loop.add_reader(fd, last._on_readable_cb)
                    except (OSError, ValueError):
                        return
                del self._readers[fd]
                epoll_ctl(self._efd, EPOLL_CTL_DEL, fd, &ev)
                self._direct = last

    cdef release(self):
        self._users -= 1
        if self._users == 0 and self._efd >= 0:
            if not self._loop.is_closed():
                self._loop.remove_reader(self._efd)  # _PollerWatch -> _shutdown
            self._shutdown()

    cdef _shutdown(self):
        """Let go of everything: the last transport is gone, or the loop dropped its
        callback for the epoll descriptor (``loop.close()`` does) and will never call it
        again. What a transport of a closed loop still asks of it does nothing."""
        if _pollers is not None and _pollers.get(id(self._loop)) is self:  # None: at exit
            del _pollers[id(self._loop)]
        if self._efd >= 0:
            c_close(self._efd)
            self._efd = -1
        self._readers.clear()  # the transports, which hold the loop
        self._direct = None
        self._buf = None
        self._bufp = NULL

    cdef _after_fork(self):
        """In a child process: give this poller an epoll instance of its own.

        The child inherits the parent's instance, not a copy: its registrations
        (``EPOLL_CTL_DEL`` on abort or close, ``EPOLL_CTL_ADD``) would change the parent's
        set, and its ``epoll_wait`` would take the parent's edge-triggered events. A new
        instance with the same sockets replaces the inherited one under the same descriptor
        number, so that the loop, which watches that number, needs no change (changing its
        registration would change the parent's too, since the child shares its selector's
        instance as well)."""
        cdef epoll_event ev
        cdef int efd
        if self._efd < 0:
            return
        efd = epoll_create1(EPOLL_CLOEXEC)
        if efd < 0 or dup3(efd, self._efd, O_CLOEXEC) < 0:
            # No instance of our own: drop the parent's rather than share it.
            if efd >= 0:
                c_close(efd)
            failed = list(self._readers.values())
            self._shutdown()
            for transport in failed:
                (<SocketTransport>transport)._unwatched(OSError(errno, os.strerror(errno)))
            return
        c_close(efd)
        failed = []
        for fd, transport in self._readers.items():
            ev.events = EPOLLIN | EPOLLRDHUP | EPOLLET
            ev.data.fd = fd
            if epoll_ctl(self._efd, EPOLL_CTL_ADD, fd, &ev) < 0:
                failed.append((transport, OSError(errno, os.strerror(errno))))
        for transport, exc in failed:
            del self._readers[(<SocketTransport>transport)._fd]
            (<SocketTransport>transport)._unwatched(exc)

    def _poll(self):
        cdef int n, i = 0, fd
        cdef ssize_t got
        cdef SocketTransport transport
        if self._efd < 0:
            return
        n = epoll_wait(self._efd, self._ready, POLL_BATCH, 0)
        if n <= 0:
            return  # EINTR, or nothing: the loop asks again
        readers = self._readers
        try:
            while i < n:
                fd = self._ready[i].data.fd
                transport = readers.get(fd)
                i += 1
                if transport is None:
                    continue  # stopped reading since epoll answered
                got = READ_SIZE  # if the read raises, look at the socket again
                try:
                    got = transport._read_ready()
                except (SystemExit, KeyboardInterrupt):
                    raise
                except BaseException as exc:
                    self._loop.call_exception_handler({
                        "message": "exception in a read callback of the WebSocket transport",
                        "exception": exc, "transport": transport,
                        "protocol": transport._protocol})
                finally:
                    if got > 0 and (got == READ_SIZE or
                                    self._ready[i - 1].events
                                    & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)):
                        if readers.get(fd) is transport:
                            self.rearm(fd, transport)
        except BaseException:
            # KeyboardInterrupt or SystemExit out of a read: the sockets after it in this
            # batch were taken from the edge-triggered set and would not be reported again.
            while i < n:
                fd = self._ready[i].data.fd
                transport = readers.get(fd)
                if transport is not None:
                    self.rearm(fd, transport)
                i += 1
            raise


@cython.final
cdef class _PollerWatch:
    """The callback a loop keeps for its :class:`_Poller`'s epoll descriptor, and the loop's
    only link to it (the module's map is weak). The loop drops it on ``remove_reader`` and
    on ``loop.close()`` (asyncio's loops and uvloop alike): the poller then lets go of its
    descriptor, buffer and transports at once, instead of when the loop is collected, or
    never."""

    cdef _Poller _poller

    def __cinit__(self, _Poller poller):
        self._poller = poller

    def __call__(self):
        self._poller._poll()

    def __del__(self):
        if self._poller is not None:
            self._poller._shutdown()


def _after_fork_in_child():
    for poller in list(_pollers.values()):
        (<_Poller>poller)._after_fork()


if TURBOWS_HAVE_EPOLL:
    os.register_at_fork(after_in_child=_after_fork_in_child)


cdef _Poller _poller_for(loop):
    if not TURBOWS_HAVE_EPOLL:
        return None
    poller = _pollers.get(id(loop))
    if poller is None or (<_Poller>poller)._loop is not loop or (<_Poller>poller)._efd < 0:
        try:
            poller = _Poller(loop)
        except (OSError, NotImplementedError):
            return None   # e.g. a loop that cannot watch an epoll descriptor
        _pollers[id(loop)] = poller
    (<_Poller>poller)._users += 1
    return poller


cdef class SocketTransport:
    """A transport over a connected, non-blocking TCP socket (no TLS)."""

    cdef object _loop
    cdef object _sock
    cdef int _fd
    cdef object _protocol
    cdef object _data_received
    cdef dict _extra
    cdef bytearray _pending      # what a partial write left, in order
    cdef Py_ssize_t _high
    cdef Py_ssize_t _low
    cdef bint _closing           # close() or abort() was called, or the connection failed
    cdef bint _lost              # connection_lost is scheduled or done
    cdef bint _reading           # the protocol wants data (pause_reading not in effect)
    cdef bint _reader_on
    cdef bint _writer_on
    cdef bint _writing_paused    # pause_writing was called on the protocol
    cdef bint _eof_pending       # write_eof() waits for the buffer to drain
    cdef bint _eof_sent
    cdef bint _started
    cdef object _on_readable_cb
    cdef object _on_writable_cb
    cdef _Poller _poller         # reads through the loop's shared epoll set, or None
    # When the protocol is a turbows WebSocket, what its data path needs, so that a read is
    # delivered from C (see _deliver); else None and data_received is called.
    cdef object _ws
    cdef object _conn
    cdef object _receive_events  # conn.receive_events: receive_data + events in one call
    cdef list _queue             # ws._queue (never replaced, only cleared)
    cdef bint _view_ok           # conn's parser is the compiled FrameParser (see _deliver)
    cdef object _conn_take       # conn._take, the writer's take (see _send_frames)
    cdef object _take_parts      # the compiled writer's _take_parts, or None
    cdef object _loop_time       # loop.time, or None to read time.monotonic()'s clock from C
    cdef bint _corked            # _deliver runs on_message callbacks: send_nowait only frames
    cdef int _errno              # of the send that failed (see _send)
    cdef object _writer          # the connection's compiled FrameWriter, or None
    # Slot offsets (see _slot) of the attributes the data path reads per message, for the
    # bound connection's type and the WebSocket's type (-1: read with getattr).
    cdef type _conn_type
    cdef type _ws_type
    cdef Py_ssize_t _o_fast, _o_events, _o_feed, _o_closing, _o_data_to_send, _o_send_text
    cdef Py_ssize_t _o_on_message

    def __init__(self, loop, sock, protocol, extra=None):
        self._loop = loop
        self._sock = sock
        self._fd = sock.fileno()
        self._bind(protocol)
        self._loop_time = None if type(loop).time is _monotonic_loop_time else loop.time
        self._extra = {} if extra is None else dict(extra)
        self._extra.setdefault("socket", sock)
        try:
            self._extra.setdefault("sockname", sock.getsockname())
        except OSError:
            self._extra.setdefault("sockname", None)
        if "peername" not in self._extra:
            try:
                self._extra["peername"] = sock.getpeername()
            except OSError:
                self._extra["peername"] = None
        self._pending = bytearray()
        self._high = 64 * 1024
        self._low = 16 * 1024
        self._reading = True
        self._on_readable_cb = self._on_readable
        self._on_writable_cb = self._on_writable
        self._poller = _poller_for(loop)

    def start(self):
        """Schedule ``connection_made`` and then the first read, like asyncio's transports."""
        loop = self._loop
        loop.call_soon(self._connection_made)

    def _connection_made(self):
        self._started = True
        self._protocol.connection_made(self)
        if self._reading and not self._closing:
            self._add_reader()

    cdef _bind(self, protocol):
        self._protocol = protocol
        self._data_received = protocol.data_received
        # A turbows WebSocket's protocol (exactly _Protocol: not the buffered one, nor a
        # subclass that could change what a read does) delivers from C.
        ws = protocol.ws if type(protocol) is _Protocol else None
        conn = getattr(ws, "_conn", None) if isinstance(ws, WebSocket) else None
        if conn is None or type(ws)._data_received is not WebSocket._data_received:
            self._ws = self._conn = self._receive_events = self._queue = None
            self._conn_take = self._take_parts = self._writer = None
            self._view_ok = False
            return
        self._ws = ws
        self._conn = conn
        cls = self._conn_type = type(conn)
        self._o_fast = _slot_offset(cls, "_fast")
        self._o_events = _slot_offset(cls, "_events")
        self._o_feed = _slot_offset(cls, "_feed")
        self._o_closing = _slot_offset(cls, "should_close_transport")
        self._o_data_to_send = _slot_offset(cls, "data_to_send")
        self._o_send_text = _slot_offset(cls, "send_text")
        self._ws_type = type(ws)
        self._o_on_message = _slot_offset(self._ws_type, "_on_message")
        self._receive_events = conn.receive_events
        self._queue = ws._queue
        self._view_ok = type(conn._parser) is _CompiledParser
        self._conn_take = conn._take
        writer = getattr(conn._take, "__self__", None)
        if type(writer) is _CompiledWriter:
            self._writer = writer
            self._take_parts = writer._take_parts
        else:
            self._writer = self._take_parts = None

    cdef inline object _conn_attr(self, Py_ssize_t off, str name):
        return _slot(self._conn, self._conn_type, off, name)

    cdef double _now(self) except? -1.0:
        if self._loop_time is not None:
            return self._loop_time()
        return turbows_monotonic()

    # -- readers and writers -----------------------------------------------------------------

    cdef _add_reader(self):
        if not self._reader_on:
            try:
                if self._poller is not None:
                    self._poller.add(self._fd, self)
                else:
                    self._loop.add_reader(self._fd, self._on_readable_cb)
            except (OSError, ValueError) as exc:
                self._unwatched(exc)
                return
            self._reader_on = True

    cdef _unwatched(self, exc):
        """The socket cannot be watched for reading (a failed ``epoll_ctl`` or ``add_reader``):
        the connection fails, with ``exc`` for ``connection_lost``, rather than wait forever."""
        self._fatal(exc, "fatal error: the socket cannot be watched for reading")

    cdef _remove_reader(self):
        if self._reader_on:
            self._reader_on = False
            if self._poller is not None:
                self._poller.remove(self._fd)
            else:
                self._loop.remove_reader(self._fd)

    cdef _add_writer(self):
        if not self._writer_on:
            self._writer_on = True
            self._loop.add_writer(self._fd, self._on_writable_cb)

    cdef _remove_writer(self):
        if self._writer_on:
            self._writer_on = False
            self._loop.remove_writer(self._fd)

    # -- reading -----------------------------------------------------------------------------

    def _on_readable(self):
        self._read_ready()

    cdef ssize_t _read_ready(self) except -2:
        """Read once and hand the data to the protocol; return the bytes read (0: EOF or
        nothing read, -1: would block)."""
        cdef ssize_t n
        cdef int err
        cdef char *buf = _read_buffer
        if self._closing or not self._reading:
            return 0
        if self._poller is not None:
            buf = self._poller._bufp
            if buf == NULL:
                return 0  # its loop is closed
        while True:
            n = c_recv(self._fd, buf, READ_SIZE, 0)
            if n >= 0 or errno != EINTR:
                break
        if n > 0:
            # As asyncio's transports do: an exception out of the protocol is fatal to the
            # connection (reported, then the transport closes), SystemExit and
            # KeyboardInterrupt excepted.
            try:
                if self._ws is not None:
                    self._deliver(buf, n, self._poller is not None and self._view_ok)
                else:
                    self._data_received(PyBytes_FromStringAndSize(buf, n))
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException as exc:
                self._fatal(exc, "fatal error: protocol.data_received() call failed")
                return 0
        elif n == 0:
            self._on_eof()
        else:
            err = errno
            if err != EAGAIN and err != EWOULDBLOCK:
                self._fatal(OSError(err, os.strerror(err)))
                return 0
        return n

    cdef _deliver(self, char *p, Py_ssize_t n, bint may_view):
        """``WebSocket._data_received`` in C: the same calls into the connection and the
        WebSocket, in the same order, without its Python frame. While the ``on_message``
        callbacks of one read run, their ``send_nowait`` calls only frame (the WebSocket is
        corked); what they framed goes out in one ``send`` when the read is done.

        ``p[:n]`` is what was read. With ``may_view`` (``p`` is the loop's own buffer and the
        parser is the compiled one, which copies whatever it keeps), a long read reaches the
        parser as a view of it, released as soon as the parser returns: no bytes copy."""
        cdef object ws = self._ws
        cdef object conn = self._conn
        cdef list events
        cdef bint other = False, queued = False, failed = False
        cdef object data
        # conn.receive_events(data, now), its fast path repeated here (keep them in step):
        # while the connection is open with no events waiting, the parser's items are the
        # events, and the time is read only if a control frame or an error needs it.
        if (self._conn_attr(self._o_fast, "_fast") is True
                and PyList_GET_SIZE(self._conn_attr(self._o_events, "_events")) == 0):
            if may_view and n >= VIEW_MIN:
                data = PyMemoryView_FromMemory(p, n, PyBUF_READ)
            else:
                data = PyBytes_FromStringAndSize(p, n)
                may_view = False
            try:
                events = self._conn_attr(self._o_feed, "_feed")(data)
            except ProtocolError as exc:
                conn._protocol_error(exc, self._now())
                events = conn.events()
                failed = True
            else:
                # Control frames among the items (the parser's ``controls``, without two
                # attribute reads) need the connection's handling first.
                for event in events:
                    kind = type(event)
                    if kind is not _TEXT and kind is not _BINARY:
                        conn._handle_items(events, self._now())
                        events = conn.events()
                        break
            finally:
                if may_view:
                    data.release()
        else:
            events = self._receive_events(PyBytes_FromStringAndSize(p, n), self._now())
            failed = True  # maybe: the slow path does not say
        if PyList_GET_SIZE(events) == 0:
            if self._conn_attr(self._o_closing, "should_close_transport") is True:
                ws._after()
            return
        callback = _slot(ws, self._ws_type, self._o_on_message, "_on_message")
        if callback is not None:
            self._corked = True  # send_nowait from the callbacks frames; one write below
        try:
            for event in events:
                kind = type(event)
                if kind is _TEXT or kind is _BINARY:
                    message = (<_DataMessage>event).data if _COMPILED_MESSAGES else event.data
                    if callback is None:
                        self._queue.append(message)
                        queued = True
                    else:
                        callback(message)
                else:
                    other = True
        except Exception as exc:  # from on_message
            self._corked = False
            ws._callback_failed(exc)  # writes what was framed so far, then the close
            return
        except BaseException:
            self._corked = False  # fatal to the connection (see _read_ready)
            raise
        if callback is not None:
            self._corked = False
            self._send_frames()
            if self._writing_paused:
                # The answers went over the high-water mark: read no more until they drain
                # (WebSocket._pause_for_writes).
                ws._pause_for_writes()
        if other:
            ws._dispatch(events)
            ws._after()
        elif self._conn_attr(self._o_closing, "should_close_transport") is True:
            ws._after()
        if queued or (PyList_GET_SIZE(self._queue) and ws._head < len(self._queue)):
            ws._wake()
        if failed and conn._failure is not None:
            # A protocol error came after these messages (as in WebSocket._data_received): the
            # connection fails when the handler sends or has taken them, or after
            # FAILURE_GRACE; with on_message, now, after the answers the callbacks framed.
            if callback is None:
                ws._fail_later()
            else:
                ws._fail_now()

    cdef _on_eof(self):
        self._remove_reader()
        try:
            keep_open = self._protocol.eof_received()
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._fatal(exc, "fatal error: protocol.eof_received() call failed")
            return
        if not keep_open:
            self.close()

    # -- writing -----------------------------------------------------------------------------

    def write(self, data):
        self._write(data)

    cdef _write(self, data):
        cdef Py_buffer view
        cdef int status
        if self._eof_pending or self._eof_sent:
            raise RuntimeError("cannot call write() after write_eof()")
        if type(data) is bytes:
            self._after_send(self._send(PyBytes_AS_STRING(data), PyBytes_GET_SIZE(data)))
            return
        PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
        try:
            status = self._send(<const char *>view.buf, view.len)
        finally:
            PyBuffer_Release(&view)
        self._after_send(status)

    cdef int _send(self, const char *p, Py_ssize_t size) except -1:
        """Send ``p[:size]``, keeping in ``_pending`` what the socket does not take now. No
        callback runs here: the caller may tidy up first, then calls :meth:`_after_send`
        with the status returned (0: done; 1: some of it waits; 2: the send failed with
        ``_errno``)."""
        cdef ssize_t n
        if self._closing or size == 0:
            return 0  # asyncio's transports drop writes after close/abort too
        if len(self._pending):
            self._pend(p, size)
            return 1
        while True:
            n = c_send(self._fd, p, size, MSG_NOSIGNAL)
            if n >= 0 or errno != EINTR:
                break
        if n == size:
            return 0
        if n < 0:
            if errno != EAGAIN and errno != EWOULDBLOCK:
                self._errno = errno
                return 2
            n = 0
        self._pend(p + n, size - n)
        return 1

    cdef _after_send(self, int status):
        if status == 1:
            self._add_writer()
            self._check_high()
        elif status == 2:
            self._fatal(OSError(self._errno, os.strerror(self._errno)))

    cdef _send_frames(self):
        """Write ``conn.data_to_send()``; a large frame the writer left unbuilt goes out as
        its header and payload in one ``sendmsg`` (no copy of the payload)."""
        cdef object conn = self._conn
        cdef const char *p
        cdef Py_ssize_t n
        cdef int status
        if (self._writer is not None
                and self._conn_attr(self._o_data_to_send, "data_to_send") is self._conn_take):
            n = writer_buffered(self._writer, &p)
            if n >= 0:
                # Only buffered frames wait: sent (or kept) straight from the writer's
                # buffer, which is emptied before any callback can run.
                if n == 0:
                    return
                if self._eof_pending or self._eof_sent:
                    writer_consumed(self._writer)
                    raise RuntimeError("cannot call write() after write_eof()")
                try:
                    status = self._send(p, n)
                finally:
                    writer_consumed(self._writer)
                self._after_send(status)
                return
            out = self._take_parts()
            if type(out) is tuple:
                self._write_parts(out)
                return
        else:
            out = conn.data_to_send()
        if PyBytes_GET_SIZE(out):
            self._write(out)

    cdef _write_parts(self, tuple parts):
        """``write(head + body)`` without joining them (``body``: bytes or an ASCII str)."""
        cdef bytes head = parts[0]
        cdef object body = parts[1]
        cdef const char *bp
        cdef Py_ssize_t bn, hn = PyBytes_GET_SIZE(head)
        cdef ssize_t n
        cdef iovec iov[2]
        cdef msghdr msg
        if self._eof_pending or self._eof_sent:
            raise RuntimeError("cannot call write() after write_eof()")
        if self._closing:
            return
        if type(body) is str and not PyUnicode_IS_ASCII(body):
            body = body.encode()  # not what the writer hands out; kept correct all the same
        if type(body) is str:
            bp = <const char *>PyUnicode_DATA(body)
            bn = PyUnicode_GET_LENGTH(body)
        else:
            bp = PyBytes_AS_STRING(body)
            bn = PyBytes_GET_SIZE(body)
        if len(self._pending):
            self._pending += head
            self._pend(bp, bn)
            self._check_high()
            return
        memset(&msg, 0, sizeof(msg))
        iov[0].iov_base = <void *>PyBytes_AS_STRING(head)
        iov[0].iov_len = <size_t>hn
        iov[1].iov_base = <void *>bp
        iov[1].iov_len = <size_t>bn
        msg.msg_iov = iov
        msg.msg_iovlen = 2
        while True:
            n = c_sendmsg(self._fd, &msg, MSG_NOSIGNAL)
            if n >= 0 or errno != EINTR:
                break
        if n == hn + bn:
            return
        n = self._sent(n, errno)
        if n < 0:
            return
        if n < hn:
            self._pend(PyBytes_AS_STRING(head) + n, hn - n)
            n = 0
        else:
            n -= hn
        self._pend(bp + n, bn - n)
        self._add_writer()
        self._check_high()

    cdef _pend(self, const char *p, Py_ssize_t n):
        """Append ``p[:n]`` to what waits to be written."""
        cdef Py_ssize_t old = len(self._pending)
        PyByteArray_Resize(self._pending, old + n)
        memcpy(PyByteArray_AS_STRING(self._pending) + old, p, <size_t>n)

    cdef ssize_t _sent(self, ssize_t n, int err) except -2:
        """What a send that returned ``n`` (``errno`` ``err``) wrote: ``n``, 0 if it would
        have blocked, or -1 if it failed (the connection is then lost)."""
        if n >= 0:
            return n
        if err != EAGAIN and err != EWOULDBLOCK:
            self._fatal(OSError(err, os.strerror(err)))
            return -1
        return 0

    def writelines(self, list_of_data):
        self.write(b"".join(list_of_data))

    cdef _check_high(self):
        if not self._writing_paused and len(self._pending) > self._high:
            self._writing_paused = True
            try:
                self._protocol.pause_writing()
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException as exc:
                self._loop.call_exception_handler({
                    "message": "protocol.pause_writing() failed",
                    "exception": exc, "transport": self, "protocol": self._protocol})

    def _on_writable(self):
        cdef ssize_t n
        cdef int err
        cdef bytearray pending = self._pending
        cdef Py_ssize_t size = len(pending)
        if self._lost:
            return
        if size:
            while True:
                n = c_send(self._fd, PyByteArray_AS_STRING(pending), size, MSG_NOSIGNAL)
                if n >= 0 or errno != EINTR:
                    break
            if n < 0:
                err = errno
                if err == EAGAIN or err == EWOULDBLOCK:
                    return
                self._fatal(OSError(err, os.strerror(err)))
                return
            del pending[:n]
            size -= n
        if self._writing_paused and size <= self._low:
            self._writing_paused = False
            try:
                self._protocol.resume_writing()
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException as exc:
                self._loop.call_exception_handler({
                    "message": "protocol.resume_writing() failed",
                    "exception": exc, "transport": self, "protocol": self._protocol})
            if self._lost:
                return
            # resume_writing may have written (the usual producer does): what it left
            # queued keeps the writer on (asyncio's and uvloop's transports look again too).
            size = len(pending)
        if size == 0:
            self._remove_writer()
            if self._closing:
                self._schedule_lost(None)
            elif self._eof_pending:
                self._eof_pending = False
                self._shutdown_write()

    cdef _shutdown_write(self):
        self._eof_sent = True
        try:
            self._sock.shutdown(_socket.SHUT_WR)
        except OSError:
            pass

    # -- closing -----------------------------------------------------------------------------

    def can_write_eof(self):
        return True

    def write_eof(self):
        if self._closing or self._eof_pending or self._eof_sent:
            return
        if len(self._pending):
            self._eof_pending = True
        else:
            self._shutdown_write()

    def is_closing(self):
        return self._closing

    def close(self):
        if self._closing:
            return
        self._closing = True
        self._remove_reader()
        if not len(self._pending):
            self._schedule_lost(None)

    def abort(self):
        self._force_close(None)

    cdef _fatal(self, exc, message="fatal error on the WebSocket transport"):
        """Close on an error: a socket error is reported in debug mode only, anything else
        always (as asyncio's transports do)."""
        if not isinstance(exc, OSError) or self._loop.get_debug():
            self._loop.call_exception_handler({
                "message": message, "exception": exc, "transport": self,
                "protocol": self._protocol})
        self._force_close(exc)

    cdef _force_close(self, exc):
        if self._lost:
            return
        if len(self._pending):
            self._pending.clear()
        self._remove_writer()
        self._closing = True
        self._remove_reader()
        self._schedule_lost(exc)

    cdef _schedule_lost(self, exc):
        if self._lost:
            return
        self._lost = True
        self._remove_writer()
        self._remove_reader()
        self._loop.call_soon(self._call_connection_lost, exc)

    def _call_connection_lost(self, exc):
        try:
            if self._started:
                self._protocol.connection_lost(exc)
        finally:
            self._sock.close()
            if self._poller is not None:
                self._poller.release()
                self._poller = None
            self._protocol = None
            self._data_received = None
            self._ws = self._conn = self._receive_events = self._queue = None
            self._conn_take = self._take_parts = self._writer = None
            self._on_readable_cb = None
            self._on_writable_cb = None

    # -- flow control ------------------------------------------------------------------------

    def is_reading(self):
        return self._reading and not self._closing

    def pause_reading(self):
        if self._closing or not self._reading:
            return
        self._reading = False
        self._remove_reader()

    def resume_reading(self):
        if self._closing or self._reading:
            return
        self._reading = True
        if self._started:
            self._add_reader()

    def set_write_buffer_limits(self, high=None, low=None):
        if high is None:
            high = 64 * 1024 if low is None else 4 * low
        if low is None:
            low = high // 4
        if not high >= low >= 0:
            raise ValueError(f"high ({high!r}) must be >= low ({low!r}) must be >= 0")
        self._high = high
        self._low = low
        self._check_high()

    def get_write_buffer_limits(self):
        return (self._low, self._high)

    def get_write_buffer_size(self):
        return len(self._pending)

    # -- information -------------------------------------------------------------------------

    def get_extra_info(self, name, default=None):
        return self._extra.get(name, default)

    def get_protocol(self):
        return self._protocol

    def set_protocol(self, protocol):
        self._bind(protocol)

    def __repr__(self):
        state = "closing" if self._closing else "open"
        return f"<turbows SocketTransport fd={self._fd} {state}>"
