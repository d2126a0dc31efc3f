"""``python -m turbows``: the command line.

Subcommands are modules of this package listed in :data:`SUBCOMMANDS`; each has a
``register(subparsers)`` function that adds its parser and sets ``run``, the function that
takes the parsed arguments and returns the exit status. A module not present (yet) is left
out. A first argument that is a ``ws://`` or ``wss://`` URI means ``client``::

    python -m turbows ws://127.0.0.1:8765/          # same as: python -m turbows client URI
    python -m turbows --help                         # the subcommands

The benchmark is a separate command: ``python -m turbows.bench``.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import List, Optional, Sequence

__all__ = ["SUBCOMMANDS", "main"]

#: The subcommand modules, in the order ``--help`` lists them.
SUBCOMMANDS = ("client", "serve")


def build_parser() -> argparse.ArgumentParser:
    """The parser with every available subcommand."""
    parser = argparse.ArgumentParser(
        prog="python -m turbows",
        description="turbows, a WebSocket (RFC 6455 + RFC 7692) library: command-line tools.",
        epilog="A ws:// or wss:// URI as first argument means 'client'. "
        "The benchmark is 'python -m turbows.bench'.",
    )
    from .. import __version__

    parser.add_argument("--version", action="version", version=f"turbows {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMANDS:
        try:
            module = importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"{__name__}.{name}":
                continue  # not part of this installation (yet)
            raise
        module.register(subparsers)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run ``python -m turbows`` with ``argv`` (default: ``sys.argv[1:]``).

    Returns:
        The exit status: 0 on success, 1 on failure, 2 on a usage error.
    """
    args: List[str] = list(sys.argv[1:] if argv is None else argv)
    if args and args[0].lower().startswith(("ws://", "wss://")):
        args.insert(0, "client")
    parser = build_parser()
    options = parser.parse_args(args)
    run = getattr(options, "run", None)
    if run is None:
        parser.print_help()
        return 2
    return int(run(options))
