#!/usr/bin/env bash
# The documentation: build docs/ with Sphinx, warnings as errors (-W), every cross-reference
# checked (-n, nitpicky), and every public name of turbows, turbows.asyncio and turbows.sync
# required in the API reference (docs/conf.py). The examples of the pages and of the README
# run in the test suite (tests/docs). Called by .ci/run with its virtual environment active
# (turbows installed); installs the pinned doc tools of the "docs" extra.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$SECONDS

# Python's own inventory for the links to docs.python.org (intersphinx): CI reaches no site
# but the package registries, and Debian's python3-doc has the file.
if ! ls /usr/share/doc/python3*/html/objects.inv >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-doc >/dev/null
    fi
fi

# The doc tools only (the "docs" extra of pyproject.toml), not turbows again.
python - <<'PY' > /tmp/turbows-docs-requirements.txt
import tomllib
with open("pyproject.toml", "rb") as f:
    print("\n".join(tomllib.load(f)["project"]["optional-dependencies"]["docs"]))
PY
python -m pip install --quiet -r /tmp/turbows-docs-requirements.txt

out=${TURBOWS_DOCS_OUT:-/tmp/turbows-docs-html}
rm -rf "$out"
python -m sphinx -E -W --keep-going -n -q -b html docs "$out"
echo "docs: built in $((SECONDS - start)) s into $out"
