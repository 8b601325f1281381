"""The analyst's and the engineer's paths through the UI, in Chromium, as the README tells them.

One small project is ingested and fitted in-process (the demo's runs, shortened) while
`conversionflow ui` starts; the browser then does what a person does. With
CONVERSIONFLOW_SCREENSHOTS=docs the README's screenshots are written there.
"""

import contextlib
import json
import math
import os
import re
import shutil
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

import dagster as dg
import pytest
import yaml

from conversionflow_dagster.code_location import build_definitions
from conversionflow_dagster.runner import execute_plan, pipeline_plan
from conversionflow_tests.conftest import (
    CHROMIUM_ARGS,
    REPO,
    SMALL_MONTHS,
    chromium_executable,
    free_port,
    start_ui,
    wait_for_ui,
    write_config,
)

RECIPE = re.compile(r"```yaml\n(# recipe: ([^(\n]+?) \(.*?)```", re.S)
MONTH = "2023-05-01"  # fitted before the UI opens; the analyst plans it
FAILING_MONTH = "2023-04-01"  # the engineer fits it with too few draws
# Short fits that pass: the ESS gate alone tells 2 x 100 draws (min bulk ESS about 90 here) from
# 2 x 10 (about 8); a failed ESS gate never climbs the convergence ladder (more draws, not more
# care, is its cure), so the failing fit is one fit. R-hat and divergences do not decide here.
SETTINGS = {
    "model.chains": 2,
    "model.warmup": 100,
    "model.draws": 100,
    "model.gates": {
        "max_r_hat": 10.0,
        "min_ess_bulk": 40,
        "min_ess_tail": 0,
        "max_divergences": 10**6,
    },
}
MATERIALISED = """
query Mats($key: AssetKeyInput!, $partitions: [String!]) {
  assetOrError(assetKey: $key) { ... on Asset { assetMaterializations(partitions: $partitions) {
    runId } } }
}"""
ASSET_KEYS = "{ assetNodes { assetKey { path } } }"
BACKFILLS = "{ partitionBackfillsOrError { ... on PartitionBackfills { results { id } } } }"
RUNS_OF_MONTH = """
query Month($partition: String!) {
  runsOrError(filter: {tags: [{key: "dagster/partition", value: $partition}]}) {
    ... on Runs { results { runId status } }
  }
}"""
FAILURE_TEXT = """
query Log($id: ID!) {
  logsForRun(runId: $id) { ... on EventConnection { events {
    ... on ExecutionStepFailureEvent { message error { message causes { message } } }
  } } }
}"""


def launchpad_recipes() -> dict[str, str]:
    """The README's launchpad recipes by name, as analysts copy them (comment line and all)."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    return {name: body for body, name in RECIPE.findall(text)}


def documented_clicks() -> int:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    return int(re.search(r"opened report that is (\d+) clicks", text)[1])


def test_the_readme_recipes_are_valid_launchpad_config(project):
    recipes = launchpad_recipes()
    assert set(recipes) == {"new budget", "new scenarios", "refit with more draws"}
    defs = build_definitions(project, project / "configs" / "test.yaml")
    job = defs.resolve_implicit_global_asset_job_def()
    for body in recipes.values():
        dg.validate_run_config(job, yaml.safe_load(body))  # raises on an unknown or bad field


def graphql(port: int, query: str, variables: dict | None = None) -> dict:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql",
        data=json.dumps({"query": query, "variables": variables or {}}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        body = json.loads(response.read())
    assert "errors" not in body, body["errors"]
    return body["data"]


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except OSError:
            pass
        time.sleep(1)
    raise AssertionError(f"timed out waiting for {what}")


def dismiss_first_visit_dialog(page) -> None:
    """A fresh instance greets the first visitor with a newsletter dialog."""
    from playwright.sync_api import TimeoutError as NoDialog

    with contextlib.suppress(NoDialog):  # an instance that has had a visitor shows none
        page.get_by_role("button", name="Skip").click(timeout=10_000)


def expand_all_groups(page) -> None:
    """Open every collapsed group; a reload then fits the whole expanded graph on screen."""
    collapsed = page.locator("[class*=collapsedGroupNodeBox]")
    page.wait_for_timeout(3_000)
    for _ in range(4):
        if not collapsed.count():
            break
        while collapsed.count():
            collapsed.first.click()
            page.wait_for_timeout(800)
        page.reload()
        page.wait_for_timeout(4_000)


@pytest.fixture(scope="module")
def ui(tmp_path_factory, small_sample_dir):
    """`conversionflow ui` on a small project whose months are ingested and May fitted."""
    executable = chromium_executable()
    root = tmp_path_factory.mktemp("ui_project")
    shutil.copytree(small_sample_dir, root / "data" / "sample")
    config = write_config(root, **SETTINGS)
    home = root / "dagster_home"
    home.mkdir()
    port, log = free_port(), root / "ui.log"
    with (
        pytest.MonkeyPatch.context() as env,
        dg.DagsterInstance.from_config(str(home)) as instance,
    ):
        env.setenv("CONVERSIONFLOW_ROOT", str(root))  # also the JAX cache the UI's fits use
        env.setenv("CONVERSIONFLOW_CONFIG", "configs/test.yaml")
        instance.get_runs(limit=1)  # the instance's SQLite files exist before the UI opens them
        server = start_ui(port, home, log=log, start_new_session=True)
        try:  # the demo's runs, shortened, while the UI starts
            plan = pipeline_plan(SMALL_MONTHS, fit_months=[MONTH[:7]], stage2=False)
            defs = build_definitions(root, config)
            summary = execute_plan(defs, instance, plan, log_level="WARNING")
            assert summary.success, summary.failures()
            try:
                wait_for_ui(port, server)
            except AssertionError as error:
                raise AssertionError(f"{error}; it wrote:\n{log.read_text()[-4000:]}") from None
            yield {"port": port, "root": root, "chromium": executable}
        finally:
            server.send_signal(signal.SIGTERM)  # stops dagster dev and the reports server
            try:
                server.wait(timeout=120)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def browser(ui):
    """One page for the module: a fresh browser would be greeted by the first-visit dialog."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=ui["chromium"], args=CHROMIUM_ARGS)
        page = chromium.new_page(viewport={"width": 1600, "height": 1000})
        page.set_default_timeout(30_000)
        page.goto(f"http://127.0.0.1:{ui['port']}/assets")
        dismiss_first_visit_dialog(page)
        yield page
        chromium.close()


