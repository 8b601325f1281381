"""`conversionflow init`'s core: recognising a stranger's data and proposing a config for it."""

import pytest
import yaml

from conversionflow_dagster.core.config import load_config, parse_config
from conversionflow_dagster.core.errors import ConfigError, InputDataError
from conversionflow_dagster.core.ingest.config_proposal import (
    Unset,
    config_document,
    render_config,
    render_yaml,
    summary_lines,
)
from conversionflow_dagster.core.ingest.inference import inspect_files
from conversionflow_dagster.core.ingest.validation import validate_inputs
from conversionflow_tests.conftest import REPO, SMALL_MONTHS
from conversionflow_tests.core.init_fixtures import (
    PANEL_CHANNELS,
    recent_spend,
    total_sales_panel,
    write_journey_log,
)


def _propose(tmp_path, files, root=REPO, share=None):
    """Inspect ``files``, write the proposal under ``tmp_path`` and load it."""
    inference = inspect_files(files)
    text = render_config(inference, "my project", root, "configs/my_project.yaml", share)
    path = tmp_path / "proposal.yaml"
    path.write_text(text)
    return inference, path, text


def _without_unset(node):
    if isinstance(node, dict):
        return {k: _without_unset(v) for k, v in node.items() if not isinstance(v, Unset)}
    return node


def _channels(config):
    return {n: (c.spend_column, c.touches_column) for n, c in config.channels.items()}


def _controls(config):
    return {s.column: (s.categorical, s.baseline) for s in config.controls.series.values()}


@pytest.mark.parametrize(
    ("data", "shipped"),
    [
        ("meridian/national_media.csv", "meridian_national.yaml"),
        ("robyn/dt_simulated_weekly.csv", "robyn_weekly.yaml"),
        ("meridian/geo_media.csv", "meridian_geo.yaml"),
    ],
)
def test_public_panels_get_the_shipped_configs_mapping(tmp_path, data, shipped):
    inference, path, _ = _propose(tmp_path, [REPO / "data/public" / data])
    proposed, expected = load_config(path), load_config(REPO / "configs" / shipped)
    assert inference.route == "panel"
    assert proposed.sources.panel.path == expected.sources.panel.path
    assert proposed.sources.panel.columns == expected.sources.panel.columns  # date, target, market
    assert proposed.model.target == expected.model.target
    assert _channels(proposed) == _channels(expected)  # names, spend and touches columns
    assert _controls(proposed) == _controls(expected)
    assert proposed.project.markets == expected.project.markets
    assert proposed.project.week_start == expected.project.week_start
    # stage-2 defaults are left to the data, and a panel of total sales is all of them
    assert proposed.optimisation.budget is None and proposed.optimisation.scenarios is None
    assert proposed.attributable_share == 1.0
    ok, lines = validate_inputs(REPO, path)
    assert ok, lines


def test_month_range_spans_the_data(tmp_path):
    inference, _, _ = _propose(tmp_path, [REPO / "data/public/robyn/dt_simulated_weekly.csv"])
    assert inference.months == ("2015-11", "2019-11")  # 2015-11-23 .. the week of 2019-11-11
    meridian = inspect_files([REPO / "data/public/meridian/national_media.csv"])
    assert any("'revenue_per_conversion' is left out" in n for n in meridian.notes)


def test_untidy_panel_headers_are_mapped_as_the_pipeline_reads_them(tmp_path):
    frame = total_sales_panel()
    frame.to_parquet(tmp_path / "weekly.parquet")  # Parquet keeps the leading space
    inference, path, text = _propose(tmp_path, [tmp_path / "weekly.parquet"], root=tmp_path)
    config = load_config(path)
    assert {n: c.spend_column for n, c in config.channels.items()} == PANEL_CHANNELS
    assert '" TV_Spend"' in text  # quoted, so YAML keeps the space
    assert config.sources.panel.columns.date == "Week"
    assert config.sources.panel.columns.revenue == "Total Sales"
    assert config.model.target == "revenue" and config.model.likelihood == "normal"
    assert {s.column for s in config.controls.series.values()} == {"Holiday"}
    assert config.project.partitions.start_month == "2022-01"
    assert config.project.partitions.end_month == "2024-04"
    assert inference.recent_spend == pytest.approx(recent_spend(frame))
    document, _ = config_document(inference, "my project", tmp_path)
    assert yaml.safe_load(text) == _without_unset(document)  # the comments change nothing
    ok, lines = validate_inputs(tmp_path, path)
    assert ok, lines


