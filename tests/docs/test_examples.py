"""Every ``python`` code block of the README and of the documentation (docs/*.md) runs here,
as a program of its own in a subprocess, so that an example cannot rot.

A comment line right before a block says how it runs (none: a program that must exit 0):

``<!-- test: server -->``
    a server that runs until stopped: it is started, its port must accept connections, then
    the next block, which must be marked ``client``, runs against it; the server is stopped.
``<!-- test: client -->``
    a client that needs a peer: after a ``server`` block, that server; alone, an echo server
    (turbows.sync) started by the test.
``<!-- test: continue -->``
    the rest of the previous block's program: the blocks run together, as one program.

``needs MODULE`` after the kind (``<!-- test: server needs uvicorn -->``) skips the program
where that optional dependency is not installed.

Port 8765 in a block is replaced by a free port; the programs run in a folder holding a
self-signed ``cert.pem`` and ``key.pem`` for ``localhost`` (for the wss:// examples).
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import List, Optional, Tuple

import pytest

import turbows.sync

ROOT = Path(__file__).resolve().parents[2]
FILES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
KINDS = ("run", "server", "client", "continue")
MARKER = re.compile(r"^<!--\s*test:\s*([\w-]+)(?:\s+needs\s+([\w.]+))?\s*-->\s*$")
TIMEOUT = 60.0


class Program:
    """One program made of one block, or of several joined by ``continue``."""

    def __init__(self, path: Path, line: int, kind: str, code: str, needs: str = "") -> None:
        self.path = path
        self.line = line
        self.kind = kind
        self.code = code
        self.needs = needs
        self.client: Optional[Program] = None

    @property
    def id(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def blocks(path: Path) -> List[Tuple[int, str, str, str]]:
    """``(line, kind, needs, code)`` of each python block of ``path``."""
    found = []
    lines = path.read_text(encoding="utf-8").splitlines()
    kind, needs = "run", ""
    i = 0
    while i < len(lines):
        line = lines[i]
        marker = MARKER.match(line.strip())
        if line.strip().startswith("<!--") and "test:" in line:
            assert marker, f"{path}:{i + 1}: malformed test marker {line!r}"
        if marker:
            kind, needs = marker.group(1), marker.group(2) or ""
            assert kind in KINDS, f"{path}:{i + 1}: unknown test marker {kind!r}"
        elif line.startswith("```"):
            lang = line[3:].strip()
            start = i + 1
            i += 1
            while i < len(lines) and not lines[i].startswith("```"):
                i += 1
            if lang in ("python", "py"):
                found.append((start, kind, needs, "\n".join(lines[start:i]) + "\n"))
            kind, needs = "run", ""
        elif line.strip():
            kind, needs = "run", ""  # a marker applies to the block right after it
        i += 1
    return found


def programs() -> List[Program]:
    result: List[Program] = []
    for path in FILES:
        previous: Optional[Program] = None
        for line, kind, needs, code in blocks(path):
            if kind == "continue":
                assert previous is not None, f"{path}:{line}: nothing to continue"
                previous.code += "\n" + code
                continue
            program = Program(path, line, kind, code, needs)
            if kind == "client" and previous is not None and previous.kind == "server":
                previous.client = program
            else:
                result.append(program)
            previous = program
    return result


PROGRAMS = programs()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def workdir(tmp_path: Path, request: pytest.FixtureRequest) -> Path:
    program = request.getfixturevalue("program")
    codes = [program.code] + ([program.client.code] if program.client else [])
    if any("cert.pem" in code for code in codes):
        # Only the wss:// examples need openssl's certificate (and skip without openssl).
        cert, key = request.getfixturevalue("tls_certificate")
        shutil.copy(cert, tmp_path / "cert.pem")
        shutil.copy(key, tmp_path / "key.pem")
    return tmp_path


def _write(program: Program, folder: Path, port: int, name: str) -> Path:
    path = folder / name
    path.write_text(program.code.replace("8765", str(port)), encoding="utf-8")
    return path


def _env() -> dict:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env.pop("PYTHONPATH", None)
    return env


def _run(program: Program, folder: Path, port: int, name: str) -> None:
    script = _write(program, folder, port, name)
    result = subprocess.run(
        [sys.executable, str(script)],
        cwd=folder,
        capture_output=True,
        timeout=TIMEOUT,
        env=_env(),
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, (
        f"{program.id} exited with {result.returncode}\n--- stdout\n"
        f"{result.stdout.decode(errors='replace')}\n--- stderr\n"
        f"{result.stderr.decode(errors='replace')}"
    )


def _wait_listening(port: int, server: "subprocess.Popen[bytes]", program: Program) -> None:
    end = time.monotonic() + 30
    while time.monotonic() < end:
        if server.poll() is not None:
            out, err = server.communicate()
            pytest.fail(f"{program.id}: the server exited with {server.returncode}\n{err.decode()}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    pytest.fail(f"{program.id}: nothing listens on port {port}")


def _echo(ws: turbows.sync.ServerWebSocket) -> None:
    for message in ws:
        ws.send(message)


@pytest.mark.parametrize("program", PROGRAMS, ids=[p.id for p in PROGRAMS])
def test_example(program: Program, workdir: Path) -> None:
    if program.needs:
        pytest.importorskip(program.needs)
    port = free_port()
    if program.kind == "run":
        _run(program, workdir, port, "example.py")
    elif program.kind == "client":
        with turbows.sync.serve(_echo, "127.0.0.1", port):
            _run(program, workdir, port, "client.py")
    else:
        assert program.client is not None, f"{program.id}: a server block needs a client block"
        script = _write(program, workdir, port, "server.py")
        server = subprocess.Popen(
            [sys.executable, str(script)],
            cwd=workdir,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=_env(),
            stdin=subprocess.DEVNULL,
        )
        try:
            _wait_listening(port, server, program)
            _run(program.client, workdir, port, "client.py")
        finally:
            server.terminate()
            try:
                server.wait(10)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
            if server.stderr is not None:
                server.stderr.close()


def test_the_examples_are_found() -> None:
    """The README and every page with code have their blocks collected (a broken fence or
    marker would silently drop them)."""
    paths = {p.path.name for p in PROGRAMS}
    assert "README.md" in paths
    for page in ("getting-started.md", "server.md", "client.md", "sans-io.md", "sync.md"):
        assert page in paths, f"no example collected from docs/{page}"
    assert len(PROGRAMS) >= 20, len(PROGRAMS)
