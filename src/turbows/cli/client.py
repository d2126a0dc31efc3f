"""``python -m turbows client URI``: an interactive WebSocket client.

Each line read from standard input is sent as a text message; each message received is
printed. Lines starting with ``/`` are commands: ``/ping [payload]`` sends a ping and prints
the round-trip time, ``/close [code [reason]]`` closes the connection, ``/help`` lists them;
``//text`` sends ``/text``.

In a pipe (``echo hi | python -m turbows ws://...``), once standard input ends the client
keeps printing until the server has been silent for ``--wait`` seconds (or closed the
connection), then closes and exits. Messages go to standard output as they are (binary ones
as raw bytes); notices (connection, pongs, close) go to standard error.
"""

from __future__ import annotations

import argparse
import ssl
import sys
import threading
from typing import Any, List, Optional, TextIO, Tuple

from ..asyncio._exceptions import ClosedOK, HandshakeRejected, WebSocketClosed
from ..exceptions import TurboWSError

__all__ = ["register", "run"]

HELP = """commands:
  /ping [payload]          send a ping, print the round-trip time
  /close [code [reason]]   close the connection (default 1000) and exit
  /help                    this list
  //text                   send the line '/text'"""


def register(subparsers: Any) -> None:
    """Add the ``client`` subcommand (alias ``connect``) to ``subparsers``."""
    parser = subparsers.add_parser(
        "client",
        aliases=["connect"],
        help="interactive client: send lines, print messages",
        description=(__doc__ or "").split("\n\n", 1)[-1].replace("``", "'"),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=HELP,
    )
    parser.add_argument("uri", help="ws:// or wss:// URI")
    parser.add_argument(
        "-s",
        "--subprotocol",
        action="append",
        default=[],
        metavar="NAME",
        help="offer this subprotocol (repeat for several, in order of preference)",
    )
    parser.add_argument(
        "-H",
        "--header",
        action="append",
        default=[],
        metavar="'NAME: VALUE'",
        help="add a request header (repeat for several)",
    )
    parser.add_argument("--origin", help="the Origin header")
    parser.add_argument(
        "--no-compression",
        dest="compression",
        action="store_false",
        help="do not offer permessage-deflate",
    )
    parser.add_argument(
        "--insecure",
        action="store_true",
        help="wss://: do not verify the server's certificate",
    )
    parser.add_argument("--cafile", help="wss://: trust the certificates in this PEM file")
    parser.add_argument(
        "--wait",
        type=float,
        default=1.0,
        metavar="SECONDS",
        help="after standard input ends, wait until the server is silent this long (default 1)",
    )
    parser.add_argument(
        "--open-timeout",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="time for the connection and the opening handshake (default 10)",
    )
    parser.add_argument(
        "--max-size",
        type=int,
        default=1 << 24,
        metavar="BYTES",
        help="the largest message accepted (default 16 MiB)",
    )
    parser.set_defaults(run=run)


def _headers(values: List[str]) -> List[Tuple[str, str]]:
    headers = []
    for value in values:
        name, sep, rest = value.partition(":")
        if not sep or not name.strip():
            raise ValueError(f"header {value!r} is not 'Name: value'")
        headers.append((name.strip(), rest.strip()))
    return headers


def _ssl_context(options: argparse.Namespace) -> Optional[ssl.SSLContext]:
    if not options.uri.lower().startswith("wss://"):
        return None
    context = ssl.create_default_context(cafile=options.cafile)
    if options.insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


class _Printer:
    """Prints incoming messages from the connection's thread; remembers when the last one
    came, for the pipe mode's ``--wait``."""

    def __init__(self, ws: Any, out: TextIO, interactive: bool) -> None:
        self.ws = ws
        self.out = out
        self.interactive = interactive
        self.activity = threading.Event()
        self.error: Optional[WebSocketClosed] = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        out = self.out
        try:
            for message in self.ws:
                self.activity.set()
                if isinstance(message, str):
                    out.write(("< " if self.interactive else "") + message + "\n")
                elif self.interactive:
                    out.write(f"< (binary, {len(message)} bytes) {message.hex()}\n")
                else:
                    out.flush()
                    out.buffer.write(message + b"\n")
                out.flush()
        except WebSocketClosed as exc:
            self.error = exc
        self.activity.set()


def _command(ws: Any, line: str, err: TextIO) -> bool:
    """Run a ``/`` command; False when the session is over."""
    name, _, rest = line[1:].partition(" ")
    if name == "ping":
        rtt = ws.ping(rest.encode() if rest else None, timeout=10)
        err.write(f"pong in {rtt * 1000:.3f} ms\n")
    elif name == "close":
        code_text, _, reason = rest.partition(" ")
        ws.close(int(code_text) if code_text else 1000, reason)
        return False
    elif name in ("help", "?"):
        err.write(HELP + "\n")
    else:
        err.write(f"unknown command /{name} (/help lists them; //{name} sends the line)\n")
    return True


def run(options: argparse.Namespace) -> int:
    """Run the client with the parsed ``options``; the exit status."""
    from ..sync import connect

    err = sys.stderr
    interactive = sys.stdin.isatty()
    try:
        ws = connect(
            options.uri,
            ssl=_ssl_context(options),
            subprotocols=options.subprotocol,
            extra_headers=_headers(options.header),
            origin=options.origin,
            extensions=None if options.compression else (),
            open_timeout=options.open_timeout,
            max_message_size=options.max_size,
        )
    except HandshakeRejected as exc:
        err.write(f"turbows: {exc}\n")
        return 1
    except (OSError, TurboWSError, ValueError) as exc:
        err.write(f"turbows: cannot connect to {options.uri}: {exc}\n")
        return 1
    extensions = ", ".join(name for name, _ in ws.extensions) or "none"
    err.write(
        f"connected to {options.uri} (subprotocol {ws.subprotocol or 'none'}, "
        f"extensions {extensions})\n"
    )
    if interactive:
        err.write("type a line to send it; /help for commands; Ctrl-D to quit\n")
    err.flush()
    printer = _Printer(ws, sys.stdout, interactive)
    try:
        for raw in sys.stdin:
            line = raw.rstrip("\r\n")
            if line.startswith("/") and not line.startswith("//"):
                if not _command(ws, line, err):
                    break
                continue
            ws.send(line[1:] if line.startswith("//") else line)
        else:
            if not interactive:
                # Print answers until the server is silent for --wait seconds, or closes.
                printer.activity.clear()
                while printer.activity.wait(options.wait) and printer.thread.is_alive():
                    printer.activity.clear()
        ws.close()
    except KeyboardInterrupt:
        ws.close()
        printer.thread.join(5)
        return 130
    except (WebSocketClosed, TimeoutError, ValueError) as exc:
        if not isinstance(exc, WebSocketClosed):
            err.write(f"turbows: {exc}\n")
        ws.close()
    printer.thread.join(5)
    closed = ws.closed_event
    if closed is not None:
        reason = f" {closed.reason!r}" if closed.reason else ""
        err.write(f"connection closed: {closed.code}{reason}\n")
    error = printer.error
    return 0 if error is None or isinstance(error, ClosedOK) else 1
