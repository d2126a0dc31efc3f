# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
# cython: initializedcheck=False, freethreading_compatible=False
"""The C codec: the same API, results and errors as ``turbows._codec_py``.

Per-byte work (masking, UTF-8 validation) runs in the hand-written kernels of
``_kernels/turbows_kernels.c``; this module parses headers, applies the RFC 6455 rules and builds
the Python objects. Indexing is unchecked throughout (``boundscheck=False``): every pointer
access below is bounded by a length computed from the buffer it points into.
"""

cimport cython
from cpython.buffer cimport (
    PyBUF_C_CONTIGUOUS,
    PyBUF_FULL_RO,
    PyBuffer_IsContiguous,
    PyBUF_SIMPLE,
    PyBuffer_Release,
    PyObject_CheckBuffer,
    PyObject_GetBuffer,
)
from cpython.bytearray cimport PyByteArray_AS_STRING, PyByteArray_GET_SIZE
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.list cimport PyList_Append
from libc.stdint cimport uint8_t, uint64_t
from libc.stdlib cimport free, malloc, realloc
from libc.string cimport memcpy, memmove

import os as _os

from ._enums import CloseCode as _CloseCode
from ._enums import close_code as _close_code
from ._enums import is_valid_close_code as _is_valid_close_code
from .exceptions import ConcurrentUseError, ProtocolError
from .exceptions import _interrupted, _wrong_type


cdef extern from "Python.h":
    object PyUnicode_New(Py_ssize_t size, Py_UCS4 maxchar)
    void *PyUnicode_DATA(object o)
    bint PyUnicode_IS_ASCII(object o)
    Py_ssize_t PyUnicode_GET_LENGTH(object o)
    object PyUnicode_DecodeUTF8(const char *s, Py_ssize_t size, const char *errors)
    object PyUnicode_AsUTF8String(object o)


cdef extern from "turbows_kernels.h" nogil:
    ctypedef struct turbows_utf8_state:
        pass
    void turbows_kernels_init()
    const char *turbows_kernels_isa()
    int turbows_kernels_force(const char *isa)
    void turbows_mask(uint8_t *dst, const uint8_t *src, size_t length, const uint8_t *mask)
    int turbows_utf8_valid(const uint8_t *buf, size_t length)
    int turbows_is_ascii(const uint8_t *buf, size_t length)
    int turbows_mask_ascii(uint8_t *dst, const uint8_t *src, size_t length, const uint8_t *mask)
    void turbows_utf8_init(turbows_utf8_state *st)
    int turbows_utf8_feed(turbows_utf8_state *st, const uint8_t *buf, size_t length)
    int turbows_utf8_complete(const turbows_utf8_state *st)


turbows_kernels_init()

# Below this many bytes the inline loop masks faster than a call into the kernels (measured
# with bench: the call and its dispatch cost more than the work for short payloads).
DEF SMALL_MASK = 64
# Release the GIL for kernels only on payloads at least this long.
DEF NOGIL_THRESHOLD = 1 << 18
# A frame at least this long appended to an empty FrameWriter is built in its own bytes
# object (see FrameWriter._whole): the copy saved outweighs an allocation.
DEF WHOLE_FRAME_MIN = 8192

DEF OP_CONT = 0
DEF OP_TEXT = 1
DEF OP_BINARY = 2
DEF OP_CLOSE = 8
DEF OP_PING = 9
DEF OP_PONG = 10


def kernel_isa():
    """Name the instruction set the masking and UTF-8 kernels use."""
    return turbows_kernels_isa().decode("ascii")


def _force_isa(str isa):
    """Use the kernels of ``isa`` (tests); raise ValueError if this CPU cannot."""
    cdef bytes name = isa.encode("ascii")
    if turbows_kernels_force(name) != 0:
        raise ValueError(f"instruction set {isa!r} is not available on this CPU")


# ---------------------------------------------------------------------------------------------
# Small inline kernels.

cdef inline uint64_t _load64(const uint8_t *p) noexcept nogil:
    cdef uint64_t v
    memcpy(&v, p, 8)
    return v


cdef inline void _store64(uint8_t *p, uint64_t v) noexcept nogil:
    memcpy(p, &v, 8)


cdef inline void _mask(uint8_t *dst, const uint8_t *src, Py_ssize_t n,
                       const uint8_t *m) noexcept:
    """dst = src ^ m (repeated); dst may equal src."""
    cdef Py_ssize_t i = 0
    cdef uint8_t m8[8]
    cdef uint64_t k
    if n >= SMALL_MASK:
        if n >= NOGIL_THRESHOLD:
            with nogil:
                turbows_mask(dst, src, <size_t>n, m)
        else:
            turbows_mask(dst, src, <size_t>n, m)
        return
    memcpy(m8, m, 4)
    memcpy(m8 + 4, m, 4)
    k = _load64(m8)
    while i + 8 <= n:
        _store64(dst + i, _load64(src + i) ^ k)
        i += 8
    while i < n:
        dst[i] = src[i] ^ m[i & 3]
        i += 1


