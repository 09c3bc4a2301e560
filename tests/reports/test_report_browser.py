"""The report of a real run, opened in headless Chromium: no console errors, the plots render,
selecting a candidate (table row or plot point) shows its layer plan, and hostile strings stay text."""

import re
import shlex

import pandas as pd
import pytest

from autocompress.reports.layer_plan import channels_from_notes
from autocompress.search.best import NothingFeasible, load_run
from autocompress.budget import Budget, parse_accuracy, parse_latency, parse_size
from autocompress.task import UsageError
from tests.conftest import run_cli

from tests.fixtures.user_tasks import HOSTILE_ERROR, HOSTILE_NAME
from tests.reports.conftest import SCREENSHOTS

PRUNED = re.compile(r"pruned stem 8->(\d+)")


def _load(page, run):
    page.goto((run / "report.html").as_uri())
    page.wait_for_function("window.autocompressReport !== undefined")
    return page


@pytest.fixture(scope="module")
def untouched_page(chromium, hostile_run):
    """One page of the report for the tests that only call its functions (a load costs ~3-5 s)."""
    page = _load(chromium.new_page(viewport={"width": 1400, "height": 1000}), hostile_run)
    yield page
    page.close()


@pytest.fixture()
def report_page(chromium, hostile_run):
    page = chromium.new_page(viewport={"width": 1400, "height": 1000})
    problems, dialogs = [], []
    page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    yield _load(page, hostile_run), problems, dialogs
    page.close()


def _selected_trial(page) -> int:
    return int(page.inner_text("#cand-title").split()[1])


@pytest.mark.slow
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
    run = load_run(hostile_run)
    wide = run.front("wide")  # the extra latency profile's section: its plot, its front, a row selects its trial
    assert page.is_visible("#profiles") and page.locator("#profile-list .main-svg").count() > 0
    rows = page.locator("#profile-list tbody tr")
    assert rows.count() == len(wide) > 0
    last = int(wide["number"].iloc[-1])
    rows.nth(len(wide) - 1).click()
    assert _selected_trial(page) == last
    # one marker per complete trial, the teacher and the selected ring, plus a green ring per candidate
    # within the run's budget (the filter starts with it) and the diamond on best's pick
    run = load_run(hostile_run)
    budget = Budget(**run.info["settings"]["budget"])
    within = sum(budget.feasible(row) for _, row in run.candidates.iterrows())
    assert within > 0 and page.input_value("#filter-size") == "5KB" and page.input_value("#filter-accuracy") == "0.2"
    assert page.locator("#plot-size .scatterlayer .point").count() == complete + 2 + within + 1
    assert page.locator("#failed-table tbody tr").count() == len(trials) - complete
    assert page.locator("#facts-list dt").count() > 10 and "autocompress search" in page.inner_text("#facts-list")


@pytest.mark.slow
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
    # click a plotted point of the lower-rung trace (trace order: lower rungs, dominated, front, ...): the one
    # farthest from any other point on the page, so that the click cannot land on a neighbour
    index, x, y, expected = page.evaluate("""() => {
        const gd = document.getElementById('plot-size'), xa = gd._fullLayout.xaxis, ya = gd._fullLayout.yaxis;
        const pixel = (t, i) => [xa.c2p(t.x[i]), ya.c2p(t.y[i])];  // arrays decoded by plotly.js
        const all = gd._fullData.flatMap(t => Array.from(t.x || [], (_, i) => pixel(t, i)));
        const t = gd._fullData[0];
        let best = 0, widest = -1;
        for (let i = 0; i < t.x.length; i++) {
            const [px, py] = pixel(t, i);
            const gaps = all.filter(([ax, ay]) => ax !== px || ay !== py).map(([ax, ay]) => Math.hypot(ax - px, ay - py));
            const gap = Math.min(Infinity, ...gaps);
            if (gap > widest) { widest = gap; best = i; }
        }
        return [best, t.x[best], t.y[best], t.customdata[best]]; }""")
    data = page.evaluate("window.autocompressReport.data.trials")
    elsewhere = next(n for n, size in zip(data["number"], data["size_bytes"]) if size != x)
    page.evaluate(f"window.autocompressReport.select({elsewhere})")  # so that a click that does nothing shows
    point = page.locator("#plot-size .scatterlayer .trace").first.locator(".point").nth(index)
    point.evaluate("p => p.scrollIntoView({block: 'center'})")
    box = point.bounding_box()
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    chosen = _selected_trial(page)
    i = data["number"].index(chosen)
    assert chosen == expected or (data["size_bytes"][i], data["accuracy"][i]) == (x, y)  # ties: same place
    assert page.locator("#cand-layers tbody tr").count() == len(layers)
    assert problems == []


