"""install_wsproto() and the start-up opt-in: `import wsproto` gives turbows's modules, and
only when asked; a genuine wsproto installed beside turbows keeps working otherwise.

Each case runs in a fresh interpreter, since the alias changes sys.modules for good.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
from pathlib import Path


def run(code: str, **env: str) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if k != "TURBOWS_WSPROTO"}
    environ.update(env)
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        env=environ,
        timeout=60,
    )


def test_install_wsproto_aliases_every_module_with_class_identity():
    result = run(
        """
        import turbows.compat
        turbows.compat.install_wsproto()
        import wsproto, wsproto.events, wsproto.connection, wsproto.extensions
        import wsproto.frame_protocol, wsproto.handshake, wsproto.utilities, wsproto.typing
        from wsproto.events import Message
        from turbows.compat.wsproto import events, connection, extensions, frame_protocol
        assert wsproto.events.Message is events.Message is Message
        assert wsproto.connection.Connection is connection.Connection
        assert wsproto.extensions.PerMessageDeflate is extensions.PerMessageDeflate
        assert wsproto.frame_protocol.CloseReason is frame_protocol.CloseReason
        assert wsproto.WSConnection.__module__ == "turbows.compat.wsproto"
        import importlib, importlib.util
        assert importlib.import_module("wsproto.handshake").H11Handshake is wsproto.handshake.H11Handshake
        assert importlib.util.find_spec("wsproto") is not None
        turbows.compat.install_wsproto()  # a second call changes nothing
        assert turbows.compat.wsproto_installed()
        print("ok")
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_alias_survives_removal_from_sys_modules():
    # Tools that unload modules (test runners' isolation) get the same modules back, through
    # the meta path finder, and not the genuine wsproto from site-packages.
    result = run(
        """
        import sys, turbows.compat
        turbows.compat.install_wsproto()
        from turbows.compat.wsproto.events import Ping
        for name in [n for n in sys.modules if n == "wsproto" or n.startswith("wsproto.")]:
            del sys.modules[name]
        import wsproto.events
        assert wsproto.events.Ping is Ping, wsproto.events
        print("ok")
        """
    )
    assert result.returncode == 0, result.stderr


def test_without_the_opt_in_import_wsproto_gets_the_genuine_one():
    pytest.importorskip("wsproto")
    result = run("import wsproto; print(wsproto.__file__)", TURBOWS_WSPROTO="0")
    assert result.returncode == 0, result.stderr
    # The genuine package's own file, not turbows's compat one (a venv's path may well
    # contain the word turbows, as CI's does).
    path = Path(result.stdout.strip())
    assert path.parent.name == "wsproto" and path.parent.parent.name != "compat", path


def test_install_refuses_when_the_genuine_wsproto_is_already_imported():
    pytest.importorskip("wsproto")
    result = run(
        """
        import wsproto, turbows.compat
        try:
            turbows.compat.install_wsproto()
        except RuntimeError as exc:
            print("refused:", exc)
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("refused:")


@pytest.mark.parametrize(("value", "aliased"), [("1", True), ("0", False), ("", False)])
def test_startup_hook_installs_only_when_the_variable_is_1(value, aliased):
    result = run(
        """
        import sys, turbows.compat
        turbows.compat._startup()
        print(turbows.compat.wsproto_installed())
        """,
        TURBOWS_WSPROTO=value,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(aliased)


def test_pth_line_is_the_one_setup_py_installs_and_works():
    # The line setup.py writes into turbows-wsproto.pth (at the root of site-packages), run
    # as site.py runs it; the wheel's own .pth is exercised by .ci/compat.sh.
    import ast
    import pathlib

    setup_py = pathlib.Path(__file__).resolve().parents[2] / "setup.py"
    if not setup_py.exists():
        pytest.skip("not run from a source tree")
    tree = ast.parse(setup_py.read_text())
    line = next(
        ast.literal_eval(node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Assign)
        and any(getattr(t, "id", "") == "WSPROTO_PTH_LINE" for t in node.targets)
    )
    assert line.startswith("import ") and line.endswith("\n") and line.count("\n") == 1
    code = f"exec({line!r})\nimport sys\nprint('wsproto' in sys.modules, 'turbows' in sys.modules)"
    on = run(code, TURBOWS_WSPROTO="1")
    off = run(code)
    assert on.returncode == 0 and off.returncode == 0, (on.stderr, off.stderr)
    assert on.stdout.strip() == "True True"
    # Without the variable the line imports nothing at all.
    assert off.stdout.strip() == "False False"
