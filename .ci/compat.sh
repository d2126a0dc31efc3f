#!/usr/bin/env bash
# turbows.compat.wsproto proven by other projects' own test suites, unmodified, from their
# published sdists (pinned), run through the alias: fresh virtual environments in which the
# genuine wsproto is NOT installed, turbows from its wheel, and TURBOWS_WSPROTO=1 so that
# the wheel's turbows-wsproto.pth makes `import wsproto` give turbows.compat.wsproto at
# interpreter start-up (which also proves the .pth works). A broken alias cannot pass: with
# the variable unset, `import wsproto` fails in these environments (checked below).
#
#   wsproto 1.3.2         its tests that use only wsproto's public API (108 of 230)
#   hypercorn 0.18.0      its whole suite (196)
#   trio-websocket 0.12.2 its whole suite (64)
#   uvicorn 0.55.0        its wsproto-parametrised tests, -k wsproto (240)
#   httpx-ws 0.9.0        its whole suite (147)
#
# Every sdist above ships its tests. TURBOWS_COMPAT_BASELINE=1 runs the same suites on the
# genuine wsproto 1.3.2 instead (how the baseline below was taken: all pass there too).
# Needs: python3 (3.11, as CI), network access to PyPI. About 6 minutes, most of it installs.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

PY=${PYTHON:-python3}
WORK=${TURBOWS_COMPAT_DIR:-/tmp/turbows-ci-compat}
BASELINE=${TURBOWS_COMPAT_BASELINE:-0}
rm -rf "$WORK"
mkdir -p "$WORK/sdist" "$WORK/wheel"

# turbows from the wheel .ci/run built, or one built here once for every environment.
WHEEL=${TURBOWS_WHEEL:-}
if [ -z "$WHEEL" ] && [ "$BASELINE" != 1 ]; then
    "$PY" -m pip wheel --quiet --no-deps -w "$WORK/wheel" "$ROOT"
    WHEEL=$(ls "$WORK"/wheel/turbows-*.whl)
fi

# The suites, from their sdists.
fetch() {
    "$PY" -m pip download --quiet --no-binary :all: --no-deps "$1" -d "$WORK/sdist"
}
for spec in wsproto==1.3.2 hypercorn==0.18.0 trio-websocket==0.12.2 uvicorn==0.55.0 httpx-ws==0.9.0; do
    fetch "$spec"
