#!/usr/bin/env bash
# Build the sdist once, then a manylinux2014 (glibc 2.17) wheel from that sdist for every
# CPython 3.9-3.13 that pyenv has here, with zig as the C compiler and linker, each wheel
# repaired and tagged by auditwheel.
#
#   tools/build_wheels.sh [OUT]          # OUT defaults to ./wheelhouse
#
# Writes OUT/turbows-*.tar.gz and OUT/turbows-*-manylinux_2_17_x86_64*.whl. Environment:
#   TURBOWS_WHEEL_PYTHONS  the interpreters to build for (space-separated paths); default:
#                          ~/.pyenv/versions/3.{9..13}.*/bin/python
#   TURBOWS_TOOLS_VENV     the virtual environment holding zig, auditwheel, build and twine
#                          (created if missing; default /tmp/turbows-tools)
#   TURBOWS_WHEEL_JOBS     wheels built at once (default 2: the compile steps are single-threaded
#                          and the machine has two cores; 2 jobs take 45% less time than 1)
#   TURBOWS_ZIG_TARGET     zig's target triple (default x86_64-linux-gnu.2.17)
#   TURBOWS_SDIST          build from this sdist instead of building one
#   TURBOWS_CROSS_ENV      VAR=VALUE words added to the environment of the wheel builds only
#                          (a cross build points sysconfig at the target's: aarch64_wheel.sh)
#   TURBOWS_EXTRA_CFLAGS   more compiler flags (the target's Python headers, for a cross build)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=$(mkdir -p "${1:-wheelhouse}" && cd "${1:-wheelhouse}" && pwd)
TOOLS=${TURBOWS_TOOLS_VENV:-/tmp/turbows-tools}
JOBS=${TURBOWS_WHEEL_JOBS:-2}
TARGET=${TURBOWS_ZIG_TARGET:-x86_64-linux-gnu.2.17}
PLAT_ARG=auto
case "$TARGET" in
    x86_64-*) PLAT=manylinux_2_17_x86_64; CPU=baseline; [ "$(uname -m)" = x86_64 ] && PLAT_ARG=$PLAT ;;
    aarch64-*) PLAT=manylinux_2_17_aarch64; CPU=baseline ;;
    *) echo "build_wheels: no manylinux tag known for $TARGET" >&2; exit 2 ;;
esac

# shellcheck source=tools/_tools_venv.sh
. tools/_tools_venv.sh
tools_venv "$TOOLS"

WORK=$(mktemp -d /tmp/turbows-wheels.XXXXXX)
trap 'rm -rf "$WORK"' EXIT

# zig cc as CC and LDSHARED, through wrappers (setuptools splits these variables on spaces,
# and a wrapper keeps the target in one place).
mkdir -p "$WORK/zig"
cat >"$WORK/zig/cc" <<EOF
#!/bin/sh
exec "$TOOLS/bin/python" -m ziglang cc -target $TARGET -mcpu=$CPU "\$@"
EOF
chmod +x "$WORK/zig/cc"
export CC="$WORK/zig/cc" LDSHARED="$WORK/zig/cc -shared"
# -g0 after the interpreter's own -g: no debug information in the shipped objects.
export CFLAGS="-g0 ${TURBOWS_EXTRA_CFLAGS:-}" LDFLAGS="" TURBOWS_REQUIRE_EXTENSIONS=1
unset TURBOWS_NO_EXTENSIONS

if [ -n "${TURBOWS_SDIST:-}" ]; then
    SDIST=$TURBOWS_SDIST
else
    echo "== sdist"
    rm -f "$OUT"/turbows-*.tar.gz
    "$TOOLS/bin/python" -m build --sdist --outdir "$OUT" "$ROOT" >"$WORK/sdist.log" 2>&1 \
        || { cat "$WORK/sdist.log"; exit 1; }
    SDIST=$(ls "$OUT"/turbows-*.tar.gz)
fi
echo "$SDIST"
read -r -a CROSS_ENV <<<"${TURBOWS_CROSS_ENV:-}"

if [ -n "${TURBOWS_WHEEL_PYTHONS:-}" ]; then
    read -r -a PYTHONS <<<"$TURBOWS_WHEEL_PYTHONS"
else
    PYTHONS=()
    for minor in 9 10 11 12 13; do
        for py in "$HOME"/.pyenv/versions/3."$minor".*/bin/python; do
            [ -x "$py" ] && PYTHONS+=("$py")
        done
    done
fi
[ "${#PYTHONS[@]}" -gt 0 ] || { echo "build_wheels: no CPython 3.9-3.13 found" >&2; exit 1; }

# Build requirements as pyproject.toml names them, installed once per interpreter in a
# build environment of its own (pip's isolated build would install them again per wheel).
mapfile -t REQUIRES < <("$TOOLS/bin/python" -c '
import tomllib
with open("pyproject.toml", "rb") as f:
    print("\n".join(tomllib.load(f)["build-system"]["requires"]))')

build_one() {
    local py=$1 tag log venv
    tag=$("$py" -c 'import sys; print("cp%d%d" % sys.version_info[:2])')
    log="$WORK/$tag.log"
    venv="$WORK/venv-$tag"
    {
        "$py" -m venv "$venv"
        "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "${REQUIRES[@]}"
        # The sdist, not the tree: what users build from.
        env "${CROSS_ENV[@]}" "$venv/bin/python" -m pip wheel --quiet --no-deps --no-build-isolation \
            --disable-pip-version-check -w "$WORK/raw-$tag" "$SDIST"
        # auditwheel offers the host architecture's tags to --plat; for a cross build, "auto"
        # takes the wheel's own (and the tag is checked below).
        PATH="$TOOLS/bin:$PATH" "$TOOLS/bin/auditwheel" repair --plat "$PLAT_ARG" -w "$OUT" \
            "$WORK/raw-$tag"/*.whl
    } >"$log" 2>&1 || { echo "== $tag FAILED"; grep -v "^WARNING: Location" "$log" | tail -40; return 1; }
    echo "== $tag: $(basename "$(ls "$OUT"/turbows-*-"$tag"-*.whl)")"
}

rm -f "$OUT"/turbows-*.whl
pids=()
status=0
for py in "${PYTHONS[@]}"; do
    while :; do
        running=0
        for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && running=$((running + 1)); done
        [ "$running" -lt "$JOBS" ] && break
        sleep 1
    done
    build_one "$py" &
    pids+=($!)
done
for pid in "${pids[@]}"; do wait "$pid" || status=1; done
[ "$status" = 0 ] || exit 1

# Every wheel carries the manylinux2014 tag, not a newer one.
for whl in "$OUT"/turbows-*.whl; do
    case "$whl" in
        *"$PLAT"*) ;;
        *) echo "build_wheels: $whl is not tagged $PLAT" >&2; exit 1 ;;
    esac
done
ls -l "$OUT"
