"""Report generation at scale: a stored study of 5,000 synthetic trials (goal: the report in < 10 s).

    python benchmarks/report_scale.py [--trials 5000] [--repeats 3]

Measures `autocompress report RUN` as a user runs it (the whole command, imports included),
the file size, and, where Chromium is installed, how long the page takes to open and render
in headless Chromium and whether it logs any error. Writes benchmarks/results/report_scale.json.
"""

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import machine, write_result
from synthetic_run import write_synthetic_run

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--enable-unsafe-swiftshader",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"]


def open_in_chromium(report: Path) -> dict:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        errors = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        clock = time.perf_counter()
        page.goto(report.as_uri())
        page.wait_for_function("window.autocompressReport !== undefined", timeout=120_000)
        seconds = time.perf_counter() - clock
        points = page.locator("#plot-size .scatterlayer .point").count()
        browser.close()
    return {"open_and_render_s": round(seconds, 2), "console_errors": errors, "points_in_size_plot": points}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=5000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        run = write_synthetic_run(Path(tmp) / "run", trials=args.trials)
        seconds = []
        for _ in range(args.repeats):
            clock = time.perf_counter()
            proc = subprocess.run([sys.executable, "-m", "autocompress.cli", "report", str(run)],
                                  capture_output=True, text=True)
            seconds.append(round(time.perf_counter() - clock, 2))
            if proc.returncode:
                sys.exit(proc.stderr)
            print(proc.stdout.strip())
        report = run / "report.html"
        browser = open_in_chromium(report) if Path(CHROMIUM).exists() else {"skipped": "no chromium"}
        result = {
            "command": "python benchmarks/report_scale.py " + " ".join(sys.argv[1:]),
            "machine": machine(),
            "trials": args.trials,
            "report_command_s": seconds,
            "report_command_median_s": statistics.median(seconds),
            "goal_s": 10,
            "file_bytes": report.stat().st_size,
            "browser": browser,
        }
    print(write_result("report_scale", result))
    print(result)


if __name__ == "__main__":
    main()
