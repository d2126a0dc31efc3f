"""``python -m turbows serve module:handler``: serve a connection handler, in one process or in
``--workers N`` processes (see :func:`turbows.asyncio.run`)."""

from __future__ import annotations

import argparse
import importlib
import inspect
import logging
import os
import sys
from typing import Any, Callable

__all__ = ["register", "load_handler"]


def register(subparsers: Any) -> None:
    """Add the ``serve`` subcommand to ``subparsers``."""
    parser = subparsers.add_parser(
        "serve",
        help="serve a connection handler (module:function), from N worker processes",
        description=(
            "Serve HANDLER, an 'async def handler(ws)' given as module:function, until SIGTERM"
            " or SIGINT (graceful: 1001 to every client). With --workers N, N processes serve"
            " (SO_REUSEPORT listeners on Linux, or one shared socket with --shared-socket);"
            " a worker that dies is replaced, SIGHUP restarts them one at a time."
        ),
    )
    parser.add_argument("handler", metavar="HANDLER", help="module:function, e.g. app:echo")
    parser.add_argument("--host", default="127.0.0.1", help="address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8765, help="port (default 8765; 0: any)")
    parser.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    parser.add_argument(
        "--shared-socket",
        action="store_true",
        help="bind once in the parent and share the socket (no SO_REUSEPORT)",
    )
    parser.add_argument(
        "--app-dir", default=".", help="directory added to sys.path first (default: .)"
    )
    parser.add_argument("--max-message-size", type=int, default=1 << 20, metavar="BYTES")
    parser.add_argument("--ping-interval", type=float, default=20.0, metavar="SECONDS")
    parser.add_argument("--no-compression", action="store_true", help="no permessage-deflate")
    parser.add_argument("--shutdown-timeout", type=float, default=10.0, metavar="SECONDS")
    parser.add_argument("--log-level", default="info", help="logging level (default info)")
    parser.set_defaults(run=_run)


def load_handler(spec: str, app_dir: str = ".") -> Callable[..., Any]:
    """Import ``module:attribute`` (``app_dir`` first on ``sys.path``).

    Raises:
        ValueError: ``spec`` is not ``module:attribute`` or names something not callable.
        ImportError: the module cannot be imported.
    """
    module_name, sep, attribute = spec.partition(":")
    if not sep or not module_name or not attribute:
        raise ValueError(f"the handler must be given as module:function, not {spec!r}")
    directory = os.path.abspath(app_dir)
    if directory not in sys.path:
        sys.path.insert(0, directory)
    target: Any = importlib.import_module(module_name)
    for part in attribute.split("."):
        target = getattr(target, part, None)
        if target is None:
            raise ValueError(f"{module_name} has no {attribute}")
    if not callable(target):
        raise ValueError(f"{spec} is not callable")
    return target  # type: ignore[no-any-return]


def _run(options: argparse.Namespace) -> int:
    from ..asyncio import run

    logging.basicConfig(
        level=options.log_level.upper(), format="%(asctime)s %(process)d %(message)s"
    )
    try:
        handler = load_handler(options.handler, options.app_dir)
    except (ValueError, ImportError) as exc:
        print(f"turbows serve: {exc}", file=sys.stderr)
        return 2
    if not inspect.iscoroutinefunction(handler):
        print(f"turbows serve: {options.handler} is not an async function", file=sys.stderr)
        return 2

    def ready(address: Any) -> None:
        host, port = address[0], address[1]
        shown = f"[{host}]" if ":" in host else host
        print(f"serving on ws://{shown}:{port}/ ({options.workers} workers)", flush=True)

    return run(
        handler,
        options.host,
        options.port,
        workers=options.workers,
        reuse_port=False if options.shared_socket else None,
        shutdown_timeout=options.shutdown_timeout,
        on_ready=ready,
        max_message_size=options.max_message_size,
        ping_interval=options.ping_interval,
        extensions=() if options.no_compression else None,
    )
