"""The project's YAML configuration: one typed, validated object every stage reads.

Validation happens once, on load, so a typo in a key or an impossible value is reported with the
file and the dotted path of the offending key before any data is touched.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from conversionflow_dagster.core.errors import ConfigError

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
MONTH_PATTERN = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")

NonNegative = Annotated[float, Field(ge=0)]


class _Strict(BaseModel):
    """Unknown keys are errors: a misspelt option must not be silently ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class PartitionsConfig(_Strict):
    start_month: str
    end_month: str | None = None  # inclusive; None = up to the last complete month

    @field_validator("start_month", "end_month")
    @classmethod
    def _month(cls, value: str | None) -> str | None:
        if value is not None and not MONTH_PATTERN.match(value):
            raise ValueError(f"expected a month as YYYY-MM, got {value!r}")
        return value

    @model_validator(mode="after")
    def _ordered(self) -> PartitionsConfig:
        if self.end_month is not None and self.end_month < self.start_month:
            raise ValueError(f"end_month {self.end_month} is before start_month {self.start_month}")
        return self


class ProjectSection(_Strict):
    name: str = "conversionflow"
    week_start: Literal[WEEKDAYS] = "monday"  # type: ignore[valid-type]
    partitions: PartitionsConfig
    # Markets (geos) fitted independently: a second partition dimension (market x month).
    # Needs the panel route with sources.panel.columns.market naming the market column.
    markets: list[str] = []
    allow_paths_outside_root: bool = False

    @field_validator("markets")
    @classmethod
    def _distinct(cls, value: list[str]) -> list[str]:
        repeated = sorted({m for m in value if value.count(m) > 1})
        if repeated:
            raise ValueError(f"markets listed twice: {repeated}")
        bad = [m for m in value if not m or "|" in m or "/" in m or m != m.strip()]
        if bad:
            raise ValueError(f"market names must be non-empty, without '|', '/' or padding: {bad}")
        return value

    @property
    def week_start_index(self) -> int:
        """Weekday number of the first day of a week (Monday = 0), as pandas counts."""
        return WEEKDAYS.index(self.week_start)


class EventColumns(_Strict):
    """Names of the event file's columns for each field of the events contract."""

    customer_id: str = "customer_id"
    timestamp: str = "timestamp"
    touchpoint: str = "touchpoint"
    conversion: str = "conversion"
    value: str = "value"


class SpendColumns(_Strict):
    date: str = "date"
    channel: str = "channel"  # long layout only
    spend: str = "spend"  # long layout only


class EventsSource(_Strict):
    path: str  # a file, or a template with {month} for one file per month
    columns: EventColumns = EventColumns()
    drop_duplicates: bool = False


class SpendSource(_Strict):
    path: str
    layout: Literal["long", "wide"] = "long"
    columns: SpendColumns = SpendColumns()


class PanelColumns(_Strict):
    """Columns of a ready weekly panel file (the second input route)."""

    date: str
    conversions: str | None = None
    revenue: str | None = None
    market: str | None = None  # long layout: one row per market and week (project.markets)

    @model_validator(mode="after")
    def _has_target(self) -> PanelColumns:
        if self.conversions is None and self.revenue is None:
            raise ValueError("map at least one of 'conversions' or 'revenue' to a column")
        return self


class PanelSource(_Strict):
    path: str
    columns: PanelColumns


class SourcesSection(_Strict):
    route: Literal["events", "panel"] = "events"
    events: EventsSource | None = None
    spend: SpendSource | None = None
    panel: PanelSource | None = None

    @model_validator(mode="after")
    def _route_complete(self) -> SourcesSection:
        if self.route == "events" and self.events is None:
            raise ValueError("route 'events' needs an 'events' source")
        if self.route == "panel" and self.panel is None:
            raise ValueError("route 'panel' needs a 'panel' source")
        return self


class ChannelConfig(_Strict):
    """A paid channel: its touchpoints in the event log and where its spend comes from."""

    touchpoints: list[str] = []
    cost_per_touch: NonNegative | None = None  # stands in where no spend feed exists
    spend_column: str | None = None  # wide spend layout and panel route
    touches_column: str | None = None  # panel route: e.g. impressions


class ControlSeries(_Strict):
    column: str
    categorical: bool = False
    baseline: str | None = None  # categorical level that gets no dummy column


class ControlsSection(_Strict):
    path: str | None = None  # events route: a weekly file; panel route: read from the panel
    date_column: str = "week_start"
    series: dict[str, ControlSeries] = {}


