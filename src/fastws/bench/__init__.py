"""fastws's benchmark command: ``python -m fastws.bench``.

It measures, side by side in one process run, the fastws Cython codec, its pure-Python twin,
every installed peer (websockets, wsproto, aiohttp, picows) and the physical references (a
plain memory copy of the same bytes), then prints a table of throughputs with their spread and
the ratio of fastws C to every other row, and checks the speed targets of the codec.

Suites are registered in :data:`SUITES`; the codec suite is the only one so far. The
connection and end-to-end suites (the sans-I/O connection's receive and send paths, a loopback
echo against a raw TCP echo) plug in the same way: a function from :class:`SuiteOptions` to a
list of :class:`~fastws.bench._runner.Case`.
"""

from __future__ import annotations

from ._cli import SUITES, SuiteOptions, main

__all__ = ["SUITES", "SuiteOptions", "main"]
