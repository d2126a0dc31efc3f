"""The codec in use: the Cython extension, or its pure-Python twin.

``TURBOWS_NO_EXTENSIONS=1`` (any non-empty value but ``0``) selects the pure-Python twin; so
does a missing extension. Type checkers always see the pure-Python module.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

NO_EXTENSIONS = os.environ.get("TURBOWS_NO_EXTENSIONS", "") not in ("", "0")

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
