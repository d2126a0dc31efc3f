"""Presenting results: the text table, the raw JSON figures and the bar chart."""

from __future__ import annotations

import json
import os
import platform
import sys
from collections.abc import Sequence
from typing import Any, TextIO

from . import _data
from ._runner import TURBOWS_C, Case, Result, Settings

__all__ = ["format_rate", "machine_info", "plot", "print_table", "ratio_to_c", "write_json"]


def format_rate(rate: float, unit: str) -> str:
    """Format a figure by its unit.

    ``bytes``: GB/s (10^9 bytes per second); ``frames``: M frames/s; ``messages``: k
    messages/s and the microseconds each one takes (a round trip for one connection);
    ``cpu-messages`` (messages per CPU second of a server): microseconds of CPU per message;
    ``B/conn`` (a cost, not a rate): bytes per connection; ``deliveries`` (messages x
    connections reached): M deliveries/s.
    """
    if unit == "messages":
        return f"{rate / 1e3:.3g} k msg/s {1e6 / rate:6.1f} µs"
    if unit == "cpu-messages":
        return f"{1e6 / rate:.3g} µs CPU/msg"
    if unit == "B/conn":
        return f"{rate:.0f} B/conn" if rate < 10240 else f"{rate / 1024:.1f} KiB/conn"
    if unit == "ms":
        return f"{rate:.3g} ms"
    if unit == "deliveries":
        return f"{rate / 1e6:.3g} M deliveries/s"
    if unit == "bytes":
        value = rate / 1e9
        return f"{value:.3g} GB/s" if value < 100 else f"{value:.0f} GB/s"
    value = rate / 1e6
    return f"{value:.3g} Mfr/s" if value < 100 else f"{value:.0f} Mfr/s"


def _by_key(results: Sequence[Result]) -> dict[tuple[str, int, str], Result]:
    return {(r.case.benchmark, r.case.size, r.case.implementation): r for r in results}


def ratio_to_c(results: Sequence[Result], result: Result) -> float | None:
    """turbows C's median throughput divided by ``result``'s, or None without both."""
    c = _by_key(results).get((result.case.benchmark, result.case.size, TURBOWS_C))
    if c is None or not c.ok or not result.ok:
        return None
    return _ratio(c, result)


def _ratio(c: Result, result: Result) -> float:
    """How many times better turbows C is than ``result``: above 1, C is faster (or smaller)."""
    if result.case.lower_is_better:
        return result.median / c.median
    return c.median / result.median


def print_table(results: Sequence[Result], out: TextIO) -> None:
    """Print one row per measured case, grouped by benchmark and size, then the notes.

    The last column is turbows C's throughput divided by the row's: above 1 turbows C is
    faster; on the reference rows it shows how far turbows C is from a plain memory copy.
    """
    keyed = _by_key(results)
    header = ("benchmark", "size", "implementation", "throughput", "IQR", "C / this")
    rows: list[tuple[str, ...]] = []
    previous: tuple[str, int] | None = None
    for result in results:
        case = result.case
        if case.skipped:
            continue
        group = (case.benchmark, case.size)
        if previous is not None and group != previous:
            rows.append(("",) * len(header))
        first = group != previous
        previous = group
        if result.error:
            rate, spread, ratio = "FAILED", "", ""
        else:
            rate = format_rate(result.median, case.unit)
            spread = f"±{result.spread * 50:.1f}%"
            c = keyed.get((case.benchmark, case.size, TURBOWS_C))
            if c is not None and c.ok:
                ratio = f"{_ratio(c, result):.2f}x"
            else:
                ratio = "-"
        rows.append(
            (
                case.benchmark if first else "",
                (_data.human_size(case.size) if case.size else "-") if first else "",
                case.implementation,
                rate,
                spread,
                ratio,
            )
        )
    widths = [
        max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)
    ]
    right = {3, 4, 5}

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            cell.rjust(widths[i]) if i in right else cell.ljust(widths[i])
            for i, cell in enumerate(cells)
        ).rstrip()

    out.write(line(header) + "\n")
    out.write(line(["-" * w for w in widths]) + "\n")
    out.writelines(line(row) + "\n" for row in rows)
    out.write(
        "\nthroughput: median of the samples; IQR: ± half the interquartile range, relative to"
        "\nthe median; C / this: turbows C's median divided by the row's (above 1: C is faster;"
        "\nfor costs such as CPU per message or bytes per connection: C is cheaper).\n"
    )
    notes: dict[str, str] = {}
    for result in results:
        case = result.case
        if result.error:
            notes[f"{case.implementation} ({case.benchmark} {case.size} B)"] = (
                f"failed: {result.error}"
            )
        elif case.note and (case.skipped or case.kind != "reference"):
            key = f"{case.implementation} ({case.benchmark})"
            notes.setdefault(key, ("skipped: " if case.skipped else "") + case.note)
    if notes:
        out.write("\nnotes:\n")
        for key, note in notes.items():
            out.write(f"  {key}: {note}\n")


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info() -> dict[str, Any]:
    """Describe the machine, the interpreter and the versions under test."""
    from . import _echo_client, _peers
    from .codec import load_codecs

    kernels = "-"
    for name, _kind, module, _note in load_codecs():
        if name == TURBOWS_C and module is not None:
            kernels = module.kernel_isa()
    try:
        import turbows

        version = turbows.__version__
    except ImportError:  # pragma: no cover - the package imports itself
        version = "?"
    return {
        "cpu": _cpu_model(),
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "turbows": version,
        "turbows_kernels": kernels,
        "peers": _peers.peer_versions(),
        "e2e_client": _echo_client.CLIENT,
    }


