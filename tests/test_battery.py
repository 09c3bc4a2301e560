"""A battery of bad inputs to `autocompress search`, as a new user would type them: every one is
one line naming the problem (with the flag the user typed) and exit code 2, no traceback, and
no half-made run directory. Run in-process (they fail before any work starts), plus the few
that need Ray running (a trial that could never be scheduled)."""

import pytest

from autocompress.cli import main
from tests.conftest import one_clear_line, run_cli, search_here
from tests.machine_alone import alone

TINY = "tests.fixtures.user_tasks:tiny"

BAD = [
    (["--lr", "nan"], "--lr must be a finite number above 0"),
    (["--lr", "-1"], "--lr must be a finite number above 0"),
    (["--lr", "inf"], "--lr must be a finite number above 0"),
    (["--feature-distill", "nan"], "--feature-distill must be a finite number at least 0"),
    (["--feature-distill", "-0.5"], "--feature-distill must be a finite number at least 0"),
    (["--trial-timeout", "nan"], "--trial-timeout must be a finite number above 0"),
    (["--trial-timeout", "0"], "--trial-timeout must be a finite number above 0"),
    (["--time-budget", "nan"], "--time-budget must be a finite number above 0"),
    (["--time-budget", "-5"], "--time-budget must be a finite number above 0"),
    (["--cpus-per-trial", "nan"], "--cpus-per-trial must be a finite number above 0"),
    (["--cpus-per-trial", "0"], "--cpus-per-trial must be a finite number above 0"),
    (["--gpus-per-trial", "nan"], "--gpus-per-trial must be a finite number at least 0"),
    (["--gpus-per-trial", "-1"], "--gpus-per-trial must be a finite number at least 0"),
    (["--workers", "0"], "--workers must be a whole number at least 1"),
    (["--steps", "-1"], "--steps must be a whole number at least 0"),
    (["--min-steps", "0"], "--min-steps must be a whole number at least 1"),
    (["--min-steps", "300"], "--min-steps must be below the full fine-tuning steps (300)"),
    (["--eta", "1"], "--eta must be a whole number at least 2"),
    (["--proposals", "--no-sensitivity"], "--proposals needs the sensitivity scan it predicts from"),
    (["--seed", "-1"], "--seed must be a whole number at least 0"),
    (["--seed", "4294967296"], "--seed must be below 2**32"),
    (["--sampler", "grid"], "--sampler 'grid' is unknown; choose one of: tpe, nsga2, random"),
    (["--techniques", ","], "--techniques must be a non-empty subset"),
    (["--techniques", "prune,distill"], "--techniques must be a non-empty subset"),
    (["--trials", "0"], "--trials must be at least 1"),
    (["--address", "127.0.0.1:"], "--address 127.0.0.1:: not HOST:PORT with a port number"),
    (["--address", "head:99999"], "--address head:99999: not HOST:PORT with a port number"),
    (["--max-size", "0.4B"], "--max-size '0.4B' is under one byte"),
    (["--max-size", "-5KB"], "--max-size '-5KB' is not a positive number with a unit"),
    (["--max-size", "5XB"], "unknown unit 'xb'"),
    (["--max-size", "nanKB"], "--max-size 'nanKB' is not a positive number with a unit"),
    (["--max-latency", "0ms"], "--max-latency '0ms' must be a positive number"),
    (["--max-latency", "2 parsecs"], "unknown unit"),
    (["--min-accuracy", "1.5"], "--min-accuracy '1.5' must be in (0, 1]"),
    (["--min-accuracy", "nan"], "--min-accuracy 'nan' must be in (0, 1]"),
    (["--min-accuracy", "0"], "--min-accuracy '0' must be in (0, 1]"),
    (["--resume"], "--out is needed with --resume"),
    (["--workers", "two"], "argument --workers: invalid int value: 'two'"),
    (["--no-guid"], "unrecognized arguments: --no-guid"),  # a typo is not taken for --no-guide
    (["--storage", "sqlite:///no/such/folder/study.db"], "check that the SQLite file's folder exists"),
    (["--storage", "foo://bar"], "that kind of database is unknown"),
    (["--storage", "sqlite://"], "an in-memory SQLite database keeps nothing"),
    (["--storage", "sqlite:///:memory:"], "an in-memory SQLite database keeps nothing"),
    (["--address", ""], "--address must be a Ray cluster's HOST:PORT or 'auto', got ''"),
    (["--address", "  "], "--address must be a Ray cluster's HOST:PORT or 'auto'"),
]


