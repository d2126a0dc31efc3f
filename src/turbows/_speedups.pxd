# What other extensions use of _speedups from C: turbows.asyncio._fastio reads a message's
# data without an attribute lookup, and writes a FrameWriter's buffer without taking it.

cimport cython


@cython.no_gc
@cython.freelist(512)
cdef class _DataMessage:
    cdef readonly object data
    cdef readonly bint final


cdef Py_ssize_t writer_buffered(object writer, const char **data) except -2
cdef int writer_consumed(object writer) except -1
