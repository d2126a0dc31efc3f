"""Run the Autobahn|Testsuite against turbows and check its verdicts.

    python tests/autobahn/suite.py server    # wstest -m fuzzingclient against our echo server
    python tests/autobahn/suite.py client    # our echo client against wstest -m fuzzingserver
    python tests/autobahn/suite.py client --sync   # the same with turbows.sync's client

``wstest`` is a Python 2.7 program (package ``autobahntestsuite``); this script finds it
through ``--wstest`` or ``$TURBOWS_WSTEST``, a command line such as
``"python2.7 /path/to/bin/wstest"``. ``tests/autobahn/install.sh`` installs it.

The suite's reports (HTML and JSON) go to ``--outdir``. Exit status 0 when every case
the suite ran is judged OK, NON-STRICT or INFORMATIONAL (with a clean close), 1 otherwise;
the failing cases are listed.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

HERE = Path(__file__).resolve().parent
AGENT = "turbows"
# Verdicts of the suite that are not failures. NON-STRICT: a choice the RFC allows (for
# instance failing a message as soon as the invalid UTF-8 is complete rather than at the
# first byte); INFORMATIONAL: no requirement, only recorded.
PASSING = {"OK", "NON-STRICT", "INFORMATIONAL"}


def quick_exclusions() -> List[str]:
    """The compression cases with the largest messages (12.x.9 and up, 13.x.9 and up) but
    those of 12.1: they take nine tenths of a full run's time (most of it in the suite's own
    zlib calls) and repeat what the smaller sizes and 12.1 already cover."""
    return [
        f"{major}.{minor}.{size}"
        for major, minors in ((12, range(2, 6)), (13, range(1, 8)))
        for minor in minors
        for size in range(9, 19)
    ]


def sync_client_selection() -> Tuple[List[str], List[str]]:
    """The cases and exclusions run against ``turbows.sync``'s client in CI: every section
    but the compression ones, and of those the first sizes of 12.1, 13.1 and 13.3. The
    codec and the compression are the asyncio client's, run in full; what is the sync
    client's own (threads, blocking I/O, closing) shows in every section. About a third of
    a quick run's time."""
    cases = [f"{n}.*" for n in (1, 2, 3, 4, 5, 6, 7, 9, 10)] + ["12.1.*", "13.1.*", "13.3.*"]
    exclude = [f"12.1.{size}" for size in range(9, 19)] + quick_exclusions()
    return cases, exclude


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, proc: subprocess.Popen[Any], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before listening")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1.0).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on port {port} after {timeout} s")


def verdicts(index: Path) -> Dict[str, Tuple[str, str]]:
    """case id -> (behavior, behaviorClose) from the suite's index.json, for our agent."""
    data = json.loads(index.read_text())
    return {case: (r["behavior"], r["behaviorClose"]) for case, r in data[AGENT].items()}


def failures(results: Dict[str, Tuple[str, str]]) -> List[str]:
    return sorted(
        (case for case, (b, bc) in results.items() if b not in PASSING or bc not in PASSING),
        key=lambda c: [int(x) for x in c.split(".")],
    )


def summary(results: Dict[str, Tuple[str, str]]) -> str:
    counts: Dict[str, int] = {}
    for behavior, _ in results.values():
        counts[behavior] = counts.get(behavior, 0) + 1
    return ", ".join(f"{n} {b}" for b, n in sorted(counts.items()))


def run(
    mode: str,
    wstest: List[str],
    outdir: Path,
    cases: List[str],
    exclude: List[str],
    uvloop: bool = False,
    timeout: float = 1800.0,
    env: Optional[Dict[str, str]] = None,
    sync: bool = False,
) -> Dict[str, Tuple[str, str]]:
    """Run the suite once; the verdict of each case it ran (``verdicts``).

    ``env``: more environment variables for the testee and wstest (``TURBOWS_NO_EXTENSIONS``).
    ``sync``: in client mode, run ``turbows.sync``'s blocking client instead of the asyncio one.
    """
    outdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    testee = [sys.executable, str(HERE / "testee.py")] + (["--uvloop"] if uvloop else [])
    env = dict(os.environ, PYTHONUNBUFFERED="1", **(env or {}))
    if env.get("PYTHONPATH"):  # both run in outdir
        env["PYTHONPATH"] = os.pathsep.join(
            os.path.abspath(p) for p in env["PYTHONPATH"].split(os.pathsep)
        )
    spec: Dict[str, Any] = {"cases": cases, "exclude-cases": exclude, "exclude-agent-cases": {}}
    if mode == "server":
        spec["outdir"] = str(outdir)
        spec["servers"] = [{"agent": AGENT, "url": f"ws://127.0.0.1:{port}"}]
        first = testee + ["server", str(port)]
        second = wstest + ["-m", "fuzzingclient", "-s", str(outdir / "spec.json")]
    else:
        spec["outdir"] = str(outdir)
        spec["url"] = f"ws://127.0.0.1:{port}"
        first = wstest + ["-m", "fuzzingserver", "-s", str(outdir / "spec.json"), "-u", "0"]
        second = testee + ["sync-client" if sync else "client", f"ws://127.0.0.1:{port}", AGENT]
    (outdir / "spec.json").write_text(json.dumps(spec, indent=2))
    with open(outdir / "log.txt", "w") as log:
        background = subprocess.Popen(
            first, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=outdir
        )
        try:
            wait_port(port, background)
            subprocess.run(
                second,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=outdir,
                timeout=timeout,
                check=True,
            )
        finally:
            background.terminate()
            try:
                background.wait(10)
            except subprocess.TimeoutExpired:
                background.kill()
                background.wait()
    return verdicts(outdir / "index.json")


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=["server", "client"])
    parser.add_argument("--wstest", default=os.environ.get("TURBOWS_WSTEST"))
    parser.add_argument("--outdir", type=Path, default=None)
    parser.add_argument("--cases", nargs="*", default=["*"])
    parser.add_argument("--exclude", nargs="*", default=[])
    parser.add_argument(
        "--quick",
        action="store_true",
        help="leave out the slowest compression cases (see quick_exclusions)",
    )
    parser.add_argument("--uvloop", action="store_true")
    parser.add_argument("--sync", action="store_true", help="client mode: turbows.sync's client")
    parser.add_argument("--timeout", type=float, default=1800.0)
    args = parser.parse_args(argv)
    if not args.wstest:
        parser.error("no wstest: pass --wstest or set TURBOWS_WSTEST")
    outdir = args.outdir or Path("autobahn-reports") / args.mode
    start = time.monotonic()
    exclude = args.exclude + (quick_exclusions() if args.quick else [])
    results = run(
        args.mode,
        shlex.split(args.wstest),
        outdir.resolve(),
        args.cases,
        exclude,
        args.uvloop,
        args.timeout,
        sync=args.sync,
    )
    failed = failures(results)
    print(
        f"autobahn {args.mode}: {len(results)} cases in {time.monotonic() - start:.0f} s: "
        f"{summary(results)}"
    )
    for case in failed:
        print(f"  FAILED {case}: {results[case]}")
    return 1 if failed or not results else 0


if __name__ == "__main__":
    sys.exit(main())
