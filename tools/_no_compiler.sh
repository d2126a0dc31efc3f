# Sourced by .ci/run and tools/test_wheels.sh: run the tests as a user of the wheel would, with
# no C compiler reachable and from a folder outside the source tree.
#
#   no_compiler_path DIR      print a PATH of DIR (created): symlinks to every program on the
#                             current PATH except compilers, assemblers and linkers
#   test_tree ROOT DIR        copy ROOT's tests/, what they read (examples/, README.md and
#                             docs/, whose examples tests/docs runs) and pytest's configuration
#   check_installed PYTHON    PYTHON imports turbows from its site-packages, extension in use

no_compiler_path() {
    local dir=$1 entry name
    rm -rf "$dir"
    mkdir -p "$dir"
    local IFS=:
    for entry in $PATH; do
        [ -d "$entry" ] || continue
        for prog in "$entry"/*; do
            name=${prog##*/}
            [ -x "$prog" ] && [ ! -d "$prog" ] || continue
            [ -e "$dir/$name" ] && continue          # the first on PATH wins, as for PATH
            case "$name" in
                cc | c89 | c99 | c++ | cpp | gcc | g++ | gcc-* | g++-* | cpp-* | clang | clang++ \
                    | clang-* | zig | tcc | ld | ld.* | as | collect2 | *-gcc | *-gcc-* | *-g++ \
                    | *-g++-* | *-ld | *-ld.* | *-as | *-cc | *-clang | *-c++ | *-cpp | x86_64-* \
                    | aarch64-* | i686-* | python-zig | zig-*) continue ;;
            esac
            ln -s "$prog" "$dir/$name"
        done
    done
    for name in gcc cc clang ld zig x86_64-linux-gnu-gcc; do
        if PATH=$dir command -v "$name" >/dev/null 2>&1; then
            echo "no_compiler_path: $name is still reachable" >&2
            return 1
        fi
    done
    echo "$dir"
}

test_tree() {
    local root=$1 dir=$2
    rm -rf "$dir"
    mkdir -p "$dir"
    cp -r "$root/tests" "$root/examples" "$root/docs" "$root/README.md" "$dir/"
    # pytest's options ([tool.pytest.ini_options]) are in pyproject.toml; nothing else there
    # is used from this folder.
    cp "$root/pyproject.toml" "$dir/"
    find "$dir" -name __pycache__ -prune -exec rm -rf {} +
}

check_installed() {
    "$1" - <<'EOF'
import sys, sysconfig
import turbows, turbows.asyncio._fastio, turbows.bench._loadgen
site = sysconfig.get_paths()["purelib"]
assert turbows.__file__.startswith(site), (turbows.__file__, site)
assert turbows.IMPLEMENTATION == "cython", turbows.IMPLEMENTATION
import turbows._speedups as s
print(f"turbows {turbows.__version__} {turbows.IMPLEMENTATION} ({s.kernel_isa()}) from {turbows.__file__}")
EOF
}
