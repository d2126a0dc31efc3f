"""The close-code table of docs/client.md is the reconnecting client's decision table: each
row is checked against ``turbows.asyncio.default_should_retry``, so that the two cannot
drift apart."""

from __future__ import annotations

import re
from pathlib import Path
from typing import List, Tuple

import pytest

from turbows._http import Headers
from turbows.asyncio import (
    HandshakeFailed,
    HandshakeRejected,
    OpenTimeout,
    WebSocketClosed,
    default_should_retry,
)
from turbows.events import ConnectionClosed

PAGE = Path(__file__).resolve().parents[2] / "docs" / "client.md"


def rows() -> List[Tuple[str, bool]]:
    text = PAGE.read_text(encoding="utf-8")
    table = text.split("### When to reconnect", 1)[1].split("\n\n", 2)[2]
    found = []
    for line in table.splitlines():
        if not line.startswith("| ") or line.startswith(("| how", "| ---")):
            if found:
                break
            continue
        cells = [c.strip() for c in line.strip("|").split("|")]
        assert cells[2] in ("yes", "no"), line
        # What happens instead of reconnecting: the loop ends quietly or raises the reason.
        assert (cells[3] == "") == (cells[2] == "yes"), line
        found.append((cells[0], cells[2] == "yes"))
    return found


def closed(code: int) -> WebSocketClosed:
    return WebSocketClosed.from_event(ConnectionClosed(code, "", code != 1006))


def errors(what: str) -> List[BaseException]:
    """The errors a row of the table stands for."""
    if what.startswith("close "):
        spec = what[6:]
        if "-" in spec:
            low, high = (int(x) for x in spec.split("-"))
            return [closed(code) for code in (low, (low + high) // 2, high)]
        return [closed(int(spec))]
    if what.startswith("HTTP "):
        codes = [int(c) for c in re.findall(r"\b\d{3}\b", what)]
        if "other statuses" in what:
            codes += [301, 405, 410, 418, 505]
        return [HandshakeRejected(status, Headers()) for status in codes]
    if what.startswith("timeout"):
        return [OpenTimeout("slow"), ConnectionRefusedError(), OSError(), HandshakeFailed("bad")]
    raise AssertionError(f"unknown row {what!r}")


ROWS = rows()


def test_the_table_covers_every_close_code_class() -> None:
    assert len(ROWS) >= 18
    names = [what for what, _ in ROWS]
    for code in (1000, 1001, 1006, 1011, 1012):
        assert f"close {code}" in names


@pytest.mark.parametrize(("what", "retry"), ROWS, ids=[w for w, _ in ROWS])
def test_each_row_is_what_the_client_does(what: str, retry: bool) -> None:
    for error in errors(what):
        assert default_should_retry(error) is retry, (what, error)
