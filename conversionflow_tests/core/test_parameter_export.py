"""Parameter export contract: round trip, and a precise message for each kind of broken file."""

import copy
import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from conversionflow_dagster.core.errors import ContractError
from conversionflow_dagster.core.parameter_export import (
    SCHEMA_VERSION,
    ParameterExport,
    read_export,
    to_document,
    validate_export,
    write_export,
)
from conversionflow_dagster.core.synthetic.export import realistic_document


@pytest.fixture(scope="module")
def document() -> dict:
    return realistic_document(n_channels=4, n_draws=50, seed=3)


def broken(document: dict, change) -> dict:
    doc = copy.deepcopy(document)
    change(doc)
    return doc


def test_round_trip_write_then_read_is_equal(tmp_path, document):
    export = validate_export(document)
    path = write_export(export, tmp_path / "export.json")
    again = read_export(path)
    assert to_document(again) == document
    assert again.channel_names == ("channel_00", "channel_01", "channel_02", "channel_03")
    assert again.draws["beta"].shape == (50, 4)
    np.testing.assert_array_equal(again.draws["saturation_lam"], export.draws["saturation_lam"])
    assert json.loads(path.read_text()) == document  # plain JSON, readable by any tool


def test_typed_access(document):
    export = validate_export(document)
    assert isinstance(export, ParameterExport)
    assert export.schema_version == SCHEMA_VERSION
    assert export.saturation == "logistic"
    assert export.n_draws == 50
    np.testing.assert_allclose(
        export.current_weekly_spend, [c["current_weekly_spend"] for c in document["channels"]]
    )
    with pytest.raises(ValueError):
        export.draws["beta"][0, 0] = 1.0  # the arrays are read-only, like the dataclass


def test_hill_export_round_trips(tmp_path):
    document = realistic_document(n_channels=3, n_draws=20, saturation="hill")
    export = read_export(write_export(document, tmp_path / "hill.json"))
    assert set(export.draws) == {"beta", "adstock_decay", "hill_k", "hill_n"}
    assert to_document(export) == document


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.pop("scales"), "export.json: scales: missing (expected a JSON object)"),
        (
            lambda d: d["channels"][2].pop("current_weekly_spend"),
            "export.json: channels[2].current_weekly_spend: missing",
        ),
        (
            lambda d: d["channels"][2].update(current_weekly_spend=-3),
            "export.json: channels[2].current_weekly_spend: expected a finite number >= 0, got -3",
        ),
        (
            lambda d: d["channels"][1].update(current_weekly_spend="12"),
            'channels[1].current_weekly_spend: expected a finite number >= 0, got "12"',
        ),
        (
            lambda d: d["draws"]["beta"].pop(),
            "draws.beta: expected 50 rows of 4 numbers (one row per draw, one column per "
            "channel), got 49 rows",
        ),
        (
            lambda d: d["draws"]["beta"][7].pop(),
            "draws.beta[7]: expected a list of 4 numbers (one per channel), got a list of 3",
        ),
        (
            lambda d: d["draws"]["beta"][7].__setitem__(1, "x"),
            'draws.beta[7][1]: expected a finite number, got "x"',
        ),
        (
            lambda d: d["draws"]["adstock_decay"][3].__setitem__(2, 1.0),
            "draws.adstock_decay[3][2]: expected a finite number in [0, 1), got 1.0",
        ),
        (
            lambda d: d["draws"]["saturation_lam"][0].__setitem__(0, float("nan")),
            "draws.saturation_lam[0][0]: expected a finite number > 0, got nan",
        ),
        (
            lambda d: d.update(schema_version=SCHEMA_VERSION + 1),
            f"schema_version: the file was written by a newer conversionflow (schema_version "
            f"{SCHEMA_VERSION + 1})",
        ),
        (
            lambda d: d["model"]["saturation"].update(type="tanh"),
            "model.saturation.type: expected one of 'logistic', 'hill', got \"tanh\"",
        ),
        (
            lambda d: d["model"]["adstock"].update(type="weibull"),
            "model.adstock.type: expected one of 'geometric', got \"weibull\"",
        ),
        (
            lambda d: d["draws"].pop("saturation_lam"),
            "draws.saturation_lam: missing",
        ),
        (
            lambda d: d["draws"].update(hill_k=d["draws"]["beta"]),
            "draws.hill_k: not a parameter of logistic saturation",
        ),
        (
            lambda d: d["channels"][3].update(name="channel_01"),
            "channels[3].name: duplicate channel name 'channel_01' (also channels[1])",
        ),
        (
            lambda d: d["scales"]["spend"].pop("channel_02"),
            "scales.spend.channel_02: missing (expected a finite number > 0)",
        ),
        (lambda d: d["scales"].update(target=0), "scales.target: expected a finite number > 0"),
        (
            lambda d: d["channels"].reverse(),
            "draws columns must follow the order of channels",
        ),
        (
            lambda d: d["channels"][0]["parameters"]["beta"].pop("hdi_97%"),
            "channels[0].parameters.beta.hdi_97%: missing",
        ),
        (lambda d: d.update(created_at="yesterday"), "created_at: expected an ISO 8601"),
        (lambda d: d["diagnostics"].update(passed="yes"), "diagnostics.passed: expected true"),
        (
            lambda d: d["channels"][2]["parameters"]["beta"].update({"hdi_3%": 9.0}),
            "channels[2].parameters.beta.hdi_97%: expected a number >= hdi_3% (9.0), got ",
        ),
        (
            lambda d: d["channels"][0]["roas"].update(mean=-1),
            "channels[0].roas.mean: expected a finite number >= 0 or null, got -1",
        ),
        (lambda d: d.update(channels=[]), "channels: expected a non-empty list, got a list of 0"),
        (
            lambda d: d["data_window"].update(end="2022-12-31"),
            "data_window.end: expected a date on or after start 2023-01-02, got 2022-12-31",
        ),
        (
            lambda d: d["scales"]["spend"].update(ghost=1.0),
            "scales.spend.ghost: not a channel listed in channels",
        ),
        (lambda d: d["model"].update(adstock=[]), "model.adstock: expected a JSON object"),
    ],
)
def test_broken_export_names_the_field(document, change, message):
    with pytest.raises(ContractError) as error:
        validate_export(broken(document, change), "export.json")
    assert message in str(error.value)
    assert str(error.value).startswith("export.json: ")


