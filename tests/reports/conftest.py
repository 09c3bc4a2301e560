"""A real headless Chromium (Debian's package) driven by Playwright, and a real small run whose
task name and error messages try to run script."""

import os
import shutil
from pathlib import Path

import pytest

from tests.conftest import ROOT, run_cli, search_here

CHROMIUM = os.environ.get("AUTOCOMPRESS_CHROMIUM", "/usr/bin/chromium")
# no connections beyond this machine; a fresh profile every time
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--enable-unsafe-swiftshader",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--no-first-run", "--disable-quic"]
SCREENSHOTS = ROOT / "test-artifacts"


@pytest.fixture(scope="session")
def chromium(tmp_path_factory):
    """A browser; skipped where Chromium is missing unless AUTOCOMPRESS_REQUIRE_BROWSER=1 (as in CI)."""
    missing = None
    if not Path(CHROMIUM).exists() and not shutil.which(CHROMIUM):
        missing = f"no Chromium at {CHROMIUM} (Debian: apt-get install chromium; .ci/run installs it)"
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing = missing or "playwright is not installed (pip install -e '.[test]')"
    if missing:
        if os.environ.get("AUTOCOMPRESS_REQUIRE_BROWSER") == "1":
            pytest.fail(missing)
        pytest.skip(missing)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS,
                                             env={**os.environ, "HOME": str(tmp_path_factory.mktemp("home"))})
        yield browser
        browser.close()


@pytest.fixture(scope="session")
def hostile_run(tmp_path_factory):
    """A real search of the tiny task named <script>alert(1)</script>, whose model fails (with
    markup in the error) when its stem is pruned hard; with a budget, two rungs and an extra latency profile."""
    out = tmp_path_factory.mktemp("hostile") / "run"
    proc = search_here("search", "--task", "tests.fixtures.user_tasks:hostile", "--trials", "12", "--steps", "12",
                       "--min-steps", "4", "--max-size", "5KB", "--min-accuracy", "0.2",
                       "--latency-profile", "wide:threads=2,batch=4", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    return out


@pytest.fixture(scope="session")
def synthetic_run(tmp_path_factory):
    """A stored run of 300 synthetic trials (benchmarks/synthetic_run.py): more than fANOVA's share."""
    from benchmarks.synthetic_run import write_synthetic_run

    return write_synthetic_run(tmp_path_factory.mktemp("synthetic") / "run", trials=300)


@pytest.fixture(scope="session")
def synthetic_report(synthetic_run):
    proc = run_cli("report", str(synthetic_run))
    assert proc.returncode == 0, proc.stderr
    return synthetic_run / "report.html"