@pytest.mark.slow
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


def _layer_cells(page) -> dict[str, list[str]]:
    return page.evaluate("""() => Object.fromEntries([...document.querySelectorAll('#cand-layers tbody tr')].map(
        tr => [tr.dataset.layer, [...tr.children].map(td => td.textContent)]))""")


@pytest.mark.slow
def test_layer_table_shows_the_channels_each_layer_keeps_through_its_group(report_page, hostile_run):
    page, problems, _ = report_page
    trials = pd.read_csv(hostile_run / "trials.csv")
    complete = trials[trials["state"] == "COMPLETE"]
    pruned = {int(r["number"]): int(PRUNED.search(r["notes"]).group(1)) for _, r in complete.iterrows()
              if isinstance(r["notes"], str) and PRUNED.search(r["notes"])}  # what the compressor did
    untouched = [int(r["number"]) for _, r in complete.iterrows() if not isinstance(r["notes"], str)]
    assert pruned and untouched
    for number, kept in pruned.items():
        page.evaluate(f"window.autocompressReport.select({number})")
        cells = _layer_cells(page)
        share = f"{round(kept / 8 * 1000) / 10:g}% ({kept} of 8)"
        assert cells["stem"][1] == share, number
        # block.0 has no prune entry of its own: its channels go with stem's (a residual add)
        assert cells["block.0"][1] == f"{share} via stem", number
        assert cells["fc"][1] == "all"  # the output layer keeps its classes
    page.evaluate(f"window.autocompressReport.select({untouched[0]})")
    assert [_layer_cells(page)[name][1] for name in ("stem", "block.0")] == ["all 8", "all 8"]
    assert problems == []


def _pick_shown(page) -> int | None:
    found = re.search(r"best picks trial (\d+)", page.inner_text("#filter-result"))
    return int(found.group(1)) if found else None


def _fill(page, size="", latency="", accuracy=""):
    for selector, text in (("#filter-size", size), ("#filter-latency", latency), ("#filter-accuracy", accuracy)):
        page.fill(selector, text)


