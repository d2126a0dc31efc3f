"""Message ids of turbows.pubsub, the envelope a delivery carries them in, and the reset code.

In the core (no Redis import) so that clients (:class:`turbows.asyncio.ReconnectingClient`
with ``resume=True``) can read ids without the ``redis`` extra.
"""

from __future__ import annotations

import json
from json.encoder import encode_basestring_ascii as _json_string  # what json.dumps(str) gives
from typing import Iterable, List, NamedTuple, Optional, Tuple, Union

__all__ = ["RESET", "MessageId", "envelope", "envelope_channel_id", "envelope_id", "envelopes"]

#: The close code of a reset: the client's resume point is gone (the history was trimmed past
#: it, Redis lost its data so the epoch changed, or the id was never issued). The client must
#: drop its last id and start over (reconnecting clients with ``resume=True`` do so).
RESET = 4010


class MessageId(NamedTuple):
    """A message's place in its channel: ``epoch`` names the Redis dataset, ``seq`` counts
    the channel's messages (1, 2, 3, ...). Written ``"epoch-seq"``."""

    epoch: int
    seq: int

    def __str__(self) -> str:
        return f"{self.epoch}-{self.seq}"

    @classmethod
    def parse(cls, text: Union[str, bytes]) -> "MessageId":
        """Read ``"epoch-seq"``.

        Raises:
            ValueError: ``text`` is not two non-negative integers joined by ``-``.
        """
        if isinstance(text, bytes):
            text = text.decode("ascii", "replace")
        epoch, sep, seq = text.strip().partition("-")
        if not sep or not epoch.isdigit() or not seq.isdigit() or len(text) > 64:
            raise ValueError(f"not a message id (epoch-seq): {text[:64]!r}")
        return cls(int(epoch), int(seq))


_PREFIX = '{"id":"'


def _after_id(channel_json: str) -> str:
    return f'","channel":{channel_json},"data":'


def envelope(message_id: str, channel_json: str, data: str) -> str:
    """The text message that carries ``data`` with its id: a JSON object whose first member
    is the id, ``{"id":"E-S","channel":"...","data":"..."}``."""
    return f"{_PREFIX}{message_id}{_after_id(channel_json)}{_json_string(data)}}}"


def envelopes(
    epoch: int, channel_json: str, seqs: Iterable[bytes], data: Iterable[bytes]
) -> List[str]:
    """The envelopes of many messages of one channel and epoch: for each sequence number
    (ASCII digits) and data (UTF-8), what :func:`envelope` gives, with the parts they
    share built once.

    Raises:
        UnicodeDecodeError: a data is not UTF-8.
    """
    head = f"{_PREFIX}{epoch}-"
    middle = _after_id(channel_json)
    return [
        f"{head}{seq.decode()}{middle}{_json_string(value.decode())}}}"
        for seq, value in zip(seqs, data)
    ]


def envelope_id(message: Union[str, bytes]) -> Optional[str]:
    """The id of an enveloped delivery (see :func:`envelope`), or None for any other
    message (a gap marker, an application's own message)."""
    if isinstance(message, bytes):
        if not message.startswith(b'{"id":"'):
            return None
        message = message[:96].decode("ascii", "replace")
    elif not message.startswith(_PREFIX):
        return None
    end = message.find('"', 7, 96)
    return message[7:end] if end > 7 else None


_DECODER = json.JSONDecoder()


def envelope_channel_id(message: Union[str, bytes]) -> Optional[Tuple[str, str]]:
    """``(channel, id)`` of an enveloped delivery, or None for any other message."""
    mid = envelope_id(message)
    if mid is None:
        return None
    text = message.decode("utf-8", "replace") if isinstance(message, bytes) else message
    at = 7 + len(mid)
    if not text.startswith('","channel":', at):
        return None
    try:
        channel, _ = _DECODER.raw_decode(text, at + 12)
    except ValueError:
        return None
    return (channel, mid) if isinstance(channel, str) else None
