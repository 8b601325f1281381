"""The UI path end to end: `dagster dev` on a free loopback port, launches through GraphQL."""

import contextlib
import json
import os
import subprocess
import sys
import time
import urllib.request

import pytest

from conversionflow_tests.conftest import CHROMIUM_ARGS, REPO, chromium_executable, free_port

pytestmark = pytest.mark.slow

LAUNCH = """
mutation Launch($params: ExecutionParams!) {
  launchPipelineExecution(executionParams: $params) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on PythonError { message }
    ... on InvalidSubsetError { message }
    ... on RunConfigValidationInvalid { errors { message } }
  }
}"""
RUN_STATUS = """
query Run($id: ID!) { runOrError(runId: $id) { __typename ... on Run { status } } }"""
MATERIALISATIONS = """
query Mats($key: AssetKeyInput!, $partitions: [String!]) {
  assetOrError(assetKey: $key) {
    ... on Asset { assetMaterializations(partitions: $partitions) {
      partition
      metadataEntries { label ... on IntMetadataEntry { intValue } }
    } }
  }
}"""


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


@pytest.fixture
def dagster_dev(project):
    """`dagster dev` (webserver + daemon) for the small project, on 127.0.0.1."""
    port = free_port()
    home = project / "dagster_home"
    home.mkdir()
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "CONVERSIONFLOW_ROOT": str(project),
        "CONVERSIONFLOW_CONFIG": "configs/test.yaml",
        "DAGSTER_DISABLE_TELEMETRY": "yes",
    }
    log = open(project / "dagster_dev.log", "w")  # noqa: SIM115 - closed in teardown
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "dagster",
            "dev",
            "-w",
            str(REPO / "workspace.yaml"),
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
        ],
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        wait_for(lambda: graphql(port, "{ assetNodes { id } }")["assetNodes"], 240, "the UI")
        yield port
    finally:
        os.killpg(server.pid, 15)
        server.wait(timeout=60)
        log.close()


def test_launch_one_month_of_one_asset_like_the_ui(dagster_dev, project):
    port = dagster_dev
    params = {
        "selector": {
            "repositoryLocationName": "conversionflow",
            "repositoryName": "__repository__",
            "pipelineName": "__ASSET_JOB",
            "assetSelection": [{"path": ["sample", "raw_events"]}],
            "assetCheckSelection": [],
        },
        "mode": "default",
        "runConfigData": {},
        "executionMetadata": {"tags": [{"key": "dagster/partition", "value": "2023-02-01"}]},
    }
    launched = graphql(port, LAUNCH, {"params": params})["launchPipelineExecution"]
    assert launched["__typename"] == "LaunchRunSuccess", launched
    run_id = launched["run"]["runId"]

    def finished():
        status = graphql(port, RUN_STATUS, {"id": run_id})["runOrError"]["status"]
        return status if status in {"SUCCESS", "FAILURE", "CANCELED"} else None

    assert wait_for(finished, 300, "the run") == "SUCCESS"
    data = graphql(
        port,
        MATERIALISATIONS,
        {"key": {"path": ["sample", "raw_events"]}, "partitions": ["2023-02-01"]},
    )
    [materialisation] = data["assetOrError"]["assetMaterializations"]
    rows = {e["label"]: e.get("intValue") for e in materialisation["metadataEntries"]}
    assert materialisation["partition"] == "2023-02-01"
    assert rows["dagster/row_count"] > 1000
    assert (project / "storage/assets/sample/raw_events/2023-02-01.parquet").is_file()
    assert not (project / "storage/assets/sample/raw_events/2023-01-01.parquet").exists()


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


def test_asset_graph_in_a_real_browser(dagster_dev, project):
    """Headless Chromium opens the lineage page and sees every asset of the code location."""
    from playwright.sync_api import sync_playwright

    from conversionflow_dagster.code_location import build_definitions

    executable = chromium_executable()
    defs = build_definitions(project, project / "configs" / "test.yaml")
    # the graph labels each asset by its name; the project's key is its prefix
    expected = {k.path[-1] for k in defs.resolve_asset_graph().get_all_asset_keys()}
    shot = os.environ.get("CONVERSIONFLOW_SCREENSHOT") or str(project / "asset_graph.png")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 2200, "height": 1100})
        page.goto(f"http://127.0.0.1:{dagster_dev}/asset-groups")
        dismiss_first_visit_dialog(page)
        expand_all_groups(page)  # the lineage view starts with each group collapsed
        for name in expected:
            page.get_by_text(name, exact=True).first.wait_for(timeout=30_000)
        page.wait_for_timeout(1_000)
        page.screenshot(path=shot)
        browser.close()
    assert os.path.getsize(shot) > 20_000