@pytest.mark.slow
def test_budget_filter_picks_what_best_picks_and_its_command_exports_it(report_page, hostile_run, tmp_path):
    page, problems, _ = report_page
    run = load_run(hostile_run)
    cands = run.candidates.sort_values("size_bytes")
    assert cands["accuracy"].nunique() < len(cands)  # accuracy ties: the tie-breaks are exercised
    second = int(cands["size_bytes"].iloc[1])
    fastest = float(cands["latency_ms"].min())
    budgets = [("", "", ""), (f"{second} B", "", ""), (f"{second / 1024:.4f}KiB", f"{fastest * 1000:.4f}us", "40%"),
               ("", f"{fastest * 2:.6f}ms", "0.3"), ("1MB", "1s", "1")]
    for size, latency, accuracy in budgets:
        _fill(page, size, latency, accuracy)
        budget = Budget.parse(max_size=size or None, max_latency=latency or None, min_accuracy=accuracy or None)
        within = [budget.feasible(row) for _, row in run.candidates.iterrows()]
        rings = page.evaluate("document.getElementById('plot-size')._fullData.find(t => t.name === 'within the budget').x.length")
        assert rings == sum(within), budget
        try:
            expected = run.best(budget=budget).number
        except NothingFeasible:
            expected = None
        assert _pick_shown(page) == expected, budget
        command = page.inner_text("#filter-command")
        if expected is None:
            assert "--export" not in command and "No full-fidelity candidate meets this budget" in page.inner_text("#filter-result")
        else:
            assert _selected_trial(page) == expected and command.endswith(f"--export shipped/trial-{expected}")
    # the budget filter in use, for a person to look at
    _fill(page, f"{second} B", "", "40%")
    expected = run.best(budget=Budget.parse(max_size=f"{second} B", min_accuracy="40%")).number
    SCREENSHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "report-budget-filter.png"), full_page=True)
    command = shlex.split(page.inner_text("#filter-command"))
    assert command[:3] == ["autocompress", "best", str(hostile_run)] and f"{second}B" in command
    proc = run_cli(*command[1:], cwd=tmp_path)  # the command as shown, run as a user would
    assert proc.returncode == 0, proc.stderr
    assert f"trial {expected}" in proc.stdout
    shipped = tmp_path / "shipped" / f"trial-{expected}" / "model.onnx"
    assert shipped.read_bytes() == run.candidate(expected).artifact.read_bytes()
    assert problems == []


@pytest.mark.slow
def test_budget_filter_nothing_feasible_and_bad_input(report_page, hostile_run):
    page, problems, dialogs = report_page
    _fill(page, "1B")
    assert _pick_shown(page) is None and "--export" not in page.inner_text("#filter-command")
    assert "No full-fidelity candidate meets this budget" in page.inner_text("#filter-result")
    assert page.evaluate("document.getElementById('plot-size')._fullData.find(t => t.name === \"best's pick\").x.length") == 0
    hostile = "<img src=x onerror=alert(3)>KB"
    _fill(page, "5 XB", "", hostile)
    with pytest.raises(UsageError) as size_error:
        parse_size("5 XB")
    with pytest.raises(UsageError) as accuracy_error:
        parse_accuracy(hostile)
    assert page.inner_text("#filter-error") == f"{size_error.value}; {accuracy_error.value}"
    assert page.get_attribute("#filter-size", "class") == "invalid" and page.get_attribute("#filter-latency", "class") in ("", None)
    assert page.inner_text("#filter-command") == "" and page.locator("#budget-filter img").count() == 0
    page.click("#filter-run-budget")
    assert page.inner_text("#filter-error") == "" and _pick_shown(page) == load_run(hostile_run).best(
        budget=Budget(**load_run(hostile_run).info["settings"]["budget"])).number
    assert problems == [] and dialogs == []


PARSE_CASES = {
    "size": (parse_size, ["50KB", "1.5 MiB", "800b", "2e3B", "0.5KiB", " 7 kb ", "2.5B", "3.5B", ".5MB", "abc", "5 XB",
                          "-1KB", "0B", "1e400B", "KB", "1,000B", "5.", "12"]),
    "latency": (parse_latency, ["2ms", "250us", "0.01s", "1e-3s", "1.5 MS", "3", "ms", "0ms", "2 min", "0.0155ms",
                                      "20.9655us"]),
    "accuracy": (parse_accuracy, ["0.97", "97%", "1", "0", "1.5", "abc", "97%%", " 0.5 ", "1e-1", "nan", "inf",
                                  "0.9_7", "+0.5", "50 %", "", "0x1", ".5"]),
}


@pytest.mark.slow
@pytest.mark.parametrize("axis", PARSE_CASES)
def test_the_page_parses_budgets_as_the_cli_does(untouched_page, axis):
    page = untouched_page
    parse, texts = PARSE_CASES[axis]
    shown = page.evaluate(f"""texts => texts.map(t => {{
        try {{ return {{value: window.autocompressReport.parse.{axis}(t)}}; }} catch (e) {{ return {{error: e.message}}; }} }})""",
                          texts)
    for text, answer in zip(texts, shown):
        try:
            assert answer == {"value": parse(text)}, text
        except UsageError as exc:
            assert answer == {"error": str(exc)}, text


