"""A real Redis for the pubsub tests: ``redis-server`` on a Unix socket in a temporary
directory (``--port 0``: no TCP), with AOF ``appendfsync always`` unless a test asks for no
persistence; stopped by its PID, restartable for the fault tests.

Without the binary (or the ``redis`` extra) the tests skip, unless ``TURBOWS_REQUIRE_REDIS``
is set (CI sets it): then they fail.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Iterator, List, Optional

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "asyncio"))  # aio_helpers

REQUIRED = os.environ.get("TURBOWS_REQUIRE_REDIS", "") not in ("", "0")


def _missing() -> Optional[str]:
    if shutil.which("redis-server") is None:
        return "redis-server is not installed (apt-get install redis-server)"
    try:
        import redis.asyncio  # noqa: F401
    except ImportError:
        return "the redis extra is not installed (pip install 'turbows[redis]')"
    return None


class RedisServer:
    """One ``redis-server`` process on a Unix socket in ``directory``."""

    def __init__(self, directory: Path, persistent: bool = True) -> None:
        self.directory = directory
        self.socket = str(directory / "redis.sock")
        self.persistent = persistent
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
            args += ["--appendonly", "yes", "--appendfsync", "always"]
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


def _server(persistent: bool) -> Iterator[RedisServer]:
    missing = _missing()
    if missing:
        if REQUIRED:
            pytest.fail(f"TURBOWS_REQUIRE_REDIS is set but {missing}")
        pytest.skip(missing)
    # A short directory of its own: a Unix socket path must fit in 108 bytes.
    directory = Path(tempfile.mkdtemp(prefix="twsredis-"))
    server = RedisServer(directory, persistent)
    server.start()
    try:
        yield server
    finally:
        server.kill()
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    """A Redis with AOF ``appendfsync always``."""
    yield from _server(True)


@pytest.fixture
def volatile_redis() -> Iterator[RedisServer]:
    """A Redis without persistence: a restart loses every key."""
    yield from _server(False)
