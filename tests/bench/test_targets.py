"""The targets' verdicts: a ceiling relative to another row (a latency that may grow by at most
1.2x) is met at or below the factor and missed above it."""

from __future__ import annotations

from typing import List

import pytest

from turbows.bench import pubsub
from turbows.bench._runner import TURBOWS_C, Case, Result
from turbows.bench.targets import evaluate, print_targets


def _results(without: List[float], with_slow: List[float]) -> List[Result]:
    def case(name: str) -> Case:
        return Case("pubsub-slow-consumer/asyncio", 1024, name, "turbows", "ms", 1)

    return [Result(case(TURBOWS_C), without), Result(case(pubsub.SLOW), with_slow)]


@pytest.mark.parametrize(
    ("without", "with_slow", "ratio", "met"),
    [
        ([10.0, 11.0, 12.0], [11.0, 12.0, 13.0], 12.0 / 11.0, True),
        ([10.0, 10.0, 10.0], [12.0, 12.0, 12.0], 1.2, True),
        ([10.0, 11.0, 12.0], [13.0, 14.0, 15.0], 14.0 / 11.0, False),
    ],
)
def test_the_slow_consumer_ratio_is_a_ceiling(
    without: List[float], with_slow: List[float], ratio: float, met: bool
) -> None:
    (verdict,) = evaluate(_results(without, with_slow))
    assert verdict.achieved == pytest.approx(ratio)
    assert verdict.met is met


def test_the_ratio_is_printed_as_a_ratio() -> None:
    import io

    out = io.StringIO()
    missed = print_targets(_results([10.0], [14.0]), out)
    assert missed == 1
    assert "NOT MET" in out.getvalue() and ": 1.40x" in out.getvalue()