def describe_machine(info: dict[str, Any], settings: Settings, out: TextIO) -> None:
    """Print the header that says where and how the figures were measured."""
    peers = ", ".join(f"{k} {v}" if v else f"{k} (absent)" for k, v in info["peers"].items())
    out.write(
        f"turbows {info['turbows']} (C kernels: {info['turbows_kernels']}) on {info['python']}\n"
        f"{info['cpu']}, {info['cpus']} CPUs, {info['platform']}\n"
        f"peers: {peers}\n"
        f"end-to-end client: {info['e2e_client']}\n"
        f"method: {settings.repeats} samples of ~{settings.min_time * 1000:.0f} ms per case"
        f" after a {settings.warmup * 1000:.0f} ms warm-up, taken round-robin across the"
        f" implementations of each row group; seed {_data.SEED:#x}\n\n"
    )


def write_json(
    path: str,
    results: Sequence[Result],
    info: dict[str, Any],
    settings: Settings,
    extra: dict[str, Any],
) -> None:
    """Write the raw figures: every sample of every case, plus machine and settings."""
    rows: list[dict[str, Any]] = []
    for result in results:
        case: Case = result.case
        row: dict[str, Any] = {
            "benchmark": case.benchmark,
            "size": case.size,
            "implementation": case.implementation,
            "kind": case.kind,
            "unit": case.unit if case.lower_is_better else f"{case.unit}/s",
            "work_per_op": case.work,
            "note": case.note,
        }
        if case.skipped:
            row["skipped"] = True
        elif result.error:
            row["error"] = result.error
        else:
            q1, q3 = result.quartiles
            ratio = ratio_to_c(results, result)
            row.update(
                median=result.median,
                min=min(result.rates),
                max=max(result.rates),
                q1=q1,
                q3=q3,
                ops_per_sample=result.iterations,
                samples=result.rates,
                turbows_c_ratio=ratio,
            )
        rows.append(row)
    document = {
        "machine": info,
        "settings": {
            "min_time": settings.min_time,
            "repeats": settings.repeats,
            "warmup": settings.warmup,
            "seed": _data.SEED,
            **extra,
        },
        "command": " ".join(
            [os.path.basename(sys.executable), "-m", "turbows.bench", *sys.argv[1:]]
        ),
        "results": rows,
    }
    with open(path, "w", encoding="utf-8") as f:
        json.dump(document, f, indent=1)
        f.write("\n")


def read_json(path: str) -> tuple[list[Result], dict[str, Any], str]:
    """Read back what :func:`write_json` wrote: the results, the machine and the command.

    The cases come back without their loops (nothing can be run again), but with everything
    the table, the targets and the chart need.
    """
    with open(path, encoding="utf-8") as f:
        document = json.load(f)
    results: list[Result] = []
    for row in document["results"]:
        unit = row["unit"]
        lower_is_better = not unit.endswith("/s")

        def placeholder() -> float:  # marks a cost figure; never called
            raise RuntimeError("a loaded result cannot be measured again")

        case = Case(
            benchmark=row["benchmark"],
            size=row["size"],
            implementation=row["implementation"],
            kind=row["kind"],
            unit=unit if lower_is_better else unit[: -len("/s")],
            work=row["work_per_op"],
            note=row.get("note", ""),
            measure=placeholder if lower_is_better else None,
            prepare=None if lower_is_better or row.get("skipped") else _never_run,
        )
        results.append(
            Result(
                case,
                rates=list(row.get("samples", [])),
                iterations=row.get("ops_per_sample", 0),
                error=row.get("error", ""),
            )
        )
    return results, document["machine"], document.get("command", "")