def _run_main(args, capsys) -> tuple[int, str]:
    try:
        code = main(args)
    except SystemExit as exc:  # argparse's own usage errors
        code = exc.code
    return code, capsys.readouterr().err


def test_an_out_name_too_long_for_the_file_system_is_one_line(tmp_path, capsys):
    code, err = _run_main(["search", "--task", TINY, "--out", str(tmp_path / ("r" * 300))], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "choose a shorter one" in err, err


@pytest.mark.parametrize("args, expected", BAD, ids=[" ".join(a) for a, _ in BAD])
def test_a_bad_search_flag_is_one_line_naming_the_flag(args, expected, tmp_path, capsys):
    out = [] if "--resume" in args else ["--out", str(tmp_path / "run")]
    code, err = _run_main(["search", "--task", TINY, *out, *args], capsys)
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert err.startswith("autocompress: error: ") and expected in err, err
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_a_trial_asking_for_more_cpus_than_any_node_has_is_refused_not_a_hang(tmp_path):
    proc = search_here("search", "--task", TINY, "--cpus-per-trial", "64", "--out", str(tmp_path / "run"))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "--cpus-per-trial 64: no Ray node has that many CPUs" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and not (tmp_path / "run").exists()


def test_out_in_a_place_that_cannot_be_written_is_one_line(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    code, err = _run_main(["search", "--task", TINY, "--out", str(blocker / "run")], capsys)
    assert code == 2 and "cannot write there" in err and len(err.strip().splitlines()) == 1, err


def _mounted_tmpfs(folder, options: str):
    """A real tmpfs mounted on ``folder`` (root only: .ci/run runs as root, where it must work)."""
    import os
    import subprocess

    folder.mkdir()
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)], capture_output=True)
    if made.returncode != 0:
        if os.geteuid() == 0:
            pytest.fail(f"root could not mount a tmpfs: {made.stderr.decode()}")
        pytest.skip("mounting a file system needs root (.ci/run runs as root)")
    return folder


@pytest.fixture
def small_disk(tmp_path):
    """A real 150 KB file system, where a search runs out of space."""
    import subprocess

    yield _mounted_tmpfs(tmp_path / "disk", "size=150k")
    subprocess.run(["umount", "-l", str(tmp_path / "disk")], check=False)


def test_out_on_a_read_only_file_system_is_one_line(tmp_path, cli):
    import subprocess

    disk = _mounted_tmpfs(tmp_path / "ro", "ro,size=1m")  # read-only even for root
    try:
        line = one_clear_line(cli("search", "--task", TINY, "--out", disk / "run"))
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)
    assert "cannot write there" in line and "Read-only file system" in line


@pytest.mark.slow
@pytest.mark.alone
def test_address_auto_without_a_cluster_is_one_line_and_leaves_no_run_directory(tmp_path):
    with alone():  # no Ray of this session or of another pytest-xdist worker for 'auto' to find
        proc = run_cli("search", "--task", TINY, "--address", "auto", "--out", str(tmp_path / "run"))
    assert "--address auto" in one_clear_line(proc)
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_a_full_disk_during_a_search_is_one_line_that_says_how_to_continue(small_disk):
    out = small_disk / "run"
    proc = search_here("search", "--task", TINY, "--trials", "6", "--steps", "3", "--out", str(out))
    assert proc.returncode == 2, proc.stdout + proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr[-2000:]
    assert "cannot write the results in" in proc.stderr and "free space" in proc.stderr


