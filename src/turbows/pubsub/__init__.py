"""Channels on Redis Streams with resume, for turbows servers in one or many processes.

Needs the ``redis`` extra (``pip install "turbows[redis]"``: the ``redis`` asyncio client and
``hiredis``), imported only here. See :class:`Bus` and the README's "Scaling out" section.
"""

from __future__ import annotations

from .._resume import RESET, MessageId, envelope_id
from ..asyncio._fanout import SLOW_CONSUMER
from ._bus import Bus, OutboxFull, RedisUnavailable

__all__ = [
    "Bus",
    "MessageId",
    "OutboxFull",
    "RedisUnavailable",
    "RESET",
    "SLOW_CONSUMER",
    "envelope_id",
]
