"""pytest plugin: run uvicorn's own WebSocket tests against turbows's protocol class.

uvicorn's test suite gets its WebSocket protocol classes from the ``ws_protocol_cls`` fixture
of its ``tests/conftest.py``, parametrised over its built-in classes. This plugin (loaded with
``-p uvicorn_suite_plugin``) parametrises every test that uses that fixture over
``turbows.integrations.uvicorn:WebSocketProtocol`` instead (``TURBOWS_UVICORN_BUILTINS=1``
keeps uvicorn's own classes too), by giving the test a ``parametrize`` mark on the fixture,
which pytest prefers to the fixture's own parameters. uvicorn's files are not touched.
"""

from __future__ import annotations

import os
from typing import Any

import pytest

TURBOWS = "turbows.integrations.uvicorn:WebSocketProtocol"
BUILTINS = (
    ("uvicorn.protocols.websockets.wsproto_impl:WSProtocol", "wsproto"),
    (
        "uvicorn.protocols.websockets.websockets_sansio_impl:WebSocketsSansIOProtocol",
        "websockets-sansio",
    ),
)


@pytest.hookimpl(tryfirst=True)
def pytest_generate_tests(metafunc: Any) -> None:
    if "ws_protocol_cls" not in metafunc.fixturenames:
        return
    params = [pytest.param(TURBOWS, id="turbows")]
    if os.environ.get("TURBOWS_UVICORN_BUILTINS") == "1":
        params += [pytest.param(path, id=name) for path, name in BUILTINS]
    mark = pytest.mark.parametrize("ws_protocol_cls", params, indirect=True)
    metafunc.definition.add_marker(mark)
