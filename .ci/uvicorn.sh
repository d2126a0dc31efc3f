#!/usr/bin/env bash
# turbows.integrations.uvicorn:WebSocketProtocol against uvicorn's own WebSocket tests (issue 15).
#
# uvicorn's published sdist ships its tests. They run here unmodified, in a venv of their own
# with pinned versions, against turbows's class instead of uvicorn's built-in ones: the plugin
# .ci/uvicorn_suite_plugin.py parametrises uvicorn's `ws_protocol_cls` fixture over it, and
# `-k turbows` keeps exactly the tests that take that fixture:
#   tests/protocols/test_websocket.py   (all of it but the tests below; over --http h11 and
#                                        httptools, and zttp when installed: it is not here)
#   tests/protocols/test_http.py        (the two upgrade tests that take a ws class)
#   tests/middleware/test_logging.py    (the trace log of a ws connection)
#   tests/middleware/test_proxy_headers.py  (X-Forwarded-* on a ws scope)
# Then tests/integrations (a FastAPI app on a real `uvicorn --ws ...` process) with the same pins.
#
# Tests that cannot apply to a class of another package, deselected below:
#   test_server_keepalive_ping_pong, test_server_keepalive_disabled: they assert
#     isinstance(protocol, (WSProtocol, WebSocketsSansIOProtocol)), uvicorn's own two classes,
#     and then read those classes' private heartbeat fields (ping_sent_at, ping_timer).
#     turbows's heartbeat is the connection's; tests/integrations/test_uvicorn_server.py checks
#     the same behaviour from outside (a client answering pings stays connected; one that does
#     not is closed with 1011), and uvicorn's test_server_keepalive_ping_timeout passes here.
set -euo pipefail
cd "$(dirname "$0")/.."

UVICORN=0.54.0
PINS=(
    "uvicorn==$UVICORN" httptools==0.9.0 uvloop==0.23.0 websockets==17.4 wsproto==1.3.2
    h11==0.16.0 click==8.5.1 httpx2==2.16.2 anyio==4.16.0 a2wsgi==1.10.10 trustme==1.2.1
    pytest==9.2.0 pytest-mock==3.15.1 hypothesis==6.170.15 fastapi==0.163.2 starlette==1.10.0
)
DESELECT=(
    test_server_keepalive_ping_pong
    test_server_keepalive_disabled
)

PY=${PYTHON:-python3}
VENV=${TURBOWS_UVICORN_VENV:-/tmp/turbows-ci-uvicorn}
WORK=${TURBOWS_UVICORN_WORK:-/tmp/turbows-ci-uvicorn-sdist}
rm -rf "$VENV" "$WORK"
"$PY" -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --upgrade pip
"$VENV/bin/python" -m pip install --quiet "${TURBOWS_WHEEL:-.}" "${PINS[@]}"

mkdir -p "$WORK"
"$VENV/bin/python" -m pip download --quiet --no-binary :all: --no-deps -d "$WORK" "uvicorn==$UVICORN"
tar -xzf "$WORK/uvicorn-$UVICORN.tar.gz" -C "$WORK"

keep="turbows"
for name in "${DESELECT[@]}"; do
    keep="$keep and not $name"
done
plugin_dir=$(cd .ci && pwd)
echo "uvicorn $UVICORN's WebSocket tests on turbows.integrations.uvicorn:WebSocketProtocol"
echo "  deselected (cannot apply, see .ci/uvicorn.sh): ${DESELECT[*]}"
(
    cd "$WORK/uvicorn-$UVICORN"
    # Their ini options stay (filterwarnings = error, strict markers) but -n 8 (pytest-xdist).
    PYTHONPATH="$plugin_dir" "$VENV/bin/python" -m pytest -p uvicorn_suite_plugin -p no:cacheprovider \
        -o addopts="-rxXs --strict-config --strict-markers" -q -k "$keep" \
        tests/protocols/test_websocket.py tests/protocols/test_http.py \
        tests/middleware/test_logging.py tests/middleware/test_proxy_headers.py
)

echo "tests/integrations on the same pins"
"$VENV/bin/python" -m pytest -p no:cacheprovider -q tests/integrations