def _hover_cell(page, row: str, column: str) -> str:
    """Move the mouse onto one heat-map cell; the hover label's text."""
    x, y = page.evaluate("""([row, column]) => {
        const div = document.getElementById('plot-sensitivity'), L = div._fullLayout, box = div.getBoundingClientRect();
        const t = div._fullData[0];
        return [box.left + L.xaxis._offset + L.xaxis.l2p(t.x.indexOf(column)),
                box.top + L.yaxis._offset + L.yaxis.l2p(t.y.indexOf(row))]; }""", [row, column])
    page.mouse.move(0, 0)  # off the plot: the previous label goes
    page.wait_for_selector("#plot-sensitivity .hoverlayer .hovertext", state="detached")
    page.mouse.move(x, y)
    page.wait_for_selector("#plot-sensitivity .hoverlayer .hovertext")
    return page.locator("#plot-sensitivity .hoverlayer .hovertext").first.text_content()  # SVG: no inner_text


@pytest.mark.slow
def test_sensitivity_heat_map_shows_every_cell_and_hover_tells_size_and_latency(report_page, hostile_run):
    from autocompress.search.sensitivity import read_table

    page, problems, dialogs = report_page
    page.locator("#plot-sensitivity").scroll_into_view_if_needed()
    table = read_table(hostile_run)
    cells, teacher = table[table["knob"] != "teacher"], table[table["knob"] == "teacher"].iloc[0]
    trace = page.evaluate("""() => { const t = document.getElementById('plot-sensitivity')._fullData[0];
        return {type: t.type, x: t.x, y: t.y, z: t.z, hover: t.hovertext}; }""")
    assert trace["type"] == "heatmap" and page.locator("#plot-sensitivity .main-svg").count() > 0
    assert trace["y"][:3] == ["stem", "block.0", "fc"] and trace["x"][:3] == ["int8", "int4", "int2"]
    colored = sorted(v for line in trace["z"] for v in line if v is not None)
    ok = cells[cells["error"].isna()]
    assert colored == pytest.approx(sorted(-ok["accuracy_delta"] * 100))  # colour = accuracy drop in points
    failed = [h for line in trace["hover"] for h in line if "FAILED" in h]
    assert len(failed) == cells["error"].notna().sum() == 2 and len(colored) + len(failed) == len(cells)
    stem_int8 = cells[(cells["knob"] == "bits/stem") & (cells["value"] == 8)].iloc[0]
    text = _hover_cell(page, "stem", "int8")
    assert f"size {stem_int8['size_bytes']:,.0f} B" in text and f"latency {stem_int8['latency_ms']:.4f} ms" in text
    change = stem_int8["size_bytes"] - teacher["size_bytes"]
    assert f"change {change:+,.4g} ({change / teacher['size_bytes']:+.1%}) B" in text
    assert HOSTILE_ERROR in _hover_cell(page, "stem", "prune 75.0%")  # shown as text, never run
    assert "2 failed" in page.inner_text("#sensitivity-note")
    SCREENSHOTS.mkdir(exist_ok=True)
    page.locator("#sensitivity").screenshot(path=str(SCREENSHOTS / "report-sensitivity.png"))
    assert problems == [] and dialogs == []


@pytest.mark.slow
def test_a_run_without_a_scan_says_so_instead_of_a_heat_map(chromium, synthetic_report):
    page = chromium.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(synthetic_report.as_uri())
    page.wait_for_function("window.autocompressReport !== undefined")
    assert "has no sensitivity scan" in page.inner_text("#sensitivity-note")
    assert page.locator("#plot-sensitivity .main-svg").count() == 0
    page.close()
