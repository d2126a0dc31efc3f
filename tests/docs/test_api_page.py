"""The constants whose values docs/api.rst states are the values in the code."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

API = Path(__file__).resolve().parents[2] / "docs" / "api.rst"


def test_stated_values_match_the_code() -> None:
    module = None
    name = None
    checked = 0
    for line in API.read_text(encoding="utf-8").splitlines():
        found = re.match(r"\.\. (?:module|automodule|currentmodule):: (\S+)", line)
        if found:
            module = importlib.import_module(found.group(1))
        found = re.match(r"\.\. py:data:: (\w+)", line)
        if found:
            name = found.group(1)
        found = re.match(r"\s+:value: (.+)", line)
        if found:
            assert module is not None and name is not None
            assert repr(getattr(module, name)) == found.group(1), (module.__name__, name)
            checked += 1
    assert checked >= 3
