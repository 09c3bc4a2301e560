"""A real PostgreSQL server and a real two-node Ray cluster, both started by the test, and the
bad inputs around them: unreachable cluster or database (one line, no password shown)."""

import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import optuna
import pandas as pd
import pytest

from tests.conftest import run_cli, search_here

PG_BIN = next(iter(sorted(Path("/usr/lib/postgresql").glob("*/bin"))), Path("/nonexistent"))
SECRET = "s3cret-pw"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _as_postgres(*cmd, **kw):
    prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    return subprocess.run([*prefix, *cmd], check=True, capture_output=True, text=True, **kw)


@pytest.fixture(scope="module")
def postgres_url(tmp_path_factory):
    if not (PG_BIN / "initdb").exists():
        if os.environ.get("AUTOCOMPRESS_REQUIRE_POSTGRES"):  # .ci/run sets it: there these tests must run
            pytest.fail("PostgreSQL server binaries are missing but AUTOCOMPRESS_REQUIRE_POSTGRES is set")
        pytest.skip("PostgreSQL server binaries not installed (.ci/run installs them)")
    folder = Path(tempfile.mkdtemp(prefix="autocompress-pg-"))  # pytest's tmp is private to root
    folder.chmod(0o777)
    data = folder / "data"
    port = _free_port()
    _as_postgres(str(PG_BIN / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust")
    _as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(data), "-l", str(folder / "log"), "-o",
                 f"-p {port} -k /tmp -h 127.0.0.1", "-w", "start")
    try:
        _as_postgres(str(PG_BIN / "psql"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres",
                     "-c", f"CREATE USER ac WITH PASSWORD '{SECRET}'", "-c", "CREATE DATABASE studies OWNER ac")
        yield f"postgresql://ac:{SECRET}@127.0.0.1:{port}/studies"
    finally:
        _as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop")
        shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.slow
def test_search_stores_its_study_in_postgresql_without_keeping_the_password(postgres_url, tmp_path):
    out = tmp_path / "run"
    proc = search_here("search", "--task", "tests.fixtures.user_tasks:tiny", "--trials", "3", "--steps", "5",
                       "--no-sensitivity", "--storage", postgres_url, "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert SECRET not in proc.stdout + proc.stderr
    assert SECRET not in (out / "run.json").read_text() and not (out / "study.db").exists()
    holding = [str(f) for f in out.rglob("*") if f.is_file() and SECRET.encode() in f.read_bytes()]
    assert holding == [], f"files of the run directory hold the password: {holding}"  # tune/tuner.pkl did
    run = json.loads((out / "run.json").read_text())
    study = optuna.load_study(study_name=run["study"]["name"], storage=postgres_url)
    assert len(study.trials) == 3 and all(t.state.name == "COMPLETE" for t in study.trials)
    assert len(pd.read_csv(out / "trials.csv")) == 3


@pytest.mark.slow
def test_unreachable_storage_is_one_line_without_the_password(tmp_path):
    proc = search_here("search", "--task", "tests.fixtures.user_tasks:tiny", "--out", str(tmp_path / "run"),
                       "--storage", f"postgresql://ac:{SECRET}@127.0.0.1:{_free_port()}/studies")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "cannot open the database" in proc.stderr and SECRET not in proc.stderr + proc.stdout
    assert len(proc.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_resume_of_a_postgresql_study_needs_its_url_and_continues_it(postgres_url, tmp_path):
    out = tmp_path / "run"
    args = ["search", "--task", "tests.fixtures.user_tasks:tiny", "--steps", "3", "--no-sensitivity", "--out", str(out)]
    assert search_here(*args, "--trials", "1", "--storage", postgres_url).returncode == 0
    proc = search_here(*args, "--trials", "2", "--resume")  # the command Ctrl-C used to print
    assert proc.returncode == 2 and "give --storage postgresql://ac:PASSWORD@" in proc.stderr
    assert SECRET not in proc.stderr and not (out / "study.db").exists()
    proc = search_here(*args, "--trials", "2", "--resume", "--storage", postgres_url)
    assert proc.returncode == 0, proc.stderr
    assert list(pd.read_csv(out / "trials.csv")["number"]) == [0, 1]


@pytest.mark.slow
@pytest.mark.cluster
def test_a_live_port_that_is_not_ray_is_one_line_quickly(tmp_path):
    import threading

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()

    def answer_like_a_web_server():
        for _ in range(3):
            try:
                conn, _ = server.accept()
            except OSError:
                return
            conn.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n")
            conn.close()

    threading.Thread(target=answer_like_a_web_server, daemon=True).start()
    started = time.monotonic()
    proc = run_cli("search", "--task", "tests.fixtures.user_tasks:tiny", "--out", str(tmp_path / "run"),
                   "--address", f"127.0.0.1:{server.getsockname()[1]}")
    server.close()
    assert proc.returncode == 2 and "it is not a Ray head" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and not (tmp_path / "run").exists()
    assert time.monotonic() - started < 120  # generous: the point is "no hang" (it used to wait over 200 s)


@pytest.mark.slow
@pytest.mark.cluster
def test_a_server_that_speaks_http2_and_then_stays_silent_is_refused_not_waited_on(tmp_path):
    """Such a server used to hold ``ray.init`` for good (over 150 s measured): it answered the
    HTTP/2 handshake and nothing else."""
    import threading

    from autocompress.search.gcs_probe import SETTINGS, frame

    server, held = socket.socket(), []
    server.bind(("127.0.0.1", 0))
    server.listen()

    def answer_the_handshake_only():
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            conn.recv(65536)
            conn.sendall(frame(SETTINGS, 0, b""))
            held.append(conn)  # open and silent

    threading.Thread(target=answer_the_handshake_only, daemon=True).start()
    proc = run_cli("search", "--task", "tests.fixtures.user_tasks:tiny", "--out", str(tmp_path / "run"),
                   "--address", f"127.0.0.1:{server.getsockname()[1]}")
    server.close()
    assert proc.returncode == 2 and "did not answer a Ray call within" in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and not (tmp_path / "run").exists()


@pytest.mark.slow
@pytest.mark.cluster
def test_unreachable_cluster_is_one_line_quickly(tmp_path):
    started = time.monotonic()
    proc = run_cli("search", "--task", "tests.fixtures.user_tasks:tiny", "--out", str(tmp_path / "run"),
                   "--address", f"127.0.0.1:{_free_port()}")
    assert proc.returncode == 2 and "no Ray cluster answers there" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert time.monotonic() - started < 60  # generous: the point is "no hang", not a speed goal


@pytest.mark.slow
def test_resume_with_another_task_is_refused(tmp_path):
    out = tmp_path / "run"
    assert search_here("search", "--task", "tests.fixtures.user_tasks:tiny", "--trials", "1", "--steps", "2",
                       "--no-sensitivity", "--out", str(out)).returncode == 0
    proc = search_here("search", "--task", "tests.fixtures.user_tasks:nan_training", "--resume", "--out", str(out))
    assert proc.returncode == 2 and "holds a search of task 'tiny'" in proc.stderr


@pytest.fixture
def two_node_cluster(tmp_path):
    ray = shutil.which("ray") or str(Path(os.sys.executable).parent / "ray")
    port = _free_port()
    env = dict(os.environ, RAY_AUTH_MODE="token")
    common = ["--node-ip-address=127.0.0.1", "--num-cpus=1", "--disable-usage-stats"]
    address_file = Path(tempfile.gettempdir()) / "ray" / "ray_current_cluster"  # 'ray start' writes it,
    before = address_file.read_text() if address_file.exists() else None  # address='auto' reads it
    subprocess.run([ray, "start", "--head", f"--port={port}", "--include-dashboard=false",
                    "--resources={\"target\": 1}", *common], check=True, env=env, capture_output=True)
    try:
        subprocess.run([ray, "start", f"--address=127.0.0.1:{port}", "--resources={\"second\": 1}", *common],
                       check=True, env=env, capture_output=True)
        yield f"127.0.0.1:{port}"
    finally:
        _stop_cluster(port)
        _restore(address_file, before)


def _restore(path: Path, text: str | None) -> None:
    """Put back the address file as it was: a dead cluster's address there would send every later
    ``ray.init(address='auto')`` on this machine to wait for it."""
    if text is not None:
        path.write_text(text)
    else:
        path.unlink(missing_ok=True)


def _stop_cluster(port: int) -> None:
    """Kill this cluster's processes only (the ones given its GCS port): ``ray stop`` would also end
    every other Ray on the machine, a search running beside the tests included."""
    import psutil

    def ours(proc) -> bool:
        args = proc.info["cmdline"] or []
        return any(a.endswith((f":{port}", f"port={port}")) or f":{port} " in a for a in args)

    mine = [proc for proc in psutil.process_iter(["cmdline"]) if ours(proc)]
    for proc in list(mine):  # its agents rename themselves (ray::DashboardAgent): found as children
        try:
            mine += proc.children(recursive=True)
        except psutil.NoSuchProcess:
            pass
    for proc in mine:
        try:
            proc.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(mine, timeout=10)


@pytest.mark.slow
def test_two_node_cluster_runs_trials_on_both_nodes_with_latency_on_the_target(two_node_cluster, tmp_path):
    out = tmp_path / "run"
    os.environ["RAY_AUTH_MODE"] = "token"
    try:
        proc = run_cli("search", "--task", "tests.fixtures.user_tasks:tiny", "--trials", "8", "--steps", "200",
                       "--no-warm-start", "--address", two_node_cluster, "--latency-resource", "target",
                       "--out", str(out))
    finally:
        os.environ.pop("RAY_AUTH_MODE")
    assert proc.returncode == 0, proc.stderr
    trials = pd.read_csv(out / "trials.csv")
    assert set(trials["state"]) == {"COMPLETE"} and trials["node"].nunique() == 2
    run = json.loads((out / "run.json").read_text())
    assert run["settings"]["latency"]["where"].endswith("(target)")
    assert run["latency_noise"]["repeats"] == 5
