"""Measurement: cases, calibration, warm-up, interleaved repeats and statistics.

A :class:`Case` is one implementation of one benchmark at one size. Its ``prepare`` callable
builds the inputs, checks once that the implementation produces the right output for them
(a benchmark of wrong results is worthless) and returns a *loop*: a function that performs
the operation ``n`` times. Every loop of a benchmark has the same shape, so the Python-level
loop overhead is the same for every implementation.

The cases of one benchmark and size form a group. The runner calibrates each case so that
one sample lasts about ``min_time`` seconds, warms it up, then takes the samples round-robin
across the group (case A, B, C, A, B, C, ...), so that slow drifts of the machine (frequency,
a neighbour's load) spread evenly over the implementations being compared.

The cyclic garbage collector stays enabled while timing: objects created per message make it
run during parsing, and that cost is part of what a user pays. It is collected before each
group so that no group pays for garbage left by the previous one.
"""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import repeat
from typing import Callable, TextIO

from ._data import human_size

__all__ = [
    "TURBOWS_C",
    "TURBOWS_PURE",
    "Case",
    "Loop",
    "Result",
    "Settings",
    "call_loop",
    "group_cases",
    "run_groups",
]

Loop = Callable[[int], None]
"""Performs the benchmarked operation ``n`` times."""

TURBOWS_C = "turbows C"
"""Implementation name of the Cython codec; the ratios are computed against it."""

TURBOWS_PURE = "turbows pure"
"""Implementation name of the pure-Python twin."""


@dataclass(frozen=True)
class Case:
    """One implementation of one benchmark at one size.

    Attributes:
        benchmark: benchmark name, e.g. ``"mask"`` or ``"receive"``.
        size: payload size in bytes.
        implementation: who is measured, e.g. ``"turbows C"`` or ``"aiohttp 3.14.5"``.
        kind: ``"turbows"`` (the C codec and its variants), ``"pure"`` (the twin), ``"peer"``
            or ``"reference"`` (a physical limit such as a memory copy).
        unit: ``"bytes"`` or ``"frames"``: what ``work`` counts.
        work: units processed by one operation.
        prepare: builds and checks the inputs, returns the loop; None for a skipped case.
        note: why the case is skipped, or a remark printed under the table.
        clock: the time source a sample is measured with (``time.perf_counter`` when None);
            the end-to-end suite passes a server process's CPU clock, so that its rate is
            messages per CPU second of the server.
        measure: for figures that are not rates (memory per connection): called once per
            sample instead of timing a loop, it returns the figure; lower is better.
        max_samples: at most this many samples of a ``measure`` case (0: no limit); for
            figures that are expensive to take (thousands of connections).
        min_time: the shortest sample this case accepts, in seconds, whatever the settings
            say (end-to-end round trips need long samples to average wake-up latencies).
    """

    benchmark: str
    size: int
    implementation: str
    kind: str
    unit: str
    work: int
    prepare: Callable[[], Loop] | None = None
    note: str = ""
    clock: Callable[[], float] | None = None
    measure: Callable[[], float] | None = None
    max_samples: int = 0
    min_time: float = 0.0

    @property
    def skipped(self) -> bool:
        """True when there is nothing to run (peer not installed, extension not built)."""
        return self.prepare is None and self.measure is None

    @property
    def lower_is_better(self) -> bool:
        """True for figures that are costs (bytes per connection), not rates."""
        return self.measure is not None


@dataclass
class Result:
    """The measured throughput of one case.

    Rates are in units (bytes or frames) per second, one per sample; for a ``measure`` case
    they are the figures it returned (bytes per connection), one per sample.

    Attributes:
        case: what was measured.
        rates: the throughput of every sample, in the order taken.
        iterations: operations per sample.
        error: why the case failed (its output was wrong or it raised), else empty.
    """

    case: Case
    rates: list[float] = field(default_factory=list)
    iterations: int = 0
    error: str = ""

    @property
    def ok(self) -> bool:
        """True if the case ran and produced samples."""
        return bool(self.rates) and not self.error

    @property
    def median(self) -> float:
        """Median throughput (units per second)."""
        return statistics.median(self.rates)

    @property
    def quartiles(self) -> tuple[float, float]:
        """First and third quartile of the throughput."""
        if len(self.rates) < 2:
            return self.rates[0], self.rates[0]
        q1, _, q3 = statistics.quantiles(self.rates, n=4, method="inclusive")
        return q1, q3

    @property
    def spread(self) -> float:
        """Interquartile range relative to the median (0.02 means the IQR is 2% of it)."""
        q1, q3 = self.quartiles
        return (q3 - q1) / self.median if self.median else 0.0


