"""Command line of ``python -m turbows.bench``."""

from __future__ import annotations

import argparse
import fnmatch
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Callable

from . import _report, codec, compat, connection, deflate, e2e, fanout, pubsub, targets
from ._runner import Case, Result, Settings, group_cases, run_groups

__all__ = ["SUITES", "SuiteOptions", "main"]


@dataclass(frozen=True)
class SuiteOptions:
    """What every suite is told when it builds its cases.

    Attributes:
        quick: build lighter inputs (the ``--quick`` run must finish within a minute).
    """

    quick: bool = False


def _codec_suite(options: SuiteOptions) -> list[Case]:
    stream = (256 if options.quick else 1024) * 1024
    return codec.cases(codec.CodecOptions(stream_bytes=stream))


def _connection_suite(options: SuiteOptions) -> list[Case]:
    stream = (256 if options.quick else 1024) * 1024
    return connection.cases(connection.ConnectionOptions(stream_bytes=stream))


def _e2e_suite(options: SuiteOptions) -> list[Case]:
    if options.quick:
        return e2e.cases(
            e2e.E2EOptions(idle_connections=500, min_time=0.02, idle_loops=("asyncio",))
        )
    return e2e.cases(e2e.E2EOptions())


def _deflate_suite(options: SuiteOptions) -> list[Case]:
    return deflate.cases(quick=options.quick)


def _compat_suite(options: SuiteOptions) -> list[Case]:
    return compat.cases()


def _fanout_suite(options: SuiteOptions) -> list[Case]:
    return fanout.cases()


def _pubsub_suite(options: SuiteOptions) -> list[Case]:
    return pubsub.cases(quick=options.quick)


SUITES: dict[str, Callable[[SuiteOptions], list[Case]]] = {
    "codec": _codec_suite,
    "connection": _connection_suite,
    "compat": _compat_suite,
    "e2e": _e2e_suite,
    "deflate": _deflate_suite,
    "fanout": _fanout_suite,
    "pubsub": _pubsub_suite,
}
"""Suites by name, in the order they run."""

QUICK = Settings(min_time=0.008, repeats=5, warmup=0.004)
FULL = Settings(min_time=0.05, repeats=9, warmup=0.05)


def _matches(patterns: Sequence[str], *names: str) -> bool:
    """True if any pattern matches any name: a glob, a name, or a name's prefix."""
    for pattern in patterns:
        for name in names:
            if fnmatch.fnmatchcase(name, pattern) or name.startswith(pattern):
                return True
    return False


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    benchmarks = ", ".join(
        (
            *codec.BENCHMARKS,
            *connection.BENCHMARKS,
            *compat.BENCHMARKS,
            *e2e.BENCHMARKS,
            *deflate.BENCHMARKS,
            *fanout.BENCHMARKS,
            *pubsub.BENCHMARKS,
        )
    )
    parser = argparse.ArgumentParser(
        prog="python -m turbows.bench",
        description=(
            "Benchmark turbows (Cython and pure-Python codecs) against the installed peers"
            " (websockets, wsproto, aiohttp, picows) and the physical references (a plain"
            " memory copy, a raw TCP echo), side by side in one run: suites codec, connection"
            " and e2e (--only SUITE selects one)."
        ),
        epilog=f"benchmarks: {benchmarks}",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="short samples and inputs: the whole run takes under a minute",
    )
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="NAME",
        help="run only benchmarks matching NAME (a name, a prefix such as"
        " 'utf8', or a glob; repeat or separate with commas)",
    )
    parser.add_argument(
        "--impl",
        action="append",
        default=[],
        metavar="NAME",
        help="run only implementations matching NAME (turbows C is always kept"
        " so that ratios can be computed)",
    )
    parser.add_argument("--json", metavar="FILE", help="write the raw figures to FILE")
    parser.add_argument(
        "--plot", metavar="FILE.png", help="draw a bar chart to FILE.png (needs matplotlib)"
    )
    parser.add_argument("--repeats", type=int, help="samples per case")
    parser.add_argument(
        "--min-time", type=float, metavar="SECONDS", help="target duration of one sample"
    )
    parser.add_argument("--list", action="store_true", help="list the cases and exit")
    parser.add_argument(
        "--load",
        metavar="FILE",
        help="measure nothing: print the table and targets of a --json FILE (and --plot it)",
    )
    parser.add_argument("--no-progress", action="store_true", help="do not report progress")
    return parser.parse_args(argv)


