"""The errors a user reads: ``UsageError`` (bad input; the CLI prints its message as one line and
exits with 2) and ``one_line``. A module of its own, importing nothing, so that reading a run
(``best``, ``report``) needs neither torch nor the compression stack.

Example:
    >>> str(UsageError("--trials must be at least 1, got 0"))
    '--trials must be at least 1, got 0'
"""

from __future__ import annotations


class UsageError(ValueError):
    """Bad input from the user: the CLI prints its message as one line and exits with 2."""


def one_line(text: object) -> str:
    """``text`` with its whitespace runs (newlines included) made single spaces, for a one-line error.

    >>> one_line("shape mismatch:\\n  expected 3\\n")
    'shape mismatch: expected 3'
    """
    return " ".join(str(text).split())