def test_read_errors_name_the_file(tmp_path):
    missing = tmp_path / "nowhere.json"
    with pytest.raises(ContractError, match=f"{missing}: parameter export not found"):
        read_export(missing)
    path = tmp_path / "export.json"
    path.write_text('{"schema_version": 1,\n  "model": }\n')
    with pytest.raises(ContractError, match=rf"{path}: invalid JSON at line 2, column 12"):
        read_export(path)


def test_read_reports_contract_problems_with_the_path(tmp_path, document):
    path = tmp_path / "export.json"
    path.write_text(json.dumps(broken(document, lambda d: d["draws"]["beta"][0].pop())))
    with pytest.raises(ContractError, match=rf"^{path}: draws.beta\[0\]: expected a list of 4"):
        read_export(path)


def test_failed_write_leaves_the_previous_file_intact(tmp_path, document):
    path = write_export(document, tmp_path / "export.json")
    before = path.read_bytes()
    with pytest.raises(ContractError, match="current_weekly_spend"):
        write_export(
            broken(document, lambda d: d["channels"][0].update(current_weekly_spend=-1)), path
        )
    built_by_hand = dataclasses.replace(validate_export(document), created_at="not a date")
    with pytest.raises(ContractError, match="created_at"):
        write_export(built_by_hand, path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["export.json"]  # no temporary left behind


def test_write_interrupted_half_way_leaves_the_previous_file_intact(
    tmp_path, document, monkeypatch
):
    path = write_export(document, tmp_path / "export.json")
    before = path.read_bytes()

    def disk_full(self, text, encoding=None):
        with open(self, "w", encoding=encoding) as handle:
            handle.write(text[: len(text) // 2])
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Path, "write_text", disk_full)
    changed = broken(document, lambda d: d["channels"][0].update(current_weekly_spend=1.0))
    with pytest.raises(OSError, match="No space left"):
        write_export(changed, path)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["export.json"]


def test_write_accepts_numpy_draws(tmp_path, document):
    doc = copy.deepcopy(document)
    doc["draws"] = {k: (np.array(v) if k != "n" else v) for k, v in doc["draws"].items()}
    assert to_document(read_export(write_export(doc, tmp_path / "e.json"))) == document


def test_unknown_keys_are_tolerated_where_documented(document):
    doc = broken(document, lambda d: d["model"].update(fourier_order=2))
    doc["diagnostics"]["sampler"] = "nuts"
    doc["channels"][0]["parameters"]["intercept"] = "summary of a newer stage 1"
    export = validate_export(doc)
    assert export.model["fourier_order"] == 2
    assert export.diagnostics["sampler"] == "nuts"
    assert set(export.channels[0].parameters) == {"beta", "adstock_decay", "saturation_lam"}


def test_not_an_object_is_refused_at_the_top_level():
    with pytest.raises(ContractError, match=r"^export.json: \(top level\): expected a JSON object"):
        validate_export([1, 2], "export.json")


def test_null_roas_and_rhat_are_allowed(document):
    doc = broken(document, lambda d: d["channels"][0]["roas"].update(mean=None))
    doc["channels"][1]["parameters"]["beta"]["r_hat"] = None
    export = validate_export(doc)
    assert export.channels[0].roas["mean"] is None


def test_written_file_is_valid_strict_json(tmp_path, document):
    path = write_export(document, Path(tmp_path) / "e.json")
    text = path.read_text()
    assert "NaN" not in text and "Infinity" not in text
    assert text.count("\n") > 50  # pretty: one draw row per line, not one number per line
    assert text.count("\n") < 1000
