"""The YAML config: shipped configs load, mistakes are reported with file and key."""

from pathlib import Path

import pytest
import yaml

from conversionflow_dagster.core.config import load_config, parse_config, resolve_project_path
from conversionflow_dagster.core.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]


def default_document() -> dict:
    return yaml.safe_load((REPO / "configs" / "default.yaml").read_text())


@pytest.mark.parametrize("name", ["default.yaml", "meridian_national.yaml", "robyn_weekly.yaml"])
def test_shipped_configs_are_valid(name):
    config = load_config(REPO / "configs" / name)
    assert config.channels


def test_default_config_maps_touchpoints_and_cost_per_touch():
    config = load_config(REPO / "configs" / "default.yaml")
    assert config.touchpoint_channel()["tv_touch"] == "tv"
    assert config.channels["affiliate"].cost_per_touch == 45.0
    assert config.month_range() == ("2023-01", "2025-12")


def test_unknown_key_is_named_with_its_path():
    doc = default_document()
    doc["model"]["likelyhood"] = "poisson"
    with pytest.raises(ConfigError) as info:
        parse_config(doc, "configs/x.yaml")
    assert "configs/x.yaml" in str(info.value)
    assert "model.likelyhood: unknown key" in str(info.value)


def test_bad_choice_names_key_and_allowed_values():
    doc = default_document()
    doc["model"]["likelihood"] = "poison"
    with pytest.raises(ConfigError, match=r"model\.likelihood: .*'poisson'"):
        parse_config(doc)


def test_missing_required_section():
    doc = default_document()
    del doc["channels"]
    with pytest.raises(ConfigError, match="channels: required key is missing"):
        parse_config(doc)


def test_touchpoint_mapped_to_two_channels_is_refused():
    doc = default_document()
    doc["channels"]["social"]["touchpoints"].append("search_touch")
    with pytest.raises(ConfigError, match="'search_touch' is mapped to both 'search' and 'social'"):
        parse_config(doc)


def test_bad_month_and_reversed_range():
    doc = default_document()
    doc["project"]["partitions"]["start_month"] = "2023-13"
    with pytest.raises(ConfigError, match=r"project\.partitions\.start_month: .*YYYY-MM"):
        parse_config(doc)
    doc["project"]["partitions"] = {"start_month": "2024-01", "end_month": "2023-01"}
    with pytest.raises(ConfigError, match="end_month 2023-01 is before start_month 2024-01"):
        parse_config(doc)


def test_unknown_channel_in_optimisation_is_refused():
    doc = default_document()
    doc["optimisation"]["locked"] = ["radio"]
    with pytest.raises(ConfigError, match=r"unknown channel\(s\) \['radio'\]"):
        parse_config(doc)