def _never_run() -> Any:
    raise RuntimeError("a loaded result cannot be measured again")


_AXES = {
    "bytes": (1e9, "GB/s"),
    "frames": (1e6, "M frames/s"),
    "messages": (1e3, "k messages/s"),
    "cpu-messages": (1e3, "k messages per server CPU second"),
    "B/conn": (1024, "KiB per connection (lower is better)"),
}
"""How each unit is drawn: divisor and axis label."""

_PEER_COLOURS = {
    "websockets": ("#2ca02c", "#98df8a"),
    "wsproto": ("#9467bd", "#c5b0d5"),
    "aiohttp": ("#d62728", "#ff9896"),
    "picows": ("#ff7f0e", "#ffbb78"),
}


def _colour(name: str, kind: str) -> str:
    """A stable colour per implementation: blues for turbows, one hue per peer, greys for
    the references; a variant (pure Python, text as bytes) is the lighter shade."""
    if kind == "turbows":
        return "#08306b" if name == TURBOWS_C else "#4292c6"
    if kind == "pure":
        return "#9ecae1"
    if kind == "reference":
        return "#7f7f7f" if name.startswith("memcpy") else "#404040"
    base = name.split()[0]
    dark, light = _PEER_COLOURS.get(base, ("#8c564b", "#c49c94"))
    return light if "pure" in name else dark


def plot(path: str, results: Sequence[Result], info: dict[str, Any]) -> None:
    """Draw one bar chart per benchmark (log scale), implementations side by side per size.

    Raises:
        ImportError: matplotlib is not installed.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    benchmarks: list[str] = []
    for result in results:
        if result.ok and result.case.benchmark not in benchmarks:
            benchmarks.append(result.case.benchmark)
    if not benchmarks:
        raise ValueError("nothing was measured: no chart to draw")
    impls: list[str] = []
    for result in results:
        if result.ok and result.case.implementation not in impls:
            impls.append(result.case.implementation)
    kinds = {r.case.implementation: r.case.kind for r in results}
    colour_of = {name: _colour(name, kinds[name]) for name in impls}

    ncols = 2 if len(benchmarks) > 1 else 1
    nrows = -(-len(benchmarks) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(7.5 * ncols, 3.6 * nrows), squeeze=False)
    for ax, benchmark in zip(axes.flat, benchmarks):
        rows = [r for r in results if r.ok and r.case.benchmark == benchmark]
        sizes = sorted({r.case.size for r in rows})
        # The benchmark's own order (turbows first, then the peers), the references last.
        names = list(dict.fromkeys(r.case.implementation for r in rows))
        names.sort(key=lambda n: kinds[n] == "reference")
        width = 0.8 / max(1, len(names))
        unit = rows[0].case.unit
        scale, ylabel = _AXES.get(unit, (1e6, unit))
        for i, name in enumerate(names):
            xs, ys, errs_lo, errs_hi = [], [], [], []
            for j, size in enumerate(sizes):
                for r in rows:
                    if r.case.implementation == name and r.case.size == size:
                        q1, q3 = r.quartiles
                        xs.append(j - 0.4 + width * (i + 0.5))
                        ys.append(r.median / scale)
                        errs_lo.append(max(0.0, (r.median - q1) / scale))
                        errs_hi.append(max(0.0, (q3 - r.median) / scale))
            ax.bar(
                xs,
                ys,
                width,
                label=name,
                color=colour_of[name],
                hatch="//" if kinds[name] == "reference" else None,
                edgecolor="white",
                linewidth=0.3,
                yerr=[errs_lo, errs_hi],
                capsize=1.5,
            )
        ax.set_yscale("log")
        ax.set_xticks(range(len(sizes)))
        ax.set_xticklabels([_data.human_size(s) if s else "-" for s in sizes])
        ax.set_title(benchmark)
        ax.set_ylabel(ylabel)
        ax.grid(axis="y", which="both", alpha=0.3)
        ax.legend(fontsize=6.5, ncol=2, loc="best")
    for ax in list(axes.flat)[len(benchmarks) :]:
        ax.set_visible(False)
    fig.suptitle(f"turbows {info['turbows']} vs peers - {info['cpu']}, {info['python']}", fontsize=10)
    # Leave the title a band of its own above the first row of panels.
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.35 / (3.6 * nrows)))
    fig.savefig(path, dpi=110)
    plt.close(fig)
