"""What a new user sees when the command line refuses: one line that names the flag, the right
exit code, no stack trace, and no run started."""

import datetime as dt
import os
import shutil
import subprocess
import sys

import dagster as dg
import pytest

from conversionflow_dagster.core.months import previous_month, shift_month
from conversionflow_tests.conftest import SMALL_MONTHS, write_config

CONFIGURED = f"{SMALL_MONTHS[0]}..{SMALL_MONTHS[-1]}"


def make_home(root):
    """A DAGSTER_HOME like storage/: telemetry off, so Dagster's first-run notice stays away."""
    home = root / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    return home


@pytest.fixture(scope="module")
def refusing_project(tmp_path_factory):
    """Configs only: every refusal here happens before any data file is read."""
    root = tmp_path_factory.mktemp("refusals")
    write_config(root)
    make_home(root)
    return root


def cli(root, *args, config="configs/test.yaml"):
    env = {
        **os.environ,
        "CONVERSIONFLOW_ROOT": str(root),
        "CONVERSIONFLOW_CONFIG": config,
        "DAGSTER_HOME": str(root / "home"),
    }
    command = [sys.executable, "-m", "conversionflow_dagster.cli", *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)


def runs_in(root) -> int:
    with dg.DagsterInstance.from_config(str(root / "home")) as instance:
        return instance.get_runs_count()


def assert_one_line(result, code: int, *expected: str) -> None:
    """Exit ``code`` and one stderr line, without a traceback, holding every ``expected`` text."""
    lines = result.stderr.splitlines()
    assert result.returncode == code, result.stderr
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    for text in expected:
        assert text in lines[0], lines[0]


def assert_refused(result, *expected: str) -> None:
    """Refused as a usage error (exit 2) before anything ran or printed progress."""
    assert_one_line(result, 2, *expected)
    assert result.stdout == ""


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--budget", "0"], ["--budget: expected an amount > 0, got 0"]),
        (["--budget", "-1e6"], ["--budget: expected an amount > 0, got -1000000"]),
        (["--total-budget", "-3"], ["--total-budget: expected an amount > 0, got -3"]),
        (["--scenarios", "2e6,-1"], ["--scenarios: expected an amount > 0, got -1"]),
        (["--chains", "0"], ["--chains: expected a whole number >= 1, got 0"]),
        (["--chains", "65"], ["--chains: expected a whole number <= 64, got 65"]),
        (["--draws", "-5"], ["--draws: expected a whole number >= 10, got -5"]),
        (["--warmup", "0"], ["--warmup: expected a whole number >= 10, got 0"]),
        (["--warmup", "many"], ["--warmup: expected a whole number, got 'many'"]),
        (["--holdout-weeks", "-1"], ["--holdout-weeks: expected a whole number >= 0, got -1"]),
        (["--holdout-weeks", "2.5"], ["--holdout-weeks: expected a whole number, got '2.5'"]),
        (["--budget", "nan"], ["--budget: expected a number, got 'nan'"]),
    ],
)
def test_numeric_flags_are_refused_with_the_config_bounds(refusing_project, args, expected):
    assert_refused(cli(refusing_project, "run", *args), "conversionflow run: error:", *expected)
    assert runs_in(refusing_project) == 0


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--from", "2025-13"], ["--from 2025-13: expected a month as YYYY-MM"]),
        (["--from", "2022-12"], ["--from 2022-12: outside the project's months"]),
        (["--to", "2024-01"], ["--to 2024-01: outside the project's months"]),
        (["--from", "2023-04", "--to", "2023-02"], ["--from 2023-04 is after --to 2023-02"]),
    ],
)
def test_months_outside_or_against_the_configured_range_are_refused(
    refusing_project, args, expected
):
    range_text = f"the configured months are {CONFIGURED} (project.partitions.start_month.."
    assert_refused(cli(refusing_project, "run", *args), *expected, range_text)
    assert runs_in(refusing_project) == 0


def test_holdout_weeks_that_leave_too_few_weeks_to_fit_are_refused(refusing_project):
    result = cli(refusing_project, "run", "--holdout-weeks", "13")
    assert_refused(result, "--holdout-weeks 13:", "hold 21 complete week(s)", "at least 22")
    write_config(refusing_project, "window.yaml", **{"model.window_weeks": 30})
    result = cli(refusing_project, "run", "--holdout-weeks", "25", config="configs/window.yaml")
    assert_refused(result, "--holdout-weeks 25:", "window_weeks 30", "leaves 5 week(s) to fit")
    assert runs_in(refusing_project) == 0


def test_unknown_market_and_a_total_budget_without_markets_are_refused(refusing_project):
    result = cli(refusing_project, "run", "--markets", "Atlantis")
    assert_refused(result, "--markets: Atlantis not in project.markets")
    result = cli(refusing_project, "run", "--total-budget", "1e6")
    assert_refused(result, "--total-budget:", "project.markets", "--budget")
    assert runs_in(refusing_project) == 0


def test_config_and_output_paths_are_refused_naming_the_flag(refusing_project):
    assert_refused(cli(refusing_project, "run", "--config", "configs/nope.yaml"), "--config")
    outside = cli(refusing_project, "run", "--config", "../elsewhere.yaml")
    assert_refused(outside, "--config ../elsewhere.yaml", "outside the project root")
    missing = cli(refusing_project, "validate", "--config", "configs/nope.yaml")
    assert_refused(missing, "conversionflow validate: error: --config configs/nope.yaml")
    output = cli(refusing_project, "run", "--output", "../reports")
    assert_refused(output, "--output ../reports", "project.allow_paths_outside_root")
    assert runs_in(refusing_project) == 0


def test_generate_refuses_an_impossible_sample(refusing_project):
    assert_refused(cli(refusing_project, "generate", "--weeks", "3"), "at least 8 weeks")
    assert_refused(cli(refusing_project, "generate", "--start", "2023-01-03"), "Monday")
    assert not (refusing_project / "data").exists()


def test_an_unexpected_error_is_one_line_unless_debug(tmp_path):
    write_config(tmp_path)
    home = make_home(tmp_path)
    (home / "dagster.yaml").write_text("run_storage: [not, a, mapping\n")  # broken instance
    result = cli(tmp_path, "run", "--fit", "none")
    assert_one_line(result, 1, "error: ", "(run with --debug for the traceback)")
    debug = cli(tmp_path, "run", "--fit", "none", "--debug")
    assert debug.returncode == 1
    assert "Traceback" in debug.stderr


def test_failed_runs_print_reasons_once_and_no_stack_trace(tmp_path, small_sample_dir):
    """With end_month unset the configured months run up to last month: months past the data
    fail one run each, told once in the progress and once on stderr."""
    shutil.copytree(small_sample_dir, tmp_path / "data" / "sample")
    write_config(tmp_path, **{"project.partitions": {"start_month": SMALL_MONTHS[0]}})
    make_home(tmp_path)
    last = previous_month(dt.date.today())
    result = cli(tmp_path, "run", "--fit", "none", "--from", shift_month(last, -2))
    assert_one_line(result, 1, f"error: ingest {shift_month(last, -2)}: raw_events:")
    assert "Stack Trace" not in result.stderr
    assert "(2 more failed run(s) above)" in result.stderr
    assert f"ingest {shift_month(last, -2)}: FAILED" in result.stdout
    assert "FAILED the same way (2 runs)" in result.stdout
    assert result.stdout.count("no event file for month") == 1
    assert runs_in(tmp_path) == 4  # three ingest runs and the lift tests; the panel is skipped
