#!/usr/bin/env bash
# aarch64: a manylinux2014 wheel cross-built with zig (-target aarch64-linux-gnu.2.17) against
# the CPython of a Debian arm64 root, checked like the x86-64 ones, then installed in that root
# and tested there under qemu-user (binfmt, so that child processes run too), with no compiler
# in the root: the codec tests, with the NEON kernels expected at import.
# .ci/run runs it with TURBOWS_CI_AARCH64=1; it takes about 10 minutes here (root only: it
# makes a Debian root with mmdebstrap and registers qemu's binfmt handler).
#
#   tools/aarch64_wheel.sh WORKDIR [SDIST]
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
mkdir -p "$1"
WORK=$(cd "$1" && pwd)
SDIST=${2:-}
SYSROOT=$WORK/debian-arm64
TOOLS=${TURBOWS_TOOLS_VENV:-/tmp/turbows-tools}
MIRROR=${TURBOWS_DEBIAN_MIRROR:-http://deb.debian.org/debian}

need=()
command -v mmdebstrap >/dev/null || need+=(mmdebstrap)
command -v arch-test >/dev/null || need+=(arch-test)
[ -e /usr/libexec/qemu-binfmt/aarch64-binfmt-P ] || need+=(qemu-user-static binfmt-support)
if [ "${#need[@]}" -gt 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
if [ ! -e /proc/sys/fs/binfmt_misc/register ]; then
    mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
fi
[ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ] || update-binfmts --enable qemu-aarch64

if [ ! -x "$SYSROOT/usr/bin/python3" ]; then
    echo "== Debian arm64 root (mmdebstrap)"
    rm -rf "$SYSROOT"
    mmdebstrap --quiet --arch=arm64 --variant=apt \
        --include=python3,python3-venv,python3-dev,ca-certificates bookworm "$SYSROOT" "$MIRROR"
fi
in_root() {
    chroot "$SYSROOT" /usr/bin/env -i PATH=/opt/venv/bin:/usr/bin:/bin HOME=/root LANG=C.UTF-8 "$@"
}
PYVER=$(in_root python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')
HOSTPY=$(ls -d "$HOME"/.pyenv/versions/"$PYVER".*/bin/python 2>/dev/null | tail -n 1)
[ -n "$HOSTPY" ] || { echo "aarch64_wheel: no host CPython $PYVER to cross-build with" >&2; exit 1; }

# The cross build: the host CPython of the same version runs setuptools with the target's
# sysconfig (extension suffix, platform tag) and compiles with zig against the target's
# Python headers (-idirafter: zig's glibc 2.17 headers stay first).
echo "== cross-build for aarch64 with zig"
CONFIG=$WORK/sysconfig
mkdir -p "$CONFIG"
cp "$SYSROOT"/usr/lib/python"$PYVER"/_sysconfigdata__linux_aarch64-linux-gnu.py "$CONFIG/"
if [ -z "$SDIST" ]; then
    mkdir -p "$WORK/sdist"
    . tools/_tools_venv.sh
    tools_venv "$TOOLS"
    rm -f "$WORK"/sdist/*.tar.gz
    "$TOOLS/bin/python" -m build --sdist --outdir "$WORK/sdist" "$ROOT" >/dev/null
    SDIST=$(ls "$WORK"/sdist/turbows-*.tar.gz)
fi
rm -rf "$WORK/wheelhouse"
TURBOWS_ZIG_TARGET=aarch64-linux-gnu.2.17 TURBOWS_WHEEL_PYTHONS=$HOSTPY TURBOWS_SDIST=$SDIST \
    TURBOWS_CROSS_ENV="_PYTHON_HOST_PLATFORM=linux-aarch64 _PYTHON_SYSCONFIGDATA_NAME=_sysconfigdata__linux_aarch64-linux-gnu PYTHONPATH=$CONFIG" \
    TURBOWS_EXTRA_CFLAGS="-I$SYSROOT/usr/include/python$PYVER -idirafter $SYSROOT/usr/include" \
    bash tools/build_wheels.sh "$WORK/wheelhouse"
WHEEL=$(ls "$WORK"/wheelhouse/turbows-*aarch64*.whl)
"$TOOLS/bin/python" tools/check_wheel.py "$WHEEL"
"$TOOLS/bin/twine" check --strict "$WHEEL"

echo "== install and test in the arm64 root (qemu-user)"
# The test dependencies are downloaded on the host (aarch64 wheels) and installed offline.
rm -rf "$SYSROOT/opt/deps" "$SYSROOT/opt/venv" "$SYSROOT/tmp/tree"
python3 -m pip download --quiet --disable-pip-version-check --only-binary=:all: \
    --platform manylinux2014_aarch64 --python-version "$PYVER" --implementation cp \
    -d "$SYSROOT/opt/deps" pytest hypothesis 2>&1 | grep -v "^WARNING: Location" || true
cp "$WHEEL" "$SYSROOT/opt/deps/"
# shellcheck source=tools/_no_compiler.sh
. tools/_no_compiler.sh
test_tree "$ROOT" "$SYSROOT/tmp/tree"
mountpoint -q "$SYSROOT/proc" || mount -t proc proc "$SYSROOT/proc"
trap 'umount "$SYSROOT/proc" 2>/dev/null || true' EXIT
for cc in gcc cc clang ld; do
    if in_root sh -c "command -v $cc" >/dev/null; then
        echo "aarch64_wheel: $cc is reachable in the arm64 root" >&2
        exit 1
    fi
done
in_root python3 -m venv /opt/venv
in_root python -m pip install --quiet --disable-pip-version-check --no-index \
    --find-links /opt/deps "/opt/deps/$(basename "$WHEEL")" pytest hypothesis
in_root uname -m
in_root sh -c 'cd /tmp/tree && python - <<EOF
import platform, sysconfig, turbows, turbows._speedups as s
assert platform.machine() == "aarch64", platform.machine()
assert turbows.__file__.startswith(sysconfig.get_paths()["purelib"]), turbows.__file__
assert turbows.IMPLEMENTATION == "cython", turbows.IMPLEMENTATION
print("turbows", turbows.__version__, turbows.IMPLEMENTATION, s.kernel_isa(), "on", platform.machine())
EOF'
in_root sh -c 'cd /tmp/tree && TURBOWS_REQUIRE_EXTENSIONS=1 TURBOWS_EXPECT_ISA=neon \
    TURBOWS_EXPECT_ISAS=portable,neon HYPOTHESIS_PROFILE=dev \
    timeout 1800 python -m pytest -p no:cacheprovider tests/codec'
