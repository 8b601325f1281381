"""`conversionflow run --mode test`: a quick end-to-end run on generated data.

A file of its own so the two test workers share the long end-to-end tests evenly.
"""

import os
import subprocess
import sys

import pytest


@pytest.mark.slow
def test_mode_test_runs_end_to_end_on_generated_data(tmp_path):
    env = {
        **os.environ,
        "CONVERSIONFLOW_ROOT": str(tmp_path),
        "DAGSTER_HOME": str(tmp_path / "home"),
    }
    result = subprocess.run(
        [sys.executable, "-m", "conversionflow_dagster.cli", "run", "--mode", "test"],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    reports = tmp_path / "storage/test_mode/storage/reports/test_mode/2024-12"
    assert (reports / "attribution_report.html").is_file()
    assert "stage 2 2024-12: ok" in result.stdout
