"""turbows's benchmark command: ``python -m turbows.bench``.

It measures, side by side in one process run, the turbows Cython codec, its pure-Python twin,
every installed peer (websockets, wsproto, aiohttp, picows) and the physical references (a
plain memory copy of the same bytes), then prints a table of throughputs with their spread and
the ratio of turbows C to every other row, and checks the speed targets of the codec.

Suites are registered in :data:`SUITES`: ``codec`` (masking, UTF-8, frame parsing and
building), ``connection`` (the sans-I/O ``ServerConnection``'s receive and send paths and its
footprint) and ``e2e`` (echo servers over 127.0.0.1 against a raw TCP echo: request/response,
50 concurrent connections with the server's CPU per message, idle memory per connection). A
suite is a function from :class:`SuiteOptions` to a list of
:class:`~turbows.bench._runner.Case`.
"""

from __future__ import annotations

from ._cli import SUITES, SuiteOptions, main

__all__ = ["SUITES", "SuiteOptions", "main"]
