"""The deflate benchmark suite builds, checks its outputs and runs (one iteration each)."""

from __future__ import annotations

import pytest

from turbows.bench import SUITES, SuiteOptions
from turbows.bench import deflate as bench


def test_the_deflate_suite_is_registered():
    cases = SUITES["deflate"](SuiteOptions(quick=True))
    assert {case.benchmark for case in cases} == set(bench.BENCHMARKS)
    assert {case.size for case in cases} == set(bench.SIZES)


CASES = bench.cases()


@pytest.mark.parametrize(
    "case", CASES, ids=[f"{c.benchmark}-{c.size}-{c.implementation}" for c in CASES]
)
def test_every_deflate_case_checks_its_output_and_runs(case):
    if case.skipped:
        pytest.skip(case.note)
    loop = case.prepare()  # raises BenchCheckError on a wrong or uncompressed output
    loop(1)


def test_json_text_is_ascii_of_the_asked_size():
    for size in (1, 1024, 65536):
        text = bench.json_text(size)
        assert len(text) == size and text.isascii()