cdef inline bint _is_ascii(const uint8_t *p, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t i = 0
    cdef uint64_t acc = 0
    while i + 32 <= n:
        acc |= _load64(p + i) | _load64(p + i + 8) | _load64(p + i + 16) | _load64(p + i + 24)
        i += 32
    while i + 8 <= n:
        acc |= _load64(p + i)
        i += 8
    while i < n:
        acc |= p[i]
        i += 1
    return (acc & 0x8080808080808080ULL) == 0


cdef inline bint _copy_ascii(uint8_t *dst, const uint8_t *src, Py_ssize_t n,
                             const uint8_t *m, bint masked) noexcept:
    """Copy ``src`` to ``dst``, unmasked with ``m`` if ``masked``; tell whether the result is
    pure ASCII. Long payloads are checked block by block as they are unmasked, while the
    block is still in the L1 cache (one pass over memory instead of two)."""
    cdef bint ascii
    if n < SMALL_MASK:
        if masked:
            _mask(dst, src, n, m)
        else:
            memcpy(dst, src, <size_t>n)
        return _is_ascii(dst, n)
    if not masked:
        memcpy(dst, src, <size_t>n)
        return turbows_is_ascii(dst, <size_t>n)
    if n >= NOGIL_THRESHOLD:
        with nogil:
            ascii = turbows_mask_ascii(dst, src, <size_t>n, m)
        return ascii
    return turbows_mask_ascii(dst, src, <size_t>n, m)


cdef inline void _rotate(uint8_t *out, const uint8_t *m, uint64_t offset) noexcept nogil:
    cdef int r = <int>(offset & 3)
    out[0] = m[r]
    out[1] = m[(r + 1) & 3]
    out[2] = m[(r + 2) & 3]
    out[3] = m[(r + 3) & 3]


cdef inline Py_ssize_t _utf8_cut(const uint8_t *p, Py_ssize_t n) noexcept nogil:
    """Length of the longest prefix of valid UTF-8 ``p[:n]`` that ends on a character."""
    cdef Py_ssize_t i = n
    cdef Py_ssize_t back = 0
    cdef uint8_t c
    while i > 0 and back < 3:
        c = p[i - 1]
        if c < 0x80:
            return n
        if c >= 0xC0:
            # A lead byte: is its sequence complete?
            if (c >= 0xF0 and back >= 3) or (0xE0 <= c < 0xF0 and back >= 2) or (
                    c < 0xE0 and back >= 1):
                return n
            return i - 1
        i -= 1
        back += 1
    return n


# ---------------------------------------------------------------------------------------------
# Buffers.

cdef int _grow(uint8_t **buf, Py_ssize_t *cap, Py_ssize_t need, Py_ssize_t smallest) except -1:
    """Grow the malloc'd ``*buf`` of ``*cap`` bytes to hold ``need`` (doubling, at least
    ``smallest``)."""
    cdef Py_ssize_t size = cap[0] * 2
    cdef uint8_t *grown
    if size < need:
        size = need
    if size < smallest:
        size = smallest
    grown = <uint8_t *>realloc(buf[0], <size_t>size)
    if grown == NULL:
        raise MemoryError()
    buf[0] = grown
    cap[0] = size
    return 0

cdef inline int _get_buffer(object obj, Py_buffer *view, bint writable) except -1:
    if not PyObject_CheckBuffer(obj):
        raise TypeError(f"a bytes-like object is required, not {type(obj).__name__!r}")
    if writable:
        # Any layout first, so that a read-only buffer is reported as such before its shape.
        PyObject_GetBuffer(obj, view, PyBUF_FULL_RO)
        if view.readonly:
            PyBuffer_Release(view)
            raise TypeError("the buffer must be writable")
        if not PyBuffer_IsContiguous(view, b'C'):
            PyBuffer_Release(view)
            raise BufferError("the buffer must be C-contiguous")
        return 0
    try:
        PyObject_GetBuffer(obj, view, PyBUF_C_CONTIGUOUS)
    except BufferError:
        raise BufferError("the buffer must be C-contiguous") from None
    return 0


cdef int _load_mask(object mask, uint8_t *out) except -1:
    cdef Py_buffer view
    if type(mask) is bytes and PyBytes_GET_SIZE(mask) == 4:
        memcpy(out, PyBytes_AS_STRING(mask), 4)
        return 0
    _get_buffer(mask, &view, False)
    try:
        if view.len != 4:
            raise ValueError(f"mask must be 4 bytes, got {view.len}")
        memcpy(out, view.buf, 4)
    finally:
        PyBuffer_Release(&view)
    return 0


def apply_mask(data, mask):
    """XOR ``data`` with the 4-byte ``mask`` repeated (RFC 6455 5.3) and return new bytes.

    Args:
        data: any C-contiguous bytes-like object.
        mask: the 4-byte masking key.

    Returns:
        The masked (or, applied again, unmasked) bytes.

    Raises:
        TypeError: ``data`` or ``mask`` is not bytes-like.
        ValueError: ``mask`` is not 4 bytes long.
    """
    cdef uint8_t m[4]
    cdef Py_buffer view
    cdef bytes out
    _load_mask(mask, m)
    if type(data) is bytes:
        out = PyBytes_FromStringAndSize(NULL, PyBytes_GET_SIZE(data))
        _mask(<uint8_t *>PyBytes_AS_STRING(out), <const uint8_t *>PyBytes_AS_STRING(data),
              PyBytes_GET_SIZE(data), m)
        return out
    _get_buffer(data, &view, False)
    try:
        out = PyBytes_FromStringAndSize(NULL, view.len)
        _mask(<uint8_t *>PyBytes_AS_STRING(out), <const uint8_t *>view.buf, view.len, m)
    finally:
        PyBuffer_Release(&view)
    return out


def apply_mask_inplace(buf, mask):
    """XOR a writable buffer with the 4-byte ``mask`` in place.

    Raises:
        TypeError: ``buf`` is not a writable bytes-like object, or ``mask`` is not bytes-like.
        ValueError: ``mask`` is not 4 bytes long.
    """
    cdef uint8_t m[4]
    cdef Py_buffer view
    _load_mask(mask, m)
    if type(buf) is bytearray and PyByteArray_GET_SIZE(buf) < NOGIL_THRESHOLD:
        # No buffer export for the common case: the GIL is held throughout, so no other thread
        # can resize the bytearray. A longer one is masked with the GIL released, under an
        # export (below), which makes a resize from another thread fail with BufferError
        # instead of freeing the memory being masked.
        _mask(<uint8_t *>PyByteArray_AS_STRING(buf), <const uint8_t *>PyByteArray_AS_STRING(buf),
              PyByteArray_GET_SIZE(buf), m)
        return
    _get_buffer(buf, &view, True)
    try:
        _mask(<uint8_t *>view.buf, <const uint8_t *>view.buf, view.len, m)
    finally:
        PyBuffer_Release(&view)


def validate_utf8(data):
    """Tell whether ``data`` is complete, valid UTF-8 (RFC 3629).

    Raises:
        TypeError: ``data`` is not bytes-like.
    """
    cdef Py_buffer view
    cdef int ok
    if type(data) is bytes:
        return turbows_utf8_valid(<const uint8_t *>PyBytes_AS_STRING(data),
                                 <size_t>PyBytes_GET_SIZE(data)) != 0
    _get_buffer(data, &view, False)
    try:
        ok = turbows_utf8_valid(<const uint8_t *>view.buf, <size_t>view.len)
    finally:
        PyBuffer_Release(&view)
    return ok != 0


cdef class Utf8Validator:
    """Incremental UTF-8 validator for a message that arrives in pieces.

    ``feed`` returns False as soon as the bytes seen so far cannot be the start of valid UTF-8,
    even in the middle of a sequence; ``complete`` tells whether the message may end here.
    """

    cdef turbows_utf8_state _state
    cdef bint _ok

    def __cinit__(self):
        turbows_utf8_init(&self._state)
        self._ok = True

    def feed(self, data):
        """Validate the next piece.

        Returns:
            True while everything fed so far is a valid UTF-8 prefix; False from the first
            piece that makes it invalid on (the validator stays failed until ``reset``).
        """
        cdef Py_buffer view
        _get_buffer(data, &view, False)
        try:
            if self._ok:
                self._ok = turbows_utf8_feed(&self._state, <const uint8_t *>view.buf,
                                            <size_t>view.len) != 0
        finally:
            PyBuffer_Release(&view)
        return self._ok

    @property
    def complete(self):
        """True if no invalid byte was seen and no sequence is left incomplete."""
        return self._ok and turbows_utf8_complete(&self._state) != 0

    def reset(self):
        """Forget everything fed so far."""
        turbows_utf8_init(&self._state)
        self._ok = True


# ---------------------------------------------------------------------------------------------
# Items produced by the parser. They are also the connection's message events. They hold only
# str/bytes/int/bool, so they cannot be part of a reference cycle: keeping them out of the
# cyclic GC stops it from running while thousands of them are created per chunk. Their
# constructors enforce it (exact types: an instance of a subclass may hold a cycle), as the
# pure-Python twin's do.

# _DataMessage's attributes are declared in _speedups.pxd.
@cython.no_gc
@cython.freelist(512)
cdef class _DataMessage:
    def __init__(self, data, final=True):
        if type(data) is not bytes and type(data) is not str:
            raise _wrong_type("data", "bytes or str", data)
        self.data = data
        self.final = final

    def __eq__(self, other):
        if type(other) is not type(self):
            return NotImplemented
        return self.data == (<_DataMessage>other).data and self.final == (<_DataMessage>other).final

    __hash__ = None

    def __repr__(self):
        if self.final:
            return f"{type(self).__name__}(data={self.data!r})"
        return f"{type(self).__name__}(data={self.data!r}, final=False)"


@cython.no_gc
@cython.final
cdef class TextMessage(_DataMessage):
    """A text message (``data`` is ``str``, or UTF-8 ``bytes`` when text is kept as bytes).

    ``final`` is False for a fragment that more fragments of the same message follow.
    """


@cython.no_gc
@cython.final
cdef class BinaryMessage(_DataMessage):
    """A binary message (``data`` is ``bytes``); ``final`` as for :class:`TextMessage`."""


@cython.no_gc
cdef class _ControlMessage:
    cdef readonly bytes payload

    def __init__(self, payload=b""):
        if type(payload) is not bytes:
            raise _wrong_type("payload", "bytes", payload)
        self.payload = payload

    def __eq__(self, other):
        if type(other) is not type(self):
            return NotImplemented
        return self.payload == (<_ControlMessage>other).payload

    __hash__ = None

    def __repr__(self):
        return f"{type(self).__name__}(payload={self.payload!r})"


@cython.no_gc
@cython.final
cdef class Ping(_ControlMessage):
    """A ping frame was received; ``payload`` is its application data."""


@cython.no_gc
@cython.final
cdef class Pong(_ControlMessage):
    """A pong frame was received; ``payload`` is its application data."""


@cython.no_gc
@cython.final
cdef class CloseReceived:
    """A close frame was received.

    Attributes:
        code: the close code, 1005 (``NO_STATUS_RCVD``) when the frame carried none.
        reason: the close reason, possibly empty.
    """

    cdef readonly object code
    cdef readonly str reason

    def __init__(self, code, reason=""):
        if type(code) is not int and type(code) is not _CloseCode:
            raise _wrong_type("code", "int", code)
        if type(reason) is not str:
            raise _wrong_type("reason", "str", reason)
        self.code = code
        self.reason = reason

    def __eq__(self, other):
        if type(other) is not CloseReceived:
            return NotImplemented
        return self.code == (<CloseReceived>other).code and self.reason == (<CloseReceived>other).reason

    __hash__ = None

    def __repr__(self):
        return f"CloseReceived(code={int(self.code)}, reason={self.reason!r})"


cdef inline TextMessage _text(object data, bint final):
    cdef TextMessage m = TextMessage.__new__(TextMessage)
    m.data = data
    m.final = final
    return m


cdef inline BinaryMessage _binary(object data, bint final):
    cdef BinaryMessage m = BinaryMessage.__new__(BinaryMessage)
    m.data = data
    m.final = final
    return m


cdef object _parse_close(const uint8_t *p, Py_ssize_t n):
    cdef int code
    cdef CloseReceived item
    if n == 0:
        return CloseReceived(_close_code(1005), "")
    if n == 1:
        raise ProtocolError(1002, "close frame with a 1-byte payload")
    code = (p[0] << 8) | p[1]
    if not _is_valid_close_code(code):
        raise ProtocolError(1002, f"invalid close code {code}")
    if not turbows_utf8_valid(p + 2, <size_t>(n - 2)):
        raise ProtocolError(1007, "invalid UTF-8 in close reason")
    return CloseReceived(_close_code(code), PyUnicode_DecodeUTF8(<const char *>p + 2, n - 2, NULL))


def encode_close(code=None, str reason=""):
    """Build the payload of a close frame.

    Args:
        code: a close code that may be sent (see ``is_valid_close_code``), or None for an empty
            payload (then ``reason`` must be empty).
        reason: at most 123 bytes once encoded as UTF-8.

    Raises:
        ValueError: the code may not be sent, or the reason is too long or given without code.
    """
    if code is None:
        if reason:
            raise ValueError("a close reason needs a close code")
        return b""
    code = int(code)
    if not _is_valid_close_code(code):
        raise ValueError(f"close code {code} may not be sent in a close frame")
    raw = reason.encode("utf-8")
    if len(raw) > 123:
        raise ValueError(f"close reason is {len(raw)} bytes long; the limit is 123")
    return (<int>code).to_bytes(2, "big") + raw


# ---------------------------------------------------------------------------------------------
# Receive side.

DEF NEED_HEADER = 0
DEF IN_PAYLOAD = 1

_INTERRUPTED = _interrupted(MemoryError())


cdef class FrameParser:
    """Incremental receive-side parser: bytes in, assembled messages and control frames out.

    One ``feed`` call per chunk of socket data parses every complete frame in it, unmasks the
    payloads, applies the RFC 6455 rules and the size limit, reassembles fragmented messages,
    validates text incrementally and returns the finished items in order.

    Args:
        require_mask: True on the server side (client frames MUST be masked, RFC 6455 5.1),
            False on the client side (server frames MUST NOT be masked).
        max_message_size: the largest message payload accepted, or None for no limit; a larger
            message fails with close code 1009 as soon as its header announces the excess.
        fragments: deliver each data frame as it arrives (``final`` tells the last one) instead
            of whole messages.
        text_as_bytes: deliver text as validated UTF-8 ``bytes`` instead of ``str``.
        inflater: the negotiated compression extension's receive side, or None. When set, RSV1
            marks a compressed message (RFC 7692 6.1) and each piece of its payload goes
            through ``inflater.feed(data, final, limit)``, which returns the inflated bytes
            and, with ``final``, ends the message. To keep memory bounded it returns at most
            ``limit + 1`` bytes (``limit`` is -1 when there is no limit); the parser fails the
            message with 1009 as soon as the inflated size passes ``max_message_size``.
    """

    cdef bint _require_mask
    cdef bint _fragments
    cdef bint _text_as_bytes
    cdef long long _max
    # A frame header split across chunks.
    cdef uint8_t _hdr[14]
    cdef Py_ssize_t _hdr_len
    cdef int _state
    # The frame being received.
    cdef int _opcode
    cdef bint _fin
    cdef bint _masked
    cdef uint8_t _key[4]
    cdef uint64_t _remaining
    cdef uint64_t _offset
    cdef uint8_t _ctl[128]
    cdef Py_ssize_t _ctl_len
    # The data message being received (_msg_opcode 0 when none).
    cdef int _msg_opcode
    cdef long long _msg_size
    cdef uint8_t *_mbuf
    cdef Py_ssize_t _mlen
    cdef Py_ssize_t _mcap
    cdef turbows_utf8_state _utf8
    # Fragment mode: the bytes of a character split between two text frames.
    cdef uint8_t _tail[4]
    cdef Py_ssize_t _tail_len
    # Compressed messages (RFC 7692): the extension's inflater, and the inflated size so far.
    cdef object _inflater
    cdef bint _compressed
    cdef long long _plain_size
    cdef object _error
    cdef bint _closed
    # A feed() is running: _parse may release the GIL (long payloads) or call the inflater,
    # and another thread's feed() would then reallocate or free _mbuf under it.
    cdef bint _busy
    cdef public int controls

    def __cinit__(self):
        self._mbuf = NULL
        self._mcap = 0

    def __init__(self, *, require_mask=True, max_message_size=1 << 20, fragments=False,
                 text_as_bytes=False, inflater=None):
        if max_message_size is not None and max_message_size < 0:
            raise ValueError("max_message_size must be >= 0 or None")
        self._require_mask = bool(require_mask)
        self._max = -1 if max_message_size is None else min(int(max_message_size), 1 << 62)
        self._fragments = bool(fragments)
        self._text_as_bytes = bool(text_as_bytes)
        self._hdr_len = 0
        self._state = NEED_HEADER
        self._msg_opcode = 0
        self._msg_size = 0
        self._mlen = 0
        self._tail_len = 0
        self._inflater = inflater
        self._compressed = False
        self._plain_size = 0
        self._error = None
        self._closed = False
        self.controls = 0

    def __dealloc__(self):
        free(self._mbuf)

    @property
    def closed(self):
        """True once a close frame was parsed; later bytes are ignored."""
        return self._closed

    @property
    def buffered(self):
        """Bytes of the unfinished data message received so far, plus a split frame header."""
        return self._hdr_len + self._msg_size

    def feed(self, data):
        """Parse a chunk of received bytes.

        Returns:
            The items completed by this chunk, in order: :class:`TextMessage`,
            :class:`BinaryMessage`, :class:`Ping`, :class:`Pong` and :class:`CloseReceived`.
            ``controls`` is then the number of control items among them.

        Raises:
            ProtocolError: the peer broke the protocol; ``code`` is the close code to send and
                ``items`` holds what was completed before the violation. The parser stays
                failed: every later call raises the same error. An exception other than a
                protocol error (MemoryError, KeyboardInterrupt, an error from the inflater)
                interrupting a call leaves the stream at an unknown point: it propagates, and
                every later call raises a ProtocolError with code 1011.
            ConcurrentUseError: another call is running (another thread, or the inflater
                calling back); that call is not disturbed.
        """
        cdef Py_buffer view
        cdef list out = []
        if self._busy:
            raise ConcurrentUseError("FrameParser.feed()")
        self.controls = 0
        if type(data) is bytes:
            if self._error is not None:
                raise ProtocolError(self._error.code, self._error.reason)
            if self._closed:
                return out
            self._run(<const uint8_t *>PyBytes_AS_STRING(data), PyBytes_GET_SIZE(data), out)
            return out
        _get_buffer(data, &view, False)
        try:
            if self._error is not None:
                raise ProtocolError(self._error.code, self._error.reason)
            if not self._closed:
                self._run(<const uint8_t *>view.buf, view.len, out)
        finally:
            PyBuffer_Release(&view)
        return out

    cdef int _run(self, const uint8_t *p, Py_ssize_t n, list out) except -1:
        self._busy = True
        try:
            self._parse(p, n, out)
        except ProtocolError as exc:
            self._fail(exc)
            exc.items = out
            raise
        except BaseException as exc:
            # Part of the chunk was consumed, and the items it completed go with this call:
            # no later call can resume the stream correctly. (A prebuilt error first, in
            # case building the one that names the exception fails too.)
            self._fail(_INTERRUPTED)
            self._error = _interrupted(exc)
            raise
        finally:
            self._busy = False
        return 0

    cdef void _fail(self, object error) noexcept:
        """Stay failed with ``error``; nothing is buffered once failed (``buffered`` is 0)."""
        self._error = error
        self._hdr_len = 0
        self._mlen = 0
        self._msg_size = 0
        self._tail_len = 0
        self._release_buffer()

    cdef void _release_buffer(self) noexcept:
        free(self._mbuf)
        self._mbuf = NULL
        self._mcap = 0

    cdef inline int _reserve(self, Py_ssize_t extra) except -1:
        if self._mlen + extra > self._mcap:
            _grow(&self._mbuf, &self._mcap, self._mlen + extra, 256)
        return 0

    cdef int _check_first_bytes(self, uint8_t b0, uint8_t b1) except -1:
        cdef int opcode = b0 & 0x0F
        # RFC 6455 5.2: RSV1-3 MUST be 0 unless an extension defines them. RFC 7692 6.1:
        # permessage-deflate owns RSV1, set on the first frame of a compressed message only.
        if b0 & 0x70:
            if (b0 & 0x70) != 0x40 or self._inflater is None:
                raise ProtocolError(1002, f"reserved bits set: 0x{b0 & 0x70:02x}")
            if opcode != OP_TEXT and opcode != OP_BINARY:
                raise ProtocolError(1002, "RSV1 set on a frame that does not start a message")
        if opcode >= 8:
            if opcode > OP_PONG:
                raise ProtocolError(1002, f"reserved opcode 0x{opcode:x}")
            # RFC 6455 5.5: control frames MUST NOT be fragmented and carry <= 125 bytes.
            if not b0 & 0x80:
                raise ProtocolError(1002, "fragmented control frame")
            if (b1 & 0x7F) > 125:
                raise ProtocolError(1002, "control frame payload longer than 125 bytes")
        elif opcode == OP_CONT:
            if not self._msg_opcode:
                raise ProtocolError(1002, "continuation frame without a message to continue")
        elif opcode <= OP_BINARY:
            if self._msg_opcode:
                raise ProtocolError(1002, "new data frame while a fragmented message is unfinished")
        else:
            raise ProtocolError(1002, f"reserved opcode 0x{opcode:x}")
        # RFC 6455 5.1: clients mask every frame, servers never do.
        if b1 & 0x80:
            if not self._require_mask:
                raise ProtocolError(1002, "frame from the server is masked")
        elif self._require_mask:
            raise ProtocolError(1002, "frame from the client is not masked")
        return 0

    cdef Py_ssize_t _header(self, const uint8_t *h, Py_ssize_t avail) except -1:
        """Parse the header at ``h``; return its length, or 0 if ``avail`` is too short."""
        cdef uint8_t b0, b1
        cdef Py_ssize_t hlen
        cdef uint64_t length
        cdef int opcode
        cdef bint compressed
        if avail < 2:
            return 0
        b0 = h[0]
        b1 = h[1]
        self._check_first_bytes(b0, b1)
        length = b1 & 0x7F
        hlen = 2
        if length == 126:
            hlen = 4
        elif length == 127:
            hlen = 10
        if b1 & 0x80:
            hlen += 4
        if avail < hlen:
            return 0
        if length == 126:
            length = (<uint64_t>h[2] << 8) | h[3]
        elif length == 127:
            length = ((<uint64_t>h[2] << 56) | (<uint64_t>h[3] << 48) | (<uint64_t>h[4] << 40)
                      | (<uint64_t>h[5] << 32) | (<uint64_t>h[6] << 24) | (<uint64_t>h[7] << 16)
                      | (<uint64_t>h[8] << 8) | <uint64_t>h[9])
            if length >> 63:
                raise ProtocolError(1002, "frame length has its most significant bit set")
        opcode = b0 & 0x0F
        # A compressed message is bounded by its inflated size instead (_compressed_piece):
        # its frames are inflated as they arrive, never buffered whole.
        compressed = self._compressed if opcode == OP_CONT else (b0 & 0x40) != 0
        if (opcode < 8 and not compressed and self._max >= 0
                and <uint64_t>self._msg_size + length > <uint64_t>self._max):
            raise ProtocolError(
                1009,
                f"message of {self._msg_size + length} bytes or more exceeds the"
                f" limit of {self._max}",
            )
        self._opcode = opcode
        self._fin = (b0 & 0x80) != 0
        self._masked = (b1 & 0x80) != 0
        if self._masked:
            memcpy(self._key, h + hlen - 4, 4)
        self._remaining = length
        self._offset = 0
        self._ctl_len = 0
        if opcode == OP_TEXT or opcode == OP_BINARY:
            self._msg_opcode = opcode
            self._compressed = (b0 & 0x40) != 0
            if opcode == OP_TEXT:
                turbows_utf8_init(&self._utf8)
        return hlen

    cdef int _parse(self, const uint8_t *p, Py_ssize_t n, list out) except -1:
        cdef Py_ssize_t pos = 0
        cdef Py_ssize_t hlen, have, take, length
        cdef uint8_t key[4]
        cdef uint8_t *dst
        if self._hdr_len:
            # Complete the header carried over from the previous chunk.
            have = self._hdr_len
            take = 14 - have
            if take > n:
                take = n
            memcpy(self._hdr + have, p, <size_t>take)
            hlen = self._header(self._hdr, have + take)
            if hlen == 0:
                self._hdr_len = have + take
                return 0
            pos = hlen - have
            self._hdr_len = 0
            self._state = IN_PAYLOAD
        while True:
            if self._state == NEED_HEADER:
                hlen = self._header(p + pos, n - pos)
                if hlen == 0:
                    memcpy(self._hdr, p + pos, <size_t>(n - pos))
                    self._hdr_len = n - pos
                    return 0
                pos += hlen
                length = <Py_ssize_t>self._remaining
                if (self._fin and self._opcode != OP_CONT and self._opcode < 8
                        and not self._compressed and self._remaining <= <uint64_t>(n - pos)):
                    # Fast path: a whole unfragmented message in this chunk.
                    self._whole_message(p + pos, length, out)
                    pos += length
                    self._msg_opcode = 0
                    continue
                self._state = IN_PAYLOAD
            # Payload of the current frame, possibly split across chunks.
            take = n - pos
            if <uint64_t>take > self._remaining:
                take = <Py_ssize_t>self._remaining
            if self._opcode >= 8:
                dst = self._ctl + self._ctl_len
                self._ctl_len += take
            elif self._compressed:
                self._compressed_piece(p + pos, take)
                pos += take
                if self._remaining:
                    return 0
                self._state = NEED_HEADER
                self._frame_done(out)
                continue
            elif take:
                # Not for an empty piece: _mbuf may still be NULL, and NULL + 0 is undefined.
                self._reserve(take)
                dst = self._mbuf + self._mlen
                self._mlen += take
                self._msg_size += take
            if take == 0:
                pass
            elif self._masked:
                _rotate(key, self._key, self._offset)
                _mask(dst, p + pos, take, key)
            else:
                memcpy(dst, p + pos, <size_t>take)
            pos += take
            self._offset += <uint64_t>take
            self._remaining -= <uint64_t>take
            if self._opcode < 8 and self._msg_opcode == OP_TEXT and take:
                if not turbows_utf8_feed(&self._utf8, dst, <size_t>take):
                    raise ProtocolError(1007, "invalid UTF-8 in text message")
            if self._remaining:
                return 0
            self._state = NEED_HEADER
            self._frame_done(out)
            if self._closed:
                return 0

    cdef int _compressed_piece(self, const uint8_t *p, Py_ssize_t take) except -1:
        """Unmask a piece of a compressed message and append what it inflates to."""
        cdef uint8_t key[4]
        cdef bytes piece = PyBytes_FromStringAndSize(NULL, take)
        cdef uint8_t *raw = <uint8_t *>PyBytes_AS_STRING(piece)
        cdef object plain
        cdef Py_ssize_t size
        cdef bint final
        if take:
            if self._masked:
                _rotate(key, self._key, self._offset)
                _mask(raw, p, take, key)
            else:
                memcpy(raw, p, <size_t>take)
        self._offset += <uint64_t>take
        self._remaining -= <uint64_t>take
        self._msg_size += take
        final = self._fin and self._remaining == 0
        if not take and not final:
            return 0
        plain = self._inflater.feed(
            piece, final, -1 if self._max < 0 else self._max - self._plain_size)
        if type(plain) is not bytes:
            raise TypeError(f"inflater.feed() returned {type(plain).__name__}, not bytes")
        size = PyBytes_GET_SIZE(plain)
        if self._max >= 0 and self._plain_size + size > self._max:
            raise ProtocolError(
                1009, f"message of {self._plain_size + size} bytes or more exceeds the"
                f" limit of {self._max}")
        self._plain_size += size
        if size:
            self._reserve(size)
            memcpy(self._mbuf + self._mlen, PyBytes_AS_STRING(plain), <size_t>size)
            self._mlen += size
            if self._msg_opcode == OP_TEXT:
                if not turbows_utf8_feed(&self._utf8, self._mbuf + self._mlen - size, <size_t>size):
                    raise ProtocolError(1007, "invalid UTF-8 in text message")
        return 0

    cdef int _whole_message(self, const uint8_t *p, Py_ssize_t n, list out) except -1:
        cdef object obj
        cdef uint8_t *dst
        if self._opcode == OP_BINARY:
            obj = PyBytes_FromStringAndSize(NULL, n)
            dst = <uint8_t *>PyBytes_AS_STRING(obj)
            if self._masked:
                _mask(dst, p, n, self._key)
            else:
                memcpy(dst, p, <size_t>n)
            PyList_Append(out, _binary(obj, True))
            return 0
        if self._text_as_bytes:
            obj = PyBytes_FromStringAndSize(NULL, n)
            dst = <uint8_t *>PyBytes_AS_STRING(obj)
            if (not _copy_ascii(dst, p, n, self._key, self._masked)
                    and not turbows_utf8_valid(dst, <size_t>n)):
                raise ProtocolError(1007, "invalid UTF-8 in text message")
            PyList_Append(out, _text(obj, True))
            return 0
        # Text as str: unmask straight into an ASCII string, the common case; anything else
        # is validated and decoded from the same bytes.
        obj = PyUnicode_New(n, 127)
        dst = <uint8_t *>PyUnicode_DATA(obj)
        if not _copy_ascii(dst, p, n, self._key, self._masked):
            if not turbows_utf8_valid(dst, <size_t>n):
                raise ProtocolError(1007, "invalid UTF-8 in text message")
            obj = PyUnicode_DecodeUTF8(<const char *>dst, n, NULL)
        PyList_Append(out, _text(obj, True))
        return 0

    cdef int _frame_done(self, list out) except -1:
        cdef int opcode = self._opcode
        cdef bint is_text
        cdef object data
        cdef Py_ssize_t cut
        if opcode >= 8:
            self.controls += 1
            if opcode == OP_PING:
                PyList_Append(out, Ping(PyBytes_FromStringAndSize(<char *>self._ctl, self._ctl_len)))
            elif opcode == OP_PONG:
                PyList_Append(out, Pong(PyBytes_FromStringAndSize(<char *>self._ctl, self._ctl_len)))
            else:
                PyList_Append(out, _parse_close(self._ctl, self._ctl_len))
                self._closed = True
            return 0
        is_text = self._msg_opcode == OP_TEXT
        if self._fin and is_text and not turbows_utf8_complete(&self._utf8):
            raise ProtocolError(1007, "invalid UTF-8 in text message")
        if self._fragments:
            if is_text and not self._text_as_bytes:
                data = self._fragment_text()
            else:
                data = PyBytes_FromStringAndSize(<char *>self._mbuf, self._mlen)
            self._mlen = 0
            PyList_Append(out, _text(data, self._fin) if is_text else _binary(data, self._fin))
        elif self._fin:
            if is_text and not self._text_as_bytes:
                data = PyUnicode_DecodeUTF8(<char *>self._mbuf, self._mlen, NULL)
            else:
                data = PyBytes_FromStringAndSize(<char *>self._mbuf, self._mlen)
            self._mlen = 0
            PyList_Append(out, _text(data, True) if is_text else _binary(data, True))
        if self._fin:
            self._msg_opcode = 0
            self._msg_size = 0
            self._plain_size = 0
            self._compressed = False
            self._tail_len = 0
            if self._mcap > (1 << 16):
                # Do not keep a large message's buffer for the life of the connection.
                self._release_buffer()
        return 0

    cdef object _fragment_text(self):
        """Decode this text frame's payload, keeping a character split at its end for later."""
        cdef Py_ssize_t total, cut
        cdef uint8_t *buf
        cdef object text
        if self._tail_len:
            # Put the carried bytes in front of this frame's payload.
            self._reserve(self._tail_len)
            memmove(self._mbuf + self._tail_len, self._mbuf, <size_t>self._mlen)
            memcpy(self._mbuf, self._tail, <size_t>self._tail_len)
            self._mlen += self._tail_len
            self._tail_len = 0
        buf = self._mbuf
        total = self._mlen
        if total == 0:
            return ""
        cut = _utf8_cut(buf, total) if not self._fin else total
        text = PyUnicode_DecodeUTF8(<char *>buf, cut, NULL)
        self._tail_len = total - cut
        memcpy(self._tail, buf + cut, <size_t>self._tail_len)
        return text


# ---------------------------------------------------------------------------------------------
# Send side.

DEF POOL_SIZE = 4096

# Masking keys come from a buffered pool of os.urandom bytes (RFC 6455 10.3: unpredictable
# keys from a strong source), refilled one system call per 1024 frames.
cdef uint8_t _pool[POOL_SIZE]
cdef Py_ssize_t _pool_pos = POOL_SIZE
_urandom = _os.urandom


def _reset_mask_pool():
    """Forget the pooled keys. A child process starts with a copy of its parent's pool: both
    would mask their next frames with the same keys."""
    global _pool_pos
    _pool_pos = POOL_SIZE


if hasattr(_os, "register_at_fork"):  # not on Windows, which has no fork()
    _os.register_at_fork(after_in_child=_reset_mask_pool)


cdef inline int _next_key(uint8_t *key) except -1:
    global _pool_pos
    cdef bytes fresh
    if _pool_pos + 4 > POOL_SIZE:
        fresh = _urandom(POOL_SIZE)
        memcpy(_pool, PyBytes_AS_STRING(fresh), POOL_SIZE)
        _pool_pos = 0
    memcpy(key, _pool + _pool_pos, 4)
    _pool_pos += 4
    return 0


cdef inline Py_ssize_t _header_size(Py_ssize_t length, bint masked) noexcept:
    cdef Py_ssize_t h = 2 if length < 126 else (4 if length < 0x10000 else 10)
    return h + 4 if masked else h


cdef inline Py_ssize_t _write_header(uint8_t *out, int b0, Py_ssize_t length,
                                     bint masked) noexcept:
    cdef uint8_t mbit = 0x80 if masked else 0
    cdef uint64_t n = <uint64_t>length
    out[0] = <uint8_t>b0
    if length < 126:
        out[1] = mbit | <uint8_t>length
        return 2
    if length < 0x10000:
        out[1] = mbit | 126
        out[2] = <uint8_t>(n >> 8)
        out[3] = <uint8_t>n
        return 4
    out[1] = mbit | 127
    out[2] = <uint8_t>(n >> 56)
    out[3] = <uint8_t>(n >> 48)
    out[4] = <uint8_t>(n >> 40)
    out[5] = <uint8_t>(n >> 32)
    out[6] = <uint8_t>(n >> 24)
    out[7] = <uint8_t>(n >> 16)
    out[8] = <uint8_t>(n >> 8)
    out[9] = <uint8_t>n
    return 10


_VALID_OPCODES = frozenset((0, 1, 2, 8, 9, 10))


cdef int _check_frame(object opcode, Py_ssize_t length, bint fin, object rsv) except -1:
    if opcode not in _VALID_OPCODES:
        raise ValueError(f"invalid opcode {opcode}")
    if rsv & ~0x70:
        raise ValueError(f"rsv must only use bits 0x70, got 0x{rsv:x}")
    if opcode >= 8:
        if not fin:
            raise ValueError("control frames cannot be fragmented")
        if length > 125:
            raise ValueError(f"control frame payload is {length} bytes long; the limit is 125")
    return 0


cdef class _Payload:
    """The bytes of a payload argument: str as UTF-8, or any C-contiguous buffer."""

    cdef const uint8_t *ptr
    cdef Py_ssize_t size
    cdef object keep
    cdef Py_buffer view
    cdef bint has_view

    def __dealloc__(self):
        if self.has_view:
            PyBuffer_Release(&self.view)


cdef _Payload _payload(object payload):
    cdef _Payload pl = _Payload.__new__(_Payload)
    if type(payload) is str:
        if PyUnicode_IS_ASCII(payload):
            pl.keep = payload
            pl.ptr = <const uint8_t *>PyUnicode_DATA(payload)
            pl.size = PyUnicode_GET_LENGTH(payload)
        else:
            pl.keep = PyUnicode_AsUTF8String(payload)
            pl.ptr = <const uint8_t *>PyBytes_AS_STRING(pl.keep)
            pl.size = PyBytes_GET_SIZE(pl.keep)
    elif type(payload) is bytes:
        pl.keep = payload
        pl.ptr = <const uint8_t *>PyBytes_AS_STRING(payload)
        pl.size = PyBytes_GET_SIZE(payload)
    else:
        _get_buffer(payload, &pl.view, False)
        pl.has_view = True
        pl.ptr = <const uint8_t *>pl.view.buf
        pl.size = pl.view.len
    return pl


def build_frame(opcode, payload, *, fin=True, rsv=0, mask=None):
    """Build one frame.

    Args:
        opcode: the frame's opcode (0, 1, 2, 8, 9 or 10).
        payload: bytes-like, or ``str`` (sent as UTF-8).
        fin: False for every fragment but the last.
        rsv: RSV bits (0x40, 0x20, 0x10) owned by a negotiated extension.
        mask: a 4-byte masking key, or None for an unmasked frame.

    Raises:
        ValueError: bad opcode or rsv, a fragmented or oversized control frame, a bad mask.
        TypeError: the payload is neither bytes-like nor ``str``.
    """
    cdef _Payload pl = _payload(payload)
    cdef uint8_t key[4]
    cdef bint masked = mask is not None
    cdef bint f = bool(fin)
    cdef Py_ssize_t h
    cdef uint8_t *out
    _check_frame(opcode, pl.size, f, rsv)
    if masked:
        _load_mask(mask, key)
    frame = PyBytes_FromStringAndSize(NULL, _header_size(pl.size, masked) + pl.size)
    out = <uint8_t *>PyBytes_AS_STRING(frame)
    h = _write_header(out, (0x80 if f else 0) | <int>rsv | <int>opcode, pl.size, masked)
    if masked:
        memcpy(out + h, key, 4)
        _mask(out + h + 4, pl.ptr, pl.size, key)
    else:
        memcpy(out + h, pl.ptr, <size_t>pl.size)
    return frame


cdef inline const uint8_t *_body_data(object body, Py_ssize_t *n):
    """The bytes of a payload waiting in a FrameWriter (a bytes or an ASCII str object)."""
    if type(body) is str:
        n[0] = PyUnicode_GET_LENGTH(body)
        return <const uint8_t *>PyUnicode_DATA(body)
    n[0] = PyBytes_GET_SIZE(body)
    return <const uint8_t *>PyBytes_AS_STRING(body)


_NOT_A_MESSAGE = "cannot send %s as a message: use str or bytes-like"
_NOT_UTF8 = "text=True needs UTF-8 bytes: message %d is not valid UTF-8"


# Holds bytes, and a tuple of bytes and a str or bytes: nothing that can be part of a cycle.
@cython.no_gc
cdef class FrameWriter:
    """Send side: frames appended to one output buffer, taken out with ``take``.

    Args:
        mask: True on the client side: every frame is masked with a fresh key drawn from a
            buffered pool of ``os.urandom`` bytes (RFC 6455 5.3 and 10.3).
    """

    cdef bint _masked
    cdef uint8_t *_buf
    cdef Py_ssize_t _len
    cdef Py_ssize_t _cap
    # A large frame appended to an empty writer is built straight into a bytes object that
    # take() returns as it is: one copy of the payload fewer. Any later append moves it into
    # the buffer first, so the order of frames is kept.
    cdef bytes _whole
    # Or, unmasked with an immutable payload (bytes, ASCII str), not built at all: the pair
    # (header bytes, payload object) waits, for _take_parts to hand out as it is (a transport
    # writes both with one writev: no copy of the payload in user space) or take() to join.
    # The same rule applies: a later append moves it into the buffer first.
    cdef tuple _parked
    cdef bint _busy

    def __cinit__(self):
        self._buf = NULL
        self._len = 0
        self._cap = 0
        self._whole = None
        self._parked = None

    def __init__(self, *, mask=False):
        self._masked = bool(mask)

    def __dealloc__(self):
        free(self._buf)

    cdef inline int _reserve(self, Py_ssize_t extra) except -1:
        if self._len + extra > self._cap:
            _grow(&self._buf, &self._cap, self._len + extra, 4096)
        return 0

    cdef Py_ssize_t _put(self, uint8_t *out, int b0, const uint8_t *data, Py_ssize_t n):
        """Write one frame at ``out`` (room for its header and payload); return its size."""
        cdef uint8_t key[4]
        cdef Py_ssize_t h = _write_header(out, b0, n, self._masked)
        if self._masked:
            _next_key(key)
            memcpy(out + h, key, 4)
            h += 4
            _mask(out + h, data, n, key)
        else:
            memcpy(out + h, data, <size_t>n)
        return h + n

    cdef int _append(self, int b0, const uint8_t *data, Py_ssize_t n) except -1:
        cdef bytes whole = self._whole
        if self._len == 0 and self._parked is not None:  # a frame waits only in an empty writer
            self._unpark(14 + n)
        elif whole is not None:
            self._unwhole(14 + n)
        elif self._len == 0 and n >= WHOLE_FRAME_MIN:
            whole = PyBytes_FromStringAndSize(NULL, _header_size(n, self._masked) + n)
            self._put(<uint8_t *>PyBytes_AS_STRING(whole), b0, data, n)
            self._whole = whole
            return 0
        self._reserve(14 + n)
        self._len += self._put(self._buf + self._len, b0, data, n)
        return 0

    cdef int _append_object(self, int b0, object obj, const uint8_t *data,
                            Py_ssize_t n) except -1:
        """_append for a payload held by the immutable ``obj``: a large unmasked frame on an
        empty writer waits as (header, ``obj``) instead of being built."""
        cdef uint8_t header[10]
        if (self._masked or n < WHOLE_FRAME_MIN or self._len or self._whole is not None
                or self._parked is not None):
            return self._append(b0, data, n)
        self._parked = (
            PyBytes_FromStringAndSize(<char *>header, _write_header(header, b0, n, False)), obj)
        return 0

    cdef int _unwhole(self, Py_ssize_t extra) except -1:
        """Move the frame built apart (``_whole``) into the buffer, with room for ``extra``
        more bytes."""
        cdef bytes whole = self._whole
        self._reserve(PyBytes_GET_SIZE(whole) + extra)
        memcpy(self._buf + self._len, PyBytes_AS_STRING(whole), PyBytes_GET_SIZE(whole))
        self._len += PyBytes_GET_SIZE(whole)
        self._whole = None
        return 0

    cdef int _unpark(self, Py_ssize_t extra) except -1:
        """Move the waiting (header, payload) frame into the buffer, with room for ``extra``
        more bytes."""
        cdef bytes head = self._parked[0]
        cdef const uint8_t *data
        cdef Py_ssize_t n
        data = _body_data(self._parked[1], &n)
        self._reserve(PyBytes_GET_SIZE(head) + n + extra)
        memcpy(self._buf + self._len, PyBytes_AS_STRING(head), PyBytes_GET_SIZE(head))
        self._len += PyBytes_GET_SIZE(head)
        memcpy(self._buf + self._len, data, <size_t>n)
        self._len += n
        self._parked = None
        return 0

    # Every public method that changes the writer is guarded by _busy (ConcurrentUseError):
    # _put may release the GIL (os.urandom, masking a long payload) while it writes into
    # _buf, which another thread's call would reallocate or free.

    def frame(self, opcode, payload, fin=True, rsv=0):
        """Append one frame; arguments as for :func:`build_frame`.

        Raises:
            ConcurrentUseError: another call on this writer is running (another thread).
        """
        if self._busy:
            raise ConcurrentUseError("FrameWriter.frame()")
        self._busy = True
        try:
            self._frame(opcode, payload, fin, rsv)
        finally:
            self._busy = False

    cdef int _frame(self, object opcode, object payload, object fin, object rsv) except -1:
        cdef _Payload pl = _payload(payload)
        cdef bint f = bool(fin)
        _check_frame(opcode, pl.size, f, rsv)
        self._append((0x80 if f else 0) | <int>rsv | <int>opcode, pl.ptr, pl.size)
        return 0

    def text(self, payload):
        """Append a whole text message in one frame (ConcurrentUseError as for ``frame``)."""
        cdef bytes raw
        if self._busy:
            raise ConcurrentUseError("FrameWriter.text()")
        self._busy = True
        try:
            if type(payload) is not str:
                self._frame(OP_TEXT, payload, True, 0)
            elif PyUnicode_IS_ASCII(payload):
                if PyUnicode_GET_LENGTH(payload) < WHOLE_FRAME_MIN:  # the common case, first
                    self._append(0x81, <const uint8_t *>PyUnicode_DATA(payload),
                                 PyUnicode_GET_LENGTH(payload))
                else:
                    self._append_object(0x81, payload, <const uint8_t *>PyUnicode_DATA(payload),
                                        PyUnicode_GET_LENGTH(payload))
            else:
                raw = PyUnicode_AsUTF8String(payload)
                self._append_object(0x81, raw, <const uint8_t *>PyBytes_AS_STRING(raw),
                                    PyBytes_GET_SIZE(raw))
        finally:
            self._busy = False

    def binary(self, payload):
        """Append a whole binary message in one frame (ConcurrentUseError as for ``frame``)."""
        cdef Py_buffer view
        if self._busy:
            raise ConcurrentUseError("FrameWriter.binary()")
        self._busy = True
        try:
            if type(payload) is str:
                self._frame(OP_BINARY, payload, True, 0)
            elif type(payload) is bytes:
                if PyBytes_GET_SIZE(payload) < WHOLE_FRAME_MIN:
                    self._append(0x82, <const uint8_t *>PyBytes_AS_STRING(payload),
                                 PyBytes_GET_SIZE(payload))
                else:
                    self._append_object(0x82, payload,
                                        <const uint8_t *>PyBytes_AS_STRING(payload),
                                        PyBytes_GET_SIZE(payload))
            else:
                _get_buffer(payload, &view, False)
                try:
                    self._append(0x82, <const uint8_t *>view.buf, view.len)
                finally:
                    PyBuffer_Release(&view)
        finally:
            self._busy = False

    def messages(self, messages, text=None):
        """Append many whole messages, each in one frame, in one call.

        Args:
            messages: ``str`` or bytes-like (``bytes``, ``bytearray``, ``memoryview``)
                messages, in order (any iterable).
            text: None sends ``str`` as text and bytes-like as binary; True sends every
                message as text (bytes as they are, after UTF-8 validation: RFC 6455 5.6);
                False every one as binary (``str`` as UTF-8).

        Returns:
            list: where each message's frame starts in the writer (``len(self)`` before it).

        Raises:
            TypeError: a message is neither ``str`` nor bytes-like.
            ValueError: ``text=True`` and a bytes message is not valid UTF-8.
            UnicodeEncodeError: a ``str`` holds a lone surrogate.
            BufferError: a bytes-like message is not C-contiguous.
            ConcurrentUseError: another call on this writer is running (another thread).

        On an error the writer is left as it was: none of the messages is appended.
        """
        cdef Py_ssize_t saved
        if self._busy:
            raise ConcurrentUseError("FrameWriter.messages()")
        self._busy = True
        try:
            # One buffer for every frame: a frame waiting apart moves into it first (as the
            # next append would move it), so that an error can cut back to ``saved``.
            if self._parked is not None:
                self._unpark(0)
            elif self._whole is not None:
                self._unwhole(0)
            saved = self._len
            try:
                return self._messages(messages, -1 if text is None else (1 if text else 0))
            except BaseException:
                self._len = saved
                self._whole = None
                raise
        finally:
            self._busy = False

    cdef list _messages(self, object messages, int text):
        cdef list starts = []
        cdef list items = messages if type(messages) is list else list(messages)
        cdef object message, raw
        cdef Py_buffer view
        cdef const uint8_t *data
        cdef Py_ssize_t n, i
        cdef int b0
        for i in range(len(items)):
            message = items[i]
            PyList_Append(starts, self._len if self._whole is None
                          else PyBytes_GET_SIZE(self._whole))
            if type(message) is str:
                b0 = 0x82 if text == 0 else 0x81
                if PyUnicode_IS_ASCII(message):
                    self._append(b0, <const uint8_t *>PyUnicode_DATA(message),
                                 PyUnicode_GET_LENGTH(message))
                else:
                    raw = PyUnicode_AsUTF8String(message)
                    self._append(b0, <const uint8_t *>PyBytes_AS_STRING(raw),
                                 PyBytes_GET_SIZE(raw))
                continue
            if type(message) is bytes:
                data = <const uint8_t *>PyBytes_AS_STRING(message)
                n = PyBytes_GET_SIZE(message)
                if text == 1 and not turbows_utf8_valid(data, <size_t>n):
                    raise ValueError(_NOT_UTF8 % i)
                self._append(0x81 if text == 1 else 0x82, data, n)
                continue
            if not isinstance(message, (bytearray, memoryview)):
                raise TypeError(_NOT_A_MESSAGE % type(message).__name__)
            _get_buffer(message, &view, False)
            try:
                data = <const uint8_t *>view.buf
                if text == 1 and not turbows_utf8_valid(data, <size_t>view.len):
                    raise ValueError(_NOT_UTF8 % i)
                self._append(0x81 if text == 1 else 0x82, data, view.len)
            finally:
                PyBuffer_Release(&view)
        return starts

    def take(self):
        """Return the bytes written so far and empty the buffer.

        Raises:
            ConcurrentUseError: another call on this writer is running (another thread).
        """
        return self._take()

    cdef bytes _take(self):
        if self._busy:
            raise ConcurrentUseError("FrameWriter.take()")
        self._busy = True
        try:
            return self._drain()
        finally:
            self._busy = False

    cdef bytes _drain(self):
        cdef bytes out = self._whole
        cdef const uint8_t *data
        cdef Py_ssize_t n, h
        cdef bytes head
        if self._parked is not None:
            # Joined in one copy, into the bytes returned.
            head = self._parked[0]
            data = _body_data(self._parked[1], &n)
            h = PyBytes_GET_SIZE(head)
            out = PyBytes_FromStringAndSize(NULL, h + n)
            memcpy(PyBytes_AS_STRING(out), PyBytes_AS_STRING(head), <size_t>h)
            memcpy(PyBytes_AS_STRING(out) + h, data, <size_t>n)
            self._parked = None
            return out
        if out is not None:
            self._whole = None
            return out
        out = PyBytes_FromStringAndSize(<char *>self._buf, self._len)
        self._clear()
        return out

    cdef void _clear(self) noexcept:
        """Forget the buffered frames (a large buffer is freed rather than kept)."""
        self._len = 0
        if self._cap > (1 << 20):
            free(self._buf)
            self._buf = NULL
            self._cap = 0

    def _take_parts(self):
        """Like :meth:`take`, for a transport that writes several buffers in one system call:
        a large frame waiting unbuilt comes out as its ``(header, payload)`` pair, the
        payload being the ``bytes`` or ASCII ``str`` object given to :meth:`text` or
        :meth:`binary`; anything else as take() returns it. The pure-Python codec always
        returns bytes."""
        cdef tuple parts = self._parked
        if parts is None:
            return self._take()
        if self._busy:
            raise ConcurrentUseError("FrameWriter.take()")
        self._parked = None
        return parts

    def __len__(self):
        cdef Py_ssize_t n
        if self._parked is not None:
            _body_data(self._parked[1], &n)
            return PyBytes_GET_SIZE(self._parked[0]) + n
        return self._len if self._whole is None else PyBytes_GET_SIZE(self._whole)


# For turbows.asyncio._fastio (declared in _speedups.pxd): a transport writes the frames a
# FrameWriter buffered straight from its buffer, without the bytes object take() makes.

cdef Py_ssize_t writer_buffered(object writer, const char **data) except -2:
    """The frames ``writer`` (a :class:`FrameWriter`) has in its buffer: their address in
    ``data[0]`` and their size; or -1 if a large frame waits apart from the buffer (take it
    with ``take`` or ``_take_parts``). The bytes stay valid until the writer is used again."""
    cdef FrameWriter w = <FrameWriter?>writer
    if w._busy:
        raise ConcurrentUseError("FrameWriter.take()")
    if w._whole is not None or w._parked is not None:
        return -1
    data[0] = <const char *>w._buf
    return w._len


cdef int writer_consumed(object writer) except -1:
    """Forget what :func:`writer_buffered` showed (the caller sent or copied it), as
    ``take`` would have."""
    cdef FrameWriter w = <FrameWriter?>writer
    if w._busy:
        raise ConcurrentUseError("FrameWriter.take()")
    w._clear()
    return 0
