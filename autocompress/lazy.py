"""Names a package imports on first use (PEP 562): ``autocompress.search.X`` loads X's module only
when X is read, so a Ray worker or a reader of a run does not pay for what it never uses.

Example:
    >>> getattr_, dir_ = first_use("demo", {"JSONDecoder": "json.decoder"})
    >>> getattr_("JSONDecoder").__name__, dir_()
    ('JSONDecoder', ['JSONDecoder'])
"""

from __future__ import annotations

import importlib
import sys
from typing import Callable


def first_use(package: str, homes: dict[str, str]) -> tuple[Callable[[str], object], Callable[[], list[str]]]:
    """The ``__getattr__`` and ``__dir__`` of ``package`` whose names live in ``homes``: name ->
    module, absolute (``autocompress.budget``) or one of the package's own (``pareto``); each name
    is imported once, then kept on the package."""
    def get(name: str):
        if name not in homes:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        home = homes[name] if "." in homes[name] else f"{package}.{homes[name]}"
        value = getattr(importlib.import_module(home), name)
        if package in sys.modules:
            setattr(sys.modules[package], name, value)
        return value

    def names() -> list[str]:
        present = set(vars(sys.modules[package])) if package in sys.modules else set()
        return sorted(present | set(homes))

    return get, names
