"""turbows inside other servers.

- :mod:`turbows.integrations.uvicorn`: ``WebSocketProtocol``, uvicorn's WebSocket protocol
  class (``uvicorn app:app --ws turbows.integrations.uvicorn:WebSocketProtocol``).

Each integration imports its server only inside its own module: ``import turbows`` and
``import turbows.integrations`` never need them.
"""

from typing import List

__all__: List[str] = []
