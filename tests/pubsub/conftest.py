"""A real Redis for the pubsub tests: ``redis-server`` on a Unix socket in a temporary
directory (``--port 0``: no TCP), with AOF ``appendfsync always`` unless a test asks for no
persistence; stopped by its PID, restartable for the fault tests.

Without the binary (or the ``redis`` extra) the tests skip, unless ``TURBOWS_REQUIRE_REDIS``
is set (CI sets it): then they fail.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Iterator, Optional

import pytest

from turbows.bench._redis import RedisServer

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