def _select(args: argparse.Namespace, options: SuiteOptions) -> list[Case]:
    only = [p.strip() for item in args.only for p in item.split(",") if p.strip()]
    impls = [p.strip() for item in args.impl for p in item.split(",") if p.strip()]
    selected: list[Case] = []
    for suite_name, suite in SUITES.items():
        for case in suite(options):
            if only and not _matches(only, case.benchmark, f"{suite_name}.{case.benchmark}"):
                continue
            if (
                impls
                and case.implementation != "turbows C"
                and not _matches(impls, case.implementation)
            ):
                continue
            selected.append(case)
    return selected


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmarks and print the table.

    Args:
        argv: the command-line arguments (``sys.argv[1:]`` when None).

    Returns:
        The exit status: 0, or 2 when nothing matched the filters or an output failed.
    """
    args = _parse_args(argv)
    if args.load:
        return _replay(args)
    options = SuiteOptions(quick=args.quick)
    base = QUICK if args.quick else FULL
    settings = Settings(
        min_time=args.min_time if args.min_time is not None else base.min_time,
        repeats=args.repeats if args.repeats is not None else base.repeats,
        warmup=base.warmup,
    )
    cases = _select(args, options)
    if not cases:
        print("no benchmark matches the filters", file=sys.stderr)
        return 2
    if args.list:
        for case in cases:
            state = f"  (skipped: {case.note})" if case.skipped else ""
            print(f"{case.benchmark:<13} {case.size:>9}  {case.implementation}{state}")
        return 0

    info = _report.machine_info()
    out = sys.stdout
    _report.describe_machine(info, settings, out)
    out.flush()
    started = time.perf_counter()
    progress = None if args.no_progress else sys.stderr
    try:
        results = run_groups(group_cases(cases), settings, progress)
    finally:
        e2e.stop_servers()
        fanout.stop_server()
        pubsub.stop()
    elapsed = time.perf_counter() - started
    _report.print_table(results, out)
    targets.print_targets(results, out)
    out.write(
        f"\nmeasured in {elapsed:.1f} s: python -m turbows.bench"
        f"{' ' + ' '.join(argv if argv is not None else sys.argv[1:])}\n"
    )

    return _write_outputs(args, results, info, settings, elapsed)


def _replay(args: argparse.Namespace) -> int:
    """Print the table of a saved run, and draw it with --plot."""
    results, info, command = _report.read_json(args.load)
    out = sys.stdout
    out.write(f"figures of {args.load}, measured with: {command}\n")
    out.write(
        f"turbows {info.get('turbows', '?')} on {info.get('python', '?')}, {info.get('cpu', '?')}\n"
        f"end-to-end client: {info.get('e2e_client', 'Python (select.epoll, socket)')}\n"
    )
    _report.print_table(results, out)
    targets.print_targets(results, out)
    return _write_outputs(args, results, info, None, 0.0)


def _write_outputs(
    args: argparse.Namespace,
    results: list[Result],
    info: dict[str, Any],
    settings: Settings | None,
    elapsed: float,
) -> int:
    status = 0
    if args.json and settings is not None:
        _report.write_json(
            args.json, results, info, settings, {"quick": args.quick, "elapsed_s": elapsed}
        )
        print(f"raw figures written to {args.json}", file=sys.stderr)
    if args.plot:
        try:
            _report.plot(args.plot, results, info)
        except ImportError:
            print("--plot needs matplotlib: pip install matplotlib", file=sys.stderr)
            status = 2
        else:
            print(f"chart written to {args.plot}", file=sys.stderr)
    return status
