"""The speed targets of the codec (issue 2), checked against a run's figures.

Each target compares figures measured side by side in the same run, so it holds or fails on
this machine regardless of how fast the machine is; the absolute ones (GB/s) are the figures
the issue gives for its reference machine.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TextIO

from . import _data
from ._runner import FASTWS_C, Result

__all__ = ["TARGETS", "Target", "evaluate", "print_targets"]


@dataclass(frozen=True)
class Target:
    """fastws C must reach ``factor`` times ``against`` (a peer's throughput or, when
    ``against`` is None, ``factor`` in GB/s) in ``benchmark`` at every size in ``sizes``."""

    benchmark: str
    sizes: tuple[int, ...]
    against: str | None
    factor: float

    def describe(self) -> str:
        """Say the target in words."""
        if self.against is None:
            return f"{self.benchmark}: >= {self.factor:g} GB/s"
        return f"{self.benchmark}: >= {self.factor:g}x {self.against}"


_ALL_MASK = (16, 125, 1024, 16 * 1024, 1 << 20, 16 << 20)
_FRAMES = (16, 125, 1024)

TARGETS: tuple[Target, ...] = (
    Target("mask", _ALL_MASK, "websockets (C)", 1.0),
    Target("mask-inplace", _ALL_MASK, "aiohttp (Cython)", 1.0),
    Target("utf8-mixed", (64 * 1024,), None, 10.0),
    Target("utf8-ascii", (64 * 1024,), None, 40.0),
    Target("utf8-mixed", (64 * 1024,), "CPython bytes.decode", 20.0),
    Target("receive", _FRAMES, "aiohttp (Cython)", 2.0),
    Target("receive", _FRAMES, "picows", 2.0),
    Target("send-binary", _FRAMES, "picows", 1.5),
    Target("send-text", _FRAMES, "picows", 1.5),
)
"""The targets of issue 2 ("Speed it must reach"). The send target is checked for binary and
text frames alike."""


@dataclass(frozen=True)
class Verdict:
    """The outcome of one target at one size: the achieved figure and whether it suffices."""

    target: Target
    size: int
    achieved: float
    met: bool


def evaluate(results: Sequence[Result]) -> list[Verdict]:
    """Check every target whose figures were measured in ``results``."""
    keyed: dict[tuple[str, int, str], Result] = {
        (r.case.benchmark, r.case.size, r.case.implementation): r for r in results if r.ok
    }
    verdicts: list[Verdict] = []
    for target in TARGETS:
        for size in target.sizes:
            c = keyed.get((target.benchmark, size, FASTWS_C))
            if c is None:
                continue
            if target.against is None:
                achieved = c.median / 1e9
            else:
                other = keyed.get((target.benchmark, size, target.against))
                if other is None:
                    continue
                achieved = c.median / other.median
            verdicts.append(Verdict(target, size, achieved, achieved >= target.factor))
    return verdicts


def print_targets(results: Sequence[Result], out: TextIO) -> int:
    """Print each target with the figure reached; return how many are not met."""
    verdicts = evaluate(results)
    if not verdicts:
        return 0
    out.write("\ntargets (issue 2), fastws C:\n")
    missed = 0
    for v in verdicts:
        unit = " GB/s" if v.target.against is None else "x"
        mark = "met    " if v.met else "NOT MET"
        missed += not v.met
        out.write(
            f"  {mark} {v.target.describe():<42} at {_data.human_size(v.size):>7}:"
            f" {v.achieved:.2f}{unit}\n"
        )
    out.write(f"  {len(verdicts) - missed} of {len(verdicts)} met\n")
    return missed
