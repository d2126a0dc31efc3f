#!/usr/bin/env bash
# Install the Autobahn|Testsuite's wstest (a Python 2.7 program) into a folder of its own and
# print the command line that runs it, for TURBOWS_WSTEST:
#
#     export TURBOWS_WSTEST="$(bash tests/autobahn/install.sh /tmp/turbows-autobahn)"
#
# Python 2.7 is looked for in pyenv's versions, then on PATH; PYTHON2 overrides the search.
# Exit status 3: no Python 2.7 found.
set -euo pipefail
DEST=${1:-/tmp/turbows-autobahn}

is_py27() { [ -n "$1" ] && "$1" -c 'import sys; assert sys.version_info[:2] == (2, 7)' 2>/dev/null; }

PY2=${PYTHON2:-}
if [ -z "$PY2" ]; then
    for candidate in "${PYENV_ROOT:-$HOME/.pyenv}"/versions/2.7*/bin/python2.7 \
        "$(command -v python2.7 || true)" "$(command -v python2 || true)"; do
        if is_py27 "$candidate"; then
            PY2=$candidate
            break
        fi
    done
fi
if ! is_py27 "$PY2"; then
    echo "install.sh: no Python 2.7 found (set PYTHON2)" >&2
    exit 3
fi

"$PY2" -m pip install --quiet --disable-pip-version-check --no-warn-script-location \
    --target "$DEST" autobahntestsuite==25.10.1 2>&1 | grep -v -e DEPRECATION -e "is ignored" >&2 || true
# zope.interface is a namespace package whose .pth file --target installs do not process.
touch "$DEST/zope/__init__.py"
env PYTHONPATH="$DEST" "$PY2" "$DEST/bin/wstest" --autobahnversion >/dev/null
echo "env PYTHONPATH=$DEST $PY2 $DEST/bin/wstest"
