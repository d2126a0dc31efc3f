"""The delivery envelope (turbows._resume): one message's and a batch's are the same JSON."""

from __future__ import annotations

import json
from typing import List, Tuple

from hypothesis import given
from hypothesis import strategies as st

from turbows._resume import envelope, envelope_channel_id, envelopes


@given(
    epoch=st.integers(min_value=1, max_value=2**48),
    channel=st.text(max_size=20),
    messages=st.lists(
        st.tuples(st.integers(min_value=0, max_value=2**63), st.text(max_size=40)), max_size=8
    ),
)
def test_a_batch_of_envelopes_is_each_message_s_envelope(
    epoch: int, channel: str, messages: List[Tuple[int, str]]
) -> None:
    channel_json = json.dumps(channel)
    seqs = [str(seq).encode() for seq, _ in messages]
    data = [text.encode() for _, text in messages]
    got = envelopes(epoch, channel_json, seqs, data)
    assert got == [envelope(f"{epoch}-{seq}", channel_json, text) for seq, text in messages]
    for text, (seq, value) in zip(got, messages):
        assert json.loads(text) == {"id": f"{epoch}-{seq}", "channel": channel, "data": value}
        assert envelope_channel_id(text) == (channel, f"{epoch}-{seq}")