def test_invalid_yaml_reports_line(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("project:\n  name: x\n  partitions: [unclosed\n")
    with pytest.raises(ConfigError, match=r"broken.yaml: not valid YAML at line \d+"):
        load_config(path)


def test_yaml_is_loaded_safely(tmp_path):
    """A YAML tag that would construct Python objects is refused, not executed."""
    path = tmp_path / "evil.yaml"
    path.write_text("project: !!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(path)


def test_duplicate_key_is_refused_with_both_lines(tmp_path):
    """Plain YAML keeps the last of two equal keys; a config must not lose a setting silently."""
    path = tmp_path / "twice.yaml"
    text = (REPO / "configs" / "default.yaml").read_text()
    path.write_text(text.replace("  budget: 2500000\n", "  budget: 2500000\n  budget: 9\n"))
    first = text.splitlines().index("  budget: 2500000") + 1
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert f"twice.yaml: duplicate key 'budget' at line {first + 1} (already at line {first})" in (
        str(info.value)
    )
    path.write_text("base: &b {x: 1}\nother:\n  <<: *b\n  x: 2\n")  # merge overrides are fine
    with pytest.raises(ConfigError, match="project: required key is missing"):
        load_config(path)


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")


def test_paths_stay_inside_the_project_root(tmp_path):
    assert resolve_project_path(tmp_path, "data/x.csv") == (tmp_path / "data/x.csv").resolve()
    with pytest.raises(ConfigError, match="outside the project root"):
        resolve_project_path(tmp_path, "../secrets.csv")
    with pytest.raises(ConfigError, match="allow_paths_outside_root"):
        resolve_project_path(tmp_path, "/etc/passwd")
    assert resolve_project_path(tmp_path, "/etc/passwd", allow_outside=True) == Path("/etc/passwd")


@pytest.mark.parametrize(
    ("spend", "message"),
    [
        ({"columns": {"month": "Month"}}, r"sources\.spend\.columns: .*'month' needs 'year'"),
        (
            {"columns": {"year": "Year"}, "period": "month"},
            r"sources\.spend: .*period is 'month', but the columns date each row by year",
        ),
        ({"period": "fortnight"}, r"sources\.spend\.period: .*'week', 'month', 'quarter'"),
    ],
)
def test_coarse_spend_settings_are_checked(spend, message):
    doc = default_document()
    doc["sources"]["spend"].update(spend)
    with pytest.raises(ConfigError, match=message):
        parse_config(doc)


def test_a_panel_needs_a_date_or_a_year_column():
    doc = yaml.safe_load((REPO / "configs" / "robyn_weekly.yaml").read_text())
    doc["sources"]["panel"]["columns"].pop("date")
    with pytest.raises(ConfigError, match=r"sources\.panel\.columns: .*map 'date' \(or 'year'"):
        parse_config(doc)
    doc["sources"]["panel"]["columns"].update({"year": "Year", "month": "Month"})
    assert parse_config(doc).sources.panel.row_period == "month"


def test_the_likelihood_defaults_to_the_targets_kind():
    doc = default_document()
    doc["model"].pop("likelihood")
    assert parse_config(doc, "c.yaml").model.likelihood == "poisson"  # conversions: counts
    doc["model"]["target"] = "revenue"
    doc["experiments"]["calibrate"] = False  # lift tests measure conversions
    assert parse_config(doc, "c.yaml").model.likelihood == "student_t"  # money
    doc["model"]["likelihood"] = "normal"
    assert parse_config(doc, "c.yaml").model.likelihood == "normal"  # as set


def test_window_weeks_defaults_to_every_week():
    doc = default_document()
    doc["model"].pop("window_weeks", None)
    assert parse_config(doc).model.window_weeks is None
    doc["model"]["window_weeks"] = 10
    with pytest.raises(ConfigError, match=r"model\.window_weeks: .*greater than or equal to 26"):
        parse_config(doc)


def test_markets_are_pooled_by_default_and_the_mass_matrix_follows_the_fit():
    geo = load_config(REPO / "configs" / "meridian_geo.yaml")
    assert geo.model.markets == "hierarchical" and geo.pools_markets
    assert geo.model.dense_mass is None
    assert geo.model.dense_mass_for(pooled=True) is False  # diagonal: hundreds of parameters
    assert geo.model.dense_mass_for(pooled=False) is True
    document = yaml.safe_load((REPO / "configs" / "meridian_geo.yaml").read_text())
    document["model"].update(markets="independent", dense_mass=True)
    independent = parse_config(document)
    assert not independent.pools_markets
    assert independent.model.dense_mass_for(pooled=True) is True  # as configured
    assert not load_config(REPO / "configs" / "default.yaml").pools_markets  # no markets
    document["model"]["markets"] = "pooled"
    with pytest.raises(ConfigError, match=r"model\.markets: .*'independent' or 'hierarchical'"):
        parse_config(document)


@pytest.mark.parametrize("form", ["%d/%m", "%Y-%m", "not a format"])
def test_a_date_format_must_read_back_a_whole_date(form):
    document = yaml.safe_load((REPO / "configs/robyn_weekly.yaml").read_text())
    document["sources"]["panel"]["date_format"] = form
    with pytest.raises(ConfigError, match=r"sources.panel.date_format: .*does not read back a"):
        parse_config(document)
    document["sources"]["panel"]["date_format"] = "%d/%m/%Y"
    assert parse_config(document).sources.panel.date_format == "%d/%m/%Y"
