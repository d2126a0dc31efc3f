"""Exceptions raised by turbows. Every one derives from :class:`TurboWSError`."""

from __future__ import annotations

from typing import Any, List

from ._enums import CloseCode

__all__ = ["TurboWSError", "ProtocolError", "InvalidStateError", "ConcurrentUseError"]


class TurboWSError(Exception):
    """Base class of every error turbows raises on purpose."""


class ProtocolError(TurboWSError):
    """The peer broke RFC 6455 or a configured limit.

    Attributes:
        code: the close code to send to the peer (1002, 1007, 1009, ...).
        reason: a short explanation, suitable as the close reason (at most 123 bytes).
        items: what the parser completed before the violation in the same call, in order, so
            that no message received before the error is lost.
    """

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(code, reason)
        self.code: int = code
        self.reason: str = reason
        self.items: List[Any] = []

    def __str__(self) -> str:
        try:
            name = CloseCode(self.code).name
        except ValueError:
            name = str(self.code)
        return f"{self.reason} (close code {self.code} {name})"


class InvalidStateError(TurboWSError):
    """An operation is not allowed in the connection's current state."""


class ConcurrentUseError(TurboWSError, RuntimeError):
    """A codec object (parser, writer) was called while another call on it was running.

    Raised instead of corrupting the object when two threads use it at once, or when a
    parser's inflater re-enters the parser's ``feed``. Codec objects, like the connections
    that own them, are meant for one thread at a time: give each thread its own, or hold a
    lock around every call. The call already running is not disturbed.

    Args:
        call: the call refused, such as ``"FrameParser.feed()"``.
    """

    def __init__(self, call: str) -> None:
        super().__init__(
            f"{call} was called while another call on the same object was running (two"
            " threads at once, or a callback re-entering it): use one object per thread,"
            " or a lock around every call"
        )


# Errors both codecs build the same way (turbows._speedups and turbows._codec_py).


def _interrupted(exc: BaseException) -> ProtocolError:
    """What a parser raises from every ``feed`` after one was interrupted by ``exc``, an
    exception that is not a protocol error (MemoryError, KeyboardInterrupt, an error from the
    inflater): the stream cannot be resumed from an unknown point, so the connection has to
    end, with 1011 (internal error)."""
    return ProtocolError(
        CloseCode.INTERNAL_ERROR,
        f"parser unusable: an earlier feed() was interrupted by {type(exc).__name__[:40]}",
    )


def _wrong_type(what: str, expected: str, value: object) -> TypeError:
    """The TypeError of a message constructor given a value of another type (subclasses are
    refused too: the C codec's messages are not tracked by the cyclic GC, so they may only
    hold objects that cannot be part of a reference cycle)."""
    return TypeError(f"{what} must be {expected}, not {type(value).__name__!r}")
