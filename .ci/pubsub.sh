#!/usr/bin/env bash
# The pubsub suite (issue 19) against a real Redis: Debian's redis-server (installed with apt
# when missing), the redis extra in the active venv, then tests/pubsub with
# TURBOWS_REQUIRE_REDIS=1 (a missing server fails instead of skipping). The bigger runs of
# the issue's sizes are behind TURBOWS_CI_PUBSUB_FULL=1.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v redis-server >/dev/null; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
            redis-server >/dev/null
    fi
fi
redis-server --version

python -m pip install --quiet "redis>=5.0.1,<9" "hiredis>=2.2,<4"
export TURBOWS_REQUIRE_REDIS=1
python -m pytest tests/pubsub -p no:cacheprovider
