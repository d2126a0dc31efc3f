"""The codec in use: the Cython extension, or its pure-Python twin.

``FASTWS_NO_EXTENSIONS=1`` (any non-empty value but ``0``) selects the pure-Python twin; so
does a missing extension. Type checkers always see the pure-Python module.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

NO_EXTENSIONS = os.environ.get("FASTWS_NO_EXTENSIONS", "") not in ("", "0")

if TYPE_CHECKING or NO_EXTENSIONS:
    from ._codec_py import (
        BinaryMessage,
        CloseReceived,
        FrameParser,
        FrameWriter,
        Ping,
        Pong,
        TextMessage,
        Utf8Validator,
        apply_mask,
        apply_mask_inplace,
        build_frame,
        encode_close,
        kernel_isa,
        validate_utf8,
    )

    IMPLEMENTATION = "python"
else:
    try:
        from ._speedups import (
            BinaryMessage,
            CloseReceived,
            FrameParser,
            FrameWriter,
            Ping,
            Pong,
            TextMessage,
            Utf8Validator,
            apply_mask,
            apply_mask_inplace,
            build_frame,
            encode_close,
            kernel_isa,
            validate_utf8,
        )

        IMPLEMENTATION = "cython"
    except ImportError:  # pragma: no cover - depends on the build
        from ._codec_py import (
            BinaryMessage,
            CloseReceived,
            FrameParser,
            FrameWriter,
            Ping,
            Pong,
            TextMessage,
            Utf8Validator,
            apply_mask,
            apply_mask_inplace,
            build_frame,
            encode_close,
            kernel_isa,
            validate_utf8,
        )

        IMPLEMENTATION = "python"

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
