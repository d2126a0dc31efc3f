"""Drop-in compatibility layers: other libraries' APIs on turbows.

:func:`install_wsproto` makes ``import wsproto`` (and every ``wsproto.*`` module) give
:mod:`turbows.compat.wsproto`, so that code written for wsproto runs on turbows unedited.
Setting ``TURBOWS_WSPROTO=1`` in the environment does the same at interpreter start-up,
through the ``turbows-wsproto.pth`` file the wheel installs.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import os
import sys
from types import ModuleType
from typing import Final, Optional, Sequence

__all__ = ["install_wsproto", "wsproto_installed"]

#: The environment variable that installs the alias at start-up when set to ``1``.
ENV_VAR: Final = "TURBOWS_WSPROTO"
_TARGET: Final = "turbows.compat.wsproto"
_SUBMODULES: Final = (
    "connection",
    "events",
    "extensions",
    "frame_protocol",
    "handshake",
    "typing",
    "utilities",
)


class _AliasLoader(importlib.abc.Loader):
    """Loads ``wsproto[.x]`` as the already imported ``turbows.compat.wsproto[.x]``."""

    def __init__(self, target: str) -> None:
        self._target = target

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        return importlib.import_module(self._target)

    def exec_module(self, module: ModuleType) -> None:
        # The target module ran when it was imported; running it again would make new
        # classes and break identity with the ones already handed out.
        return None


class _AliasFinder(importlib.abc.MetaPathFinder):
    """Resolves ``wsproto`` and ``wsproto.*`` to turbows's modules, before any other finder."""

    def find_spec(
        self,
        fullname: str,
        path: Optional[Sequence[str]],
        target: Optional[ModuleType] = None,
    ) -> Optional[importlib.machinery.ModuleSpec]:
        if fullname != "wsproto" and not fullname.startswith("wsproto."):
            return None
        real = _TARGET + fullname[len("wsproto") :]
        try:
            importlib.import_module(real)
        except ModuleNotFoundError:
            return None
        return importlib.machinery.ModuleSpec(
            fullname, _AliasLoader(real), is_package=fullname == "wsproto"
        )


_finder = _AliasFinder()


def wsproto_installed() -> bool:
    """Whether ``import wsproto`` gives turbows's modules in this interpreter."""
    return _finder in sys.meta_path


def install_wsproto() -> None:
    """Make ``import wsproto`` and every ``wsproto.*`` module resolve to turbows's.

    Afterwards ``wsproto.events.Message is turbows.compat.wsproto.events.Message``: the
    modules are the same objects under two names. Call it before anything imports wsproto;
    calling it again does nothing. A genuine wsproto installed beside turbows is left
    alone on disk; it is only hidden from this interpreter.

    Raises:
        RuntimeError: the genuine wsproto was imported already (its classes are in use, so
            mixing them with turbows's would break ``isinstance`` checks).
        ImportError: h11 is missing (``pip install "turbows[wsproto]"``).
    """
    existing = sys.modules.get("wsproto")
    if existing is not None and existing.__name__ != _TARGET:
        raise RuntimeError(
            "the genuine wsproto is already imported: call turbows.compat.install_wsproto()"
            " before anything imports wsproto (or set TURBOWS_WSPROTO=1)"
        )
    package = importlib.import_module(_TARGET)
    sys.modules["wsproto"] = package
    for name in _SUBMODULES:
        sys.modules["wsproto." + name] = importlib.import_module(f"{_TARGET}.{name}")
    if _finder not in sys.meta_path:
        sys.meta_path.insert(0, _finder)


def _startup() -> None:
    """Run by ``turbows-wsproto.pth`` at start-up when ``TURBOWS_WSPROTO=1``.

    A failure is reported on stderr rather than raised, so that the interpreter still
    starts (and the program then fails where it imports wsproto, or runs the genuine one).
    """
    if os.environ.get(ENV_VAR) != "1":
        return
    try:
        install_wsproto()
    except Exception as exc:  # noqa: BLE001 - any failure must leave the interpreter usable
        print(f"turbows: TURBOWS_WSPROTO=1 but the wsproto alias failed: {exc!r}", file=sys.stderr)
