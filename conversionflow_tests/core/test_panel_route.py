"""Route 2: ready weekly tables (the bundled Meridian and Robyn datasets) through config alone."""

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from conversionflow_dagster.core.config import load_config, parse_config
from conversionflow_dagster.core.errors import ConfigError, InputDataError
from conversionflow_dagster.core.ingest.panel import build_panel_from_file, panel_rules

REPO = Path(__file__).resolve().parents[2]
PUBLIC = REPO / "data" / "public"


def panel_for(config_name: str):
    config = load_config(REPO / "configs" / config_name)
    return build_panel_from_file(REPO / config.sources.panel.path, config), config


def test_meridian_national_media():
    panel, _ = panel_for("meridian_national.yaml")
    raw = pd.read_csv(PUBLIC / "meridian" / "national_media.csv")
    assert len(panel.frame) == 156 and panel.weeks[0] == pd.Timestamp("2021-01-25")
    assert panel.channels == ("Channel0", "Channel1", "Channel2", "Channel3")
    np.testing.assert_allclose(panel.frame["conversions"].sum(), raw["conversions"].sum())
    np.testing.assert_allclose(panel.frame["spend__Channel2"], raw["Channel2_spend"])
    np.testing.assert_allclose(panel.frame["touches__Channel0"], raw["Channel0_impression"])
    assert panel.controls == ("control__competitor_activity", "control__sentiment")
    assert all(o.passed for o in panel_rules(panel))


def test_robyn_weekly_with_a_categorical_control():
    panel, _ = panel_for("robyn_weekly.yaml")
    raw = pd.read_csv(PUBLIC / "robyn" / "dt_simulated_weekly.csv")
    assert len(panel.frame) == 208 and panel.weeks[0] == pd.Timestamp("2015-11-23")
    np.testing.assert_allclose(panel.frame["revenue"], raw["revenue"])
    assert "conversions" not in panel.frame
    assert set(panel.controls) == {
        "control__competitor_sales",
        "control__newsletter",
        "control__events=event1",
        "control__events=event2",
    }
    assert panel.frame["control__events=event1"].sum() == 1
    assert all(o.passed for o in panel_rules(panel))


def test_both_routes_share_one_contract():
    meridian, _ = panel_for("meridian_national.yaml")
    robyn, _ = panel_for("robyn_weekly.yaml")
    for panel in (meridian, robyn):
        assert panel.frame.index.name == "week_start"
        assert all(
            c.startswith(("spend__", "touches__", "control__")) or c in ("conversions", "revenue")
            for c in panel.frame.columns
        )


def copy_dataset(tmp_path: Path) -> tuple[Path, dict]:
    target = tmp_path / "national_media.csv"
    shutil.copy(PUBLIC / "meridian" / "national_media.csv", target)
    document = yaml.safe_load((REPO / "configs" / "meridian_national.yaml").read_text())
    return target, document


def test_a_missing_week_is_detected(tmp_path):
    path, document = copy_dataset(tmp_path)
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:10] + lines[11:]) + "\n")
    panel = build_panel_from_file(path, parse_config(document))
    outcome = {o.name: o for o in panel_rules(panel)}["no_missing_weeks"]
    assert not outcome.passed
    assert "2021-03-29" in outcome.description
    assert f"expected rows dated in them in {path.name}" in outcome.description  # the file


def test_duplicate_week_and_bad_number_name_the_line(tmp_path):
    path, document = copy_dataset(tmp_path)
    lines = path.read_text().splitlines()
    path.write_text("\n".join([*lines[:3], lines[2], *lines[3:]]) + "\n")
    with pytest.raises(InputDataError, match=r"line 4, column 'time': two rows fall in the week"):
        build_panel_from_file(path, parse_config(document))
    fields = lines[5].split(",")
    fields[7] = "n/a"
    path.write_text("\n".join([*lines[:5], ",".join(fields), *lines[6:]]) + "\n")
    with pytest.raises(InputDataError, match=r"line 6, column 'Channel0_spend': expected a number"):
        build_panel_from_file(path, parse_config(document))


def test_misnamed_column_in_the_mapping(tmp_path):
    path, document = copy_dataset(tmp_path)
    document["channels"]["Channel1"]["spend_column"] = "Channel1_spnd"
    with pytest.raises(
        InputDataError,
        match=r"'Channel1_spnd' for .*Channel1.spend_column "
        r"\(did you mean 'Channel1_spend'\?\)",
    ):
        build_panel_from_file(path, parse_config(document))


def test_validate_says_which_channel_spends_one_amount_whenever_it_is_on(tmp_path):
    """Flighted TV at a fixed rate: on/off weeks show its effect, not its curve; say so."""
    from conversionflow_dagster.core.ingest.validation import validate_inputs

    frame = pd.read_csv(REPO / "data/public/meridian/national_media.csv")
    on = (np.arange(len(frame)) // 4) % 2 == 0  # four weeks on, four off
    frame["Channel2_spend"] = np.where(on, 5000.0, 0.0)
    frame.loc[on, "Channel2_spend"] *= 1 + 0.01 * np.sin(np.arange(on.sum()))  # within 1%
    (tmp_path / "data").mkdir()
    frame.to_csv(tmp_path / "data/flighted.csv", index=False)
    document = yaml.safe_load((REPO / "configs/meridian_national.yaml").read_text())
    document["sources"]["panel"]["path"] = "data/flighted.csv"
    (tmp_path / "flighted.yaml").write_text(yaml.safe_dump(document))
    ok, lines = validate_inputs(tmp_path, tmp_path / "flighted.yaml")
    assert ok, lines
    notes = [line for line in lines if "spends about" in line]
    assert len(notes) == 1, lines  # the other channels vary their spend
    assert "channel Channel2 spends about 5,000 in each of the 80 week(s)" in notes[0]
    assert "saturation prior" in notes[0]


def test_spend_in_thousands_is_multiplied_into_money(tmp_path):
    """sources.panel.spend_unit: the file's 131.2 (thousands) is 131,200 in the panel."""
    path, document = copy_dataset(tmp_path)
    raw = pd.read_csv(path)
    spend = [c for c in raw.columns if c.endswith("_spend")]
    (raw.assign(**{c: raw[c] / 1000 for c in spend})).to_csv(path, index=False)
    document["sources"]["panel"]["spend_unit"] = 1000
    panel = build_panel_from_file(path, parse_config(document))
    original = pd.read_csv(PUBLIC / "meridian" / "national_media.csv")
    np.testing.assert_allclose(panel.frame["spend__Channel2"], original["Channel2_spend"])
    np.testing.assert_allclose(panel.frame["touches__Channel0"], raw["Channel0_impression"])
    document["sources"]["panel"]["spend_unit"] = 0
    with pytest.raises(ConfigError, match=r"sources\.panel\.spend_unit: Input should be greater"):
        parse_config(document)
