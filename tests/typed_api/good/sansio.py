"""The sans-I/O connection driven by hand, as in the README."""

from typing import List

import turbows


def serve_one(data: bytes) -> bytes:
    conn = turbows.ServerConnection(extensions=[turbows.PerMessageDeflate()])
    conn.receive_data(data)
    out: List[bytes] = []
    for event in conn.events():
        if isinstance(event, turbows.Request):
            conn.accept()
        elif isinstance(event, turbows.TextMessage):
            conn.send_text(event.data)
        elif isinstance(event, turbows.ConnectionClosed):
            print(event.code, event.reason)
    out.append(conn.data_to_send())
    return b"".join(out)