@pytest.mark.slow
def test_a_search_killed_before_it_recorded_anything_is_started_again_by_the_same_command(tmp_path, capsys):
    """A kill while the teacher is measured leaves the lock, a half teacher folder and perhaps an
    empty study.db, and no run.json: --resume says to run without it, and the same command
    takes the folder again. A folder holding anything else is still refused."""
    out = tmp_path / "run"
    (out / "teacher").mkdir(parents=True)
    (out / "teacher" / "model.onnx").write_bytes(b"half a fil")
    (out / ".lock").write_text("12345")
    (out / "study.db").write_bytes(b"")
    code, err = _run_main(["search", "--task", TINY, "--out", str(out), "--trials", "1", "--resume"], capsys)
    assert code == 2 and "stopped before it recorded anything" in err and "without --resume" in err, err
    assert (out / "teacher" / "model.onnx").read_bytes() == b"half a fil"  # a refusal changes nothing
    proc = search_here("search", "--task", TINY, "--out", str(out), "--trials", "1", "--no-sensitivity")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (out / "run.json").is_file() and (out / "teacher" / "model.onnx").stat().st_size > 100
    mine = tmp_path / "mine"
    (mine / "teacher").mkdir(parents=True)
    (mine / "notes.txt").write_text("keep")
    code, err = _run_main(["search", "--task", TINY, "--out", str(mine), "--trials", "1"], capsys)
    assert code == 2 and "not an empty folder" in err and (mine / "notes.txt").read_text() == "keep"


@pytest.mark.parametrize("task, says", [("metric_raises", "raised ZeroDivisionError"), ("metric_nan", "returned nan")])
def test_inspect_sensitivity_with_a_metric_that_fails_on_the_teacher_is_one_line(task, says, capsys):
    code, err = _run_main(["inspect", "--task", f"tests.fixtures.user_tasks:{task}", "--sensitivity"], capsys)
    lines = [line for line in err.splitlines() if line.startswith("autocompress: error: ")]
    assert code == 2 and "Traceback" not in err and len(lines) == 1, err
    assert "the teacher of" in lines[0] and says in lines[0], err


def test_a_cache_folder_that_cannot_be_written_is_one_line_before_any_training(tmp_path, monkeypatch, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("AUTOCOMPRESS_CACHE", str(blocker))
    code, err = _run_main(["inspect", "--task", "digits"], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "the cache folder" in err and "AUTOCOMPRESS_CACHE" in err and "training" not in err, err


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("tiny") / "run"
    proc = search_here("search", "--task", TINY, "--trials", "2", "--steps", "2", "--no-sensitivity", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    return out


@pytest.mark.slow
def test_report_of_a_run_on_a_read_only_file_system_is_one_line(tiny_run, tmp_path, cli):
    import shutil
    import subprocess

    disk = _mounted_tmpfs(tmp_path / "ro", "size=20m")
    try:
        shutil.copytree(tiny_run, disk / "run")
        subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True)
        line = one_clear_line(cli("report", disk / "run"))
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)
    assert "cannot write the report" in line and "Read-only file system" in line and "-o" in line


def test_best_export_onto_a_full_disk_is_one_line_and_leaves_no_half_folder(tiny_run, small_disk, cli):
    import os

    fd = os.open(small_disk / "filler", os.O_WRONLY | os.O_CREAT)
    try:  # the disk filled to its last byte
        while os.write(fd, b"\0" * 512):
            pass
    except OSError:
        pass
    finally:
        os.close(fd)
    line = one_clear_line(cli("best", tiny_run, "--export", small_disk / "shipped"))
    assert "No space left on device" in line or "no space" in line.lower(), line
    assert sorted(p.name for p in small_disk.iterdir()) == ["filler"]