@dataclass(frozen=True)
class Settings:
    """How long and how often to measure.

    Attributes:
        min_time: target duration of one sample, in seconds.
        repeats: samples per case.
        warmup: warm-up duration per case, in seconds (after calibration).
    """

    min_time: float = 0.05
    repeats: int = 9
    warmup: float = 0.05


def _time_loop(loop: Loop, n: int, clock: Callable[[], float] = time.perf_counter) -> float:
    t0 = clock()
    loop(n)
    return clock() - t0


def _calibrate(loop: Loop, min_time: float, clock: Callable[[], float]) -> int:
    """Find how many operations take about ``min_time`` (at least one)."""
    n = 1
    while True:
        elapsed = _time_loop(loop, n, clock)
        if elapsed >= min_time:
            return n
        if elapsed <= 0:
            n *= 10
            continue
        # Aim a little past the target; grow by at most 100x per step to stay safe.
        n = max(n + 1, min(n * 100, int(n * min_time * 1.2 / elapsed)))


def group_cases(cases: Sequence[Case]) -> list[list[Case]]:
    """Group cases by (benchmark, size), keeping the order in which they were given."""
    groups: dict[tuple[str, int], list[Case]] = {}
    for case in cases:
        groups.setdefault((case.benchmark, case.size), []).append(case)
    return list(groups.values())


def _run_group(group: Sequence[Case], settings: Settings) -> list[Result]:
    results = [Result(case) for case in group]
    loops: list[Loop | None] = []
    for result in results:
        loop: Loop | None = None
        if result.case.prepare is not None:
            clock = result.case.clock or time.perf_counter
            try:
                loop = result.case.prepare()
                min_time = max(settings.min_time, result.case.min_time)
                result.iterations = _calibrate(loop, min_time, clock)
                deadline = time.perf_counter() + settings.warmup
                while time.perf_counter() < deadline:
                    loop(result.iterations)
            except Exception as exc:  # noqa: BLE001 - a broken peer must not stop the run
                result.error = f"{type(exc).__name__}: {exc}"
                loop = None
        loops.append(loop)
    gc.collect()
    try:
        for index in range(settings.repeats):
            for result, loop in zip(results, loops):
                case = result.case
                if case.measure is not None:
                    if result.error or (case.max_samples and index >= case.max_samples):
                        continue
                    try:
                        result.rates.append(case.measure())
                    except Exception as exc:  # noqa: BLE001 - as for a broken loop
                        result.error = f"{type(exc).__name__}: {exc}"
                    continue
                if loop is None:
                    continue
                elapsed = _time_loop(loop, result.iterations, case.clock or time.perf_counter)
                result.rates.append(case.work * result.iterations / elapsed)
    finally:
        # A loop that holds resources (server processes, sockets) says how to free them.
        for loop in loops:
            close = getattr(loop, "close", None)
            if close is not None:
                close()
    return results


def run_groups(
    groups: Sequence[Sequence[Case]],
    settings: Settings,
    progress: TextIO | None = None,
) -> list[Result]:
    """Measure every group and return one result per case.

    Args:
        groups: lists of cases, each list measured together (see the module docstring).
        settings: duration and repeats.
        progress: where to report progress (stderr for the command line), or None.
    """
    out: list[Result] = []
    start = time.perf_counter()
    for index, group in enumerate(groups, 1):
        head = group[0]
        if progress is not None:
            runnable = sum(not case.skipped for case in group)
            progress.write(
                f"[{index:>3}/{len(groups)}] {head.benchmark} {human_size(head.size)}:"
                f" {runnable} implementations ({time.perf_counter() - start:5.1f} s)\n"
            )
            progress.flush()
        gc.collect()
        out.extend(_run_group(group, settings))
    if progress is not None:
        progress.write(f"done in {time.perf_counter() - start:.1f} s\n")
        progress.flush()
    return out


def call_loop(func: Callable[..., object], *args: object) -> Loop:
    """Return a loop that calls ``func(*args)`` ``n`` times.

    The loops for one, two and three arguments are written out so that no implementation pays
    for argument unpacking: every implementation of a benchmark gets the same loop shape.
    """
    if len(args) == 1:
        (a,) = args

        def loop1(n: int) -> None:
            for _ in repeat(None, n):
                func(a)

        return loop1
    if len(args) == 2:
        a, b = args

        def loop2(n: int) -> None:
            for _ in repeat(None, n):
                func(a, b)

        return loop2
    if len(args) == 3:
        a, b, c = args

        def loop3(n: int) -> None:
            for _ in repeat(None, n):
                func(a, b, c)

        return loop3
    raise ValueError("call_loop supports one to three arguments")
