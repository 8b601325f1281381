"""`conversionflow init` as a new user meets it: their own file in, a working project out."""

import json
import os
import re
import subprocess
import sys

import pytest
import yaml

from conversionflow_dagster.cli import main
from conversionflow_tests.core.init_fixtures import (
    recent_spend,
    total_sales_panel,
    write_journey_log,
)

# A short fit cannot meet the default gates (ESS 400 from 2 x 200 draws); the gates are not what
# this file tests, so the end-to-end run relaxes them as the other CLI tests do.
RELAXED_GATES = {"max_r_hat": 10.0, "min_ess_bulk": 0, "min_ess_tail": 0, "max_divergences": 10**5}


@pytest.fixture
def user_root(tmp_path, monkeypatch):
    """An empty project root, as CONVERSIONFLOW_ROOT, and the current directory."""
    monkeypatch.setenv("CONVERSIONFLOW_ROOT", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    return tmp_path


def _cli(root, *args: str, timeout: int = 120) -> subprocess.CompletedProcess:
    env = {**os.environ, "CONVERSIONFLOW_ROOT": str(root), "DAGSTER_HOME": str(root / "home")}
    env.pop("CONVERSIONFLOW_CONFIG", None)
    return subprocess.run(
        [sys.executable, "-m", "conversionflow_dagster.cli", *args],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.mark.slow
def test_a_weekly_panel_of_total_sales_goes_from_init_to_a_report(user_root, capsys):
    frame = total_sales_panel()
    frame.to_csv(user_root / "data" / "weekly_sales.csv", index=False)

    assert main(["init", "data/weekly_sales.csv", "--name", "Acme Weekly"]) == 0
    out = capsys.readouterr().out
    assert "config is valid (panel route, 4 channels)" in out
    assert "channels.TV" in out and "TV_Spend" in out  # the guess and its evidence, printed
    config = user_root / "configs" / "acme_weekly.yaml"
    assert main(["validate", "--config", "configs/acme_weekly.yaml"]) == 0

    document = yaml.safe_load(config.read_text())
    document["model"]["gates"] = RELAXED_GATES
    config.write_text(yaml.safe_dump(document, sort_keys=False))
    result = _cli(
        user_root,
        *("run", "--config", "configs/acme_weekly.yaml", "--formats", "json,html"),
        *("--chains", "2", "--warmup", "200", "--draws", "200"),
        timeout=900,
    )
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]

    month = document["project"]["partitions"]["end_month"]
    report = user_root / "storage" / "reports" / "acme_weekly" / month
    assert (report / "attribution_report.html").is_file()
    scope = json.loads((report / "attribution_report.json").read_text())
    assert scope["attributable_share"] == 1.0  # a panel of total sales: all of it
    allocation = json.loads(
        (user_root / f"storage/assets/acme_weekly/budget_allocation/{month}-01.json").read_text()
    )
    budget = allocation["main_budget"]
    assert budget == pytest.approx(recent_spend(frame), rel=1e-6)  # the data's, not 2.5M
    budgets = [s["budget"] for s in allocation["scenarios"]]
    assert min(budgets) < budget < max(budgets)


def test_a_journey_log_needs_the_attributable_share(user_root, small_sample_dir, capsys):
    events, spend = write_journey_log(small_sample_dir, user_root / "data")

    assert main(["init", str(events), str(spend)]) == 1
    out = capsys.readouterr().out
    assert "an event log with a spend feed" in out
    for key, column in (("customer_id", "user_id"), ("touchpoint", "channel")):
        assert re.search(rf"^  sources\.events\.columns\.{key} +{column} +\(", out, re.M)
    assert "report.attributable_share" in out.split("validating it:")[1]  # validate names it
    config = user_root / "configs" / "journeys.yaml"
    assert "# attributable_share: 0.05" in config.read_text()  # written, for the user to set

    assert main(["init", str(events), str(spend), "--attributable-share", "0.05"]) == 1
    assert "exists; pass --force" in capsys.readouterr().err

    args = ["init", "data/journeys.csv", "data/media_spend.csv", "--attributable-share", "0.05"]
    assert main([*args, "--force"]) == 0
    assert "config is valid (events route, 6 channels)" in capsys.readouterr().out
    assert yaml.safe_load(config.read_text())["report"]["attributable_share"] == 0.05


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("", "file is empty"),
        ("id,colour\n1,red\n2,blue\n", "no column of ISO 8601 dates"),
        ("date,colour\n2024-01-01,red\n2024-01-08,blue\n", "expected a weekly panel"),
    ],
)
def test_unusable_files_get_one_line_and_exit_1(user_root, capsys, content, expected):
    (user_root / "data" / "mine.csv").write_text(content)
    assert main(["init", "data/mine.csv"]) == 1
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith("error: data/mine.csv") and expected in line
    assert not (user_root / "configs").exists()


def test_the_command_prints_no_stack_trace(user_root):
    (user_root / "data" / "empty.csv").write_text("")
    result = _cli(user_root, "init", "data/empty.csv")
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "error: data/empty.csv: file is empty; expected a header row and data rows"
    )
