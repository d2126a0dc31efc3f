"""wsproto's API on turbows: the same classes, modules and behaviour, on turbows's codec.

Code written for wsproto 1.3 (``from wsproto import WSConnection``) runs on this package
through :func:`turbows.compat.install_wsproto`, or with ``TURBOWS_WSPROTO=1`` in the
environment, without being edited. It can also import it by its own name::

    from turbows.compat.wsproto import WSConnection
    from turbows.compat.wsproto.connection import ConnectionType

See ``docs/compat-wsproto.md`` for where it differs from wsproto, and why.
"""

from __future__ import annotations

from typing import Iterator, Optional, Union

from .connection import Connection, ConnectionState, ConnectionType
from .events import Event
from .handshake import H11Handshake
from .typing import Headers

#: The wsproto release whose API this package provides.
__version__ = "1.3.2"

__all__ = ["ConnectionType", "WSConnection"]


class WSConnection:
    """One end of a WebSocket connection over HTTP/1.1: the handshake, then the frames.

    Args:
        connection_type: ``ConnectionType.CLIENT`` or ``ConnectionType.SERVER``.

    Attributes:
        client: True on the client side.
        handshake: the :class:`H11Handshake`.
        connection: the :class:`Connection` once the handshake succeeded, else None.
    """

    def __init__(self, connection_type: ConnectionType) -> None:
        self.client = connection_type is ConnectionType.CLIENT
        self.handshake = H11Handshake(connection_type)
        self.connection: Optional[Connection] = None

    @property
    def state(self) -> ConnectionState:
        """The handshake's state, then the connection's."""
        if self.connection is None:
            return self.handshake.state
        return self.connection.state

    def initiate_upgrade_connection(self, headers: Headers, path: Union[bytes, str]) -> None:
        """Server side: start from a request already parsed elsewhere (see
        :meth:`H11Handshake.initiate_upgrade_connection`)."""
        self.handshake.initiate_upgrade_connection(headers, path)

    def send(self, event: Event) -> bytes:
        """Return the bytes that send ``event`` to the peer.

        Raises:
            LocalProtocolError: the event cannot be sent in the current state.
        """
        connection = self.connection
        if connection is not None:
            return connection.send(event)
        data = self.handshake.send(event)
        self._opened(self.handshake.connection)
        return data

    def receive_data(self, data: Optional[bytes]) -> None:
        """Feed bytes received from the peer (None when the connection was lost).

        Raises:
            RemoteProtocolError: the handshake is invalid (with ``event_hint``).
            LocalProtocolError: the connection is already closed.
        """
        connection = self.connection
        if connection is not None:
            connection.receive_data(data)
            return
        self.handshake.receive_data(data)
        self._opened(self.handshake.connection)

    def _opened(self, connection: Optional[Connection]) -> None:
        self.connection = connection
        if connection is not None and type(self) is WSConnection:
            # From now on every call goes to the connection: bind its methods here and save
            # a Python call per message (a subclass keeps its overrides).
            self.send = connection.send  # type: ignore[method-assign]
            self.receive_data = connection.receive_data  # type: ignore[method-assign]

    def events(self) -> Iterator[Event]:
        """Yield the events received so far: the handshake's, then the connection's."""
        pending = self.handshake._events
        while pending:
            yield pending.popleft()
        connection = self.connection
        if connection is not None:
            pending = connection._events
            while pending:
                event = pending.popleft()
                if event is connection._peer_close:
                    connection._close_yielded()
                yield event