done
for archive in "$WORK"/sdist/*.tar.gz; do
    tar -xzf "$archive" -C "$WORK/sdist"
done
WSPROTO_SRC=$WORK/sdist/wsproto-1.3.2
HYPERCORN_SRC=$WORK/sdist/hypercorn-0.18.0
TRIO_WS_SRC=$WORK/sdist/trio_websocket-0.12.2
UVICORN_SRC=$WORK/sdist/uvicorn-0.55.0
HTTPX_WS_SRC=$WORK/sdist/httpx_ws-0.9.0

# A fresh environment with turbows (h11 pinned as wsproto 1.3.2 pins it) or, for the
# baseline, the genuine wsproto; the projects under test go in with --no-deps (hypercorn,
# trio-websocket and httpx-ws depend on wsproto), their dependencies pinned explicitly.
make_env() {
    local env=$WORK/venv-$1
    shift
    "$PY" -m venv "$env"
    "$env/bin/python" -m pip install --quiet --upgrade pip==26.3
    if [ "$BASELINE" = 1 ]; then
        "$env/bin/python" -m pip install --quiet wsproto==1.3.2 h11==0.16.0
    else
        "$env/bin/python" -m pip install --quiet "$WHEEL" h11==0.16.0
        # Without the opt-in there is no wsproto at all: the suites can only pass through it.
        if "$env/bin/python" -c "import wsproto" 2>/dev/null; then
            echo "compat: a genuine wsproto is importable in $env" >&2
            exit 1
        fi
        TURBOWS_WSPROTO=1 "$env/bin/python" -c "import wsproto, turbows.compat.wsproto as t; assert wsproto is t, wsproto"
    fi
    "$env/bin/python" -m pip install --quiet --no-deps "$@"
}

status=0
run_suite() {
    local name=$1 env=$WORK/venv-$2 dir=$3
    shift 3
    echo "== $name"
    (cd "$dir" && TURBOWS_WSPROTO=1 timeout 900 "$env/bin/python" -m pytest -p no:cacheprovider -q -rfE "$@") \
        2>&1 | grep -E "^(FAILED|ERROR)|[0-9]+ (passed|failed|errors?)" || status=1
}

# Every package pinned, transitive ones included (as resolved when this was written).
# wsproto, hypercorn and trio-websocket share one environment (compatible pins).
make_env a \
    anyio==4.16.0 attrs==26.1.0 certifi==2026.10.19.post1 cffi==2.1.1 coverage==7.18.0 \
    cryptography==51.0.1 h2==4.3.0 hpack==4.2.0 httpcore==1.0.9 httpx==0.29.0 \
    hyperframe==6.1.0 hypothesis==6.170.27 idna==3.21 iniconfig==2.3.1 mock==5.2.0 \
    outcome==1.3.0.post0 packaging==26.4 pdm-backend==2.5.0 pluggy==1.7.0 priority==2.0.0 \
    pycparser==3.12 Pygments==2.21.0 pytest==9.2.0 pytest-asyncio==1.5.0 pytest-cov==7.1.0 \
    pytest-rerunfailures==16.7 pytest-trio==0.8.0 sniffio==1.3.1 sortedcontainers==2.4.0 \
    trio==0.35.0 trustme==1.2.1 typing_extensions==4.16.0 setuptools==84.2.1 wheel==0.48.0
"$WORK/venv-a/bin/python" -m pip install --quiet --no-deps --no-build-isolation \
    "$HYPERCORN_SRC" "$TRIO_WS_SRC"
make_env uvicorn \
    a2wsgi==1.10.10 anyio==4.16.0 cffi==2.1.1 click==8.5.1 cryptography==51.0.1 \
    execnet==2.1.2 httpcore2==2.17.0 httptools==0.9.0 httpx2==2.17.0 idna==3.21 \
    iniconfig==2.3.1 markdown-it-py==4.3.0 mdurl==0.1.2 packaging==26.4 pluggy==1.7.0 \
    pycparser==3.12 Pygments==2.21.0 pytest==9.2.0 pytest-codspeed==5.0.4 pytest-mock==3.17.0 \
    pytest-xdist==3.8.0 python-dotenv==1.2.4 PyYAML==6.0.4 rich==15.0.0 trustme==1.2.1 \
    truststore==0.10.5 typing_extensions==4.16.0 uvloop==0.23.0 watchfiles==1.3.0 \
    websockets==17.4 zttp==0.0.35 hatchling==1.33.0 pathspec==1.1.1 trove-classifiers==2026.9.21.13
"$WORK/venv-uvicorn/bin/python" -m pip install --quiet --no-deps --no-build-isolation "$UVICORN_SRC"
# httpx-ws at the versions of its own uv.lock where it pins them.
make_env httpx-ws \
    anyio==4.11.0 attrs==26.1.0 certifi==2026.10.19.post1 click==8.5.1 coverage==7.18.0 \
    hatch-regex-commit==0.0.4 hatchling==1.33.0 httpcore==1.0.9 httptools==0.9.0 \
    httpx==0.28.1 idna==3.21 iniconfig==2.3.1 outcome==1.3.0.post0 packaging==26.4 \
    pathspec==1.1.1 pluggy==1.7.0 Pygments==2.21.0 pytest==8.4.2 pytest-cov==7.0.0 \
    pytest-rerunfailures==16.7 sniffio==1.3.1 sortedcontainers==2.4.0 starlette==0.48.0 \
    tomlkit==0.15.3 trio==0.31.0 trove-classifiers==2026.9.21.13 typing_extensions==4.16.0 \
    uvicorn==0.38.0 uvloop==0.23.0 websockets==17.4
"$WORK/venv-httpx-ws/bin/python" -m pip install --quiet --no-deps --no-build-isolation "$HTTPX_WS_SRC"

# wsproto's own tests that use only its public API. Left out, because they test wsproto's
# internals, which turbows replaces with its codec: tests/test_frame_protocol.py (Buffer,
# MessageDecoder, FrameDecoder, FrameProtocol, XorMaskerSimple) and, in
# tests/test_permessage_deflate.py, the 25 tests that drive PerMessageDeflate's frame hooks
# through FrameProtocol and read its private _enabled, _compressor and _decompressor (its
# negotiation tests, test_offer/finalize/accept/repr, are kept).
run_suite "wsproto 1.3.2 (public API)" a "$WSPROTO_SRC" \
    tests/test_client.py tests/test_server.py tests/test_connection.py \
    tests/test_handshake.py tests/test_extensions.py tests/test_permessage_deflate.py \
    -k "not TestPerMessageDeflate or test_offer or test_finalize or test_accept or test_repr"
# hypercorn's keep-alive test and httpx-ws's tests race a server's shutdown against the last
# message on a loaded machine: some failed now and then with the genuine wsproto too (on
# either of httpx-ws's server backends, websockets' included). They get up to two reruns;
# pytest's summary counts them ("N rerun").
run_suite "hypercorn 0.18.0" a "$HYPERCORN_SRC" --reruns 2
# trio-websocket's tests are trio tests: its repository runs them in pytest-trio's trio mode
# (a pytest.ini the sdist does not ship), given here as an option.
run_suite "trio-websocket 0.12.2" a "$TRIO_WS_SRC" -o trio_mode=true
# Two workers instead of uvicorn's 8 (-n in its addopts): the CI machine is small.
run_suite "uvicorn 0.55.0 (-k wsproto)" uvicorn "$UVICORN_SRC" -n 2 -k wsproto
run_suite "httpx-ws 0.9.0" httpx-ws "$HTTPX_WS_SRC" --no-cov --reruns 2

exit "$status"
