"""The Python API's door: each public function checks the type of what it was given.

The CLI parses its flags into the right types; a Python caller can pass anything, and a wrong
type used to surface as a traceback from deep inside (``search(settings={...})``). ``expect``
makes it one ``UsageError`` naming the function, the keyword, what it takes and how to make
one. Values are checked where they are defined (``SearchSettings``, ``Budget``, ``Plan``).

The same errors reach the CLI and Python callers; the CLI's name the flags, and a Python caller
reads them with each flag said as its keyword (``search.settings.spoken_to_python``).

Example:
    >>> from pathlib import Path
    >>> expect("search", "out", "runs/x", PATH, how="a folder path")
    >>> expect("search", "out", None, PATH, how="a folder path, e.g. out='runs/first'")
    Traceback (most recent call last):
    ...
    autocompress.errors.UsageError: search(out=None): expected a str or PathLike, got NoneType; give a folder path, e.g. out='runs/first'
"""

from __future__ import annotations

import os
from typing import Any

from autocompress.errors import UsageError

PATH = (str, os.PathLike)


def _tuple(kinds: type | tuple[type, ...]) -> tuple[type, ...]:
    return kinds if isinstance(kinds, tuple) else (kinds,)


def expect(function: str, keyword: str, value: Any, kinds: type | tuple[type, ...], *, how: str,
           optional: bool = False) -> None:
    """Raise a UsageError unless ``value`` is one of ``kinds`` (or None where ``optional``); an
    empty path or a bool given for a number is refused too."""
    if optional and value is None:
        return
    wrong = not isinstance(value, kinds) or (isinstance(value, bool) and bool not in _tuple(kinds))
    if not wrong and isinstance(value, PATH) and kinds == PATH and not os.fspath(value).strip():
        raise UsageError(f"{function}({keyword}=''): an empty path; give {how}")
    if wrong:
        shown = repr(value) if isinstance(value, (str, int, float, type(None))) and len(repr(value)) < 40 else "..."
        raise UsageError(f"{function}({keyword}={shown}): expected a {' or '.join(k.__name__ for k in _tuple(kinds))}{' or None' if optional else ''}, "
                         f"got {type(value).__name__}; give {how}")


def expect_callable(function: str, keyword: str, value: Any, *, how: str, optional: bool = False) -> None:
    """Raise a UsageError unless ``value`` can be called (or is None where ``optional``)."""
    if not (callable(value) or (optional and value is None)):
        raise UsageError(f"{function}({keyword}=...): expected a function, got {type(value).__name__}; give {how}")

