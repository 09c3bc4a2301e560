"""The report of a real run, opened in headless Chromium: no console errors, the plots render,
selecting a candidate (table row or plot point) shows its layer plan, and hostile strings stay text."""

import pandas as pd
import pytest

from tests.fixtures.user_tasks import HOSTILE_ERROR, HOSTILE_NAME
from tests.reports.conftest import SCREENSHOTS


@pytest.fixture()
def report_page(chromium, hostile_run):
    page = chromium.new_page(viewport={"width": 1400, "height": 1000})
    problems, dialogs = [], []
    page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.goto((hostile_run / "report.html").as_uri())
    page.wait_for_function("window.autocompressReport !== undefined")
    yield page, problems, dialogs
    page.close()


def _selected_trial(page) -> int:
    return int(page.inner_text("#cand-title").split()[1])


def test_report_renders_without_errors_and_hostile_strings_stay_text(report_page, hostile_run):
    page, problems, dialogs = report_page
    SCREENSHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "report.png"), full_page=True)
    assert problems == [] and dialogs == []
    assert page.inner_text("#task-name") == HOSTILE_NAME
    assert HOSTILE_NAME in page.title()
    assert HOSTILE_ERROR in page.inner_text("#failed-table")
    assert page.evaluate("document.scripts.length") == 3  # plotly.js, the data, the page's own script
    assert page.locator("img").count() == 0
    trials = pd.read_csv(hostile_run / "trials.csv")
    complete = int((trials["state"] == "COMPLETE").sum())
    assert 0 < complete < len(trials)  # both kinds are in the run: the report must show and leave out
    for plot in ("size", "latency", "progress", "fidelity", "importance"):
        assert page.locator(f"#plot-{plot} .main-svg").count() > 0, plot
    assert page.locator("#plot-pareto3d canvas").count() > 0
    # one marker per complete trial plus the teacher (the empty 'selected' ring aside)
    assert page.locator("#plot-size .scatterlayer .point").count() == complete + 2
    assert page.locator("#failed-table tbody tr").count() == len(trials) - complete
    assert page.locator("#facts-list dt").count() > 10 and "autocompress search" in page.inner_text("#facts-list")


def test_selecting_a_candidate_shows_its_layer_plan(report_page, hostile_run):
    page, problems, _ = report_page
    layers = page.evaluate("window.autocompressReport.data.layers")
    row = page.locator("#front-table tbody tr").first
    number = int(row.get_attribute("data-trial"))
    row.click()
    assert _selected_trial(page) == number
    assert page.locator("#cand-layers tbody tr").count() == len(layers)
    assert page.locator("#cand-layers tbody tr td").first.inner_text().startswith(layers[0])
    assert f"--trial {number} --export" in page.inner_text("#cand-export")
    # click a plotted point: the screening trace's first point (trace order: screening, dominated, front, ...)
    x, y, expected = page.evaluate("""() => {
        const t = document.getElementById('plot-size')._fullData[0];  // arrays decoded by plotly.js
        return [t.x[0], t.y[0], t.customdata[0]]; }""")
    data = page.evaluate("window.autocompressReport.data.trials")
    elsewhere = next(n for n, size in zip(data["number"], data["size_bytes"]) if size != x)
    page.evaluate(f"window.autocompressReport.select({elsewhere})")  # so that a click that does nothing shows
    point = page.locator("#plot-size .scatterlayer .trace").first.locator(".point").first
    point.evaluate("p => p.scrollIntoView({block: 'center'})")
    box = point.bounding_box()
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    chosen = _selected_trial(page)
    i = data["number"].index(chosen)
    assert chosen == expected or (data["size_bytes"][i], data["accuracy"][i]) == (x, y)  # ties: same place
    assert page.locator("#cand-layers tbody tr").count() == len(layers)
    assert problems == []


def test_pareto_table_sorts_by_a_clicked_column(chromium, synthetic_report):
    page = chromium.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(synthetic_report.as_uri())
    page.wait_for_function("window.autocompressReport !== undefined")
    sizes_in_table = """() => [...document.querySelectorAll('#front-table tbody tr')].map(
        tr => Number(tr.children[3].textContent.replace(/[^0-9]/g, '')))"""
    page.locator("#front-table th", has_text="size").first.click()
    sizes = page.evaluate(sizes_in_table)
    assert len(sizes) >= 5 and sizes == sorted(sizes)
    page.locator("#front-table th", has_text="size").first.click()
    assert page.evaluate(sizes_in_table) == sorted(sizes, reverse=True)
    page.close()