def test_journey_log_with_spend_is_the_events_route(tmp_path, small_sample_dir):
    events, spend = write_journey_log(small_sample_dir, tmp_path / "data")
    inference, path, text = _propose(tmp_path, [events, spend], root=tmp_path)
    assert inference.route == "events"
    assert inference.columns["events"] == {
        "customer_id": "user_id",
        "timestamp": "event_time",
        "conversion": "converted",
        "touchpoint": "channel",
        "value": "revenue",
    }
    assert inference.spend_layout == "long"
    assert {c.name: c.touchpoints for c in inference.channels} == {
        name: (f"{name}_touch",) for name in ("display", "email", "search", "social", "tv", "video")
    }
    # June holds only its first days: a partial month would leave weeks without events
    assert inference.months == (SMALL_MONTHS[0], SMALL_MONTHS[-1])
    assert any("2023-06" in note for note in inference.notes)
    paid = [note for note in inference.notes if "'affiliate_touch'" in note]
    assert paid and "name a channel" in paid[0]  # paid-looking, but no spend: said so
    lines = summary_lines(inference)
    assert any("sources.events.columns.touchpoint" in line and "channel" in line for line in lines)
    assert any("--attributable-share" in line for line in lines)
    assert "# attributable_share: 0.05" in text  # written commented out, with why
    with pytest.raises(ConfigError, match=r"report\.attributable_share"):
        load_config(path)
    # with the share, the same proposal is valid and every month reads cleanly
    _, path, _ = _propose(tmp_path, [events, spend], root=tmp_path, share=0.05)
    ok, lines = validate_inputs(tmp_path, path)
    assert ok, lines


def test_per_month_files_become_a_template(tmp_path, small_sample_dir):
    events = sorted((small_sample_dir / "events").glob("*.csv"))
    spend = sorted((small_sample_dir / "spend").glob("*.csv"))
    inference = inspect_files([*events, *spend, small_sample_dir / "controls.csv"])
    assert inference.paths["events"] == small_sample_dir / "events" / "{month}.csv"
    assert inference.paths["spend"] == small_sample_dir / "spend" / "{month}.csv"
    assert inference.paths["controls"] == small_sample_dir / "controls.csv"
    assert inference.columns["controls"] == {"date_column": "week_start"}
    document, _ = config_document(inference, "x", small_sample_dir, 0.05)
    config = parse_config(_without_unset(document))
    assert config.sources.events.path == "events/{month}.csv"


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"", "file is empty"),
        (b"a,b\n1,2\n3,4\n", "no column of ISO 8601 dates"),
        (b"Date,sales,tv_spend\n01/02/2024,3,4\n08/02/2024,3,4\n", "holds dates like '01/02/2024'"),
        (b"date,colour\n2024-01-01,red\n2024-01-08,blue\n", "expected a weekly panel"),
        (b"date;sales;tv_spend\n2024-01-01;3;4\n", "separated by ';'"),
        (b"date,sales\n2024-01-01,3\n2024-01-08,\xe94\n", "not valid UTF-8"),
        (b"date,sales,tv_spend\n2024-01-01,3,4\n2024-01-02,3,4\n", "1 day(s) apart"),
    ],
)
def test_unusable_files_are_refused_naming_the_file(tmp_path, content, expected):
    path = tmp_path / "mine.csv"
    path.write_bytes(content)
    with pytest.raises(InputDataError) as raised:
        inspect_files([path])
    message = str(raised.value)
    assert message.startswith(str(path)) and expected in message
    assert "\n" not in message


def test_render_yaml_inlines_plain_mappings_and_comments_unset_keys():
    document = {
        "channels": {"tv": {"spend_column": " TV spend"}},
        "sources": {"columns": {"date": "2024-01", "revenue": "yes"}},
        "report": {"attributable_share": Unset(0.05)},
    }
    comments = {"sources.columns.date": "ISO dates", "report.attributable_share": "required"}
    text = "\n".join(render_yaml(document, comments))
    assert 'tv: {spend_column: " TV spend"}' in text
    assert "# attributable_share: 0.05" in text and "# required" in text
    assert yaml.safe_load(text) == {
        "channels": {"tv": {"spend_column": " TV spend"}},
        "sources": {"columns": {"date": "2024-01", "revenue": "yes"}},  # strings stay strings
        "report": {},
    }
