"""Type aliases of wsproto's API (``wsproto.typing``)."""

from __future__ import annotations

from typing import List, Tuple

#: HTTP header fields as ``(name, value)`` byte strings, in order.
Headers = List[Tuple[bytes, bytes]]

__all__ = ["Headers"]
