"""A live view of a search: optuna-dashboard on the run's study, bound to 127.0.0.1.

The dashboard reads the same study the search writes, so it can run beside a search (or after
it). It binds to the loopback interface unless told otherwise; from a laptop, reach it through
an SSH tunnel, as ``dashboard_hint`` says.

Example:
    >>> dashboard_hint("127.0.0.1", 8080, "gpu-box")
    'open http://127.0.0.1:8080 here; from a laptop: ssh -N -L 8080:127.0.0.1:8080 USER@gpu-box, then open http://localhost:8080'
"""

from __future__ import annotations

import os
import platform
import signal
import socket
import sys
import threading
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from autocompress.search.best import Run
from autocompress.search.rundir import STUDY_DB
from autocompress.search.storage import check_study_file, sqlite_url
from autocompress.errors import UsageError

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def study_storage(run: Run, storage: str | None) -> str:
    """The storage URL of the run's study: study.db in the run directory, or the --storage given
    (a database URL's password is never stored in run.json, so it has to be given again)."""
    if storage:
        return storage
    stored = run.info["study"]["storage"]
    if stored == STUDY_DB:
        check_study_file(run.path)  # read-only: an empty or missing study.db is refused, not given a new schema
        return sqlite_url(run.path)
    raise UsageError(f"the study of {run.path} lives in {stored}; give that URL with its password as --storage URL")


def dashboard_hint(host: str, port: int, machine: str | None = None) -> str:
    machine = machine or platform.node() or "THIS-MACHINE"
    if host in LOOPBACK:
        return (f"open http://{host}:{port} here; from a laptop: ssh -N -L {port}:127.0.0.1:{port} "
                f"USER@{machine}, then open http://localhost:{port}")
    return f"open http://{machine}:{port} (listening on {host}: anyone who can reach this machine can see the study)"


class _QuietHandler(WSGIRequestHandler):
    def address_string(self):  # no reverse DNS lookups
        return self.client_address[0]

    def log_request(self, *args, **kwargs):  # no line per request
        pass


def listen(host: str, port: int, app) -> WSGIServer:
    """A WSGI server for ``app`` already bound to host:port (so nothing says it is served
    before it is); one-line UsageError when the address cannot be had.

    >>> import socket
    >>> with socket.socket() as taken:
    ...     taken.bind(("127.0.0.1", 0)); taken.listen()
    ...     listen("127.0.0.1", taken.getsockname()[1], None)
    Traceback (most recent call last):
    autocompress.errors.UsageError: cannot listen on 127.0.0.1:... (Address already in use); choose another --port
    """
    if not 0 < port < 65536:
        raise UsageError(f"--port must be between 1 and 65535, got {port}")

    class Server(WSGIServer):
        address_family = socket.AF_INET6 if ":" in host else socket.AF_INET

    try:
        return make_server(host, port, app, Server, _QuietHandler)
    except (OSError, UnicodeError) as exc:
        raise UsageError(f"cannot listen on {host}:{port} ({getattr(exc, 'strerror', None) or exc}); "
                         "choose another --port") from None


def serve_dashboard(run: Run, *, host: str = "127.0.0.1", port: int = 8080, storage: str | None = None,
                    progress=print) -> None:
    """Serve optuna-dashboard for ``run`` until interrupted (Ctrl-C)."""
    import optuna_dashboard

    from autocompress.search.storage import open_storage

    rdb = open_storage(study_storage(run, storage))
    server = listen(host, port, optuna_dashboard.wsgi(rdb))
    if host not in LOOPBACK:
        progress(f"warning: --host {host} serves the study to the network, without authentication")
    progress(f"optuna-dashboard for {run.path} (study {run.info['study']['name']!r}); Ctrl-C stops it")
    progress(dashboard_hint(host, port))
    if threading.current_thread() is threading.main_thread():
        # wsgiref answers requests in this thread and swallows a KeyboardInterrupt raised while
        # one is being answered, so Ctrl-C could be lost; the server only reads the study, so
        # stopping at once loses nothing
        def stop(signum, frame):
            print("dashboard stopped", flush=True)
            sys.stderr.flush()
            os._exit(0)

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
    try:
        server.serve_forever()
    finally:
        server.server_close()
