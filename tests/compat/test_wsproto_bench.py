"""The compat benchmark's cases build, check their own output and run (python -m turbows.bench
--only wsproto-api), on turbows's layer and on the genuine wsproto side by side."""

from __future__ import annotations

import pytest

from turbows.bench import compat


def test_every_case_prepares_checks_and_runs():
    pytest.importorskip("wsproto")
    cases = compat.cases()
    assert {(c.benchmark, c.size) for c in cases} == {
        (b, s) for b in compat.BENCHMARKS for s in compat.SIZES
    }
    implementations = {c.implementation for c in cases}
    assert "wsproto" in implementations and len(implementations) == 2
    for case in cases:
        assert case.prepare is not None, case.note
        run = case.prepare()  # raises BenchCheckError on a wrong message or wrong bytes
        run(1)
