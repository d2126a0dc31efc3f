"""A ``redis-server`` process for the pubsub benchmark and tests: on a Unix socket in a
directory of its own (``--port 0``: no TCP), AOF ``appendfsync always`` or another
persistence setting, stopped by its PID (``kill -9`` for the fault tests), restartable."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import List, Optional

__all__ = ["RedisServer"]


class RedisServer:
    """One ``redis-server`` process on a Unix socket in ``directory`` (AOF with ``fsync``
    when ``persistent``, else no persistence at all)."""

    def __init__(self, directory: Path, persistent: bool = True, fsync: str = "always") -> None:
        self.directory = directory
        self.socket = str(directory / "redis.sock")
        self.persistent = persistent
        self.fsync = fsync
        self.proc: Optional[subprocess.Popen[bytes]] = None
        self.url = f"unix://{self.socket}"

    def args(self) -> List[str]:
        args = [
            "redis-server",
            "--port", "0",
            "--unixsocket", self.socket,
            "--unixsocketperm", "700",
            "--dir", str(self.directory),
            "--save", "",
            "--daemonize", "no",
            "--loglevel", "warning",
            "--logfile", str(self.directory / "redis.log"),
        ]  # fmt: skip
        if self.persistent:
            args += ["--appendonly", "yes", "--appendfsync", self.fsync]
        else:
            args += ["--appendonly", "no"]
        return args

    def start(self) -> None:
        if os.path.exists(self.socket):
            os.unlink(self.socket)
        self.proc = subprocess.Popen(self.args(), stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                log = (self.directory / "redis.log").read_text(errors="replace")
                raise RuntimeError(f"redis-server exited: {log[-2000:]}")
            try:
                with socket.socket(socket.AF_UNIX) as s:
                    s.settimeout(1)
                    s.connect(self.socket)
                    s.sendall(b"PING\r\n")
                    if s.recv(64).startswith(b"+PONG"):
                        return
            except OSError:
                pass
            time.sleep(0.02)
        raise RuntimeError("redis-server did not answer within 10 s")

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def kill(self) -> None:
        """``kill -9`` by PID: no shutdown, no last save."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()