class GatesConfig(_Strict):
    max_r_hat: float = Field(1.01, gt=1.0)
    min_ess_bulk: NonNegative = 400
    min_ess_tail: NonNegative = 400
    max_divergences: int = Field(0, ge=0)


class ModelSection(_Strict):
    """Read by stage 1 (estimation)."""

    target: Literal["conversions", "revenue"] = "conversions"
    likelihood: Literal["poisson", "negbinomial", "normal", "hurdle_poisson"] = "poisson"
    adstock_max_lag: int = Field(8, ge=1, le=52)
    saturation: Literal["logistic", "hill"] = "logistic"
    fourier_order: int = Field(2, ge=0, le=10)
    window_weeks: int = Field(156, ge=26)
    holdout_weeks: int = Field(0, ge=0)
    chains: int = Field(4, ge=1, le=64)
    warmup: int = Field(1000, ge=10)
    draws: int = Field(1000, ge=10)
    seed: int = 0
    export_draws: int = Field(500, ge=10)
    priors: dict[str, Any] = {}
    gates: GatesConfig = GatesConfig()


class ChannelBounds(_Strict):
    min: NonNegative | None = None
    max: NonNegative | None = None


class OptimisationSection(_Strict):
    """Read by stage 2 (allocation)."""

    budget: float = Field(2_500_000, gt=0)  # per market when project.markets is set
    # Across markets: the budget split over market x channel; None = what the markets spend
    # now over the horizon (the same money, redistributed).
    total_budget: float | None = Field(None, gt=0)
    horizon_weeks: int = Field(13, ge=1)
    scenarios: list[Annotated[float, Field(gt=0)]] = [2_000_000, 2_500_000, 2_750_000, 5_000_000]
    bounds_band: float = Field(0.5, ge=0)
    bounds: dict[str, ChannelBounds] = {}
    locked: list[str] = []
    objective: Literal["mean", "quantile", "mean_minus_k_sd"] = "mean"
    quantile: float = Field(0.1, gt=0, lt=1)
    risk_k: NonNegative = 1.0
    population: int = Field(100, ge=4)
    generations: int = Field(200, ge=1)
    seed: int = 0


class ExperimentsSection(_Strict):
    """Randomised campaign lift tests (test vs control cohorts), read by ``campaign_lift_tests``."""

    lift_tests: str | None = None  # a CSV/Parquet file in the lift-test contract; None: none
    calibrate: bool = True  # tests with a spend_change enter the model's likelihood


class CustomerValueSection(_Strict):
    """Per-channel customer value (LTV, CAC, LTV:CAC, payback) from the journey log."""

    horizon_days: int = Field(180, ge=1)  # value counted this long after acquisition
    attribution: Literal["first_touch", "last_touch"] = "first_touch"
    bootstrap: int = Field(1000, ge=100)  # replicates for the intervals
    seed: int = 0


class ReportSection(_Strict):
    attributable_share: float = Field(0.05, gt=0, le=1)
    currency: str = ""  # symbol shown before money amounts
    formats: list[Literal["html", "csv", "json"]] = ["html", "csv", "json"]
    output_dir: str = "storage/reports"


