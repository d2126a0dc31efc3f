"""wss:// end to end: a TLS server (the loop's transport) and client on 127.0.0.1, with a
certificate made for the test by the openssl command line."""

from __future__ import annotations

import shutil
import ssl
import subprocess
from pathlib import Path
from typing import Tuple

import pytest

import turbows
import turbows.asyncio as fa

from aio_helpers import echo, run

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl")


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> Tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return cert, key


def _contexts(certificate: Tuple[Path, Path]) -> Tuple[ssl.SSLContext, ssl.SSLContext]:
    cert, key = certificate
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(cert, key)
    client = ssl.create_default_context(cafile=str(cert))
    return server, client


def test_echo_over_wss_with_compression(certificate: Tuple[Path, Path]) -> None:
    server_ctx, client_ctx = _contexts(certificate)

    async def main() -> None:
        async with fa.serve(echo, "127.0.0.1", 0, ssl=server_ctx) as server:
            uri = f"wss://localhost:{server.port}/"
            async with fa.connect(uri, ssl=client_ctx) as ws:
                assert ws.transport.get_extra_info("ssl_object") is not None
                assert ws.extensions and ws.extensions[0][0] == "permessage-deflate"
                for message in ("hello", "é" * 10_000, b"\x00" * 70_000):
                    await ws.send(message)
                    assert await ws.recv() == message
                assert await ws.ping() >= 0.0
            assert ws.close_code == 1000

    run(main, timeout=20)


def test_a_client_that_does_not_trust_the_certificate_fails_to_connect(
    certificate: Tuple[Path, Path],
) -> None:
    server_ctx, _ = _contexts(certificate)

    async def main() -> None:
        async with fa.serve(echo, "127.0.0.1", 0, ssl=server_ctx) as server:
            with pytest.raises(ssl.SSLCertVerificationError):
                # The default context trusts the system's authorities, not our certificate.
                await fa.connect(f"wss://localhost:{server.port}/", open_timeout=5)

    run(main, timeout=20)


def test_process_request_sees_the_tls_details(certificate: Tuple[Path, Path]) -> None:
    server_ctx, client_ctx = _contexts(certificate)
    seen = []

    def hook(request: turbows.Request) -> None:
        seen.append((request.tls.version(), request.tls.cipher()[0]))

    async def main() -> None:
        async with fa.serve(echo, "127.0.0.1", 0, ssl=server_ctx, process_request=hook) as server:
            async with fa.connect(f"wss://localhost:{server.port}/", ssl=client_ctx) as ws:
                await ws.send("x")
                assert await ws.recv() == "x"
                assert seen == [(ws.transport.get_extra_info("ssl_object").version(),
                                 ws.transport.get_extra_info("cipher")[0])]
        assert seen[0][0].startswith("TLSv1")

    run(main)
