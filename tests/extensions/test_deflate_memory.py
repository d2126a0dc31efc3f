"""The memory cost per connection that PerMessageDeflate documents, measured."""

from __future__ import annotations

import gc
import tracemalloc

import pytest

from turbows.extensions import Inflater, PerMessageDeflate

MESSAGE = ('{"id": 1, "type": "quote", "price": 12.5} ' * 40).encode()


def _per_object(make, n: int = 50) -> float:
    gc.collect()
    tracemalloc.start()
    try:
        keep = [make() for _ in range(n)]
        current, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(keep) == n
    return current / n


@pytest.mark.parametrize(("window_bits", "mem_level"), [(12, 5), (15, 8), (9, 1), (10, 9)])
def test_compressor_memory_follows_the_documented_formula(window_bits, mem_level):
    pmd = PerMessageDeflate(window_bits=window_bits, mem_level=mem_level, threshold=0)

    def session():
        _, s = pmd.negotiate([()])  # type: ignore[misc]
        s.encode(MESSAGE)  # the compressor exists once a message was sent
        return s

    documented = 2 ** (window_bits + 2) + 2 ** (mem_level + 9) + 6 * 1024
    # Nothing was received: the inflater has no zlib state yet (it comes with the first
    # compressed message), so the compressor is all there is.
    measured = _per_object(session)
    assert 0.9 * documented < measured < 1.1 * documented + 1024


def test_a_session_holds_no_zlib_state_before_its_first_message():
    pmd = PerMessageDeflate()

    def session():
        _, s = pmd.negotiate([(("client_max_window_bits", None),)])  # type: ignore[misc]
        return s

    assert _per_object(session) < 2 * 1024


def test_default_session_costs_about_50_kib():
    """Defaults on both sides (the server asks for a 12-bit client window): 38 + 11 KiB."""
    server = PerMessageDeflate()

    def session():
        _, s = server.negotiate([(("client_max_window_bits", None),)])  # type: ignore[misc]
        s.encode(MESSAGE)
        return s

    assert _per_object(session) < 56 * 1024


@pytest.mark.parametrize("window_bits", [9, 12, 15])
def test_inflater_memory_follows_the_documented_formula(window_bits):
    import zlib

    c = zlib.compressobj(6, zlib.DEFLATED, -window_bits)
    data = (c.compress(MESSAGE) + c.flush(zlib.Z_SYNC_FLUSH))[:-4]

    def inflater():
        i = Inflater(window_bits)
        i.feed(data, True, -1)
        return i

    documented = 2**window_bits + 7 * 1024
    assert 0.9 * documented < _per_object(inflater) < 1.1 * documented + 1024
