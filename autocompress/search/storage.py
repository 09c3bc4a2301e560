"""Where the study lives: SQLite in the run directory by default, or a database URL.

A URL's password is never printed or stored: messages and run.json carry the redacted form.
An unreachable database fails within a few seconds with one line.

Example:
    >>> redact("postgresql://alice:s3cret@db.example:5432/studies")
    'postgresql://alice:***@db.example:5432/studies'
"""

from __future__ import annotations

import contextlib
import errno
import sqlite3
from pathlib import Path
from urllib.parse import quote

import optuna
from sqlalchemy.engine import make_url

from autocompress.search.rundir import STUDY_DB
from autocompress.errors import UsageError

CONNECT_TIMEOUT_S = 5


def redact(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "<unparseable storage URL>"


def redact_argv(argv: list[str]) -> list[str]:
    """A command line safe to store: any URL's password replaced by ***.

    >>> redact_argv(["--storage=postgresql://u:pw@h/db", "--out", "x"])
    ['--storage=postgresql://u:***@h/db', '--out', 'x']
    """
    safe = []
    for arg in argv:
        flag, eq, value = arg.partition("=") if arg.startswith("--") and "=" in arg else ("", "", arg)
        if "://" in value and "@" in value:
            value = redact(value)
        safe.append(f"{flag}{eq}{value}")
    return safe


def sqlite_url(run_dir: Path) -> str:
    return f"sqlite:///{(run_dir / STUDY_DB).resolve()}"


def check_study_file(run_dir: Path) -> None:
    """The run's study.db must be there and hold an Optuna study. Opened without create, so a
    missing, empty or foreign file is refused without a database being written in its place;
    read-write where it can be, so the journal of a writer killed mid-transaction (a killed
    driver's) is rolled back as SQLite does on any open, instead of refusing a sound study.

    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp()); (folder / STUDY_DB).write_bytes(b"")
    0
    >>> check_study_file(folder)
    Traceback (most recent call last):
    ...
    autocompress.errors.UsageError: cannot open the study of ...: its study.db is empty, so every trial it stored is gone; restore study.db from a copy, or start a new --out (best and report still read trials.csv)
    >>> sorted(p.name for p in folder.iterdir())
    ['study.db']
    """
    path = Path(run_dir) / STUDY_DB
    fix = "restore study.db from a copy, or start a new --out (best and report still read trials.csv)"
    if not path.is_file() or path.stat().st_size == 0:
        raise UsageError(f"cannot open the study of {run_dir}: its {STUDY_DB} is "
                         f"{'empty' if path.is_file() else 'missing'}, so every trial it stored is gone; {fix}")
    try:
        with contextlib.closing(sqlite3.connect(f"file:{quote(str(path.resolve()))}?mode=rw", uri=True)) as db:
            tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    except sqlite3.Error as exc:
        raise UsageError(f"cannot open the study of {run_dir}: its {STUDY_DB} is not a readable SQLite "
                         f"database ({exc}); {fix}") from None
    if "studies" not in tables:
        raise UsageError(f"cannot open the study of {run_dir}: its {STUDY_DB} holds no Optuna study; {fix}")


def check_resume_storage(run: dict, storage: str | None) -> None:
    """A resume must use the storage the run used: its study.db, or the same database URL
    (given again with its password, which run.json never holds).

    >>> run = {"study": {"storage": "postgresql://u:***@db/studies"}}
    >>> check_resume_storage(run, "postgresql://u:pw@db/studies")
    >>> check_resume_storage(run, None)
    Traceback (most recent call last):
    ...
    autocompress.errors.UsageError: --resume: this run's study lives in postgresql://u:***@db/studies; give --storage postgresql://u:PASSWORD@db/studies (its password is never stored)
    """
    stored = run["study"]["storage"]
    if stored == STUDY_DB:
        if storage is not None:
            raise UsageError(f"--storage {redact(storage)}: this run's study is {STUDY_DB} in its directory; "
                             "resume without --storage")
        return
    if storage is None:
        raise UsageError(f"--resume: this run's study lives in {stored}; give --storage "
                         f"{stored.replace('***', 'PASSWORD')} (its password is never stored)")
    if redact(storage) != stored:
        raise UsageError(f"--storage {redact(storage)} is not this run's storage ({stored}); give that one")


def open_storage(url: str) -> optuna.storages.RDBStorage:
    """An Optuna RDB storage, checked by connecting; problems are one UsageError line."""
    try:
        parsed = make_url(url)
    except Exception as exc:
        raise UsageError("--storage is not a database URL; use e.g. postgresql://USER:PASSWORD@HOST:5432/DB") from exc
    if parsed.get_backend_name() == "sqlite" and parsed.database in (None, "", ":memory:"):
        raise UsageError(f"--storage {redact(url)}: an in-memory SQLite database keeps nothing after the search; "
                         "give a file, e.g. sqlite:////absolute/path/study.db, or leave --storage out")
    engine_kwargs = {}
    if parsed.get_backend_name() == "postgresql":
        engine_kwargs = {"connect_args": {"connect_timeout": CONNECT_TIMEOUT_S}}
    try:
        return optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs)
    except Exception as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if parsed.password:
            reason = reason.replace(parsed.password, "***")
        raise UsageError(f"--storage {redact(url)}: cannot open the database ({reason[:200]}); "
                         f"{_storage_hint(parsed.get_backend_name(), reason)}") from exc


def _storage_hint(backend: str, reason: str) -> str:
    """What to check, by kind of database.

    >>> print(_storage_hint("sqlite", "unable to open database file"))
    check that the SQLite file's folder exists and can be written (sqlite:////absolute/path/study.db)
    """
    if "Can't load plugin" in reason:
        return "that kind of database is unknown; use postgresql://USER:PASSWORD@HOST:5432/DB or sqlite:///PATH"
    if backend == "sqlite":
        return "check that the SQLite file's folder exists and can be written (sqlite:////absolute/path/study.db)"
    return "check the host, port, user and that the server is running"


WRITE_ERRNOS = {errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EPERM, errno.EDQUOT}
WRITE_MESSAGES = ("disk is full", "disk full", "readonly database", "read-only", "no space left")


def write_failure(exc: BaseException) -> str | None:
    """The reason, when ``exc`` (or what caused it) is a disk that is full or cannot be written.

    >>> write_failure(RuntimeError("x")) is None
    True
    >>> try:
    ...     raise RuntimeError("commit failed") from OSError(errno.ENOSPC, "No space left on device")
    ... except RuntimeError as exc:
    ...     write_failure(exc)
    'No space left on device'
    """
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno in WRITE_ERRNOS:
            return exc.strerror or str(exc)
        if any(m in str(exc).lower() for m in WRITE_MESSAGES):
            return str(exc).splitlines()[0][:160]
        exc = exc.__cause__ or exc.__context__
    return None