def screenshot(page, name: str, tmp_path: Path) -> None:
    folder = Path(os.environ.get("CONVERSIONFLOW_SCREENSHOTS") or tmp_path)
    path = folder / name
    page.wait_for_timeout(1_000)  # dialogs fade in
    page.screenshot(path=str(path))
    assert path.stat().st_size > 20_000


class Clicks:
    """Counts what a person clicks on the way."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, locator) -> None:
        locator.click()
        self.count += 1


def wait_materialised(port: int, asset: str, partition: str, timeout: float = 300) -> None:
    key = {"path": ["sample", asset]}

    def done():
        found = graphql(port, MATERIALISED, {"key": key, "partitions": [partition]})
        return found["assetOrError"]["assetMaterializations"]

    wait_for(done, timeout, f"{asset} {partition}")


def paste_config(page, click: Clicks, text: str) -> None:
    """Config, Add config, and the YAML typed into the editor as pasted (no auto-indent)."""
    click(page.get_by_text("Config", exact=True))
    click(page.get_by_role("button", name="Add config"))
    click(page.locator(".CodeMirror"))
    page.keyboard.insert_text(text)


@pytest.mark.slow
def test_an_analyst_plans_a_new_budget_and_opens_its_report(ui, browser, tmp_path):
    page, port, click = browser, ui["port"], Clicks()
    budget = yaml.safe_load(launchpad_recipes()["new budget"])
    amount = budget["ops"]["budget_allocation"]["config"]["budget"]

    page.goto(f"http://127.0.0.1:{port}/assets/sample/budget_allocation")
    click(page.get_by_role("button", name="Materialize…"))
    click(page.get_by_role("button", name="Latest", exact=True))
    paste_config(page, click, launchpad_recipes()["new budget"])
    page.get_by_text("No errors").wait_for()
    screenshot(page, "ui-launchpad.png", tmp_path)
    click(page.get_by_role("button", name="Save config"))
    click(page.get_by_role("button", name="Launch 1 run"))
    wait_materialised(port, "budget_allocation", MONTH)

    click(page.get_by_role("link", name="sample / attribution_report"))
    click(page.get_by_role("button", name="Materialize…"))
    click(page.get_by_role("button", name="Latest", exact=True))
    click(page.get_by_role("button", name="Launch 1 run"))
    wait_materialised(port, "attribution_report", MONTH)

    page.reload()
    key = page.get_by_role("cell", name="raw_improvement", exact=True)
    raw = float(page.get_by_role("row").filter(has=key).inner_text().split()[-1])
    assert raw == float(f"{raw:.2g}")  # rounded for people; the JSON keeps the exact value
    click(page.get_by_text("[Show Markdown]"))
    summary = page.get_by_role("dialog")
    headline = summary.get_by_role("row").filter(has_text="Improvement on modelled sales")
    mean, interval, p_positive = headline.inner_text().split("\t")[1:]
    assert math.isclose(float(mean.rstrip("%")) / 100, raw, rel_tol=0.05, abs_tol=0.001)
    assert " to " in interval and p_positive.endswith("%")
    assert f"budget {amount:,} over 13 weeks" in summary.inner_text()
    screenshot(page, "ui-report-summary.png", tmp_path)
    click(summary.get_by_role("button", name="Close"))

    link = page.locator(f"a[href^='http://127.0.0.1:{port + 1}/sample/2023-05/']").first
    with page.context.expect_page() as opened:
        click(link)
    report = opened.value
    report.wait_for_load_state()
    assert re.search(rf"/attribution_report_2023-05_{amount}_[0-9a-f]{{8}}\.html$", report.url)
    assert report.locator("#plan-budget").inner_text() == f"{amount:,}"
    report.close()
    assert click.count == documented_clicks()

    page.goto(f"http://127.0.0.1:{port}/asset-groups")  # the populated instance, all of it
    expand_all_groups(page)
    page.get_by_text("attribution_report", exact=True).first.wait_for()
    defs = build_definitions(ui["root"], ui["root"] / "configs" / "test.yaml")
    served = {tuple(n["assetKey"]["path"]) for n in graphql(port, ASSET_KEYS)["assetNodes"]}
    assert served == {tuple(k.path) for k in defs.resolve_asset_graph().get_all_asset_keys()}
    screenshot(page, "ui-asset-graph.png", tmp_path)


@pytest.mark.slow
def test_an_engineer_backfills_months_and_sees_a_month_fail_its_gates(ui, browser, tmp_path):
    page, port, root, click = browser, ui["port"], ui["root"], Clicks()

    page.goto(f"http://127.0.0.1:{port}/assets/sample/raw_spend")
    click(page.get_by_role("button", name="Materialize…"))
    months = page.get_by_placeholder("ex: 2023-01-01", exact=False)
    months.fill("[2023-01-01...2023-03-01]")
    months.press("Enter")
    page.get_by_text("3 partitions").wait_for()
    click(page.get_by_role("button", name="Launch backfill"))

    def backfills():
        return graphql(port, BACKFILLS)["partitionBackfillsOrError"]["results"]

    backfill = wait_for(backfills, 30, "the backfill")[0]["id"]

    refit = yaml.safe_load(launchpad_recipes()["refit with more draws"])
    refit["ops"]["posterior_trace"]["config"].update(warmup=10, draws=10)  # far too few
    def runs_of_month() -> list[dict]:
        return graphql(port, RUNS_OF_MONTH, {"partition": FAILING_MONTH})["runsOrError"]["results"]

    earlier = {r["runId"] for r in runs_of_month()}  # the month's ingest, before the UI opened
    page.goto(f"http://127.0.0.1:{port}/assets/sample/posterior_trace")
    click(page.get_by_role("button", name="Materialize…"))
    months = page.get_by_placeholder("ex: 2023-01-01", exact=False)
    months.fill(FAILING_MONTH)
    months.press("Enter")
    paste_config(page, click, yaml.safe_dump(refit))
    click(page.get_by_role("button", name="Save config"))
    click(page.get_by_role("button", name="Launch 1 run"))
    page.get_by_text("Launched run").wait_for()  # leaving earlier would cancel the launch

    page.goto(f"http://127.0.0.1:{port}/runs/b/{backfill}")
    shown = page.locator("body")
    reload_until(page, lambda: "100% completed" in shown.inner_text(), 300)
    # targeted, in progress, succeeded, failed: all three months done, none failed
    assert re.search(r"100% completed\s+3\s+0\s+3\s+0\b", shown.inner_text())
    screenshot(page, "ui-backfill.png", tmp_path)

    def finished_run():
        done = {"SUCCESS", "FAILURE", "CANCELED"}
        runs = [r for r in runs_of_month() if r["runId"] not in earlier]
        return next((r for r in runs if r["status"] in done), None)

    run = wait_for(finished_run, 300, "the fit of the month with too few draws")
    assert run["status"] == "FAILURE", run
    run_id = run["runId"]
    page.goto(f"http://127.0.0.1:{port}/assets/sample/posterior_trace?view=partitions")
    reload_until(page, lambda: page.get_by_text("Failed (1)").is_visible(), 60)
    page.get_by_text("Materialized (1)").wait_for()  # May's fit passed
    click(page.get_by_text(FAILING_MONTH, exact=True).first)
    page.get_by_text(f"Run {run_id[:8]} failed, and did not materialize this asset").wait_for()
    screenshot(page, "ui-failed-month.png", tmp_path)

    events = graphql(port, FAILURE_TEXT, {"id": run_id})["logsForRun"]["events"]
    failure = str([e for e in events if e])
    assert "bulk ESS" in failure, failure  # the gate that failed, as the run's log shows it
    assert (root / "storage/assets/sample/posterior_trace/failed" / f"{FAILING_MONTH}.nc").is_file()


def reload_until(page, predicate, timeout: float) -> None:
    """The UI polls, but not every page at once: reload until ``predicate`` holds."""

    def holds():
        page.reload()
        page.wait_for_timeout(2_000)
        return predicate()

    wait_for(holds, timeout, "the page to show it")
