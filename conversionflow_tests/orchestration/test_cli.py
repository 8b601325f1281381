"""Every flag of `conversionflow` proves its effect on a real run (not only that it parses)."""

import json
import os
import re
import shutil
import socket
import subprocess
import sys

import dagster as dg
import pytest

from conversionflow_dagster.cli import main
from conversionflow_dagster.core.model.fitting import load_trace
from conversionflow_tests.conftest import (
    REPO,
    SHORT_FIT_CONFIG,
    SMALL_MONTHS,
    asset_key,
    start_ui,
    wait_for_ui,
    write_config,
)

LAST = SMALL_MONTHS[-1]

@pytest.fixture(scope="module")
def cli_project(tmp_path_factory, small_sample_dir):
    """The small project, ingested and fitted once with --stage1-only."""
    root = tmp_path_factory.mktemp("cli_project")
    shutil.copytree(small_sample_dir, root / "data" / "sample")
    write_config(root, **SHORT_FIT_CONFIG)  # the flag tests reach stages 1 and 2 quickly
    env = {
        "CONVERSIONFLOW_ROOT": str(root),
        "CONVERSIONFLOW_CONFIG": "configs/test.yaml",
        "DAGSTER_HOME": str(root / "dagster_home"),
    }
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    (root / "dagster_home").mkdir()
    try:
        code = main(["run", "--from", SMALL_MONTHS[0], "--to", LAST, "--stage1-only"])
        assert code == 0
        yield root
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def materialisations(root, asset: str) -> int:
    with dg.DagsterInstance.from_config(str(root / "dagster_home")) as instance:
        return len(instance.fetch_materializations(asset_key(asset), limit=1000).records)


def test_stage1_only_exports_and_stops(cli_project):
    assets = cli_project / "storage" / "assets" / "sample"
    assert (assets / "parameter_export" / f"{LAST}-01.json").is_file()
    assert not (assets / "budget_allocation").exists()
    assert sorted(p.stem[:7] for p in (assets / "raw_events").glob("*.parquet")) == SMALL_MONTHS
    assert [p.stem[:7] for p in (assets / "posterior_trace").glob("*.nc")] == [LAST]  # --fit last


def test_stage2_only_reuses_the_export_with_budget_scenarios_output_and_formats(cli_project):
    fits_before = materialisations(cli_project, "posterior_trace")
    code = main(
        [
            "run",
            "--stage2-only",
            "--budget",
            "1000000",
            "--scenarios",
            "800000,1200000",
            "--output",
            "out/reports",
            "--formats",
            "json,csv",
        ]
    )
    assert code == 0
    assert materialisations(cli_project, "posterior_trace") == fits_before  # no refit
    allocation = json.loads(
        (cli_project / f"storage/assets/sample/budget_allocation/{LAST}-01.json").read_text()
    )
    assert allocation["main_budget"] == 1_000_000
    assert [s["budget"] for s in allocation["scenarios"]] == [800_000, 1_000_000, 1_200_000]
    written = sorted(p.name for p in (cli_project / "out" / "reports" / "sample" / LAST).iterdir())
    # the month's latest copy, and the report kept under its month, budget and id
    assert written[:2] == ["attribution_report.csv", "attribution_report.json"]
    assert [re.sub(r"_[0-9a-f]{8}\.", "_<id>.", name) for name in written[2:]] == [
        f"attribution_report_{LAST}_1000000_<id>.csv",
        f"attribution_report_{LAST}_1000000_<id>.json",
    ]


