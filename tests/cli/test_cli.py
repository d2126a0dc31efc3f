"""``python -m turbows``: the command line run for real, as a subprocess through pipes (and a
pseudo-terminal), against a real server."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, List, Tuple

import pytest

import turbows
import turbows.sync as ts


def turbows_cli(*args: str, stdin: str = "", timeout: float = 30.0) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "turbows", *args],
        input=stdin.encode(),
        capture_output=True,
        timeout=timeout,
    )


def echo(ws: ts.ServerWebSocket) -> None:
    for message in ws:
        ws.send(message)


def test_help_lists_the_subcommands() -> None:
    result = turbows_cli("--help")
    assert result.returncode == 0
    out = result.stdout.decode()
    assert "client" in out and "turbows.bench" in out
    result = turbows_cli()
    assert result.returncode == 2 and b"COMMAND" in result.stdout


def test_a_pipe_sends_each_line_prints_the_answers_and_exits() -> None:
    with ts.serve(echo, "127.0.0.1", 0) as server:
        start = time.monotonic()
        result = turbows_cli(f"ws://127.0.0.1:{server.port}/", stdin="hi\nthere\n//slash\n")
        assert time.monotonic() - start < 15
    assert result.returncode == 0, result.stderr
    assert result.stdout.decode().splitlines() == ["hi", "there", "/slash"]
    err = result.stderr.decode()
    assert (
        "connected to" in err and "permessage-deflate" in err and "connection closed: 1000" in err
    )


def test_the_client_subcommand_and_its_options() -> None:
    def check(request: turbows.Request) -> Any:
        if request.headers.get("X-Token") != "abc":
            return ts.Reject(401, body="no token")
        return None

    def tell(ws: ts.ServerWebSocket) -> None:
        names = ",".join(name for name, _ in ws.extensions) or "none"
        ws.send(f"{ws.subprotocol} {ws.request.origin} {names}")
        for _ in ws:
            pass

    with ts.serve(tell, "127.0.0.1", 0, process_request=check, subprotocols=["b"]) as server:
        uri = f"ws://127.0.0.1:{server.port}/"
        result = turbows_cli(
            "client",
            uri,
            "-s",
            "a",
            "-s",
            "b",
            "-H",
            "X-Token: abc",
            "--origin",
            "https://o.example",
            "--no-compression",
            "--wait",
            "0.3",
        )
        assert result.returncode == 0, result.stderr
        assert result.stdout.decode() == "b https://o.example none\n"
        rejected = turbows_cli("connect", uri)
        assert rejected.returncode == 1
        assert b"HTTP 401: no token" in rejected.stderr


def test_ping_and_close_commands() -> None:
    seen: List[Any] = []

    def handler(ws: ts.ServerWebSocket) -> None:
        try:
            for _ in ws:
                pass
        except ts.ClosedError:
            pass
        seen.append(ws.closed_event)

    with ts.serve(handler, "127.0.0.1", 0) as server:
        result = turbows_cli(
            f"ws://127.0.0.1:{server.port}/",
            stdin="/ping\n/ping hello\n/nope\n/close 4001 bye\nnot sent\n",
        )
        end = time.monotonic() + 5
        while not seen and time.monotonic() < end:
            time.sleep(0.01)
    err = result.stderr.decode()
    assert err.count("pong in ") == 2, err
    assert "unknown command /nope" in err
    assert seen and (seen[0].code, seen[0].reason) == (4001, "bye")


def test_binary_messages_are_written_as_bytes_in_a_pipe() -> None:
    def binary(ws: ts.ServerWebSocket) -> None:
        ws.send(b"\x00\xffraw")
        for _ in ws:
            pass

    with ts.serve(binary, "127.0.0.1", 0) as server:
        result = turbows_cli(f"ws://127.0.0.1:{server.port}/", "--wait", "0.3")
    assert result.stdout == b"\x00\xffraw\n"


def test_a_server_error_close_exits_with_1() -> None:
    def closer(ws: ts.ServerWebSocket) -> None:
        ws.send("last words")
        ws.close(4000, "kicked")

    with ts.serve(closer, "127.0.0.1", 0) as server:
        result = turbows_cli(f"ws://127.0.0.1:{server.port}/")
    assert result.returncode == 1
    assert result.stdout == b"last words\n"
    assert b"connection closed: 4000 'kicked'" in result.stderr


def test_cannot_connect_exits_with_1_and_says_why() -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result = turbows_cli(f"ws://127.0.0.1:{port}/")
    assert result.returncode == 1
    assert b"cannot connect" in result.stderr and b"Traceback" not in result.stderr
    bad = turbows_cli("client", "ws://x/", "-H", "no colon")
    assert bad.returncode == 1 and b"is not 'Name: value'" in bad.stderr


def test_a_wss_server_with_cafile_and_insecure(tls_certificate: Tuple[Path, Path]) -> None:
    import ssl

    cert, key = tls_certificate
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    with ts.serve(echo, "127.0.0.1", 0, ssl=context) as server:
        uri = f"wss://localhost:{server.port}/"
        untrusted = turbows_cli(uri, stdin="x\n")
        assert untrusted.returncode == 1 and b"CERTIFICATE_VERIFY_FAILED" in untrusted.stderr
        trusted = turbows_cli(uri, "--cafile", str(cert), stdin="secure\n")
        assert trusted.returncode == 0 and trusted.stdout == b"secure\n"
        insecure = turbows_cli(uri, "--insecure", stdin="anyway\n")
        assert insecure.returncode == 0 and insecure.stdout == b"anyway\n"


@pytest.mark.skipif(not hasattr(os, "openpty"), reason="needs a pseudo-terminal")
def test_interactive_session_on_a_terminal() -> None:
    import pty
    import select

    with ts.serve(echo, "127.0.0.1", 0) as server:
        pid, fd = pty.fork()
        if pid == 0:  # the child: the CLI on a terminal
            os.execv(
                sys.executable, [sys.executable, "-m", "turbows", f"ws://127.0.0.1:{server.port}/"]
            )
        screen = b""

        def read_until(text: bytes, timeout: float = 15.0) -> None:
            nonlocal screen
            end = time.monotonic() + timeout
            while text not in screen:
                assert time.monotonic() < end, screen
                if select.select([fd], [], [], 0.1)[0]:
                    try:
                        screen += os.read(fd, 4096)
                    except OSError:
                        break

        try:
            read_until(b"/help for commands")
            os.write(fd, b"hello terminal\n")
            read_until(b"< hello terminal")
            os.write(fd, b"/ping\n")
            read_until(b"pong in")
            os.write(fd, b"\x04")  # Ctrl-D: end of input
            read_until(b"connection closed: 1000")
        finally:
            _, status = os.waitpid(pid, 0)
            os.close(fd)
        assert os.WEXITSTATUS(status) == 0
