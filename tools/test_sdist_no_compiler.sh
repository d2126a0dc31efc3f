#!/usr/bin/env bash
# The sdist on a machine without a C compiler: pip installs it (pure-Python codec), and the
# first import says so with a RuntimeWarning, since pip hides the build's own warning unless
# it runs with -v. TURBOWS_NO_EXTENSIONS=1 (pure Python on purpose) silences it.
#
#   tools/test_sdist_no_compiler.sh SDIST [PYTHON]
set -euo pipefail
cd "$(dirname "$0")/.."
SDIST=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
PY=${2:-python3}
# shellcheck source=tools/_no_compiler.sh
. tools/_no_compiler.sh

WORK=$(mktemp -d /tmp/turbows-sdist-test.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
"$PY" -m venv "$WORK/venv"
NOCC=$(no_compiler_path "$WORK/bin")
cd "$WORK"
export PATH="$WORK/venv/bin:$NOCC"
unset CC LDSHARED TURBOWS_NO_EXTENSIONS TURBOWS_REQUIRE_EXTENSIONS
# --no-cache-dir: the pure-Python wheel built here must not be cached for later installs.
python -m pip install --no-cache-dir --disable-pip-version-check "$SDIST" >pip.log 2>&1 \
    || { cat pip.log; exit 1; }
grep -v "^WARNING: Location" pip.log | tail -n 3

python -c "import turbows" 2>warning.txt
cat warning.txt
grep -q "RuntimeWarning: turbows was installed without its C extension" warning.txt \
    || { echo "test_sdist_no_compiler: no warning at import" >&2; exit 1; }
python -c "import turbows; assert turbows.IMPLEMENTATION == 'python', turbows.IMPLEMENTATION"
TURBOWS_NO_EXTENSIONS=1 python -c "import turbows" 2>quiet.txt
if [ -s quiet.txt ]; then
    echo "test_sdist_no_compiler: TURBOWS_NO_EXTENSIONS=1 still warns:" >&2
    cat quiet.txt >&2
    exit 1
fi
echo "sdist without a compiler: pure-Python install, warned at import"
