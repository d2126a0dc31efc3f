"""The speed targets of the codec (issue 2), the connection (issue 3) and the asyncio layer
(issue 5), checked against a run's figures.

Each relative target compares figures measured side by side in the same run, so it holds or
fails on this machine regardless of how fast the machine is; the absolute ones (GB/s) are the
figures the issue gives for its reference machine, and the memory ones (bytes per connection)
hold on any machine.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TextIO

from . import _data
from ._runner import TURBOWS_C, Result

RAW_TCP = "raw TCP echo (reference)"
ON_MESSAGE = TURBOWS_C + ", on_message"
"""The end-to-end suite's callback-mode turbows server (kept in sync with e2e.py)."""
"""The end-to-end suite's physical reference (kept in sync with :mod:`turbows.bench.e2e`)."""

__all__ = ["TARGETS", "Target", "evaluate", "print_targets"]


@dataclass(frozen=True)
class Target:
    """turbows C must reach ``factor`` times ``against`` (a peer's throughput or, when
    ``against`` is None, ``factor`` in GB/s) in ``benchmark`` at every size in ``sizes``.

    ``at_most`` turns a target into a ceiling on a cost: the median (bytes per connection)
    must stay at or below ``factor``, or with ``against``, at or below ``factor`` times the
    median of ``against`` (a latency that must not grow by more than that). ``text`` says
    the target in the issue's words when they differ from the default description (a CPU
    cost per message is a rate per CPU second here, so "<= 0.8x picows's CPU" is ">= 1.25x"
    in the figures).
    """

    benchmark: str
    sizes: tuple[int, ...]
    against: str | None
    factor: float
    at_most: bool = False
    text: str = ""
    implementation: str = TURBOWS_C
    scale: float = 1e9
    label: str = ""

    def describe(self) -> str:
        """Say the target in words."""
        who = "" if self.implementation == TURBOWS_C else f" [{self.implementation}]"
        return self._describe() + who

    def _describe(self) -> str:
        if self.text:
            return f"{self.benchmark}: {self.text}"
        if self.at_most:
            if self.against is not None:
                return f"{self.benchmark}: <= {self.factor:g}x {self.against}"
            return f"{self.benchmark}: <= {self.factor:g} B/conn"
        if self.against is None:
            return f"{self.benchmark}: >= {self.factor:g} GB/s"
        return f"{self.benchmark}: >= {self.factor:g}x {self.against}"

    @property
    def unit(self) -> str:
        """The unit of the achieved figure."""
        if self.label:
            return self.label
        if self.at_most:
            return "x" if self.against is not None else " B/conn"
        if self.against is None:
            return " GB/s" if self.scale == 1e9 else " M/s"
        return "x"


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
    # Issue 3: the sans-I/O connection.
    Target("conn-receive", _FRAMES, "aiohttp (Cython)", 2.0),
    Target("conn-receive", _FRAMES, "picows", 2.0),
    Target("conn-receive", _FRAMES, "wsproto", 20.0),
    Target("conn-send-text", (125,), "picows", 1.5),
    Target("conn-footprint", (0,), None, 2048, at_most=True),
    # Issue 15: wsproto's API through turbows.compat.wsproto against wsproto itself.
    Target("wsproto-api-receive", _FRAMES, "wsproto", 10.0),
    Target("wsproto-api-send", _FRAMES, "wsproto", 10.0),
    # Issue 5: the asyncio server, end to end over 127.0.0.1.
    *(
        Target(
            f"e2e-rr/{loop}",
            (32, 1024, 64 * 1024),
            RAW_TCP,
            0.9,
            text=f"within 10% of {RAW_TCP} (>= 0.9x)",
        )
        for loop in ("asyncio", "uvloop")
    ),
    *(
        Target(
            f"e2e-50conn-cpu/{loop}",
            (32,),
            "picows",
            1.25,
            text="server CPU/msg <= 0.8x picows (>= 1.25x)",
        )
        for loop in ("asyncio", "uvloop")
    ),
    *(
        Target(f"e2e-50conn/{loop}", (32,), "picows", 1.25, text="throughput >= 1.25x picows")
        for loop in ("asyncio", "uvloop")
    ),
    # The same three in callback mode, the API style picows's own server uses.
    *(
        Target(
            f"e2e-rr/{loop}",
            (32, 1024, 64 * 1024),
            RAW_TCP,
            0.9,
            text=f"within 10% of {RAW_TCP} (>= 0.9x)",
            implementation=ON_MESSAGE,
        )
        for loop in ("asyncio", "uvloop")
    ),
    *(
        Target(
            f"e2e-50conn-cpu/{loop}",
            (32,),
            "picows",
            1.25,
            text="server CPU/msg <= 0.8x picows (>= 1.25x)",
            implementation=ON_MESSAGE,
        )
        for loop in ("asyncio", "uvloop")
    ),
    *(
        Target(
            f"e2e-50conn/{loop}",
            (32,),
            "picows",
            1.25,
            text="throughput >= 1.25x picows",
            implementation=ON_MESSAGE,
        )
        for loop in ("asyncio", "uvloop")
    ),
    *(
        Target(f"e2e-idle-rss/{loop}", (0,), None, 10240, at_most=True)
        for loop in ("asyncio", "uvloop")
    ),
    # Issue 15: uvicorn's --ws class, against uvicorn's fastest built-in one.
    Target(
        "e2e-uvicorn-cpu/uvloop",
        (32,),
        "uvicorn websockets-sansio",
        2.0,
        text="server CPU/msg <= 0.5x uvicorn's websockets-sansio (>= 2x)",
    ),
    # Issue 19: batched fan-out, 100 connections x 64 B.
    Target("fanout-100conn/asyncio", (64,), None, 2.0, text=">= 2 M deliveries/s", scale=1e6),
    Target("fanout-100conn/asyncio", (64,), "turbows C, broadcast()", 10.0),
    Target("pubsub-2w50c/asyncio", (64,), "in-process Fanout (reference)", 0.5),
    Target(
        "pubsub-ingest/asyncio",
        (64,),
        None,
        0.5,
        text="worker ingest <= 2 us CPU/msg (>= 0.5 M msg per CPU s)",
        scale=1e6,
    ),
    Target(
        "pubsub-latency/asyncio",
        (64,),
        None,
        50.0,
        at_most=True,
        text="p99 publish-to-receive <= 50 ms",
        label=" ms",
    ),
    Target(
        "pubsub-slow-consumer/asyncio",
        (1024,),
        TURBOWS_C,
        1.2,
        at_most=True,
        text="the reading clients' p99 <= 1.2x the run without it",
        implementation=TURBOWS_C + ", one client not reading",
    ),
)
"""The targets of issues 2, 3, 5, 15 and 19 ("Speed it must reach"). The codec's send target
is checked for binary and text frames alike."""


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
            c = keyed.get((target.benchmark, size, target.implementation))
            if c is None:
                continue
            if target.at_most and target.against is not None:
                other = keyed.get((target.benchmark, size, target.against))
                if other is None or not other.median:
                    continue
                ratio = c.median / other.median
                verdicts.append(Verdict(target, size, ratio, ratio <= target.factor))
                continue
            if target.at_most:
                verdicts.append(Verdict(target, size, c.median, c.median <= target.factor))
                continue
            if target.against is None:
                achieved = c.median / target.scale
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
    out.write("\ntargets (issues 2, 3, 5, 15 and 19), turbows C:\n")
    missed = 0
    width = max(len(v.target.describe()) for v in verdicts)
    for v in verdicts:
        mark = "met    " if v.met else "NOT MET"
        missed += not v.met
        size = _data.human_size(v.size) if v.size else "-"
        absolute = v.target.at_most and v.target.against is None
        figure = f"{v.achieved:.0f}" if absolute else f"{v.achieved:.2f}"
        out.write(
            f"  {mark} {v.target.describe():<{width}} at {size:>7}: {figure}{v.target.unit}\n"
        )
    out.write(f"  {len(verdicts) - missed} of {len(verdicts)} met\n")
    return missed
