"""Every blocking-layer test must leave no thread running and no descriptor open."""

from __future__ import annotations

import gc
import threading
from typing import Iterator

import pytest
from sync_helpers import open_fds, wait_for


@pytest.fixture(autouse=True)
def no_leaks() -> Iterator[None]:
    gc.collect()
    threads, fds = threading.active_count(), open_fds()
    yield
    wait_for(lambda: threading.active_count() <= threads, 10.0)

    def fds_back() -> bool:
        gc.collect()
        return open_fds() <= fds

    wait_for(fds_back, 5.0)
