"""What the message classes hold.

The C codec keeps its messages out of the cyclic GC (thousands are made per chunk), so they
may only hold objects that cannot be part of a reference cycle: exact ``bytes``, ``str`` and
``int``. Both codecs' constructors refuse anything else with the same TypeError, so that a
cycle through a message (collected by the pure twin, never by the C codec) cannot be built.
"""

from __future__ import annotations

import gc
import weakref
from types import ModuleType
from typing import Any, Callable

import pytest

from turbows import CloseCode


class _Holder:
    """An object that can refer back to the message holding it."""


class _Bytes(bytes):
    pass


class _Str(str):
    pass


class _Int(int):
    pass


# Each builds a message whose field refers, directly or through a subclass instance's
# __dict__, to an object that refers back to the message.
CYCLES = {
    "text-data-object": lambda c, h: c.TextMessage(h),
    "binary-data-object": lambda c, h: c.BinaryMessage(h),
    "binary-data-bytes-subclass": lambda c, h: c.BinaryMessage(_with(_Bytes(b"x"), h)),
    "text-data-str-subclass": lambda c, h: c.TextMessage(_with(_Str("x"), h)),
    "ping-payload-object": lambda c, h: c.Ping(h),
    "pong-payload-bytes-subclass": lambda c, h: c.Pong(_with(_Bytes(b"x"), h)),
    "close-code-object": lambda c, h: c.CloseReceived(h),
    "close-code-int-subclass": lambda c, h: c.CloseReceived(_with(_Int(1000), h)),
    "close-reason-str-subclass": lambda c, h: c.CloseReceived(1000, _with(_Str("x"), h)),
}


def _with(value: Any, holder: _Holder) -> Any:
    value.holder = holder
    return value


@pytest.mark.parametrize("name", sorted(CYCLES))
def test_no_reference_cycle_through_a_message_outlives_a_collection(
    codec: ModuleType, name: str
) -> None:
    build: Callable[[ModuleType, _Holder], Any] = CYCLES[name]
    holder = _Holder()
    alive = weakref.ref(holder)
    try:
        holder.message = build(codec, holder)  # type: ignore[attr-defined]
    except TypeError:
        pass  # refused: no cycle was made
    del holder
    gc.collect()
    assert alive() is None


@pytest.mark.parametrize("name", sorted(CYCLES))
def test_both_codecs_refuse_the_same_fields_with_the_same_error(
    python_codec: ModuleType, cython_codec: ModuleType, name: str
) -> None:
    errors = []
    for codec in (python_codec, cython_codec):
        with pytest.raises(TypeError) as info:
            CYCLES[name](codec, _Holder())
        errors.append(str(info.value))
    assert errors[0] == errors[1]


def test_messages_accept_exact_bytes_str_and_close_codes(codec: ModuleType) -> None:
    assert codec.TextMessage("é").data == "é"
    assert codec.TextMessage(b"\xc3\xa9", final=False).data == b"\xc3\xa9"
    assert codec.BinaryMessage(b"\x00", 0).final is False
    assert codec.Ping(b"p").payload == b"p"
    assert codec.Pong().payload == b""
    assert codec.CloseReceived(CloseCode.NORMAL_CLOSURE, "bye").code == 1000
    assert codec.CloseReceived(4000).reason == ""
    with pytest.raises(TypeError, match="data must be bytes or str, not 'bytearray'"):
        codec.BinaryMessage(bytearray(b"x"))
    with pytest.raises(TypeError, match="payload must be bytes, not 'str'"):
        codec.Ping("p")
