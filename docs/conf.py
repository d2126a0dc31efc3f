"""Sphinx configuration of turbows's documentation.

Build: ``python -m sphinx -W -n -b html docs docs/_build/html`` (``.ci/docs.sh`` does it
with warnings as errors). Pages are Markdown (MyST), the API reference comes from the
docstrings (autodoc, napoleon for their Google style).

Why Sphinx rather than MkDocs: autodoc and napoleon read the Google-style docstrings the code
already has, signatures and type hints included; nitpicky mode makes every cross-reference
that does not resolve an error, which is how a renamed or undocumented name fails CI; and
intersphinx links to Python's own documentation from a local inventory. MyST keeps the pages
in Markdown like the README, so one test (tests/docs/test_examples.py) runs the examples of
both.
"""

from __future__ import annotations

import glob
import importlib
from typing import Any, Dict, List

import turbows

project = "turbows"
author = "turbows developers"
copyright = "turbows developers"
release = turbows.__version__
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.intersphinx",
    "sphinx.ext.viewcode",
    "myst_parser",
]
source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
exclude_patterns = ["_build", "benchmarks/*.txt", "benchmarks/*.json", "README.md"]
myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3

# Every cross-reference must resolve (``-n`` on the command line does the same).
nitpicky = True
nitpick_ignore = [
    # Type aliases and private helpers that show in signatures but are not public names.
    ("py:class", "turbows._http.Headers"),
    ("py:class", "Headers"),
    ("py:class", "HeadersLike"),
    ("py:class", "OriginPolicy"),
    ("py:class", "ExtensionOffer"),
    ("py:class", "ExtensionParams"),
    ("py:class", "Data"),
    ("py:class", "Message"),
    ("py:class", "Handler"),
    ("py:class", "ProcessRequest"),
    ("py:class", "_Options"),
    ("py:class", "ModuleType"),
    ("py:class", "ssl_module.SSLContext"),  # ``import ssl as ssl_module`` in annotations
    ("py:data", "LOCAL"),  # turbows.events.LOCAL / PEER, the values of ``initiator``
    ("py:data", "PEER"),
    ("py:exc", "NegotiationError"),  # raised inside the handshake, never to the application
    ("py:class", "_asyncio.Future"),  # asyncio.Future as the C module names it
    # Names of turbows.pubsub that its docstrings mention but its reference does not list.
    ("py:data", "RESET"),
    ("py:data", "turbows.pubsub.RESET"),
    ("py:func", "envelope"),
    # redis-py's exception, which Bus.publish_many passes on: its docs have no inventory here.
    ("py:exc", "redis.exceptions.ResponseError"),
]
# Napoleon reads a property docstring whose first line has a colon as "type: description".
nitpick_ignore_regex = [("py:class", r"The close code received.*|1005")]

autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_default_options = {"show-inheritance": True}
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False

# Python's inventory: Debian's python3-doc package has it (CI has no network but package
# registries); elsewhere Sphinx fetches it from docs.python.org.
_local = sorted(glob.glob("/usr/share/doc/python3*/html/objects.inv"))
intersphinx_mapping = {"python": ("https://docs.python.org/3", _local[-1] if _local else None)}
intersphinx_timeout = 10

html_theme = "furo"
html_title = f"turbows {release}"
html_static_path: List[str] = []

#: Modules whose every public name (``__all__``) must be documented in the API reference.
API_MODULES = ["turbows", "turbows.asyncio", "turbows.sync"]


def _check_api(app: Any, exception: Any) -> None:
    """Warn (an error under ``-W``) for every public name the API reference leaves out."""
    if exception is not None:
        return
    from sphinx.util import logging

    logger = logging.getLogger("turbows.docs")
    documented: Dict[str, Any] = app.env.domaindata["py"]["objects"]
    for module_name in API_MODULES:
        module = importlib.import_module(module_name)
        for name in module.__all__:
            if name.startswith("__"):
                continue
            if f"{module_name}.{name}" not in documented:
                logger.warning(
                    "%s.%s is public (in __all__) but not in the API reference", module_name, name
                )


def setup(app: Any) -> Dict[str, Any]:
    app.connect("build-finished", _check_api)
    return {"parallel_read_safe": True}
