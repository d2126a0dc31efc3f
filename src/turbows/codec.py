"""The codec in use: the Cython extension, or its pure-Python twin.

``TURBOWS_NO_EXTENSIONS=1`` (any non-empty value but ``0``) selects the pure-Python twin; so
does a missing extension. Type checkers always see the pure-Python module.
"""

from __future__ import annotations

import os
import warnings
from typing import TYPE_CHECKING

NO_EXTENSIONS = os.environ.get("TURBOWS_NO_EXTENSIONS", "") not in ("", "0")

# Left in the package by setup.py when the C extension could not be built (no compiler, no
# Python headers): pip hides the build's own warning unless run with -v, so say it here.
BUILD_FAILURE_MARKER = "_build_failure.txt"


def _warn_if_the_build_failed() -> None:
    marker = os.path.join(os.path.dirname(__file__), BUILD_FAILURE_MARKER)
    try:
        with open(marker, encoding="utf-8") as f:
            failures = f.read().strip().splitlines() or ["the build failed"]
    except OSError:
        return  # built without extensions on purpose, or a source tree never built
    reason = next((line for line in failures if line.startswith("turbows._speedups")), failures[0])
    warnings.warn(
        "turbows was installed without its C extension, so it runs the pure-Python codec, many"
        f" times slower ({reason}). Install a C compiler and the Python headers, then rebuild:"
        " pip cache remove turbows; pip install --force-reinstall --no-cache-dir turbows."
        " TURBOWS_NO_EXTENSIONS=1 picks pure Python on purpose and silences this warning.",
        RuntimeWarning,
        stacklevel=3,
    )


if TYPE_CHECKING or NO_EXTENSIONS:
    from . import _codec_py as _impl

    IMPLEMENTATION = "python"
else:
    try:
        from . import _speedups as _impl  # type: ignore[no-redef]

        IMPLEMENTATION = "cython"
    except ImportError:  # pragma: no cover - depends on the build
        from . import _codec_py as _impl

        IMPLEMENTATION = "python"
        _warn_if_the_build_failed()

BinaryMessage = _impl.BinaryMessage
CloseReceived = _impl.CloseReceived
FrameParser = _impl.FrameParser
FrameWriter = _impl.FrameWriter
Ping = _impl.Ping
Pong = _impl.Pong
TextMessage = _impl.TextMessage
Utf8Validator = _impl.Utf8Validator
apply_mask = _impl.apply_mask
apply_mask_inplace = _impl.apply_mask_inplace
build_frame = _impl.build_frame
encode_close = _impl.encode_close
kernel_isa = _impl.kernel_isa
validate_utf8 = _impl.validate_utf8

__all__ = [
    "IMPLEMENTATION",
    "BinaryMessage",
    "CloseReceived",
    "FrameParser",
    "FrameWriter",
    "Ping",
    "Pong",
    "TextMessage",
    "Utf8Validator",
    "apply_mask",
    "apply_mask_inplace",
    "build_frame",
    "encode_close",
    "kernel_isa",
    "validate_utf8",
]