def test_sampler_flags_reach_the_trace(cli_project, capfd):
    code = main(
        [
            "run",
            "--from",
            LAST,
            "--to",
            LAST,
            "--stage1-only",
            "--chains",
            "3",
            "--warmup",
            "25",
            "--draws",
            "30",
            "--use-hurdle",
            "--seed",
            "7",
            "--holdout-weeks",
            "4",
            "--log-level",
            "INFO",
        ]
    )
    assert code == 0
    trace = load_trace(cli_project / f"storage/assets/sample/posterior_trace/{LAST}-01.nc")
    assert dict(trace.posterior.sizes)["chain"] == 3  # the config says 2
    assert dict(trace.posterior.sizes)["draw"] == 30
    assert json.loads(trace.posterior.attrs["sampling_layout"])["device"] == "cpu"  # no GPU here
    assert json.loads(trace.posterior.attrs["model_spec"])["likelihood"] == "hurdle_poisson"
    assert "iterations per chain" in capfd.readouterr().err  # --log-level INFO shows progress
    assert dict(trace.predictions.sizes)["holdout_week"] == 4  # the config holds out none
    with dg.DagsterInstance.from_config(str(cli_project / "dagster_home")) as instance:
        [record] = instance.fetch_materializations(asset_key("posterior_trace"), limit=1).records
    metadata = record.asset_materialization.metadata
    assert metadata["holdout_crps"].value > 0 and metadata["holdout_mape"].value > 0
    ran = (metadata["device"].value, metadata["chains"].value, metadata["draws"].value)
    assert ran == ("cpu", 3, 30)  # what actually ran, as the trace holds it

    code = main(
        [
            "run",
            "--from",
            LAST,
            "--to",
            LAST,
            "--stage1-only",
            "--warmup",
            "25",
            "--draws",
            "30",
            "--likelihood",
            "negbinomial",
        ]
    )
    assert code == 0
    trace = load_trace(cli_project / f"storage/assets/sample/posterior_trace/{LAST}-01.nc")
    assert json.loads(trace.posterior.attrs["model_spec"])["likelihood"] == "negbinomial"
    assert "iterations per chain" not in capfd.readouterr().err  # default: warnings only


def test_fit_none_ingests_without_fitting(cli_project):
    before = materialisations(cli_project, "posterior_trace")
    assert main(["run", "--from", SMALL_MONTHS[0], "--to", SMALL_MONTHS[1], "--fit", "none"]) == 0
    assert materialisations(cli_project, "posterior_trace") == before


def test_bad_flag_values_are_refused():
    with pytest.raises(SystemExit):
        main(["run", "--formats", "pdf"])
    with pytest.raises(SystemExit):
        main(["run", "--scenarios", "two million"])
    with pytest.raises(SystemExit):
        main(["run", "--stage1-only", "--stage2-only"])


def test_generate_flags(tmp_path, monkeypatch):
    monkeypatch.setenv("CONVERSIONFLOW_ROOT", str(tmp_path))
    code = main(
        [
            "generate",
            "--out",
            "gen",
            "--weeks",
            "10",
            "--channels",
            "3",
            "--seed",
            "4",
            "--format",
            "parquet",
            "--touch-scale",
            "0.5",
            "--start",
            "2024-01-01",
        ]
    )
    assert code == 0
    truth = json.loads((tmp_path / "gen/truth/parameters.json").read_text())
    assert len(truth["channels"]) == 3 and truth["spec"]["seed"] == 4
    assert truth["spec"]["touch_scale"] == 0.5
    assert sorted(p.name for p in (tmp_path / "gen/events").iterdir())[0] == "2024-01.parquet"


def test_validate_with_config_flag(monkeypatch, capsys):
    monkeypatch.setenv("CONVERSIONFLOW_ROOT", str(REPO))
    assert main(["validate", "--config", "configs/robyn_weekly.yaml"]) == 0
    assert "panel route" in capsys.readouterr().out


@pytest.mark.slow
def test_sample_flag_generates_missing_data(tmp_path):
    (tmp_path / "configs").mkdir()
    shutil.copy(REPO / "configs/default.yaml", tmp_path / "configs/default.yaml")
    env = {
        **os.environ,
        "CONVERSIONFLOW_ROOT": str(tmp_path),
        "DAGSTER_HOME": str(tmp_path / "home"),
    }
    env.pop("CONVERSIONFLOW_CONFIG", None)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "conversionflow_dagster.cli",
            "run",
            "--sample",
            "--from",
            "2023-01",
            "--to",
            "2023-01",
            "--fit",
            "none",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert (tmp_path / "data/sample/truth/parameters.json").is_file()
    assert (tmp_path / "storage/assets/sample/raw_events/2023-01-01.parquet").is_file()


def listening_addresses(port: int) -> set[str]:
    """Local addresses with a socket listening on ``port`` (from /proc/net/tcp)."""
    found = set()
    with open("/proc/net/tcp") as table:
        lines = table.read().splitlines()[1:]
    for line in lines:
        local, state = line.split()[1], line.split()[3]
        address, hex_port = local.split(":")
        if state == "0A" and int(hex_port, 16) == port:
            found.add(socket.inet_ntoa(bytes.fromhex(address)[::-1]))
    return found


@pytest.mark.slow
def test_ui_binds_to_loopback_only(tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = start_ui(port, tmp_path, start_new_session=True)
    try:
        wait_for_ui(port, server)
        assert listening_addresses(port) == {"127.0.0.1"}
    finally:
        os.killpg(server.pid, 15)
        server.wait(timeout=60)
