"""Worker processes: :func:`run` serves one handler from N processes (POSIX).

The parent process starts N workers (``fork``), each running :func:`serve` on its own event
loop, and supervises them:

- **Listening.** By default on Linux each worker has its own listening socket on the same
  address with ``SO_REUSEPORT``: the kernel spreads new connections over them (by a hash of
  the addresses). Caveat: the connections waiting in one worker's accept queue when that
  worker closes its listener (a restart, a crash) are reset, unless Linux's
  ``net.ipv4.tcp_migrate_req = 1`` (kernel 5.14+) is set, which moves them to another
  listener of the group. The portable mode (``reuse_port=False``, the default where
  ``SO_REUSEPORT`` is missing) binds once in the parent and every worker accepts from that
  one socket: nothing is dropped on a restart, but the spreading is left to which worker
  wakes first.
- **A worker that dies** (crash, ``kill -9``) is replaced at once.
- **SIGTERM or SIGINT**: every worker shuts down gracefully (a 1001 close frame to every
  client, then it waits up to ``shutdown_timeout``), then the parent exits.
- **SIGHUP**: a rolling restart, one worker at a time: its replacement is started and
  listening before it is told to shut down.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import signal
import socket
import sys
import time
from typing import Any, Dict, List, Optional, Tuple

from ._server import Handler, _listening_sockets, serve

__all__ = ["run"]

logger = logging.getLogger("turbows")

#: Seconds the parent waits for a new worker to listen before it gives up on it.
START_TIMEOUT = 10.0
#: Seconds between two checks of the workers.
TICK = 0.05


def run(
    handler: Handler,
    host: Optional[str] = "127.0.0.1",
    port: int = 8765,
    *,
    workers: int = 1,
    reuse_port: Optional[bool] = None,
    shutdown_timeout: float = 10.0,
    on_ready: Optional[Any] = None,
    **serve_options: Any,
) -> int:
    """Serve ``handler`` until SIGTERM or SIGINT, from this process or from ``workers``
    processes.

    ::

        async def echo(ws):
            async for message in ws:
                await ws.send(message)

        if __name__ == "__main__":
            turbows.asyncio.run(echo, "0.0.0.0", 8765, workers=4)

    Args:
        handler: the connection handler, as for :func:`serve`.
        host, port: where to listen (``port=0``: a free port, the same for every worker).
        workers: how many processes serve; 1 serves from this process, without a parent.
        reuse_port: each worker listens on its own ``SO_REUSEPORT`` socket (default where
            the platform has it), or False: the parent binds once and the workers share
            that socket (see the module's docstring for the trade-off).
        shutdown_timeout: how long a worker's graceful shutdown may take.
        on_ready: ``fn(sockname)`` called in the parent once every worker listens (the
            command line prints the address).
        **serve_options: every other option of :func:`serve`.

    Returns:
        The exit status: 0 after a graceful shutdown.
    """
    if workers < 1:
        raise ValueError("workers must be >= 1")
    if workers == 1:
        return _serve_here(
            handler, host, port, None, reuse_port, shutdown_timeout, on_ready, serve_options
        )
    if not hasattr(os, "fork"):
        raise RuntimeError("workers > 1 needs fork (POSIX)")
    if reuse_port is None:
        reuse_port = hasattr(socket, "SO_REUSEPORT") and sys.platform.startswith("linux")
    return _Supervisor(
        handler, host, port, workers, bool(reuse_port), shutdown_timeout, on_ready, serve_options
    ).run()


def _serve_here(
    handler: Handler,
    host: Optional[str],
    port: int,
    sock: Optional[socket.socket],
    reuse_port: Optional[bool],
    shutdown_timeout: float,
    on_ready: Any,
    options: Dict[str, Any],
) -> int:
    """Serve in this process until SIGTERM or SIGINT, then shut down gracefully."""

    async def main() -> None:
        loop = asyncio.get_running_loop()
        stop = loop.create_future()

        def stopping() -> None:
            if not stop.done():
                stop.set_result(None)

        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stopping)
        if sock is not None:
            server = serve(handler, sock=sock, shutdown_timeout=shutdown_timeout, **options)
        else:
            server = serve(
                handler,
                host,
                port,
                reuse_port=reuse_port,
                shutdown_timeout=shutdown_timeout,
                **options,
            )
        await server.start()
        if on_ready is not None:
            on_ready(server.sockets[0].getsockname())
        try:
            await stop
        finally:
            await server.shutdown(1001, "server shutting down")

    asyncio.run(main())
    return 0


class _Worker:
    __slots__ = ("process", "ready", "started", "retiring")

    def __init__(self, process: Any, ready: Any) -> None:
        self.process = process
        self.ready = ready  # the parent's end of a pipe the worker writes to once listening
        self.started = time.monotonic()
        self.retiring = False


def _worker_main(
    handler: Handler,
    host: Optional[str],
    port: int,
    sock: Optional[socket.socket],
    shutdown_timeout: float,
    options: Dict[str, Any],
    ready: Any,
) -> None:
    """A worker process: serve until SIGTERM (the parent forwards SIGINT as SIGTERM)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a terminal's Ctrl-C: the parent decides
    signal.signal(signal.SIGHUP, signal.SIG_IGN)

    def told_ready(_: Any) -> None:
        ready.send(os.getpid())
        ready.close()

    code = _serve_here(
        handler,
        host,
        port,
        sock,
        sock is None,
        shutdown_timeout,
        told_ready,
        options,
    )
    sys.exit(code)


class _Supervisor:
    """The parent process: starts, watches, restarts and stops the workers."""

    def __init__(
        self,
        handler: Handler,
        host: Optional[str],
        port: int,
        count: int,
        reuse_port: bool,
        shutdown_timeout: float,
        on_ready: Any,
        options: Dict[str, Any],
    ) -> None:
        self.handler = handler
        self.host = host
        self.port = port
        self.count = count
        self.reuse_port = reuse_port
        self.shutdown_timeout = shutdown_timeout
        self.on_ready = on_ready
        self.options = options
        self.context = multiprocessing.get_context("fork")
        self.workers: List[_Worker] = []
        self.sock: Optional[socket.socket] = None
        self.reserved: List[socket.socket] = []
        self.signals: List[int] = []

    def _bind(self) -> Tuple[Any, ...]:
        """Portable mode: the one listening socket. Reuse-port mode: the port (a bound,
        not listening socket reserves a free port for ``port=0`` without taking
        connections)."""
        loop = asyncio.new_event_loop()
        try:
            sockets = loop.run_until_complete(
                _listening_sockets(loop, self.host, self.port, 1024, self.reuse_port)
            )
        finally:
            loop.close()
        first = sockets[0]
        for extra in sockets[1:]:
            extra.close()  # one address family is served by the workers (the first one)
        address = first.getsockname()
        if self.reuse_port:
            # Stop listening: a listening socket of the group would get a share of the
            # connections. Re-create it bound only.
            family = first.family
            first.close()
            holder = socket.socket(family, socket.SOCK_STREAM)
            holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            holder.bind(address[:2])
            self.reserved.append(holder)
            self.port = address[1]
            self.host = address[0]
        else:
            self.sock = first
        return tuple(address)

    def _start(self) -> _Worker:
        receive, send = self.context.Pipe(duplex=False)
        process = self.context.Process(
            target=_worker_main,
            args=(
                self.handler,
                self.host,
                self.port,
                self.sock,
                self.shutdown_timeout,
                self.options,
                send,
            ),
            daemon=False,
        )
        process.start()
        send.close()
        worker = _Worker(process, receive)
        self.workers.append(worker)
        return worker

    def _wait_ready(self, worker: _Worker, timeout: float = START_TIMEOUT) -> bool:
        try:
            if worker.ready.poll(timeout):
                worker.ready.recv()
                return True
        except (EOFError, OSError):
            pass
        return False

    def _on_signal(self, signum: int, frame: Any) -> None:
        self.signals.append(signum)

    def run(self) -> int:
        address = self._bind()
        previous = {
            sig: signal.signal(sig, self._on_signal)
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
        }
        try:
            for _ in range(self.count):
                self._start()
            for worker in list(self.workers):
                if not self._wait_ready(worker):
                    logger.error("worker %s did not start listening", worker.process.pid)
            logger.info(
                "%d workers serving on %s (%s)",
                self.count,
                address,
                "SO_REUSEPORT" if self.reuse_port else "one shared socket",
            )
            if self.on_ready is not None:
                self.on_ready(address)
            return self._supervise()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            for sock in self.reserved:
                sock.close()
            if self.sock is not None:
                self.sock.close()

    def _supervise(self) -> int:
        while True:
            while self.signals:
                signum = self.signals.pop(0)
                if signum == signal.SIGHUP:
                    self._rolling_restart()
                else:
                    self._stop_all()
                    return 0
            self._replace_dead()
            time.sleep(TICK)

    def _replace_dead(self) -> None:
        for worker in list(self.workers):
            process = worker.process
            if process.is_alive():
                continue
            process.join(0)
            self.workers.remove(worker)
            worker.ready.close()
            if worker.retiring:
                continue
            logger.warning(
                "worker %s exited with %s: starting another", process.pid, process.exitcode
            )
            if time.monotonic() - worker.started < 1.0:
                time.sleep(0.2)  # dying at start: do not spin
            self._start()

    def _rolling_restart(self) -> None:
        logger.info("rolling restart of %d workers", len(self.workers))
        for old in [w for w in self.workers if not w.retiring]:
            new = self._start()
            if not self._wait_ready(new):
                logger.error(
                    "new worker %s did not start: keeping %s", new.process.pid, old.process.pid
                )
                continue
            old.retiring = True
            self._terminate(old)
            old.process.join(self.shutdown_timeout + 2.0)
            if old.process.is_alive():
                old.process.kill()
            self._replace_dead()

    def _terminate(self, worker: _Worker) -> None:
        try:
            os.kill(worker.process.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass

    def _stop_all(self) -> None:
        logger.info("stopping %d workers", len(self.workers))
        for worker in self.workers:
            worker.retiring = True
            self._terminate(worker)
        deadline = time.monotonic() + self.shutdown_timeout + 2.0
        for worker in self.workers:
            worker.process.join(max(0.0, deadline - time.monotonic()))
            if worker.process.is_alive():
                worker.process.kill()
                worker.process.join()
        self.workers.clear()