class ProjectConfig(_Strict):
    project: ProjectSection
    sources: SourcesSection
    channels: dict[str, ChannelConfig]
    controls: ControlsSection = ControlsSection()
    model: ModelSection = ModelSection()
    optimisation: OptimisationSection = OptimisationSection()
    experiments: ExperimentsSection = ExperimentsSection()
    customer_value: CustomerValueSection = CustomerValueSection()
    report: ReportSection = ReportSection()

    @model_validator(mode="after")
    def _consistent(self) -> ProjectConfig:
        if not self.channels:
            raise ValueError("channels: configure at least one paid channel")
        seen: dict[str, str] = {}
        for name, channel in self.channels.items():
            for touchpoint in channel.touchpoints:
                if touchpoint in seen:
                    raise ValueError(
                        f"channels: touchpoint {touchpoint!r} is mapped to both "
                        f"{seen[touchpoint]!r} and {name!r}"
                    )
                seen[touchpoint] = name
        if self.sources.route == "events":
            if self.project.markets:
                raise ValueError("project.markets needs the panel route (a market column)")
            self._check_events_route()
        else:
            self._check_panel_route()
        calibrating = self.experiments.lift_tests is not None and self.experiments.calibrate
        if calibrating and self.model.target != "conversions":
            raise ValueError(
                "experiments.calibrate: lift tests measure conversions, but model.target is "
                f"{self.model.target!r}; set calibrate: false or fit conversions"
            )
        if calibrating and self.project.markets:
            raise ValueError(
                "experiments.calibrate: lift tests name no market, so they cannot calibrate "
                "per-market fits; set calibrate: false"
            )
        unknown = [
            c
            for c in [*self.optimisation.bounds, *self.optimisation.locked]
            if c not in self.channels
        ]
        if unknown:
            raise ValueError(
                f"optimisation: unknown channel(s) {unknown}; configured: {list(self.channels)}"
            )
        return self

    def _check_events_route(self) -> None:
        spend = self.sources.spend
        for name, channel in self.channels.items():
            if channel.cost_per_touch is not None:
                if not channel.touchpoints:
                    raise ValueError(
                        f"channels.{name}: cost_per_touch needs the channel's touchpoints"
                    )
                continue
            if spend is None:
                raise ValueError(
                    f"channels.{name}: no spend feed is configured, so set cost_per_touch"
                )
            if spend.layout == "wide" and channel.spend_column is None:
                raise ValueError(f"channels.{name}: the spend file is wide, so set spend_column")
        if self.controls.series and self.controls.path is None:
            raise ValueError("controls: the events route reads controls from 'path'; set it")

    def _check_panel_route(self) -> None:
        has_column = self.sources.panel.columns.market is not None
        if has_column != bool(self.project.markets):
            raise ValueError(
                "project.markets and sources.panel.columns.market go together: list the markets "
                "to fit and name the panel column that holds them"
            )
        for name, channel in self.channels.items():
            if channel.spend_column is None:
                raise ValueError(f"channels.{name}: the panel route needs spend_column")
        if self.controls.path is not None:
            raise ValueError(
                "controls: the panel route reads controls from the panel file; remove 'path'"
            )

    def month_range(self, today: dt.date | None = None) -> tuple[str, str]:
        """First and last configured data month (inclusive), as YYYY-MM."""
        end = self.project.partitions.end_month
        if end is None:
            today = today or dt.date.today()
            last = today.replace(day=1) - dt.timedelta(days=1)
            end = f"{last.year:04d}-{last.month:02d}"
        return self.project.partitions.start_month, end

    def touchpoint_channel(self) -> dict[str, str]:
        """Map of touchpoint -> paid channel; touchpoints not in it are organic."""
        return {tp: name for name, ch in self.channels.items() for tp in ch.touchpoints}


def _format_validation_error(source: str, error: ValidationError) -> str:
    lines = [f"{source}: invalid configuration"]
    for item in error.errors():
        loc = ".".join(str(part) for part in item["loc"]) or "<top level>"
        message = item["msg"]
        if item["type"] == "extra_forbidden":
            message = "unknown key (check its spelling and where it is nested)"
        elif item["type"] == "missing":
            message = "required key is missing"
        lines.append(f"  {loc}: {message}")
    return "\n".join(lines)


def parse_config(document: Any, source: str = "<config>") -> ProjectConfig:
    """Validate an already-parsed YAML document."""
    if not isinstance(document, dict):
        raise ConfigError(
            f"{source}: expected a mapping at the top level, got {type(document).__name__}"
        )
    try:
        return ProjectConfig.model_validate(document)
    except ValidationError as error:
        raise ConfigError(_format_validation_error(source, error)) from None


def load_config(path: str | Path) -> ProjectConfig:
    """Read and validate a YAML config file (with ``yaml.safe_load``: no code runs from it)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except UnicodeDecodeError as error:
        raise ConfigError(f"{path}: config file is not valid UTF-8 ({error.reason})") from None
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"{path}: not valid YAML{where}: {error}") from None
    return parse_config(document, str(path))


def resolve_project_path(root: Path, relative: str, *, allow_outside: bool = False) -> Path:
    """Resolve a path from config against the project root, refusing escapes by default.

    A config that points outside the project (``../secrets``, ``/etc``) is more likely a mistake
    or an attack than an intent; ``project.allow_paths_outside_root`` opts in explicitly.
    """
    root = root.resolve()
    candidate = (root / relative).resolve()
    if not allow_outside and not candidate.is_relative_to(root):
        raise ConfigError(
            f"path {relative!r} resolves to {candidate}, outside the project root {root}; "
            "set project.allow_paths_outside_root: true to allow it"
        )
    return candidate
