#!/usr/bin/env bash
# Install each wheel of WHEELHOUSE into a fresh virtual environment of its Python and run the
# codec, connection and extension tests against it: from a copy of the tests outside the source
# tree, with no C compiler reachable, the C extension required.
#
#   tools/test_wheels.sh WHEELHOUSE [TAG...]     # TAG: cp39 ... cp313 (default: every wheel)
#
# .ci/run runs the whole suite against its own Python's wheel, and this for the others.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
HOUSE=$(cd "$1" && pwd)
shift
TAGS=("$@")
# shellcheck source=tools/_no_compiler.sh
. tools/_no_compiler.sh

WORK=$(mktemp -d /tmp/turbows-wheel-tests.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
NOCC=$(no_compiler_path "$WORK/bin")
test_tree "$ROOT" "$WORK/tree"

status=0
tested=0
for whl in "$HOUSE"/turbows-*.whl; do
    tag=$(basename "$whl" | cut -d- -f3)
    if [ "${#TAGS[@]}" -gt 0 ] && [[ " ${TAGS[*]} " != *" $tag "* ]]; then
        continue
    fi
    minor=${tag#cp3}
    py=$(ls -d "$HOME"/.pyenv/versions/3."$minor".*/bin/python 2>/dev/null | tail -n 1)
    if [ -z "$py" ]; then
        echo "test_wheels: no Python 3.$minor for $(basename "$whl")" >&2
        status=1
        continue
    fi
    echo "== $(basename "$whl")"
    venv="$WORK/venv-$tag"
    "$py" -m venv "$venv"
    if ! "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "$whl[test]" \
        >"$WORK/pip-$tag.log" 2>&1; then
        cat "$WORK/pip-$tag.log"
        status=1
        continue
    fi
    (
        cd "$WORK/tree"
        export PATH="$venv/bin:$NOCC" TURBOWS_REQUIRE_EXTENSIONS=1
        unset CC LDSHARED TURBOWS_NO_EXTENSIONS
        check_installed python
        python -m pytest -q -p no:cacheprovider tests/codec tests/connection tests/extensions
    ) || status=1
    tested=$((tested + 1))
done
if [ "$tested" = 0 ]; then
    echo "test_wheels: no wheel tested in $HOUSE" >&2
    exit 1
fi
exit "$status"
