# cython: language_level=3
"""Compiled helpers of the asyncio layer (POSIX only; the pure-Python path is the fallback).

- :class:`SocketTransport`: an asyncio transport for a plain TCP socket that does its own
  non-blocking I/O with ``recv``/``send`` from C, driven by ``loop.add_reader`` /
  ``loop.add_writer`` (works on asyncio's selector loops and on uvloop). It writes straight to
  the socket and buffers only what a partial write leaves, honours the write high/low marks,
  pauses and resumes reading, and follows asyncio's close/abort/EOF semantics:
  ``connection_lost`` always runs from the loop, once, after ``connection_made``.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.buffer cimport PyObject_GetBuffer, PyBuffer_Release, PyBUF_SIMPLE
from libc.errno cimport errno, EAGAIN, EINTR

import os
import socket as _socket

cdef extern from "Python.h":
    char *PyByteArray_AS_STRING(object)

cdef extern from "errno.h":
    int EWOULDBLOCK

cdef extern from "sys/types.h":
    ctypedef long ssize_t

cdef extern from "sys/socket.h" nogil:
    ssize_t c_recv "recv" (int fd, void *buf, size_t n, int flags)
    ssize_t c_send "send" (int fd, const void *buf, size_t n, int flags)
    int MSG_NOSIGNAL

# Bytes read per recv: one buffer for the whole process, since a read is handed to the
# protocol (as bytes) before anything else can read.
cdef enum:
    READ_SIZE = 262144
cdef char _read_buffer[READ_SIZE]


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

    def __init__(self, loop, sock, protocol, extra=None):
        self._loop = loop
        self._sock = sock
        self._fd = sock.fileno()
        self._protocol = protocol
        self._data_received = protocol.data_received
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

    def start(self):
        """Schedule ``connection_made`` and then the first read, like asyncio's transports."""
        loop = self._loop
        loop.call_soon(self._connection_made)

    def _connection_made(self):
        self._started = True
        self._protocol.connection_made(self)
        if self._reading and not self._closing:
            self._add_reader()

    # -- readers and writers -----------------------------------------------------------------

    cdef _add_reader(self):
        if not self._reader_on:
            self._reader_on = True
            self._loop.add_reader(self._fd, self._on_readable_cb)

    cdef _remove_reader(self):
        if self._reader_on:
            self._reader_on = False
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
        cdef ssize_t n
        cdef int err
        if self._closing or not self._reading:
            return
        while True:
            n = c_recv(self._fd, _read_buffer, READ_SIZE, 0)
            if n >= 0 or errno != EINTR:
                break
        if n > 0:
            self._data_received(PyBytes_FromStringAndSize(_read_buffer, n))
        elif n == 0:
            self._on_eof()
        else:
            err = errno
            if err != EAGAIN and err != EWOULDBLOCK:
                self._fatal(OSError(err, os.strerror(err)))

    cdef _on_eof(self):
        self._remove_reader()
        keep_open = self._protocol.eof_received()
        if not keep_open:
            self.close()

    # -- writing -----------------------------------------------------------------------------

    def write(self, data):
        cdef Py_buffer view
        cdef ssize_t n
        cdef const char *p
        cdef Py_ssize_t size
        cdef int err
        if self._eof_pending or self._eof_sent:
            raise RuntimeError("cannot call write() after write_eof()")
        if self._closing:
            return  # asyncio's transports drop writes after close/abort too
        if type(data) is bytes:
            size = PyBytes_GET_SIZE(data)
            if size == 0:
                return
            if len(self._pending):
                self._pending += data
                self._check_high()
                return
            p = PyBytes_AS_STRING(data)
            while True:
                n = c_send(self._fd, p, size, MSG_NOSIGNAL)
                if n >= 0 or errno != EINTR:
                    break
            self._after_send(data, n, size, errno)
            return
        PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
        try:
            size = view.len
            if size == 0:
                return
            if len(self._pending):
                self._pending += (<const char *>view.buf)[:size]
                self._check_high()
                return
            while True:
                n = c_send(self._fd, view.buf, size, MSG_NOSIGNAL)
                if n >= 0 or errno != EINTR:
                    break
            err = errno
            if n != size:
                self._after_send((<const char *>view.buf)[:size], n, size, err)
        finally:
            PyBuffer_Release(&view)

    cdef _after_send(self, data, ssize_t n, Py_ssize_t size, int err):
        if n == size:
            return
        if n < 0:
            if err != EAGAIN and err != EWOULDBLOCK:
                self._fatal(OSError(err, os.strerror(err)))
                return
            n = 0
        self._pending += memoryview(data)[n:]
        self._add_writer()
        self._check_high()

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

    cdef _fatal(self, exc):
        if isinstance(exc, OSError):
            if self._loop.get_debug():
                self._loop.call_exception_handler({
                    "message": "fatal error on the WebSocket transport",
                    "exception": exc, "transport": self, "protocol": self._protocol})
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
            self._protocol = None
            self._data_received = None
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
        self._protocol = protocol
        self._data_received = protocol.data_received

    def __repr__(self):
        state = "closing" if self._closing else "open"
        return f"<fastws SocketTransport fd={self._fd} {state}>"
